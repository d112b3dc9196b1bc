//! The original scripts and ours, side by side on the real kernel: Proxmox
//! VE's ksmtuned (Debian's script with Proxmox's changes, made by
//! scripts/classic-scripts from the package apt downloads) with a process
//! named `kvm`, and the RHEL script with a process named `qemu-kvm`. Each
//! script runs for real (bash, DEBUG and LOGFILE, a 1-second interval,
//! writing /sys/kernel/mm/ksm under the ksmd lock, restored afterwards);
//! ours runs `--dry-run` at the same time from the same configuration.
//!
//! The guest holds shared memory (MAP_SHARED: shmem, page cache, so it is counted in
//! the guest's RSS and PSS but not taken from MemFree + Buffers + Cached)
//! of more than the memory the host uses, and the threshold is set just
//! below free memory: counting the guest flips the decision from "stop"
//! to "start". Both must count it and print the same lines; ours in the
//! other flavour must not count it and decides "stop".

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ksmtuned::kernel::ksm::Ksm;
use ksmtuned::kernel::meminfo::MemInfo;
use ksmtuned::Root;

mod support;
use support::{real_ksm, testkit, Experiment, Kill, Probe, KSMTUNED};

const GIB: u64 = 1024 * 1024; // KiB

/// The scripts (downloaded once per test process), or a SKIPPED reason.
fn scripts(dir: &Path) -> Result<PathBuf, String> {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        return Err("bash is missing".into());
    }
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/classic-scripts"
    ))
    .arg(dir)
    .output()
    .map_err(|e| format!("running scripts/classic-scripts: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/classic-scripts could not make the original scripts: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(dir.to_path_buf())
}

/// The debug lines of a log, without their `<date>: ` prefixes.
fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, t)| t.to_string()))
        .collect()
}

/// The lines up to the first adjustment's last line (`stop ksm` or
/// `KSMCTL start ...`), once they are all there.
fn first_adjustment(path: &Path) -> Option<Vec<String>> {
    let l = lines(path);
    let end = l
        .iter()
        .position(|x| x.ends_with(", stop ksm") || x.starts_with("KSMCTL start "))?;
    Some(l[..=end].to_vec())
}

fn committed(lines: &[String]) -> u64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("committed "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no committed line in {lines:?}"))
}

/// A process group killed on drop (the script forks its loop away).
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a process group we created.
        unsafe { libc::kill(-self.0, libc::SIGTERM) };
    }
}

fn ours(dir: &Path, name: &str, conf: &str) -> (Kill, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let path = dir.join(format!("{name}.conf"));
    fs::write(&path, format!("{conf}LOGFILE={}\n", log.display())).unwrap();
    let child = Command::new(KSMTUNED)
        .args(["--dry-run", "--policy", "classic", "--config"])
        .arg(&path)
        .arg("--pid-file")
        .arg(dir.join(format!("{name}.pid")))
        .env_remove("KSM_ROOT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Kill(child), log)
}

fn side_by_side(test: &str, script: &str, comm: &str, flavour: &str, other: &str) {
    let Some(_) = real_ksm(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let scripts = match scripts(&dir.path().join("scripts")) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: {test}: {why}");
            return;
        }
    };
    let root = Root::default();
    let ksm = Ksm::new(&root);
    // The script writes KSM's knobs: hold the lock, restore on drop.
    let _exp = Experiment::begin(&ksm).unwrap();

    // A guest holding more shared memory than the host uses, plus 2 GiB.
    let mem = MemInfo::read(&root).unwrap();
    let used = mem.mem_total.saturating_sub(mem.classic_free());
    let shared_kib = used + 2 * GIB;
    if shared_kib > mem.classic_free() / 2 {
        eprintln!(
            "SKIPPED: {test}: the guest would need {} MiB of shared memory, more than half of \
             the {} MiB free here",
            shared_kib / 1024,
            mem.classic_free() / 1024
        );
        return;
    }
    let mut cmd = testkit();
    let pages = shared_kib * 1024 / ksmtuned::kernel::sys::page_size();
    cmd.args([
        "probe",
        "--comm",
        comm,
        "--merge",
        "none",
        "--backing",
        "shared",
    ])
    .args(["--pages", &pages.to_string()]);
    let guest = Probe::spawn(cmd);

    // The threshold 1 GiB below free memory: "stop" unless the guest counts.
    let mem = MemInfo::read(&root).unwrap();
    let thres = mem.classic_free() - GIB;
    let conf =
        format!("KSM_MONITOR_INTERVAL=1\nKSM_THRES_COEF=0\nKSM_THRES_CONST={thres}\nDEBUG=1\n");

    // The original: its configuration path pointed at ours.
    let script_conf = dir.path().join("script.conf");
    let script_log = dir.path().join("script.log");
    fs::write(
        &script_conf,
        format!("{conf}LOGFILE={}\n", script_log.display()),
    )
    .unwrap();
    let text = fs::read_to_string(scripts.join(script))
        .unwrap()
        .replace("/etc/ksmtuned.conf", &script_conf.display().to_string());
    // Not named ksmtuned: other tests' daemons must not take it for a tuner.
    let script_path = dir.path().join(format!("orig-{script}"));
    fs::write(&script_path, text).unwrap();
    let mut st = Command::new("bash")
        .arg(&script_path)
        .env("PIDFILE", dir.path().join("script.pid"))
        .process_group(0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _group = Group(st.id() as i32);
    // It forks its loop into the background (same process group) and exits.
    let status = st.wait().unwrap();
    assert!(status.success(), "the original script exited {status}");

    let (_a, ours_log) = ours(
        dir.path(),
        "ours",
        &format!("{conf}KSM_FLAVOUR={flavour}\n"),
    );
    let (_b, other_log) = ours(dir.path(), "other", &format!("{conf}KSM_FLAVOUR={other}\n"));

    let end = Instant::now() + Duration::from_secs(60);
    let (orig, mine, theirs) = loop {
        if let (Some(a), Some(b), Some(c)) = (
            first_adjustment(&script_log),
            first_adjustment(&ours_log),
            first_adjustment(&other_log),
        ) {
            break (a, b, c);
        }
        assert!(
            Instant::now() < end,
            "no adjustment within 60 s: script {:?}, ours {:?}, other {:?}",
            lines(&script_log),
            lines(&ours_log),
            lines(&other_log)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(guest);
    eprintln!("{test}: original: {orig:#?}\n{test}: ours ({flavour}): {mine:#?}\n{test}: ours ({other}): {theirs:#?}");

    // total, sleep and thres: the same lines.
    assert_eq!(orig[..3], mine[..3], "start-up lines");
    assert_eq!(orig.len(), 7, "{orig:?}");
    assert_eq!(mine.len(), 7, "{mine:?}");
    // The guest counted by both, within 2% (PSS and RSS move a little
    // between the two readings).
    let (c_orig, c_mine) = (committed(&orig), committed(&mine));
    assert!(
        c_orig >= shared_kib,
        "the script did not count the guest: {orig:?}"
    );
    assert!(
        c_orig.abs_diff(c_mine) * 50 <= c_orig,
        "committed: script {c_orig}, ours {c_mine}"
    );
    // The same decision, word for word where the figures allow.
    assert!(
        orig[4].ends_with(&format!(" > {}, start ksm", mem.mem_total)),
        "{orig:?}"
    );
    assert!(
        mine[4].ends_with(&format!(" > {}, start ksm", mem.mem_total)),
        "{mine:?}"
    );
    // Free memory above the threshold in both readings: decay, from 0 to MIN.
    assert!(orig[5].ends_with(&format!(" > {thres}, decay")), "{orig:?}");
    assert!(mine[5].ends_with(&format!(" > {thres}, decay")), "{mine:?}");
    assert_eq!(orig[6], mine[6], "the KSMCTL line");
    assert_eq!(
        orig[6],
        format!("KSMCTL start 64 {}", orig[1].trim_start_matches("sleep "))
    );
    // Ours in the other flavour does not count this guest: stop.
    assert!(committed(&theirs) < shared_kib, "{theirs:?}");
    assert!(theirs.last().unwrap().ends_with(", stop ksm"), "{theirs:?}");
}

#[test]
fn proxmox_script_and_ours_decide_alike() {
    side_by_side(
        "proxmox_script_and_ours_decide_alike",
        "ksmtuned.proxmox",
        "kvm",
        "proxmox",
        "rhel",
    );
}

#[test]
fn rhel_script_and_ours_decide_alike() {
    side_by_side(
        "rhel_script_and_ours_decide_alike",
        "ksmtuned.rhel",
        "qemu-kvm",
        "rhel",
        "proxmox",
    );
}
