//! Soak: ksmtuned at a 100 ms interval for 10 minutes (SOAK_SECONDS) on
//! the real kernel, with process churn and a merging workload (probe
//! "guests" that are replaced every 30 s, so ksmd always has work), a
//! retune every 5 s and a reload every 10 s. Its resident memory and open
//! file descriptors at the end must not exceed those after the first
//! minute, it must stay on schedule, and it must log no error and no
//! warning (but one: when some other ksmtuned on this host starts, it
//! yields to it, as it must; those are counted and reported).
//!
//! Resident memory is judged by RssAnon (heap and stacks: what a leak
//! grows). VmRSS also counts file pages of the binary and libc, which are
//! mapped in the first time a code path runs (a rare warning, say) and can
//! be dropped and read again by the kernel; VmRSS is printed, and may not
//! grow by more than 64 KiB either.
//!
//! Not part of the normal test suite (it is `#[ignore]`d): run it with
//! `scripts/soak`, which prints the figures.

mod support;

use std::time::{Duration, Instant};

use ksmtuned::kernel::ksm::Ksm;
use ksmtuned::kernel::meminfo::MemInfo;
use ksmtuned::Root;
use support::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?}: not a number"))
        })
        .unwrap_or(default)
}

/// VmRSS, RssAnon (KiB) and open fds of the daemon between cycles: the
/// least of a few readings, since a cycle holds a file or two open for a
/// moment.
fn steady(pid: u32) -> (u64, u64, usize) {
    let mut best = (u64::MAX, u64::MAX, usize::MAX);
    for _ in 0..7 {
        best = (
            best.0.min(vm_rss_kib(pid)),
            best.1.min(status_kib(pid, "RssAnon")),
            best.2.min(open_fds(pid)),
        );
        std::thread::sleep(Duration::from_millis(13));
    }
    best
}

#[test]
#[ignore = "a 10-minute soak on the real kernel: run it with scripts/soak"]
fn soak() {
    if real_ksm("soak").is_none() {
        return;
    }
    let secs = env_u64("SOAK_SECONDS", 600);
    let first = env_u64("SOAK_FIRST_SECONDS", 60.min(secs / 2));
    let rate = env_u64("SOAK_CHURN_RATE", 1000) as u32;
    let root = Root::default();
    let ksm = Ksm::new(&root);
    let Some(_exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // The threshold is MemTotal, so free < thres and every cycle boosts:
    // KSM runs, and the daemon writes pages_to_scan, sleep_millisecs and
    // run every 100 ms. A small MAX and a sleep of ~50 ms keep ksmd gentle
    // on a shared machine.
    let total = MemInfo::read(&root).unwrap().mem_total;
    let sleep_msec = 50 * total / (16 * 1024 * 1024) + 1;
    let log = dir.path().join("debug.log");
    let conf = format!(
        "DEBUG=1\nLOGFILE={}\nKSM_THRES_COEF=100\nKSM_NPAGES_MAX=200\nKSM_SLEEP_MSEC={sleep_msec}\n",
        log.display()
    );
    let mut probes: Vec<Probe> = (0..4)
        .map(|i| Probe::start("qemu-kvm", 2048, "madvise", 1 + i / 2))
        .collect();
    let churn = Churn::start(rate, 4);
    let mut d = daemon(dir.path(), &conf, &["--interval-ms", "100", "-v"]);
    let pid = d.0.id();

    let start = Instant::now();
    let (mut retunes, mut reloads, mut replaced) = (0u64, 0u64, 0u64);
    let mut baseline: Option<(u64, u64, usize)> = None;
    let mut trace = Vec::new();
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        tick += 1;
        if let Some(status) = d.0.try_wait().unwrap() {
            panic!(
                "ksmtuned exited during the soak ({status}): {}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap()
            );
        }
        if tick % 5 == 0 {
            ksmtuned::kernel::sys::kill(pid, libc::SIGUSR1).unwrap();
            retunes += 1;
        }
        if tick % 10 == 0 {
            ksmtuned::kernel::sys::kill(pid, libc::SIGHUP).unwrap();
            reloads += 1;
        }
        if tick % 30 == 0 {
            let i = (replaced % 4) as usize;
            probes[i] = Probe::start("qemu-kvm", 2048, "madvise", 10 + replaced);
            replaced += 1;
        }
        if tick % 10 == 0 || tick == first {
            let r = steady(pid);
            eprintln!(
                "soak: t={tick:>4} s  VmRSS {:>6} KiB  RssAnon {:>5} KiB  fds {}",
                r.0, r.1, r.2
            );
            trace.push((tick, r));
            if tick == first {
                baseline = Some(r);
            }
        }
    }
    let end = steady(pid);
    let elapsed = start.elapsed().as_secs_f64();
    let (churned, churn_rate) = churn.stop();
    let sharing = ksm.read().unwrap().pages_sharing.unwrap_or(0);
    drop(d);
    drop(probes);

    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let yields = stderr
        .lines()
        .filter(|l| l.starts_with("warn: another KSM tuner is running"))
        .count();
    let bad: Vec<String> = unexpected_log_lines(
        &stderr,
        &[
            "ksmtuned ",
            "KSM running",
            "retune requested",
            "configuration reloaded",
            "the other tuner is gone",
            "advisor_mode is scan-time",
        ],
    )
    .into_iter()
    .filter(|l| !l.starts_with("warn: another KSM tuner is running"))
    .collect();
    let debug = std::fs::read_to_string(&log).unwrap();
    let cycles = debug.lines().filter(|l| l.contains(": committed ")).count() as u64;
    let scheduled = (elapsed * 10.0) as u64;
    let (rss0, anon0, fds0) = baseline.expect("the soak is shorter than its first checkpoint");
    println!(
        "soak: {elapsed:.0} s at a 100 ms interval: {cycles} cycles ({scheduled} scheduled + \
         {retunes} retunes + {reloads} reloads), churn {churned} processes ({churn_rate:.0}/s), \
         {replaced} probe guests replaced, pages_sharing {sharing} at the end, \
         {yields} yield(s) to another ksmtuned"
    );
    println!(
        "soak: ksmtuned after {first} s: VmRSS {rss0} KiB, RssAnon {anon0} KiB, {fds0} fds; \
         at the end: VmRSS {} KiB, RssAnon {} KiB, {} fds",
        end.0, end.1, end.2
    );
    assert!(bad.is_empty(), "unexpected log lines: {bad:#?}");
    // Cycles are due every 100 ms from the first (a fixed rate; a retune
    // or reload starts the schedule again from then, and a cycle that
    // overruns its slot skips it); more than 10% behind is falling behind.
    assert!(
        cycles * 100 >= scheduled * 90,
        "fell behind: {cycles} cycles for {scheduled} scheduled"
    );
    assert!(sharing > 0, "the merging workload did not merge");
    assert!(
        end.1 <= anon0,
        "RssAnon grew from {anon0} KiB to {} KiB; trace {trace:?}",
        end.1
    );
    assert!(
        end.0 <= rss0 + 64,
        "VmRSS grew from {rss0} KiB to {} KiB; trace {trace:?}",
        end.0
    );
    assert!(
        end.2 <= fds0,
        "open fds grew from {fds0} to {}; trace {trace:?}",
        end.2
    );
}
