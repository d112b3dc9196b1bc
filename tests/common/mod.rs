//! Helpers shared by the churn, soak and real-kernel ksmtuned tests: child processes that are
//! killed when dropped, probes (`ksmctl probe`), process churn
//! (`ksmctl churn`) and readings of a process's resources.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub const KSMTUNED: &str = env!("CARGO_BIN_EXE_ksmtuned");
pub const KSMCTL: &str = env!("CARGO_BIN_EXE_ksmctl");

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

/// A `ksmctl probe`: PAGES identical pages, named `comm`.
pub struct Probe {
    pub child: Kill,
    pub pid: u32,
}

impl Probe {
    pub fn start(comm: &str, pages: usize, merge: &str, seed: u64) -> Probe {
        let mut child = Command::new(KSMCTL)
            .args(["probe", "--comm", comm, "--merge", merge])
            .arg("--pages")
            .arg(pages.to_string())
            .arg("--seed")
            .arg(seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = ready(&mut BufReader::new(child.stdout.take().unwrap()));
        Probe {
            child: Kill(child),
            pid,
        }
    }
}

/// A `ksmctl churn` running until stopped.
pub struct Churn {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Churn {
    pub fn start(rate: u32, threads: u32) -> Churn {
        let mut child = Command::new(KSMCTL)
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
        assert!(status.success(), "ksmctl churn: {status}: {text}");
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
            _ => panic!("unexpected ksmctl churn output {text:?}"),
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

/// Whether /sys/kernel/mm/ksm can be written here (else say SKIPPED).
pub fn ksm_writable() -> bool {
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .open("/sys/kernel/mm/ksm/run")
        .is_ok();
    if !ok {
        eprintln!("SKIPPED: /sys/kernel/mm/ksm/run is not writable (not root, or no KSM)");
    }
    ok
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
