//! `ksmctl ps`: over a fixture tree, and against a real probe process whose
//! merging pages are known.

mod support;

use std::time::Duration;

use ksmtuned::kernel::ksm::{Experiment, Knob, Run, Setting};
use ksmtuned::kernel::sys;
use serde_json::Value;
use support::*;

fn ps_json(root: Option<&std::path::Path>, all: bool) -> Value {
    let mut cmd = ksmctl();
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    cmd.args(["ps", "--json"]);
    if all {
        cmd.arg("--all");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "ksmctl ps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pids(v: &Value) -> Vec<u64> {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

#[test]
fn fixture_processes_sorted_with_guests_and_totals() {
    let root = fixture_root();
    let v = ps_json(Some(&root), false);
    // By saving; the scanned-only process needs --all; 8000 (no ksm_stat)
    // and 9000 (no comm) vanished mid-scan and are skipped.
    assert_eq!(pids(&v), [4242, 5151, 6000]);
    let p = &v["processes"][0];
    assert_eq!(p["comm"], "qemu-system-x86");
    assert_eq!(p["guest"], "rhel9");
    assert_eq!(p["merging_pages"], 170000);
    assert_eq!(p["zero_pages"], 300);
    assert_eq!(p["merged_bytes"], 170300 * sys::page_size());
    assert_eq!(p["profit_bytes"], 684800000);
    assert_eq!(p["rmap_items"], 180000);
    assert_eq!(p["merge_any"], false);
    assert_eq!(p["mergeable"], true);
    assert_eq!(v["processes"][1]["guest"], "web01");
    assert_eq!(v["processes"][2]["guest"], Value::Null);
    assert_eq!(v["processes"][2]["profit_bytes"], -3799040);
    assert_eq!(v["total"]["processes"], 3);
    assert_eq!(v["total"]["merging_pages"], 262010);
    assert_eq!(v["total"]["rmap_items"], 335000);
    assert_eq!(
        v["total"]["profit_bytes"],
        684800000i64 + 370752000 - 3799040
    );

    let all = ps_json(Some(&root), true);
    assert_eq!(pids(&all), [4242, 5151, 6000, 7000]);

    let out = ksmctl()
        .arg("--root")
        .arg(&root)
        .arg("ps")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("PID") && lines[0].contains("GUEST"),
        "{text}"
    );
    assert!(
        lines[1].contains("4242") && lines[1].contains("rhel9") && lines[1].contains("madvise")
    );
    assert!(
        lines[3].contains("6000") && lines[3].contains("prctl"),
        "{text}"
    );
    assert!(lines[4].starts_with("TOTAL (3 processes)"), "{text}");
}

/// Linux 6.1 (Debian 12's kernel): `/proc/PID/ksm_stat` has only
/// `ksm_rmap_items`; the merging pages are in `/proc/PID/ksm_merging_pages`.
/// Reading only ksm_stat, `ksmctl ps` showed MERGING 0 for every process
/// and left out the opted-in java process whose pages were merged (issue
/// 30); the metrics had the same hole.
#[test]
fn linux_6_1_merging_pages_come_from_ksm_merging_pages() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux-6.1");
    let v = ps_json(Some(&root), false);
    assert_eq!(pids(&v), [4242, 6000], "{v:#}");
    let p = &v["processes"];
    assert_eq!(p[0]["guest"], "debian12");
    assert_eq!(p[0]["merging_pages"], 170000);
    assert_eq!(p[0]["rmap_items"], 180000);
    assert_eq!(p[1]["comm"], "java");
    assert_eq!(p[1]["merging_pages"], 50000);
    assert_eq!(p[1]["merged_bytes"], 50000 * sys::page_size());
    // What 6.1 does not say stays unsaid (null), not 0.
    assert_eq!(p[0]["profit_bytes"], Value::Null);
    assert_eq!(p[0]["mergeable"], Value::Null);
    // The kernel's own check: the merging pages of all processes add up
    // to pages_shared + pages_sharing of the fixture's KSM files.
    let ksm = |f: &str| -> u64 {
        std::fs::read_to_string(root.join("sys/kernel/mm/ksm").join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        v["total"]["merging_pages"],
        ksm("pages_shared") + ksm("pages_sharing")
    );
    // The process KSM only scanned, with --all.
    assert_eq!(pids(&ps_json(Some(&root), true)), [4242, 6000, 7000]);

    let out = ksmctl()
        .arg("--root")
        .arg(&root)
        .arg("ps")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let java = text
        .lines()
        .find(|l| l.contains(" java "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        java.contains("50,000") && java.contains("195 MiB"),
        "{text}"
    );

    let out = ksmctl()
        .arg("--root")
        .arg(&root)
        .arg("metrics")
        .output()
        .unwrap();
    let metrics = String::from_utf8(out.stdout).unwrap();
    for (pid, comm, guest, n) in [
        (6000, "java", "", 50000),
        (4242, "qemu-system-x86", "debian12", 170000),
    ] {
        let line = format!(
            "ksm_process_merging_pages{{comm=\"{comm}\",guest=\"{guest}\",pid=\"{pid}\"}} {n}"
        );
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing: {metrics}"
        );
    }
}

#[test]
fn ps_json_shows_a_real_probe_with_its_merging_pages() {
    let Some(ksm) = real_ksm("ps_json_shows_a_real_probe_with_its_merging_pages") else {
        return;
    };
    const PAGES: u64 = 512;
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let probe = Probe::start("obs-ps-probe", PAGES as usize, "madvise", 71);
    if !exp.before().advisor_active() {
        ksm.write(Knob::PagesToScan.parse("5000").unwrap()).unwrap();
    }
    ksm.write(Knob::SleepMillisecs.parse("10").unwrap())
        .unwrap();
    ksm.write(Setting::run(Run::Merge)).unwrap();

    let row = |v: &Value| {
        v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == probe.pid)
            .cloned()
    };
    let found = poll_until(Duration::from_secs(60), || {
        row(&ps_json(None, false)).filter(|p| p["merging_pages"] == PAGES)
    });
    let p = found.unwrap_or_else(|| {
        panic!(
            "the probe (pid {}) never showed {PAGES} merging pages: {:#}",
            probe.pid,
            ps_json(None, true)
        )
    });
    // Hold the pages merged while the rest is checked.
    ksm.set_run(Run::Stop).unwrap();
    assert_eq!(p["comm"], "obs-ps-probe");
    assert_eq!(p["guest"], Value::Null);
    assert_eq!(p["merged_bytes"], PAGES * sys::page_size());
    assert!(p["rmap_items"].as_u64().unwrap() >= PAGES, "{p}");
    if p["mergeable"] != Value::Null {
        assert_eq!(p["mergeable"], true);
        assert_eq!(p["merge_any"], false);
    }
    let profit = p["profit_bytes"].as_i64().unwrap();
    assert!(
        profit > 0 && profit <= (PAGES * sys::page_size()) as i64,
        "{p}"
    );

    let v = ps_json(None, true);
    assert!(row(&v).is_some());
    assert!(v["total"]["merging_pages"].as_u64().unwrap() >= PAGES);
    let out = ksmctl().arg("ps").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.contains(&probe.pid.to_string())
            && l.contains("obs-ps-probe")
            && l.contains("512")),
        "{text}"
    );
    drop(probe);
    // With ksmd running again, the Experiment unmerges on restore (when the
    // host had nothing merged before) so no stale counters are left behind.
    ksm.set_run(Run::Merge).unwrap();
    drop(exp);
}
