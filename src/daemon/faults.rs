//! Errors of the running loop, each logged once.

use std::sync::Mutex;

use log::{error, info};

use crate::metrics::TunerMetrics;

/// Errors of the running loop, each logged once: a fault that repeats every
/// cycle is reported when it starts (or its message changes) and when it
/// clears, and counted in the metrics every time.
#[derive(Debug, Default)]
pub struct Faults {
    active: std::collections::HashMap<&'static str, String>,
}

impl Faults {
    /// Record a failure of `what`.
    pub fn fail(&mut self, what: &'static str, msg: String, metrics: &Mutex<TunerMetrics>) {
        if let Ok(mut m) = metrics.lock() {
            m.errors += 1;
        }
        if self.active.get(what) != Some(&msg) {
            error!("{msg}");
            self.active.insert(what, msg);
        }
    }

    /// `what` worked: say so if it had failed.
    pub fn ok(&mut self, what: &'static str) {
        if let Some(msg) = self.active.remove(what) {
            info!("{what} works again (was: {msg})");
        }
    }
}

/// Which of a changing set of processes were already reported: each is
/// reported once while it lives.
#[derive(Debug, Default)]
pub struct Reported {
    seen: std::collections::BTreeSet<u32>,
}

impl Reported {
    /// The pids in `now` not reported before; forgets those gone.
    pub fn new_ones(&mut self, now: &[u32]) -> Vec<u32> {
        self.seen.retain(|p| now.contains(p));
        now.iter()
            .copied()
            .filter(|&p| self.seen.insert(p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_is_reported_once_while_it_lives() {
        let mut r = Reported::default();
        assert_eq!(r.new_ones(&[5, 7]), [5, 7]);
        assert!(r.new_ones(&[5, 7]).is_empty());
        assert_eq!(r.new_ones(&[7, 9]), [9]);
        // 5 exited; a new process with its pid is new.
        assert_eq!(r.new_ones(&[5, 7, 9]), [5]);
        assert!(r.new_ones(&[]).is_empty());
    }
}
