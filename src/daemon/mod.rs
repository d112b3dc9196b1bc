//! `ksmtuned`: the tuning daemon.
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
//! Each cycle reads one sample (meminfo, the processes that changed since
//! the last cycle as a [`Census`] reports them, KSM's files), hands it to
//! the pure policy, and writes what the policy chose. The census reads the
//! kernel's process events on a thread of its own.
//!
//! Transient errors (a refused write, an unreadable file) are logged and
//! the loop goes on; configuration errors stop the start-up.

pub mod pidfile;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use log::{debug, error, info, warn};

use crate::cli::service;
use crate::config::{self, Config, PolicyKind};
use crate::human;
use crate::kernel::ksm::{Knob, Ksm, KsmState, Run, Setting};
use crate::kernel::meminfo::MemInfo;
use crate::kernel::sys;
use crate::metrics::{Server, TunerMetrics};
use crate::policy::adaptive::{self, Trigger};
use crate::policy::{classic, Decision};
use crate::root::Root;
use crate::sample::census::{Census, Source};
use crate::sample::trackers::{ProcTable, ProcWatch};
use pidfile::PidFile;

/// Tune Kernel Samepage Merging to the host's memory pressure.
#[derive(Debug, Parser)]
#[command(name = "ksmtuned", version)]
pub struct Cli {
    /// Configuration file [default: /etc/ksmtuned.conf under the root].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (FILE, or the one --config names), report
    /// every problem, and exit: 0 when it is valid, 1 otherwise.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub check_config: Option<String>,

    /// Read the configuration file even if someone other than root could
    /// have written it or its directory (owner not root, or writable by
    /// group or others); a warning says so.
    #[arg(long)]
    pub insecure_config: bool,

    /// Tuning policy, overriding KSM_POLICY.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PolicyKind>,

    /// Run the whole daemon (pid file, signals, logs, decisions) but write
    /// nothing to /sys/kernel/mm/ksm.
    #[arg(long)]
    pub dry_run: bool,

    /// Pid file and single-instance lock [default: /run/ksmtuned.pid under
    /// the root; /run/ksmtuned.dry-run.pid with --dry-run].
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Time between adjustments in milliseconds, overriding
    /// KSM_MONITOR_INTERVAL (whole seconds): for soak and churn tests.
    #[arg(long, value_name = "MS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: Option<u64>,

    /// Resolve /sys, /proc, /etc and /run under this directory (also $KSM_ROOT).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// More log output on standard error (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<TunedCommand>,
}

/// Commands for a running daemon.
#[derive(Debug, Subcommand)]
pub enum TunedCommand {
    /// Ask the running ksmtuned to adjust KSM now (SIGUSR1).
    Retune {
        /// Pid file of the daemon [default: /run/ksmtuned.pid under the root].
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
    },
}

/// The pid file of a `--dry-run` daemon, so that it can run beside the
/// real one.
pub const DRY_RUN_PID_FILE: &str = "/run/ksmtuned.dry-run.pid";

/// Set up the stderr logger: no timestamps (journald adds them).
pub fn init_logger(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level)
        .format(|f, r| writeln!(f, "{}: {}", r.level().as_str().to_lowercase(), r.args()));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    let _ = b.try_init();
}

/// Run a parsed command line; returns the exit status.
pub fn run(cli: Cli) -> i32 {
    init_logger(cli.verbose);
    let root = Root::from_option(cli.root.clone());
    let pid_path = |opt: &Option<PathBuf>| {
        opt.clone()
            .unwrap_or_else(|| root.join(service::TUNER_PID_FILE))
    };
    if let Some(TunedCommand::Retune { pid_file }) = &cli.command {
        let path = pid_file.clone().or(cli.pid_file.clone());
        return retune(&pid_path(&path));
    }
    if let Some(file) = &cli.check_config {
        let explicit = if file.is_empty() {
            cli.config.clone()
        } else {
            Some(PathBuf::from(file))
        };
        return check_config(
            &root,
            explicit.as_deref(),
            config::Trust::for_this_process(cli.insecure_config),
        );
    }
    // A dry run keeps out of the real daemon's way by default.
    let pid_file = match (&cli.pid_file, cli.dry_run) {
        (None, true) => Some(root.join(DRY_RUN_PID_FILE)),
        (p, _) => p.clone(),
    };
    match Daemon::start(&root, &cli, pid_path(&pid_file)) {
        Ok(Some(mut d)) => match d.run_loop() {
            Ok(()) => 0,
            Err(e) => {
                error!("{e:#}");
                1
            }
        },
        Ok(None) => 0,
        Err(e) => {
            error!("{e:#}");
            1
        }
    }
}

/// `ksmtuned retune` / `ksmctl retune`: SIGUSR1 to the running daemon.
pub fn retune(pid_file: &Path) -> i32 {
    match pidfile::signal(pid_file, libc::SIGUSR1) {
        Ok(pid) => {
            println!("asked ksmtuned (pid {pid}) to retune");
            0
        }
        Err(e) => {
            eprintln!("ksmtuned: {e}");
            1
        }
    }
}

/// `--check-config`: report every problem; 0 when valid.
pub fn check_config(root: &Root, explicit: Option<&Path>, trust: config::Trust) -> i32 {
    let loaded = config::load(root, explicit, trust);
    let name = loaded
        .path
        .clone()
        .unwrap_or_else(|| root.join(config::DEFAULT_CONFIG));
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    if loaded.is_ok() {
        if loaded.path.is_some() {
            println!("{}: OK", name.display());
        } else {
            println!("{}: not present, defaults apply: OK", name.display());
        }
        0
    } else {
        eprintln!(
            "{}: {} error(s); ksmtuned would refuse to start",
            name.display(),
            loaded.errors.len()
        );
        1
    }
}

/// The classic debug channel: `DEBUG` / `LOGFILE` lines exactly as the
/// original wrote them, `<date(1)>: <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugLog {
    pub enabled: bool,
    pub logfile: Option<PathBuf>,
}

impl DebugLog {
    fn from_config(c: &Config) -> DebugLog {
        DebugLog {
            enabled: c.debug,
            logfile: c.logfile.clone(),
        }
    }

    /// Append one line to LOGFILE, or print it when LOGFILE is unset or
    /// cannot be written (the error is returned, for the caller to report
    /// once). The file is not followed if it is a symlink.
    pub fn line(&self, text: &str) -> std::io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let s = format!("{}: {text}\n", sys::date_string(SystemTime::now()));
        let mut res = Ok(());
        if let Some(path) = &self.logfile {
            res = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .and_then(|mut f| f.write_all(s.as_bytes()));
            if res.is_ok() {
                return res;
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
        res
    }
}

/// Errors of the running loop, each logged once: a fault that repeats every
/// cycle is reported when it starts (or its message changes) and when it
/// clears, and counted in the metrics every time.
#[derive(Debug, Default)]
struct Faults {
    active: std::collections::HashMap<&'static str, String>,
}

impl Faults {
    /// Record a failure of `what`.
    fn fail(&mut self, what: &'static str, msg: String, metrics: &Mutex<TunerMetrics>) {
        if let Ok(mut m) = metrics.lock() {
            m.errors += 1;
        }
        if self.active.get(what) != Some(&msg) {
            error!("{msg}");
            self.active.insert(what, msg);
        }
    }

    /// `what` worked: say so if it had failed.
    fn ok(&mut self, what: &'static str) {
        if let Some(msg) = self.active.remove(what) {
            info!("{what} works again (was: {msg})");
        }
    }
}

/// The running policy and its memory.
enum Tuner {
    Classic(classic::State, ProcTable),
    Adaptive(Box<AdaptiveRun>),
}

/// The adaptive policy's state and what it watches between samples.
struct AdaptiveRun {
    state: adaptive::State,
    watch: ProcWatch,
    ksmd: Option<crate::kernel::ksmd::Ksmd>,
    pending: Option<Trigger>,
}

impl Tuner {
    fn new(kind: PolicyKind) -> Tuner {
        match kind {
            PolicyKind::Classic => Tuner::Classic(
                classic::State::default(),
                ProcTable::new(Some(std::process::id())),
            ),
            PolicyKind::Adaptive => Tuner::Adaptive(Box::new(AdaptiveRun {
                state: adaptive::State::default(),
                watch: ProcWatch::new(Some(std::process::id())),
                ksmd: None,
                pending: Some(Trigger::Start),
            })),
        }
    }

    fn mode(&self) -> Option<adaptive::Mode> {
        match self {
            Tuner::Adaptive(run) => Some(run.state.mode),
            Tuner::Classic(..) => None,
        }
    }
}

/// The outcome of one policy step, before it is written.
struct Step {
    decision: Decision,
    /// KSM as read in this step.
    ksm: KsmState,
    /// Other tuners seen running.
    tuners: Vec<u32>,
    /// Write every value every time (classic), or only what differs from
    /// the kernel's current value (adaptive).
    write_all: bool,
}

/// One step of the classic policy: QEMU's RSS, free memory, KSM.
fn classic_step(
    root: &Root,
    ksm: &Ksm,
    params: &classic::Params,
    (state, table): (&mut classic::State, &mut ProcTable),
    census: &mut Census,
) -> anyhow::Result<Step> {
    let Sample { mem, procs, ksm } = sample(root, ksm, table, census)?;
    let decision = classic::adjust(params, state, procs.qemu_rss_kib, mem.classic_free());
    Ok(Step {
        decision,
        ksm,
        tuners: procs.tuner_pids,
        write_all: true,
    })
}

/// One step of the adaptive policy.
fn adaptive_step(
    root: &Root,
    ksm: &Ksm,
    params: &adaptive::Params,
    run: &mut AdaptiveRun,
    census: &mut Census,
    now: f64,
) -> anyhow::Result<Step> {
    let change = run
        .watch
        .update(root, census)
        .with_context(|| format!("reading {}", root.join("/proc").display()))?;
    let mem = MemInfo::read(root)?;
    let state = ksm.read()?;
    let cpu = run
        .ksmd
        .get_or_insert_with(|| crate::kernel::ksmd::Ksmd::new(root))
        .cpu();
    let input = adaptive::Input {
        now,
        available_kib: mem.mem_available.unwrap_or_else(|| mem.classic_free()),
        psi_some_avg10: crate::kernel::meminfo::psi_some_avg10(root),
        ksmd_cpu: cpu.map(|c| c.seconds()),
        ksmd_cpu_resolution: cpu.map_or(0.0, |c| c.resolution_ns as f64 / 1e9),
        general_profit: state.general_profit,
        run: state.run,
        pages_to_scan: state.pages_to_scan,
        sleep_millisecs: state.sleep_millisecs,
        pages_scanned: state.pages_scanned,
        full_scans: state.full_scans.unwrap_or(0),
        saved_pages: state.saved_pages(),
        tracked_pages: state.pages_shared.unwrap_or(0)
            + state.pages_sharing.unwrap_or(0)
            + state.pages_unshared.unwrap_or(0)
            + state.pages_volatile.unwrap_or(0),
        volatile_pages: state.pages_volatile.unwrap_or(0),
        advisor_active: state.advisor_active(),
    };
    let trigger = run
        .pending
        .take()
        .or(
            (change.appeared + change.exited > 0).then_some(Trigger::Processes {
                appeared: change.appeared,
                exited: change.exited,
            }),
        );
    let decision = adaptive::decide(params, &mut run.state, &input, trigger);
    Ok(Step {
        decision,
        ksm: state,
        tuners: change.tuners,
        write_all: false,
    })
}

/// One reading of what the classic policy looks at.
#[derive(Debug, Clone)]
pub struct Sample {
    pub mem: MemInfo,
    pub procs: crate::sample::trackers::ProcScan,
    pub ksm: KsmState,
}

/// Read the classic policy's sample: `/proc/meminfo`, the QEMU processes
/// (`table` brought up to date from `census`: see [`Census`]) and their
/// RSS, and KSM's files. This is the cost of a classic cycle, which
/// `benches/scale.rs` measures.
pub fn sample(
    root: &Root,
    ksm: &Ksm,
    table: &mut ProcTable,
    census: &mut Census,
) -> anyhow::Result<Sample> {
    let mem = MemInfo::read(root)?;
    let procs = table
        .update(root, census)
        .with_context(|| format!("reading {}", root.join("/proc").display()))?;
    let ksm = ksm.read()?;
    Ok(Sample { mem, procs, ksm })
}

enum Event {
    Retune,
    Reload,
    Exit(i32),
}

/// What was last written, to log each change once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Applied {
    run: Run,
    pages_to_scan: Option<u64>,
    sleep_millisecs: Option<u64>,
}

struct Daemon {
    root: Root,
    ksm: Ksm,
    config_path: Option<PathBuf>,
    trust: config::Trust,
    policy_override: Option<PolicyKind>,
    config: Config,
    /// `--interval-ms`: replaces KSM_MONITOR_INTERVAL.
    interval_override: Option<Duration>,
    params: classic::Params,
    tuner: Tuner,
    /// Which processes changed between cycles.
    census: Census,
    started: Instant,
    dry_run: bool,
    debug_log: DebugLog,
    notify: bool,
    watchdog: Option<Duration>,
    last: Option<Applied>,
    advisor_noted: bool,
    yielded_to: Vec<u32>,
    faults: Faults,
    metrics: Arc<Mutex<TunerMetrics>>,
    server: Option<Server>,
    _pid: PidFile,
    events: mpsc::Receiver<Event>,
}

fn notify(enabled: bool, states: &[sd_notify::NotifyState]) {
    if enabled {
        let _ = sd_notify::notify(false, states);
    }
}

/// A masked `ksm.service` or `ksmtuned.service` (a link to /dev/null, as
/// tuned's realtime and cpu-partitioning profiles leave them).
fn masked_unit(root: &Root) -> Option<PathBuf> {
    for dir in ["/etc/systemd/system", "/run/systemd/system"] {
        for unit in ["ksm.service", "ksmtuned.service"] {
            let p = root.join(format!("{dir}/{unit}"));
            if std::fs::read_link(&p).is_ok_and(|t| t == Path::new("/dev/null")) {
                return Some(p);
            }
        }
    }
    None
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
    fn start(root: &Root, cli: &Cli, pid_path: PathBuf) -> anyhow::Result<Option<Daemon>> {
        let trust = config::Trust::for_this_process(cli.insecure_config);
        let loaded = config::load(root, cli.config.as_deref(), trust);
        for w in &loaded.warnings {
            warn!("{w}");
        }
        if !loaded.is_ok() {
            for e in &loaded.errors {
                error!("{e}");
            }
            bail!("invalid configuration: not starting (check it with `ksmtuned --check-config`)");
        }
        let mut config = loaded.config;
        if let Some(p) = cli.policy {
            config.policy = p;
        }
        let ksm = Ksm::new(root);
        ksm.require()?;
        if let Some(unit) = masked_unit(root) {
            warn!(
                "{} is masked (for example by a tuned profile): KSM is not to be managed here; exiting",
                unit.display()
            );
            return Ok(None);
        }
        let pid = PidFile::acquire(&pid_path)?;
        let events = signal_thread()?;
        let mem = MemInfo::read(root)?;
        let params = classic::Params::new(&config, mem.mem_total);
        let debug_log = DebugLog::from_config(&config);

        let mut usec = 0;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        let interval_override = cli.interval_ms.map(Duration::from_millis);
        let census = Census::new(root);
        match census.source() {
            Source::Events => debug!("following processes through the kernel's process events"),
            // A test root: expected, not worth saying.
            Source::Listing(why) if !root.is_host() => debug!("listing /proc: {why}"),
            Source::Listing(why) => info!("listing /proc on every cycle: {why}"),
        }
        info!(
            "ksmtuned {} started: policy {}, interval {}, sleep_millisecs {}, threshold {} KiB{}",
            env!("CARGO_PKG_VERSION"),
            config.policy,
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
            policy_override: cli.policy,
            tuner: Tuner::new(config.policy),
            census,
            config,
            interval_override,
            params,
            started: Instant::now(),
            dry_run: cli.dry_run,
            debug_log,
            notify: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog,
            last: None,
            advisor_noted: false,
            yielded_to: Vec::new(),
            faults: Faults::default(),
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
        match self.tuner {
            Tuner::Classic(..) => configured,
            Tuner::Adaptive(_) => configured.min(Duration::from_secs(1)),
        }
    }

    fn retune_requested(&mut self) {
        if let Tuner::Adaptive(run) = &mut self.tuner {
            run.pending = Some(Trigger::Retune);
        }
    }

    fn run_loop(&mut self) -> anyhow::Result<()> {
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
        let loaded = config::load(&self.root, self.config_path.as_deref(), self.trust);
        for w in &loaded.warnings {
            warn!("{w}");
        }
        if !loaded.is_ok() {
            for e in &loaded.errors {
                error!("{e}");
            }
            error!("configuration not reloaded: keeping the previous one");
            return;
        }
        let mut new = loaded.config;
        if let Some(p) = self.policy_override {
            new.policy = p;
        }
        let total = match MemInfo::read(&self.root) {
            Ok(m) => m.mem_total,
            Err(e) => {
                warn!("{e}; keeping MemTotal {} KiB", self.params.total);
                self.params.total
            }
        };
        let params = classic::Params::new(&new, total);
        let mut changes = config_changes(&self.config, &new);
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
            self.tuner = Tuner::new(new.policy);
        }
        self.config = new;
        self.params = params;
        self.debug_log = DebugLog::from_config(&self.config);
        for l in self.params.debug_lines() {
            self.debug_line(&l);
        }
        if let Ok(mut m) = self.metrics.lock() {
            m.reloads += 1;
        }
        // A new (or no) metrics address: the next cycle listens again.
        if self
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
        match Server::spawn(&addr, self.root.clone(), Arc::clone(&self.metrics)) {
            Ok(server) => {
                info!("serving metrics on http://{}/metrics", server.local_addr());
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
        let now = self.started.elapsed().as_secs_f64();
        let before = self.tuner.mode();
        let step = match &mut self.tuner {
            Tuner::Classic(state, table) => classic_step(
                &self.root,
                &self.ksm,
                &self.params,
                (state, table),
                &mut self.census,
            ),
            Tuner::Adaptive(run) => {
                adaptive_step(&self.root, &self.ksm, &aparams, run, &mut self.census, now)
            }
        };
        let step = match step {
            Ok(s) => {
                self.faults.ok("reading the system");
                s
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
        if !step.tuners.is_empty() && !self.dry_run {
            if self.yielded_to != step.tuners {
                warn!(
                    "another KSM tuner is running (ksmtuned, pid {}): leaving KSM to it",
                    step.tuners
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.yielded_to = step.tuners.clone();
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
        let decision = &step.decision;
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
        let wrote = self.apply(decision, &step.ksm, step.write_all, mode.is_none());
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
        let status = status_line(label, decision, &step.ksm, sys::page_size());
        notify(self.notify, &[sd_notify::NotifyState::Status(&status)]);
        if let Ok(mut m) = self.metrics.lock() {
            m.policy = self.config.policy.to_string();
            m.state = match mode {
                Some(mode) => mode.as_str().to_string(),
                None if decision.run == Run::Merge => "running".to_string(),
                None => "stopped".to_string(),
            };
            if decision.run == Run::Merge {
                m.pages_to_scan = decision.pages_to_scan.or(m.pages_to_scan);
                m.sleep_ms = decision.sleep_millisecs.or(m.sleep_ms);
            }
            if wrote {
                m.adjustments += 1;
                m.last_adjustment = Some(SystemTime::now());
            }
        }
    }

    /// Write a decision: pages_to_scan, sleep_millisecs, then run. With
    /// `write_all` every value is written every time (as the original did);
    /// otherwise only what differs from the kernel's current value. With
    /// the kernel's advisor active, pages_to_scan is the kernel's: classic
    /// then manages run only, adaptive run and sleep_millisecs. Returns
    /// whether anything was (or, in a dry run, would have been) written.
    fn apply(
        &mut self,
        d: &Decision,
        state: &KsmState,
        write_all: bool,
        log_changes: bool,
    ) -> bool {
        let advisor = state.advisor_active();
        if advisor && !self.advisor_noted {
            info!(
                "advisor_mode is scan-time: the kernel chooses pages_to_scan; ksmtuned manages {}",
                if write_all {
                    "run only"
                } else {
                    "run and sleep_millisecs"
                }
            );
        }
        self.advisor_noted = advisor;
        let mut writes = Vec::new();
        let sleep_allowed = !advisor || !write_all;
        if d.run == Run::Merge {
            if let (Some(n), false) = (d.pages_to_scan, advisor) {
                writes.push((Knob::PagesToScan, n, state.pages_to_scan));
            }
            if let (Some(ms), true) = (d.sleep_millisecs, sleep_allowed) {
                writes.push((Knob::SleepMillisecs, ms, state.sleep_millisecs));
            }
        }
        let run_now = state.run.map(|r| u64::from(r.as_u8()));
        writes.push((Knob::Run, u64::from(d.run.as_u8()), run_now));
        let applied = Applied {
            run: d.run,
            pages_to_scan: if advisor { None } else { d.pages_to_scan },
            sleep_millisecs: if sleep_allowed {
                d.sleep_millisecs
            } else {
                None
            },
        };
        let changed = self.last != Some(applied);
        let mut wrote = false;
        for (knob, value, current) in writes {
            if !write_all && current == Some(value) {
                continue;
            }
            wrote = true;
            let setting = match Setting::number(knob, value) {
                Ok(s) => s,
                Err(e) => {
                    error!("{e}");
                    continue;
                }
            };
            if self.dry_run {
                debug!("dry run: not writing {setting}");
                continue;
            }
            let what = match knob {
                Knob::PagesToScan => "writing pages_to_scan",
                Knob::SleepMillisecs => "writing sleep_millisecs",
                _ => "writing run",
            };
            match self.ksm.write(setting) {
                Ok(()) => self.faults.ok(what),
                Err(e) => self.faults.fail(what, e.to_string(), &self.metrics),
            }
        }
        if changed && log_changes {
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
        // A dry run writes nothing, so the kernel keeps differing: count
        // (and log) a change only when the decision itself changed.
        wrote && (changed || !self.dry_run)
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
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

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

    #[test]
    fn debug_log_does_not_follow_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        // LOGFILE in a world-writable, sticky directory (/tmp-like) where
        // someone planted a link to a file root owns, and one to a file
        // that does not exist yet: neither is written or created.
        let public = tempfile::tempdir().unwrap();
        std::fs::set_permissions(public.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let private = tempfile::tempdir().unwrap();
        let victim = private.path().join("shadow");
        std::fs::write(&victim, "root:x:0:0\n").unwrap();
        let link = public.path().join("ksmtuned.log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let created = private.path().join("created");
        let dangling = public.path().join("dangling.log");
        std::os::unix::fs::symlink(&created, &dangling).unwrap();
        for logfile in [&link, &dangling] {
            // Refused (the line goes to standard output instead).
            assert!(DebugLog {
                enabled: true,
                logfile: Some(logfile.clone()),
            }
            .line("committed 0 free 1")
            .is_err());
            assert!(std::fs::symlink_metadata(logfile)
                .unwrap()
                .file_type()
                .is_symlink());
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
        assert!(!created.exists());
        // The same directory without the link: the file is created and written.
        let real = public.path().join("real.log");
        DebugLog {
            enabled: true,
            logfile: Some(real.clone()),
        }
        .line("committed 0 free 1")
        .unwrap();
        assert!(std::fs::read_to_string(&real)
            .unwrap()
            .ends_with(": committed 0 free 1\n"));
    }

    #[test]
    fn debug_log_appends_or_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let l = DebugLog {
            enabled: true,
            logfile: Some(path.clone()),
        };
        l.line("total 100").unwrap();
        l.line("sleep 10").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(": total 100"), "{text}");
        // "<date>: " where date has six fields.
        let date = lines[1].strip_suffix(": sleep 10").unwrap();
        assert_eq!(date.split_whitespace().count(), 6, "{date}");
        // Disabled: nothing written.
        DebugLog {
            enabled: false,
            logfile: Some(path.clone()),
        }
        .line("x")
        .unwrap();
        // An unwritable LOGFILE: the error is returned (and the line printed).
        let bad = DebugLog {
            enabled: true,
            logfile: Some(dir.path().join("no/such/dir/log")),
        };
        assert!(bad.line("x").is_err());
        // A symlink is not followed.
        let target = dir.path().join("target");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let l = DebugLog {
            enabled: true,
            logfile: Some(link),
        };
        assert!(l.line("x").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
