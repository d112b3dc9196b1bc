//! On the real kernel: the bench's "attainable" figure is what KSM reaches
//! at convergence. A small workload, ksmd at the kernel's defaults made
//! fast, must reach at least 97% of attainable and never more than 100%,
//! with use_zero_pages=0 and =1.

use std::path::Path;
use std::time::{Duration, Instant};

use ksmtuned::bench::tuner;
use ksmtuned::bench::workload::{WorkerOptions, Workers, WorkloadSpec};
use ksmtuned::kernel::ksm::{Knob, Ksm, Run, Setting};
use ksmtuned::kernel::sys;
use ksmtuned::Root;

mod support;
use support::Experiment;

fn writable(ksm: &Ksm) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(ksm.path("run"))
        .is_ok()
}

/// Run ksmd fast until saved pages stop growing (or reach attainable);
/// returns (saved, attainable, full scans).
fn converge(ksm: &Ksm, attainable: u64) -> (u64, u64) {
    ksm.write(Setting::number(Knob::PagesToScan, 2000).unwrap())
        .unwrap();
    ksm.write(Setting::number(Knob::SleepMillisecs, 10).unwrap())
        .unwrap();
    let base = ksm.read().unwrap().full_scans.unwrap_or(0);
    ksm.set_run(Run::Merge).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, 0);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let s = ksm.read().unwrap();
        let scans = s.full_scans.unwrap_or(0) - base;
        last = (s.saved_pages(), scans);
        if last.0 >= attainable && scans >= 4 {
            break;
        }
        // Converged: several full scans since the last change.
        if scans >= 12 {
            break;
        }
    }
    ksm.set_run(Run::Stop).unwrap();
    last
}

#[test]
fn kernel_default_reaches_attainable() {
    let root = Root::default();
    let ksm = Ksm::new(&root);
    if !ksm.supported() || !writable(&ksm) {
        eprintln!("SKIPPED: /sys/kernel/mm/ksm/run is not writable here (needs root and KSM)");
        return;
    }
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let before = exp.before().clone();
    let page = sys::page_size();
    // 2 workers x 8 MiB: an image with repeats, and enough zero pages
    // (2 x 410) to need several KSM pages at max_page_sharing 256.
    let spec = WorkloadSpec {
        workers: 2,
        pages_per_worker: 8 * 1024 * 1024 / page,
        dup: 0.5,
        zero: 0.2,
        volatile: 0.0,
        image_repeat: 0.2,
        seed: 42,
    };
    let attainable = spec.attainable(before.max_page_sharing.unwrap_or(256));
    assert!(attainable.without_zero_pages > 0);
    tuner::clean_state(&ksm, &before).unwrap();
    let opts = WorkerOptions {
        merge: "madvise".into(),
        comm: "qemu-system-x86".into(),
        churn_ms: 1000,
        thp: false,
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_ksm-bench"));
    let mut workers = Workers::spawn(exe, &spec, &opts, &|| false).unwrap();

    for use_zero_pages in [false, true] {
        tuner::clean_state(&ksm, &before).unwrap();
        ksm.write(Setting::number(Knob::UseZeroPages, u64::from(use_zero_pages)).unwrap())
            .unwrap();
        let want = attainable.for_zero_pages(use_zero_pages);
        let (saved, scans) = converge(&ksm, want);
        let s = ksm.read().unwrap();
        eprintln!(
            "use_zero_pages={}: saved {saved} of {want} attainable after {scans} full scans \
             (pages_shared {}, pages_sharing {}, ksm_zero_pages {})",
            u8::from(use_zero_pages),
            s.pages_shared.unwrap_or(0),
            s.pages_sharing.unwrap_or(0),
            s.ksm_zero_pages.unwrap_or(0)
        );
        workers.check().unwrap();
        assert!(
            saved as f64 >= 0.97 * want as f64,
            "use_zero_pages={use_zero_pages}: saved {saved} < 97% of attainable {want}"
        );
        assert!(
            saved <= want,
            "use_zero_pages={use_zero_pages}: saved {saved} > attainable {want}: the arithmetic \
             underestimates"
        );
    }
    drop(workers);
    drop(exp);
}
