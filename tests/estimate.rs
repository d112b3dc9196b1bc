//! `ksmctl estimate` on the real kernel: probe processes of known content,
//! the ksm-bench workload (whose attainable saving is known exactly), a
//! process that exits mid-scan, merged pages for the realized matrix, bad
//! input, and the safety promise (KSM's settings and the scanned memory
//! unchanged, nothing faulted in).
//!
//! Each test holds the ksmd lock (`Experiment`), so that no other test
//! merges the probes' pages while they are estimated.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ksmtuned::bench::workload::{saved_in_group, WorkerOptions, Workers, WorkloadSpec};
use ksmtuned::estimate::{self, GroupBy, Options, Selection};
use ksmtuned::kernel::ksm::{Knob, Ksm, Run, Setting};
use ksmtuned::kernel::{proc, sys, vmas};
use ksmtuned::Root;
use serde_json::Value;

mod support;
use support::{Experiment, Probe, KSMCTL};

/// A `ksm-testkit probe` with these arguments.
fn probe(args: &[&str]) -> Probe {
    Probe::with_args(args)
}

/// Root with a writable KSM, else SKIPPED.
fn can_run() -> Option<Ksm> {
    let ksm = Ksm::new(&Root::default());
    if sys::euid() != 0 || !ksm.supported() {
        eprintln!("SKIPPED: needs root and a kernel with KSM");
        return None;
    }
    Some(ksm)
}

fn estimate_json(args: &[String]) -> Value {
    let out = Command::new(KSMCTL)
        .arg("estimate")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ksmctl estimate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn u(v: &Value, path: &str) -> u64 {
    let mut x = v;
    for k in path.split('.') {
        x = &x[k];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path} is not an integer in {v:#}"))
}

#[test]
fn probes_of_known_content() {
    let Some(ksm) = can_run() else { return };
    let exp = Experiment::begin(&ksm).unwrap();
    // ksmd stopped (restored on drop): nothing merges under the test.
    ksm.set_run(Run::Stop).unwrap();
    let st = exp.before().clone();
    let m = st.max_page_sharing.unwrap_or(256);
    let zero_merge = st.use_zero_pages == Some(1);
    // A: 512 pages of seed 7, 64 zero, 32 unique, 40 never touched, and
    // 100 pages of seed 7 in an area not opted in. B: 512 pages of seed 7.
    // C: nothing opted in.
    let a = probe(&[
        "--pages",
        "512",
        "--seed",
        "7",
        "--zero-pages",
        "64",
        "--unique-pages",
        "32",
        "--untouched-pages",
        "40",
        "--unmergeable-pages",
        "100",
        "--comm",
        "qemu-kvm",
    ]);
    let b = probe(&["--pages", "512", "--seed", "7", "--comm", "probe-b"]);
    let c = probe(&["--pages", "300", "--seed", "7", "--merge", "none"]);
    let pids: Vec<String> = [a.pid, b.pid, c.pid].iter().map(u32::to_string).collect();
    let j = estimate_json(&pids);
    let p = &j["projection"];
    assert_eq!(
        u(&j, "processes_scanned"),
        2,
        "C has no mergeable area: {j:#}"
    );
    assert_eq!(u(p, "pages"), 512 + 64 + 32 + 512);
    assert_eq!(u(p, "zero_pages"), 64);
    assert_eq!(u(p, "distinct_contents"), 1 + 1 + 32);
    assert_eq!(u(p, "duplicate_pages"), 1024 + 64);
    let same = saved_in_group(1024, m);
    let zero = if zero_merge {
        64
    } else {
        saved_in_group(64, m)
    };
    assert_eq!(u(p, "saved_pages"), same + zero);
    assert_eq!(u(&j, "saved_bytes"), (same + zero) * sys::page_size());
    assert_eq!(u(p, "rmap_items"), 1120);
    assert_eq!(
        j["general_profit_bytes"].as_i64().unwrap(),
        ((same + zero) * sys::page_size()) as i64 - 1120 * 64
    );
    assert_eq!(u(&j, "skipped.not_present_pages"), 40);
    // The rows add up to the total.
    let rows = j["processes"].as_array().unwrap();
    let sum: u64 = rows.iter().map(|r| u(r, "would_save_bytes")).sum();
    assert_eq!(sum, u(&j, "saved_bytes"));

    // The text for people says the same.
    let out = Command::new(KSMCTL)
        .args(["estimate", &pids[0], &pids[1]])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    let saved = ksmtuned::human::ubytes((same + zero) * sys::page_size());
    assert!(
        text.starts_with(&format!("KSM would save {saved} (")),
        "{text}"
    );
    for pid in [a.pid, b.pid] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{pid} "))),
            "no row for {pid}: {text}"
        );
    }

    // --all-anonymous also takes the area not opted in (100 more copies).
    let j = estimate_json(&["--all-anonymous".to_string(), a.pid.to_string()]);
    let p = &j["projection"];
    assert!(u(p, "pages") >= 512 + 64 + 32 + 100, "{j:#}");
    assert!(
        u(p, "saved_pages") >= saved_in_group(612, m) + zero,
        "{j:#}"
    );

    // --guests: only the process named like QEMU.
    let j = estimate_json(&["--guests".into(), "--matrix".into()]);
    let rows = j["processes"].as_array().unwrap();
    assert!(rows.iter().any(|r| u(r, "pid") == u64::from(a.pid)));
    assert!(rows.iter().all(|r| u(r, "pid") != u64::from(b.pid)));
    drop(exp);
}

#[test]
fn equals_ksm_bench_attainable() {
    let Some(ksm) = can_run() else { return };
    let exp = Experiment::begin(&ksm).unwrap();
    ksm.set_run(Run::Stop).unwrap();
    let st = exp.before().clone();
    let spec = WorkloadSpec {
        workers: 3,
        pages_per_worker: 4096,
        dup: 0.5,
        zero: 0.1,
        volatile: 0.1,
        image_repeat: 0.2,
        seed: 42,
    };
    let opts = WorkerOptions {
        merge: "madvise".into(),
        comm: "qemu-system-x86".into(),
        churn_ms: 200,
        thp: false,
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_ksm-bench"));
    let mut workers = Workers::spawn(exe, &spec, &opts, &|| false).unwrap();
    let m = st.max_page_sharing.unwrap_or(256);
    let want = spec
        .attainable(m)
        .for_zero_pages(st.use_zero_pages == Some(1));
    let run = |sample: u64| {
        let o = Options {
            pids: workers.pids(),
            guests: false,
            selection: Selection::Mergeable,
            sample,
            matrix: true,
            group_by: GroupBy::Process,
            max_cpu: 50,
            cpu_limit: None,
        };
        estimate::build(&Root::default(), &o, sys::page_size(), &mut |_| {}).unwrap()
    };
    let full = run(1);
    assert_eq!(full.projection.pages, spec.total_pages());
    assert_eq!(
        full.projection.saved_pages, want,
        "estimate vs ksm-bench attainable: {:#?}",
        full.projection
    );
    // Every pair of workers holds the whole image in common.
    let mx = full.matrix.as_ref().unwrap();
    assert_eq!(mx.groups.len(), 3);
    assert_eq!(
        mx.bytes[0][1],
        spec.image_distinct() * sys::page_size(),
        "{mx:?}"
    );
    // Sampled: within its stated bound (3 standard errors here).
    let s = run(16);
    let diff = (s.projection.saved_pages as f64 - want as f64).abs();
    let zero_exact = s.projection.zero_pages == full.projection.zero_pages;
    assert!(zero_exact);
    assert!(
        diff <= 3.0 * s.projection.saved_stderr_pages.max(1.0),
        "sampled {} vs {want}, stderr {}",
        s.projection.saved_pages,
        s.projection.saved_stderr_pages
    );
    workers.stop();
    drop(exp);
}

#[test]
fn a_process_exiting_mid_scan_is_skipped_and_counted() {
    let Some(ksm) = can_run() else { return };
    let exp = Experiment::begin(&ksm).unwrap();
    let a = probe(&["--pages", "600", "--seed", "3"]);
    let mut b = probe(&["--pages", "4096", "--seed", "3"]);
    let bpid = b.pid;
    let mut killed = false;
    let o = Options {
        pids: vec![a.pid, b.pid],
        guests: false,
        selection: Selection::Mergeable,
        sample: 1,
        matrix: false,
        group_by: GroupBy::Process,
        max_cpu: 50,
        cpu_limit: None,
    };
    let est = estimate::build(&Root::default(), &o, sys::page_size(), &mut |p| {
        if p.pid == bpid && !killed {
            // After B's first batch: gone before its second.
            killed = true;
            b.kill();
        }
    })
    .unwrap();
    assert!(killed, "B was never scanned");
    assert_eq!(est.processes_vanished, 1);
    let row = est.processes.iter().find(|r| r.pid == bpid).unwrap();
    assert!(row.vanished);
    assert!(row.scanned_bytes < 4096 * sys::page_size());
    let row_a = est.processes.iter().find(|r| r.pid == a.pid).unwrap();
    assert!(!row_a.vanished);
    assert_eq!(row_a.scanned_bytes, 600 * sys::page_size());
    drop(exp);
}

#[test]
fn bad_input() {
    let Some(_ksm) = can_run() else { return };
    let run = |args: &[&str]| {
        let out = Command::new(KSMCTL)
            .arg("estimate")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["4000000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no process with PID 4000000"), "{err}");
    let (code, err) = run(&["2"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("PID 2") && err.contains("kernel thread"),
        "{err}"
    );
    let (code, _) = run(&["--sample", "0"]);
    assert_eq!(code, Some(2));
    let (code, _) = run(&["notapid"]);
    assert_eq!(code, Some(2));
    // Not root.
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED (not-root part): setpriv not installed");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            KSMCTL,
            "estimate",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs root"), "{err}");
}

/// The bytes of every present page of a process's mergeable areas, and
/// how many pages of them are present, read through /proc/PID/mem (only
/// the present ones: reading the others would fault them in).
fn snapshot(pid: u32) -> (Vec<u8>, u64) {
    let page = sys::page_size();
    let areas = vmas::read(&Root::default(), pid).unwrap();
    let pm = ksmtuned::kernel::pagemap::Pagemap::open(&Root::default(), pid, page).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut bytes = Vec::new();
    let mut present = 0;
    for a in areas.iter().filter(|a| a.mergeable()) {
        let n = (a.len() / page) as usize;
        let mut e = vec![0u64; n];
        assert_eq!(pm.read(a.start, &mut e).unwrap(), n);
        for (i, &x) in e.iter().enumerate() {
            if ksmtuned::kernel::pagemap::PageEntry(x).present() {
                present += 1;
                let mut buf = vec![0u8; page as usize];
                mem.seek(SeekFrom::Start(a.start + i as u64 * page))
                    .unwrap();
                mem.read_exact(&mut buf).unwrap();
                bytes.extend_from_slice(&buf);
            }
        }
    }
    (bytes, present)
}

#[test]
fn changes_neither_settings_nor_memory() {
    let Some(ksm) = can_run() else { return };
    let exp = Experiment::begin(&ksm).unwrap();
    ksm.set_run(Run::Stop).unwrap();
    let a = probe(&[
        "--pages",
        "700",
        "--seed",
        "9",
        "--zero-pages",
        "50",
        "--unique-pages",
        "60",
        "--untouched-pages",
        "500",
    ]);
    let knobs = || {
        let mut s = ksm.read().unwrap();
        // Counters move with ksmd; the settings must not.
        s.pages_shared = None;
        s.pages_sharing = None;
        s.pages_unshared = None;
        s.pages_volatile = None;
        s.pages_scanned = None;
        s.pages_skipped = None;
        s.full_scans = None;
        s.general_profit = None;
        s.ksm_zero_pages = None;
        s.stable_node_chains = None;
        s.stable_node_dups = None;
        s
    };
    let k0 = knobs();
    let (m0, present0) = snapshot(a.pid);
    assert_eq!(present0, 700 + 50 + 60);
    let rss0 = proc::rss_kib(&Root::default(), a.pid).unwrap();
    for args in [
        vec![a.pid.to_string()],
        vec![
            "--all-anonymous".into(),
            "--matrix".into(),
            a.pid.to_string(),
        ],
        vec![
            "--sample".into(),
            "4".into(),
            "--cpu-limit".into(),
            "50".into(),
        ],
    ] {
        estimate_json(&args);
    }
    let (m1, present1) = snapshot(a.pid);
    assert_eq!(present1, present0, "the estimate faulted pages in");
    assert!(m0 == m1, "the scanned memory changed");
    assert_eq!(proc::rss_kib(&Root::default(), a.pid).unwrap(), rss0);
    assert_eq!(knobs(), k0, "KSM's settings changed");
    drop(exp);
}

#[test]
fn realized_matrix_after_merging() {
    let Some(ksm) = can_run() else { return };
    if std::fs::OpenOptions::new()
        .write(true)
        .open(ksm.path("run"))
        .is_err()
    {
        eprintln!("SKIPPED: /sys/kernel/mm/ksm/run is not writable");
        return;
    }
    let exp = Experiment::begin(&ksm).unwrap();
    // Two workers sharing an image of distinct pages, one alone.
    let spec = WorkloadSpec {
        workers: 2,
        pages_per_worker: 2048,
        dup: 1.0,
        zero: 0.0,
        volatile: 0.0,
        image_repeat: 0.0,
        seed: 5,
    };
    let opts = WorkerOptions {
        merge: "madvise".into(),
        comm: "qemu-system-x86".into(),
        churn_ms: 1000,
        thp: false,
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_ksm-bench"));
    let mut workers = Workers::spawn(exe, &spec, &opts, &|| false).unwrap();
    let lone = probe(&["--pages", "100", "--unique-pages", "300", "--seed", "11"]);
    ksm.write(Setting::number(Knob::PagesToScan, 5000).unwrap())
        .unwrap();
    ksm.write(Setting::number(Knob::SleepMillisecs, 5).unwrap())
        .unwrap();
    ksm.set_run(Run::Merge).unwrap();
    let pids = workers.pids();
    let merged = |pid: u32| {
        proc::ksm_stat(&Root::default(), pid)
            .and_then(|s| s.merging_pages)
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = || pids.iter().all(|&p| merged(p) == 2048) && merged(lone.pid) == 100;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    ksm.set_run(Run::Stop).unwrap();
    assert!(done(), "ksmd did not merge the workers in 90 s");
    let mut args: Vec<String> = vec!["--matrix".into()];
    args.extend(pids.iter().map(u32::to_string));
    args.push(lone.pid.to_string());
    let j = estimate_json(&args);
    let page = sys::page_size();
    let r = &j["realized_matrix"]["bytes"];
    assert_eq!(
        r[0][1].as_u64(),
        Some(2048 * page),
        "{:#}",
        j["realized_matrix"]
    );
    assert_eq!(r[0][2].as_u64(), Some(0));
    // The lone probe's 100 identical pages merged among themselves.
    assert!(r[2][2].as_u64().unwrap() >= page);
    // Saved now (scanned processes) = what KSM says for them.
    assert_eq!(u(&j, "now.ksm_pages"), 2048 + 1);
    assert_eq!(u(&j, "now.ksm_mappings"), 2 * 2048 + 100);
    assert_eq!(u(&j, "now.scanned_saved_bytes"), (2048 + 99) * page);
    // Merged pages read like any others: the projection is unchanged.
    assert_eq!(u(&j, "saved_bytes"), (2048 + 99) * page);
    assert!(j["to_gain_bytes"].as_i64().unwrap() == 0, "{j:#}");
    workers.stop();
    drop(lone);
    drop(exp);
}
