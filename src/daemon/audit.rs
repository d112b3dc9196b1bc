//! The cross-domain audit's thread: with KSM_TRUST_DOMAINS set, it runs
//! [`estimate::audit::audit`] at start and every
//! KSM_DOMAIN_AUDIT_INTERVAL seconds, at a lowered priority and under a
//! CPU cap ([`audit::DEFAULT_CPU_LIMIT`] percent of one CPU), never in the
//! tuning cycle. Its result goes where the metrics render it
//! ([`TunerMetrics::domain_audit`]) and to [`LAST_AUDIT_FILE`] (which
//! `ksmctl status`, `ps` and `top` read); with KSM_CROSS_DOMAIN=warn or
//! refuse each new pair of domains that share pages is logged once, its
//! processes named. With refuse, the first pair also puts a hold on KSM
//! ([`TunerMetrics::refusal`]) and wakes the tuning loop, which stops
//! ksmd and unmerges (see `run.rs`); a reload lifts the hold.

use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::SystemTime;

use log::{debug, error, info, warn};

use crate::config::{Config, CrossDomain, TrustDomains};
use crate::estimate::audit;
use crate::kernel::sys;
use crate::metrics::TunerMetrics;
use crate::root::Root;
use crate::sample::last_audit::{LastAudit, Refusal, LAST_AUDIT_FILE};

use super::run::Event;

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

/// Write what the metrics hold (the last audit and any hold) to
/// [`LAST_AUDIT_FILE`]; a failure is a debug line (the metrics still
/// have it; the views then say nothing of domains).
pub(super) fn publish(root: &Root, config: &Config, m: &TunerMetrics) {
    let Some(audit) = &m.domain_audit else {
        return;
    };
    let last = LastAudit {
        policy: config.cross_domain.to_string(),
        interval_seconds: config.domain_audit_interval,
        audit: (**audit).clone(),
        refusal: m.refusal.clone(),
    };
    if let Err(e) = last.write(root) {
        debug!("cannot write {}: {e}", LastAudit::path(root).display());
    }
}

impl Auditor {
    /// Start, or tell the running thread the new configuration.
    /// A hold of KSM_CROSS_DOMAIN=refuse is lifted (a reload is the
    /// administrator's word that KSM may merge again), and the audit runs
    /// again at once.
    pub(super) fn configure(
        &mut self,
        root: &Root,
        config: &Config,
        metrics: &Arc<Mutex<TunerMetrics>>,
        events: &mpsc::SyncSender<Event>,
    ) {
        let new = Settings::of(config);
        if let Ok(mut m) = metrics.lock() {
            if m.refusal.take().is_some() {
                info!("KSM_CROSS_DOMAIN=refuse: the hold on KSM is lifted by the reload; tuning again");
            }
            if new.domains.enabled() {
                publish(root, config, &m);
            }
        }
        if !new.domains.enabled() {
            if self.thread.is_some() {
                info!("cross-domain audit stopped (KSM_TRUST_DOMAINS=none)");
            }
            self.stop();
            if let Ok(mut m) = metrics.lock() {
                m.domain_audit = None;
            }
            if let Err(e) = LastAudit::remove(root) {
                warn!("cannot remove {}: {e}", LastAudit::path(root).display());
            }
            return;
        }
        if let (Some(s), Some(w)) = (&self.settings, &self.wake) {
            if let Ok(mut s) = s.lock() {
                *s = new;
            }
            let _ = w.send(());
            return;
        }
        let settings = Arc::new(Mutex::new(new));
        let (tx, rx) = mpsc::channel();
        let (root, m, s) = (root.clone(), Arc::clone(metrics), Arc::clone(&settings));
        let (config, events) = (config.clone(), events.clone());
        let spawned = std::thread::Builder::new()
            .name("domain-audit".into())
            .spawn(move || run(&root, &config, &s, &m, &rx, &events));
        match spawned {
            Ok(t) => {
                info!(
                    "cross-domain audit: domains by {}, every {} s, at most {}% of one CPU, \
                     KSM_CROSS_DOMAIN={}: {LAST_AUDIT_FILE}",
                    new.domains,
                    new.interval.as_secs(),
                    audit::DEFAULT_CPU_LIMIT,
                    new.policy
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
    config: &Config,
    settings: &Mutex<Settings>,
    metrics: &Mutex<TunerMetrics>,
    wake: &mpsc::Receiver<()>,
    events: &mpsc::SyncSender<Event>,
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
        // The file says what the daemon runs now (a reload changes it).
        let mut config = config.clone();
        config.cross_domain = s.policy;
        config.domain_audit_interval = s.interval.as_secs();
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
                if s.policy != CrossDomain::Allow {
                    for p in &a.pairs {
                        if warned.insert((p.a.clone(), p.b.clone())) {
                            warn!("{}", audit::warning(p, &a, &s.policy.to_string()));
                        }
                    }
                }
                let refuse = s.policy == CrossDomain::Refuse && !a.pairs.is_empty();
                let mut held_now = false;
                if let Ok(mut m) = metrics.lock() {
                    if refuse && m.refusal.is_none() {
                        m.refusal = Some(Refusal {
                            since_unix_seconds: SystemTime::now()
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs()),
                            pairs: a.pairs.clone(),
                            cross_domain_bytes: a.cross_domain_bytes,
                            saved_bytes_given_up: None,
                            unmerged: false,
                        });
                        held_now = true;
                    }
                    m.domain_audit = Some(Arc::new(a));
                    publish(root, &config, &m);
                }
                if held_now {
                    // The loop acts at once, not at its next cycle.
                    if events.try_send(Event::CrossDomain).is_err() {
                        error!("KSM_CROSS_DOMAIN=refuse: cannot wake the tuning loop; it acts at its next cycle");
                    }
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
