//! The daemon's life: start-up, the loop and one cycle.
//!
//! A synchronous loop whose wait can be interrupted: signals arrive on a
//! channel from a named thread, and the loop waits with `recv_timeout`
//! until the next adjustment is due. SIGUSR1 = retune now (the next
//! interval starts from then), SIGHUP = reload the configuration and
//! retune, SIGTERM/SIGINT = exit, leaving `run` as it is.
//!
//! The schedule is fixed-rate: cycles start every interval counted from
//! the first (not from the end of the one before), and a cycle that runs
//! past the next slot makes the loop skip that slot rather than run a
//! burst of late ones. How late each cycle started, how long it took and
//! the slots skipped are in the metrics (`ksm_tuner_cycle_*`).
//!
//! Each cycle takes one [`Sample`] (meminfo, the processes that changed
//! since the last cycle as the sampler's census reports them, KSM's
//! files), hands it to the pure policy, and executes the [`Plan`] of
//! writes of its decision.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use log::{debug, error, info, warn};

use super::audit::Auditor;
use super::debuglog::DebugLog;
use super::faults::{Faults, RefusedKsmStat};
use super::pidfile::PidFile;
use crate::config::{self, Config, PolicyKind};
use crate::doctor::rails::Headroom;
use crate::human;
use crate::kernel::ksm::{Knob, Ksm, KsmState, Run};
use crate::kernel::meminfo::MemInfo;
use crate::metrics::{Published, Server, TunerMetrics};
use crate::policy::plan::{Applied, Plan, Style};
use crate::policy::tuner::Tuner;
use crate::policy::Decision;
use crate::root::Root;
use crate::sample::census::Source;
use crate::sample::{Sample, Sampler};

/// How the daemon was started (from its command line).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--config`: the file instead of /etc/ksmtuned.conf.
    pub config: Option<PathBuf>,
    pub trust: config::Trust,
    /// `--strict`: warnings in the configuration are errors.
    pub strict: bool,
    /// `--policy`: replaces KSM_POLICY.
    pub policy: Option<PolicyKind>,
    /// `--dry-run`: decide and log, write nothing.
    pub dry_run: bool,
    /// `--interval-ms`: replaces KSM_MONITOR_INTERVAL.
    pub interval: Option<Duration>,
    /// The pid file to hold.
    pub pid_file: PathBuf,
}

impl Options {
    /// Read the configuration, logging its warnings and errors; `None`
    /// when it has errors (or, with `--strict`, warnings). `--policy`
    /// overrides KSM_POLICY.
    fn load_config(&self, root: &Root) -> Option<Config> {
        let loaded = config::load(root, self.config.as_deref(), self.trust);
        for w in &loaded.warnings {
            if self.strict {
                error!("{w} (an error with --strict)");
            } else {
                warn!("{w}");
            }
        }
        if !loaded.is_ok() || (self.strict && !loaded.warnings.is_empty()) {
            for e in &loaded.errors {
                error!("{e}");
            }
            return None;
        }
        let mut config = loaded.config;
        if let Some(p) = self.policy {
            config.policy = p;
        }
        Some(config)
    }
}

/// How long a metrics port the kernel or SELinux refused waits for its
/// next try (a reload tries at once).
const LISTEN_REFUSED_RETRY: Duration = Duration::from_secs(600);

pub(super) enum Event {
    Retune,
    Reload,
    Exit(i32),
    /// The audit found domains sharing pages under KSM_CROSS_DOMAIN=refuse:
    /// act now (see [`Daemon::hold`]).
    CrossDomain,
}

/// systemd's notification socket and watchdog.
struct Systemd {
    notify: bool,
    /// How often to ping the watchdog (half its timeout).
    watchdog: Option<Duration>,
}

impl Systemd {
    fn from_env() -> Systemd {
        let mut usec = 0;
        Systemd {
            notify: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(false, &mut usec)
                .then(|| Duration::from_micros(usec / 2)),
        }
    }

    fn send(&self, states: &[sd_notify::NotifyState]) {
        if self.notify {
            let _ = sd_notify::notify(false, states);
        }
    }
}

/// Executes plans: writes KSM's settings (or, in a dry run, says what it
/// would write), remembering what is in force.
struct Writer {
    ksm: Ksm,
    dry_run: bool,
    /// What the last plan put in force.
    last: Option<Applied>,
    /// The advisor's choosing pages_to_scan was said.
    advisor_noted: bool,
}

pub(super) struct Daemon {
    root: Root,
    opts: Options,
    tuner: Tuner,
    /// Reads the system once per cycle; follows the processes the policy
    /// needs.
    sampler: Sampler,
    writer: Writer,
    debug_log: DebugLog,
    faults: Faults,
    /// Processes whose ksm_stat was refused, reported once each.
    ksm_stat_refused: RefusedKsmStat,
    metrics: Arc<Mutex<TunerMetrics>>,
    /// The last sample, for the metrics endpoint.
    published: Published,
    server: Option<Server>,
    /// When to try a refused metrics port again.
    listen_retry: Option<Instant>,
    /// The cross-domain audit's thread (KSM_TRUST_DOMAINS).
    auditor: Auditor,
    systemd: Systemd,
    /// The other tuners KSM is left to.
    yielded_to: Vec<u32>,
    /// The background estimate (KSM_ESTIMATE_INTERVAL).
    estimator: Option<super::estimate::Estimator>,
    /// `None` when the pid file could not be created (said once at start).
    _pid: Option<PidFile>,
    events: mpsc::Receiver<Event>,
    /// Wakes the loop from another thread (the audit's).
    wake: mpsc::SyncSender<Event>,
}

fn signal_thread() -> anyhow::Result<(mpsc::SyncSender<Event>, mpsc::Receiver<Event>)> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR1, SIGHUP, SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    // A bounded channel: its buffer is allocated once. The unbounded one
    // allocates a new block every 31 messages, which the soak saw as the
    // daemon's resident memory stepping up a page after ~100 s of signals.
    // A full channel only delays the signal thread (signals coalesce).
    let (tx, rx) = mpsc::sync_channel(16);
    let others = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let ev = match sig {
                    SIGUSR1 => Event::Retune,
                    SIGHUP => Event::Reload,
                    _ => Event::Exit(0),
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok((others, rx))
}

/// The sampler of a tuner, never counting this process as another tuner.
fn sampler_for(root: &Root, tuner: &Tuner) -> Sampler {
    let mut s = Sampler::for_policy(root, tuner.kind(), Some(std::process::id()));
    s.set_flavour(tuner.flavour().0);
    s
}

impl Daemon {
    /// Everything before the first adjustment. `Ok(None)`: nothing to do
    /// (a masked unit), exit 0.
    pub(super) fn start(root: &Root, opts: Options) -> anyhow::Result<Option<Daemon>> {
        let Some(config) = opts.load_config(root) else {
            return Err(super::InvalidConfig {
                strict: if opts.strict { " --strict" } else { "" },
            }
            .into());
        };
        let ksm = Ksm::new(root);
        ksm.require()?;
        if let Some(unit) = crate::sample::services::masked_unit(root) {
            warn!(
                "{} is masked (for example by a tuned profile): KSM is not to be managed here; exiting",
                unit.display()
            );
            return Ok(None);
        }
        let pid = PidFile::acquire_or_run_without(&opts.pid_file)?;
        let (wake, events) = signal_thread()?;
        let mem = MemInfo::read(root)?;
        let flavour = config::flavour::resolve(root, config.flavour);
        let tuner = Tuner::new(config, flavour, mem.mem_total);
        let sampler = sampler_for(root, &tuner);
        match sampler.census_source() {
            Some(Source::Events) | None => {
                debug!("following processes through the kernel's process events")
            }
            // A test root: expected, not worth saying.
            Some(Source::Listing(why)) if !root.is_host() => debug!("listing /proc: {why}"),
            Some(Source::Listing(why)) => info!("listing /proc on every cycle: {why}"),
        }
        let (params, (flavour, why)) = (tuner.classic_params(), tuner.flavour());
        info!(
            "ksmtuned {} started: policy {}, flavour {flavour} ({why}), interval {}, sleep_millisecs {}, threshold {} KiB{}",
            env!("CARGO_PKG_VERSION"),
            tuner.kind(),
            match opts.interval {
                Some(d) => format!("{} ms", d.as_millis()),
                None => format!("{} s", tuner.config().monitor_interval),
            },
            params.sleep,
            params.thres,
            if opts.dry_run {
                " (dry run: nothing is written)"
            } else {
                ""
            }
        );
        let metrics = Arc::new(Mutex::new(TunerMetrics {
            policy: tuner.kind(),
            max_cpu_ratio: tuner.max_cpu_ratio(),
            ..TunerMetrics::default()
        }));
        let mut auditor = Auditor::default();
        auditor.configure(root, tuner.config(), &metrics, &wake);
        Ok(Some(Daemon {
            root: root.clone(),
            auditor,
            writer: Writer {
                ksm,
                dry_run: opts.dry_run,
                last: None,
                advisor_noted: false,
            },
            debug_log: DebugLog::from_config(tuner.config()),
            opts,
            sampler,
            tuner,
            faults: Faults::new(Arc::clone(&metrics)),
            ksm_stat_refused: RefusedKsmStat::default(),
            metrics,
            published: Published::default(),
            server: None,
            listen_retry: None,
            systemd: Systemd::from_env(),
            yielded_to: Vec::new(),
            estimator: None,
            _pid: pid,
            events,
            wake,
        }))
    }

    fn interval(&self) -> Duration {
        self.tuner.interval(self.opts.interval)
    }

    fn with_metrics(&self, f: impl FnOnce(&mut TunerMetrics)) {
        if let Ok(mut m) = self.metrics.lock() {
            f(&mut m);
        }
    }

    pub(super) fn run_loop(&mut self) -> anyhow::Result<()> {
        self.debug_params();
        let first = Instant::now();
        self.timed_cycle(Some(first));
        self.systemd.send(&[sd_notify::NotifyState::Ready]);
        let mut due = first + self.interval();
        let mut next_ping = self.systemd.watchdog.map(|w| Instant::now() + w);
        loop {
            let now = Instant::now();
            let wake = next_ping.map_or(due, |p| p.min(due));
            match self
                .events
                .recv_timeout(wake.saturating_duration_since(now))
            {
                Ok(Event::Exit(code)) => {
                    info!("exiting; KSM is left as it is");
                    self.systemd.send(&[sd_notify::NotifyState::Stopping]);
                    if code != 0 {
                        bail!("exiting with status {code}");
                    }
                    return Ok(());
                }
                Ok(Event::Retune) => {
                    info!("retune requested");
                    self.with_metrics(|m| m.retunes += 1);
                    self.tuner.retune();
                    self.timed_cycle(None);
                    due = Instant::now() + self.interval();
                }
                Ok(Event::CrossDomain) => {
                    self.timed_cycle(None);
                    due = Instant::now() + self.interval();
                }
                Ok(Event::Reload) => {
                    self.systemd.send(&[sd_notify::NotifyState::Reloading]);
                    self.reload();
                    self.tuner.retune();
                    self.timed_cycle(None);
                    self.systemd.send(&[sd_notify::NotifyState::Ready]);
                    due = Instant::now() + self.interval();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the signal thread stopped"),
            }
            let now = Instant::now();
            if now >= due {
                self.timed_cycle(Some(due));
                let (next, skipped) = next_due(due, self.interval(), Instant::now());
                if skipped > 0 {
                    debug!("the cycle overran its interval: {skipped} cycle(s) skipped");
                    self.with_metrics(|m| m.cycles_skipped += skipped);
                }
                due = next;
            }
            if let (Some(p), Some(w)) = (next_ping, self.systemd.watchdog) {
                if now >= p {
                    self.systemd.send(&[sd_notify::NotifyState::Watchdog]);
                    next_ping = Some(now + w);
                }
            }
        }
    }

    /// One cycle, timed for the metrics: `due` is when it was scheduled
    /// (`None` for a retune or reload, which are not).
    fn timed_cycle(&mut self, due: Option<Instant>) {
        let start = Instant::now();
        let delay = due.map(|d| start.saturating_duration_since(d));
        self.cycle();
        let took = start.elapsed();
        let interval = self.interval();
        self.with_metrics(|m| {
            m.interval = Some(interval);
            m.record_cycle(delay, took);
        });
    }

    /// SIGHUP: read the configuration again; keep the old one if the new
    /// one has errors.
    fn reload(&mut self) {
        let Some(new) = self.opts.load_config(&self.root) else {
            error!("configuration not reloaded: keeping the previous one");
            return;
        };
        let total = match MemInfo::read(&self.root) {
            Ok(m) => m.mem_total,
            Err(e) => {
                let total = self.tuner.classic_params().total;
                warn!("{e}; keeping MemTotal {total} KiB");
                total
            }
        };
        let flavour = config::flavour::resolve(&self.root, new.flavour);
        let reloaded = self.tuner.reload(new, flavour, total);
        if reloaded.changes.is_empty() {
            info!("configuration reloaded: nothing changed");
        } else {
            info!("configuration reloaded: {}", reloaded.changes.join(", "));
        }
        if reloaded.policy_changed {
            self.sampler = sampler_for(&self.root, &self.tuner);
        } else {
            self.sampler.set_flavour(self.tuner.flavour().0);
        }
        self.debug_log = DebugLog::from_config(self.tuner.config());
        self.auditor
            .configure(&self.root, self.tuner.config(), &self.metrics, &self.wake);
        self.debug_params();
        let (kind, budget) = (self.tuner.kind(), self.tuner.max_cpu_ratio());
        self.with_metrics(|m| {
            m.reloads += 1;
            m.policy = kind;
            m.max_cpu_ratio = budget;
        });
        // A new (or no) metrics address, or a web configuration (read again,
        // with its certificate, on every reload): the next cycle listens again.
        let config = self.tuner.config();
        if config.metrics_web_config.is_some()
            || self
                .server
                .as_ref()
                .map(|s| s.local_addr().to_string())
                .as_deref()
                != config.metrics_listen.as_deref()
        {
            self.server = None;
        }
        self.listen_retry = None;
    }

    /// The original's first debug lines: total, sleep and threshold.
    fn debug_params(&mut self) {
        for l in self.tuner.classic_params().debug_lines() {
            self.debug_line(&l);
        }
    }

    /// A DEBUG/LOGFILE line; a LOGFILE that cannot be written is reported
    /// once (the line then goes to standard output, as the original did).
    fn debug_line(&mut self, text: &str) {
        match self.debug_log.line(text) {
            Ok(()) => self.faults.ok("LOGFILE"),
            Err(e) => {
                let path = self.debug_log.logfile.clone().unwrap_or_default();
                self.faults.fail(
                    "LOGFILE",
                    format!(
                        "cannot append to LOGFILE {}: {e}; debug lines go to standard output",
                        path.display()
                    ),
                );
            }
        }
    }

    /// Listen for metrics when KSM_METRICS_LISTEN asks for it; a port that
    /// is taken is reported once and tried again every cycle; a port the
    /// kernel or SELinux refuses is tried again on a reload or after
    /// [`LISTEN_REFUSED_RETRY`] (each try is an audit record).
    fn ensure_metrics_server(&mut self) {
        let config = self.tuner.config();
        let Some(addr) = config.metrics_listen.clone() else {
            self.server = None;
            return;
        };
        if self.server.is_some() || self.listen_retry.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let web = match &config.metrics_web_config {
            Some(path) => match config::web::load(path, self.opts.trust) {
                Ok(web) => Some(Arc::new(web)),
                Err(errors) => {
                    let e = errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    let e = format!("{e}; not serving metrics; tuning goes on");
                    self.faults.fail("the metrics endpoint", e);
                    return;
                }
            },
            None => None,
        };
        let opts = crate::metrics::ServerOptions {
            web,
            published: Some(Arc::clone(&self.published)),
            ..Default::default()
        };
        let root = self.root.clone();
        match Server::spawn_with(&addr, root, Some(Arc::clone(&self.metrics)), opts) {
            Ok(server) => {
                info!("serving metrics on {}", server.url());
                self.server = Some(server);
                self.faults.ok("the metrics endpoint");
            }
            Err(e) => {
                let refused = matches!(e, crate::Error::Listen { refused: true, .. });
                self.listen_retry = refused.then(|| Instant::now() + LISTEN_REFUSED_RETRY);
                let again = if refused {
                    "; tried again on a reload or in 10 minutes"
                } else {
                    ""
                };
                self.faults.fail(
                    "the metrics endpoint",
                    format!("{e}; tuning goes on{again}"),
                )
            }
        }
    }

    /// Estimate in the background when KSM_ESTIMATE_INTERVAL asks for it
    /// (not in a dry run, whose files must not replace the daemon's); a
    /// new interval starts a new thread.
    fn ensure_estimator(&mut self) {
        let secs = self.tuner.config().estimate_interval;
        if secs == 0 || self.opts.dry_run {
            self.estimator = None;
            return;
        }
        let want = Duration::from_secs(secs);
        if self.estimator.as_ref().map(|e| e.interval()) == Some(want) {
            return;
        }
        self.estimator = None;
        let max_cpu = self.tuner.config().max_cpu;
        match super::estimate::Estimator::start(&self.root, want, max_cpu) {
            Ok(e) => {
                self.estimator = Some(e);
                self.faults.ok("the background estimate");
            }
            Err(e) => self.faults.fail(
                "the background estimate",
                format!("cannot start the estimate's thread: {e}; tuning goes on"),
            ),
        }
    }

    /// One adjustment: sample, decide, write.
    fn cycle(&mut self) {
        self.ensure_metrics_server();
        self.ensure_estimator();
        let before = self.tuner.mode();
        let step = self.sampler.take().and_then(|sample| {
            if self.server.is_some() {
                let taken = Arc::new(sample.clone());
                if let Ok(mut p) = self.published.lock() {
                    *p = Some((Instant::now(), taken));
                }
            }
            let d = self.tuner.decide(&sample)?;
            Ok((sample, d))
        });
        let (sample, mut decision) = match step {
            Ok(x) => {
                self.faults.ok("reading the system");
                x
            }
            Err(e) => {
                self.faults.fail(
                    "reading the system",
                    format!("cannot adjust KSM this cycle: {e:#}"),
                );
                return;
            }
        };
        match sample
            .guests
            .as_ref()
            .and_then(|g| g.pss_unreadable.as_ref())
        {
            Some((pid, why)) => self.faults.fail(
                "reading the guests' PSS",
                format!(
                    "cannot read the PSS of kvm process {pid} ({why}); counting its RSS instead. \
                     Reading another root process's /proc/PID/smaps_rollup needs CAP_SYS_PTRACE \
                     (see ksmtuned.conf(5), KSM_FLAVOUR)"
                ),
            ),
            None => self.faults.ok("reading the guests' PSS"),
        }
        if let Some(change) = &sample.opted_in {
            self.ksm_stat_refused.report(&self.root, &change.unreadable);
        }
        if self.leave_to_other_tuners(&sample.tuners) {
            return;
        }
        // The policy decided from this sample's KSM files (decide fails
        // without them).
        let state = sample.ksm.clone().unwrap_or_default();
        self.hold(&sample, &state, &mut decision);
        for l in &decision.debug_lines {
            self.debug_line(l);
        }
        let mode = self.tuner.mode();
        if let Some(mode) = mode {
            debug!("adaptive {}: {}", mode.as_str(), decision.reason);
            if before != Some(mode) {
                info!("adaptive: {}", decision.reason);
            }
        }
        let style = self.tuner.style();
        let (applied, wrote) =
            self.writer
                .apply(&decision, &state, style, mode.is_none(), &mut self.faults);
        if let Some(mode) = mode {
            if wrote || before != Some(mode) {
                self.debug_line(&format!(
                    "adaptive {} run {} pages_to_scan {} sleep {}: {}",
                    mode.as_str(),
                    decision.run.as_u8(),
                    decision.pages_to_scan.map_or("-".into(), |n| n.to_string()),
                    decision
                        .sleep_millisecs
                        .map_or("-".into(), |n| n.to_string()),
                    decision.reason
                ));
            }
        }
        let label = mode.map_or("KSM", |m| m.as_str());
        let status = status_line(label, &decision, &state, sample.page_size);
        self.systemd
            .send(&[sd_notify::NotifyState::Status(&status)]);
        let tuner_state = self.tuner.state(&decision);
        self.with_metrics(|m| {
            m.state = tuner_state;
            // What the plan put in force (the advisor keeps pages_to_scan).
            if let Some(a) = applied.filter(|a| a.run == Run::Merge) {
                m.pages_to_scan = a.pages_to_scan.or(m.pages_to_scan);
                m.sleep_ms = a.sleep_millisecs.or(m.sleep_ms);
            }
            if wrote {
                m.adjustments += 1;
                m.last_adjustment = Some(SystemTime::now());
            }
        });
    }

    /// KSM_CROSS_DOMAIN=refuse's hold, while the audit has put one: ksmd
    /// stopped and every page unmerged (run=2), whatever the policy
    /// decided, until a reload. The first cycle of a hold says what it
    /// gives up (what KSM saves now) in the log, the metrics and
    /// [`LAST_AUDIT_FILE`](crate::sample::last_audit::LAST_AUDIT_FILE).
    /// Unmerging needs that memory back: while the host cannot take it
    /// (the unmerge headroom of `ksmctl unmerge`), ksmd is only stopped
    /// (run=0) and the pages stay shared, said as an error; the first
    /// cycle with room unmerges, said too.
    fn hold(&mut self, sample: &Sample, state: &KsmState, d: &mut Decision) {
        let Some(h) = self.metrics.lock().ok().and_then(|m| m.refusal.clone()) else {
            return;
        };
        let pair = h
            .pairs
            .first()
            .map(|p| format!("{:?} and {:?}", p.a, p.b))
            .unwrap_or_else(|| "two domains".into());
        let headroom = sample
            .mem
            .as_ref()
            .map(|m| Headroom::new(state, m, sample.page_size));
        let unmerge = headroom.as_ref().is_some_and(Headroom::fits);
        let first = h.saved_bytes_given_up.is_none();
        if first || (unmerge && !h.unmerged) {
            let saved = state.saved_bytes(sample.page_size);
            let dry = if self.opts.dry_run {
                "dry run: would be "
            } else {
                ""
            };
            let shared = format!(
                "KSM_CROSS_DOMAIN=refuse: {pair} share {} KiB of KSM pages{}",
                h.cross_domain_bytes / 1024,
                match h.pairs.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more pair(s))", n - 1),
                }
            );
            let until = "KSM stays stopped until a reload (systemctl reload ksmtuned)";
            match (unmerge, first) {
                (true, true) => error!(
                    "{shared}: {dry}stopping ksmd and unmerging every page (run=2), giving up \
                     {} KiB saved; {until}",
                    saved / 1024
                ),
                (true, false) => warn!(
                    "{shared}: the host has room now: {dry}unmerging every page (run=2), giving \
                     up {} KiB saved; {until}",
                    saved / 1024
                ),
                (false, _) => error!(
                    "{shared}, but {}: {dry}ksmd is only stopped (run=0) and the pages stay \
                     shared until the host has room to unmerge them (free memory or add swap); \
                     {until}",
                    headroom.map_or_else(
                        || "the host's free memory cannot be read".to_string(),
                        |r| r.describe()
                    )
                ),
            }
            let config = self.tuner.config().clone();
            if let Ok(mut m) = self.metrics.lock() {
                if let Some(r) = m.refusal.as_mut() {
                    r.saved_bytes_given_up = Some(if unmerge { saved } else { 0 });
                    r.unmerged = unmerge;
                }
                super::audit::publish(&self.root, &config, &m);
            }
        }
        d.run = if unmerge || state.run == Some(Run::Unmerge) {
            Run::Unmerge
        } else {
            Run::Stop
        };
        d.pages_to_scan = None;
        d.sleep_millisecs = None;
        d.reason = format!("held by KSM_CROSS_DOMAIN=refuse: {pair} shared pages; until a reload");
    }

    /// Whether another tuner runs (and this one, unless a dry run, leaves
    /// KSM to it); said once when it starts and when it ends.
    fn leave_to_other_tuners(&mut self, tuners: &[u32]) -> bool {
        if !tuners.is_empty() && !self.opts.dry_run {
            if self.yielded_to != tuners {
                warn!(
                    "another KSM tuner is running (ksmtuned, pid {}): leaving KSM to it",
                    tuners
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.yielded_to = tuners.to_vec();
            }
            self.systemd.send(&[sd_notify::NotifyState::Status(
                "waiting: another ksmtuned is running",
            )]);
            return true;
        }
        if !self.yielded_to.is_empty() {
            info!("the other tuner is gone: tuning again");
            self.yielded_to.clear();
        }
        false
    }
}

impl Writer {
    /// Execute the plan of a decision (see [`Plan`]): write each setting,
    /// or in a dry run only say what would be written, and log a change
    /// of what is in force once. Returns what the plan put in force
    /// (`None` when no plan could be made) and whether anything was (or
    /// would have been) written.
    fn apply(
        &mut self,
        d: &Decision,
        state: &KsmState,
        style: Style,
        log_changes: bool,
        faults: &mut Faults,
    ) -> (Option<Applied>, bool) {
        let plan = match Plan::new(d, state, style) {
            Ok(p) => p,
            Err(e) => {
                faults.fail("planning the writes", e.to_string());
                return (None, false);
            }
        };
        if plan.advisor && !self.advisor_noted {
            info!(
                "advisor_mode is scan-time: the kernel chooses pages_to_scan; ksmtuned manages {}",
                match style {
                    Style::Classic => "run only",
                    Style::Adaptive => "run and sleep_millisecs",
                }
            );
        }
        self.advisor_noted = plan.advisor;
        for setting in &plan.writes {
            if self.dry_run {
                debug!("dry run: not writing {setting}");
                continue;
            }
            let what = match setting.knob {
                Knob::PagesToScan => "writing pages_to_scan",
                Knob::SleepMillisecs => "writing sleep_millisecs",
                _ => "writing run",
            };
            match self.ksm.write(*setting) {
                Ok(()) => faults.ok(what),
                Err(e) => faults.fail(what, e.to_string()),
            }
        }
        let applied = plan.applied;
        if self.last != Some(applied) && log_changes {
            let what = match d.run {
                Run::Merge => match (applied.pages_to_scan, applied.sleep_millisecs) {
                    (Some(p), Some(s)) => {
                        format!("KSM running: pages_to_scan {p}, sleep_millisecs {s}")
                    }
                    _ => "KSM running (pages_to_scan left to the kernel's advisor)".to_string(),
                },
                _ => "KSM stopped".to_string(),
            };
            let prefix = if self.dry_run {
                "dry run: would set: "
            } else {
                ""
            };
            info!("{prefix}{what} ({})", d.reason);
        }
        self.last = Some(applied);
        (Some(applied), !plan.writes.is_empty())
    }
}

/// The slot after `due` on a fixed-rate schedule (cycles start every
/// `interval` from the first, however long each takes), and how many slots
/// were skipped because the cycle that started at `due` ran past them
/// (`now` is when it ended): an overrun does not bring a burst of
/// catch-up cycles.
fn next_due(due: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = due + interval;
    if next > now || interval.is_zero() {
        return (next, 0);
    }
    let behind = now.duration_since(next).as_nanos() / interval.as_nanos() + 1;
    let skipped = u64::try_from(behind).unwrap_or(u64::MAX);
    let ahead = interval.saturating_mul(u32::try_from(behind).unwrap_or(u32::MAX));
    (next + ahead, skipped)
}

/// The STATUS= line shown by `systemctl status ksmtuned`; `mode` is the
/// adaptive policy's (`None` for classic).
pub fn status_line(mode: &str, d: &Decision, state: &KsmState, page_size: u64) -> String {
    let saved = human::ubytes(state.saved_bytes(page_size));
    let head = if mode == "KSM" {
        "KSM running".to_string()
    } else {
        format!("KSM running ({mode})")
    };
    match (d.run, d.pages_to_scan, d.sleep_millisecs) {
        (Run::Merge, Some(p), Some(s)) if !state.advisor_active() => {
            format!("{head}: {saved} saved, pages_to_scan {p}, sleep {s} ms")
        }
        (Run::Merge, _, _) => {
            format!("{head}: {saved} saved, pages_to_scan set by the kernel's advisor")
        }
        _ => format!("KSM stopped: {saved} saved; {}", d.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_fixed_rate_and_skips_overrun_slots() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // On time: the next slot is one interval after the last, not after
        // the cycle's end.
        assert_eq!(next_due(t0, ms(100), t0 + ms(30)), (t0 + ms(100), 0));
        // Started late but ended before the next slot: no drift.
        assert_eq!(next_due(t0, ms(100), t0 + ms(99)), (t0 + ms(100), 0));
        // Ended exactly at the next slot, or past one or several.
        assert_eq!(next_due(t0, ms(100), t0 + ms(100)), (t0 + ms(200), 1));
        assert_eq!(next_due(t0, ms(100), t0 + ms(150)), (t0 + ms(200), 1));
        assert_eq!(next_due(t0, ms(100), t0 + ms(350)), (t0 + ms(400), 3));
        // The next slot is always in the future.
        for end in [0, 1, 99, 100, 101, 999, 1000, 12345] {
            let now = t0 + ms(end);
            let (next, skipped) = next_due(t0, ms(100), now);
            assert!(next > now, "{end}");
            assert_eq!(next, t0 + ms(100) * (skipped as u32 + 1), "{end}");
        }
    }
}
