//! `ksm-bench --estimate-cost`: what the estimate costs, measured on the
//! bench's own workload. The workers fill their memory (the tuners'
//! workload, opted in to KSM); the estimate then reads it three ways, one
//! after the other in this process: every content kept (`ksmctl
//! estimate`), one content in 16 kept (`--sample 16`, ksmtuned's
//! continuous estimate) without a CPU limit, and the same at ksmtuned's
//! 10% of one core. For each: the memory read, the CPU time the estimating
//! thread used, the wall time, their ratios, and the figure with its
//! error bound against the full one. ksmd is not touched.
//!
//! The report is plain data ([`CostReport`], `--json`); the table is
//! rendered from it alone, so a table in the docs can be checked against
//! the JSON of its run (tests/bench_docs.rs).

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::estimate::{self, GroupBy, Options, Selection};
use crate::kernel::sys;
use crate::root::Root;

use super::workload::Workers;
use super::Settings;

/// ksmtuned's continuous estimate: sample and CPU limit
/// (`daemon::estimate` uses the same).
const SAMPLE: u64 = 16;
const CPU_LIMIT: u32 = 10;

/// One way of estimating and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    /// `full`, `sampled`, `sampled, capped`.
    pub name: String,
    pub sample: u64,
    /// Percent of one core the scan was held to (`None`: no limit).
    pub cpu_limit_percent: Option<u32>,
    pub scanned_bytes: u64,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    /// What KSM would save, and two standard errors of it.
    pub saved_bytes: u64,
    pub saved_error_bytes: u64,
}

impl CostRow {
    /// CPU seconds per GiB read.
    pub fn cpu_per_gib(&self) -> f64 {
        let gib = self.scanned_bytes as f64 / f64::from(1u32 << 30);
        if gib > 0.0 {
            self.cpu_seconds / gib
        } else {
            0.0
        }
    }

    /// The share of one core it used (CPU over wall time).
    pub fn cpu_share(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            self.cpu_seconds / self.wall_seconds
        } else {
            0.0
        }
    }
}

/// The whole measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// The workload, in words.
    pub workload: String,
    /// Whether the bench was built with optimisations.
    pub release_build: bool,
    pub rows: Vec<CostRow>,
}

impl CostReport {
    /// The table (what the bench prints).
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Workload: {}", self.workload);
        let _ = writeln!(
            o,
            "Build: {}",
            if self.release_build {
                "release"
            } else {
                "debug (unoptimised: its CPU figures are many times the release build's)"
            }
        );
        let _ = writeln!(
            o,
            "{:<17} {:>7} {:>9} {:>8} {:>8} {:>9} {:>6} {:>21}",
            "ESTIMATE", "SAMPLE", "READ", "CPU", "WALL", "CPU/GiB", "SHARE", "SAVED"
        );
        let full = self.rows.first().map(|r| r.saved_bytes);
        for r in &self.rows {
            let saved = if r.saved_error_bytes > 0 {
                format!(
                    "{} ± {}",
                    crate::human::ubytes(r.saved_bytes),
                    crate::human::ubytes(r.saved_error_bytes)
                )
            } else {
                crate::human::ubytes(r.saved_bytes)
            };
            let _ = writeln!(
                o,
                "{:<17} {:>7} {:>9} {:>7.2}s {:>7.2}s {:>8.3}s {:>5.1}% {:>21}",
                r.name,
                format!("1/{}", r.sample),
                crate::human::ubytes(r.scanned_bytes),
                r.cpu_seconds,
                r.wall_seconds,
                r.cpu_per_gib(),
                r.cpu_share() * 100.0,
                saved
            );
        }
        if let Some(full) = full {
            for r in self.rows.iter().skip(1) {
                let miss = r.saved_bytes.abs_diff(full);
                let _ = writeln!(
                    o,
                    "{}: {} from the full estimate, {} the bound of {}",
                    r.name,
                    crate::human::ubytes(miss),
                    if miss <= r.saved_error_bytes {
                        "within"
                    } else {
                        "outside"
                    },
                    crate::human::ubytes(r.saved_error_bytes)
                );
            }
        }
        o
    }
}

/// One estimate of the workers' memory, timed on this thread.
fn measure(
    root: &Root,
    pids: &[u32],
    name: &str,
    sample: u64,
    cpu_limit: Option<u32>,
) -> anyhow::Result<CostRow> {
    let opts = Options {
        pids: pids.to_vec(),
        guests: false,
        selection: Selection::Mergeable,
        sample,
        matrix: false,
        group_by: GroupBy::Process,
        domains: crate::config::TrustDomains::None,
        max_cpu: 20,
        cpu_limit,
        thp: None,
    };
    let cpu0 = sys::thread_cpu_ns();
    let t0 = Instant::now();
    let est = estimate::build(root, &opts, sys::page_size(), &mut |_| {})
        .with_context(|| format!("the {name} estimate"))?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = match (cpu0, sys::thread_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
        _ => anyhow::bail!("this kernel does not give a thread's CPU time"),
    };
    Ok(CostRow {
        name: name.to_string(),
        sample,
        cpu_limit_percent: cpu_limit,
        scanned_bytes: est.scanned_bytes,
        cpu_seconds: cpu,
        wall_seconds: wall,
        saved_bytes: est.saved_bytes,
        saved_error_bytes: est.saved_error_bytes,
    })
}

/// Start the workers, estimate three ways, stop them.
pub fn run(
    settings: &Settings,
    exe: &std::path::Path,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<CostReport> {
    let page = sys::page_size();
    let mut workers = Workers::spawn(exe, &settings.spec, &settings.worker, stop)?;
    let pids = workers.pids();
    let root = Root::default();
    let mut rows = Vec::new();
    for (name, sample, limit) in [
        ("full", 1, None),
        ("sampled", SAMPLE, None),
        ("sampled, capped", SAMPLE, Some(CPU_LIMIT)),
    ] {
        if stop() {
            anyhow::bail!("interrupted");
        }
        rows.push(measure(&root, &pids, name, sample, limit)?);
        workers.check()?;
    }
    workers.stop();
    Ok(CostReport {
        workload: settings.spec.describe(page),
        release_build: !cfg!(debug_assertions),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_from_the_figures() {
        let row = |name: &str, sample, cpu, wall, saved, err| CostRow {
            name: name.into(),
            sample,
            cpu_limit_percent: None,
            scanned_bytes: 2 << 30,
            cpu_seconds: cpu,
            wall_seconds: wall,
            saved_bytes: saved,
            saved_error_bytes: err,
        };
        let r = CostReport {
            workload: "2 workers".into(),
            release_build: true,
            rows: vec![
                row("full", 1, 1.0, 2.0, 1 << 30, 0),
                row("sampled", 16, 0.5, 0.5, (1 << 30) + (1 << 20), 2 << 20),
                row(
                    "sampled, capped",
                    16,
                    0.6,
                    6.0,
                    (1 << 30) - (4 << 20),
                    2 << 20,
                ),
            ],
        };
        assert_eq!(r.rows[0].cpu_per_gib(), 0.5);
        assert!((r.rows[2].cpu_share() - 0.1).abs() < 1e-9);
        let t = r.render();
        assert!(t.contains("full                  1/1"), "{t}");
        assert!(t.contains("  0.500s  50.0%"), "{t}");
        assert!(
            t.contains("sampled: 1.00 MiB from the full estimate, within the bound of 2.00 MiB"),
            "{t}"
        );
        assert!(
            t.contains("sampled, capped: 4.00 MiB from the full estimate, outside"),
            "{t}"
        );
    }
}
