//! Errors of the running loop, each logged once.

use std::sync::{Arc, Mutex};

use log::{error, info};

use crate::metrics::TunerMetrics;

/// Errors of the running loop, each logged once: a fault that repeats every
/// cycle is reported when it starts (or its message changes) and when it
/// clears, and counted in the metrics every time.
#[derive(Debug)]
pub struct Faults {
    active: std::collections::HashMap<&'static str, String>,
    /// Where failures are counted.
    metrics: Arc<Mutex<TunerMetrics>>,
}

impl Faults {
    /// No fault yet; failures are counted in `metrics`.
    pub fn new(metrics: Arc<Mutex<TunerMetrics>>) -> Faults {
        Faults {
            active: Default::default(),
            metrics,
        }
    }

    /// Record a failure of `what`.
    pub fn fail(&mut self, what: &'static str, msg: String) {
        if let Ok(mut m) = self.metrics.lock() {
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
