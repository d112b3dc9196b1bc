//! The metrics endpoint facing a network (issue 19), against a real
//! `ksmtuned --dry-run` with a private configuration directory:
//!
//! - 500 slow clients (a header line a second, reconnecting whenever they
//!   are dropped) and 500 idle connections (reopened too) do not starve a
//!   normal scrape (each answered within 1 s), the tuner keeps its
//!   schedule and the daemon's memory and descriptors stay bounded;
//! - a real Prometheus scrapes it over TLS with basic authentication, and
//!   wrong credentials get 401;
//! - bad web configuration files are refused with a clear message.
//!
//! `KSMTUNED=/path/to/ksmtuned` runs another build (to measure an older
//! endpoint); the default is this build's.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{fixture_root, free_port, open_fds, status_kib, value_of, Kill};

fn ksmtuned() -> String {
    std::env::var("KSMTUNED").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ksmtuned").to_string())
}

/// A private, root-only directory (ksmtuned refuses a configuration in a
/// directory others can write).
fn private_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ksm-endpoint.")
        .tempdir()
        .unwrap()
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Start `ksmtuned --dry-run` with `conf` and wait for the URL it serves
/// metrics on (from its log).
fn start_daemon(dir: &Path, conf: &str, interval_ms: u64) -> (Kill, String) {
    let c = dir.join("ksmtuned.conf");
    write_private(&c, conf);
    let log = dir.join("stderr");
    let child = Command::new(ksmtuned())
        .arg("--dry-run")
        .arg("--config")
        .arg(&c)
        .arg("--pid-file")
        .arg(dir.join("ksmtuned.pid"))
        .arg("--interval-ms")
        .arg(interval_ms.to_string())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting ksmtuned");
    let mut child = Kill(child);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = text
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        {
            return (child, url.to_string());
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("ksmtuned exited ({status}):\n{text}");
        }
        assert!(
            Instant::now() < until,
            "ksmtuned serves no metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

/// Raise the soft descriptor limit to the hard one: the test holds more
/// than a thousand sockets (the daemon, its child, inherits the limit).
fn raise_fd_limit(need: u64) -> bool {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return false;
        }
        if l.rlim_cur < need {
            l.rlim_cur = l.rlim_max.min(need.max(l.rlim_cur));
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return false;
            }
        }
    }
    l.rlim_cur >= need
}

/// One GET /metrics, HTTP/1.0: the status, the body and how long the whole
/// exchange took.
fn scrape(addr: SocketAddr) -> (u16, String, Duration) {
    let t = Instant::now();
    let fail = |why: String| (0, why, t.elapsed());
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return fail(format!("connect: {e}")),
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if let Err(e) = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n") {
        return fail(format!("write: {e}"));
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        return fail(format!("read: {e}"));
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text);
    (code, body, t.elapsed())
}

/// Whether the server has closed `s` (read gives end of file or an error).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// The hostile clients: `slow` connections that send one header line a
/// second (a request head that never ends) and `idle` ones that send
/// nothing; each is opened again as soon as the server has dropped it.
/// Returns the number of (re)connections made.
fn attack(addr: SocketAddr, slow: usize, idle: usize, stop: &AtomicBool) -> usize {
    let mut conns: Vec<(Option<TcpStream>, usize)> = (0..slow + idle).map(|_| (None, 0)).collect();
    let mut opened = 0;
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        for (i, (conn, lines)) in conns.iter_mut().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if conn.as_mut().is_some_and(closed) {
                *conn = None;
            }
            if conn.is_none() {
                *conn = connect(addr);
                *lines = 0;
                if conn.is_some() {
                    opened += 1;
                }
            }
            let Some(s) = conn.as_mut() else { continue };
            if i < slow {
                let line = if *lines == 0 {
                    "GET /metrics HTTP/1.1\r\nHost: x\r\n".to_string()
                } else {
                    format!("X-Slow-{i}: {lines}\r\n")
                };
                *lines += 1;
                if s.write_all(line.as_bytes()).is_err() {
                    *conn = None;
                }
            }
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(round.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    opened
}

#[test]
fn slow_and_idle_clients_starve_neither_a_scrape_nor_the_tuner() {
    const SLOW: usize = 500;
    const IDLE: usize = 500;
    if !raise_fd_limit((SLOW + IDLE + 200) as u64) {
        eprintln!(
            "SKIPPED: cannot raise the descriptor limit to {} (ulimit -Hn)",
            SLOW + IDLE + 200
        );
        return;
    }
    let dir = private_dir();
    let interval_ms = 200;
    let (daemon, url) = start_daemon(dir.path(), "KSM_METRICS_LISTEN=127.0.0.1:0\n", interval_ms);
    let pid = daemon.0.id();
    let addr = addr_of(&url);

    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    let (code, before, _) = scrape(addr);
    assert_eq!(code, 200, "{before}");
    let rss_before = status_kib(pid, "VmRSS");
    let cycles_before = value_of(&before, "ksm_tuner_cycles_total").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let attackers = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || attack(addr, SLOW, IDLE, &stop))
    };
    // Let the attackers open their connections, then scrape meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    let mut worst = Duration::ZERO;
    let mut scrapes = 0;
    let mut failed = Vec::new();
    let (mut rss_max, mut fds_max) = (0, 0);
    let (mut last, mut last_at) = (String::new(), t0);
    let attack_for = Duration::from_secs(10);
    let started = Instant::now();
    while started.elapsed() < attack_for {
        let at = Instant::now();
        let (code, body, took) = scrape(addr);
        scrapes += 1;
        worst = worst.max(took);
        if code != 200 || took > Duration::from_secs(1) {
            failed.push(format!(
                "{code} in {took:?}: {}",
                body.lines().next().unwrap_or("")
            ));
        } else {
            (last, last_at) = (body, at);
        }
        rss_max = rss_max.max(status_kib(pid, "VmRSS"));
        fds_max = fds_max.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    let opened = attackers.join().unwrap();
    let elapsed = last_at.duration_since(t0).as_secs_f64();

    // From the last good scrape (NaN if there was none).
    let metric = |name: &str| value_of(&last, name).unwrap_or(f64::NAN);
    let cycles = metric("ksm_tuner_cycles_total") - cycles_before;
    let expected = elapsed * 1000.0 / interval_ms as f64;
    let delay_max = metric("ksm_tuner_cycle_delay_max_seconds");
    let skipped = metric("ksm_tuner_cycles_skipped_total");
    eprintln!(
        "{SLOW} slow + {IDLE} idle clients ({opened} connections opened in {elapsed:.1} s): \
         {scrapes} scrapes, the slowest {worst:?}, {} failed; cycles {cycles} of {expected:.1} \
         expected, max delay {:.1} ms, {skipped} skipped; daemon VmRSS {rss_before} KiB before, \
         at most {rss_max} KiB meanwhile; at most {fds_max} descriptors",
        failed.len(),
        delay_max * 1000.0
    );
    assert!(
        failed.is_empty(),
        "{} of {scrapes} scrapes failed or were slow: {failed:#?}",
        failed.len()
    );
    assert!(scrapes >= 20, "{scrapes}");
    assert!(
        cycles >= 0.9 * expected,
        "{cycles} of {expected:.1} cycles done"
    );
    assert!(
        delay_max <= f64::max(interval_ms as f64 / 1000.0, 0.25),
        "a cycle started {delay_max} s late"
    );
    // Bounded: the connection limit (256) holds descriptors and memory down
    // (measured: at most 270 descriptors, VmRSS +4 to +11 MiB).
    assert!(fds_max < 300, "{fds_max} descriptors open");
    assert!(
        rss_max < rss_before + 16 * 1024,
        "VmRSS grew from {rss_before} to {rss_max} KiB"
    );
    // And the endpoint is itself again once they are gone.
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, took) = scrape(addr);
    assert!(
        code == 200 && took < Duration::from_secs(1),
        "{code} {took:?}"
    );
}

// ---- TLS and basic authentication -------------------------------------

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with
/// openssl: (certificate, key), the key readable by its owner only.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("metrics.crt"), dir.join("metrics.key"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=ksmtuned-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("running openssl");
    assert!(
        o.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (crt, key)
}

/// curl's status code for GET `url` (0 when it could not talk to it).
fn curl(url: &str, ca: &Path, user: Option<&str>) -> u16 {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ])
    .arg("--cacert")
    .arg(ca);
    if let Some(u) = user {
        c.arg("-u").arg(u);
    }
    let o = c.arg(url).output().expect("running curl");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Prometheus's targets, as (job, health, last error).
fn prom_targets(port: u16) -> Vec<(String, String, String)> {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/api/v1/targets"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["data"]["activeTargets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
                    (
                        t["labels"]["job"].as_str().unwrap_or("").to_string(),
                        s("health"),
                        s("lastError"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn prom_query(port: u16, query: &str) -> Option<f64> {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "5", "-G", "--data-urlencode"])
        .arg(format!("query={query}"))
        .arg(format!("http://127.0.0.1:{port}/api/v1/query"))
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_wrong_credentials_get_401() {
    for (cmd, pkg) in [
        ("openssl", "openssl"),
        ("curl", "curl"),
        ("prometheus", "prometheus"),
    ] {
        if !have(cmd) {
            eprintln!(
                "SKIPPED: {cmd} is not installed (Debian package {pkg}; scripts/test installs it)"
            );
            return;
        }
    }
    let dir = private_dir();
    let (crt, _key) = self_signed(dir.path());
    let hash = bcrypt::hash("scrape-me", 10).unwrap();
    write_private(
        &dir.path().join("web.yml"),
        &format!(
            "# The endpoint's TLS and users.\ntls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let (daemon, url) = start_daemon(
        dir.path(),
        "KSM_METRICS_LISTEN=127.0.0.1:0\nKSM_METRICS_WEB_CONFIG=web.yml\n",
        500,
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let addr = addr_of(&url);

    // Without, with wrong and with right credentials; plain HTTP gets no
    // metrics from a TLS endpoint.
    assert_eq!(curl(&url, &crt, None), 401);
    assert_eq!(curl(&url, &crt, Some("prometheus:wrong")), 401);
    assert_eq!(curl(&url, &crt, Some("nobody:scrape-me")), 401);
    assert_eq!(curl(&url, &crt, Some("prometheus:scrape-me")), 200);
    let (code, _, _) = scrape(addr);
    assert_ne!(code, 200);

    // A real Prometheus: one job with the right password, one without.
    let prom_port = free_port();
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {crt}\n    basic_auth:\n      username: prometheus\n      password: {password}\n    static_configs:\n      - targets: ['{addr}']\n",
            crt = crt.display()
        )
    };
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n{}{}",
            job("ksm", "scrape-me"),
            job("intruder", "guess")
        ),
    )
    .unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&prom_log).unwrap())
        .spawn()
        .expect("starting prometheus");
    let _prom = Kill(prom);
    let until = Instant::now() + Duration::from_secs(60);
    let cycles = loop {
        if let Some(v) = prom_query(prom_port, "ksm_tuner_cycles_total{job=\"ksm\"}") {
            break v;
        }
        assert!(
            Instant::now() < until,
            "Prometheus never scraped ksm_tuner_cycles_total over TLS: {:?}\n{}",
            prom_targets(prom_port),
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(cycles >= 1.0, "{cycles}");
    assert_eq!(prom_query(prom_port, "up{job=\"ksm\"}"), Some(1.0));
    let until = Instant::now() + Duration::from_secs(30);
    let intruder = loop {
        let t = prom_targets(prom_port);
        if let Some(i) = t.iter().find(|t| t.0 == "intruder" && !t.2.is_empty()) {
            break i.clone();
        }
        assert!(Instant::now() < until, "{t:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(intruder.1, "down", "{intruder:?}");
    assert!(intruder.2.contains("401"), "{intruder:?}");
    assert_eq!(prom_query(prom_port, "up{job=\"intruder\"}"), Some(0.0));

    // SIGHUP reads the web configuration again: a new password replaces
    // the old one.
    let hash = bcrypt::hash("rotated", 10).unwrap();
    write_private(
        &dir.path().join("web.yml"),
        &format!(
            "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) }, 0);
    // The endpoint starts again (port 0: on a new port).
    let until = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        let urls: Vec<&str> = log
            .split_whitespace()
            .filter(|w| w.starts_with("https://"))
            .collect();
        if urls.len() >= 2 {
            break urls[urls.len() - 1].to_string();
        }
        assert!(Instant::now() < until, "no restart of the endpoint:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(curl(&url, &crt, Some("prometheus:rotated")), 200);
    assert_eq!(curl(&url, &crt, Some("prometheus:scrape-me")), 401);
    drop(daemon);
}

/// `ksmtuned --check-config` on a configuration naming `web` (written
/// with `mode`): its exit status and standard error.
fn check(dir: &Path, web: &str, mode: u32) -> (i32, String) {
    use std::os::unix::fs::PermissionsExt;
    let w = dir.join("web.yml");
    std::fs::write(&w, web).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(mode)).unwrap();
    let c = dir.join("ksmtuned.conf");
    write_private(
        &c,
        &format!(
            "KSM_METRICS_LISTEN=127.0.0.1:9926\nKSM_METRICS_WEB_CONFIG={}\n",
            w.display()
        ),
    );
    let o = Command::new(ksmtuned())
        .arg("--check-config")
        .arg(&c)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_web_configuration_files_are_refused_with_clear_messages() {
    let dir = private_dir();
    let web = dir.path().join("web.yml").display().to_string();
    let hash = bcrypt::hash("x", 4).unwrap();
    let (crt, key) = if have("openssl") {
        let (c, k) = self_signed(dir.path());
        (Some(c), Some(k))
    } else {
        eprintln!("SKIPPED (in part): openssl is not installed: no check of a good certificate");
        (None, None)
    };
    let cases: Vec<(String, u32, &str)> = vec![
        (
            format!("basic_auth_users:\n  prometheus: {hash}\ntls_server_confg:\n  cert_file: a\n"),
            0o600,
            ":3: unknown field `tls_server_confg`, expected `tls_server_config` or `basic_auth_users`",
        ),
        (
            "basic_auth_users:\n  prometheus: hunter2\n".to_string(),
            0o600,
            ":2: basic_auth_users: prometheus: the password must be a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: /nonexistent/metrics.crt\n  key_file: metrics.key\n"
                .to_string(),
            0o600,
            ":2: cert_file /nonexistent/metrics.crt: ",
        ),
        (
            format!("basic_auth_users:\n  prometheus: {hash}\n"),
            0o644,
            "readable by others",
        ),
        (
            "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n  client_auth_type: RequireAnyClientCert\n".to_string(),
            0o600,
            ":4: tls_server_config.client_auth_type: unknown variant `RequireAnyClientCert`",
        ),
    ];
    for (text, mode, want) in &cases {
        let (status, err) = check(dir.path(), text, *mode);
        eprintln!("{err}");
        assert_eq!(status, 1, "{text}\n{err}");
        assert!(
            err.contains(&format!("error: {web}")) && err.contains(want),
            "for\n{text}\nwant {want:?} in:\n{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
    if let (Some(crt), Some(_)) = (crt, key) {
        // A certificate whose key is another one's.
        let other = private_dir();
        let (_, other_key) = self_signed(other.path());
        let text = format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            crt.display(),
            other_key.display()
        );
        let (status, err) = check(dir.path(), &text, 0o600);
        assert_eq!(status, 1, "{err}");
        assert!(
            err.contains(":3: cert_file") && err.contains("key"),
            "{err}"
        );
        // The key readable by others.
        let (status, err) = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let text = format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                crt.display(),
                other_key.display()
            );
            check(dir.path(), &text, 0o600)
        };
        assert_eq!(status, 1, "{err}");
        assert!(
            err.contains(":3: key_file") && err.contains("readable by others"),
            "{err}"
        );
        // And a good one passes.
        let (status, err) = check(
            dir.path(),
            &format!(
                "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\nbasic_auth_users:\n  prometheus: {hash}\n"
            ),
            0o600,
        );
        assert_eq!(status, 0, "{err}");
    }
}

#[test]
fn a_client_that_does_not_read_its_answers_is_dropped() {
    use ksmtuned::metrics::{Server, ServerOptions};
    let root = ksmtuned::Root::new(fixture_root());
    let timeout = Duration::from_secs(2);
    let server = Server::spawn_with(
        "127.0.0.1:0",
        root,
        None,
        ServerOptions {
            timeout,
            max_requests_per_connection: 1_000_000,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let addr = server.local_addr();
    // Far more answers than the socket buffers hold, none read.
    let n = 5000;
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n))
        .unwrap();
    std::thread::sleep(timeout * 2);
    // It was dropped in the middle: fewer answers than asked for, then
    // the end (or a reset).
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("still open after {} bytes: {e}", got.len()),
        }
    };
    let answers = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    eprintln!("{answers} of {n} answers, then {end}");
    assert!(answers > 0 && answers < n, "{answers} of {n}");
    // Others are served meanwhile and after.
    let (code, _, took) = scrape(addr);
    assert!(
        code == 200 && took < Duration::from_secs(1),
        "{code} {took:?}"
    );
}

/// openssl with `args`, or panic with its message.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn client_certificates_are_required_when_configured() {
    for (cmd, pkg) in [("openssl", "openssl"), ("curl", "curl")] {
        if !have(cmd) {
            eprintln!(
                "SKIPPED: {cmd} is not installed (Debian package {pkg}; scripts/test installs it)"
            );
            return;
        }
    }
    let dir = private_dir();
    let (crt, _key) = self_signed(dir.path());
    // A CA and a client certificate it signs.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=ksmtuned-test-ca",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir.path(), &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=prometheus"];
    csr.extend(ec);
    csr.extend(["-keyout", "client.key", "-out", "client.csr"]);
    openssl(dir.path(), &csr);
    std::fs::write(
        dir.path().join("client.ext"),
        "extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.crt",
        ],
    );
    write_private(
        &dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let (_daemon, url) = start_daemon(
        dir.path(),
        "KSM_METRICS_LISTEN=127.0.0.1:0\nKSM_METRICS_WEB_CONFIG=web.yml\n",
        500,
    );
    let get = |cert: bool| {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(&crt);
        if cert {
            c.arg("--cert")
                .arg(dir.path().join("client.crt"))
                .arg("--key")
                .arg(dir.path().join("client.key"));
        }
        let o = c.arg(&url).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(get(true), "200");
    // Without a certificate the handshake fails: no HTTP answer at all.
    assert_eq!(get(false), "000");
}
