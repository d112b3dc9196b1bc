//! The cross-domain audit's thread: with KSM_TRUST_DOMAINS set, it runs
//! [`estimate::audit::audit`] at start and every
//! KSM_DOMAIN_AUDIT_INTERVAL seconds, at a lowered priority and under a
//! CPU cap ([`audit::DEFAULT_CPU_LIMIT`] percent of one CPU), never in the
//! tuning cycle. Its result goes where the metrics render it
//! ([`TunerMetrics::domain_audit`]); with KSM_CROSS_DOMAIN=warn each new
//! pair of domains that share pages is logged once, its processes named.

use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use log::{debug, info, warn};

use crate::config::{Config, CrossDomain, TrustDomains};
use crate::estimate::audit;
use crate::kernel::sys;
use crate::metrics::TunerMetrics;
use crate::root::Root;

/// What the thread is told to do (changed on reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    domains: TrustDomains,
    policy: CrossDomain,
    interval: Duration,
}

impl Settings {
    fn of(c: &Config) -> Settings {
        Settings {
            domains: c.trust_domains,
            policy: c.cross_domain,
            interval: Duration::from_secs(c.domain_audit_interval),
        }
    }
}

/// The audit thread, if domains are configured; it ends when this drops.
#[derive(Default)]
pub(super) struct Auditor {
    settings: Option<Arc<Mutex<Settings>>>,
    /// Dropping the sender wakes the thread and ends it; a message makes
    /// it audit now (after a reload).
    wake: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Auditor {
    /// Start, or tell the running thread the new configuration.
    pub(super) fn configure(
        &mut self,
        root: &Root,
        config: &Config,
        metrics: &Arc<Mutex<TunerMetrics>>,
    ) {
        let new = Settings::of(config);
        if !new.domains.enabled() {
            if self.thread.is_some() {
                info!("cross-domain audit stopped (KSM_TRUST_DOMAINS=none)");
            }
            self.stop();
            if let Ok(mut m) = metrics.lock() {
                m.domain_audit = None;
            }
            return;
        }
        if let (Some(s), Some(w)) = (&self.settings, &self.wake) {
            let changed = s.lock().map(|mut s| std::mem::replace(&mut *s, new) != new);
            if changed.unwrap_or(true) {
                let _ = w.send(());
            }
            return;
        }
        let settings = Arc::new(Mutex::new(new));
        let (tx, rx) = mpsc::channel();
        let (root, m, s) = (root.clone(), Arc::clone(metrics), Arc::clone(&settings));
        let spawned = std::thread::Builder::new()
            .name("domain-audit".into())
            .spawn(move || run(&root, &s, &m, &rx));
        match spawned {
            Ok(t) => {
                info!(
                    "cross-domain audit: domains by {}, every {} s, at most {}% of one CPU",
                    new.domains,
                    new.interval.as_secs(),
                    audit::DEFAULT_CPU_LIMIT
                );
                self.settings = Some(settings);
                self.wake = Some(tx);
                self.thread = Some(t);
            }
            Err(e) => warn!("cannot start the cross-domain audit's thread: {e}"),
        }
    }

    fn stop(&mut self) {
        self.wake = None;
        self.settings = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    root: &Root,
    settings: &Mutex<Settings>,
    metrics: &Mutex<TunerMetrics>,
    wake: &mpsc::Receiver<()>,
) {
    if let Err(e) = sys::lower_thread_priority(10) {
        debug!("cross-domain audit: cannot lower its priority: {e}");
    }
    let mut warned: HashSet<(String, String)> = HashSet::new();
    let mut failing = false;
    loop {
        let Ok(s) = settings.lock().map(|s| *s) else {
            return;
        };
        match audit::audit(root, s.domains, Some(audit::DEFAULT_CPU_LIMIT)) {
            Ok(a) => {
                if failing {
                    info!("cross-domain audit works again");
                    failing = false;
                }
                debug!(
                    "cross-domain audit: {} processes, {} pages in {:.3} s ({:.3} s CPU), {} pairs share {} KiB",
                    a.processes_scanned,
                    a.pages_examined,
                    a.duration_seconds,
                    a.cpu_seconds,
                    a.pairs.len(),
                    a.cross_domain_bytes / 1024
                );
                if s.policy == CrossDomain::Warn {
                    for p in &a.pairs {
                        if warned.insert((p.a.clone(), p.b.clone())) {
                            warn!("{}", audit::warning(p, &a));
                        }
                    }
                }
                if let Ok(mut m) = metrics.lock() {
                    m.domain_audit = Some(Arc::new(a));
                }
            }
            Err(e) => {
                if !failing {
                    warn!("cross-domain audit failed: {e} (kept trying every interval)");
                    failing = true;
                }
            }
        }
        match wake.recv_timeout(s.interval) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}
