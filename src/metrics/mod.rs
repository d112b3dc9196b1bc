//! KSM's metrics in the Prometheus text exposition format (version 0.0.4).
//!
//! [`collect`] reads the system once through a [`Sampler`]; [`render`] is a
//! pure function of the [`Report`] of a sample (tested with numbers only). `ksmctl metrics` prints the
//! text once, for node_exporter's textfile collector; `ksmtuned` serves it
//! with [`Server`] when `KSM_METRICS_LISTEN` is set.
//!
//! Names carry the `ksm_` prefix and their unit in base units (`_bytes`,
//! `_seconds`, `_ratio`); cumulative kernel counters end in `_total`.
//! The encoding is done by the `prometheus` crate's `TextEncoder`, which
//! writes the classic text format that node_exporter's textfile collector
//! and `promtool check metrics` read (the OpenMetrics encoder of
//! `prometheus-client` writes `info`/`unknown` types those reject).

mod domains;
pub mod http;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use http::{Published, Server, ServerOptions, SERVER_NICE};

use prometheus::{Counter, Encoder, Gauge, GaugeVec, IntCounter, Opts, Registry, TextEncoder};

use crate::config::PolicyKind;
use crate::error::{Error, Result};
use crate::estimate::audit::DomainAudit;
use crate::kernel::ksm::{AdvisorMode, Kind, KsmState, Value, FILES};
use crate::kernel::proc::STAT_LINES;
use crate::policy::tuner::TunerState;
use crate::report::Report;
use crate::root::Root;
use crate::sample::last_audit::Refusal;
use crate::sample::processes::ProcessKsm;
use crate::sample::{Memory, Parts, Processes, Sample, Sampler, Split};

/// Processes shown by default in the per-process metrics.
pub const DEFAULT_TOP: usize = 20;

/// The HTTP content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the tuning daemon reports about itself; `ksmtuned` keeps one in an
/// `Arc<Mutex<_>>` and updates it after each cycle, the [`Server`] only
/// reads a copy of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TunerMetrics {
    /// The tuning policy.
    pub policy: PolicyKind,
    /// The policy's CPU budget for ksmd, a fraction of one core
    /// (KSM_MAX_CPU / 100): adaptive has one, classic none.
    pub max_cpu_ratio: Option<f64>,
    /// What the tuner is doing.
    pub state: TunerState,
    /// The `pages_to_scan` it chose last (None before the first choice).
    pub pages_to_scan: Option<u64>,
    /// The `sleep_millisecs` it chose last.
    pub sleep_ms: Option<u64>,
    /// Cycles that changed a KSM setting.
    pub adjustments: u64,
    /// Retunes asked for (SIGUSR1, `ksmtuned retune`).
    pub retunes: u64,
    /// Configuration reloads (SIGHUP).
    pub reloads: u64,
    /// Errors met by the loop (refused writes, unreadable files).
    pub errors: u64,
    /// When a setting was last changed.
    pub last_adjustment: Option<SystemTime>,
    /// Cycles run: scheduled ones, retunes and reloads.
    pub cycles: u64,
    /// Scheduled cycles left out because the one before overran its slot.
    pub cycles_skipped: u64,
    /// The time between scheduled cycles.
    pub interval: Option<Duration>,
    /// How late the last scheduled cycle started after it was due.
    pub cycle_delay: Option<Duration>,
    /// The largest such lateness since the start.
    pub cycle_delay_max: Duration,
    /// How long the last cycle took (reading, deciding, writing).
    pub cycle_duration: Option<Duration>,
    /// The last cross-domain audit (KSM_TRUST_DOMAINS set).
    pub domain_audit: Option<Arc<DomainAudit>>,
    /// KSM_CROSS_DOMAIN=refuse's hold on KSM, while it lasts (the audit
    /// thread sets it, the tuning loop acts on it, a reload lifts it).
    pub refusal: Option<Refusal>,
}

impl TunerMetrics {
    /// Count one cycle that took `took`; `delay` is how late it started
    /// after its slot (`None` for a retune or reload, which have no slot).
    pub fn record_cycle(&mut self, delay: Option<Duration>, took: Duration) {
        self.cycles += 1;
        if let Some(d) = delay {
            self.cycle_delay = Some(d);
            self.cycle_delay_max = self.cycle_delay_max.max(d);
        }
        self.cycle_duration = Some(took);
    }
}

/// Read what the metrics show: KSM's files, ksmd's CPU time, every
/// process's `ksm_stat`, and `/proc/meminfo` for the unmerge headroom
/// (optional here: the metrics do not fail without it).
pub fn collect(root: &Root) -> Result<Sample> {
    Sampler::new(
        root,
        Parts {
            memory: Memory::IfReadable,
            ksmd: true,
            processes: Processes::Merged,
            split_freed: Split::Always,
            last_estimate: true,
            ..Parts::default()
        },
    )
    .take()
}

/// Every metric family [`render`] can write, with its type, so that a
/// dashboard or a test can check the names it uses.
pub fn family_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = FILES.iter().map(|f| f.metric).collect();
    names.extend(STAT_LINES.iter().map(|l| l.metric));
    names.extend([
        "ksm_supported",
        "ksm_memory_saved_bytes",
        "ksm_unmerge_headroom_bytes",
        "ksm_page_size_bytes",
        "ksm_ksmd_cpu_seconds_total",
        "ksm_thp_split_pages_total",
        "ksm_split_freed_bytes",
        "ksm_process_split_freed_bytes",
        "ksm_estimate_saved_bytes",
        "ksm_estimate_to_gain_bytes",
        "ksm_estimate_error_bytes",
        "ksm_estimate_age_seconds",
        "ksm_estimate_cpu_seconds",
        "ksm_tuner_policy",
        "ksm_tuner_max_cpu_ratio",
        "ksm_tuner_state",
        "ksm_tuner_pages_to_scan",
        "ksm_tuner_sleep_seconds",
        "ksm_tuner_adjustments_total",
        "ksm_tuner_retunes_total",
        "ksm_tuner_reloads_total",
        "ksm_tuner_errors_total",
        "ksm_tuner_last_adjustment_timestamp_seconds",
        "ksm_tuner_cycles_total",
        "ksm_tuner_cycles_skipped_total",
        "ksm_tuner_interval_seconds",
        "ksm_tuner_cycle_delay_seconds",
        "ksm_tuner_cycle_delay_max_seconds",
        "ksm_tuner_cycle_duration_seconds",
        "ksm_cross_domain_shared_bytes",
        "ksm_cross_domain_audit_timestamp_seconds",
        "ksm_cross_domain_audit_duration_seconds",
        "ksm_cross_domain_audit_cpu_seconds",
        "ksm_cross_domain_refused",
        "ksm_cross_domain_refused_saved_bytes",
        "ksm_build_info",
    ]);
    names
}

fn perr(e: prometheus::Error) -> Error {
    Error::Other(format!("cannot build the metrics: {e}"))
}

/// A registry built for one rendering.
struct Families {
    reg: Registry,
}

impl Families {
    fn encode(&self) -> Result<String> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.reg.gather(), &mut out)
            .map_err(perr)?;
        String::from_utf8(out).map_err(|e| Error::Other(format!("metrics are not UTF-8: {e}")))
    }

    fn gauge(&self, name: &str, help: &str, v: f64) -> Result<()> {
        let g = Gauge::with_opts(Opts::new(name, help)).map_err(perr)?;
        g.set(v);
        self.reg.register(Box::new(g)).map_err(perr)
    }

    fn counter(&self, name: &str, help: &str, v: f64) -> Result<()> {
        // Whole numbers stay exact as integers; fractions (CPU seconds) as floats.
        if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) {
            let c = IntCounter::with_opts(Opts::new(name, help)).map_err(perr)?;
            c.inc_by(v as u64);
            self.reg.register(Box::new(c)).map_err(perr)
        } else {
            let c = Counter::with_opts(Opts::new(name, help)).map_err(perr)?;
            c.inc_by(v.max(0.0));
            self.reg.register(Box::new(c)).map_err(perr)
        }
    }

    fn labelled(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        rows: &[(Vec<String>, f64)],
    ) -> Result<()> {
        let g = GaugeVec::new(Opts::new(name, help), labels).map_err(perr)?;
        for (values, v) in rows {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            g.get_metric_with_label_values(&values)
                .map_err(perr)?
                .set(*v);
        }
        self.reg.register(Box::new(g)).map_err(perr)
    }
}

/// Render a sample as Prometheus text, with the `top` processes that have
/// the most merging pages.
pub fn render(report: &Report, tuner: Option<&TunerMetrics>, top: usize) -> Result<String> {
    let fam = Families {
        reg: Registry::new(),
    };
    fam.gauge(
        "ksm_supported",
        "Whether this kernel has KSM (/sys/kernel/mm/ksm exists).",
        if report.ksm.is_some() { 1.0 } else { 0.0 },
    )?;
    fam.gauge(
        "ksm_page_size_bytes",
        "The page size KSM merges in.",
        report.page_size as f64,
    )?;
    if let Some(s) = &report.ksm {
        render_files(&fam, s)?;
        fam.gauge(
            "ksm_memory_saved_bytes",
            "Memory KSM saves: (pages_sharing + ksm_zero_pages) * page size.",
            report.saved_bytes as f64,
        )?;
        if let Some(h) = &report.headroom {
            fam.gauge(
                "ksm_unmerge_headroom_bytes",
                "What the host could still take after unmerging everything: MemAvailable + \
                 SwapFree - memory saved. Below 0, ksmctl unmerge refuses without --force.",
                h.headroom_bytes() as f64,
            )?;
        }
    }
    if let Some(cpu) = report.ksmd_cpu_seconds {
        fam.counter(
            "ksm_ksmd_cpu_seconds_total",
            "CPU time (user + system) the ksmd kernel thread used.",
            cpu,
        )?;
    }
    render_processes(&fam, &report.processes, top)?;
    render_split_freed(&fam, report, top)?;
    render_estimate(&fam, report)?;
    render_guests(&fam, &report.processes)?;
    if let Some(t) = tuner {
        render_tuner(&fam, t)?;
    }
    fam.labelled(
        "ksm_build_info",
        "The version of ksmtuned/ksmctl that exposes these metrics (value 1).",
        &["version"],
        &[(vec![env!("CARGO_PKG_VERSION").to_string()], 1.0)],
    )?;
    fam.encode()
}

/// One family per file of KSM's that this kernel has ([`FILES`]): its
/// value in base units; the advisor's mode (a choice) as one series per
/// mode, 1 for the selected one.
fn render_files(fam: &Families, s: &KsmState) -> Result<()> {
    for f in FILES {
        if let Some(Value::Mode(mode)) = s.value(f.name) {
            let rows: Vec<(Vec<String>, f64)> = AdvisorMode::ALL
                .iter()
                .map(|m| (vec![m.to_string()], if *m == mode { 1.0 } else { 0.0 }))
                .collect();
            fam.labelled(f.metric, f.help, &["mode"], &rows)?;
        } else if let Some(v) = f.metric_value(s) {
            match f.kind {
                Kind::Counter => fam.counter(f.metric, f.help, v)?,
                Kind::Setting | Kind::Gauge => fam.gauge(f.metric, f.help, v)?,
            }
        }
    }
    Ok(())
}

/// Only the tuner's metrics: the server adds them, always current, to its
/// shared reading of the system's.
pub(crate) fn tuner_text(t: &TunerMetrics) -> Result<String> {
    let fam = Families {
        reg: Registry::new(),
    };
    render_tuner(&fam, t)?;
    fam.encode()
}

/// Every QEMU guest, merged or not, with its names and why KSM cannot
/// merge it (empty when it can): `ksm_guest_info`, value 1.
fn render_guests(fam: &Families, processes: &[ProcessKsm]) -> Result<()> {
    let rows: Vec<(Vec<String>, f64)> = processes
        .iter()
        .filter(|p| p.qemu)
        .map(|p| {
            (
                vec![
                    p.pid.to_string(),
                    p.comm.clone(),
                    p.guest.clone().unwrap_or_default(),
                    p.vmid.map(|v| v.to_string()).unwrap_or_default(),
                    p.not_mergeable.clone().unwrap_or_default(),
                ],
                1.0,
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    fam.labelled(
        "ksm_guest_info",
        "Each QEMU guest (value 1): libvirt/QEMU name, Proxmox VE VMID, and why KSM cannot merge its memory (not_mergeable: mem-merge=off, nothing opted in; empty when it can).",
        &["pid", "comm", "guest", "vmid", "not_mergeable"],
        &rows,
    )
}

fn render_processes(fam: &Families, processes: &[ProcessKsm], top: usize) -> Result<()> {
    let mut procs: Vec<&ProcessKsm> = processes.iter().filter(|p| p.merging_pages > 0).collect();
    procs.sort_by(|a, b| {
        b.merging_pages
            .cmp(&a.merging_pages)
            .then(a.pid.cmp(&b.pid))
    });
    procs.truncate(top);
    if procs.is_empty() {
        return Ok(());
    }
    // guest: the name, or on Proxmox VE "VMID (NAME)" (ksm_guest_info has
    // both apart).
    let labels = ["pid", "comm", "guest"];
    let rows = |f: &dyn Fn(&ProcessKsm) -> Option<f64>| -> Vec<(Vec<String>, f64)> {
        procs
            .iter()
            .filter_map(|p| {
                f(p).map(|v| {
                    (
                        vec![
                            p.pid.to_string(),
                            p.comm.clone(),
                            p.guest_label().unwrap_or_default(),
                        ],
                        v,
                    )
                })
            })
            .collect()
    };
    // One family per line of ksm_stat this kernel writes.
    for line in STAT_LINES {
        let values = rows(&|p| p.stat.value(line.name));
        if !values.is_empty() {
            fam.labelled(line.metric, line.help, &labels, &values)?;
        }
    }
    Ok(())
}

/// What KSM's huge-page splits freed outside its counters, where it could
/// be counted ([`crate::sample::split`]).
/// The daemon's last continuous estimate (KSM_ESTIMATE_INTERVAL), whatever
/// its age: `ksm_estimate_age_seconds` tells a stale one.
fn render_estimate(fam: &Families, report: &Report) -> Result<()> {
    let Some(e) = &report.last_estimate else {
        return Ok(());
    };
    fam.gauge(
        "ksm_estimate_saved_bytes",
        "What KSM would save in total on the memory opted in, by ksmtuned's last estimate \
         (sampled; KSM_ESTIMATE_INTERVAL).",
        e.saved_bytes as f64,
    )?;
    fam.gauge(
        "ksm_estimate_to_gain_bytes",
        "What KSM would save beyond what it saves now in the same processes, by the last \
         estimate (can be negative).",
        e.to_gain_bytes as f64,
    )?;
    fam.gauge(
        "ksm_estimate_error_bytes",
        "Two standard errors (95%) of ksm_estimate_saved_bytes from sampling.",
        e.saved_error_bytes as f64,
    )?;
    fam.gauge(
        "ksm_estimate_age_seconds",
        "Time since the last estimate finished.",
        e.age(SystemTime::now()).as_secs_f64(),
    )?;
    fam.gauge(
        "ksm_estimate_cpu_seconds",
        "CPU time the last estimate itself took.",
        e.cpu_seconds,
    )?;
    Ok(())
}

fn render_split_freed(fam: &Families, report: &Report, top: usize) -> Result<()> {
    let Some(f) = &report.split_freed else {
        return Ok(());
    };
    if let Some(n) = f.thp_split_pages {
        fam.counter(
            "ksm_thp_split_pages_total",
            "Transparent huge pages split since boot, every cause (thp_split_page in /proc/vmstat).",
            n as f64,
        )?;
    }
    let Some(pages) = f.pages else {
        return Ok(());
    };
    fam.gauge(
        "ksm_split_freed_bytes",
        "Memory freed by the huge-page splits KSM causes, in none of its counters: pages of the \
         mergeable memory of the processes KSM scans mapped to the zero page, minus their \
         ksm_zero_pages (0 on kernels whose splits keep all-zero subpages).",
        (pages * report.page_size) as f64,
    )?;
    let mut rows: Vec<(u32, u64)> = f.processes.clone();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows.truncate(top);
    let rows: Vec<(Vec<String>, f64)> = rows
        .into_iter()
        .map(|(pid, n)| {
            let p = report.processes.iter().find(|p| p.pid == pid);
            (
                vec![
                    pid.to_string(),
                    p.map(|p| p.comm.clone()).unwrap_or_default(),
                    p.and_then(|p| p.guest_label()).unwrap_or_default(),
                ],
                (n * report.page_size) as f64,
            )
        })
        .collect();
    if !rows.is_empty() {
        fam.labelled(
            "ksm_process_split_freed_bytes",
            "Memory of the process freed by KSM's huge-page splits (zero-page mappings in its \
             mergeable memory, minus ksm_zero_pages), for the processes with the most.",
            &["pid", "comm", "guest"],
            &rows,
        )?;
    }
    Ok(())
}

fn render_tuner(fam: &Families, t: &TunerMetrics) -> Result<()> {
    if let Some(a) = &t.domain_audit {
        domains::render(fam, a, t.refusal.as_ref())?;
    }
    fam.labelled(
        "ksm_tuner_policy",
        "The tuning policy ksmtuned runs (value 1).",
        &["policy"],
        &[(vec![t.policy.to_string()], 1.0)],
    )?;
    if let Some(r) = t.max_cpu_ratio {
        fam.gauge(
            "ksm_tuner_max_cpu_ratio",
            "The adaptive policy's CPU budget for ksmd, a fraction of one core (KSM_MAX_CPU / 100).",
            r,
        )?;
    }
    fam.labelled(
        "ksm_tuner_state",
        "What ksmtuned is doing (value 1): classic running or stopped; adaptive sprint, idle, stopped, or backoff (ksmd stopped because KSM cost more memory than it saved).",
        &["state"],
        &[(vec![t.state.as_str().to_string()], 1.0)],
    )?;
    if let Some(p) = t.pages_to_scan {
        fam.gauge(
            "ksm_tuner_pages_to_scan",
            "The pages_to_scan ksmtuned chose last.",
            p as f64,
        )?;
    }
    if let Some(ms) = t.sleep_ms {
        fam.gauge(
            "ksm_tuner_sleep_seconds",
            "The sleep between ksmd batches ksmtuned chose last (sleep_millisecs).",
            ms as f64 / 1000.0,
        )?;
    }
    fam.counter(
        "ksm_tuner_adjustments_total",
        "Tuning cycles that changed a KSM setting.",
        t.adjustments as f64,
    )?;
    fam.counter(
        "ksm_tuner_retunes_total",
        "Retunes asked for (SIGUSR1).",
        t.retunes as f64,
    )?;
    fam.counter(
        "ksm_tuner_reloads_total",
        "Configuration reloads (SIGHUP).",
        t.reloads as f64,
    )?;
    fam.counter(
        "ksm_tuner_errors_total",
        "Errors the tuning loop met and went on after.",
        t.errors as f64,
    )?;
    if let Some(when) = t.last_adjustment {
        let secs = when
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        fam.gauge(
            "ksm_tuner_last_adjustment_timestamp_seconds",
            "When ksmtuned last changed a KSM setting, in seconds since 1970.",
            secs,
        )?;
    }
    fam.counter(
        "ksm_tuner_cycles_total",
        "Tuning cycles run (scheduled ones, retunes and reloads).",
        t.cycles as f64,
    )?;
    fam.counter(
        "ksm_tuner_cycles_skipped_total",
        "Scheduled cycles left out because the cycle before overran its slot.",
        t.cycles_skipped as f64,
    )?;
    if let Some(i) = t.interval {
        fam.gauge(
            "ksm_tuner_interval_seconds",
            "The time between scheduled tuning cycles.",
            i.as_secs_f64(),
        )?;
    }
    if let Some(d) = t.cycle_delay {
        fam.gauge(
            "ksm_tuner_cycle_delay_seconds",
            "How late the last scheduled tuning cycle started after it was due.",
            d.as_secs_f64(),
        )?;
        fam.gauge(
            "ksm_tuner_cycle_delay_max_seconds",
            "The latest start of a scheduled tuning cycle after it was due, since ksmtuned started.",
            t.cycle_delay_max.as_secs_f64(),
        )?;
    }
    if let Some(d) = t.cycle_duration {
        fam.gauge(
            "ksm_tuner_cycle_duration_seconds",
            "How long the last tuning cycle took (reading, deciding, writing).",
            d.as_secs_f64(),
        )?;
    }
    Ok(())
}

/// `ksmctl metrics [--top N]`: print the metrics once.
pub fn command(root: &Root, top: usize, out: &mut impl Write) -> anyhow::Result<i32> {
    let report = Report::build(&collect(root)?, None, Vec::new());
    out.write_all(render(&report, None, top)?.as_bytes())?;
    Ok(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::meminfo::MemInfo;

    /// The views' fixture, with memory for the unmerge headroom.
    fn fixture() -> Sample {
        Sample {
            mem: Some(MemInfo {
                mem_total: 4 << 20,
                mem_free: 1 << 20,
                mem_available: Some(2 << 20),
                buffers: 0,
                cached: 0,
                swap_total: 1 << 20,
                swap_free: 512 << 10,
            }),
            split_freed: Some(crate::sample::split::SplitFreed {
                thp_mode: Some("madvise".into()),
                thp_split_pages: Some(545),
                split_maps_zero_pages: true,
                pages: Some(10_000),
                processes: vec![(4242, 10_000)],
                why_not: None,
            }),
            last_estimate: Some(crate::sample::last_estimate::LastEstimate {
                finished_unix_seconds: 1_800_000_000,
                interval_seconds: 3600,
                saved_bytes: 3 << 30,
                saved_error_bytes: 100 << 20,
                to_gain_bytes: -(1 << 20),
                zero_only_saved_bytes: 1 << 30,
                scanned_bytes: 8 << 30,
                sample: 16,
                cpu_seconds: 4.5,
                elapsed_seconds: 45.0,
            }),
            ..crate::sample::fixture()
        }
    }

    fn report(s: Sample) -> Report {
        Report::build(&s, None, Vec::new())
    }

    fn tuner() -> TunerMetrics {
        TunerMetrics {
            policy: PolicyKind::Adaptive,
            max_cpu_ratio: Some(0.3),
            state: TunerState::Adaptive(crate::policy::adaptive::Mode::Sprint),
            pages_to_scan: Some(1250),
            sleep_ms: Some(10),
            adjustments: 3,
            retunes: 1,
            reloads: 2,
            errors: 0,
            last_adjustment: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            cycles: 12,
            cycles_skipped: 1,
            interval: Some(Duration::from_secs(60)),
            cycle_delay: Some(Duration::from_micros(1500)),
            cycle_delay_max: Duration::from_millis(250),
            cycle_duration: Some(Duration::from_micros(4250)),
            domain_audit: Some(Arc::new(audit_fixture())),
            refusal: Some(Refusal {
                since_unix_seconds: 1_800_000_100,
                pairs: Vec::new(),
                cross_domain_bytes: 8192,
                saved_bytes_given_up: Some(1 << 20),
                unmerged: true,
            }),
        }
    }

    /// An audit of 12 pairs: 10 shown, 2 summed.
    fn audit_fixture() -> DomainAudit {
        DomainAudit {
            trust_domains: "guest".into(),
            pairs: (0..12u64)
                .map(|i| crate::estimate::audit::DomainPair {
                    a: format!("vm{i:02}"),
                    b: "vm99".into(),
                    shared_bytes: (20 - i) * 4096,
                })
                .collect(),
            cross_domain_bytes: 0,
            ksm_bytes: 0,
            domains: Default::default(),
            process_domains: Default::default(),
            processes_scanned: 13,
            pages_examined: 1000,
            timestamp_seconds: 1_800_000_100.0,
            duration_seconds: 0.5,
            cpu_seconds: 0.05,
        }
    }

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .map(|l| l[series.len() + 1..].to_string())
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&report(fixture()), Some(&tuner()), DEFAULT_TOP).unwrap();
        // 2 GiB available + 512 MiB swap - 1995 pages saved.
        let headroom = ((2i64 << 30) + (512 << 20) - 1995 * 4096).to_string();
        for (series, want) in [
            ("ksm_pages_sharing", "1990"),
            ("ksm_split_freed_bytes", "40960000"),
            ("ksm_thp_split_pages_total", "545"),
            ("ksm_general_profit_bytes", "-65536"),
            ("ksm_memory_saved_bytes", "8171520"),
            ("ksm_full_scans_total", "17"),
            ("ksm_unmerge_headroom_bytes", headroom.as_str()),
            ("ksm_pages_scanned_total", "123456789"),
            ("ksm_sleep_seconds", "0.02"),
            ("ksm_advisor_max_cpu_ratio", "0.7"),
            ("ksm_ksmd_cpu_seconds_total", "12.34"),
            ("ksm_advisor_mode{mode=\"none\"}", "1"),
            ("ksm_advisor_mode{mode=\"scan-time\"}", "0"),
            ("ksm_tuner_sleep_seconds", "0.01"),
            ("ksm_tuner_last_adjustment_timestamp_seconds", "1800000000"),
            ("ksm_tuner_state{state=\"sprint\"}", "1"),
            ("ksm_tuner_max_cpu_ratio", "0.3"),
            ("ksm_tuner_cycles_total", "12"),
            ("ksm_tuner_cycles_skipped_total", "1"),
            ("ksm_tuner_interval_seconds", "60"),
            ("ksm_tuner_cycle_delay_seconds", "0.0015"),
            ("ksm_tuner_cycle_delay_max_seconds", "0.25"),
            ("ksm_tuner_cycle_duration_seconds", "0.00425"),
            (
                "ksm_cross_domain_shared_bytes{a=\"vm00\",b=\"vm99\"}",
                "81920",
            ),
            (
                "ksm_cross_domain_shared_bytes{a=\"vm09\",b=\"vm99\"}",
                "45056",
            ),
            (
                "ksm_cross_domain_shared_bytes{a=\"other pairs\",b=\"other pairs\"}",
                "77824",
            ),
            ("ksm_cross_domain_audit_timestamp_seconds", "1800000100"),
            ("ksm_cross_domain_audit_duration_seconds", "0.5"),
            ("ksm_cross_domain_audit_cpu_seconds", "0.05"),
            ("ksm_cross_domain_refused", "1"),
            ("ksm_cross_domain_refused_saved_bytes", "1048576"),
            ("ksm_estimate_saved_bytes", "3221225472"),
            ("ksm_estimate_to_gain_bytes", "-1048576"),
            ("ksm_estimate_error_bytes", "104857600"),
            ("ksm_estimate_cpu_seconds", "4.5"),
        ] {
            assert_eq!(value(&text, series).as_deref(), Some(want), "{series}");
        }
        assert!(
            !text.contains("a=\"vm10\""),
            "pairs past the top 10 are summed"
        );
        assert!(text.contains("# TYPE ksm_tuner_max_cpu_ratio gauge\n"));
        assert!(text.contains("# TYPE ksm_tuner_cycles_total counter\n"));
        assert!(text.contains("# TYPE ksm_tuner_cycle_delay_max_seconds gauge\n"));
        assert!(text.contains("# TYPE ksm_full_scans_total counter\n"));
        assert!(text.contains("# TYPE ksm_pages_sharing gauge\n"));
        assert!(text.contains(&format!(
            "ksm_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        // The estimate's age at this scrape.
        let age: f64 = value(&text, "ksm_estimate_age_seconds")
            .unwrap()
            .parse()
            .unwrap();
        let want = SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .map_or(0.0, |d| d.as_secs_f64());
        assert!((age - want).abs() < 5.0, "{age} vs {want}");
        // Absent file: no family.
        assert!(!text.contains("ksm_max_kernel_pages"));
        // Every family has HELP and TYPE, and carries the prefix.
        let mut families = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("ksm_"), "{line}");
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
        for name in family_names() {
            if text.contains(&format!("# TYPE {name} ")) {
                families += 1;
            }
        }
        // All but max_kernel_pages are in this fixture.
        assert_eq!(families, family_names().len() - 1);
    }

    #[test]
    fn cycles_are_recorded() {
        let mut t = TunerMetrics::default();
        let text = |t: &TunerMetrics| render(&report(fixture()), Some(t), DEFAULT_TOP).unwrap();
        // Before the first cycle: a count of 0, no timing.
        let before = text(&t);
        assert_eq!(
            value(&before, "ksm_tuner_cycles_total").as_deref(),
            Some("0")
        );
        assert!(!before.contains("ksm_tuner_cycle_delay"));
        assert!(!before.contains("ksm_tuner_cycle_duration_seconds"));
        // The classic policy (the default) has no CPU budget.
        assert!(!before.contains("ksm_tuner_max_cpu_ratio"));
        t.record_cycle(Some(Duration::from_millis(30)), Duration::from_millis(2));
        t.record_cycle(Some(Duration::from_millis(5)), Duration::from_millis(3));
        // A retune has no slot: the delays stay, the duration is its own.
        t.record_cycle(None, Duration::from_millis(7));
        assert_eq!(t.cycles, 3);
        assert_eq!(t.cycle_delay, Some(Duration::from_millis(5)));
        assert_eq!(t.cycle_delay_max, Duration::from_millis(30));
        assert_eq!(t.cycle_duration, Some(Duration::from_millis(7)));
        let after = text(&t);
        assert_eq!(
            value(&after, "ksm_tuner_cycles_total").as_deref(),
            Some("3")
        );
        assert_eq!(
            value(&after, "ksm_tuner_cycle_delay_seconds").as_deref(),
            Some("0.005")
        );
        assert_eq!(
            value(&after, "ksm_tuner_cycle_delay_max_seconds").as_deref(),
            Some("0.03")
        );
        assert_eq!(
            value(&after, "ksm_tuner_cycle_duration_seconds").as_deref(),
            Some("0.007")
        );
    }

    #[test]
    fn top_processes_by_merging_pages() {
        let text = render(&report(fixture()), Some(&tuner()), 2).unwrap();
        let merging: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ksm_process_merging_pages{"))
            .collect();
        assert_eq!(merging.len(), 2, "{text}");
        assert!(merging.iter().any(|l| l.contains("pid=\"4242\"")
            && l.contains("comm=\"qemu-system-x86\"")
            && l.contains("guest=\"rhel9\"")
            && l.ends_with(" 1500")));
        // Quotes in a process name are escaped.
        assert!(merging.iter().any(|l| l.contains(r#"comm="probe \"x\"""#)));
        assert!(!text.contains("pid=\"100\""));
        assert!(text.contains("ksm_process_profit_bytes{comm=\"qemu-system-x86\",guest=\"rhel9\",pid=\"4242\"} 6000000"));
        // Every line of ksm_stat the kernel writes is a family (here 6.14's
        // ksm_mergeable too).
        assert!(text.contains(
            "ksm_process_mergeable{comm=\"qemu-system-x86\",guest=\"rhel9\",pid=\"4242\"} 1"
        ));
        // Processes with nothing merged never show.
        let all = render(&report(fixture()), Some(&tuner()), 100).unwrap();
        assert!(!all.contains("pid=\"300\""));
        assert!(all.contains("pid=\"100\""));
    }

    #[test]
    fn without_ksm_or_tuner() {
        let s = Sample {
            page_size: 65536,
            ..Sample::empty()
        };
        let text = render(&report(s), None, DEFAULT_TOP).unwrap();
        assert_eq!(value(&text, "ksm_supported").as_deref(), Some("0"));
        assert_eq!(
            value(&text, "ksm_page_size_bytes").as_deref(),
            Some("65536")
        );
        assert!(!text.contains("ksm_pages_sharing"));
        assert!(!text.contains("ksm_tuner_"));
    }
}
