//! Figures computed from the samples (pure functions of numbers), the
//! whole run's report, and its rendering as a table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::sampler::Point;
use super::tuner::TunerSpec;
use super::workload::{Attainable, ClassCounts, WorkloadSpec};
use crate::kernel::ksm::KsmState;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// How long each tuner runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Give up waiting for 90% of attainable after this long.
    pub time_limit_s: f64,
    /// After 90%: wait this long before the rest window...
    pub settle_s: f64,
    /// ...and measure ksmd's CPU at rest over this long.
    pub steady_s: f64,
}

/// The short window whose worst case the rest figures report, ms: a
/// spike shorter than the rest window cannot hide in its average.
pub const REST_WINDOW_MS: u64 = 5_000;

/// The window over which the peak of ksmd's CPU share is taken for the
/// whole run, ms (what the `--volatile` budget check looks at).
pub const PEAK_WINDOW_MS: u64 = 10_000;

/// Every figure of one tuner's run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Attainable pages for the run's `use_zero_pages`.
    pub attainable_pages: u64,
    /// Seconds from the start to 50% / 90% of attainable.
    pub t50_s: Option<f64>,
    pub t90_s: Option<f64>,
    /// The best fraction of attainable reached.
    pub best_fraction: f64,
    /// ksmd CPU-seconds until 90%.
    pub ksmd_cpu_s_to_90: Option<f64>,
    /// ksmd CPU-seconds per GiB saved (at 90%, or at the end when 90% was
    /// not reached).
    pub ksmd_cpu_s_per_gib: Option<f64>,
    /// ksmd's average CPU share (% of one core) at rest: from `settle_s`
    /// to `settle_s + steady_s` after 90%.
    pub rest_ksmd_cpu_pct: Option<f64>,
    /// ksmd's CPU share in the worst 5-second window of that span (the
    /// whole span when it is shorter).
    pub rest_worst_5s_ksmd_cpu_pct: Option<f64>,
    /// The rest span, seconds from the start.
    pub rest_from_s: Option<f64>,
    pub rest_to_s: Option<f64>,
    /// ksmd's CPU share in the worst 10-second window of the whole run
    /// (the whole run when it is shorter): the sprint's budget check.
    pub peak_10s_ksmd_cpu_pct: Option<f64>,
    /// The tuner's own CPU-seconds (process and children) over the run.
    pub tuner_cpu_s: f64,
    /// ksmd CPU-seconds over the whole run.
    pub ksmd_cpu_s_total: f64,
    pub final_saved_pages: u64,
    pub final_saved_mib: f64,
    pub final_general_profit_mib: Option<f64>,
    pub final_pages_to_scan: Option<u64>,
    pub final_sleep_millisecs: Option<u64>,
    pub full_scans: u64,
    pub duration_s: f64,
    /// Time to 90% as a multiple of the ideal time (two full scans at
    /// ksmd's maximum rate).
    pub time_over_ideal: Option<f64>,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// ksmd's CPU share between two samples, % of one core.
fn share_pct(a: &Point, b: &Point) -> Option<f64> {
    (b.t_ms > a.t_ms).then(|| {
        b.ksmd_cpu_ms.saturating_sub(a.ksmd_cpu_ms) as f64 / (b.t_ms - a.t_ms) as f64 * 100.0
    })
}

/// ksmd's highest CPU share over any window of `len_ms` between
/// consecutive samples (each window starts at a sample and ends at the
/// first sample at least `len_ms` later); over the whole series when it is
/// shorter than that.
pub fn worst_window_pct(samples: &[&Point], len_ms: u64) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    if last.t_ms.saturating_sub(first.t_ms) < len_ms {
        return share_pct(first, last);
    }
    let mut worst: Option<f64> = None;
    let mut j = 0;
    for (i, a) in samples.iter().enumerate() {
        j = j.max(i + 1);
        while j < samples.len() && samples[j].t_ms < a.t_ms + len_ms {
            j += 1;
        }
        let Some(b) = samples.get(j) else { break };
        if let Some(p) = share_pct(a, b) {
            worst = Some(worst.map_or(p, |w: f64| w.max(p)));
        }
    }
    worst
}

/// The figures of one run.
pub fn figures(
    samples: &[Point],
    attainable: &Attainable,
    page_size: u64,
    limits: &Limits,
    ideal_s: Option<f64>,
) -> Figures {
    let Some(last) = samples.last() else {
        return Figures::default();
    };
    let att = attainable.for_zero_pages(last.use_zero_pages);
    let frac = |s: &Point| {
        let a = attainable.for_zero_pages(s.use_zero_pages);
        if a == 0 {
            0.0
        } else {
            s.saved_pages as f64 / a as f64
        }
    };
    let first_at = |f: f64| samples.iter().find(|s| att > 0 && frac(s) >= f);
    let at50 = first_at(0.5);
    let at90 = first_at(0.9);
    let gib = |pages: u64| pages as f64 * page_size as f64 / GIB;
    let per_gib = |s: &Point| (s.saved_pages > 0).then(|| secs(s.ksmd_cpu_ms) / gib(s.saved_pages));
    let (mut rest, mut worst, mut from, mut to) = (None, None, None, None);
    if let Some(s90) = at90 {
        let start = s90.t_ms as f64 + limits.settle_s * 1000.0;
        let end = start + limits.steady_s * 1000.0;
        let window: Vec<&Point> = samples
            .iter()
            .filter(|s| s.t_ms as f64 >= start && s.t_ms as f64 <= end + 1.0)
            .collect();
        if let (Some(a), Some(b)) = (window.first(), window.last()) {
            if let Some(p) = share_pct(a, b) {
                rest = Some(p);
                worst = worst_window_pct(&window, REST_WINDOW_MS);
                from = Some(secs(a.t_ms));
                to = Some(secs(b.t_ms));
            }
        }
    }
    let all: Vec<&Point> = samples.iter().collect();
    let t90 = at90.map(|s| secs(s.t_ms));
    Figures {
        attainable_pages: att,
        t50_s: at50.map(|s| secs(s.t_ms)),
        t90_s: t90,
        best_fraction: samples.iter().map(frac).fold(0.0, f64::max),
        ksmd_cpu_s_to_90: at90.map(|s| secs(s.ksmd_cpu_ms)),
        ksmd_cpu_s_per_gib: at90.map_or_else(|| per_gib(last), per_gib),
        rest_ksmd_cpu_pct: rest,
        rest_worst_5s_ksmd_cpu_pct: worst,
        rest_from_s: from,
        rest_to_s: to,
        peak_10s_ksmd_cpu_pct: worst_window_pct(&all, PEAK_WINDOW_MS),
        tuner_cpu_s: secs(samples.iter().map(|s| s.tuner_cpu_ms).max().unwrap_or(0)),
        ksmd_cpu_s_total: secs(last.ksmd_cpu_ms),
        final_saved_pages: last.saved_pages,
        final_saved_mib: last.saved_pages as f64 * page_size as f64 / MIB,
        final_general_profit_mib: last.general_profit_bytes.map(|b| b as f64 / MIB),
        final_pages_to_scan: last.pages_to_scan,
        final_sleep_millisecs: last.sleep_millisecs,
        full_scans: last.full_scans,
        duration_s: secs(last.t_ms),
        time_over_ideal: match (t90, ideal_s) {
            (Some(t), Some(i)) if i > 0.0 => Some(t / i),
            _ => None,
        },
    }
}

/// ksmd's scan throughput (pages visited per second: scanned plus skipped
/// by smart scan) over the first two full scans of a max-rate run (the
/// bench samples that run every 10 ms until then), or over the whole run
/// when it never finished two.
pub fn scan_rate(samples: &[Point], mergeable_pages: u64) -> Option<f64> {
    let s = samples
        .iter()
        .find(|s| s.full_scans >= 2)
        .or_else(|| samples.last())?;
    if s.t_ms == 0 {
        return None;
    }
    let pages = match s.pages_scanned {
        Some(scanned) => scanned + s.pages_skipped.unwrap_or(0),
        None => s.full_scans * mergeable_pages,
    };
    (pages > 0).then(|| pages as f64 / secs(s.t_ms))
}

/// How a tuner's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// It ran (whether or not it reached 90%: see the figures).
    Ran,
    /// It could not be started (e.g. no ksmtuned binary).
    Skipped,
    /// It started but failed (exited early, refused settings).
    Failed,
}

/// One tuner's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TunerRun {
    #[serde(flatten)]
    pub spec: TunerSpec,
    pub status: RunStatus,
    pub notes: Vec<String>,
    /// How long the unmerge (run=2) before it took.
    pub unmerge_s: f64,
    pub figures: Option<Figures>,
    #[serde(default)]
    pub samples: Vec<Point>,
}

/// One ratio row: tuner / baseline for each figure where both exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub tuner: String,
    pub baseline: String,
    pub time_to_90: Option<f64>,
    pub ksmd_cpu_to_90: Option<f64>,
    pub rest_ksmd_cpu: Option<f64>,
    pub tuner_cpu: Option<f64>,
    pub final_saved: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Ratios of every tuner that ran to every one before it (max-rate, the
/// machine's limit, excluded): `classic/kernel-advisor`, ...
pub fn ratios(runs: &[TunerRun]) -> Vec<Ratio> {
    let ran: Vec<(&str, &Figures)> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Ran && r.spec.name != "max-rate")
        .filter_map(|r| Some((r.spec.name.as_str(), r.figures.as_ref()?)))
        .collect();
    let mut out = Vec::new();
    for (i, (name, f)) in ran.iter().enumerate() {
        for (base, b) in &ran[..i] {
            out.push(Ratio {
                tuner: name.to_string(),
                baseline: base.to_string(),
                time_to_90: ratio(f.t90_s, b.t90_s),
                ksmd_cpu_to_90: ratio(f.ksmd_cpu_s_to_90, b.ksmd_cpu_s_to_90),
                rest_ksmd_cpu: ratio(f.rest_ksmd_cpu_pct, b.rest_ksmd_cpu_pct),
                tuner_cpu: ratio(Some(f.tuner_cpu_s), Some(b.tuner_cpu_s)),
                final_saved: ratio(
                    Some(f.final_saved_pages as f64),
                    Some(b.final_saved_pages as f64),
                ),
            });
        }
    }
    out
}

/// The machine the bench ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub kernel: String,
    pub cpus: usize,
    pub page_size_bytes: u64,
    pub mem_total_kib: u64,
}

/// The workload as run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadReport {
    #[serde(flatten)]
    pub spec: WorkloadSpec,
    pub merge: String,
    pub comm: String,
    pub churn_ms: u64,
    pub per_worker: ClassCounts,
    pub image_distinct_pages: u64,
    pub total_pages: u64,
    pub attainable: Attainable,
}

/// The machine's limit, from the max-rate run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub scan_rate_pages_per_s: Option<f64>,
    /// Two full scans of the workload at that rate.
    pub ideal_s: Option<f64>,
}

/// Everything of one bench run (the `--json` file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub date: String,
    pub command: Vec<String>,
    pub host: Host,
    pub workload: WorkloadReport,
    pub limits: Limits,
    pub sample_interval_ms: u64,
    /// The granularity of ksmd's CPU time: 1 ns where the kernel keeps
    /// its run time (schedstat), a clock tick otherwise (0: no ksmd).
    pub ksmd_cpu_resolution_ns: u64,
    pub daemon_config: String,
    pub knobs_before: KsmState,
    pub knobs_after: KsmState,
    /// Knobs whose value after the run differs from before (should be
    /// empty).
    pub knobs_changed: Vec<String>,
    pub machine: Machine,
    pub tuners: Vec<TunerRun>,
    pub ratios: Vec<Ratio>,
    /// Whether the run was cut short (a signal or an error).
    pub interrupted: Option<String>,
    /// Seconds the whole run took, from taking the ksmd lock to the
    /// restored knobs.
    pub duration_s: f64,
}

/// How one cell of the table is computed.
type Cell = Box<dyn Fn(&TunerRun, &Figures) -> String>;

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

fn x(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.2}x"))
}

impl Report {
    /// The table for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let w = &self.workload;
        let ps = self.host.page_size_bytes;
        let mib = |pages: u64| pages as f64 * ps as f64 / MIB;
        let _ = writeln!(
            out,
            "ksm-bench on Linux {}, {} CPUs, {:.1} GiB, page {} B",
            self.host.kernel,
            self.host.cpus,
            self.host.mem_total_kib as f64 / 1024.0 / 1024.0,
            ps
        );
        let _ = writeln!(out, "workload: {}", w.spec.describe(ps));
        let _ = writeln!(
            out,
            "          merge {}, comm {}, {} pages ({:.0} MiB) in all",
            w.merge,
            w.comm,
            w.total_pages,
            mib(w.total_pages)
        );
        let _ = writeln!(
            out,
            "attainable: {} pages ({:.1} MiB) with use_zero_pages=0, {} pages ({:.1} MiB) with use_zero_pages=1 (max_page_sharing {})",
            w.attainable.without_zero_pages,
            mib(w.attainable.without_zero_pages),
            w.attainable.with_zero_pages,
            mib(w.attainable.with_zero_pages),
            w.attainable.max_page_sharing
        );
        let _ = writeln!(
            out,
            "machine: ksmd at max rate {}, ideal time (two full scans) {}",
            opt(self.machine.scan_rate_pages_per_s, |r| format!(
                "{:.0} pages/s",
                r
            )),
            opt(self.machine.ideal_s, |s| format!("{s:.1} s"))
        );
        let _ = writeln!(
            out,
            "ksmd CPU time: {}",
            match self.ksmd_cpu_resolution_ns {
                0 => "not found (reads 0)".to_string(),
                1 => "nanoseconds (schedstat)".to_string(),
                ns => format!("clock ticks of {} ms (no schedstat)", ns / 1_000_000),
            }
        );
        let _ = writeln!(
            out,
            "limits: {:.0} s to reach 90% per tuner; rest = {:.0} s from {:.0} s after 90% (average and worst 5 s)",
            self.limits.time_limit_s, self.limits.steady_s, self.limits.settle_s
        );
        out.push('\n');

        let mut notes: Vec<String> = Vec::new();
        let mut header = vec![String::new()];
        for r in &self.tuners {
            let mut numbers = Vec::new();
            for n in &r.notes {
                notes.push(format!("{}: {n}", r.spec.name));
                numbers.push(notes.len().to_string());
            }
            header.push(if numbers.is_empty() {
                r.spec.name.clone()
            } else {
                format!("{} ({})", r.spec.name, numbers.join(", "))
            });
        }
        let rows: Vec<(&str, Cell)> = vec![
            (
                "time to 50%",
                Box::new(|_, f| opt(f.t50_s, |t| format!("{t:.1} s"))),
            ),
            (
                "time to 90%",
                Box::new(|_, f| match f.t90_s {
                    Some(t) => format!("{t:.1} s"),
                    None => format!(">{:.0} s ({:.0}%)", f.duration_s, f.best_fraction * 100.0),
                }),
            ),
            ("  x ideal", Box::new(|_, f| x(f.time_over_ideal))),
            (
                "ksmd CPU to 90%",
                Box::new(|_, f| opt(f.ksmd_cpu_s_to_90, |c| format!("{c:.2} s"))),
            ),
            (
                "ksmd CPU per GiB saved",
                Box::new(|_, f| opt(f.ksmd_cpu_s_per_gib, |c| format!("{c:.2} s"))),
            ),
            (
                "peak ksmd CPU (10 s)",
                Box::new(|_, f| opt(f.peak_10s_ksmd_cpu_pct, |c| format!("{c:.1}%"))),
            ),
            (
                "rest ksmd CPU",
                Box::new(|_, f| opt(f.rest_ksmd_cpu_pct, |c| format!("{c:.2}%"))),
            ),
            (
                "  worst 5 s",
                Box::new(|_, f| opt(f.rest_worst_5s_ksmd_cpu_pct, |c| format!("{c:.2}%"))),
            ),
            (
                "tuner CPU",
                Box::new(|r, f| {
                    if r.spec.is_process() {
                        format!("{:.2} s", f.tuner_cpu_s)
                    } else {
                        "-".into()
                    }
                }),
            ),
            (
                "saved (final)",
                Box::new(|_, f| {
                    format!(
                        "{:.1} MiB {:.0}%",
                        f.final_saved_mib,
                        if f.attainable_pages > 0 {
                            f.final_saved_pages as f64 / f.attainable_pages as f64 * 100.0
                        } else {
                            0.0
                        }
                    )
                }),
            ),
            (
                "general_profit (final)",
                Box::new(|_, f| opt(f.final_general_profit_mib, |m| format!("{m:.1} MiB"))),
            ),
            ("full scans", Box::new(|_, f| f.full_scans.to_string())),
            (
                "pages_to_scan/sleep (end)",
                Box::new(|_, f| {
                    format!(
                        "{}/{}",
                        f.final_pages_to_scan
                            .map_or("-".into(), |p| if p >= u64::from(u32::MAX) {
                                "max".to_string()
                            } else {
                                p.to_string()
                            }),
                        f.final_sleep_millisecs
                            .map_or("-".into(), |s| format!("{s}ms"))
                    )
                }),
            ),
            (
                "run time",
                Box::new(|_, f| format!("{:.1} s", f.duration_s)),
            ),
        ];
        let mut table: Vec<Vec<String>> = vec![header];
        let status_row: Vec<String> = std::iter::once("status".to_string())
            .chain(self.tuners.iter().map(|r| match r.status {
                RunStatus::Ran => "ran".to_string(),
                RunStatus::Skipped => "skipped".to_string(),
                RunStatus::Failed => "failed".to_string(),
            }))
            .collect();
        table.push(status_row);
        for (label, f) in &rows {
            let mut row = vec![label.to_string()];
            for r in &self.tuners {
                row.push(match &r.figures {
                    Some(fig) => f(r, fig),
                    None => "-".into(),
                });
            }
            table.push(row);
        }
        let widths: Vec<usize> = (0..table[0].len())
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &table {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c == 0 {
                    let _ = write!(line, "{cell:<w$}", w = widths[0]);
                } else {
                    let _ = write!(line, "  {cell:>w$}", w = widths[c]);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if !self.ratios.is_empty() {
            out.push('\n');
            let _ = writeln!(
                out,
                "ratios (tuner/baseline; time and CPU: lower is better, saved: higher is better)"
            );
            let width = self
                .ratios
                .iter()
                .map(|r| r.tuner.len() + r.baseline.len() + 1)
                .max()
                .unwrap_or(0);
            for r in &self.ratios {
                let _ = writeln!(
                    out,
                    "  {:<width$}  time to 90% {:>6}  ksmd CPU to 90% {:>6}  rest ksmd CPU {:>6}  saved {:>6}",
                    format!("{}/{}", r.tuner, r.baseline),
                    x(r.time_to_90),
                    x(r.ksmd_cpu_to_90),
                    x(r.rest_ksmd_cpu),
                    x(r.final_saved),
                );
            }
        }
        if !notes.is_empty() {
            out.push('\n');
            for (i, n) in notes.iter().enumerate() {
                let _ = writeln!(out, "({}) {n}", i + 1);
            }
        }
        if !self.knobs_changed.is_empty() {
            let _ = writeln!(
                out,
                "\nwarning: KSM knobs differ from before the run: {}",
                self.knobs_changed.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(n: u64) -> Attainable {
        Attainable {
            without_zero_pages: n,
            with_zero_pages: n + 10,
            max_page_sharing: 256,
        }
    }

    fn s(t_ms: u64, saved: u64, ksmd_ms: u64) -> Point {
        Point {
            t_ms,
            saved_pages: saved,
            ksmd_cpu_ms: ksmd_ms,
            ..Default::default()
        }
    }

    const L: Limits = Limits {
        time_limit_s: 60.0,
        settle_s: 1.0,
        steady_s: 2.0,
    };

    #[test]
    fn thresholds_cpu_and_steady_state() {
        // 1000 attainable; 50% at 2 s, 90% at 4 s, then ksmd uses 100 ms
        // per second (10%).
        let samples = vec![
            s(0, 0, 0),
            s(1000, 100, 400),
            s(2000, 500, 800),
            s(3000, 800, 1200),
            s(4000, 900, 1600),
            s(5000, 1000, 1700),
            s(6000, 1000, 1800),
            s(7000, 1000, 1900),
        ];
        let f = figures(&samples, &att(1000), 4096, &L, Some(2.0));
        assert_eq!(f.attainable_pages, 1000);
        assert_eq!(f.t50_s, Some(2.0));
        assert_eq!(f.t90_s, Some(4.0));
        assert_eq!(f.time_over_ideal, Some(2.0));
        assert_eq!(f.ksmd_cpu_s_to_90, Some(1.6));
        // 900 pages of 4 KiB = 900/262144 GiB.
        let per_gib = f.ksmd_cpu_s_per_gib.unwrap();
        assert!((per_gib - 1.6 / (900.0 / 262144.0)).abs() < 1e-6);
        // Window 5 s .. 7 s: 200 ms of ksmd in 2 s = 10%.
        assert_eq!(f.rest_from_s, Some(5.0));
        assert_eq!(f.rest_to_s, Some(7.0));
        assert!((f.rest_ksmd_cpu_pct.unwrap() - 10.0).abs() < 1e-9);
        // The span is shorter than 5 s: its worst window is all of it.
        assert!((f.rest_worst_5s_ksmd_cpu_pct.unwrap() - 10.0).abs() < 1e-9);
        // The whole run is shorter than 10 s: 1.9 s of ksmd in 7 s.
        assert!((f.peak_10s_ksmd_cpu_pct.unwrap() - 1900.0 / 7000.0 * 100.0).abs() < 1e-9);
        assert_eq!(f.best_fraction, 1.0);
        assert_eq!(f.final_saved_pages, 1000);
        assert!((f.final_saved_mib - 1000.0 * 4096.0 / MIB).abs() < 1e-9);
        assert_eq!(f.duration_s, 7.0);
    }

    #[test]
    fn a_spike_shows_in_the_worst_window_not_in_the_average() {
        // 60 s at rest, sampled every 100 ms: ksmd at 0.4% of a core,
        // except 3 s at 10% from 20 s on.
        let mut samples = Vec::new();
        let mut cpu = 0.0f64;
        for i in 0..=600u64 {
            samples.push(s(i * 100, 1000, cpu.round() as u64));
            let t = i * 100;
            cpu += if (20_000..23_000).contains(&t) {
                10.0
            } else {
                0.4
            };
        }
        let all: Vec<&Point> = samples.iter().collect();
        let worst = worst_window_pct(&all, REST_WINDOW_MS).unwrap();
        // The worst 5 s hold the whole spike: (300 + 2 s x 4) ms / 5 s.
        assert!((worst - 6.16).abs() < 0.05, "{worst}");
        let avg = share_pct(all[0], all[600]).unwrap();
        assert!(avg < 1.0, "{avg}");
        // Flat: every window is the average.
        let flat: Vec<Point> = (0..=100u64).map(|i| s(i * 100, 0, i)).collect();
        let flat: Vec<&Point> = flat.iter().collect();
        assert!((worst_window_pct(&flat, 5_000).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(worst_window_pct(&[], 5_000), None);
    }

    #[test]
    fn not_reached() {
        let samples = vec![s(0, 0, 0), s(1000, 300, 500), s(2000, 600, 1000)];
        let f = figures(&samples, &att(1000), 4096, &L, None);
        assert_eq!(f.t50_s, Some(2.0));
        assert_eq!(f.t90_s, None);
        assert_eq!(f.ksmd_cpu_s_to_90, None);
        assert_eq!(f.rest_ksmd_cpu_pct, None);
        assert_eq!(f.rest_worst_5s_ksmd_cpu_pct, None);
        assert_eq!(f.time_over_ideal, None);
        assert!((f.best_fraction - 0.6).abs() < 1e-9);
        // Per GiB from the end: 1 s for 600 pages.
        assert!((f.ksmd_cpu_s_per_gib.unwrap() - 1.0 / (600.0 / 262144.0)).abs() < 1e-6);
    }

    #[test]
    fn zero_pages_setting_picks_the_attainable_figure() {
        let mut a = s(1000, 1005, 10);
        a.use_zero_pages = true;
        let f = figures(&[s(0, 0, 0), a], &att(1000), 4096, &L, None);
        assert_eq!(f.attainable_pages, 1010);
        assert_eq!(f.t90_s, Some(1.0));
        // Nothing attainable: no threshold is ever "reached".
        let f = figures(&[s(0, 0, 0), s(1000, 5, 1)], &att(0), 4096, &L, None);
        assert_eq!(f.t50_s, None);
    }

    #[test]
    fn rate_over_two_scans() {
        let mut a = s(250, 0, 0);
        a.full_scans = 1;
        a.pages_scanned = Some(25_000);
        let mut b = s(500, 0, 0);
        b.full_scans = 2;
        b.pages_scanned = Some(40_000);
        b.pages_skipped = Some(1_000);
        let mut c = s(1000, 0, 0);
        c.full_scans = 9;
        c.pages_scanned = Some(170_000);
        // Measured until the second full scan ended, not later (smart scan
        // and merged pages make later scans cheaper).
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(scan_rate(&all, 20_000), Some(82_000.0));
        // Without pages_scanned: full scans x mergeable pages.
        b.pages_scanned = None;
        assert_eq!(scan_rate(&[a.clone(), b], 20_000), Some(80_000.0));
        // Never two full scans: the whole run.
        assert_eq!(scan_rate(&[a], 20_000), Some(100_000.0));
        assert_eq!(scan_rate(&[], 1), None);
    }

    fn run(name: &str, t90: Option<f64>, cpu: f64) -> TunerRun {
        TunerRun {
            spec: TunerSpec::builtin(name).unwrap(),
            status: RunStatus::Ran,
            notes: vec![],
            unmerge_s: 0.0,
            figures: Some(Figures {
                t90_s: t90,
                ksmd_cpu_s_to_90: t90.map(|_| cpu),
                final_saved_pages: 100,
                ..Default::default()
            }),
            samples: vec![],
        }
    }

    #[test]
    fn ratios_between_tuners() {
        let mut skipped = run("adaptive", None, 0.0);
        skipped.status = RunStatus::Skipped;
        let runs = vec![
            run("max-rate", Some(1.0), 1.0),
            run("kernel-default", Some(40.0), 2.0),
            run("kernel-advisor", Some(20.0), 4.0),
            run("classic", None, 0.0),
            skipped,
        ];
        let r = ratios(&runs);
        let names: Vec<String> = r
            .iter()
            .map(|r| format!("{}/{}", r.tuner, r.baseline))
            .collect();
        assert_eq!(
            names,
            [
                "kernel-advisor/kernel-default",
                "classic/kernel-default",
                "classic/kernel-advisor"
            ]
        );
        assert_eq!(r[0].time_to_90, Some(0.5));
        assert_eq!(r[0].ksmd_cpu_to_90, Some(2.0));
        assert_eq!(r[0].final_saved, Some(1.0));
        assert_eq!(r[1].time_to_90, None);
    }
}
