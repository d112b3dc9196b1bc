//! Tuning policies: pure functions from (configuration, previous state,
//! current sample) to the settings to write. They touch no files, so they
//! are tested with numbers only.

pub mod adaptive;
pub mod classic;
pub mod plan;
pub mod tuner;

use crate::kernel::ksm::Run;

/// What a policy wants written, in order: `pages_to_scan`,
/// `sleep_millisecs`, then `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub run: Run,
    /// `None`: leave as it is.
    pub pages_to_scan: Option<u64>,
    /// `None`: leave as it is.
    pub sleep_millisecs: Option<u64>,
    /// The original's debug lines for this decision (classic), in order.
    pub debug_lines: Vec<String>,
    /// A one-line reason for people (info logs, STATUS=).
    pub reason: String,
}
