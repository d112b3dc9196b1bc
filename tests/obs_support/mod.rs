//! Helpers of the monitoring tests (metrics, ps, top, dashboard).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use ksmtuned::kernel::ksm::Ksm;
use ksmtuned::Root;

/// The `ksmctl` binary built for the tests.
pub fn ksmctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ksmctl"))
}

/// The fixture tree of a Linux 6.18 host with guests.
pub fn fixture_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/obs-6.18")
}

/// The real KSM, or `None` (with a loud SKIPPED) when it is not writable.
pub fn real_ksm(test: &str) -> Option<Ksm> {
    let run = "/sys/kernel/mm/ksm/run";
    let writable = std::fs::OpenOptions::new().write(true).open(run).is_ok();
    if !writable {
        eprintln!("SKIPPED: {test}: {run} is not writable (needs root and a kernel with KSM)");
        return None;
    }
    Some(Ksm::new(&Root::default()))
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

/// Poll `f` until it returns `Some` or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
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

/// A child process killed (and reaped) on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `ksmctl probe` child with `pages` identical pages; it exits when
/// dropped (its standard input closes).
pub struct Probe {
    pub pid: u32,
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Probe {
    pub fn start(pages: usize, comm: &str, seed: u64) -> Probe {
        let mut child = ksmctl()
            .args(["probe", "--pages", &pages.to_string(), "--comm", comm])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting ksmctl probe");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the probe's ready line");
        let pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("probe said {line:?}, expected \"ready PID\""));
        Probe {
            pid,
            stdin: child.stdin.take(),
            child,
        }
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
