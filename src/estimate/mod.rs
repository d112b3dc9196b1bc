//! `ksmctl estimate`: what KSM would save on this host, for which
//! processes and guests, and what it would cost, without running it.
//!
//! The estimate reads the pages KSM would consider (the mergeable areas of
//! the chosen processes, or all their private memory), only those already
//! in RAM, hashes each page's content ([`table`]), and projects KSM's own
//! counters from the copies found, with this host's `max_page_sharing` and
//! `use_zero_pages`. It also shows what KSM has already merged and who
//! shares those pages with whom (the KSM flag of each frame in
//! `/proc/kpageflags`). See docs/estimate.md for the method and accuracy.
//!
//! [`build`] computes one [`Estimate`]; [`Estimate::render`] and its JSON
//! form show the same value.

pub mod scan;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::human;
use crate::kernel::ksm::{Ksm, KsmState};
use crate::kernel::{ksmd, proc, vmas};
use crate::root::Root;
use crate::sample::processes::guest_name;

pub use scan::Selection;
use scan::{ProcessScan, ScanOptions, Skipped, Target};
use table::{Contents, Params, Projection};

/// ksmd's CPU time per page scanned when this host has no measurement
/// (KSM has not scanned enough pages yet): measured on the development VM
/// (see docs/estimate.md).
pub const DEFAULT_NS_PER_PAGE: f64 = 1000.0;

/// Pages ksmd must have scanned before its CPU time per page is trusted.
pub const MIN_PAGES_FOR_COST: u64 = 100_000;

/// Groups a matrix can have (the content table keeps a 64-bit mask).
pub const MAX_GROUPS: usize = 64;

/// How processes are grouped in the matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
// (Plain comments on the values: doc comments would give `--help` a long
// form that differs from `-h`.)
pub enum GroupBy {
    // Each process (a QEMU process by its guest name).
    Process,
    // The process's cgroup (v2 path), e.g. a libvirt machine slice or a
    // Proxmox VM scope.
    Cgroup,
}

/// What to estimate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these processes (all when empty).
    pub pids: Vec<u32>,
    /// Only QEMU processes.
    pub guests: bool,
    pub selection: Selection,
    /// Keep one content in `sample`.
    pub sample: u64,
    /// Compute the matrix of contents in common.
    pub matrix: bool,
    pub group_by: GroupBy,
    /// ksmd's CPU budget in percent (KSM_MAX_CPU) for the time estimate.
    pub max_cpu: u64,
    /// Percent of one CPU the scan itself may use.
    pub cpu_limit: Option<u32>,
}

/// A bad request: an unknown PID, a kernel thread.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadTarget(pub String);

/// One process's row.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessRow {
    pub pid: u32,
    pub comm: String,
    /// The guest's name for QEMU processes started with `-name`.
    pub guest: Option<String>,
    /// Matrix group name.
    pub group: String,
    /// Bytes of the selected areas (virtual).
    pub selected_bytes: u64,
    /// Bytes read (present anonymous pages).
    pub scanned_bytes: u64,
    pub zero_pages: u64,
    /// What KSM would save here (see the attribution rule).
    pub would_save_bytes: u64,
    /// Pages mapped to a KSM page now.
    pub ksm_mapped_pages: u64,
    /// `ksm_zero_pages` from ksm_stat now.
    pub ksm_zero_pages_now: i64,
    pub skipped: Skipped,
    pub vanished: bool,
    /// Reading its memory was refused.
    pub refused: bool,
}

/// What KSM saves now.
#[derive(Debug, Clone, Serialize)]
pub struct Now {
    /// The kernel's counters (the whole host); `None` without KSM.
    pub host_pages_sharing: Option<u64>,
    pub host_ksm_zero_pages: Option<i64>,
    pub host_saved_bytes: Option<u64>,
    pub host_general_profit_bytes: Option<i64>,
    /// In the scanned processes: KSM page mappings minus the KSM pages
    /// they map, plus their `ksm_zero_pages`.
    pub scanned_saved_bytes: u64,
    /// Distinct KSM pages the scanned processes map.
    pub ksm_pages: u64,
    /// Their mappings in the scanned processes.
    pub ksm_mappings: u64,
}

/// The time and CPU merging would take.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// ksmd's CPU time per page scanned.
    pub ns_per_page: f64,
    /// "measured" (ksmd CPU time / pages_scanned on this host) or "default".
    pub source: &'static str,
    /// Two full scans of the pages (the first checksums, the second merges).
    pub cpu_seconds: f64,
    pub max_cpu_percent: u64,
    /// Wall time with ksmd at `max_cpu_percent` of a CPU.
    pub seconds_at_max_cpu: f64,
}

/// A square table between groups.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub groups: Vec<String>,
    /// `[a][b]`: bytes of distinct contents (or KSM pages) `a` and `b`
    /// both hold; the diagonal: `a`'s own.
    pub bytes: Vec<Vec<u64>>,
}

/// The estimate: everything `ksmctl estimate` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub page_size_bytes: u64,
    pub ksm_supported: bool,
    pub selection: Selection,
    pub group_by: GroupBy,
    pub max_page_sharing: u64,
    pub use_zero_pages: bool,
    pub sample: u64,
    pub processes_scanned: usize,
    /// Processes that exited during the scan (before or while their
    /// memory was read).
    pub processes_vanished: usize,
    /// Present anonymous memory read.
    pub scanned_bytes: u64,
    pub projection: Projection,
    pub saved_bytes: u64,
    /// Two standard errors of `saved_bytes` from sampling (95%).
    pub saved_error_bytes: u64,
    pub general_profit_bytes: i64,
    pub now: Now,
    /// Projected saving minus what the scanned processes save now.
    pub to_gain_bytes: i64,
    pub cost: Cost,
    pub skipped: Skipped,
    pub processes: Vec<ProcessRow>,
    pub matrix: Option<Matrix>,
    pub realized_matrix: Option<Matrix>,
    pub elapsed_seconds: f64,
    pub read_bytes_per_second: f64,
    /// Memory of the content table.
    pub table_bytes: u64,
    pub notes: Vec<String>,
}

/// The reason a PID cannot be estimated, if any: gone, or a kernel thread.
pub fn check_pid(root: &Root, pid: u32) -> Result<(), BadTarget> {
    let stat = std::fs::read_to_string(root.join(format!("/proc/{pid}/stat")))
        .map_err(|_| BadTarget(format!("no process with PID {pid}")))?;
    if is_kernel_thread(&stat) {
        return Err(BadTarget(format!(
            "PID {pid} ({}) is a kernel thread: it has no user memory to estimate",
            proc::comm(root, pid).unwrap_or_default()
        )));
    }
    Ok(())
}

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
pub fn is_kernel_thread(stat: &str) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
        .is_some_and(|f| f & PF_KTHREAD != 0)
}

/// The cgroup (v2) of a process: the `0::PATH` line.
fn cgroup(root: &Root, pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(root.join(format!("/proc/{pid}/cgroup"))).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.to_string())
}

/// The projection's parameters from this host's KSM (defaults without).
fn params(state: Option<&KsmState>, page_size: u64, sample: u64) -> Params {
    Params {
        page_size,
        max_page_sharing: state.and_then(|s| s.max_page_sharing).unwrap_or(256),
        use_zero_pages: state.and_then(|s| s.use_zero_pages).unwrap_or(0) == 1,
        sample: sample.max(1),
    }
}

/// ksmd's cost per page: measured when KSM has scanned enough.
pub fn cost_per_page(pages_scanned: Option<u64>, ksmd_ns: Option<u64>) -> (f64, &'static str) {
    match (pages_scanned, ksmd_ns) {
        (Some(p), Some(ns)) if p >= MIN_PAGES_FOR_COST && ns > 0 => {
            (ns as f64 / p as f64, "measured")
        }
        _ => (DEFAULT_NS_PER_PAGE, "default"),
    }
}

/// The time merging `pages` takes: two full scans.
pub fn cost(pages: u64, ns_per_page: f64, source: &'static str, max_cpu: u64) -> Cost {
    let cpu_seconds = 2.0 * pages as f64 * ns_per_page / 1e9;
    let max_cpu = max_cpu.clamp(1, 100);
    Cost {
        ns_per_page,
        source,
        cpu_seconds,
        max_cpu_percent: max_cpu,
        seconds_at_max_cpu: cpu_seconds * 100.0 / max_cpu as f64,
    }
}

/// Scan and compute. `progress` is called after each batch.
pub fn build(
    root: &Root,
    opts: &Options,
    page_size: u64,
    progress: &mut dyn FnMut(scan::Progress),
) -> anyhow::Result<Estimate> {
    use anyhow::Context;
    let ksm = Ksm::new(root);
    let state = if ksm.supported() {
        Some(ksm.read()?)
    } else {
        None
    };
    let mut notes = Vec::new();
    if state.is_none() {
        notes.push(format!(
            "this kernel has no KSM ({} does not exist): the estimate assumes KSM's defaults \
             (max_page_sharing=256, use_zero_pages=0) and only --all-anonymous finds memory",
            ksm.dir().display()
        ));
    }
    let params = params(state.as_ref(), page_size, opts.sample);

    // The processes.
    let pids: Vec<u32> = if opts.pids.is_empty() {
        let me = std::process::id();
        proc::pids(root)
            .context("listing /proc")?
            .into_iter()
            .filter(|&p| p != me && check_pid(root, p).is_ok())
            .collect()
    } else {
        for &p in &opts.pids {
            check_pid(root, p)?;
        }
        let mut v = opts.pids.clone();
        v.sort_unstable();
        v.dedup();
        v
    };
    struct Info {
        pid: u32,
        comm: String,
        guest: Option<String>,
        group: String,
        areas: Vec<vmas::Vma>,
    }
    let mut infos = Vec::new();
    // Processes gone between the listing and the read of their areas.
    let mut gone_early = 0;
    for pid in pids {
        let Some(comm) = proc::comm(root, pid) else {
            gone_early += 1;
            continue;
        };
        let qemu = proc::is_qemu_comm(&comm)
            || proc::cmdline(root, pid)
                .and_then(|a| a.into_iter().next())
                .is_some_and(|a0| {
                    let b = a0.rsplit('/').next().unwrap_or("");
                    b.starts_with("qemu-system-") || b == "qemu-kvm"
                });
        if opts.guests && !qemu {
            continue;
        }
        let guest = if qemu {
            proc::cmdline(root, pid).and_then(|a| guest_name(&a))
        } else {
            None
        };
        let Ok(all) = vmas::read(root, pid) else {
            gone_early += 1;
            continue;
        };
        let areas: Vec<vmas::Vma> = all
            .into_iter()
            .filter(|a| opts.selection.takes(a))
            .collect();
        if areas.is_empty() {
            continue;
        }
        let group = match opts.group_by {
            GroupBy::Process => guest.clone().unwrap_or_else(|| format!("{comm}[{pid}]")),
            GroupBy::Cgroup => cgroup(root, pid).unwrap_or_else(|| "?".into()),
        };
        infos.push(Info {
            pid,
            comm,
            guest,
            group,
            areas,
        });
    }
    // Matrix groups: the first 63 names in order, the rest in "other".
    let mut group_names: Vec<String> = Vec::new();
    let mut group_of: HashMap<String, u8> = HashMap::new();
    let mut targets = Vec::new();
    for i in &mut infos {
        let g = match group_of.get(&i.group) {
            Some(&g) => g,
            None if group_names.len() < MAX_GROUPS - 1 => {
                group_names.push(i.group.clone());
                let g = (group_names.len() - 1) as u8;
                group_of.insert(i.group.clone(), g);
                g
            }
            None => {
                if group_names.len() < MAX_GROUPS {
                    group_names.push("other".into());
                }
                (MAX_GROUPS - 1) as u8
            }
        };
        // A process whose ksm_stat shows nothing merged maps no KSM page.
        let ksm_pages_possible = state.is_some()
            && proc::ksm_stat(root, i.pid).is_none_or(|s| {
                s.merging_pages.is_none_or(|m| m > 0) || s.zero_pages.unwrap_or(0) > 0
            });
        targets.push(Target {
            pid: i.pid,
            group: Some(g),
            areas: std::mem::take(&mut i.areas),
            ksm_pages_possible,
        });
    }
    if group_names.len() == MAX_GROUPS {
        notes.push(format!(
            "more than {} groups: the rest are shown together as \"other\"",
            MAX_GROUPS - 1
        ));
    }

    let contents = Contents::new(params, opts.matrix);
    let sc = scan::scan(
        root,
        &targets,
        contents,
        ScanOptions {
            selection: opts.selection,
            cpu_limit: opts.cpu_limit,
        },
        progress,
    )
    .with_context(|| format!("cannot read {}", root.join("/proc/kpageflags").display()))?;

    // Pages KSM already merged with the zero page are zero-page mappings
    // now (not read): count them as saved zero pages, up to what each
    // process's ksm_stat says KSM did.
    let k = params.sample;
    let mut rows = Vec::new();
    let mut already_zero = 0u64;
    let mut ksm_zero_now_total = 0i64;
    for (ps, info) in sc.processes.iter().zip(&infos) {
        let zero_now = proc::ksm_stat(root, ps.pid)
            .and_then(|s| s.zero_pages)
            .unwrap_or(0);
        ksm_zero_now_total += zero_now.max(0);
        let kept_zero = (zero_now.max(0) as u64).min(ps.skipped.zero_page_mappings);
        already_zero += kept_zero;
        rows.push(row(
            ps,
            info.comm.clone(),
            info.guest.clone(),
            info.group.clone(),
            zero_now,
            kept_zero,
            k,
            page_size,
        ));
    }
    let refused: Vec<String> = rows
        .iter()
        .filter(|r| r.refused)
        .map(|r| r.pid.to_string())
        .collect();
    if !refused.is_empty() {
        notes.push(format!(
            "reading the memory of PID {} was refused (Yama ptrace_scope=3, a kernel lockdown \
             or a security module): not estimated",
            refused.join(", ")
        ));
    }
    let mut projection = sc.contents.project();
    projection.ksm_zero_pages += already_zero;
    projection.saved_pages += already_zero;
    projection.general_profit_bytes =
        table::general_profit(projection.saved_pages, projection.rmap_items, page_size);
    if params.sample > 1 {
        notes.push(format!(
            "sampled: contents whose hash is 0 mod {}, figures scaled up; zero pages counted exactly",
            params.sample
        ));
    }

    // Now.
    let ksm_pages = sc.ksm_frames.len() as u64;
    let scanned_saved_pages = sc.ksm_mappings.saturating_sub(ksm_pages) + ksm_zero_now_total as u64;
    let now = Now {
        host_pages_sharing: state.as_ref().and_then(|s| s.pages_sharing),
        host_ksm_zero_pages: state.as_ref().and_then(|s| s.ksm_zero_pages),
        host_saved_bytes: state.as_ref().map(|s| s.saved_bytes(page_size)),
        host_general_profit_bytes: state.as_ref().and_then(|s| s.general_profit),
        scanned_saved_bytes: scanned_saved_pages * page_size,
        ksm_pages,
        ksm_mappings: sc.ksm_mappings,
    };

    // Cost.
    let ksmd_ns = ksmd::Ksmd::new(root).cpu().map(|c| c.ns);
    let (ns, source) = cost_per_page(state.as_ref().and_then(|s| s.pages_scanned), ksmd_ns);
    let cost = cost(projection.pages, ns, source, opts.max_cpu);

    let mb = |v: Vec<Vec<u64>>| {
        v.into_iter()
            .map(|r| r.into_iter().map(|x| x * page_size).collect())
            .collect()
    };
    let matrix = sc.contents.matrix(group_names.len()).map(|m| Matrix {
        groups: group_names.clone(),
        bytes: mb(m),
    });
    let realized_matrix = opts.matrix.then(|| {
        let n = group_names.len();
        let mut m = vec![vec![0u64; n]; n];
        for &mask in sc.ksm_frames.values() {
            let members: Vec<usize> = (0..n).filter(|&i| mask >> i & 1 == 1).collect();
            for &a in &members {
                for &b in &members {
                    m[a][b] += 1;
                }
            }
        }
        Matrix {
            groups: group_names.clone(),
            bytes: mb(m),
        }
    });

    let scanned_bytes = projection.pages * page_size;
    let saved_bytes = projection.saved_pages * page_size;
    let secs = sc.elapsed.as_secs_f64();
    Ok(Estimate {
        page_size_bytes: page_size,
        ksm_supported: state.is_some(),
        selection: opts.selection,
        group_by: opts.group_by,
        max_page_sharing: params.max_page_sharing,
        use_zero_pages: params.use_zero_pages,
        sample: params.sample,
        processes_scanned: rows.len(),
        processes_vanished: rows.iter().filter(|r| r.vanished).count() + gone_early,
        scanned_bytes,
        saved_bytes,
        saved_error_bytes: (2.0 * projection.saved_stderr_pages * page_size as f64).round() as u64,
        general_profit_bytes: projection.general_profit_bytes,
        to_gain_bytes: saved_bytes as i64 - now.scanned_saved_bytes as i64,
        projection,
        now,
        cost,
        skipped: sc.skipped,
        processes: rows,
        matrix,
        realized_matrix,
        elapsed_seconds: secs,
        read_bytes_per_second: if secs > 0.0 {
            sc.bytes_read as f64 / secs
        } else {
            0.0
        },
        table_bytes: sc.contents.memory_bytes(),
        notes,
    })
}

#[allow(clippy::too_many_arguments)]
fn row(
    ps: &ProcessScan,
    comm: String,
    guest: Option<String>,
    group: String,
    zero_now: i64,
    kept_zero: u64,
    k: u64,
    page: u64,
) -> ProcessRow {
    ProcessRow {
        pid: ps.pid,
        comm,
        guest,
        group,
        selected_bytes: ps.selected_bytes,
        scanned_bytes: ps.pages * page,
        zero_pages: ps.zero_pages,
        would_save_bytes: (ps.saved_kept_pages * k + ps.saved_zero_pages + kept_zero) * page,
        ksm_mapped_pages: ps.ksm_mapped_pages,
        ksm_zero_pages_now: zero_now,
        skipped: ps.skipped,
        vanished: ps.vanished,
        refused: ps.refused,
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

fn duration(s: f64) -> String {
    if s < 1.0 {
        "under 1 s".into()
    } else if s < 120.0 {
        format!("about {s:.0} s")
    } else if s < 7200.0 {
        format!("about {:.0} min", s / 60.0)
    } else {
        format!("about {:.1} h", s / 3600.0)
    }
}

impl Estimate {
    /// The text for people: a summary first, then the details.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let b = human::ubytes;
        let what = match self.selection {
            Selection::Mergeable => "mergeable memory",
            Selection::AllAnonymous => "private memory",
        };
        let err = if self.sample > 1 {
            format!(" (± {})", b(self.saved_error_bytes))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "KSM would save {}{err} ({} of the {} of {what} scanned) for {} of one core.",
            b(self.saved_bytes),
            pct(self.saved_bytes, self.scanned_bytes),
            b(self.scanned_bytes),
            duration(self.cost.cpu_seconds),
        );
        // Who shares most: the groups with the largest savings.
        let mut by_group: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.processes {
            *by_group.entry(r.group.as_str()).or_default() += r.would_save_bytes;
        }
        let mut top: Vec<(&str, u64)> = by_group.into_iter().filter(|g| g.1 > 0).collect();
        top.sort_by(|a, c| c.1.cmp(&a.1).then(a.0.cmp(c.0)));
        if !top.is_empty() {
            let names: Vec<&str> = top.iter().take(4).map(|g| g.0).collect();
            let more = if top.len() > 4 {
                format!(" and {} more", top.len() - 4)
            } else {
                String::new()
            };
            let _ = writeln!(o, "Most of it from {}{more}.", names.join(", "));
        }
        let _ = writeln!(
            o,
            "Saved now: {} in these processes; still to gain: {}.",
            b(self.now.scanned_saved_bytes),
            human::bytes(i128::from(self.to_gain_bytes))
        );
        let _ = writeln!(o);
        let p = &self.projection;
        let c = human::count;
        let line = |o: &mut String, k: &str, v: String| {
            let _ = writeln!(o, "{k:<20}{v}");
        };
        line(
            &mut o,
            "Scanned:",
            format!(
                "{} processes ({} exited during the scan), {} in RAM in {:.1} s ({}/s)",
                self.processes_scanned,
                self.processes_vanished,
                b(self.scanned_bytes),
                self.elapsed_seconds,
                b(self.read_bytes_per_second as u64),
            ),
        );
        line(
            &mut o,
            "Contents:",
            format!(
                "{} distinct; {} pages have a copy elsewhere ({} contents); {} zero pages",
                c(p.distinct_contents),
                c(p.duplicate_pages),
                c(p.duplicated_contents),
                c(p.zero_pages)
            ),
        );
        line(
            &mut o,
            "Projected:",
            format!(
                "pages_shared {}, pages_sharing {}, ksm_zero_pages {} (max_page_sharing {}, use_zero_pages {})",
                c(p.pages_shared),
                c(p.pages_sharing),
                c(p.ksm_zero_pages),
                self.max_page_sharing,
                u8::from(self.use_zero_pages)
            ),
        );
        line(
            &mut o,
            "General profit:",
            format!(
                "{} (saved {} - {} rmap items x {} B)",
                human::bytes(i128::from(self.general_profit_bytes)),
                b(self.saved_bytes),
                c(p.rmap_items),
                table::RMAP_ITEM_BYTES
            ),
        );
        if let Some(host) = self.now.host_saved_bytes {
            line(
                &mut o,
                "KSM now (host):",
                format!(
                    "saves {} (pages_sharing {}, ksm_zero_pages {}); general_profit {}",
                    b(host),
                    c(self.now.host_pages_sharing.unwrap_or(0)),
                    self.now.host_ksm_zero_pages.unwrap_or(0),
                    self.now
                        .host_general_profit_bytes
                        .map_or("-".into(), |g| human::bytes(i128::from(g)))
                ),
            );
        }
        line(
            &mut o,
            "Cost:",
            format!(
                "{:.1} s of ksmd CPU (2 scans x {} pages x {:.0} ns, {}); {} at KSM_MAX_CPU={}%",
                self.cost.cpu_seconds,
                c(p.pages),
                self.cost.ns_per_page,
                if self.cost.source == "measured" {
                    "measured on this host"
                } else {
                    "default: KSM has not run enough here"
                },
                duration(self.cost.seconds_at_max_cpu),
                self.cost.max_cpu_percent
            ),
        );
        let s = &self.skipped;
        let pg = |n: u64| b(n * self.page_size_bytes);
        line(
            &mut o,
            "Not read:",
            format!(
                "{} not in RAM, {} swapped, {} file/shared pages, {} zero-page mappings, {} unreadable",
                pg(s.not_present_pages),
                pg(s.swapped_pages),
                pg(s.file_pages),
                pg(s.zero_page_mappings),
                pg(s.unreadable_pages)
            ),
        );
        if self.sample > 1 {
            line(
                &mut o,
                "Sample:",
                format!(
                    "1 content in {}; saving ± {} (2 standard errors)",
                    self.sample,
                    b(self.saved_error_bytes)
                ),
            );
        }
        line(&mut o, "Table memory:", b(self.table_bytes));
        for n in &self.notes {
            let _ = writeln!(o, "Note: {n}");
        }
        if !self.processes.is_empty() {
            let _ = writeln!(o);
            let name = |r: &ProcessRow| r.guest.clone().unwrap_or_else(|| r.comm.clone());
            let name_w = self
                .processes
                .iter()
                .map(|r| name(r).len())
                .max()
                .unwrap_or(4)
                .clamp(4, 32);
            let by_cgroup = self.group_by == GroupBy::Cgroup;
            let _ = write!(
                o,
                "{:>7}  {:<name_w$}  {:>10}  {:>10}  {:>10}  {:>10}",
                "PID", "NAME", "SCANNED", "ZERO", "WOULD SAVE", "MERGED NOW"
            );
            let _ = writeln!(o, "{}", if by_cgroup { "  CGROUP" } else { "" });
            let mut rows: Vec<&ProcessRow> = self.processes.iter().collect();
            rows.sort_by(|a, c| {
                c.would_save_bytes
                    .cmp(&a.would_save_bytes)
                    .then(a.pid.cmp(&c.pid))
            });
            for r in rows {
                let n: String = name(r).chars().take(name_w).collect();
                let _ = write!(
                    o,
                    "{:>7}  {:<name_w$}  {:>10}  {:>10}  {:>10}  {:>10}",
                    r.pid,
                    n,
                    b(r.scanned_bytes),
                    pg(r.zero_pages),
                    b(r.would_save_bytes),
                    pg(r.ksm_mapped_pages),
                );
                if by_cgroup {
                    let _ = write!(o, "  {}", r.group);
                }
                let _ = writeln!(
                    o,
                    "{}",
                    if r.vanished {
                        "  (exited)"
                    } else if r.refused {
                        "  (refused)"
                    } else {
                        ""
                    }
                );
            }
        }
        for (title, m) in [
            ("Contents in common (would be shared by KSM)", &self.matrix),
            (
                "Merged now: KSM pages mapped by both",
                &self.realized_matrix,
            ),
        ] {
            if let Some(m) = m {
                let _ = writeln!(o);
                let _ = writeln!(o, "{title}:");
                o.push_str(&render_matrix(m));
            }
        }
        o
    }
}

fn render_matrix(m: &Matrix) -> String {
    let mut o = String::new();
    let w = m
        .groups
        .iter()
        .map(|g| g.len())
        .max()
        .unwrap_or(1)
        .clamp(1, 24)
        + 5;
    let labels: Vec<String> = m
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| format!("[{i}] {g}").chars().take(w).collect())
        .collect();
    let _ = write!(o, "{:<w$}", "");
    for i in 0..labels.len() {
        let _ = write!(o, "  {:>10}", format!("[{i}]"));
    }
    let _ = writeln!(o);
    for (i, row) in m.bytes.iter().enumerate() {
        let _ = write!(o, "{:<w$}", labels[i]);
        for v in row {
            let _ = write!(o, "  {:>10}", human::ubytes(*v));
        }
        let _ = writeln!(o);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_threads() {
        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2";
        assert!(is_kernel_thread(kthread));
        let user = "100 (bash (x)) S 1 100 100 34816 100 4194304 0 0";
        assert!(!is_kernel_thread(user));
    }

    #[test]
    fn without_ksm_the_defaults() {
        let p = params(None, 4096, 0);
        assert_eq!(
            (p.max_page_sharing, p.use_zero_pages, p.sample),
            (256, false, 1)
        );
        let st = KsmState {
            max_page_sharing: Some(10),
            use_zero_pages: Some(1),
            ..KsmState::default()
        };
        let p = params(Some(&st), 4096, 16);
        assert_eq!(
            (p.max_page_sharing, p.use_zero_pages, p.sample),
            (10, true, 16)
        );
    }

    #[test]
    fn cost_figures() {
        assert_eq!(cost_per_page(Some(1000), Some(5)).1, "default");
        let (ns, src) = cost_per_page(Some(200_000), Some(100_000_000));
        assert_eq!((ns, src), (500.0, "measured"));
        let c = cost(1_000_000, 500.0, "measured", 50);
        assert!((c.cpu_seconds - 1.0).abs() < 1e-9);
        assert!((c.seconds_at_max_cpu - 2.0).abs() < 1e-9);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0.2), "under 1 s");
        assert_eq!(duration(40.4), "about 40 s");
        assert_eq!(duration(600.0), "about 10 min");
    }
}
