//! Prometheus metrics: promtool's linter, node_exporter's textfile
//! collector, a real Prometheus server scraping the library's endpoint,
//! and the endpoint's HTTP behaviour.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use ksmtuned::kernel::ksm::{Knob, Ksm, Run, Setting};
use ksmtuned::kernel::{proc, sys};
use ksmtuned::metrics::{Server, ServerOptions, TunerMetrics};
use ksmtuned::Root;
use support::*;

fn fake_tuner() -> TunerMetrics {
    TunerMetrics {
        policy: ksmtuned::config::PolicyKind::Classic,
        state: ksmtuned::policy::tuner::TunerState::Running,
        pages_to_scan: Some(1250),
        sleep_ms: Some(10),
        adjustments: 7,
        retunes: 1,
        reloads: 2,
        errors: 0,
        last_adjustment: Some(UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
        ..TunerMetrics::default()
    }
}

/// `promtool check metrics` on a text: its exit status and what it said.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

fn ksmctl_metrics(root: Option<&std::path::Path>, extra: &[&str]) -> String {
    let mut cmd = ksmctl();
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    let out = cmd.arg("metrics").args(extra).output().unwrap();
    assert!(
        out.status.success(),
        "ksmctl metrics failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn promtool_accepts_the_metrics_of_this_host_and_of_a_fixture() {
    let host = ksmctl_metrics(None, &[]);
    assert!(host.contains("# TYPE ksm_pages_sharing gauge"), "{host}");
    let kernel: f64 = std::fs::read_to_string("/sys/kernel/mm/ksm/pages_sharing")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(f64::NAN);
    if kernel.is_finite() {
        assert!(value_of(&host, "ksm_pages_sharing").is_some());
    }
    let (ok, said) = promtool(&host);
    assert!(
        ok,
        "promtool check metrics refused this host's metrics:\n{said}\n{host}"
    );

    let fix = ksmctl_metrics(Some(&fixture_root()), &[]);
    let (ok, said) = promtool(&fix);
    assert!(ok, "promtool refused the fixture's metrics:\n{said}\n{fix}");
    assert_eq!(value_of(&fix, "ksm_pages_sharing"), Some(250000.0));
    assert_eq!(
        value_of(&fix, "ksm_general_profit_bytes"),
        Some(998244352.0)
    );
    assert_eq!(
        value_of(&fix, "ksm_memory_saved_bytes"),
        Some((250000.0 + 300.0) * sys::page_size() as f64)
    );
    assert_eq!(value_of(&fix, "ksm_full_scans_total"), Some(42.0));
    assert_eq!(
        value_of(&fix, "ksm_ksmd_cpu_seconds_total"),
        Some(1000.0 / sys::clock_ticks() as f64)
    );
    assert!(fix.contains(
        r#"ksm_process_merging_pages{comm="qemu-system-x86",guest="rhel9",pid="4242"} 170000"#
    ));
    // --top limits the processes; the fixture's scanned-only and vanished
    // processes never show.
    let top1 = ksmctl_metrics(Some(&fixture_root()), &["--top", "1"]);
    assert_eq!(
        top1.matches("ksm_process_merging_pages{").count(),
        1,
        "{top1}"
    );
    assert!(!fix.contains("pid=\"7000\"") && !fix.contains("pid=\"8000\""));
}

fn fixture_server(opts: ServerOptions) -> (Server, Arc<Mutex<TunerMetrics>>) {
    let tuner = Arc::new(Mutex::new(fake_tuner()));
    let server = Server::spawn_with(
        "127.0.0.1:0",
        Root::new(fixture_root()),
        Some(Arc::clone(&tuner)),
        opts,
    )
    .expect("starting the metrics server");
    (server, tuner)
}

#[test]
fn server_answers_get_metrics_with_tuner_metrics() {
    let (server, tuner) = fixture_server(ServerOptions::default());
    let addr = server.local_addr();
    let r = http_get(addr, "/metrics").unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    assert!(
        r.head.contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        r.head
    );
    assert_eq!(value_of(&r.body, "ksm_pages_sharing"), Some(250000.0));
    assert_eq!(value_of(&r.body, "ksm_tuner_adjustments_total"), Some(7.0));
    assert_eq!(value_of(&r.body, "ksm_tuner_sleep_seconds"), Some(0.01));
    assert_eq!(
        value_of(&r.body, "ksm_tuner_last_adjustment_timestamp_seconds"),
        Some(1_790_000_000.0)
    );
    assert!(r.body.contains("ksm_tuner_policy{policy=\"classic\"} 1"));
    // Classic has no CPU budget.
    assert!(!r.body.contains("ksm_tuner_max_cpu_ratio"), "{}", r.body);
    let (ok, said) = promtool(&r.body);
    assert!(
        ok,
        "promtool refused the served metrics:\n{said}\n{}",
        r.body
    );

    // The tuner only updates the shared struct; the next scrape shows it.
    {
        let mut t = tuner.lock().unwrap();
        t.adjustments = 8;
        t.policy = ksmtuned::config::PolicyKind::Adaptive;
        t.max_cpu_ratio = Some(0.3);
        t.state =
            ksmtuned::policy::tuner::TunerState::Adaptive(ksmtuned::policy::adaptive::Mode::Idle);
    }
    let r = http_get(addr, "/metrics?x=1").unwrap();
    assert_eq!(value_of(&r.body, "ksm_tuner_adjustments_total"), Some(8.0));
    assert!(r.body.contains("ksm_tuner_state{state=\"idle\"} 1"));
    assert_eq!(value_of(&r.body, "ksm_tuner_max_cpu_ratio"), Some(0.3));
    let (ok, said) = promtool(&r.body);
    assert!(
        ok,
        "promtool refused the adaptive tuner's metrics:\n{said}\n{}",
        r.body
    );

    let r = http_get(addr, "/").unwrap();
    assert_eq!(r.code, 404, "{r:?}");
    let r = http_get(addr, "/metricsx").unwrap();
    assert_eq!(r.code, 404, "{r:?}");
    let r = http_raw(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
    )
    .unwrap();
    assert_eq!(r.code, 405, "{r:?}");
    assert!(r.head.contains("Allow: GET"), "{}", r.head);
    let r = http_raw(
        addr,
        "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.code, 405, "{r:?}");
    let r = http_raw(addr, "NOT HTTP AT ALL\r\n\r\n").unwrap();
    assert_eq!(r.code, 400, "{r:?}");
}

/// Read one response (head, then a body of its Content-Length) from a
/// connection that may stay open.
fn read_response(s: &mut TcpStream) -> Response {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("reading a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("no Content-Length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Response {
        code: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head: head.trim_end().to_string(),
        body: String::from_utf8(body).unwrap(),
    }
}

/// Whether the server has closed the connection (within `wait`) without
/// sending anything more.
fn closed_quietly(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut rest = Vec::new();
    matches!(s.read_to_end(&mut rest), Ok(0))
}

#[test]
fn server_keeps_connections_alive_within_bounds() {
    let opts = ServerOptions {
        timeout: Duration::from_secs(2),
        max_requests_per_connection: 3,
        ..ServerOptions::default()
    };
    let (server, _tuner) = fixture_server(opts);
    let addr = server.local_addr();
    let get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

    // HTTP/1.1: three requests on one connection, the last answered with
    // `Connection: close` and the connection then closed.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for n in 1..=3 {
        s.write_all(get.as_bytes()).unwrap();
        let r = read_response(&mut s);
        assert_eq!(r.code, 200, "request {n}: {r:?}");
        assert_eq!(value_of(&r.body, "ksm_pages_sharing"), Some(250000.0));
        assert_eq!(r.head.contains("Connection: close"), n == 3, "{}", r.head);
    }
    assert!(closed_quietly(&mut s, Duration::from_secs(1)));

    // Two requests sent at once (pipelined) are both answered in order; a
    // 404 keeps the connection, `Connection: close` ends it.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n{get}").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut s).code, 404);
    assert_eq!(read_response(&mut s).code, 200);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s);
    assert!(
        r.code == 200 && r.head.contains("Connection: close"),
        "{r:?}"
    );
    assert!(closed_quietly(&mut s, Duration::from_secs(1)));

    // An idle kept-alive connection is closed after the timeout, without
    // an unasked-for 408; so is one with a half-sent next request.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(get.as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).code, 200);
    let t = Instant::now();
    // Meanwhile the endpoint's threads (its runtime's and the helpers that
    // read /proc) run 10 nice steps below the rest of the process.
    let niceness = |comm: &str| -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if name.trim_end().starts_with(comm) {
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
                let after = stat.rsplit(')').next().unwrap();
                found.push(after.split_whitespace().nth(16).unwrap().parse().unwrap());
            }
        }
        found
    };
    let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let want = (base + ksmtuned::metrics::SERVER_NICE).min(19);
    let threads = niceness("ksm-metrics");
    assert!(
        threads.len() >= 2 && threads.iter().all(|&n| n == want),
        "the endpoint's threads' nice: {threads:?}, want {want}"
    );
    assert!(closed_quietly(&mut s, Duration::from_secs(5)));
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_secs(4),
        "{idle:?}"
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(get.as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).code, 200);
    s.write_all(b"GET /met").unwrap();
    let t = Instant::now();
    assert!(closed_quietly(&mut s, Duration::from_secs(5)));
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );

    // HTTP/1.0 and requests with a body close after one answer.
    let r = http_get(addr, "/metrics").unwrap();
    assert!(r.code == 200 && r.head.contains("Connection: close"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = read_response(&mut s);
    assert!(
        r.code == 405 && r.head.contains("Connection: close"),
        "{r:?}"
    );
    assert!(closed_quietly(&mut s, Duration::from_secs(1)));
}

#[test]
fn server_shares_a_reading_at_most_max_age_old() {
    // A copy of the fixture whose KSM counter the test changes.
    let dir = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(fixture_root())
        .arg(dir.path().join("root"))
        .status()
        .unwrap();
    assert!(copied.success());
    let root = dir.path().join("root");
    let full_scans = root.join("sys/kernel/mm/ksm/full_scans");
    let max_age = Duration::from_millis(800);
    let tuner = Arc::new(Mutex::new(fake_tuner()));
    let server = Server::spawn_with(
        "127.0.0.1:0",
        Root::new(&root),
        Some(Arc::clone(&tuner)),
        ServerOptions {
            max_age,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let addr = server.local_addr();
    let scans = || {
        let r = http_get(addr, "/metrics").unwrap();
        assert_eq!(r.code, 200, "{r:?}");
        value_of(&r.body, "ksm_full_scans_total").unwrap()
    };
    let first = Instant::now();
    assert_eq!(scans(), 42.0);
    std::fs::write(&full_scans, "43\n").unwrap();
    tuner.lock().unwrap().adjustments = 99;
    // Within max_age the shared reading is served (when this machine was
    // quick enough to ask again within it)...
    let r = http_get(addr, "/metrics").unwrap();
    if first.elapsed() < max_age {
        assert_eq!(value_of(&r.body, "ksm_full_scans_total"), Some(42.0));
    } else {
        eprintln!("the second scrape came after max_age: caching not checked");
    }
    // ...while the tuner's own metrics are always current...
    assert_eq!(value_of(&r.body, "ksm_tuner_adjustments_total"), Some(99.0));
    let (ok, said) = promtool(&r.body);
    assert!(
        ok,
        "promtool refused the combined text:\n{said}\n{}",
        r.body
    );
    // ...and once max_age has passed the change shows.
    std::thread::sleep(max_age.saturating_sub(first.elapsed()) + Duration::from_millis(50));
    assert_eq!(scans(), 43.0);
    std::fs::write(&full_scans, "44\n").unwrap();
    let changed = Instant::now();
    let seen = poll_until(Duration::from_secs(5), || {
        (scans() == 44.0).then(Instant::now)
    })
    .expect("the change never showed");
    assert!(
        seen.duration_since(changed) <= max_age + Duration::from_millis(300),
        "the change took {:?} to show (max_age {max_age:?})",
        seen.duration_since(changed)
    );

    // max_age zero: every request reads the system.
    let server = Server::spawn_with(
        "127.0.0.1:0",
        Root::new(&root),
        None,
        ServerOptions {
            max_age: Duration::ZERO,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let addr = server.local_addr();
    std::fs::write(&full_scans, "45\n").unwrap();
    let r = http_get(addr, "/metrics").unwrap();
    assert_eq!(value_of(&r.body, "ksm_full_scans_total"), Some(45.0));
    std::fs::write(&full_scans, "46\n").unwrap();
    let r = http_get(addr, "/metrics").unwrap();
    assert_eq!(value_of(&r.body, "ksm_full_scans_total"), Some(46.0));
}

#[test]
fn server_bounds_requests_and_never_waits_for_slow_clients() {
    let opts = ServerOptions {
        timeout: Duration::from_secs(3),
        max_connections: 2,
        ..ServerOptions::default()
    };
    let (server, _tuner) = fixture_server(opts);
    let addr = server.local_addr();

    // A request head larger than the limit.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let r = http_raw(addr, &big).unwrap();
    assert_eq!(r.code, 431, "{r:?}");

    // A client that connects and sends nothing does not hold up others...
    let mut idle = TcpStream::connect(addr).unwrap();
    let connected = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let r = http_get(addr, "/metrics").unwrap();
    assert_eq!(r.code, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // ...and is closed once its time is up.
    assert!(closed_quietly(&mut idle, Duration::from_secs(10)));
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );

    // Past max_connections, a new client is served at once and the
    // connection that has waited longest without a request is closed.
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let mut a = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = http_get(addr, "/metrics").unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(closed_quietly(&mut a, Duration::from_millis(500)));
    b.set_nonblocking(true).unwrap();
    let still_open =
        matches!(b.read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(still_open, "the newer idle connection was closed instead");

    // A bad address is a clear error.
    let e = Server::spawn(
        "not-an-address",
        Root::default(),
        Arc::new(Mutex::new(fake_tuner())),
    )
    .err()
    .expect("a bad address must fail")
    .to_string();
    assert!(
        e.contains("not-an-address") && e.contains("ADDRESS:PORT"),
        "{e}"
    );
    // Dropping the server stops it.
    drop(server);
    std::thread::sleep(Duration::from_millis(100));
    assert!(http_get(addr, "/metrics").is_err());
}

#[test]
fn node_exporter_textfile_collector_reexposes_ksmctl_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let text = ksmctl_metrics(None, &[]);
    // Written to a temporary name and renamed, as node_exporter advises.
    let tmp = dir.path().join("ksm.prom.tmp");
    std::fs::write(&tmp, &text).unwrap();
    std::fs::rename(&tmp, dir.path().join("ksm.prom")).unwrap();

    let body = node_exporter_scrape(dir.path(), &[]);
    assert_eq!(
        value_of(&body, "node_textfile_scrape_error"),
        Some(0.0),
        "node_exporter could not read ksmctl's output:\n{body}"
    );
    let exposed = families(&body);
    for name in families(&text) {
        assert!(exposed.contains(&name), "node_exporter lost {name}");
    }
    assert_eq!(
        value_of(&body, "ksm_pages_sharing"),
        value_of(&text, "ksm_pages_sharing")
    );
    assert!(body.contains("# TYPE ksm_full_scans_total counter"));
}

/// Prometheus's HTTP API: the value of an instant query, if it has one.
fn prom_query(port: u16, query: &str) -> Option<f64> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = http_get(addr, &format!("/api/v1/query?query={query}")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    if v["status"] != "success" {
        return None;
    }
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn kernel_u64(ksm: &Ksm, name: &str) -> u64 {
    ksm.read_raw(name).unwrap().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_pages_sharing_equal_to_the_kernel() {
    let Some(ksm) = real_ksm("prometheus_scrapes_pages_sharing_equal_to_the_kernel") else {
        return;
    };
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let probe = Probe::start("obs-prom-probe", 512, "madvise", 61);
    if !exp.before().advisor_active() {
        ksm.write(Knob::PagesToScan.parse("5000").unwrap()).unwrap();
    }
    ksm.write(Knob::SleepMillisecs.parse("10").unwrap())
        .unwrap();
    ksm.write(Setting::run(Run::Merge)).unwrap();
    let merged = poll_until(Duration::from_secs(60), || {
        proc::ksm_stat(&Root::default(), probe.pid)
            .and_then(|s| s.merging_pages)
            .filter(|&m| m >= 512)
    });
    assert!(
        merged.is_some(),
        "the probe's 512 pages were not merged in 60 s"
    );
    // Freeze the counters: ksmd stops, merged pages stay merged.
    ksm.set_run(Run::Stop).unwrap();
    // 512 identical pages: one KSM page per max_page_sharing mappings.
    let sharing = kernel_u64(&ksm, "pages_sharing");
    assert!(sharing >= 256, "pages_sharing {sharing}");

    // A running ksmtuned serves the metrics (a dry run: it decides and
    // reports, and leaves ksmd as the test set it).
    let dir = tempfile::tempdir().unwrap();
    let tuned_port = free_port();
    let tuned_conf = dir.path().join("ksmtuned.conf");
    std::fs::write(
        &tuned_conf,
        format!("KSM_MONITOR_INTERVAL=3600\nKSM_METRICS_LISTEN=127.0.0.1:{tuned_port}\n"),
    )
    .unwrap();
    let tuned = Command::new(env!("CARGO_BIN_EXE_ksmtuned"))
        .arg("--config")
        .arg(&tuned_conf)
        .arg("--pid-file")
        .arg(dir.path().join("ksmtuned.pid"))
        .arg("--dry-run")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ksmtuned");
    let tuned_pid = tuned.id();
    let _tuned = Kill(tuned);
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: ksm\n    static_configs:\n      - targets: ['127.0.0.1:{tuned_port}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prometheus (scripts/test installs it)");
    let _guard = Kill(child);
    let log_text =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Within a scrape or two of Prometheus being up, it has the kernel's value.
    let got = poll_until(Duration::from_secs(60), || {
        prom_query(port, "ksm_pages_sharing")
    });
    let got =
        got.unwrap_or_else(|| panic!("Prometheus never had ksm_pages_sharing:\n{}", log_text()));
    let now = kernel_u64(&ksm, "pages_sharing");
    assert_eq!(got, now as f64, "Prometheus says {got}, the kernel {now}");
    assert_eq!(now, sharing);

    // The tuner's own numbers reach Prometheus: a retune is counted.
    assert_eq!(prom_query(port, "ksm_tuner_retunes_total"), Some(0.0));
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(tuned_pid as i32, libc::SIGUSR1) }, 0);
    let seen = poll_until(Duration::from_secs(10), || {
        prom_query(port, "ksm_tuner_retunes_total").filter(|&v| v == 1.0)
    });
    assert_eq!(seen, Some(1.0), "the retune did not reach Prometheus");
    assert!(prom_query(port, "ksm_tuner_adjustments_total").unwrap() >= 2.0);
    assert_eq!(prom_query(port, "up"), Some(1.0));
    drop(probe);
    // With ksmd running again, the Experiment unmerges on restore (when the
    // host had nothing merged before) so no stale counters are left behind.
    ksm.set_run(Run::Merge).unwrap();
    drop(exp);
}
