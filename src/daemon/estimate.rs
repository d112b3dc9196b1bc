//! The continuous estimate (`KSM_ESTIMATE_INTERVAL`): a thread of its own
//! runs `ksmctl estimate`'s method on the memory opted in now, every
//! content kept up to [`estimate::AUTO_FULL_BELOW`] of it and one in
//! [`estimate::AUTO_SAMPLE`] above, at the lowest priority and held to [`CPU_LIMIT_PERCENT`]
//! of one core, every interval, and writes the figures to
//! [`LAST_ESTIMATE_FILE`] (which `ksmctl status` and the metrics read).
//! The tuning loop never waits for it.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};

use crate::estimate::{self, GroupBy, Options, Selection};
use crate::kernel::sys;
use crate::root::Root;
use crate::sample::last_estimate::{LastEstimate, LAST_ESTIMATE_FILE};

/// The share of one core the estimate may use.
pub const CPU_LIMIT_PERCENT: u32 = 10;
/// Nice steps below the daemon (to 19 at most).
pub const NICE: i32 = 19;

/// The estimating thread; told to stop on drop (an estimate under way
/// finishes first, without holding the daemon up).
pub struct Estimator {
    interval: Duration,
    _stop: mpsc::Sender<()>,
    _thread: JoinHandle<()>,
}

impl Estimator {
    /// Start estimating every `interval` (the first estimate at once).
    pub fn start(root: &Root, interval: Duration, max_cpu: u64) -> std::io::Result<Estimator> {
        let (tx, rx) = mpsc::channel::<()>();
        let root = root.clone();
        let thread = std::thread::Builder::new()
            .name("ksm-estimate".into())
            .spawn(move || run(&root, interval, max_cpu, &rx))?;
        info!(
            "estimating what KSM would save every {} s (every content up to {} GiB opted in, \
             one in {} above; at nice {NICE}, \
             {CPU_LIMIT_PERCENT}% of one core): {LAST_ESTIMATE_FILE}",
            interval.as_secs(),
            estimate::AUTO_FULL_BELOW >> 30,
            estimate::AUTO_SAMPLE
        );
        Ok(Estimator {
            interval,
            _stop: tx,
            _thread: thread,
        })
    }

    /// The interval it runs at.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

fn run(root: &Root, interval: Duration, max_cpu: u64, stop: &mpsc::Receiver<()>) {
    if let Err(e) = sys::lower_thread_priority(NICE) {
        debug!("the estimate runs at the daemon's priority: {e}");
    }
    let mut failing = false;
    loop {
        match once(root, interval, max_cpu) {
            Ok(e) => {
                if failing {
                    info!("the background estimate works again");
                    failing = false;
                }
                debug!(
                    "estimate: KSM would save {} bytes (± {}), {} still to gain; {:.1} s CPU",
                    e.saved_bytes, e.saved_error_bytes, e.to_gain_bytes, e.cpu_seconds
                );
            }
            Err(e) if !failing => {
                warn!("the background estimate failed: {e:#}; trying again every interval");
                failing = true;
            }
            Err(_) => {}
        }
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// One estimate, written to the file.
pub fn once(root: &Root, interval: Duration, max_cpu: u64) -> anyhow::Result<LastEstimate> {
    use anyhow::Context;
    let cpu0 = sys::thread_cpu_ns();
    let start = Instant::now();
    let opts = Options {
        pids: Vec::new(),
        guests: false,
        selection: Selection::Mergeable,
        // Every content on a small host, sampled on a big one.
        sample: 0,
        matrix: false,
        group_by: GroupBy::Process,
        domains: crate::config::TrustDomains::None,
        max_cpu,
        cpu_limit: Some(CPU_LIMIT_PERCENT),
        thp: None,
    };
    let est = estimate::build(root, &opts, sys::page_size(), &mut |_| {})?;
    let cpu_seconds = match (cpu0, sys::thread_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
        _ => 0.0,
    };
    let last = LastEstimate {
        finished_unix_seconds: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        interval_seconds: interval.as_secs(),
        saved_bytes: est.saved_bytes,
        saved_error_bytes: est.saved_error_bytes,
        to_gain_bytes: est.to_gain_bytes,
        zero_only_saved_bytes: est.zero_only_saved_bytes,
        scanned_bytes: est.scanned_bytes,
        sample: est.sample,
        cpu_seconds,
        elapsed_seconds: start.elapsed().as_secs_f64(),
    };
    last.write(root)
        .with_context(|| format!("cannot write {}", LastEstimate::path(root).display()))?;
    Ok(last)
}
