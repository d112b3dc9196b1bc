//! Proxmox VE: guests named by VMID and name in `ksmctl ps` (JSON, text,
//! metrics) over a fixture tree and against real processes started as
//! `/usr/bin/kvm -id 101 -name web ...` (renamed probes); and the classic
//! policy's Proxmox flavour over the fixture (committed = the PSS of the
//! processes named kvm, KSM_SLEEP_MSEC 100, detected from /etc/pve).

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{Probe, KSMCTL, TESTKIT};
const KSMTUNED: &str = env!("CARGO_BIN_EXE_ksmtuned");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pve-6.18")
}

fn ksmctl(root: Option<&Path>, args: &[&str]) -> String {
    let mut c = Command::new(KSMCTL);
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    let out = c.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ksmctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn by_pid(v: &Value, pid: u64) -> &Value {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not listed: {v:#}"))
}

#[test]
fn ps_names_proxmox_guests_and_says_why_not() {
    let root = fixture();
    let v: Value = serde_json::from_str(&ksmctl(Some(&root), &["ps", "--json"])).unwrap();
    // Every guest, merged or not; init (nothing merged) is not listed.
    let pids: Vec<u64> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, [3101, 3102, 3103]);
    let web = by_pid(&v, 3101);
    assert_eq!(
        (&web["comm"], &web["guest"], &web["vmid"], &web["qemu"]),
        (
            &Value::from("kvm"),
            &Value::from("web"),
            &Value::from(101),
            &Value::from(true)
        )
    );
    assert_eq!(web["not_mergeable"], Value::Null);
    assert_eq!(web["merging_pages"], 150000);
    let db = by_pid(&v, 3102);
    assert_eq!(
        (&db["guest"], &db["vmid"]),
        (&Value::from("db"), &Value::from(102))
    );
    assert_eq!(db["not_mergeable"], "mem-merge=off");
    assert_eq!(by_pid(&v, 3103)["not_mergeable"], "nothing opted in");

    let text = ksmctl(Some(&root), &["ps"]);
    let line = |pid: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(pid))
            .unwrap_or_else(|| panic!("{pid} not in {text}"))
    };
    assert!(line("3101").contains("101 (web)") && line("3101").ends_with("madvise"));
    assert!(line("3102").contains("102 (db)") && line("3102").ends_with("no: mem-merge=off"));
    assert!(line("3103").ends_with("no: nothing opted in"), "{text}");

    let m = ksmctl(Some(&root), &["metrics"]);
    for want in [
        r#"ksm_guest_info{comm="kvm",guest="db",not_mergeable="mem-merge=off",pid="3102",vmid="102"} 1"#,
        r#"ksm_guest_info{comm="kvm",guest="web",not_mergeable="",pid="3101",vmid="101"} 1"#,
        r#"ksm_process_merging_pages{comm="kvm",guest="101 (web)",pid="3101"} 150000"#,
    ] {
        assert!(m.contains(want), "{want} not in\n{m}");
    }
}

/// The fixture with a /proc/meminfo and a configuration, in a temp dir.
fn daemon_tree(conf: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture().join("."))
        .arg(t.path())
        .status()
        .unwrap();
    assert!(st.success());
    fs::create_dir_all(t.path().join("etc/pve")).unwrap();
    // 32 GiB, 10 GiB free.
    fs::write(
        t.path().join("proc/meminfo"),
        "MemTotal: 33554432 kB\nMemFree: 10485760 kB\nMemAvailable: 10485760 kB\n\
         Buffers: 0 kB\nCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
    )
    .unwrap();
    fs::write(t.path().join("etc/ksmtuned.conf"), conf).unwrap();
    t
}

/// Run the classic daemon (dry run) over the tree until its first
/// adjustment is logged; return the debug lines without their dates.
fn first_adjustment(tree: &Path) -> (Vec<String>, String) {
    let log = tree.join("ksmtuned.log");
    let mut child = Command::new(KSMTUNED)
        .arg("--root")
        .arg(tree)
        .args(["--dry-run", "--policy", "classic", "--insecure-config"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains(", start ksm") || text.contains(", stop ksm") {
            break text;
        }
        assert!(Instant::now() < end, "no adjustment logged: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let lines = lines
        .lines()
        .map(|l| l.split_once(": ").expect("<date>: text").1.to_string())
        .collect();
    (lines, stderr)
}

#[test]
fn classic_counts_the_pss_of_kvm_processes_on_proxmox() {
    let conf = |extra: &str| format!("DEBUG=1\nLOGFILE=ksmtuned.log\n{extra}");
    // Auto: /etc/pve exists.
    let tree = daemon_tree("");
    let log = tree.path().join("ksmtuned.log");
    fs::write(
        tree.path().join("etc/ksmtuned.conf"),
        conf(&format!("LOGFILE={}\n", log.display())),
    )
    .unwrap();
    let (lines, stderr) = first_adjustment(tree.path());
    // sleep = 100 * 16 GiB / 32 GiB = 50; thres = 20% of 32 GiB.
    // committed = 4100000 + 8250001 + 299999 (PSS, not RSS 12800000).
    let total = 33554432u64;
    let thres = total / 5;
    let committed = 4100000 + 8250001 + 299999;
    assert_eq!(
        lines,
        [
            format!("total {total}"),
            "sleep 50".to_string(),
            format!("thres {thres}"),
            format!("committed {committed} free 10485760"),
            format!(
                "{} < {total} and free > {thres}, stop ksm",
                committed + thres
            ),
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("flavour proxmox (auto: ") && stderr.contains("/etc/pve exists"),
        "{stderr}"
    );

    // KSM_FLAVOUR=rhel on the same host: processes named kvm are not QEMU
    // by the RHEL pattern, and sleep is 10 * 16 / 32 -> 10.
    let tree = daemon_tree("");
    let log = tree.path().join("ksmtuned.log");
    fs::write(
        tree.path().join("etc/ksmtuned.conf"),
        conf(&format!("LOGFILE={}\nKSM_FLAVOUR=rhel\n", log.display())),
    )
    .unwrap();
    let (lines, stderr) = first_adjustment(tree.path());
    assert_eq!(lines[1], "sleep 10");
    assert_eq!(lines[3], "committed 0 free 10485760");
    assert!(
        stderr.contains("flavour rhel (KSM_FLAVOUR=rhel)"),
        "{stderr}"
    );
}

/// A probe started as `/usr/bin/kvm ARGS...` with the process name kvm.
/// A `ksm-testkit probe` that looks like a Proxmox VE guest: argv[0]
/// `/usr/bin/kvm`, comm `kvm`, and QEMU's arguments after `--`.
fn kvm(merge: &str, args: &[&str]) -> Probe {
    let mut cmd = Command::new(TESTKIT);
    cmd.arg0("/usr/bin/kvm")
        .args([
            "probe", "--comm", "kvm", "--pages", "256", "--merge", merge, "--",
        ])
        .args(args);
    Probe::spawn(cmd)
}

#[test]
fn ps_names_a_real_kvm_process() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: ps_names_a_real_kvm_process: ksm_stat is readable by root only");
        return;
    }
    if !Path::new("/proc/self/ksm_stat").exists() {
        eprintln!("SKIPPED: ps_names_a_real_kvm_process: this kernel has no /proc/PID/ksm_stat");
        return;
    }
    let web = kvm(
        "madvise",
        &[
            "-id",
            "101",
            "-name",
            "web,debug-threads=on",
            "-machine",
            "type=pc+pve0",
        ],
    );
    let db = kvm(
        "none",
        &[
            "-id",
            "102",
            "-name",
            "db",
            "-machine",
            "type=q35+pve0,mem-merge=off",
        ],
    );
    let idle = kvm("none", &["-id", "103", "-name", "idle"]);
    let v: Value = serde_json::from_str(&ksmctl(None, &["ps", "--json"])).unwrap();
    let w = by_pid(&v, web.pid.into());
    assert_eq!(
        (&w["comm"], &w["guest"], &w["vmid"]),
        (&Value::from("kvm"), &Value::from("web"), &Value::from(101))
    );
    assert_eq!(w["not_mergeable"], Value::Null, "{w:#}");
    let d = by_pid(&v, db.pid.into());
    assert_eq!(
        (&d["guest"], &d["vmid"]),
        (&Value::from("db"), &Value::from(102))
    );
    assert_eq!(d["not_mergeable"], "mem-merge=off");
    let i = by_pid(&v, idle.pid.into());
    // Linux 6.14+ says whether anything is opted in; older kernels do not.
    if i["mergeable"] == Value::Bool(false) {
        assert_eq!(i["not_mergeable"], "nothing opted in");
    } else {
        eprintln!("note: this kernel does not report ksm_mergeable; no \"nothing opted in\"");
    }
    let text = ksmctl(None, &["ps"]);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&db.pid.to_string()))
        .unwrap();
    assert!(
        row.contains("102 (db)") && row.ends_with("no: mem-merge=off"),
        "{row}"
    );
}

/// docs/migration.md shows `ksmctl ps` over the Proxmox fixture: it must be
/// the real output.
#[test]
fn migration_guide_shows_the_real_ps_output() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migration.md"))
        .unwrap();
    let block = doc
        .split("<!-- ksmctl-ps-pve: begin -->\n```\n")
        .nth(1)
        .and_then(|r| r.split("```\n<!-- ksmctl-ps-pve: end -->").next())
        .expect("the ksmctl-ps-pve block in docs/migration.md");
    let real = ksmctl(Some(&fixture()), &["ps"]);
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } != 4096 {
        eprintln!("SKIPPED: migration_guide_shows_the_real_ps_output: the guide's figures are for 4 KiB pages");
        return;
    }
    assert_eq!(
        block, real,
        "docs/migration.md's ksmctl ps block is not the real output"
    );
}

/// ksmtuned under the unit's capability bounding set: with
/// CAP_DAC_READ_SEARCH only (ksmtuned.service) the PSS of a root `kvm`
/// process cannot be read: its RSS is counted and an error says so; with
/// CAP_SYS_PTRACE added (the package's drop-in on Proxmox VE) the PSS is
/// read. setpriv drops the capabilities as systemd does.
#[test]
fn pss_needs_cap_sys_ptrace_and_falls_back_to_rss() {
    let test = "pss_needs_cap_sys_ptrace_and_falls_back_to_rss";
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: {test}: setpriv is missing (util-linux)");
        return;
    }
    // A kvm process of root's, with all of root's capabilities.
    let guest = kvm("none", &["-id", "900", "-name", "captest"]);
    let pss = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", guest.pid)).unwrap();
    assert!(pss.contains("Pss:"), "{pss}");
    for (caps, readable) in [
        ("+dac_read_search", false),
        ("+dac_read_search,+sys_ptrace", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("debug.log");
        let conf = dir.path().join("k.conf");
        fs::write(
            &conf,
            format!("KSM_FLAVOUR=proxmox\nDEBUG=1\nLOGFILE={}\n", log.display()),
        )
        .unwrap();
        let mut child = Command::new("setpriv")
            .args([
                "--inh-caps=-all",
                &format!("--bounding-set=-all,{caps}"),
                "--",
            ])
            .arg(KSMTUNED)
            .args(["--dry-run", "--policy", "classic", "--config"])
            .arg(&conf)
            .arg("--pid-file")
            .arg(dir.path().join("pid"))
            .env_remove("KSM_ROOT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("committed ")
        {
            assert!(Instant::now() < end, "no adjustment logged with {caps}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let said = stderr.contains("cannot read the PSS of kvm process");
        assert_eq!(said, !readable, "{caps}: {stderr}");
        if !readable {
            assert!(stderr.contains("CAP_SYS_PTRACE"), "{stderr}");
        }
    }
}
