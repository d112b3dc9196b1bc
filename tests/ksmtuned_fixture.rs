//! `ksmtuned` against a fixture root: fake /proc and /sys/kernel/mm/ksm,
//! a short interval, and the sysfs writes checked cycle by cycle.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ksmtuned");
const GIB: u64 = 1024 * 1024; // KiB
const TOTAL: u64 = 16 * GIB;
const THRES: u64 = TOTAL * 20 / 100;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        let ksm = f.ksm_dir();
        fs::create_dir_all(&ksm).unwrap();
        for (name, v) in [
            ("run", "0"),
            ("pages_to_scan", "100"),
            ("sleep_millisecs", "20"),
            ("pages_shared", "10"),
            ("pages_sharing", "2560"),
            ("pages_unshared", "0"),
            ("pages_volatile", "0"),
            ("full_scans", "3"),
            ("advisor_mode", "[none] scan-time"),
        ] {
            fs::write(ksm.join(name), format!("{v}\n")).unwrap();
        }
        f.meminfo(TOTAL / 2);
        // Two QEMU guests (5 GiB), a shell, and a process that vanished
        // between listing /proc and reading its status.
        f.process(
            100,
            "qemu-kvm",
            4 * GIB,
            "/usr/bin/qemu-kvm\0-name\0guest=vm1\0",
        );
        f.process(101, "qemu-system-x86", GIB, "qemu-system-x86_64\0");
        f.process(200, "bash", 5000, "bash\0");
        fs::create_dir_all(f.root().join("proc/300")).unwrap();
        fs::write(f.root().join("proc/300/comm"), "qemu:vanished\n").unwrap();
        f
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn ksm_dir(&self) -> PathBuf {
        self.root().join("sys/kernel/mm/ksm")
    }

    /// A KSM file of the fixture. The daemon truncates and rewrites these
    /// plain files (sysfs files are never seen empty): a read that falls
    /// in between sees nothing and is tried again.
    fn ksm(&self, name: &str) -> String {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let v = fs::read_to_string(self.ksm_dir().join(name)).unwrap();
            if !v.trim().is_empty() || Instant::now() > until {
                return v.trim().to_string();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn set_ksm(&self, name: &str, v: &str) {
        fs::write(self.ksm_dir().join(name), v).unwrap();
    }

    fn meminfo(&self, free: u64) {
        fs::create_dir_all(self.root().join("proc")).unwrap();
        let text = format!(
            "MemTotal: {TOTAL} kB\nMemFree: {free} kB\nMemAvailable: {free} kB\n\
             Buffers: 0 kB\nCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
        );
        // Replace atomically: the daemon may be reading.
        let tmp = self.root().join("proc/.meminfo");
        fs::write(&tmp, text).unwrap();
        fs::rename(tmp, self.root().join("proc/meminfo")).unwrap();
    }

    fn process(&self, pid: u32, comm: &str, rss: u64, cmdline: &str) {
        let d = self.root().join(format!("proc/{pid}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        let tmp = d.join(".status");
        fs::write(&tmp, format!("Name:\t{comm}\nVmRSS:\t{rss} kB\n")).unwrap();
        fs::rename(tmp, d.join("status")).unwrap();
        fs::write(d.join("cmdline"), cmdline).unwrap();
    }

    fn config(&self, text: &str) -> PathBuf {
        let p = self.root().join("ksmtuned.conf");
        fs::write(&p, text).unwrap();
        p
    }

    fn log(&self) -> PathBuf {
        self.root().join("ksmtuned.log")
    }

    /// The debug lines without their date stamps.
    fn log_lines(&self) -> Vec<String> {
        fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_once(": ").map(|x| x.1).unwrap_or(l).to_string())
            .collect()
    }

    fn spawn(&self, config: &Path, extra: &[&str]) -> Daemon {
        let child = Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .arg("--config")
            .arg(config)
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Daemon { child }
    }

    fn wait_log(&self, pred: impl Fn(&[String]) -> bool, what: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if pred(&self.log_lines()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; log: {:#?}", self.log_lines());
    }

    fn has(&self, line: &str) -> bool {
        self.log_lines().iter().any(|l| l == line)
    }

    fn count(&self, prefix: &str) -> usize {
        self.log_lines()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM; the exit status and stderr.
    fn stop(mut self) -> (i32, String) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "ksmtuned did not exit within 1 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code().unwrap_or(-1), err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn conf(f: &Fixture, extra: &str) -> PathBuf {
    f.config(&format!(
        "DEBUG=1\nLOGFILE={}\nKSM_MONITOR_INTERVAL=1\n{extra}",
        f.log().display()
    ))
}

#[test]
fn decisions_cycle_by_cycle() {
    let f = Fixture::new();
    let d = f.spawn(&conf(&f, ""), &[]);
    // Cycle 1 at start-up: committed 5 GiB (QEMU only, the vanished one
    // skipped), free 8 GiB: 5 GiB + thres < total and free > thres: stop.
    f.wait_log(
        |l| l.iter().any(|x| x.ends_with("stop ksm")),
        "the first stop",
    );
    let lines = f.log_lines();
    assert_eq!(lines[0], format!("total {TOTAL}"));
    assert_eq!(lines[1], "sleep 10");
    assert_eq!(lines[2], format!("thres {THRES}"));
    assert_eq!(
        lines[3],
        format!("committed {} free {}", 5 * GIB, TOTAL / 2)
    );
    assert_eq!(
        lines[4],
        format!("{} < {TOTAL} and free > {THRES}, stop ksm", 5 * GIB + THRES)
    );
    assert_eq!(f.ksm("run"), "0");
    assert_eq!(f.ksm("pages_to_scan"), "100", "a stop leaves pages_to_scan");

    // Memory pressure: free below the threshold: boost from 0 to 300, then 600.
    f.meminfo(GIB);
    f.wait_log(|l| l.iter().any(|x| x == "KSMCTL start 300 10"), "a boost");
    assert!(f.has(&format!("{} > {TOTAL}, start ksm", 5 * GIB + THRES)));
    assert!(f.has(&format!("{GIB} < {THRES}, boost")));
    assert_eq!(f.ksm("pages_to_scan"), "300");
    assert_eq!(f.ksm("sleep_millisecs"), "10");
    assert_eq!(f.ksm("run"), "1");
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 600 10"),
        "a second boost",
    );
    assert_eq!(f.ksm("pages_to_scan"), "600");

    // Guests grow to 13 GiB, free above the threshold: start, decay by 50.
    f.process(100, "qemu-kvm", 12 * GIB, "qemu-kvm\0");
    f.meminfo(4 * GIB);
    f.wait_log(
        |l| {
            l.iter()
                .any(|x| x == &format!("{} > {THRES}, decay", 4 * GIB))
        },
        "a decay",
    );
    f.wait_log(
        |l| {
            l.iter()
                .filter(|x| x.starts_with("KSMCTL start"))
                .any(|x| x.split(' ').nth(2).and_then(|n| n.parse::<u64>().ok()) < Some(600))
        },
        "decayed pages",
    );
    assert!(f.has(&format!("committed {} free {}", 13 * GIB, 4 * GIB)));

    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    assert!(
        !f.root().join("run/ksmtuned/ksmtuned.pid").exists(),
        "pid file removed"
    );
    assert_eq!(f.ksm("run"), "1", "SIGTERM leaves run as it is");
    assert!(err.contains("exiting"), "{err}");
}

#[test]
fn retune_signal_command_and_libvirt_hook() {
    let f = Fixture::new();
    f.meminfo(GIB);
    let d = f.spawn(
        &conf(&f, "KSM_MONITOR_INTERVAL=3600\nKSM_NPAGES_MAX=100000\n"),
        &[],
    );
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 300 10"),
        "first adjustment",
    );
    let t = Instant::now();
    d.signal(libc::SIGUSR1);
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 600 10"),
        "retune by SIGUSR1",
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // `ksmtuned retune` and `ksmctl retune` find it by its pid file.
    let out = Command::new(BIN)
        .arg("--root")
        .arg(f.root())
        .arg("retune")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 900 10"),
        "ksmtuned retune",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ksmctl"))
        .env("KSM_ROOT", f.root())
        .arg("retune")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 1200 10"),
        "ksmctl retune",
    );
    // The libvirt hook retunes on started and release, not otherwise.
    let hook = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/libvirt/hooks/qemu.d/ksmtuned"
    );
    let run_hook = |op: &str| {
        let out = Command::new(hook)
            .args(["vm1", op, "begin", "-"])
            .env("KSMCTL", env!("CARGO_BIN_EXE_ksmctl"))
            .env("KSM_ROOT", f.root())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{op}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for (op, expect) in [
        ("prepare", 4),
        ("started", 5),
        ("stopped", 5),
        ("release", 6),
    ] {
        let said = run_hook(op);
        assert_eq!(said, "", "hook {op}: nothing to say when the retune worked");
        std::thread::sleep(Duration::from_millis(200));
        f.wait_log(|_| f.count("KSMCTL start") == expect, &format!("hook {op}"));
    }
    let (code, _) = d.stop();
    assert_eq!(code, 0);

    // Without a daemon: a clear message and exit 1; the hook still exits 0.
    let out = Command::new(BIN)
        .arg("--root")
        .arg(f.root())
        .arg("retune")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ksmtuned is running"));
    fs::write(f.root().join("run/ksmtuned.pid"), "4000000\n").unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(f.root())
        .arg("retune")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stale"),
        "{out:?}"
    );
    // The hook exits 0 all the same, and says why nothing was retuned.
    let said = run_hook("started");
    assert!(
        said.contains("guest vm1 started: ksmctl retune failed") && said.contains("stale"),
        "{said}"
    );
    // Without ksmctl (a partial installation): still 0, silently.
    let out = Command::new(hook)
        .args(["vm1", "started", "begin", "-"])
        .env("KSMCTL", f.root().join("no-such-ksmctl"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn sighup_reloads_the_config() {
    let f = Fixture::new();
    f.meminfo(GIB);
    let c = conf(&f, "KSM_MONITOR_INTERVAL=3600\n");
    let d = f.spawn(&c, &[]);
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 300 10"),
        "first adjustment",
    );
    // A bad line: the new file is refused, the old one kept, and it retunes.
    fs::write(&c, fs::read_to_string(&c).unwrap() + "KSM_NPAGES_BOOST=x\n").unwrap();
    d.signal(libc::SIGHUP);
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 600 10"),
        "retune, old config",
    );
    fs::write(
        &c,
        format!(
            "DEBUG=1\nLOGFILE={}\nKSM_MONITOR_INTERVAL=3600\nKSM_NPAGES_BOOST=500\n\
             KSM_SLEEP_MSEC=40\nKSM_NPAGES_MAX=5000\n",
            f.log().display()
        ),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 1100 40"),
        "reloaded config",
    );
    assert!(f.has("sleep 40"));
    // The debug line is written before the setting: wait for the write.
    f.wait_log(|_| f.ksm("sleep_millisecs") == "40", "sleep_millisecs 40");
    let (code, err) = d.stop();
    assert_eq!(code, 0);
    assert!(err.contains("ksmtuned.conf:5: KSM_NPAGES_BOOST"), "{err}");
    assert!(err.contains("configuration not reloaded"), "{err}");
    assert!(err.contains("KSM_NPAGES_BOOST 300 -> 500"), "{err}");
    assert!(err.contains("sleep 10 -> 40"), "{err}");
}

#[test]
fn advisor_dry_run_and_other_tuners() {
    // The kernel's advisor owns pages_to_scan: only run is written.
    let f = Fixture::new();
    f.meminfo(GIB);
    f.set_ksm("advisor_mode", "none [scan-time]");
    let d = f.spawn(&conf(&f, ""), &[]);
    f.wait_log(|_| f.count("KSMCTL start") >= 2, "two adjustments");
    let (_, err) = d.stop();
    assert_eq!(f.ksm("run"), "1");
    assert_eq!(f.ksm("pages_to_scan"), "100");
    assert_eq!(f.ksm("sleep_millisecs"), "20");
    assert_eq!(err.matches("advisor_mode is scan-time").count(), 1, "{err}");

    // --dry-run decides and logs, and writes nothing.
    let f = Fixture::new();
    f.meminfo(GIB);
    let d = f.spawn(&conf(&f, ""), &["--dry-run"]);
    f.wait_log(
        |l| l.iter().any(|x| x == "KSMCTL start 300 10"),
        "dry adjustment",
    );
    assert!(f.root().join("run/ksmtuned.dry-run.pid").exists());
    let (code, err) = d.stop();
    assert_eq!(code, 0);
    assert_eq!(f.ksm("run"), "0");
    assert_eq!(f.ksm("pages_to_scan"), "100");
    assert!(err.contains("dry run: would set"), "{err}");

    // The original bash ksmtuned runs: leave KSM to it, and take over
    // when it is gone.
    let f = Fixture::new();
    f.meminfo(GIB);
    f.process(400, "ksmtuned", 3000, "/bin/bash\0/usr/sbin/ksmtuned\0");
    let d = f.spawn(&conf(&f, ""), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.ksm("run"), "0");
    assert_eq!(f.count("KSMCTL"), 0);
    fs::remove_dir_all(f.root().join("proc/400")).unwrap();
    f.wait_log(
        |l| l.iter().any(|x| x.starts_with("KSMCTL start")),
        "take-over",
    );
    let (_, err) = d.stop();
    assert_eq!(
        err.matches("another KSM tuner is running").count(),
        1,
        "{err}"
    );
    assert!(err.contains("tuning again"), "{err}");
}

fn run_to_end(f: &Fixture, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("--root")
        .arg(f.root())
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn refuses_to_start_when_it_must() {
    let f = Fixture::new();
    // A bad configuration: every problem with file:line, exit 78
    // (EX_CONFIG, which the unit does not restart on).
    let bad = f.config(
        "KSM_MONITOR_INTERVAL=0\nKSM_NPAGES_MIN=-5\nKSM_THRES_COEF=lots\nrm -rf /\n\
         KSM_SLEEP_MSEC=$(id)\nKSM_NPAGE_MAX=1\n",
    );
    let b = bad.to_str().unwrap();
    let (code, text) = run_to_end(&f, &["--config", b]);
    assert_eq!(code, 78, "{text}");
    for line in 1..=5 {
        assert!(
            text.contains(&format!("ksmtuned.conf:{line}: ")),
            "line {line}: {text}"
        );
    }
    assert!(
        text.contains("ksmtuned.conf:6: unknown variable KSM_NPAGE_MAX"),
        "{text}"
    );
    let (code, text) = run_to_end(&f, &["--check-config", b]);
    assert_eq!(code, 1);
    assert!(text.contains("5 error(s)"), "{text}");
    let (code, text) = run_to_end(&f, &["--config", b, "--check-config"]);
    assert_eq!(code, 1, "{text}");
    // MIN > MAX.
    let c = f.config("KSM_NPAGES_MIN=100\nKSM_NPAGES_MAX=50\n");
    let (code, text) = run_to_end(&f, &["--check-config", c.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        text.contains("ksmtuned.conf:2: ") && text.contains("larger than"),
        "{text}"
    );
    // Trust domains: a bad specification is an error at its line; a good
    // one is reported.
    let c = f.config("KSM_POLICY=adaptive\nKSM_TRUST_DOMAINS=cgroup:0\nKSM_CROSS_DOMAIN=deny\n");
    let (code, text) = run_to_end(&f, &["--check-config", c.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("ksmtuned.conf:2: KSM_TRUST_DOMAINS=\"cgroup:0\"")
            && text.contains("ksmtuned.conf:3: KSM_CROSS_DOMAIN=\"deny\"")
            && text.contains("known: allow, warn, refuse")
            && text.contains("2 error(s)"),
        "{text}"
    );
    let c = f.config("KSM_TRUST_DOMAINS=guest\nKSM_CROSS_DOMAIN=warn\n");
    let (code, text) = run_to_end(&f, &["--check-config", c.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("trust domains: guest (cross-domain sharing: warn; audited every 300 s)"),
        "{text}"
    );
    // A missing file named on the command line is an error; a missing
    // default file means defaults.
    let (code, text) = run_to_end(&f, &["--check-config", "/nonexistent/k.conf"]);
    assert_eq!(code, 1);
    assert!(
        text.contains("/nonexistent/k.conf does not exist"),
        "{text}"
    );
    let (code, text) = run_to_end(&f, &["--config", "/nonexistent/k.conf"]);
    assert_eq!(code, 78, "{text}");
    let (code, text) = run_to_end(&f, &["--check-config"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("defaults apply"), "{text}");
    // The shipped example is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/ksmtuned.conf");
    let (code, text) = run_to_end(&f, &["--check-config", example]);
    assert_eq!(code, 0, "{text}");
    // Usage errors exit 2.
    let (code, _) = run_to_end(&f, &["--policy", "fastest"]);
    assert_eq!(code, 2);

    // A second daemon on the same pid file.
    let good = conf(&f, "KSM_MONITOR_INTERVAL=3600\n");
    let d = f.spawn(&good, &[]);
    f.wait_log(
        |l| l.iter().any(|x| x.starts_with("committed")),
        "first daemon",
    );
    let (code, text) = run_to_end(&f, &["--config", good.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        text.contains("another ksmtuned is already running"),
        "{text}"
    );
    assert_eq!(d.stop().0, 0);

    // A masked unit: say so and exit 0 without touching KSM.
    let m = f.root().join("etc/systemd/system");
    fs::create_dir_all(&m).unwrap();
    std::os::unix::fs::symlink("/dev/null", m.join("ksm.service")).unwrap();
    let (code, text) = run_to_end(&f, &["--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("is masked"), "{text}");

    // No KSM in this kernel: one clear line, exit 1.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("KSM is not supported"), "{err}");
}

/// GET /metrics from the daemon's endpoint (read to the end: the server
/// keeps HTTP/1.1 connections alive unless asked to close).
fn scrape(addr: &str) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn faults_are_survived_logged_once_and_cleared() {
    let f = Fixture::new();
    f.meminfo(GIB);
    // The metrics port is taken when the daemon starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // LOGFILE is a directory: it cannot be appended to.
    let logdir = f.root().join("logdir");
    fs::create_dir_all(&logdir).unwrap();
    let c = f.config(&format!(
        "DEBUG=1\nLOGFILE={}\nKSM_MONITOR_INTERVAL=1\nKSM_METRICS_LISTEN={addr}\n\
         KSM_NPAGES_MAX=100000\n",
        logdir.display()
    ));
    let d = f.spawn(&c, &[]);
    // The daemon truncates, then writes: retry a read that saw it between.
    let pages = || loop {
        if let Ok(n) = f.ksm("pages_to_scan").parse::<u64>() {
            break n;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wait = |what: &str, pred: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(10);
        while !pred() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("a first adjustment", &|| pages() >= 300);
    // A refused write: sleep_millisecs disappears (the kernel lacks it).
    fs::remove_file(f.ksm_dir().join("sleep_millisecs")).unwrap();
    let p = pages();
    wait("three more cycles", &|| pages() >= p + 900);
    // /proc/meminfo unreadable for a while: cycles are skipped.
    fs::rename(f.root().join("proc/meminfo"), f.root().join("proc/mi")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let p = pages();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(pages(), p, "no adjustment without meminfo");
    // Everything mended: tuning goes on, the port is free.
    fs::rename(f.root().join("proc/mi"), f.root().join("proc/meminfo")).unwrap();
    fs::write(f.ksm_dir().join("sleep_millisecs"), "20\n").unwrap();
    drop(taken);
    fs::remove_dir(&logdir).unwrap();
    wait("tuning again", &|| pages() > p + 300);
    // The fixture's files are plain files that the daemon truncates and
    // rewrites every cycle (sysfs files are never seen empty): a scrape
    // that read one in between is answered 500, so wait for a whole one.
    let ok = || scrape(&addr).filter(|t| t.starts_with("HTTP/1.1 200"));
    wait("the metrics endpoint", &|| ok().is_some());
    let text = ok().unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        metric(&text, "ksm_tuner_errors_total").unwrap() >= 5.0,
        "{text}"
    );
    assert!(
        metric(&text, "ksm_tuner_adjustments_total").unwrap() >= 5.0,
        "{text}"
    );
    assert_eq!(metric(&text, "ksm_pages_sharing"), Some(2560.0), "{text}");
    // The classic policy has no CPU budget to export.
    assert_eq!(metric(&text, "ksm_tuner_max_cpu_ratio"), None, "{text}");
    assert_eq!(
        metric(&text, "ksm_tuner_pages_to_scan"),
        Some(pages() as f64),
        "{text}"
    );
    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    // Each distinct fault: logged once when it started, once when it cleared.
    for (fault, cleared) in [
        (
            "has no sleep_millisecs",
            "writing sleep_millisecs works again",
        ),
        (
            "cannot adjust KSM this cycle",
            "reading the system works again",
        ),
        ("cannot listen on", "the metrics endpoint works again"),
        ("cannot append to LOGFILE", "LOGFILE works again"),
    ] {
        let n = err
            .lines()
            .filter(|l| l.contains(fault) && l.starts_with("error"))
            .count();
        assert_eq!(n, 1, "{fault:?} logged {n} times:\n{err}");
        assert_eq!(err.matches(cleared).count(), 1, "{cleared:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn interval_ms_overrides_the_monitor_interval() {
    let f = Fixture::new();
    // KSM_MONITOR_INTERVAL=1 in the file; --interval-ms 50 wins.
    let d = f.spawn(&conf(&f, ""), &["--interval-ms", "50"]);
    let start = Instant::now();
    f.wait_log(|_| f.count("committed ") >= 10, "ten cycles");
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "ten cycles at 50 ms took {:?}",
        start.elapsed()
    );
    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("interval 50 ms"), "{err}");
    let (code, err) = run_to_end(&f, &["--interval-ms", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn refuses_a_config_others_could_write() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let c = conf(&f, "");
    fs::set_permissions(&c, fs::Permissions::from_mode(0o666)).unwrap();
    let c = c.to_str().unwrap();
    let (code, err) = run_to_end(&f, &["--config", c, "--dry-run"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!(
            "{c}: refusing to use this configuration file (owner uid"
        )) && err.contains("mode 0666")
            && err.contains("--insecure-config"),
        "{err}"
    );
    let (code, err) = run_to_end(&f, &["--check-config", c]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mode 0666"), "{err}");
    // --insecure-config: it starts, and says why it should not have.
    let d = f.spawn(Path::new(c), &["--insecure-config", "--dry-run"]);
    f.wait_log(|l| l.iter().any(|x| x.starts_with("committed ")), "a cycle");
    let (code, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warn: ") && err.contains("read anyway because of --insecure-config"),
        "{err}"
    );
}
