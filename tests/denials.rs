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
    // dpkg's database (flavour detection) and systemd's unit directory (the
    // masked-unit check) refused too: read as "not Proxmox VE" and "not
    // masked", which is right (systemd starts no masked unit).
    for (p, mode) in [
        ("var/lib/dpkg/status", 0o000),
        ("etc/systemd/system", 0o000),
    ] {
        let p = t.path(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if p.extension().is_none() && p.ends_with("system") {
            fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::symlink("/dev/null", p.join("ksm.service")).unwrap();
        } else {
            fs::write(&p, "Package: pve-manager\nStatus: install ok installed\n").unwrap();
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
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
    assert!(
        err.contains("flavour rhel (auto: not a Proxmox VE host (")
            && err.contains("var/lib/dpkg/status unreadable: Permission denied)"),
        "{err}"
    );

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
    // Three adjustments (start and two retunes), each logging its figures
    // (the retune is logged before its cycle writes them: wait for them).
    wait_for("the second retune's adjustment", 10, || {
        t.log().matches("committed ").count() >= 3
    });
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
    // /proc/meminfo unreadable; /sys/kernel/mm not searchable (KSM's
    // directory cannot be looked at: refused, not "no KSM").
    for (refused, named) in [
        ("proc/meminfo", "proc/meminfo"),
        ("sys/kernel/mm", "sys/kernel/mm/ksm"),
    ] {
        let t = Tree::new();
        fs::set_permissions(t.path(refused), fs::Permissions::from_mode(0o000)).unwrap();
        let mut d = t.daemon(true);
        let status = support::poll_until(Duration::from_secs(10), || d.0.try_wait().unwrap())
            .expect("ksmtuned did not exit");
        let err = t.stderr();
        assert_eq!(status.code(), Some(ksmtuned::daemon::EXIT_NOPERM), "{err}");
        assert!(
            err.contains(&t.path(named).display().to_string())
                && err.contains("Permission denied")
                && err.contains("does not restart"),
            "{err}"
        );
        fs::set_permissions(t.path(refused), fs::Permissions::from_mode(0o755)).unwrap();
    }
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

/// Make `socket(AF_NETLINK, ...)` fail with EACCES in the child, as
/// SELinux does when `ksmtuned_t` lacks `netlink_connector_socket create`
/// (with `accept`: also `accept4`, as when it lacks `tcp_socket accept`):
/// a seccomp filter set up before exec (and kept across it).
fn deny_in_child(cmd: &mut Command, accept: bool) {
    use std::os::unix::process::CommandExt;
    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn jeq(k: u32, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf,
            k,
        }
    }
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let eacces = stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::EACCES as u32,
    );
    let allow = stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW);
    // accept4 -> EACCES (or, without `accept`, a number no call has).
    let accept4 = if accept {
        libc::SYS_accept4 as u32
    } else {
        u32::MAX
    };
    // seccomp_data: nr at 0, args[0] at 16 (its low half, little-endian).
    let prog = [
        stmt(load, 0),
        jeq(accept4, 1),
        eacces,
        jeq(libc::SYS_socket as u32, 3),
        stmt(load, 16),
        jeq(libc::AF_NETLINK as u32, 1),
        eacces,
        allow,
    ];
    // SAFETY: between fork and exec only async-signal-safe calls (two
    // prctl) run; `prog` lives in the parent's copied memory until exec.
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A free TCP port below net.ipv4.ip_unprivileged_port_start on
/// 127.0.0.1, which a process without CAP_NET_BIND_SERVICE is refused
/// (EACCES, the errno of an SELinux name_bind denial); `None` if there is
/// none.
fn privileged_free_port() -> Option<u16> {
    let start: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (start.min(1024).saturating_sub(200)..start.min(1024))
        .rev()
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// The daemon confined the way RHEL's stock ksmtuned_t confines it: the
/// process-event socket refused, the metrics port refused, another user's
/// ksm_stat unreadable. Each is said once, with what to do, and the
/// daemon goes on deciding every cycle.
#[test]
fn denied_netlink_metrics_port_and_ksm_stat_each_say_so_once_and_tuning_goes_on() {
    let test = "denied_netlink_metrics_port_and_ksm_stat";
    if !can_refuse(test) {
        return;
    }
    let Some(port) = privileged_free_port() else {
        eprintln!("SKIPPED: {test}: no free port below ip_unprivileged_port_start");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Another user's process with memory opted in (madvise).
    let mut probe_cmd = Command::new("setpriv");
    probe_cmd
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(support::TESTKIT)
        .args(["probe", "--comm", "denied-probe", "--merge", "madvise"])
        .args(["--pages", "16", "--seed", "3"]);
    let probe = support::Probe::spawn(probe_cmd);

    let conf = dir.path().join("ksmtuned.conf");
    fs::write(&conf, format!("KSM_METRICS_LISTEN=127.0.0.1:{port}\n")).unwrap();
    let stderr = dir.path().join("stderr");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set=-all", "--inh-caps=-all", "--"])
        .arg(KSMTUNED)
        .args([
            "--dry-run",
            "--policy",
            "adaptive",
            "--interval-ms",
            "100",
            "-v",
        ])
        .arg("--config")
        .arg(&conf)
        .arg("--pid-file")
        .arg(dir.path().join("ksmtuned.pid"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap());
    deny_in_child(&mut cmd, false);
    let mut d = Kill(cmd.spawn().unwrap());
    let read = || fs::read_to_string(&stderr).unwrap_or_default();
    let cycles = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("debug: adaptive "))
            .count()
    };
    wait_for("the three refusals and 5 cycles", 20, || {
        let t = read();
        t.contains("process events are not available")
            && t.contains("for metrics")
            && t.contains("ksm_stat of")
            && cycles(&t) >= 5
    });
    let before = cycles(&read());
    std::thread::sleep(Duration::from_millis(1000));
    let err = read();
    assert!(d.0.try_wait().unwrap().is_none(), "ksmtuned exited: {err}");
    assert!(cycles(&err) >= before + 3, "no cycles since: {err}");
    let once = |what: &str| -> String {
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(what)).collect();
        assert_eq!(lines.len(), 1, "{what}: {err}");
        lines[0].to_string()
    };
    let events = once("process events are not available");
    assert!(
        events.contains("Permission denied")
            && events.contains("security policy")
            && events.contains("netlink_connector_socket")
            && !events.contains("CAP_NET_ADMIN"),
        "{events}"
    );
    let metrics = once("for metrics");
    assert!(
        metrics.contains(&format!("127.0.0.1:{port}"))
            && metrics.contains("Permission denied")
            && metrics.contains(&format!(
                "semanage port -a -t ksmtuned_metrics_port_t -p tcp {port}"
            ))
            && metrics.contains("tuning goes on")
            // Not tried every cycle: each try is an audit record.
            && metrics.contains("tried again on a reload or in 10 minutes"),
        "{metrics}"
    );
    let stat = once("ksm_stat of");
    assert!(
        stat.starts_with("warn: ")
            && stat.contains(&format!("{} (denied-probe)", probe.pid))
            && stat.contains("permission denied")
            && stat.contains("dac_read_search"),
        "{stat}"
    );
    eprintln!("the daemon said:\n{events}\n{metrics}\n{stat}");
}

/// `tcp_socket accept` refused (the listener bound, every connection
/// refused when the daemon takes it): one warning with the SELinux hint,
/// not one per scrape; tuning goes on.
#[test]
fn a_refused_accept_is_said_once() {
    let test = "a_refused_accept_is_said_once";
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root (the daemon's --dry-run on this host)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let conf = dir.path().join("ksmtuned.conf");
    fs::write(&conf, format!("KSM_METRICS_LISTEN=127.0.0.1:{port}\n")).unwrap();
    let stderr = dir.path().join("stderr");
    let mut cmd = Command::new(KSMTUNED);
    cmd.args([
        "--dry-run",
        "--policy",
        "adaptive",
        "--interval-ms",
        "100",
        "-v",
    ])
    .arg("--config")
    .arg(&conf)
    .arg("--pid-file")
    .arg(dir.path().join("ksmtuned.pid"))
    .env_remove("NOTIFY_SOCKET")
    .env_remove("RUST_LOG")
    .stdout(Stdio::null())
    .stderr(fs::File::create(&stderr).unwrap());
    deny_in_child(&mut cmd, true);
    let mut d = Kill(cmd.spawn().unwrap());
    let read = || fs::read_to_string(&stderr).unwrap_or_default();
    wait_for("the listener", 10, || read().contains("serving metrics on"));
    // Three scrapes; the kernel completes each connection, the daemon's
    // accept is refused.
    let conns: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    wait_for("the refusal", 10, || {
        read().contains("accepting a connection failed")
    });
    std::thread::sleep(Duration::from_millis(700));
    let err = read();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("accepting a connection failed"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("warn: ")
            && lines[0].contains("Permission denied")
            && lines[0].contains("tcp_socket accept"),
        "{}",
        lines[0]
    );
    let cycles = err
        .lines()
        .filter(|l| l.starts_with("debug: adaptive "))
        .count();
    assert!(cycles >= 5, "{err}");
    assert!(d.0.try_wait().unwrap().is_none(), "{err}");
    drop(conns);
}
