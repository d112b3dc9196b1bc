//! `ksmtuned` on the real kernel: with a configuration that makes this
//! host count as under memory pressure it starts ksmd with the expected
//! settings and a probe "guest" merges; with a low threshold it stops
//! ksmd. Every knob is restored afterwards, also when the test fails.

use std::time::Instant;

use ksmtuned::kernel::ksm::{Ksm, Run};
use ksmtuned::kernel::{meminfo::MemInfo, proc};
use ksmtuned::policy::adaptive;
use ksmtuned::Root;

mod support;
use support::{daemon, real_ksm, wait_for, Experiment, Probe};

/// A `ksm-testkit probe` named like a QEMU guest, opted in with madvise.
fn probe(pages: usize) -> (Probe, u32) {
    let p = Probe::start("qemu-kvm", pages, "madvise", 1);
    let pid = p.pid;
    (p, pid)
}

/// Like [`wait_for`], printing how long it took.
fn timed(what: &str, secs: u64, pred: impl FnMut() -> bool) {
    let t = Instant::now();
    wait_for(what, secs, pred);
    eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn classic_daemon_merges_a_guest_then_stops_ksmd() {
    if real_ksm("classic_daemon_merges_a_guest_then_stops_ksmd").is_none() {
        return;
    }
    let root = Root::default();
    let ksm = Ksm::new(&root);
    let Some(_exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    // Start from the kernel's defaults with ksmd stopped.
    ksm.set_run(Run::Stop).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_probe, pid) = probe(4000);
    assert_eq!(proc::comm(&root, pid).as_deref(), Some("qemu-kvm"));

    // KSM_THRES_COEF=100: the threshold is MemTotal, so free < thres: boost.
    let total = MemInfo::read(&root).unwrap().mem_total;
    let sleep = (10 * 16 * 1024 * 1024 / total).max(10);
    let d = daemon(
        dir.path(),
        "KSM_THRES_COEF=100\nKSM_MONITOR_INTERVAL=3600\n",
        &[],
    );
    wait_for("ksmd started by ksmtuned", 10, || {
        ksm.run_state().unwrap() == Some(Run::Merge)
    });
    let s = ksm.read().unwrap();
    assert_eq!(s.pages_to_scan, Some(300));
    assert_eq!(s.sleep_millisecs, Some(sleep));
    // The probe's pages merge. Its merging pages count the KSM pages
    // themselves too (pages_shared), so wait for the kernel's
    // pages_sharing as well rather than assume they move together.
    wait_for("the probe's pages to merge", 60, || {
        proc::ksm_stat(&root, pid)
            .and_then(|k| k.merging_pages)
            .unwrap_or(0)
            >= 3900
            && ksm.read().unwrap().pages_sharing.unwrap_or(0) >= 3900
    });
    drop(d);

    // A zero threshold: committed + 0 < total and free > 0: stop.
    let _d = daemon(
        dir.path(),
        "KSM_THRES_COEF=0\nKSM_THRES_CONST=0\nKSM_MONITOR_INTERVAL=3600\n",
        &[],
    );
    wait_for("ksmd stopped by ksmtuned", 10, || {
        ksm.run_state().unwrap() == Some(Run::Stop)
    });
    // Stopping keeps the merged pages.
    assert!(ksm.read().unwrap().pages_sharing.unwrap() >= 3900);
}

fn knob(ksm: &Ksm, name: &str) -> u64 {
    ksm.read_raw(name).unwrap().unwrap().parse().unwrap()
}

#[test]
fn adaptive_daemon_merges_then_idles_then_stops() {
    if real_ksm("adaptive_daemon_merges_then_idles_then_stops").is_none() {
        return;
    }
    let root = Root::default();
    let ksm = Ksm::new(&root);
    let Some(_exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    ksm.set_run(Run::Stop).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_probe, pid) = probe(20_000);

    // Under pressure (the threshold is MemTotal): sprint, merge, then idle.
    let d = daemon(
        dir.path(),
        "KSM_POLICY=adaptive\nKSM_THRES_COEF=100\nKSM_MAX_CPU=50\n",
        &[],
    );
    timed("the sprint", 10, || {
        ksm.run_state().unwrap() == Some(Run::Merge)
            && knob(&ksm, "sleep_millisecs") == adaptive::SPRINT_SLEEP_MS
    });
    timed("the probe's pages to merge", 60, || {
        proc::ksm_stat(&root, pid)
            .and_then(|k| k.merging_pages)
            .unwrap_or(0)
            >= 19_900
    });
    timed("near-idle scanning after convergence", 60, || {
        knob(&ksm, "sleep_millisecs") == adaptive::IDLE_SLEEP_MS
    });
    assert_eq!(ksm.run_state().unwrap(), Some(Run::Merge));
    // A new guest: a sprint again within a few seconds.
    let (_probe2, pid2) = probe(5_000);
    timed("a sprint for the new process", 5, || {
        knob(&ksm, "sleep_millisecs") == adaptive::SPRINT_SLEEP_MS
    });
    timed("the new probe's pages to merge", 60, || {
        proc::ksm_stat(&root, pid2)
            .and_then(|k| k.merging_pages)
            .unwrap_or(0)
            >= 4_900
    });
    drop(d);

    // Without pressure (threshold 0): after convergence ksmd is stopped.
    let _d = daemon(
        dir.path(),
        "KSM_POLICY=adaptive\nKSM_THRES_COEF=0\nKSM_THRES_CONST=0\nKSM_MAX_CPU=50\n",
        &[],
    );
    timed("ksmd stopped once nothing is left to gain", 60, || {
        ksm.run_state().unwrap() == Some(Run::Stop)
    });
    assert!(ksm.read().unwrap().pages_sharing.unwrap() >= 24_000);
}

/// `/run/ksmtuned/estimate.json` put back as it was on drop (panics
/// included).
struct EstimateFile(Option<Vec<u8>>);

impl Drop for EstimateFile {
    fn drop(&mut self) {
        let path = ksmtuned::sample::last_estimate::LAST_ESTIMATE_FILE;
        let _ = match &self.0 {
            Some(old) => std::fs::write(path, old),
            None => std::fs::remove_file(path),
        };
    }
}

/// KSM_ESTIMATE_INTERVAL: the daemon estimates in the background (ksmd
/// kept stopped by a zero threshold); the file, `ksmctl status` and
/// `ksmctl metrics` show it. On so little opted-in memory it keeps every
/// content: the probe's repeated page and its 1,000 all-zero pages are
/// counted.
#[test]
fn background_estimate_in_status_and_metrics() {
    if real_ksm("background_estimate_in_status_and_metrics").is_none() {
        return;
    }
    let root = Root::default();
    let ksm = Ksm::new(&root);
    let Some(_exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    ksm.set_run(Run::Stop).unwrap();
    let path = ksmtuned::sample::last_estimate::LAST_ESTIMATE_FILE;
    let _restore = EstimateFile(std::fs::read(path).ok());
    let _ = std::fs::remove_file(path);
    let probe = Probe::with_args(&["--pages", "2000", "--zero-pages", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let _d = daemon(
        dir.path(),
        "KSM_THRES_COEF=0\nKSM_THRES_CONST=0\nKSM_MONITOR_INTERVAL=3600\n\
         KSM_ESTIMATE_INTERVAL=3600\n",
        &[],
    );
    let t = Instant::now();
    wait_for("the daemon's first estimate", 120, || {
        ksmtuned::sample::last_estimate::LastEstimate::read(&root).is_some()
    });
    let e = ksmtuned::sample::last_estimate::LastEstimate::read(&root).unwrap();
    eprintln!(
        "first estimate after {:.1} s: {e:?}",
        t.elapsed().as_secs_f64()
    );
    let page = ksmtuned::kernel::sys::page_size();
    // A few MiB opted in: every content kept (sampled above 1 GiB).
    assert_eq!((e.interval_seconds, e.sample), (3600, 1));
    assert!(e.scanned_bytes >= 3000 * page, "{e:?}");
    assert!(e.zero_only_saved_bytes >= 1000 * page, "{e:?}");
    // (The zero pages merge into KSM pages of 256 at most without
    // use_zero_pages: 996 of the 1,000 saved.)
    // Kept whole, the probe's 2,000 copies of one page count too (256 to a
    // KSM page: 1,992 saved), which a sample may miss entirely.
    assert!(
        e.saved_bytes >= (1992 + 990) * page,
        "the repeated page and the zero pages: {e:?}"
    );
    assert!(
        e.cpu_seconds > 0.0 && e.cpu_seconds <= e.elapsed_seconds + 0.5,
        "{e:?}"
    );
    // (status exits 3 while ksmd is stopped, as LSB's status does.)
    let run = |args: &[&str]| {
        let o = std::process::Command::new(support::KSMCTL)
            .args(args)
            .env_remove("KSM_ROOT")
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 3)), "{args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let status = run(&["status"]);
    assert!(
        status.lines().any(|l| l.starts_with("Still to gain")),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["status", "--json"])).unwrap();
    assert_eq!(json["estimate"]["saved_bytes"], e.saved_bytes, "{json:#}");
    let metrics = run(&["metrics"]);
    assert!(
        metrics.contains(&format!("\nksm_estimate_saved_bytes {}\n", e.saved_bytes)),
        "{metrics}"
    );
    assert!(metrics.contains("\nksm_estimate_age_seconds "), "{metrics}");
    drop(probe);
}
