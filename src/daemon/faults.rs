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

/// Processes whose `/proc/PID/ksm_stat` was refused (another user's,
/// without `CAP_DAC_READ_SEARCH` or with it denied by SELinux): one
/// warning per process while it lives, saying which, why, and what it
/// means for the count.
#[derive(Debug, Default)]
pub struct RefusedKsmStat {
    reported: Reported,
}

impl RefusedKsmStat {
    /// Report the processes of `now` not reported before.
    pub fn report(&mut self, root: &crate::root::Root, now: &[u32]) {
        let new = self.reported.new_ones(now);
        if !new.is_empty() {
            log::warn!("{}", Self::message(root, &new));
        }
    }

    fn message(root: &crate::root::Root, pids: &[u32]) -> String {
        const SHOWN: usize = 8;
        let mut names: Vec<String> = pids
            .iter()
            .take(SHOWN)
            .map(|&p| match crate::kernel::proc::comm(root, p) {
                Some(c) => format!("{p} ({c})"),
                None => p.to_string(),
            })
            .collect();
        if pids.len() > SHOWN {
            names.push(format!("and {} more", pids.len() - SHOWN));
        }
        format!(
            "cannot read /proc/PID/ksm_stat of {}: permission denied (another user's \
             process: reading it needs CAP_DAC_READ_SEARCH, which the unit grants; under \
             SELinux the policy must also allow ksmtuned_t the dac_read_search capability, \
             as the ksmtuned module does); whether they opted in to KSM is unknown, so they \
             are not counted (processes named like QEMU still are)",
            names.join(", ")
        )
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
