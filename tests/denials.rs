//! The daemon under refusals: what an SELinux policy (or a sandbox) denies
//! it must survive with one clear line each, and never exit in a way that
//! makes systemd restart it in a loop (issue 30).
//!
//! The refusals are real, made the way the kernel makes them: ksmtuned
//! runs as root without any capability (`setpriv --bounding-set=-all`), so
//! that files and directories of another owner refuse it with EACCES as a
//! denial does, or a command runs as `nobody`, whose signal to root's
//! daemon the kernel refuses (EPERM).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{copy_tree, wait_for, Kill, KSMCTL, KSMTUNED};

const NOBODY: u32 = 65534;

/// Whether this test can make refusals: root (to drop capabilities and
/// change owners) with setpriv(1). Says SKIPPED otherwise.
fn can_refuse(test: &str) -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root to run ksmtuned without capabilities");
        return false;
    }
    support::have_tool(test, "setpriv", "util-linux")
}

/// A writable Linux 6.18 fixture root (traversable by everyone, as / is),
/// without the fixture's pid file, and a configuration whose DEBUG lines
/// go to `dir/log`.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux-6.18");
        copy_tree(&fixture, dir.path());
        fs::remove_dir_all(dir.path().join("run/ksmtuned")).unwrap();
        let t = Tree { dir };
        fs::write(
            t.conf(),
            format!(
                "KSM_MONITOR_INTERVAL=3600\nDEBUG=1\nLOGFILE={}\n",
                t.path("log").display()
            ),
        )
        .unwrap();
        t
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn conf(&self) -> PathBuf {
        self.path("ksmtuned.conf")
    }

    /// ksmtuned on this root, run as root without capabilities when
    /// `capless`; standard error to `dir/stderr`.
    fn daemon(&self, capless: bool) -> Kill {
        let mut cmd = if capless {
            let mut c = Command::new("setpriv");
            c.args(["--bounding-set=-all", "--inh-caps=-all", "--"])
                .arg(KSMTUNED);
            c
        } else {
            Command::new(KSMTUNED)
        };
        cmd.arg("--root")
            .arg(self.root())
            .arg("--config")
            .arg(self.conf())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.path("stderr")).unwrap());
        Kill(cmd.spawn().unwrap())
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Make the fixture's /proc list `pid` as a ksmtuned daemon, as the
    /// real /proc lists the real one.
    fn list_as_ksmtuned(&self, pid: u32) {
        let d = self.path(&format!("proc/{pid}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("comm"), "ksmtuned\n").unwrap();
        fs::write(d.join("cmdline"), "/usr/sbin/ksmtuned\0").unwrap();
    }

    fn retune(&self, cmd: &mut Command) -> Output {
        cmd.arg("--root")
            .arg(self.root())
            .arg("retune")
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The pid file refused (the directory belongs to another user, as a
/// /run the policy does not let ksmtuned_t write): one warning naming the
/// file and the SELinux hint, the daemon tunes on, and both retune
/// commands find it by its process name instead.
#[test]
fn a_refused_pid_file_is_not_fatal_and_retune_finds_the_daemon_by_name() {
    let test = "a_refused_pid_file_is_not_fatal";
    if !can_refuse(test) {
        return;
    }
    let t = Tree::new();
    std::os::unix::fs::chown(t.path("run"), Some(NOBODY), Some(NOBODY)).unwrap();
    let mut d = t.daemon(true);
    wait_for("the first adjustment", 10, || {
        t.log().contains("committed ")
    });
    let err = t.stderr();
    let pid_file = t.path("run/ksmtuned/ksmtuned.pid");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot create the pid file"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    let line = lines[0];
    assert!(line.starts_with("warn: "), "{line}");
    assert!(
        line.contains(&t.path("run/ksmtuned").display().to_string()),
        "{line}"
    );
    assert!(line.contains("Permission denied"), "{line}");
    assert!(
        line.contains("SELinux") && line.contains("process name"),
        "{line}"
    );
    assert!(!pid_file.exists());
    assert!(d.0.try_wait().unwrap().is_none(), "ksmtuned exited: {err}");

    // Without the file: found by name, for ksmtuned retune and ksmctl retune.
    t.list_as_ksmtuned(d.0.id());
    let out = t.retune(&mut Command::new(KSMTUNED));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("found by its process name"),
        "{}",
        text(&out)
    );
    wait_for("the retune", 10, || t.stderr().contains("retune requested"));
    let out = Command::new(KSMCTL)
        .env("KSM_ROOT", t.root())
        .arg("retune")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    wait_for("the second retune", 10, || {
        t.stderr().matches("retune requested").count() == 2
    });
    // Still once, still running, still tuning.
    let err = t.stderr();
    assert_eq!(
        err.matches("cannot create the pid file").count(),
        1,
        "{err}"
    );
    assert!(d.0.try_wait().unwrap().is_none(), "ksmtuned exited: {err}");
    // Three adjustments (start and two retunes), each logging its figures.
    assert_eq!(t.log().matches("committed ").count(), 3, "{}", t.log());
}

/// `ksmtuned retune` whose signal the kernel refuses says that the signal
/// was refused, by whom it may have been, and exits 1; it does not blame
/// the pid file.
#[test]
fn a_refused_signal_says_so() {
    let test = "a_refused_signal_says_so";
    if !can_refuse(test) {
        return;
    }
    let t = Tree::new();
    let mut d = t.daemon(false);
    let pid_file = t.path("run/ksmtuned/ksmtuned.pid");
    wait_for("the pid file", 10, || {
        fs::read_to_string(&pid_file).is_ok_and(|s| s.trim() == d.0.id().to_string())
    });
    let mut as_nobody = Command::new("setpriv");
    as_nobody
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(KSMTUNED);
    let out = t.retune(&mut as_nobody);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("ksmtuned (pid {}", d.0.id()))
            && said.contains("refused the signal SIGUSR1")
            && said.contains("Operation not permitted")
            && said.contains("run this as root"),
        "{said}"
    );
    assert!(!said.contains("ksmtuned.pid: "), "{said}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!t.stderr().contains("retune requested"), "{}", t.stderr());
    assert!(d.0.try_wait().unwrap().is_none());
}

/// What ksmtuned cannot run without (here /proc/meminfo) refused: it
/// exits 77 (EX_NOPERM), which the unit's RestartPreventExitStatus= lists
/// beside 78, so systemd does not restart it every 5 s.
#[test]
fn a_refusal_it_cannot_run_without_exits_77_which_the_unit_does_not_restart() {
    let test = "a_refusal_it_cannot_run_without_exits_77";
    if !can_refuse(test) {
        return;
    }
    let t = Tree::new();
    fs::set_permissions(t.path("proc/meminfo"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut d = t.daemon(true);
    let status = support::poll_until(Duration::from_secs(10), || d.0.try_wait().unwrap())
        .expect("ksmtuned did not exit");
    let err = t.stderr();
    assert_eq!(status.code(), Some(ksmtuned::daemon::EXIT_NOPERM), "{err}");
    assert!(
        err.contains(&t.path("proc/meminfo").display().to_string())
            && err.contains("Permission denied")
            && err.contains("does not restart"),
        "{err}"
    );
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/units/ksmtuned.service"
    ))
    .unwrap();
    let prevent: Vec<i32> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace().map(|n| n.parse::<i32>().unwrap()))
        .collect();
    for code in [ksmtuned::daemon::EXIT_NOPERM, ksmtuned::daemon::EXIT_CONFIG] {
        assert!(prevent.contains(&code), "{code} not in {prevent:?}");
    }
}
