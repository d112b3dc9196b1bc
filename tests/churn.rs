//! Churn: ~1000 short-lived processes started per second while
//! `ksmtuned --dry-run -v` follows the real processes (from the kernel's
//! process events) every second, and while this test updates its own
//! event-kept table and runs a full `trackers::scan` in a loop. Probe
//! "guests" named qemu-kvm must be counted every time (their RSS sum is
//! what the scan and the daemon report), the daemon must log nothing above
//! debug but its start-up and decision lines, and nothing may panic.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ksmtuned::kernel::proc;
use ksmtuned::sample::census::{Census, Source};
use ksmtuned::sample::trackers::{self, ProcTable};
use ksmtuned::Root;
use support::*;

const CHURN_SECONDS: u64 = 20;

#[test]
fn scans_stay_exact_under_process_churn() {
    let root = Root::default();
    let probes: Vec<Probe> = (0..3)
        .map(|i| Probe::start("qemu-kvm", 1024 * (i + 1), "none", 7))
        .collect();
    let ours: BTreeSet<u32> = probes.iter().map(|p| p.pid).collect();
    let expected = settled_rss_kib(&ours.iter().copied().collect::<Vec<_>>());
    assert!(expected >= 6 * 4096, "probe RSS {expected} KiB");

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("debug.log");
    let mut d = daemon(
        dir.path(),
        &format!(
            "KSM_MONITOR_INTERVAL=1\nDEBUG=1\nLOGFILE={}\n",
            log.display()
        ),
        &["--dry-run", "-v"],
    );
    wait_for("the daemon's first cycle", 10, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(": committed "))
    });

    // A table kept from the kernel's process events, as the daemon keeps
    // one: it must find the probes on every update, whatever the churn.
    let mut census = Census::new(&root);
    let events = matches!(census.source(), Source::Events);
    let mut table = ProcTable::new(None);
    let daemon_ticks0 = proc::cpu_ticks(&root, d.0.id()).unwrap();

    let churn = Churn::start(1000, 4);
    let start = Instant::now();
    let (mut scans, mut exact, mut foreign) = (0u64, 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(CHURN_SECONDS) {
        let t = table
            .update(&root, &mut census)
            .expect("updating the table");
        let seen: BTreeSet<u32> = t.qemu_pids.iter().copied().collect();
        assert!(
            seen.is_superset(&ours) && t.qemu_rss_kib >= expected,
            "the event table missed a probe: saw {seen:?}, probes {ours:?}"
        );
        let s = trackers::scan(&root, None).expect("scanning /proc");
        scans += 1;
        let seen: BTreeSet<u32> = s.qemu_pids.iter().copied().collect();
        assert!(
            seen.is_superset(&ours),
            "scan {scans} missed a probe: saw {seen:?}, probes {ours:?}"
        );
        if seen == ours {
            assert_eq!(
                s.qemu_rss_kib, expected,
                "scan {scans}: committed {} KiB, the probes have {expected} KiB",
                s.qemu_rss_kib
            );
            exact += 1;
        } else {
            // Another engineer's QEMU-named process: ours are still in.
            assert!(s.qemu_rss_kib >= expected, "scan {scans}: {s:?}");
            foreign += 1;
        }
    }
    let (churned, rate) = churn.stop();
    let daemon_cpu = (proc::cpu_ticks(&root, d.0.id()).unwrap() - daemon_ticks0) as f64
        / ksmtuned::kernel::sys::clock_ticks() as f64
        / start.elapsed().as_secs_f64();
    // The probes did not change while we scanned.
    assert_eq!(
        probes.iter().map(|p| vm_rss_kib(p.pid)).sum::<u64>(),
        expected
    );

    // The daemon: alive, on schedule, and it counted the probes each cycle.
    assert!(d.0.try_wait().unwrap().is_none(), "ksmtuned exited");
    ksmtuned::kernel::sys::kill(d.0.id(), libc::SIGTERM).unwrap();
    let status = d.0.wait().unwrap();
    assert!(status.success(), "ksmtuned: {status}");
    let debug = std::fs::read_to_string(&log).unwrap();
    let committed: Vec<u64> = debug
        .lines()
        .filter_map(|l| l.split_once(": committed ").map(|x| x.1))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        committed.len() as u64 >= CHURN_SECONDS - 2,
        "{} cycles in {CHURN_SECONDS} s",
        committed.len()
    );
    // The daemon's sums: the probes always in; equal to theirs unless
    // another QEMU-named process existed at that moment (the debug line does
    // not say which processes it counted, so only the bound is asserted).
    for &c in &committed {
        assert!(c >= expected, "daemon's committed: {committed:?}");
    }
    let daemon_exact = committed.iter().filter(|&&c| c == expected).count();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Start-up and decision lines; the advisor line appears when some
    // other test on the host has the kernel's advisor on.
    let bad = unexpected_log_lines(
        &stderr,
        &[
            "ksmtuned ",
            "dry run: would set: ",
            "exiting",
            "advisor_mode is scan-time",
        ],
    );
    assert!(bad.is_empty(), "unexpected log lines: {bad:#?}\n{stderr}");
    eprintln!(
        "churn: {churned} processes in {CHURN_SECONDS} s ({rate:.0}/s); {scans} scans \
         ({exact} exact, {foreign} with other QEMU processes), {} daemon cycles \
         ({daemon_exact} exactly the probes' {expected} KiB); event table: {}; \
         the daemon used {:.1}% of a CPU",
        committed.len(),
        if events {
            "kept from events"
        } else {
            "listing (no events here)"
        },
        daemon_cpu * 100.0
    );
    assert!(
        rate >= 500.0,
        "the churn reached only {rate:.0} processes/s (1000 asked)"
    );
}
