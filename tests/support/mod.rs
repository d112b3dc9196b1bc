//! What the integration tests share: the binaries, child processes that
//! are killed when dropped, probe processes (`ksm-testkit probe`) and
//! process churn (`ksm-testkit churn`), the real-KSM check that says
//! SKIPPED, taking ksmd over ([`Experiment`], which refuses a host in use),
//! waiting helpers, an HTTP client for the metrics endpoint and readers of
//! the text exposition, and readings of a process's resources.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ksmtuned::bench::experiment;
use ksmtuned::kernel::ksm::{Ksm, KsmState};
use ksmtuned::kernel::proc::{ksm_stat, KsmStat};
use ksmtuned::Root;

pub const KSMTUNED: &str = env!("CARGO_BIN_EXE_ksmtuned");
pub const KSMCTL: &str = env!("CARGO_BIN_EXE_ksmctl");
/// The tests' own processes (`probe`, `churn`): src/bin/ksm-testkit, not
/// shipped.
pub const TESTKIT: &str = env!("CARGO_BIN_EXE_ksm-testkit");

/// The `ksmctl` binary built for the tests.
pub fn ksmctl() -> Command {
    Command::new(KSMCTL)
}

/// The `ksm-testkit` binary built for the tests.
pub fn testkit() -> Command {
    Command::new(TESTKIT)
}

/// The fixture tree of a Linux 6.18 host with guests.
pub fn fixture_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/obs-6.18")
}

/// The real KSM, or `None` (after a loud SKIPPED naming `test`) when it
/// is not writable here.
pub fn real_ksm(test: &str) -> Option<Ksm> {
    let run = Path::new("/sys/kernel/mm/ksm/run");
    match std::fs::OpenOptions::new().write(true).open(run) {
        Ok(_) => Some(Ksm::new(&Root::default())),
        Err(e) => {
            eprintln!(
                "SKIPPED: {test}: {} is not writable here ({e}); \
                 the real-kernel tests need root and KSM",
                run.display()
            );
            None
        }
    }
}

/// The environment variable that lets the tests on the real kernel run on
/// a host where memory is merged already: they may unmerge it (`run=2`) or
/// retune ksmd. `scripts/test` sets it when `CI=true`.
pub const HOST_IN_USE_OK: &str = "KSMTUNED_TEST_HOST_IN_USE_OK";

/// Why a test did not take ksmd over: memory is merged already, not by the
/// test (the guests of a hypervisor in use).
#[derive(Debug)]
pub struct HostInUse {
    pub pages_sharing: u64,
    pub zero_pages: u64,
}

impl std::fmt::Display for HostInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this host has merged memory that is not this test's (pages_sharing {}, \
             ksm_zero_pages {}): the test would unmerge or retune it, a sudden rise in \
             the memory use of the host's guests; set {HOST_IN_USE_OK}=1 to run it anyway",
            self.pages_sharing, self.zero_pages
        )
    }
}

/// A test's exclusive use of ksmd: the library's
/// [`experiment::Experiment`] (the ksmd lock, and every knob put back on
/// drop), begun only on a host with nothing merged unless
/// [`HOST_IN_USE_OK`] is `1`: a test unmerges and retunes, and unmerging a
/// host's guests is a sudden rise in their memory use.
pub struct Experiment(experiment::Experiment);

impl Experiment {
    /// Wait for the ksmd lock and snapshot the knobs; `Err(HostInUse)`
    /// when pages_sharing or ksm_zero_pages is above 0 (before the test
    /// merged anything) and the opt-in is not set. Panics on other errors.
    pub fn begin(ksm: &Ksm) -> Result<Experiment, HostInUse> {
        let lock = experiment::KsmdLock::acquire()
            .unwrap_or_else(|e| panic!("cannot take the ksmd lock: {e}"));
        let snapshot = experiment::Snapshot::take(ksm)
            .unwrap_or_else(|e| panic!("cannot read the KSM settings: {e}"));
        let opted_in = std::env::var(HOST_IN_USE_OK).is_ok_and(|v| v == "1");
        let st = snapshot.state();
        let (sharing, zero) = (
            st.pages_sharing.unwrap_or(0),
            st.ksm_zero_pages.unwrap_or(0).max(0) as u64,
        );
        if !opted_in && (sharing > 0 || zero > 0) {
            // Refused before any write: the lock goes, nothing is restored.
            return Err(HostInUse {
                pages_sharing: sharing,
                zero_pages: zero,
            });
        }
        Ok(Experiment(experiment::Experiment::new(ksm, lock, snapshot)))
    }

    /// [`Experiment::begin`], or `None` after printing
    /// `SKIPPED: <test>: <why>` when the host has merged memory that is
    /// not the test's. The test's name is the thread's (libtest names it so).
    pub fn begin_or_skip(ksm: &Ksm) -> Option<Experiment> {
        match Self::begin(ksm) {
            Ok(e) => Some(e),
            Err(e) => {
                let thread = std::thread::current();
                eprintln!("SKIPPED: {}: {e}", thread.name().unwrap_or("test"));
                None
            }
        }
    }

    /// The knobs as they were.
    pub fn before(&self) -> &KsmState {
        self.0.before()
    }

    /// Restore now (also done on drop).
    pub fn restore(&self) -> ksmtuned::Result<()> {
        self.0.restore()
    }
}

/// Copy a fixture tree (to make a writable copy).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A child process, killed and reaped on drop.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read the `ready PID` line a helper prints when it is set up.
fn ready(out: &mut BufReader<ChildStdout>) -> u32 {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("expected \"ready PID\", got {line:?}"))
}

/// A probe process: a program that prints `ready PID` once its memory is
/// set up and exits when its standard input closes (on drop; killed if it
/// has not exited within 10 s).
pub struct Probe {
    pub pid: u32,
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Probe {
    /// A `ksm-testkit probe`: `pages` identical pages (filled from `seed`),
    /// opted in with `merge` (`madvise`, `prctl` or `none`), named `comm`.
    pub fn start(comm: &str, pages: usize, merge: &str, seed: u64) -> Probe {
        let mut cmd = testkit();
        cmd.args(["probe", "--comm", comm, "--merge", merge])
            .arg("--pages")
            .arg(pages.to_string())
            .arg("--seed")
            .arg(seed.to_string());
        Probe::spawn(cmd)
    }

    /// A `ksm-testkit probe` with these arguments.
    pub fn with_args(args: &[&str]) -> Probe {
        let mut cmd = testkit();
        cmd.arg("probe").args(args);
        Probe::spawn(cmd)
    }

    /// Any probe command (e.g. `ksmctl exec -- ksm-testkit probe ...`).
    pub fn spawn(mut cmd: Command) -> Probe {
        cmd.env_remove("KSM_ROOT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning a probe");
        let stdin = child.stdin.take();
        let pid = ready(&mut BufReader::new(child.stdout.take().unwrap()));
        Probe { pid, stdin, child }
    }

    /// The probe's `/proc/PID/ksm_stat`.
    pub fn stat(&self) -> KsmStat {
        ksm_stat(&Root::default(), self.pid).expect("reading the probe's /proc/PID/ksm_stat")
    }

    /// Kill it now and reap it (a process that vanishes mid-scan).
    pub fn kill(&mut self) {
        self.child.kill().expect("killing the probe");
        self.child.wait().expect("reaping the probe");
    }

    /// Its pages mapped to KSM pages.
    pub fn merging(&self) -> u64 {
        self.stat().merging_pages.expect("ksm_merging_pages line")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `ksm-testkit churn` running until stopped.
pub struct Churn {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Churn {
    pub fn start(rate: u32, threads: u32) -> Churn {
        let mut child = testkit()
            .args(["churn", "--rate", &rate.to_string()])
            .args(["--threads", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        ready(&mut out);
        Churn { child, out }
    }

    /// Stop it; the number of processes started and the rate per second.
    pub fn stop(mut self) -> (u64, f64) {
        drop(self.child.stdin.take());
        let mut text = String::new();
        self.out.read_to_string(&mut text).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "ksm-testkit churn: {status}: {text}");
        // "churned N processes in S s (R/s), F failed to start"
        let words: Vec<&str> = text.split_whitespace().collect();
        let n = words.get(1).and_then(|w| w.parse().ok());
        let rate = words.get(6).and_then(|w| {
            w.trim_start_matches('(')
                .trim_end_matches("/s),")
                .parse()
                .ok()
        });
        match (n, rate) {
            (Some(n), Some(r)) => (n, r),
            _ => panic!("unexpected ksm-testkit churn output {text:?}"),
        }
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The summed VmRSS of `pids` once it stops changing (two readings
/// 200 ms apart agree): a probe that has printed "ready" still faults in
/// the code and buffers of its wait on stdin.
pub fn settled_rss_kib(pids: &[u32]) -> u64 {
    let sum = || pids.iter().map(|&p| vm_rss_kib(p)).sum::<u64>();
    let mut last = sum();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = sum();
        if now == last || Instant::now() > until {
            return now;
        }
        last = now;
    }
}

/// VmRSS of a process, KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    ksmtuned::kernel::proc::parse_status_rss_kib(&s)
}

/// A `kB` field of `/proc/PID/status` (RssAnon, RssFile, VmRSS...), KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Number of open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Poll until `pred` holds, or panic naming `what`.
pub fn wait_for(what: &str, secs: u64, mut pred: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if pred() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// Start ksmtuned with a configuration file written in `dir`, its stderr
/// captured to `dir/stderr` (a file, so that a long run cannot fill a pipe).
pub fn daemon(dir: &Path, conf: &str, args: &[&str]) -> Kill {
    let c = dir.join("ksmtuned.conf");
    std::fs::write(&c, conf).unwrap();
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    Kill(
        Command::new(KSMTUNED)
            .arg("--config")
            .arg(&c)
            .arg("--pid-file")
            .arg(dir.join("ksmtuned.pid"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

/// The daemon's log lines above debug level (the stderr logger prints
/// `level: message`) that are not in `allowed` (prefixes of info lines).
pub fn unexpected_log_lines(stderr: &str, allowed: &[&str]) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("debug: ") && !l.starts_with("trace: "))
        .filter(|l| {
            !l.strip_prefix("info: ")
                .is_some_and(|m| allowed.iter().any(|a| m.starts_with(a)))
        })
        .map(str::to_string)
        .collect()
}

/// Poll `f` until it returns `Some` or the timeout passes.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    /// Status line and header lines.
    pub head: String,
    pub body: String,
}

/// A minimal HTTP/1.0 GET (the servers close the connection after the
/// answer).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    http_raw(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
    )
}

/// Send raw request bytes and read the answer until the server closes.
pub fn http_raw(addr: SocketAddr, request: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status code in {head:?}")))?;
    Ok(Response {
        code,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// The families (`# TYPE` lines) of a text exposition.
pub fn families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The value of an unlabelled series in a text exposition.
pub fn value_of(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Whether `tool` is on PATH; when it is not, says `SKIPPED: test: why`
/// on stderr (the test then returns without checking anything).
pub fn have_tool(test: &str, tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let f = dir.join(tool);
            f.is_file()
                && std::fs::metadata(&f).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
    });
    if !found {
        eprintln!("SKIPPED: {test}: {tool} is not installed ({package}; scripts/test installs it)");
    }
    found
}

/// The identifiers of a PromQL expression: metric and recording-rule names,
/// functions, keywords and label names alike (quoted strings skipped).
pub fn promql_identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let mut in_quote = None;
    while let Some(c) = chars.next() {
        if let Some(q) = in_quote {
            if c == '\\' {
                chars.next();
            } else if c == q {
                in_quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c == '"' || c == '\'' || c == '`' {
            in_quote = Some(c);
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The `ksm_` metric names of an expression (quoted strings skipped).
pub fn metric_names(expr: &str) -> Vec<String> {
    promql_identifiers(expr)
        .into_iter()
        .filter(|w| w.starts_with("ksm_"))
        .collect()
}

/// The names of recording rules (`level:metric:operations`) an expression
/// uses.
pub fn recorded_names(expr: &str) -> Vec<String> {
    promql_identifiers(expr)
        .into_iter()
        .filter(|w| w.contains(':') && w.starts_with(|c: char| c.is_ascii_alphabetic()))
        .collect()
}

/// Everything ksmctl and ksmtuned render: the fixture host with a tuner.
pub fn full_rendering() -> String {
    use ksmtuned::metrics::{collect, render, TunerMetrics, DEFAULT_TOP};
    use std::time::UNIX_EPOCH;
    let tuner = TunerMetrics {
        policy: ksmtuned::config::PolicyKind::Adaptive,
        max_cpu_ratio: Some(0.5),
        state: ksmtuned::policy::tuner::TunerState::Adaptive(
            ksmtuned::policy::adaptive::Mode::Sprint,
        ),
        pages_to_scan: Some(1250),
        sleep_ms: Some(10),
        adjustments: 3,
        retunes: 1,
        reloads: 1,
        errors: 0,
        last_adjustment: Some(UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
        cycles: 40,
        cycles_skipped: 0,
        interval: Some(Duration::from_secs(60)),
        cycle_delay: Some(Duration::from_millis(1)),
        cycle_delay_max: Duration::from_millis(3),
        cycle_duration: Some(Duration::from_millis(2)),
        domain_audit: Some(std::sync::Arc::new(
            ksmtuned::estimate::audit::DomainAudit {
                trust_domains: "guest".into(),
                pairs: vec![ksmtuned::estimate::audit::DomainPair {
                    a: "tenant-a".into(),
                    b: "tenant-b".into(),
                    shared_bytes: 2 << 20,
                }],
                cross_domain_bytes: 2 << 20,
                ksm_bytes: 8 << 20,
                domains: Default::default(),
                process_domains: Default::default(),
                processes_scanned: 4,
                pages_examined: 10_000,
                timestamp_seconds: 1_790_000_000.0,
                duration_seconds: 0.25,
                cpu_seconds: 0.02,
            },
        )),
        refusal: None,
    };
    let sample = collect(&Root::new(fixture_root())).unwrap();
    let report = ksmtuned::report::Report::build(&sample, None, Vec::new());
    render(&report, Some(&tuner), DEFAULT_TOP).unwrap()
}

/// Scrape a node_exporter started with only `collectors` (and the textfile
/// collector reading `textfile_dir`) once, and stop it.
pub fn node_exporter_scrape(textfile_dir: &std::path::Path, collectors: &[&str]) -> String {
    let port = free_port();
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("node_exporter.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!(
            "--collector.textfile.directory={}",
            textfile_dir.display()
        ));
    for c in collectors {
        cmd.arg(format!("--collector.{c}"));
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prometheus-node-exporter (scripts/test installs it)");
    let _guard = Kill(child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let scraped = poll_until(Duration::from_secs(20), || {
        http_get(addr, "/metrics").ok().filter(|r| r.code == 200)
    })
    .unwrap_or_else(|| {
        panic!(
            "node_exporter did not answer on {addr}: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    });
    scraped.body
}

/// contrib/prometheus/ksm-rules.yml, read for its names and expressions.
pub fn rules_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/ksm-rules.yml")
}

/// The rules of contrib/prometheus/ksm-rules.yml: (`record` or `alert`,
/// name, expression). The file is read line by line in the one layout it
/// is written in (`- record:`/`- alert:` then `expr:` on one line or as a
/// `>-` block); anything else in an `expr:` is a test failure, and the
/// count is checked against promtool's.
pub fn rules() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(rules_path()).expect("reading the rules file");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let indent = |l: &str| l.len() - l.trim_start().len();
    while i < lines.len() {
        let t = lines[i].trim_start();
        let kind_name = t
            .strip_prefix("- record: ")
            .map(|n| ("record", n))
            .or_else(|| t.strip_prefix("- alert: ").map(|n| ("alert", n)));
        if let Some((kind, name)) = kind_name {
            let e = lines[i + 1].trim_start();
            let value = e
                .strip_prefix("expr: ")
                .unwrap_or_else(|| panic!("no expr: after {t:?}: {e:?}"));
            let expr = if value == ">-" {
                let body_indent = indent(lines[i + 2]);
                let mut parts = Vec::new();
                let mut j = i + 2;
                while j < lines.len()
                    && indent(lines[j]) == body_indent
                    && !lines[j].trim().is_empty()
                {
                    parts.push(lines[j].trim());
                    j += 1;
                }
                parts.join(" ")
            } else {
                assert!(
                    !value.starts_with(['|', '>', '"', '\'']),
                    "{name}: write the expr plain or as a >- block: {value:?}"
                );
                value.to_string()
            };
            out.push((kind.to_string(), name.trim().to_string(), expr));
        }
        i += 1;
    }
    out
}

/// Live (not zombie) processes running `exe worker ...`.
pub fn leftover_workers(exe: &Path) -> Vec<u32> {
    let root = Root::default();
    ksmtuned::kernel::proc::pids(&root)
        .unwrap()
        .into_iter()
        .filter(|&p| {
            let args = ksmtuned::kernel::proc::cmdline(&root, p).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true);
            !zombie && args.len() > 1 && Path::new(&args[0]) == exe && args[1] == "worker"
        })
        .collect()
}
