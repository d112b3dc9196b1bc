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

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use log::{debug, error, info, warn};

use super::debuglog::DebugLog;
use super::faults::{Faults, RefusedKsmStat};
use super::pidfile::PidFile;
use super::Cli;
use crate::config::{self, Config, PolicyKind};
use crate::human;
use crate::kernel::ksm::{Knob, Ksm, KsmState, Run};
use crate::kernel::meminfo::MemInfo;
use crate::kernel::sys;
use crate::metrics::{Server, TunerMetrics};
use crate::policy::adaptive::{self, Trigger};
use crate::policy::plan::{Applied, Plan, Style};
use crate::policy::{classic, Decision};
use crate::root::Root;
use crate::sample::census::Source;
use crate::sample::{Sample, Sampler};

/// The running policy and its memory between cycles.
enum Policy {
    Classic(classic::State),
    Adaptive(Box<AdaptiveRun>),
}

/// The adaptive policy's state, and a trigger not yet handed to it.
struct AdaptiveRun {
    state: adaptive::State,
    pending: Option<Trigger>,
}

impl Policy {
    fn new(kind: PolicyKind) -> Policy {
        match kind {
            PolicyKind::Classic => Policy::Classic(classic::State::default()),
            PolicyKind::Adaptive => Policy::Adaptive(Box::new(AdaptiveRun {
                state: adaptive::State::default(),
                pending: Some(Trigger::Start),
            })),
        }
    }

    fn mode(&self) -> Option<adaptive::Mode> {
        match self {
            Policy::Adaptive(run) => Some(run.state.mode),
            Policy::Classic(..) => None,
        }
    }

    /// How the policy's decisions are written.
    fn style(&self) -> Style {
        match self {
            Policy::Classic(..) => Style::Classic,
            Policy::Adaptive(..) => Style::Adaptive,
        }
    }

    /// Decide from one sample.
    fn decide(
        &mut self,
        classic: &classic::Params,
        adaptive: &adaptive::Params,
        sample: &Sample,
    ) -> crate::Result<Decision> {
        Ok(match self {
            Policy::Classic(state) => {
                let i = classic::Input::try_from(sample)?;
                classic::adjust(classic, state, i.committed, i.free)
            }
            Policy::Adaptive(run) => {
                let input = adaptive::Input::from_sample(sample).ok_or_else(|| {
                    crate::Error::Other("the sample has no KSM files".to_string())
                })?;
                let trigger = run.pending.take().or(Trigger::from_sample(sample));
                adaptive::decide(adaptive, &mut run.state, &input, trigger)
            }
        })
    }
}

/// Read the configuration, logging its warnings and errors; `None` when
/// it has errors (or, with `--strict`, warnings). `--policy` overrides
/// KSM_POLICY.
fn load_config(
    root: &Root,
    path: Option<&Path>,
    trust: config::Trust,
    policy: Option<PolicyKind>,
    strict: bool,
) -> Option<Config> {
    let loaded = config::load(root, path, trust);
    for w in &loaded.warnings {
        if strict {
            error!("{w} (an error with --strict)");
        } else {
            warn!("{w}");
        }
    }
    if !loaded.is_ok() || (strict && !loaded.warnings.is_empty()) {
        for e in &loaded.errors {
            error!("{e}");
        }
        return None;
    }
    let mut config = loaded.config;
    if let Some(p) = policy {
        config.policy = p;
    }
    Some(config)
}

enum Event {
    Retune,
    Reload,
    Exit(i32),
}

pub(super) struct Daemon {
    root: Root,
    ksm: Ksm,
    config_path: Option<PathBuf>,
    trust: config::Trust,
    /// `--strict`: warnings in the configuration are errors.
    strict: bool,
    policy_override: Option<PolicyKind>,
    config: Config,
    /// `--interval-ms`: replaces KSM_MONITOR_INTERVAL.
    interval_override: Option<Duration>,
    params: classic::Params,
    /// KSM_FLAVOUR resolved on this host, and why.
    flavour: (config::Flavour, String),
    policy: Policy,
    /// Reads the system once per cycle; follows the processes the policy
    /// needs.
    sampler: Sampler,
    dry_run: bool,
    debug_log: DebugLog,
    notify: bool,
    watchdog: Option<Duration>,
    last: Option<Applied>,
    advisor_noted: bool,
    yielded_to: Vec<u32>,
    faults: Faults,
    /// Processes whose ksm_stat was refused, reported once each.
    ksm_stat_refused: RefusedKsmStat,
    metrics: Arc<Mutex<TunerMetrics>>,
    server: Option<Server>,
    /// `None` when the pid file could not be created (said once at start).
    _pid: Option<PidFile>,
    events: mpsc::Receiver<Event>,
}

fn notify(enabled: bool, states: &[sd_notify::NotifyState]) {
    if enabled {
        let _ = sd_notify::notify(false, states);
    }
}

fn signal_thread() -> anyhow::Result<mpsc::Receiver<Event>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR1, SIGHUP, SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    // A bounded channel: its buffer is allocated once. The unbounded one
    // allocates a new block every 31 messages, which the soak saw as the
    // daemon's resident memory stepping up a page after ~100 s of signals.
    // A full channel only delays the signal thread (signals coalesce).
    let (tx, rx) = mpsc::sync_channel(16);
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
    Ok(rx)
}

impl Daemon {
    /// Everything before the first adjustment. `Ok(None)`: nothing to do
    /// (a masked unit), exit 0.
    pub(super) fn start(
        root: &Root,
        cli: &Cli,
        pid_path: PathBuf,
    ) -> anyhow::Result<Option<Daemon>> {
        let trust = config::Trust::for_this_process(cli.insecure_config);
        let Some(config) = load_config(root, cli.config.as_deref(), trust, cli.policy, cli.strict)
        else {
            return Err(super::InvalidConfig {
                strict: if cli.strict { " --strict" } else { "" },
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
        let pid = PidFile::acquire_or_run_without(&pid_path)?;
        let events = signal_thread()?;
        let mem = MemInfo::read(root)?;
        let flavour = config::flavour::resolve(root, config.flavour);
        let params = classic::Params::new(&config, flavour.0, mem.mem_total);
        let debug_log = DebugLog::from_config(&config);

        let mut usec = 0;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        let interval_override = cli.interval_ms.map(Duration::from_millis);
        let mut sampler = Sampler::for_policy(root, config.policy, Some(std::process::id()));
        sampler.set_flavour(flavour.0);
        match sampler.census_source() {
            Some(Source::Events) | None => {
                debug!("following processes through the kernel's process events")
            }
            // A test root: expected, not worth saying.
            Some(Source::Listing(why)) if !root.is_host() => debug!("listing /proc: {why}"),
            Some(Source::Listing(why)) => info!("listing /proc on every cycle: {why}"),
        }
        info!(
            "ksmtuned {} started: policy {}, flavour {} ({}), interval {}, sleep_millisecs {}, threshold {} KiB{}",
            env!("CARGO_PKG_VERSION"),
            config.policy,
            flavour.0,
            flavour.1,
            match interval_override {
                Some(d) => format!("{} ms", d.as_millis()),
                None => format!("{} s", config.monitor_interval),
            },
            params.sleep,
            params.thres,
            if cli.dry_run {
                " (dry run: nothing is written)"
            } else {
                ""
            }
        );
        Ok(Some(Daemon {
            root: root.clone(),
            ksm,
            config_path: cli.config.clone(),
            trust,
            strict: cli.strict,
            policy_override: cli.policy,
            policy: Policy::new(config.policy),
            sampler,
            config,
            interval_override,
            params,
            flavour,
            dry_run: cli.dry_run,
            debug_log,
            notify: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog,
            last: None,
            advisor_noted: false,
            yielded_to: Vec::new(),
            faults: Faults::default(),
            ksm_stat_refused: RefusedKsmStat::default(),
            metrics: Arc::new(Mutex::new(TunerMetrics::default())),
            server: None,
            _pid: pid,
            events,
        }))
    }

    /// Time between cycles: KSM_MONITOR_INTERVAL for classic; the
    /// adaptive policy samples every second (cheaply: one read of /proc's
    /// directory, KSM's files, meminfo) so that it notices new guests and
    /// keeps ksmd within its CPU budget.
    fn interval(&self) -> Duration {
        let configured = self
            .interval_override
            .unwrap_or(Duration::from_secs(self.config.monitor_interval));
        match self.policy {
            Policy::Classic(..) => configured,
            Policy::Adaptive(_) => configured.min(Duration::from_secs(1)),
        }
    }

    fn retune_requested(&mut self) {
        if let Policy::Adaptive(run) = &mut self.policy {
            run.pending = Some(Trigger::Retune);
        }
    }

    pub(super) fn run_loop(&mut self) -> anyhow::Result<()> {
        for l in self.params.debug_lines() {
            self.debug_line(&l);
        }
        let first = Instant::now();
        self.timed_cycle(Some(first));
        notify(self.notify, &[sd_notify::NotifyState::Ready]);
        let mut due = first + self.interval();
        let mut next_ping = self.watchdog.map(|w| Instant::now() + w);
        loop {
            let now = Instant::now();
            let wake = next_ping.map_or(due, |p| p.min(due));
            match self
                .events
                .recv_timeout(wake.saturating_duration_since(now))
            {
                Ok(Event::Exit(code)) => {
                    info!("exiting; KSM is left as it is");
                    notify(self.notify, &[sd_notify::NotifyState::Stopping]);
                    if code != 0 {
                        bail!("exiting with status {code}");
                    }
                    return Ok(());
                }
                Ok(Event::Retune) => {
                    info!("retune requested");
                    if let Ok(mut m) = self.metrics.lock() {
                        m.retunes += 1;
                    }
                    self.retune_requested();
                    self.timed_cycle(None);
                    due = Instant::now() + self.interval();
                }
                Ok(Event::Reload) => {
                    notify(self.notify, &[sd_notify::NotifyState::Reloading]);
                    self.reload();
                    self.retune_requested();
                    self.timed_cycle(None);
                    notify(self.notify, &[sd_notify::NotifyState::Ready]);
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
                    if let Ok(mut m) = self.metrics.lock() {
                        m.cycles_skipped += skipped;
                    }
                }
                due = next;
            }
            if let (Some(p), Some(w)) = (next_ping, self.watchdog) {
                if now >= p {
                    notify(self.notify, &[sd_notify::NotifyState::Watchdog]);
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
        if let Ok(mut m) = self.metrics.lock() {
            m.interval = Some(interval);
            m.record_cycle(delay, took);
        }
    }

    /// SIGHUP: read the configuration again; keep the old one if the new
    /// one has errors.
    fn reload(&mut self) {
        let Some(new) = load_config(
            &self.root,
            self.config_path.as_deref(),
            self.trust,
            self.policy_override,
            self.strict,
        ) else {
            error!("configuration not reloaded: keeping the previous one");
            return;
        };
        let total = match MemInfo::read(&self.root) {
            Ok(m) => m.mem_total,
            Err(e) => {
                warn!("{e}; keeping MemTotal {} KiB", self.params.total);
                self.params.total
            }
        };
        let flavour = config::flavour::resolve(&self.root, new.flavour);
        let params = classic::Params::new(&new, flavour.0, total);
        let mut changes = config_changes(&self.config, &new);
        if flavour.0 != self.flavour.0 {
            changes.push(format!(
                "flavour {} -> {} ({})",
                self.flavour.0, flavour.0, flavour.1
            ));
        }
        for (name, a, b) in [
            ("total", self.params.total, params.total),
            ("sleep", self.params.sleep, params.sleep),
            ("thres", self.params.thres, params.thres),
        ] {
            if a != b {
                changes.push(format!("{name} {a} -> {b}"));
            }
        }
        if changes.is_empty() {
            info!("configuration reloaded: nothing changed");
        } else {
            info!("configuration reloaded: {}", changes.join(", "));
        }
        if new.policy != self.config.policy {
            self.policy = Policy::new(new.policy);
            self.sampler = Sampler::for_policy(&self.root, new.policy, Some(std::process::id()));
        }
        self.sampler.set_flavour(flavour.0);
        self.flavour = flavour;
        self.config = new;
        self.params = params;
        self.debug_log = DebugLog::from_config(&self.config);
        for l in self.params.debug_lines() {
            self.debug_line(&l);
        }
        if let Ok(mut m) = self.metrics.lock() {
            m.reloads += 1;
        }
        // A new (or no) metrics address, or a web configuration (read again,
        // with its certificate, on every reload): the next cycle listens again.
        if self.config.metrics_web_config.is_some()
            || self
                .server
                .as_ref()
                .map(|s| s.local_addr().to_string())
                .as_deref()
                != self.config.metrics_listen.as_deref()
        {
            self.server = None;
        }
    }

    fn adaptive_params(&self) -> adaptive::Params {
        adaptive::Params {
            max_cpu: self.config.max_cpu as f64 / 100.0,
            thres_kib: self.params.thres,
            page_size: sys::page_size(),
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
                    &self.metrics,
                );
            }
        }
    }

    /// Listen for metrics when KSM_METRICS_LISTEN asks for it; a port that
    /// is taken is reported once and tried again every cycle.
    fn ensure_metrics_server(&mut self) {
        let Some(addr) = self.config.metrics_listen.clone() else {
            self.server = None;
            return;
        };
        if self.server.is_some() {
            return;
        }
        let web = match &self.config.metrics_web_config {
            Some(path) => match config::web::load(path, self.trust) {
                Ok(web) => Some(Arc::new(web)),
                Err(e) => {
                    let e = format!("{e}; not serving metrics; tuning goes on");
                    self.faults.fail("the metrics endpoint", e, &self.metrics);
                    return;
                }
            },
            None => None,
        };
        let opts = crate::metrics::ServerOptions {
            web,
            ..Default::default()
        };
        let root = self.root.clone();
        match Server::spawn_with(&addr, root, Some(Arc::clone(&self.metrics)), opts) {
            Ok(server) => {
                info!("serving metrics on {}", server.url());
                self.server = Some(server);
                self.faults.ok("the metrics endpoint");
            }
            Err(e) => self.faults.fail(
                "the metrics endpoint",
                format!("{e}; tuning goes on"),
                &self.metrics,
            ),
        }
    }

    /// One adjustment: sample, decide, write.
    fn cycle(&mut self) {
        self.ensure_metrics_server();
        let aparams = self.adaptive_params();
        let before = self.policy.mode();
        let step = self.sampler.take().and_then(|sample| {
            let d = self.policy.decide(&self.params, &aparams, &sample)?;
            Ok((sample, d))
        });
        let (sample, decision) = match step {
            Ok(x) => {
                self.faults.ok("reading the system");
                x
            }
            Err(e) => {
                self.faults.fail(
                    "reading the system",
                    format!("cannot adjust KSM this cycle: {e:#}"),
                    &self.metrics,
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
                &self.metrics,
            ),
            None => self.faults.ok("reading the guests' PSS"),
        }
        if let Some(change) = &sample.opted_in {
            self.ksm_stat_refused.report(&self.root, &change.unreadable);
        }
        // The policy decided from this sample's KSM files (decide fails
        // without them).
        let state = sample.ksm.unwrap_or_default();
        if !sample.tuners.is_empty() && !self.dry_run {
            if self.yielded_to != sample.tuners {
                warn!(
                    "another KSM tuner is running (ksmtuned, pid {}): leaving KSM to it",
                    sample
                        .tuners
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.yielded_to.clone_from(&sample.tuners);
            }
            notify(
                self.notify,
                &[sd_notify::NotifyState::Status(
                    "waiting: another ksmtuned is running",
                )],
            );
            return;
        } else if !self.yielded_to.is_empty() {
            info!("the other tuner is gone: tuning again");
            self.yielded_to.clear();
        }
        let decision = &decision;
        for l in &decision.debug_lines {
            self.debug_line(l);
        }
        let mode = self.policy.mode();
        if let Some(mode) = mode {
            debug!("adaptive {}: {}", mode.as_str(), decision.reason);
            if before != Some(mode) {
                info!("adaptive: {}", decision.reason);
            }
        }
        let (applied, wrote) = self.apply(decision, &state, mode.is_none());
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
        let status = status_line(label, decision, &state, sample.page_size);
        notify(self.notify, &[sd_notify::NotifyState::Status(&status)]);
        if let Ok(mut m) = self.metrics.lock() {
            m.policy = self.config.policy.to_string();
            // The budget the alert KsmdOverCpuBudget compares ksmd with.
            m.max_cpu_ratio = (self.config.policy == PolicyKind::Adaptive)
                .then(|| self.config.max_cpu as f64 / 100.0);
            m.state = match mode {
                Some(mode) => mode.as_str().to_string(),
                None if decision.run == Run::Merge => "running".to_string(),
                None => "stopped".to_string(),
            };
            // What the plan put in force (the advisor keeps pages_to_scan).
            if let Some(a) = applied.filter(|a| a.run == Run::Merge) {
                m.pages_to_scan = a.pages_to_scan.or(m.pages_to_scan);
                m.sleep_ms = a.sleep_millisecs.or(m.sleep_ms);
            }
            if wrote {
                m.adjustments += 1;
                m.last_adjustment = Some(SystemTime::now());
            }
        }
    }

    /// Execute the plan of a decision (see [`Plan`]): write each setting,
    /// or in a dry run only say what would be written, and log a change
    /// of what is in force once. Returns what the plan put in force
    /// (`None` when no plan could be made) and whether anything was (or
    /// would have been) written.
    fn apply(
        &mut self,
        d: &Decision,
        state: &KsmState,
        log_changes: bool,
    ) -> (Option<Applied>, bool) {
        let style = self.policy.style();
        let plan = match Plan::new(d, state, style) {
            Ok(p) => p,
            Err(e) => {
                self.faults
                    .fail("planning the writes", e.to_string(), &self.metrics);
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
                Ok(()) => self.faults.ok(what),
                Err(e) => self.faults.fail(what, e.to_string(), &self.metrics),
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

/// The variables that differ between two configurations, as `NAME a -> b`.
fn config_changes(a: &Config, b: &Config) -> Vec<String> {
    a.values()
        .into_iter()
        .zip(b.values())
        .filter(|((_, x), (_, y))| x != y)
        .map(|((name, x), (_, y))| format!("{name} {x} -> {y}"))
        .collect()
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

    #[test]
    fn changes_are_listed() {
        let a = Config::default();
        let b = Config {
            npages_boost: 500,
            debug: true,
            ..Config::default()
        };
        assert_eq!(
            config_changes(&a, &b),
            vec!["KSM_NPAGES_BOOST 300 -> 500", "DEBUG off -> on"]
        );
        assert!(config_changes(&a, &a).is_empty());
    }
}
