//! The benchmark's time series: a [`Point`] every 100 ms of what KSM did
//! and what it cost (the KSM counters and settings, ksmd's CPU time and
//! the tuner's), relative to the tuner's start.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::kernel::ksm::KsmState;
use crate::kernel::proc;
use crate::kernel::sys;
use crate::root::Root;
use crate::sample::{Parts, Sampler};

/// One point of the series. Counters are as the kernel reports them,
/// except the ones marked "since the start", which count from the tuner's
/// start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Milliseconds since the tuner started.
    pub t_ms: u64,
    /// `pages_sharing + ksm_zero_pages`.
    pub saved_pages: u64,
    pub pages_shared: u64,
    pub pages_sharing: u64,
    pub ksm_zero_pages: i64,
    pub pages_volatile: u64,
    pub general_profit_bytes: Option<i64>,
    /// Full scans since the start.
    pub full_scans: u64,
    /// Pages scanned since the start (Linux 6.6+).
    pub pages_scanned: Option<u64>,
    /// Pages skipped by smart scan since the start (Linux 6.7+).
    pub pages_skipped: Option<u64>,
    /// ksmd's CPU time (utime + stime) since the start.
    pub ksmd_cpu_ms: u64,
    /// The tuner's CPU time (its processes and their children) since the
    /// start; 0 for tuners that are only kernel settings.
    pub tuner_cpu_ms: u64,
    pub pages_to_scan: Option<u64>,
    pub sleep_millisecs: Option<u64>,
    pub run: Option<u8>,
    /// Whether the scan-time advisor is on (None: this kernel has none).
    pub advisor_on: Option<bool>,
    pub use_zero_pages: bool,
}

/// The CPU time of a tuner's process group: the leader's own and its
/// waited-for children's time, plus the other live members of the group
/// (re-listed every `RESCAN` samples, as `/proc` is large).
pub struct GroupCpu {
    root: Root,
    leader: u32,
    members: Vec<u32>,
    samples: u32,
    /// The last total seen (a finished group keeps its last value).
    last: u64,
}

impl GroupCpu {
    const RESCAN: u32 = 10;

    pub fn new(root: &Root, leader: u32) -> GroupCpu {
        GroupCpu {
            root: root.clone(),
            leader,
            members: Vec::new(),
            samples: 0,
            last: 0,
        }
    }

    fn stat(&self, pid: u32) -> Option<(u32, u64, u64)> {
        let s = proc::stat(&self.root, pid)?;
        Some((s.pgrp, s.cpu_ticks, s.children_ticks))
    }

    /// CPU ticks of the whole group now.
    pub fn ticks(&mut self) -> u64 {
        if self.samples % Self::RESCAN == 0 {
            self.members = proc::pids(&self.root)
                .unwrap_or_default()
                .into_iter()
                .filter(|&p| p != self.leader)
                .filter(|&p| self.stat(p).is_some_and(|(g, _, _)| g == self.leader))
                .collect();
        }
        self.samples += 1;
        let Some((_, own, children)) = self.stat(self.leader) else {
            return self.last;
        };
        let mut total = own + children;
        for &p in &self.members {
            if let Some((g, own, children)) = self.stat(p) {
                if g == self.leader {
                    total += own + children;
                }
            }
        }
        // A member that exited and was reaped by the leader moves from
        // "member" to the leader's cutime; never go backwards.
        self.last = self.last.max(total);
        self.last
    }
}

/// Takes points relative to a start, reading KSM and ksmd's CPU time
/// through a [`Sampler`].
pub struct Recorder {
    sampler: Sampler,
    has_ksmd: bool,
    tick_ms: f64,
    start: Instant,
    base: KsmState,
    base_ksmd_ns: u64,
    tuner: Option<GroupCpu>,
    base_tuner_ticks: u64,
}

impl Recorder {
    /// Start recording now; `tuner` is the leader of the tuner's process
    /// group, if the tuner is a process.
    pub fn start(root: &Root, tuner: Option<u32>) -> crate::Result<Recorder> {
        let mut sampler = Sampler::new(
            root,
            Parts {
                ksmd: true,
                ..Parts::default()
            },
        );
        let first = sampler.take()?;
        let base = first.ksm_state(sampler.ksm())?.clone();
        let mut tuner = tuner.map(|p| GroupCpu::new(root, p));
        let base_tuner_ticks = tuner.as_mut().map_or(0, |t| t.ticks());
        Ok(Recorder {
            sampler,
            has_ksmd: first.ksmd_cpu.is_some(),
            tick_ms: 1000.0 / sys::clock_ticks() as f64,
            start: Instant::now(),
            base,
            base_ksmd_ns: first.ksmd_cpu.map_or(0, |c| c.ns),
            tuner,
            base_tuner_ticks,
        })
    }

    /// When recording started.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Whether ksmd's CPU time can be read.
    pub fn has_ksmd(&self) -> bool {
        self.has_ksmd
    }

    /// Take one point.
    pub fn point(&mut self) -> crate::Result<Point> {
        let t_ms = self.start.elapsed().as_millis() as u64;
        let sample = self.sampler.take()?;
        let s = sample.ksm_state(self.sampler.ksm())?;
        let ksmd_ns = sample.ksmd_cpu.map_or(self.base_ksmd_ns, |c| c.ns);
        let tuner_ticks = self.tuner.as_mut().map_or(0, |t| t.ticks());
        let since = |now: Option<u64>, base: Option<u64>| -> Option<u64> {
            Some(now?.saturating_sub(base.unwrap_or(0)))
        };
        Ok(Point {
            t_ms,
            saved_pages: s.saved_pages(),
            pages_shared: s.pages_shared.unwrap_or(0),
            pages_sharing: s.pages_sharing.unwrap_or(0),
            ksm_zero_pages: s.ksm_zero_pages.unwrap_or(0),
            pages_volatile: s.pages_volatile.unwrap_or(0),
            general_profit_bytes: s.general_profit,
            full_scans: since(s.full_scans, self.base.full_scans).unwrap_or(0),
            pages_scanned: since(s.pages_scanned, self.base.pages_scanned),
            pages_skipped: since(s.pages_skipped, self.base.pages_skipped),
            ksmd_cpu_ms: (ksmd_ns.saturating_sub(self.base_ksmd_ns) as f64 / 1e6).round() as u64,
            tuner_cpu_ms: (tuner_ticks.saturating_sub(self.base_tuner_ticks) as f64 * self.tick_ms)
                .round() as u64,
            pages_to_scan: s.pages_to_scan,
            sleep_millisecs: s.sleep_millisecs,
            run: s.run.map(|r| r.as_u8()),
            advisor_on: s.advisor_mode.map(|_| s.advisor_active()),
            use_zero_pages: s.use_zero_pages == Some(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_sampled() {
        let root = Root::default();
        let me = std::process::id();
        assert!(proc::stat(&root, me).unwrap().pgrp > 0);
        let mut g = GroupCpu::new(&root, me);
        let a = g.ticks();
        // Burn some CPU; the count must not go backwards.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(g.ticks() >= a);
    }
}
