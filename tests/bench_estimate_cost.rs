//! `ksm-bench --estimate-cost`, in a test binary of its own: its workers
//! hold mergeable memory, which the other benchmark tests (run in
//! parallel within their binary) would count as theirs.

use std::path::Path;
use std::process::Command;

mod support;

/// `ksm-bench --estimate-cost --quick`: the three estimates of the
/// workload read all of it, the capped one keeps to ksmtuned's 10% of one
/// core (15% allowed: the listing of /proc is not throttled), the sampled
/// figure is within its bound of the full one, the table is what the JSON
/// renders, and no worker is left.
#[test]
fn estimate_cost_is_measured_and_clean() {
    if ksmtuned::kernel::sys::euid() != 0 {
        eprintln!("SKIPPED: needs root (to read other processes' memory)");
        return;
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_ksm-bench"));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cost.json");
    // Not QEMU's name: no guest-counting test or tuner takes the workers
    // for guests.
    let out = Command::new(exe)
        .args([
            "--estimate-cost",
            "--quick",
            "--comm",
            "ksm-cost-bench",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "ksm-bench --estimate-cost: {}",
        out.status
    );
    let r: ksmtuned::bench::estimate_cost::CostReport =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(stdout, r.render(), "the table is the JSON's");
    let names: Vec<&str> = r.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["full", "sampled", "sampled, capped"]);
    // 2 workers of 32 MiB.
    for row in &r.rows {
        assert!(row.scanned_bytes >= 64 << 20, "{row:?}");
        assert!(row.cpu_seconds > 0.0 && row.wall_seconds > 0.0, "{row:?}");
    }
    let capped = &r.rows[2];
    assert!(
        capped.cpu_share() <= 0.15,
        "capped at 10%, used {:.1}%",
        capped.cpu_share() * 100.0
    );
    for row in &r.rows[1..] {
        assert!(
            row.saved_bytes.abs_diff(r.rows[0].saved_bytes) <= row.saved_error_bytes,
            "{row:?} against {:?}",
            r.rows[0]
        );
    }
    assert!(
        support::leftover_workers(exe).is_empty(),
        "workers left behind"
    );
}
