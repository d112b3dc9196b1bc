//! The adaptive policy's memory between samples: the mode, what its steps
//! measured and marked, and a short history for the windows at rest.

use std::collections::VecDeque;

use crate::kernel::ksm::Run;

use super::{Input, HISTORY_S};

/// Where the policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// ksmd stopped: nothing to gain and no pressure.
    #[default]
    Stopped,
    /// Scanning at the CPU budget.
    Sprint,
    /// Converged under pressure: scanning at the idle budget.
    Idle,
    /// ksmd stopped because KSM costs more memory than it saves.
    Backoff,
}

impl Mode {
    /// The name shown in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Stopped => "stopped",
            Mode::Sprint => "sprint",
            Mode::Idle => "idle",
            Mode::Backoff => "backoff",
        }
    }
}

/// One past sample, for windows at rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Point {
    pub(super) now: f64,
    pub(super) cpu: Option<f64>,
    pub(super) scanned: Option<u64>,
}

/// The policy's memory between samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub mode: Mode,
    /// The previous sample.
    pub(super) last: Option<Input>,
    /// Whether the previous sample was under pressure.
    pub(super) pressure: bool,
    /// Estimated ksmd CPU seconds per scanned page.
    pub(super) cost: Option<f64>,
    /// The pages_to_scan chosen last.
    pub pages: u64,
    /// The sleep_millisecs chosen last.
    pub sleep_ms: u64,
    /// The run chosen last (`None` before the first decision).
    pub(super) run: Option<Run>,
    /// full_scans when the sprint began.
    pub(super) sprint_scans: u64,
    /// saved_pages at the last full-scan boundary, and at the one before.
    pub(super) boundary_saved: Option<u64>,
    /// Pages saved by the last completed full scan.
    pub(super) last_scan_gain: Option<u64>,
    /// (pages_scanned, saved_pages) when merging last made progress.
    pub(super) gain_mark: Option<(u64, u64)>,
    /// Idle-rate merging: (time, saved) at the start of the idle period.
    pub(super) idle_mark: Option<(f64, u64)>,
    /// When ksmd was last seen doing work (or the sprint began).
    pub(super) work_at: Option<f64>,
    /// Samples of the last [`HISTORY_S`], at least half a second apart.
    pub(super) history: VecDeque<Point>,
    /// When the idle period began, and when its batch last changed.
    pub(super) idle_since: f64,
    pub(super) set_at: f64,
    /// (time, general_profit, saved) at the start of the profit window.
    pub(super) profit_mark: Option<(f64, i64, u64)>,
}

impl State {
    /// Whether the kernel runs what this policy chose last. Unknown
    /// readings count as in force.
    pub(super) fn in_force(&self, i: &Input) -> bool {
        let Some(run) = self.run else { return true };
        let same = |read: Option<u64>, chosen: u64| read.is_none_or(|v| v == chosen);
        match (run, i.run) {
            (_, None) => true,
            (Run::Merge, Some(Run::Merge)) => {
                same(i.sleep_millisecs, self.sleep_ms)
                    && (i.advisor_active || same(i.pages_to_scan, self.pages))
            }
            (chosen, Some(read)) => chosen == read,
        }
    }

    /// Keep `i` in the history (at least half a second after the last
    /// point kept), and no more than [`HISTORY_S`] of it.
    pub(super) fn remember(&mut self, i: &Input) {
        if self.history.back().is_some_and(|b| i.now < b.now) {
            self.history.clear();
        }
        if self.history.back().is_none_or(|b| i.now - b.now >= 0.5) {
            self.history.push_back(Point {
                now: i.now,
                cpu: i.ksmd_cpu,
                scanned: i.pages_scanned,
            });
        }
        while self
            .history
            .front()
            .is_some_and(|f| f.now < i.now - HISTORY_S)
        {
            self.history.pop_front();
        }
    }
}
