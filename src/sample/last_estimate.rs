//! The daemon's last continuous estimate (`KSM_ESTIMATE_INTERVAL`): what
//! KSM would save on the mergeable memory, what is still to gain, and
//! when it was measured. The daemon writes it to [`LAST_ESTIMATE_FILE`]
//! after each estimate and serves it in its metrics; `ksmctl status`
//! reads the file and shows "Still to gain" while it is recent.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::root::Root;

/// Where the daemon keeps its last estimate (under the root).
pub const LAST_ESTIMATE_FILE: &str = "/run/ksmtuned/estimate.json";

/// One estimate's figures, in bytes (see docs/estimate.md, "Continuously").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastEstimate {
    /// When it finished, seconds since 1970.
    pub finished_unix_seconds: u64,
    /// The daemon's KSM_ESTIMATE_INTERVAL when it ran, seconds.
    pub interval_seconds: u64,
    /// What KSM would save in total on the memory opted in now.
    pub saved_bytes: u64,
    /// Two standard errors of `saved_bytes` from sampling (95%).
    pub saved_error_bytes: u64,
    /// `saved_bytes` minus what those processes save now (signed).
    pub to_gain_bytes: i64,
    /// The zero-only what-if.
    pub zero_only_saved_bytes: u64,
    /// Memory read.
    pub scanned_bytes: u64,
    /// One content in this many kept.
    pub sample: u64,
    /// CPU time the estimate itself took (its thread), seconds.
    pub cpu_seconds: f64,
    /// Wall time it took, seconds.
    pub elapsed_seconds: f64,
}

impl LastEstimate {
    /// The file under `root`.
    pub fn path(root: &Root) -> PathBuf {
        root.join(LAST_ESTIMATE_FILE)
    }

    /// The last estimate, `None` when there is none (no daemon estimating,
    /// or a file that does not parse).
    pub fn read(root: &Root) -> Option<LastEstimate> {
        super::published::read(&Self::path(root))
    }

    /// Write it (a temporary file renamed over the old one, so a reader
    /// never sees half of it).
    pub fn write(&self, root: &Root) -> std::io::Result<()> {
        super::published::write(&Self::path(root), self)
    }

    /// How old it is at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        let at = UNIX_EPOCH + Duration::from_secs(self.finished_unix_seconds);
        now.duration_since(at).unwrap_or(Duration::ZERO)
    }

    /// Whether it is recent at `now`: younger than two intervals (the
    /// next one is late, or the daemon stopped estimating, after that).
    pub fn recent(&self, now: SystemTime) -> bool {
        self.age(now) <= Duration::from_secs(self.interval_seconds.saturating_mul(2).max(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example() -> LastEstimate {
        LastEstimate {
            finished_unix_seconds: 1_000_000,
            interval_seconds: 3600,
            saved_bytes: 3 << 30,
            saved_error_bytes: 100 << 20,
            to_gain_bytes: 1 << 30,
            zero_only_saved_bytes: 1 << 30,
            scanned_bytes: 8 << 30,
            sample: 16,
            cpu_seconds: 4.5,
            elapsed_seconds: 45.0,
        }
    }

    #[test]
    fn written_read_and_aged() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert_eq!(LastEstimate::read(&root), None);
        let e = example();
        e.write(&root).unwrap();
        assert_eq!(LastEstimate::read(&root), Some(e.clone()));
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(e.age(at + Duration::from_secs(90)), Duration::from_secs(90));
        assert_eq!(e.age(at - Duration::from_secs(5)), Duration::ZERO);
        assert!(e.recent(at + Duration::from_secs(7200)));
        assert!(!e.recent(at + Duration::from_secs(7201)));
        std::fs::write(LastEstimate::path(&root), "{").unwrap();
        assert_eq!(LastEstimate::read(&root), None, "a broken file is none");
    }
}
