//! `ksmctl` on the real kernel (root, writable /sys/kernel/mm/ksm).
//!
//! There is one ksmd per machine: every test holds
//! [`Experiment::begin`], which serialises it against every other program
//! that takes ksmd over and restores every knob on drop, also when the
//! test panics. Each test also restores explicitly at its end and checks,
//! still under the lock, that `ksmctl get` shows every knob as before.
//!
//! Without a writable `run` file the tests say SKIPPED and pass.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{real_ksm, Experiment, Probe};

use ksmtuned::kernel::ksm::{File, Kind, FILES};

const BIN: &str = env!("CARGO_BIN_EXE_ksmctl");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// ksmctl with the variables it reads removed from its environment.
fn ksmctl_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("KSM_ROOT")
        .env_remove("KSM_MAX_KERNEL_PAGES");
    c
}

fn run_cmd(cmd: &mut Command) -> Out {
    let out = cmd.output().expect("running ksmctl");
    let o = Out {
        code: out.status.code().expect("killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!o.stderr.contains("panicked"), "panic: {}", o.stderr);
    o
}

fn ksmctl(args: &[&str]) -> Out {
    run_cmd(&mut ksmctl_cmd(args))
}

/// `ksmctl` that must succeed; its stdout.
#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = ksmctl(args);
    assert_eq!(o.code, 0, "ksmctl {args:?} failed: {}", o.stderr);
    o.stdout
}

/// Every knob as `ksmctl get --json` shows it (counters left out).
fn knobs() -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(&ok(&["get", "--json"])).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| File::named(k).is_some_and(|f| f.kind == Kind::Setting))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn get(key: &str) -> String {
    let out = ok(&["get", key]);
    let (k, v) = out.trim().split_once('=').expect("KEY = VALUE");
    assert_eq!(k.trim(), key);
    v.trim().to_string()
}

fn status() -> Value {
    let o = ksmctl(&["status", "--json"]);
    assert!(o.code == 0 || o.code == 3, "status: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Restore under the lock and check every knob is back.
fn finish(exp: Experiment, before: &BTreeMap<String, Value>) {
    exp.restore().expect("restoring the knobs");
    assert_eq!(&knobs(), before, "a knob was not restored");
    drop(exp);
}

/// A `ksm-testkit probe` child; stdin closed (on drop) ends it.
const PROBE_PAGES: u64 = 3000;

fn probe_cmd(seed: &str, merge: &str) -> Vec<String> {
    [
        support::TESTKIT,
        "probe",
        "--pages",
        &PROBE_PAGES.to_string(),
        "--merge",
        merge,
        "--seed",
        seed,
    ]
    .map(String::from)
    .to_vec()
}

/// Speed ksmd up for the test (the Experiment puts it back).
fn fast_scanner() {
    ok(&[
        "set",
        "advisor_mode=none",
        "pages_to_scan=5000",
        "sleep_millisecs=1",
    ]);
}

/// Wait until full_scans advanced by 2 and `done` holds; panic with the
/// last status after `timeout`.
fn wait_merged(done: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
    let start = Instant::now();
    let scans0 = num(&status(), "full_scans");
    loop {
        let s = status();
        if num(&s, "full_scans") >= scans0 + 2 && done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "KSM did not merge the probes within {timeout:?} \
             (full_scans {} -> {}); last status: {s:#}",
            scans0,
            num(&s, "full_scans"),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn start_and_stop() {
    let Some(ksm) = real_ksm("start_and_stop") else {
        return;
    };
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let before = knobs();

    let o = ksmctl(&["stop"]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""));
    assert_eq!(get("run"), "0");
    assert_eq!(ksmctl(&["status"]).code, 3);
    assert_eq!(status()["state"], "stopped");

    let o = ksmctl(&["start"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(get("run"), "1");
    let st = ksmctl(&["status"]);
    assert_eq!(st.code, 0);
    assert!(
        st.stdout.starts_with("KSM:            running"),
        "{}",
        st.stdout
    );

    // This kernel has no max_kernel_pages: the variable earns a note.
    if !ksm.path("max_kernel_pages").exists() {
        ok(&["stop"]);
        let o = run_cmd(ksmctl_cmd(&["start"]).env("KSM_MAX_KERNEL_PAGES", "1000"));
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert!(o.stderr.contains("ignored"), "{}", o.stderr);
        assert_eq!(get("run"), "1");
    }
    finish(exp, &before);
}

#[test]
fn probes_merge_and_ebusy_paths() {
    let Some(ksm) = real_ksm("probes_merge_and_ebusy_paths") else {
        return;
    };
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let before = knobs();
    ok(&["stop"]);
    let sharing0 = num(&status(), "sharing_pages");

    // One probe madvises its pages; the other does nothing itself and
    // runs under `ksmctl exec`, which opts its whole memory in.
    let a = probe_cmd("101", "madvise");
    let mut c = Command::new(&a[0]);
    c.args(&a[1..]);
    let madvise = Probe::spawn(c);
    let b = probe_cmd("102", "none");
    let mut c = Command::new(BIN);
    c.arg("exec").arg("--").args(&b);
    let exec = Probe::spawn(c);
    for p in [&madvise, &exec] {
        assert_eq!(p.merging(), 0, "ksmd is stopped: nothing merged yet");
    }
    if let Some(any) = exec.stat().merge_any {
        assert!(any, "ksmctl exec must leave ksm_merge_any: yes");
    }
    if let Some(any) = madvise.stat().merge_any {
        assert!(!any, "the madvise probe is not opted in as a whole");
    }

    fast_scanner();
    ok(&["start"]);
    let want = PROBE_PAGES * 9 / 10;
    let merged = |s: &Value| {
        num(s, "sharing_pages") >= sharing0 + want
            && madvise.merging() >= want
            && exec.merging() >= want
    };
    let s = wait_merged(merged, Duration::from_secs(30));
    eprintln!(
        "merged: sharing_pages {} -> {}, probes merging {} and {} pages",
        sharing0,
        num(&s, "sharing_pages"),
        madvise.merging(),
        exec.merging()
    );
    assert!(num(&s, "saved_bytes") > 0);

    // The knobs the kernel only changes while nothing is merged.
    let mut busy = vec![("max_page_sharing", {
        let m: u64 = get("max_page_sharing").parse().unwrap();
        (m + 1).to_string()
    })];
    if ksm.path("merge_across_nodes").exists() {
        let m: u64 = get("merge_across_nodes").parse().unwrap();
        busy.push(("merge_across_nodes", (1 - m).to_string()));
    }
    for (key, value) in &busy {
        // Merged again (after the previous --unmerge).
        wait_merged(merged, Duration::from_secs(30));
        let old = get(key);
        let assignment = format!("{key}={value}");
        let o = ksmctl(&["set", &assignment]);
        assert_eq!(o.code, 1, "EBUSY expected for {assignment}: {}", o.stderr);
        for needle in [
            "Device or resource busy",
            "only while no pages are merged",
            "ksmctl set --unmerge",
            &assignment,
        ] {
            assert!(o.stderr.contains(needle), "{needle:?} in {}", o.stderr);
        }
        assert!(
            !o.stderr.contains("os error"),
            "cause repeated: {}",
            o.stderr
        );
        assert_eq!(&get(key), &old);

        let o = ksmctl(&["set", "--unmerge", &assignment]);
        assert_eq!(o.code, 0, "--unmerge {assignment}: {}", o.stderr);
        assert!(o.stdout.contains("run restored"), "{}", o.stdout);
        assert_eq!(&get(key), value);
        assert_eq!(get("run"), "1", "run restored after --unmerge");
    }
    drop(madvise);
    drop(exec);
    finish(exp, &before);
}

/// A different valid value for a knob.
fn other_value(key: &str, cur: &str) -> String {
    let n = |s: &str| s.parse::<u64>().unwrap();
    match key {
        "merge_across_nodes" | "use_zero_pages" | "smart_scan" => (1 - n(cur)).to_string(),
        "advisor_mode" => if cur == "none" { "scan-time" } else { "none" }.to_string(),
        "advisor_max_cpu" if n(cur) >= 100 => (n(cur) - 1).to_string(),
        _ => (n(cur) + 1).to_string(),
    }
}

#[test]
fn set_and_get_every_writable_knob() {
    let Some(ksm) = real_ksm("set_and_get_every_writable_knob") else {
        return;
    };
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let before = knobs();
    ok(&["stop"]);
    ok(&["set", "advisor_mode=none"]);
    let mut tried = Vec::new();
    for file in FILES {
        let key = &file.name;
        if file.kind != Kind::Setting || *key == "run" || !ksm.path(key).exists() {
            continue;
        }
        let cur = get(key);
        let cur = if *key == "advisor_mode" {
            ksmtuned::kernel::ksm::AdvisorMode::parse_selection(&cur)
                .unwrap()
                .to_string()
        } else {
            cur
        };
        let new = other_value(key, &cur);
        let mut args = vec!["set".to_string()];
        if matches!(*key, "merge_across_nodes" | "max_page_sharing") {
            args.push("--unmerge".into());
        }
        args.push(format!("{key}={new}"));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = ksmctl(&a);
        assert_eq!(o.code, 0, "{a:?}: {}", o.stderr);
        let got = get(key);
        if *key == "advisor_mode" {
            assert!(got.contains(&format!("[{new}]")), "{key}: {got}");
        } else {
            assert_eq!(got, new, "{key} read back");
        }
        // And back.
        args.pop();
        args.push(format!("{key}={cur}"));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(ksmctl(&a).code, 0, "restoring {key}");
        if *key == "advisor_mode" {
            // Switching the advisor reset pages_to_scan.
            let p = before["pages_to_scan"].to_string();
            ok(&["set", &format!("pages_to_scan={p}")]);
        }
        tried.push(*key);
    }
    eprintln!("set and read back: {}", tried.join(", "));
    for must in ["pages_to_scan", "sleep_millisecs", "max_page_sharing"] {
        assert!(tried.contains(&must), "{must} not tried");
    }
    finish(exp, &before);
}

/// The ksmctl binary where user nobody can run it.
fn world_runnable_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("ksmctl");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

fn as_nobody(bin: &Path, args: &[&str]) -> Out {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(bin)
    .args(args)
    .env_remove("KSM_ROOT");
    run_cmd(&mut c)
}

#[test]
fn non_root_is_told_it_needs_root() {
    let Some(ksm) = real_ksm("non_root_is_told_it_needs_root") else {
        return;
    };
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: non_root_is_told_it_needs_root: setpriv (util-linux) is missing");
        return;
    }
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let before = knobs();
    let (_dir, bin) = world_runnable_binary();

    // Reading works for everyone.
    let o = as_nobody(&bin, &["status", "--json"]);
    assert!(o.code == 0 || o.code == 3, "status as nobody: {}", o.stderr);
    let sleep: u64 = get("sleep_millisecs").parse().unwrap();
    let assignment = format!("sleep_millisecs={}", sleep + 7);
    for args in [&["set", assignment.as_str()][..], &["stop"], &["start"]] {
        let o = as_nobody(&bin, args);
        assert_eq!(o.code, 1, "{args:?} as nobody: {}", o.stderr);
        assert!(
            o.stderr.contains("Permission denied")
                && o.stderr.contains("needs root")
                && !o.stderr.contains("os error"),
            "{args:?}: {}",
            o.stderr
        );
    }
    assert_eq!(get("sleep_millisecs"), sleep.to_string(), "nothing written");
    finish(exp, &before);
}
