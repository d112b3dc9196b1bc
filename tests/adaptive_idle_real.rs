//! The adaptive daemon on the real kernel, on a host with no mergeable
//! memory: it leaves its start-up sprint within seconds and waits with a
//! small batch (no endless sprint, no batch growing to a million pages);
//! a guest (a probe) appears: a sprint merges it, then idle; it exits: a
//! short sprint finds nothing and the daemon waits again. And a dry run
//! with ksmd stopped says what it cannot know instead of sprinting
//! forever. Every knob is restored afterwards, also when the test fails.

use std::time::{Duration, Instant};

use ksmtuned::kernel::ksm::{Ksm, Run};
use ksmtuned::kernel::proc;
use ksmtuned::policy::adaptive;
use ksmtuned::Root;

mod support;
use support::{daemon, real_ksm, wait_for, Experiment, Probe};

fn knob(ksm: &Ksm, name: &str) -> u64 {
    ksm.read_raw(name).unwrap().unwrap().parse().unwrap()
}

/// Processes that have memory opted in to KSM (other than ours).
fn mergeable_processes(root: &Root) -> Vec<String> {
    proc::pids(root)
        .unwrap()
        .into_iter()
        .filter(|&p| p != std::process::id())
        .filter_map(|p| {
            let comm = proc::comm(root, p)?;
            proc::is_mergeable(root, p, &comm).then(|| format!("{comm} (pid {p})"))
        })
        .collect()
}

/// The daemon's log lines so far.
fn log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

/// The daemon's last change of mode.
fn last_mode_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.starts_with("info: adaptive: "))
        .unwrap_or_default()
        .to_string()
}

fn count(text: &str, what: &str) -> usize {
    text.matches(what).count()
}

/// Watch the knobs for `secs`: the largest pages_to_scan seen with the
/// idle sleep (a sprint that something started has its own batch).
fn watch_pages(ksm: &Ksm, secs: f64) -> u64 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut largest = 0;
    while Instant::now() < until {
        if knob(ksm, "sleep_millisecs") == adaptive::IDLE_SLEEP_MS {
            largest = largest.max(knob(ksm, "pages_to_scan"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    largest
}

#[test]
fn adaptive_on_an_idle_host_then_a_guest_comes_and_goes() {
    let Some(ksm) = real_ksm("adaptive_on_an_idle_host_then_a_guest_comes_and_goes") else {
        return;
    };
    let root = Root::default();
    let _exp = Experiment::begin(&ksm).unwrap();
    let others = mergeable_processes(&root);
    if !others.is_empty() {
        eprintln!(
            "SKIPPED: the host is not idle: processes with mergeable memory: {}",
            others.join(", ")
        );
        return;
    }
    ksm.set_run(Run::Stop).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Under pressure (the threshold is MemTotal): after a sprint, idle.
    let d = daemon(
        dir.path(),
        "KSM_POLICY=adaptive\nKSM_THRES_COEF=100\nKSM_MAX_CPU=50\n",
        &[],
    );

    // An idle host: the start-up sprint ends within seconds...
    let t = Instant::now();
    wait_for("the daemon to leave its start-up sprint", 10, || {
        count(&log(dir.path()), "ksmd found nothing to scan") == 1
    });
    eprintln!("sprint on an idle host: {:.1} s", t.elapsed().as_secs_f64());
    assert!(t.elapsed() < Duration::from_secs(8), "{}", log(dir.path()));
    wait_for("idle settings", 5, || {
        knob(&ksm, "sleep_millisecs") == adaptive::IDLE_SLEEP_MS
    });
    // ...and for a while it waits with a small batch that does not grow,
    // and ksmd costs nothing.
    let cpu0 = ksmd_cpu(&root);
    let largest = watch_pages(&ksm, 10.0);
    assert_eq!(knob(&ksm, "sleep_millisecs"), adaptive::IDLE_SLEEP_MS);
    let cpu = ksmd_cpu(&root) - cpu0;
    eprintln!("waiting: pages_to_scan at most {largest}, ksmd {cpu:.4} s of CPU in 10 s");
    assert!(largest <= 1_000, "pages_to_scan {largest}");
    assert!(cpu < 0.01, "ksmd used {cpu} s");
    assert_eq!(ksm.run_state().unwrap(), Some(Run::Merge));
    let text = log(dir.path());
    assert!(
        !last_mode_line(&text).starts_with("info: adaptive: sprint"),
        "{text}"
    );

    // A guest appears: a sprint, its pages merge, then idle.
    let probe = Probe::start("qemu-kvm", 20_000, "madvise", 1);
    let pid = probe.pid;
    let t = Instant::now();
    wait_for("a sprint for the guest", 5, || {
        knob(&ksm, "sleep_millisecs") == adaptive::SPRINT_SLEEP_MS
    });
    eprintln!(
        "sprint for the guest after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    wait_for("the guest's pages to merge", 60, || {
        proc::ksm_stat(&root, pid)
            .and_then(|k| k.merging_pages)
            .unwrap_or(0)
            >= 19_900
    });
    wait_for("idle after the guest merged", 60, || {
        knob(&ksm, "sleep_millisecs") == adaptive::IDLE_SLEEP_MS
    });
    eprintln!(
        "guest merged and idle after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(log(dir.path()).contains("adaptive: converged"));

    // It exits: a sprint finds nothing, and the daemon waits again.
    drop(probe);
    let t = Instant::now();
    wait_for("the daemon to notice the guest left and settle", 15, || {
        count(&log(dir.path()), "ksmd found nothing to scan") == 2
    });
    eprintln!(
        "settled after the guest exited: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let text = log(dir.path());
    assert!(
        text.contains("mergeable processes changed (+0 -1)"),
        "{text}"
    );
    wait_for("idle settings", 5, || {
        knob(&ksm, "sleep_millisecs") == adaptive::IDLE_SLEEP_MS
    });
    let largest = watch_pages(&ksm, 5.0);
    let text = log(dir.path());
    assert!(largest <= 20_000, "pages_to_scan {largest}:\n{text}");
    // No sprint left running (another process on a shared test host may
    // have started one: it ends too).
    wait_for("the last sprint to end", 30, || {
        !last_mode_line(&log(dir.path())).starts_with("info: adaptive: sprint")
    });
    drop(d);
}

fn ksmd_cpu(root: &Root) -> f64 {
    ksmtuned::kernel::ksmd::Ksmd::new(root)
        .cpu()
        .map_or(0.0, |c| c.seconds())
}

#[test]
fn adaptive_dry_run_with_ksmd_stopped_says_what_it_cannot_know() {
    let Some(ksm) = real_ksm("adaptive_dry_run_with_ksmd_stopped_says_what_it_cannot_know") else {
        return;
    };
    let _exp = Experiment::begin(&ksm).unwrap();
    ksm.set_run(Run::Stop).unwrap();
    let before = ksm.read().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A guest to merge, which a dry run cannot merge: ksmd stays stopped.
    let _probe = Probe::start("qemu-kvm", 2_000, "madvise", 1);
    let d = daemon(
        dir.path(),
        "KSM_POLICY=adaptive\nKSM_MAX_CPU=50\n",
        &["--dry-run"],
    );
    wait_for("the dry run to say what it cannot measure", 10, || {
        log(dir.path()).contains("cannot be measured")
    });
    std::thread::sleep(Duration::from_secs(5));
    drop(d);
    let text = log(dir.path());
    eprintln!("{text}");
    assert!(text.contains("a dry run writes nothing"), "{text}");
    // One sprint, logged once, not one a second.
    assert_eq!(count(&text, "adaptive: sprint ("), 1, "{text}");
    assert_eq!(count(&text, "info: adaptive:"), 2, "{text}");
    // Nothing was written.
    let after = ksm.read().unwrap();
    assert_eq!(after.run, before.run);
    assert_eq!(after.pages_to_scan, before.pages_to_scan);
    assert_eq!(after.sleep_millisecs, before.sleep_millisecs);
}
