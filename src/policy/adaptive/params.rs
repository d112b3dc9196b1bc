//! What the adaptive policy is given: its parameters, what changed outside
//! the counters, and each sample as the policy needs it.

use crate::kernel::ksm::Run;
use crate::sample::Sample;

/// The policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// ksmd's CPU budget while sprinting, as a fraction of one core.
    pub max_cpu: f64,
    /// Memory pressure threshold on MemAvailable, KiB.
    pub thres_kib: u64,
    /// The page size in bytes (for messages).
    pub page_size: u64,
}

/// What changed since the last decision, outside the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The daemon started or switched to this policy.
    Start,
    /// A retune was asked for (SIGUSR1, SIGHUP, the libvirt hook).
    Retune,
    /// Processes that opted memory in to KSM appeared or exited.
    Processes { appeared: usize, exited: usize },
}

/// One sample, as the policy needs it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Input {
    /// Seconds since the daemon started (monotonic).
    pub now: f64,
    /// MemAvailable (or MemFree+Buffers+Cached on old kernels), KiB.
    pub available_kib: u64,
    /// `some avg10` of /proc/pressure/memory, where the kernel has PSI.
    pub psi_some_avg10: Option<f64>,
    /// ksmd's CPU time so far, seconds.
    pub ksmd_cpu: Option<f64>,
    /// The granularity of `ksmd_cpu`, seconds: 1e-9 where the kernel keeps
    /// ksmd's run time (schedstat), a clock tick (0.01) otherwise; 0 is
    /// taken as fine.
    pub ksmd_cpu_resolution: f64,
    /// `pages_scanned` (Linux 6.6+).
    pub pages_scanned: Option<u64>,
    pub full_scans: u64,
    /// pages_sharing + ksm_zero_pages.
    pub saved_pages: u64,
    /// Pages ksmd keeps track of: shared + sharing + unshared + volatile.
    pub tracked_pages: u64,
    pub volatile_pages: u64,
    /// `general_profit`, bytes (Linux 6.4+): saved minus KSM's metadata,
    /// plus the memory KSM's huge-page splits freed outside its counters
    /// when the sample counted it (a host whose guests are mostly
    /// zero-filled huge pages is not unprofitable).
    pub general_profit: Option<i64>,
    /// Whether the kernel's scan-time advisor chooses pages_to_scan.
    pub advisor_active: bool,
    /// `run`, `pages_to_scan` and `sleep_millisecs` as read: whether the
    /// last decision is in force (`None`: not known, taken as in force).
    pub run: Option<Run>,
    pub pages_to_scan: Option<u64>,
    pub sleep_millisecs: Option<u64>,
}

impl Input {
    /// From a sample that read meminfo (`available_kib` is 0 without it),
    /// pressure and ksmd's CPU time; `None` when the kernel has no KSM.
    pub fn from_sample(s: &Sample) -> Option<Input> {
        let state = s.ksm.as_ref()?;
        Some(Input {
            now: s.elapsed.as_secs_f64(),
            available_kib: s
                .mem
                .as_ref()
                .map_or(0, |m| m.mem_available.unwrap_or_else(|| m.classic_free())),
            psi_some_avg10: s.psi_some_avg10,
            ksmd_cpu: s.ksmd_cpu_seconds(),
            ksmd_cpu_resolution: s.ksmd_cpu.map_or(0.0, |c| c.resolution_ns as f64 / 1e9),
            pages_scanned: state.pages_scanned,
            full_scans: state.full_scans.unwrap_or(0),
            saved_pages: state.saved_pages(),
            tracked_pages: state.pages_shared.unwrap_or(0)
                + state.pages_sharing.unwrap_or(0)
                + state.pages_unshared.unwrap_or(0)
                + state.pages_volatile.unwrap_or(0),
            volatile_pages: state.pages_volatile.unwrap_or(0),
            general_profit: state.general_profit.map(|g| {
                let split = s.split_freed.as_ref().and_then(|f| f.pages).unwrap_or(0);
                g.saturating_add((split.saturating_mul(s.page_size)) as i64)
            }),
            advisor_active: state.advisor_active(),
            run: state.run,
            pages_to_scan: state.pages_to_scan,
            sleep_millisecs: state.sleep_millisecs,
        })
    }
}

impl Trigger {
    /// The processes' trigger from what the sample saw come and go.
    pub fn from_sample(s: &Sample) -> Option<Trigger> {
        let c = s.opted_in.as_ref()?;
        (c.appeared + c.exited > 0).then_some(Trigger::Processes {
            appeared: c.appeared,
            exited: c.exited,
        })
    }
}
