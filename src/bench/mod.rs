//! `ksm-bench`: measure KSM tuners side by side on the real kernel.
//!
//! The bench starts worker processes whose memory it fills itself
//! ([`workload`]), so it knows how many pages KSM can save. Then, for each
//! tuner in turn ([`tuner`]), it unmerges everything, puts the kernel's
//! defaults back, starts the tuner and samples KSM every 100 ms
//! ([`sampler`]) until the tuner reached 90% of what is attainable and a
//! rest window has passed, or a time limit. The figures and the
//! table come from the samples ([`report`]), the SVG from [`plot`].
//!
//! The whole run holds [`Experiment`](experiment::Experiment): every knob is
//! restored and every worker and tuner process ended on every exit path
//! (normal end, error, SIGINT, SIGTERM, SIGHUP; the workers also die with
//! the bench through `PR_SET_PDEATHSIG`).

pub mod estimate_cost;
pub mod experiment;
pub mod plot;
pub mod report;
pub mod sampler;
pub mod tuner;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::kernel::ksm::{Knob, Ksm, KsmState, Run};
use crate::kernel::meminfo::MemInfo;
use crate::kernel::sys;
use crate::root::Root;
use crate::sample::services;
use experiment::{Experiment, KsmdLock};

use report::{Figures, Host, Limits, Machine, Report, RunStatus, TunerRun, WorkloadReport};
use sampler::{Point, Recorder};
use tuner::{TunerKind, TunerProcess, TunerSpec};
use workload::{MergeMode, WorkerOptions, Workers, WorkloadSpec};

/// Milliseconds between samples.
pub const SAMPLE_MS: u64 = 100;

/// Milliseconds between samples during max-rate's first two full scans.
pub const FINE_SAMPLE_MS: u64 = 10;

/// Measure KSM tuners side by side on this machine's kernel: time and ksmd
/// CPU to merge a known workload, and what each tuner costs.
///
/// Needs root (it drives the real /sys/kernel/mm/ksm) and unmerges every
/// page of the host between tuners: it refuses to start while another tuner
/// runs or pages are merged, unless --force.
#[derive(Debug, Parser)]
#[command(
    name = "ksm-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Hidden subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One worker process of the workload (started by the bench itself).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        index: usize,
        /// The workload, as JSON.
        #[arg(long)]
        spec: String,
        /// The worker options, as JSON.
        #[arg(long)]
        options: String,
        /// The bench's pid (the worker exits when it is gone).
        #[arg(long)]
        parent: u32,
    },
}

/// The benchmark's options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Small workload and short limits: finishes in about a minute (CI).
    #[arg(long)]
    pub quick: bool,
    /// Worker processes [default: 4, --quick 2].
    #[arg(long, value_name = "K")]
    pub workers: Option<usize>,
    /// MiB of memory per worker [default: 1024, --quick 32].
    #[arg(long, value_name = "M")]
    pub mib: Option<u64>,
    /// Fraction of pages copied from the image common to all workers.
    #[arg(long, default_value_t = 0.6, value_name = "F")]
    pub dup: f64,
    /// Fraction of all-zero pages.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub zero: f64,
    /// Fraction of pages rewritten every --churn-ms (not worth merging).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub volatile: f64,
    /// How often volatile pages are rewritten.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub churn_ms: u64,
    /// Fraction of the image's pages that repeat another image page.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub image_repeat: f64,
    /// Seed of the generated content.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How workers opt in to KSM.
    #[arg(long, value_enum, default_value_t = MergeMode::Madvise)]
    pub merge: MergeMode,
    /// Process name of the workers (QEMU's, so QEMU-counting tuners see them).
    #[arg(long, default_value = "qemu-system-x86")]
    pub comm: String,
    /// Let workers use transparent huge pages (default: MADV_NOHUGEPAGE,
    /// so the attainable figure stays exact).
    #[arg(long)]
    pub thp: bool,
    /// Comma-separated tuners to run, of max-rate, kernel-default,
    /// kernel-advisor, classic, adaptive [default: all, adaptive when the
    /// ksmtuned binary offers it].
    #[arg(long, value_name = "LIST")]
    pub tuners: Option<String>,
    /// Another tuner, started with `sh -c COMMAND` in its own process group
    /// and stopped with SIGTERM (then SIGKILL). $KSM_BENCH_CONFIG names the
    /// ksmtuned.conf the bench wrote. Repeatable.
    #[arg(long, value_name = "NAME=COMMAND")]
    pub external: Vec<String>,
    /// Seconds each tuner gets to reach 90% of attainable [default: 150,
    /// --quick 15].
    #[arg(long, value_name = "S")]
    pub time_limit: Option<f64>,
    /// Seconds after 90% before the rest window, where ksmd's CPU is
    /// measured with nothing left to merge [default: 30, --quick 1].
    #[arg(long, value_name = "S")]
    pub settle: Option<f64>,
    /// Length of the rest window in seconds: the table gives ksmd's
    /// average CPU over it and its worst 5-second window [default: 60,
    /// --quick 2].
    #[arg(long, value_name = "S")]
    pub steady: Option<f64>,
    /// Write every figure and the full time series as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw saved MiB and ksmd CPU over time as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Run even when another tuner runs or pages are merged (the host is
    /// unmerged between tuners).
    #[arg(long)]
    pub force: bool,
    /// Measure what `ksmctl estimate` and ksmtuned's continuous estimate
    /// cost on the workload (CPU per GiB read, share of a core, error
    /// against the full estimate) instead of running tuners; ksmd is not
    /// touched. --json writes the figures.
    #[arg(long)]
    pub estimate_cost: bool,
}

/// The options with the defaults of the chosen mode filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    pub spec: WorkloadSpec,
    pub worker: WorkerOptions,
    pub mib: u64,
    pub limits: Limits,
    pub tuners: Vec<TunerSpec>,
    /// Notes on tuners left out of the default list.
    pub tuner_notes: Vec<String>,
}

/// Resolve the options: defaults per mode, validation, the tuner list.
/// `ksmtuned` is where the daemon is looked for.
pub fn resolve(args: &RunArgs, page_size: u64, ksmtuned: &Path) -> anyhow::Result<Settings> {
    let q = args.quick;
    let workers = args.workers.unwrap_or(if q { 2 } else { 4 });
    let mib = args.mib.unwrap_or(if q { 32 } else { 1024 });
    let pages_per_worker = mib
        .checked_mul(1024 * 1024)
        .map(|b| b / page_size)
        .ok_or_else(|| anyhow!("--mib {mib} is too large"))?;
    let spec = WorkloadSpec {
        workers,
        pages_per_worker,
        dup: args.dup,
        zero: args.zero,
        volatile: args.volatile,
        image_repeat: args.image_repeat,
        seed: args.seed,
    };
    spec.validate().map_err(|e| anyhow!(e))?;
    let limits = Limits {
        time_limit_s: args.time_limit.unwrap_or(if q { 15.0 } else { 150.0 }),
        settle_s: args.settle.unwrap_or(if q { 1.0 } else { 30.0 }),
        steady_s: args.steady.unwrap_or(if q { 2.0 } else { 60.0 }),
    };
    for (name, v) in [
        ("--time-limit", limits.time_limit_s),
        ("--settle", limits.settle_s),
        ("--steady", limits.steady_s),
    ] {
        if !(v.is_finite() && v >= 0.0) || (name == "--time-limit" && v <= 0.0) {
            bail!("{name} {v}: expected a positive number of seconds");
        }
    }
    if args.comm.is_empty() || args.comm.len() > 15 {
        bail!("--comm {:?}: a process name has 1 to 15 bytes", args.comm);
    }
    let mut tuners = Vec::new();
    let mut tuner_notes = Vec::new();
    match &args.tuners {
        Some(list) => {
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let t = TunerSpec::builtin(name).ok_or_else(|| {
                    anyhow!(
                        "--tuners: unknown tuner {name:?}; known: {} (others with --external NAME=COMMAND)",
                        tuner::BUILTIN.join(", ")
                    )
                })?;
                if tuners.iter().any(|x: &TunerSpec| x.name == t.name) {
                    bail!("--tuners: {name} is listed twice");
                }
                tuners.push(t);
            }
        }
        None => {
            for name in tuner::BUILTIN {
                if name == "adaptive" {
                    if !ksmtuned.is_file() {
                        continue;
                    }
                    if !tuner::supports_adaptive(ksmtuned) {
                        tuner_notes.push(format!(
                            "adaptive left out: {} does not offer --policy adaptive",
                            ksmtuned.display()
                        ));
                        continue;
                    }
                }
                tuners.extend(TunerSpec::builtin(name));
            }
        }
    }
    for e in &args.external {
        let t = TunerSpec::external(e).map_err(|e| anyhow!(e))?;
        if tuners.iter().any(|x| x.name == t.name) {
            bail!("--external: the name {} is used twice", t.name);
        }
        tuners.push(t);
    }
    if tuners.is_empty() {
        bail!("no tuner to run (--tuners is empty)");
    }
    if let Some(p) = &args.plot {
        if p.extension().and_then(|e| e.to_str()) != Some("svg") {
            bail!(
                "--plot {}: the plot is SVG; name the file *.svg",
                p.display()
            );
        }
    }
    Ok(Settings {
        spec,
        worker: WorkerOptions {
            merge: match args.merge {
                MergeMode::Madvise => "madvise".into(),
                MergeMode::Prctl => "prctl".into(),
            },
            comm: args.comm.clone(),
            churn_ms: args.churn_ms,
            thp: args.thp,
        },
        mib,
        limits,
        tuners,
        tuner_notes,
    })
}

/// Run a parsed command line; returns the exit status.
pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Some(Command::Worker {
            index,
            spec,
            options,
            parent,
        }) => {
            let r = (|| -> anyhow::Result<()> {
                let spec: WorkloadSpec =
                    serde_json::from_str(&spec).context("worker: bad --spec")?;
                let opts: WorkerOptions =
                    serde_json::from_str(&options).context("worker: bad --options")?;
                workload::worker_main(&spec, index, &opts, parent)
            })();
            match r {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ksm-bench worker {index}: {e:#}");
                    1
                }
            }
        }
        None => {
            let signal = Arc::new(AtomicUsize::new(0));
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                if let Err(e) =
                    signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                {
                    eprintln!("ksm-bench: cannot handle signal {sig}: {e}");
                    return 1;
                }
            }
            // Bad options are usage errors (exit status 2).
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("ksm-bench: cannot find its own executable: {e}");
                    return 1;
                }
            };
            let settings = match resolve(&cli.run, sys::page_size(), &tuner::ksmtuned_path(&exe)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ksm-bench: {e:#}");
                    return 2;
                }
            };
            if cli.run.estimate_cost {
                let stop = || signal.load(Ordering::SeqCst) != 0;
                return match estimate_cost::run(&settings, &exe, &stop).and_then(|r| {
                    print!("{}", r.render());
                    if let Some(path) = &cli.run.json {
                        std::fs::write(path, serde_json::to_vec_pretty(&r)?)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                    Ok(())
                }) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("ksm-bench: {e:#}");
                        1
                    }
                };
            }
            match run(&cli.run, &settings, &exe, &signal) {
                Ok(report) => match report.interrupted {
                    Some(_) => 128 + signal.load(Ordering::SeqCst) as i32,
                    None => 0,
                },
                Err(e) => {
                    eprintln!("ksm-bench: {e:#}");
                    let sig = signal.load(Ordering::SeqCst);
                    if sig != 0 {
                        128 + sig as i32
                    } else {
                        1
                    }
                }
            }
        }
    }
}

fn signal_name(sig: usize) -> &'static str {
    match sig as i32 {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The knobs whose values differ between two readings.
pub fn changed_knobs(before: &KsmState, after: &KsmState) -> Vec<String> {
    Knob::ALL
        .iter()
        .filter(|k| k.current(before) != k.current(after))
        .map(|k| {
            format!(
                "{k} {} -> {}",
                k.current(before).unwrap_or_else(|| "absent".into()),
                k.current(after).unwrap_or_else(|| "absent".into())
            )
        })
        .collect()
}

/// Everything a tuner run needs.
struct Ctx<'a> {
    ksm: &'a Ksm,
    root: &'a Root,
    before: &'a KsmState,
    attainable: workload::Attainable,
    limits: Limits,
    ksmtuned: &'a Path,
    config: &'a Path,
    tmp: &'a Path,
    signal: &'a AtomicUsize,
}

fn skipped(spec: &TunerSpec, status: RunStatus, note: String) -> TunerRun {
    TunerRun {
        spec: spec.clone(),
        status,
        notes: vec![note],
        unmerge_s: 0.0,
        figures: None,
        samples: Vec::new(),
    }
}

/// Whether `pid` belongs to the process group led by `leader`.
fn is_in_group(root: &Root, pid: u32, leader: Option<u32>) -> bool {
    let Some(leader) = leader else { return false };
    crate::kernel::proc::stat(root, pid).is_some_and(|s| s.pgrp == leader)
}

/// Run one tuner from the clean state until 90% + the rest window, or
/// the time limit. Errors that concern only this tuner end up in its notes;
/// errors of the bench (KSM unreadable, a worker died) are returned.
fn run_tuner(ctx: &Ctx, spec: &TunerSpec, workers: &mut Workers) -> anyhow::Result<TunerRun> {
    if matches!(spec.kind, TunerKind::Daemon { .. }) && !ctx.ksmtuned.is_file() {
        return Ok(skipped(
            spec,
            RunStatus::Skipped,
            format!("ksmtuned binary not found at {}", ctx.ksmtuned.display()),
        ));
    }
    let unmerge = tuner::clean_state(ctx.ksm, ctx.before)?;
    workers.check()?;
    if let Err(e) = tuner::start_kernel(ctx.ksm, &spec.kind) {
        return Ok(skipped(spec, RunStatus::Skipped, format!("{e:#}")));
    }
    let mut process = if spec.is_process() {
        match TunerProcess::start(spec, ctx.ksmtuned, ctx.config, ctx.tmp) {
            Ok(p) => Some(p),
            Err(e) => return Ok(skipped(spec, RunStatus::Skipped, format!("{e:#}"))),
        }
    } else {
        None
    };
    let mut sampler = Recorder::start(ctx.root, process.as_ref().map(|p| p.pid()))?;
    let mut run = TunerRun {
        spec: spec.clone(),
        status: RunStatus::Ran,
        notes: Vec::new(),
        unmerge_s: unmerge.as_secs_f64(),
        figures: None,
        samples: Vec::new(),
    };
    if !sampler.has_ksmd() {
        run.notes
            .push("ksmd's thread was not found: its CPU time reads 0".into());
    }
    let limit_ms = (ctx.limits.time_limit_s * 1000.0) as u64;
    let after_ms = ((ctx.limits.settle_s + ctx.limits.steady_s) * 1000.0) as u64;
    let mut t90: Option<u64> = None;
    let mut interfered = false;
    let mut foreign_seen = false;
    let mut next = sampler.started();
    let mut n = 0u64;
    loop {
        let s: Point = sampler.point()?;
        let att = ctx.attainable.for_zero_pages(s.use_zero_pages);
        if t90.is_none() && att > 0 && s.saved_pages as f64 >= 0.9 * att as f64 {
            t90 = Some(s.t_ms);
            eprintln!(
                "ksm-bench:   {}: 90% of attainable after {:.1} s",
                spec.name,
                s.t_ms as f64 / 1000.0
            );
        }
        let t = s.t_ms;
        let full_scans = s.full_scans;
        if !interfered {
            if let Some(note) = tuner::interference(&spec.kind, &s) {
                run.notes.push(note);
                interfered = true;
            }
        }
        run.samples.push(s);
        let sig = ctx.signal.load(Ordering::SeqCst);
        if sig != 0 {
            run.notes.push(format!(
                "interrupted by {} after {:.1} s",
                signal_name(sig),
                t as f64 / 1000.0
            ));
            break;
        }
        if let Some(p) = process.as_mut() {
            if let Some(status) = p.exited() {
                run.status = RunStatus::Failed;
                let tail = p.log_tail(5);
                run.notes.push(format!(
                    "exited after {:.1} s ({status}){}",
                    t as f64 / 1000.0,
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tail.replace('\n', " | "))
                    }
                ));
                break;
            }
        }
        match t90 {
            Some(t90) if t >= t90 + after_ms => break,
            None if t >= limit_ms => {
                let best = run.samples.iter().map(|s| s.saved_pages).max().unwrap_or(0);
                run.notes.push(format!(
                    "did not reach 90% within {:.0} s: best {:.1}% of attainable",
                    ctx.limits.time_limit_s,
                    if att > 0 {
                        best as f64 / att as f64 * 100.0
                    } else {
                        0.0
                    }
                ));
                break;
            }
            _ => {}
        }
        n += 1;
        if n % 10 == 0 {
            workers.check()?;
            // Another tuner started beside ours (ksmtuned by name or pid
            // file): its writes would spoil the figures.
            let ours = process.as_ref().map(|p| p.pid());
            let foreign: Vec<String> = services::running_tuners(ctx.root)
                .into_iter()
                .filter(|t| Some(t.pid) != ours && !is_in_group(ctx.root, t.pid, ours))
                .map(|t| format!("{} (pid {})", t.comm, t.pid))
                .collect();
            if !foreign.is_empty() && !foreign_seen {
                foreign_seen = true;
                let note = format!(
                    "another tuner ran during the run ({}) at {:.1} s: these figures may not be trustworthy",
                    foreign.join(", "),
                    t as f64 / 1000.0
                );
                run.notes.push(note);
            }
        }
        // max-rate's first two full scans give the machine's scan rate:
        // they can take well under a second, so sample them finely.
        let step = if spec.kind == TunerKind::MaxRate && full_scans < 2 {
            FINE_SAMPLE_MS
        } else {
            SAMPLE_MS
        };
        next += Duration::from_millis(step);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Late (a slow read): keep the grid, skip the missed ticks.
            while next <= now {
                next += Duration::from_millis(step);
            }
        }
    }
    if let Some(mut p) = process.take() {
        if let Some(note) = p.stop(Duration::from_secs(5)) {
            run.notes.push(note);
        }
        log::info!("{} log: {}", spec.name, p.log_path().display());
    }
    Ok(run)
}

/// Run the benchmark; the report is printed (and written) before it is
/// returned.
pub fn run(
    args: &RunArgs,
    settings: &Settings,
    exe: &Path,
    signal: &AtomicUsize,
) -> anyhow::Result<Report> {
    let root = Root::default();
    let ksm = Ksm::new(&root);
    ksm.require()?;
    let page_size = sys::page_size();
    let ksmtuned = tuner::ksmtuned_path(exe);
    if sys::euid() != 0 {
        bail!("ksm-bench drives the real /sys/kernel/mm/ksm and needs root");
    }

    eprintln!(
        "ksm-bench: taking the ksmd lock {} (waits while another experiment runs)",
        KsmdLock::PATH
    );
    let experiment = Experiment::begin_even_if_merged(&ksm)?;
    let began = Instant::now();
    let check_signal = || -> anyhow::Result<()> {
        match signal.load(Ordering::SeqCst) {
            0 => Ok(()),
            sig => bail!(
                "interrupted by {} before the workers started",
                signal_name(sig)
            ),
        }
    };
    check_signal()?;
    let before = experiment.before().clone();

    // Pre-flight checks, under the lock.
    let others = services::running_tuners(&root);
    if !others.is_empty() && !args.force {
        let list: Vec<String> = others
            .iter()
            .map(|t| format!("{} (pid {})", t.comm, t.pid))
            .collect();
        bail!(
            "another KSM tuner is running: {}; it would fight the benchmark over ksmd. \
             Stop it (e.g. systemctl stop ksmtuned) or pass --force",
            list.join(", ")
        );
    }
    let shared = before.pages_shared.unwrap_or(0);
    if shared > 0 && !args.force {
        bail!(
            "the host has merged pages (pages_shared {shared}, pages_sharing {}): the benchmark \
             unmerges everything (run=2) between tuners, which gives that memory back to its \
             processes. Unmerge first (ksmctl unmerge) or pass --force",
            before.pages_sharing.unwrap_or(0)
        );
    }
    let mem = MemInfo::read(&root)?;
    let need_kib = settings.spec.total_pages() * page_size / 1024;
    let avail_kib = mem.mem_available.unwrap_or(mem.mem_free);
    let margin_kib = (need_kib / 10).max(256 * 1024);
    if need_kib + margin_kib > avail_kib {
        bail!(
            "the workload needs {} (plus a {} margin) but MemAvailable is {}: \
             use fewer --workers or a smaller --mib",
            crate::human::ubytes(need_kib * 1024),
            crate::human::ubytes(margin_kib * 1024),
            crate::human::ubytes(avail_kib * 1024)
        );
    }

    let tmp = tempfile::Builder::new()
        .prefix("ksm-bench.")
        .tempdir()
        .context("creating a temporary directory")?;
    let config = tmp.path().join("ksmtuned.conf");
    std::fs::write(&config, tuner::DAEMON_CONFIG)
        .with_context(|| format!("writing {}", config.display()))?;

    let max_page_sharing = before.max_page_sharing.unwrap_or(256);
    let attainable = settings.spec.attainable(max_page_sharing);
    eprintln!("ksm-bench: {}", settings.spec.describe(page_size));
    for n in &settings.tuner_notes {
        eprintln!("ksm-bench: {n}");
    }
    // Workers only after the pre-flight checks, and after KSM is stopped
    // and everything unmerged, so that nothing merges while they fill.
    ksm.set_run(Run::Unmerge)
        .context("unmerging every page (run=2)")?;
    let filled = Instant::now();
    let mut workers = Workers::spawn(exe, &settings.spec, &settings.worker, &|| {
        signal.load(Ordering::SeqCst) != 0
    })?;
    eprintln!(
        "ksm-bench: {} workers filled {} in {:.1} s; attainable {} pages",
        settings.spec.workers,
        crate::human::ubytes(settings.spec.total_pages() * page_size),
        filled.elapsed().as_secs_f64(),
        attainable.for_zero_pages(before.use_zero_pages == Some(1))
    );

    let ctx = Ctx {
        ksm: &ksm,
        root: &root,
        before: &before,
        attainable,
        limits: settings.limits,
        ksmtuned: &ksmtuned,
        config: &config,
        tmp: tmp.path(),
        signal,
    };
    let mut runs: Vec<TunerRun> = Vec::new();
    let mut interrupted = None;
    let count = settings.tuners.len();
    for (i, spec) in settings.tuners.iter().enumerate() {
        eprintln!("ksm-bench: [{}/{count}] {}", i + 1, spec.name);
        let r = run_tuner(&ctx, spec, &mut workers)?;
        for n in &r.notes {
            eprintln!("ksm-bench:   {}: {n}", spec.name);
        }
        runs.push(r);
        let sig = signal.load(Ordering::SeqCst);
        if sig != 0 {
            interrupted = Some(format!("interrupted by {}", signal_name(sig)));
            break;
        }
    }
    drop(workers);
    experiment
        .restore()
        .context("restoring the KSM settings of before the run")?;
    let after = ksm.read()?;
    let knobs_changed = changed_knobs(&before, &after);

    // Figures.
    let mergeable = settings.spec.total_pages();
    let machine = runs
        .iter()
        .find(|r| r.spec.kind == TunerKind::MaxRate && r.status == RunStatus::Ran)
        .and_then(|r| report::scan_rate(&r.samples, mergeable))
        .map(|rate| Machine {
            scan_rate_pages_per_s: Some(rate),
            ideal_s: Some(2.0 * mergeable as f64 / rate),
        })
        .unwrap_or_default();
    for r in runs.iter_mut() {
        if r.status != RunStatus::Skipped && !r.samples.is_empty() {
            r.figures = Some(report::figures(
                &r.samples,
                &attainable,
                page_size,
                &settings.limits,
                machine.ideal_s,
            ));
        }
    }
    let ratios = report::ratios(&runs);
    let mut command: Vec<String> = std::env::args().collect();
    if let Some(first) = command.first_mut() {
        *first = "ksm-bench".into();
    }
    let report = Report {
        version: 2,
        date: sys::date_string(std::time::SystemTime::now()),
        command,
        host: Host {
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            page_size_bytes: page_size,
            mem_total_kib: mem.mem_total,
        },
        workload: WorkloadReport {
            spec: settings.spec.clone(),
            merge: settings.worker.merge.clone(),
            comm: settings.worker.comm.clone(),
            churn_ms: settings.worker.churn_ms,
            per_worker: settings.spec.counts(),
            image_distinct_pages: settings.spec.image_distinct(),
            total_pages: settings.spec.total_pages(),
            attainable,
        },
        limits: settings.limits,
        sample_interval_ms: SAMPLE_MS,
        ksmd_cpu_resolution_ns: crate::kernel::ksmd::Ksmd::new(&root)
            .cpu()
            .map_or(0, |c| c.resolution_ns),
        daemon_config: tuner::DAEMON_CONFIG.to_string(),
        knobs_before: before.clone(),
        knobs_after: after,
        knobs_changed,
        machine,
        tuners: runs,
        ratios,
        interrupted,
        duration_s: began.elapsed().as_secs_f64(),
    };
    drop(experiment);

    print!("{}", report.render());
    if let Some(path) = &args.json {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer(std::io::BufWriter::new(f), &report)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("ksm-bench: wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::draw(&report, path)?;
        eprintln!("ksm-bench: wrote {}", path.display());
    }
    Ok(report)
}

/// The figures of a run, for tests and tools reading a report.
pub fn figures_of<'a>(report: &'a Report, tuner: &str) -> Option<&'a Figures> {
    report
        .tuners
        .iter()
        .find(|r| r.spec.name == tuner)?
        .figures
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn args(extra: &[&str]) -> RunArgs {
        let mut v = vec!["ksm-bench"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().run
    }

    #[test]
    fn defaults_per_mode() {
        let missing = Path::new("/nonexistent/ksmtuned");
        let s = resolve(&args(&[]), 4096, missing).unwrap();
        assert_eq!(s.spec.workers, 4);
        assert_eq!(s.spec.pages_per_worker, 262_144);
        assert_eq!(s.limits.time_limit_s, 150.0);
        // Rest: from 30 to 90 s after 90%.
        assert_eq!((s.limits.settle_s, s.limits.steady_s), (30.0, 60.0));
        let names: Vec<&str> = s.tuners.iter().map(|t| t.name.as_str()).collect();
        // Without a ksmtuned binary adaptive is left out; classic stays
        // (it is reported as skipped, with the reason).
        assert_eq!(
            names,
            ["max-rate", "kernel-default", "kernel-advisor", "classic"]
        );
        let q = resolve(&args(&["--quick", "--mib", "8"]), 4096, missing).unwrap();
        assert_eq!((q.spec.workers, q.mib, q.limits.steady_s), (2, 8, 2.0));
        assert_eq!(q.spec.pages_per_worker, 2048);
    }

    #[test]
    fn tuner_lists() {
        let missing = Path::new("/nonexistent/ksmtuned");
        let s = resolve(
            &args(&["--tuners", "classic,adaptive", "--external", "x=sleep 1"]),
            4096,
            missing,
        )
        .unwrap();
        let names: Vec<&str> = s.tuners.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["classic", "adaptive", "x"]);
        let e = resolve(&args(&["--tuners", "fastest"]), 4096, missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fastest") && e.contains("kernel-advisor"), "{e}");
        assert!(resolve(&args(&["--tuners", "classic,classic"]), 4096, missing).is_err());
        assert!(resolve(&args(&["--plot", "x.png"]), 4096, missing).is_err());
        assert!(resolve(&args(&["--dup", "0.9", "--zero", "0.2"]), 4096, missing).is_err());
        assert!(resolve(&args(&["--time-limit", "0"]), 4096, missing).is_err());
        assert!(resolve(
            &args(&["--comm", "a-very-long-process-name"]),
            4096,
            missing
        )
        .is_err());
    }

    #[test]
    fn knob_differences() {
        let a = KsmState {
            pages_to_scan: Some(100),
            run: Some(Run::Stop),
            ..Default::default()
        };
        let mut b = a.clone();
        assert!(changed_knobs(&a, &b).is_empty());
        b.pages_to_scan = Some(300);
        b.pages_sharing = Some(5); // a counter, not a knob
        assert_eq!(changed_knobs(&a, &b), ["pages_to_scan 100 -> 300"]);
    }
}
