//! What a new user meets first: `ksmctl status` lists a dry-run daemon as
//! such, and `--check-config` names the file it checked.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod support;

#[test]
fn status_lists_a_dry_run_daemon_as_such() {
    if !std::path::Path::new("/sys/kernel/mm/ksm/run").exists() {
        eprintln!("SKIPPED: status_lists_a_dry_run_daemon_as_such: no KSM in this kernel");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ksmtuned.conf");
    std::fs::write(&conf, "KSM_MONITOR_INTERVAL=3600\n").unwrap();
    let pid_file = dir.path().join("dry.pid");
    let mut d = Command::new(env!("CARGO_BIN_EXE_ksmtuned"))
        .arg("--dry-run")
        .arg("--config")
        .arg(&conf)
        .arg("--pid-file")
        .arg(&pid_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = d.id();
    let mut err = BufReader::new(d.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the dry-run daemon exited: {:?}", d.wait());
        }
        if line.contains(" started: policy") {
            break;
        }
    }
    let json = Command::new(env!("CARGO_BIN_EXE_ksmctl"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let text = Command::new(env!("CARGO_BIN_EXE_ksmctl"))
        .arg("status")
        .output()
        .unwrap();
    // SAFETY: kill(2) on the child we started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = d.wait();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let tuners = v["tuners"].as_array().unwrap();
    assert!(
        tuners
            .iter()
            .any(|t| t["pid"] == pid && t["dry_run"] == true),
        "{tuners:?}"
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("ksmtuned (pid {pid}, dry run: writes nothing)")),
        "{text}"
    );
}

#[test]
fn check_config_names_the_file_it_checked() {
    // A configuration in a directory others may write: refused, and the
    // summary names this file, not /etc/ksmtuned.conf.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("open");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
    let conf = sub.join("k.conf");
    std::fs::write(&conf, "KSM_NPAGES_MAX=2000\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ksmtuned"))
        .arg("--check-config")
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: 1 error(s)", conf.display())),
        "{err}"
    );
    assert!(!err.contains("/etc/ksmtuned.conf"), "{err}");
}

#[test]
fn strict_makes_warnings_errors_and_a_bad_configuration_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("k.conf");
    std::fs::write(&conf, "KSM_NPAGE_MAX=2000\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ksmtuned"))
            .args(args)
            .arg("--root")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/linux-6.18"
            ))
            .arg("--pid-file")
            .arg(dir.path().join("pid"))
            .output()
            .unwrap()
    };
    let c = conf.to_str().unwrap();
    // --check-config: a warning passes, --strict fails.
    let out = run(&["--check-config", c]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["--strict", "--check-config", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: ") && err.contains("did you mean KSM_NPAGES_MAX?"),
        "{err}"
    );
    // The daemon with --strict does not start: EX_CONFIG.
    let out = run(&["--strict", "--dry-run", "--config", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("--check-config --strict"), "{err}");
}

#[test]
fn experiments_refuse_a_host_with_merged_memory() {
    // obs-6.18 is a host with 250,000 pages sharing: not the test's. (The
    // check comes before any write, so the fixture is not touched.)
    use ksmtuned::kernel::ksm::Ksm;
    use support::{Experiment, HOST_IN_USE_OK};
    if std::env::var(HOST_IN_USE_OK).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: experiments_refuse_a_host_with_merged_memory: the opt-in is set");
        return;
    }
    let root = ksmtuned::Root::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/obs-6.18"
    ));
    let ksm = Ksm::new(&root);
    match Experiment::begin(&ksm) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("pages_sharing 250000") && m.contains("KSMTUNED_TEST_HOST_IN_USE_OK=1"),
                "{m}"
            );
        }
        Ok(_) => panic!("an experiment began on a host with merged memory"),
    }
    assert!(Experiment::begin_or_skip(&ksm).is_none());
}
