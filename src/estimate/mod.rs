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

pub mod audit;
mod render;
pub mod scan;
pub mod table;

use std::collections::HashMap;

use serde::Serialize;

use crate::kernel::ksm::{Ksm, KsmState};
use crate::kernel::thp::Thp;
use crate::kernel::{ksmd, proc, vmas};
use crate::root::Root;
use crate::sample::processes::guest_name;
pub use table::{auto_sample, AUTO_FULL_BELOW, AUTO_SAMPLE};

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
    // The process's trust domain (--domains, else KSM_TRUST_DOMAINS).
    Domain,
}

/// What to estimate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these processes (all when empty).
    pub pids: Vec<u32>,
    /// Only QEMU processes.
    pub guests: bool,
    pub selection: Selection,
    /// Keep one content in `sample`; 0: choose by the size of what is
    /// selected ([`auto_sample`]).
    pub sample: u64,
    /// Compute the matrix of contents in common.
    pub matrix: bool,
    pub group_by: GroupBy,
    /// How domains are formed for [`GroupBy::Domain`].
    pub domains: crate::config::TrustDomains,
    /// ksmd's CPU budget in percent (KSM_MAX_CPU) for the time estimate.
    pub max_cpu: u64,
    /// Percent of one CPU the scan itself may use.
    pub cpu_limit: Option<u32>,
    /// What the kernel does with huge pages; `None`: read under the root
    /// ([`Thp::read`]). Given, it answers "what if this kernel's splits
    /// did (not) map all-zero subpages to the zero page".
    pub thp: Option<Thp>,
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
    /// What KSM would save here (see the attribution rule), the pages its
    /// huge-page splits free included.
    pub would_save_bytes: u64,
    /// Bytes read that sit in transparent huge pages.
    pub huge_bytes: u64,
    /// Of `would_save_bytes`: all-zero subpages of huge pages that KSM's
    /// splits map to the zero page (in no KSM counter).
    pub split_freed_bytes: u64,
    /// What merging only its all-zero pages would save (each mapped to
    /// the kernel's zero page, as `use_zero_pages=1` does), those KSM
    /// already mapped to it included.
    pub zero_only_bytes: u64,
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
    /// `[a][b]`: bytes of the distinct contents (or the KSM pages) `a`
    /// and `b` both hold, one page each. The diagonal (`a`'s own distinct
    /// contents, or the KSM pages it maps) is in the JSON only: the text
    /// leaves it out, where it read like a saving.
    pub bytes: Vec<Vec<u64>>,
}

/// Which processes were chosen, and why the others were not read: said
/// when nothing was (a process that has not opted in, `--guests` with no
/// QEMU running).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selected {
    /// The PIDs asked for (empty: every process).
    pub pids: Vec<u32>,
    /// `--guests`: only QEMU processes.
    pub guests_only: bool,
    /// Processes looked at (user processes, or the PIDs given).
    pub processes: usize,
    /// Of them, not QEMU (left out by `--guests`).
    pub not_qemu: usize,
    /// Of them, with no area selected: nothing opted in to KSM (or, with
    /// `--all-anonymous`, no private memory).
    pub nothing_selected: usize,
    /// Of them, whose memory map (`/proc/PID/smaps`) could not be read
    /// although the process is there (a fixture root, a security module).
    pub maps_unreadable: usize,
    /// The first of those errors, naming the file.
    pub maps_error: Option<String>,
    /// The /proc the processes were looked for in (under `--root`).
    pub proc_dir: String,
}

/// The transparent huge pages among the pages read, and what merging
/// them does (see docs/estimate.md, "Huge pages").
#[derive(Debug, Clone, Serialize)]
pub struct HugePages {
    /// THP mode (`always`, `madvise`, `never`); `None` without THP.
    pub mode: Option<String>,
    /// This kernel's splits map all-zero subpages to the shared zero page.
    pub split_maps_zero_pages: bool,
    /// Huge pages the pages read sit in.
    pub huge_pages: u64,
    /// Bytes read in them.
    pub bytes: u64,
    /// All-zero bytes among them.
    pub zero_bytes: u64,
    /// Huge pages KSM would split (one of their subpages has a copy).
    pub split_huge_pages: u64,
    /// Freed by those splits outside KSM's counters (= the estimate's
    /// `split_freed_bytes`).
    pub split_freed_bytes: u64,
}

/// With `--by domain`: how much of the projected saving would come from
/// merging across trust domains.
#[derive(Debug, Clone, Serialize)]
pub struct DomainSaving {
    /// How domains were formed (KSM_TRUST_DOMAINS or --domains).
    pub trust_domains: String,
    /// Domains among the processes scanned.
    pub domains: usize,
    /// What merging only within each domain would save (non-zero pages).
    pub within_domains_bytes: u64,
    /// What merging across domains adds: the saving a within-domain-only
    /// policy gives up (non-zero pages).
    pub across_domains_bytes: u64,
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
    /// What KSM would save in total: `ksm_counters_saved_bytes +
    /// split_freed_bytes`.
    pub saved_bytes: u64,
    /// The part KSM's counters will show: (`pages_sharing` +
    /// `ksm_zero_pages`) x page size.
    pub ksm_counters_saved_bytes: u64,
    /// The part freed by the huge-page splits KSM causes, outside its
    /// counters (all-zero subpages mapped to the shared zero page).
    pub split_freed_bytes: u64,
    /// The zero-only what-if: what merging only all-zero pages would save
    /// (each mapped to the kernel's zero page, as `use_zero_pages=1`
    /// does; huge pages holding one are split, as KSM does): every
    /// all-zero page read plus those KSM already mapped to the zero page.
    /// Exact, also under `--sample`.
    pub zero_only_saved_bytes: u64,
    /// `zero_only_saved_bytes` minus the rmap items of every page KSM
    /// would still scan (it has no zero-only scan).
    pub zero_only_profit_bytes: i64,
    /// Two standard errors of `saved_bytes` from sampling (95%).
    pub saved_error_bytes: u64,
    /// Projected `general_profit` (the kernel's counter: counted pages only).
    pub general_profit_bytes: i64,
    /// `saved_bytes` minus the rmap items: what merging really gains.
    pub profit_bytes: i64,
    pub now: Now,
    /// Projected saving minus what the scanned processes save now.
    pub to_gain_bytes: i64,
    pub cost: Cost,
    pub huge_pages: HugePages,
    pub skipped: Skipped,
    pub selected: Selected,
    pub processes: Vec<ProcessRow>,
    pub matrix: Option<Matrix>,
    pub realized_matrix: Option<Matrix>,
    /// With `--by domain`.
    pub domains: Option<DomainSaving>,
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

/// The projection's parameters from this host's KSM (defaults without)
/// and its huge pages.
fn params(state: Option<&KsmState>, thp: &Thp, page_size: u64, sample: u64) -> Params {
    Params {
        page_size,
        max_page_sharing: state.and_then(|s| s.max_page_sharing).unwrap_or(256),
        use_zero_pages: state.and_then(|s| s.use_zero_pages).unwrap_or(0) == 1,
        sample: sample.max(1),
        split_maps_zero_pages: thp.split_maps_zero_pages,
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

/// This host's KSM (if any) and huge pages, as the estimate sees them.
struct Host {
    state: Option<KsmState>,
    thp: Thp,
    params: Params,
}

/// A chosen process and its selected areas.
struct Info {
    pid: u32,
    comm: String,
    guest: Option<String>,
    group: String,
    areas: Vec<vmas::Vma>,
}

/// What the scan is given: the targets and the names of their groups.
struct Plan {
    targets: Vec<Target>,
    group_names: Vec<String>,
}

/// The per-process rows, and what KSM saves now with the zero page.
struct Rows {
    rows: Vec<ProcessRow>,
    /// Zero-page mappings the processes' `ksm_stat` credits to KSM.
    already_zero: u64,
    /// Sum of their `ksm_zero_pages`.
    ksm_zero_now: u64,
}

/// Scan and compute. `progress` is called after each batch.
pub fn build(
    root: &Root,
    opts: &Options,
    page_size: u64,
    progress: &mut dyn FnMut(scan::Progress),
) -> anyhow::Result<Estimate> {
    let mut notes = Vec::new();
    let mut host = read_host(root, opts, page_size, &mut notes)?;
    let (mut infos, gone_early, selected) = choose_processes(root, opts)?;
    let plan = plan_scan(root, host.state.as_ref(), &mut infos, &mut notes);
    if opts.sample == 0 {
        let areas = plan.targets.iter().flat_map(|t| &t.areas);
        host.params.sample = auto_sample(areas.map(|a| a.end.saturating_sub(a.start)).sum());
    }
    let by_domain = opts.group_by == GroupBy::Domain;
    let contents = Contents::new(host.params, opts.matrix || by_domain);
    let sc = scan::scan(
        root,
        &plan.targets,
        contents,
        ScanOptions {
            selection: opts.selection,
            cpu_limit: opts.cpu_limit,
            ksm_only: false,
        },
        progress,
    )?;
    if let Some(e) = &sc.kpageflags_error {
        notes.push(format!(
            "{e}: the page frames' flags are unknown, so no KSM-merged page (MERGED NOW, saved \
             now, the realized matrix) and no huge page is seen"
        ));
    }
    let rows = process_rows(root, &sc, &infos, host.params, &mut notes);
    let projection = project(&sc, host.params, rows.already_zero, &mut notes);
    let now = saved_now(host.state.as_ref(), &sc, rows.ksm_zero_now, page_size);
    let ksmd_ns = ksmd::Ksmd::new(root).cpu().map(|c| c.ns);
    let (ns, source) = cost_per_page(host.state.as_ref().and_then(|s| s.pages_scanned), ksmd_ns);
    let cost = cost(projection.pages, ns, source, opts.max_cpu);
    let (matrix, realized_matrix) = matrices(&sc, &plan.group_names, opts.matrix, page_size);
    let thp = huge_pages(&host.thp, &sc, &projection, page_size, &mut notes);
    let domains = by_domain
        .then(|| domain_saving(&sc, opts, plan.group_names.len(), page_size, &mut notes))
        .flatten();
    let mut est = assemble(
        opts,
        host,
        sc,
        rows,
        gone_early,
        projection,
        now,
        cost,
        (matrix, realized_matrix),
        thp,
        selected,
        notes,
    );
    est.domains = domains;
    Ok(est)
}

/// The saving within and across domains.
fn domain_saving(
    sc: &scan::Scan,
    opts: &Options,
    groups: usize,
    page: u64,
    notes: &mut Vec<String>,
) -> Option<DomainSaving> {
    let (within, across) = sc.contents.within_groups()?;
    notes.push(
        "within and across domains: non-zero pages only (all-zero pages are merged with each \
         other whoever holds them), before max_page_sharing"
            .into(),
    );
    Some(DomainSaving {
        trust_domains: opts.domains.to_string(),
        domains: groups,
        within_domains_bytes: within * page,
        across_domains_bytes: across * page,
    })
}

/// KSM's state and settings (defaults without KSM) and the huge pages.
fn read_host(
    root: &Root,
    opts: &Options,
    page_size: u64,
    notes: &mut Vec<String>,
) -> anyhow::Result<Host> {
    let ksm = Ksm::new(root);
    let state = if ksm.supported() {
        Some(ksm.read()?)
    } else {
        None
    };
    if state.is_none() {
        notes.push(format!(
            "this kernel has no KSM ({} does not exist): the estimate assumes KSM's defaults \
             (max_page_sharing=256, use_zero_pages=0) and only --all-anonymous finds memory",
            ksm.dir().display()
        ));
    }
    let thp = opts.thp.clone().unwrap_or_else(|| Thp::read(root));
    let params = params(state.as_ref(), &thp, page_size, opts.sample);
    Ok(Host { state, thp, params })
}

/// The processes asked for (all but ourselves and kernel threads, or the
/// PIDs given), with their selected areas; and how many were gone before
/// their areas could be read, and what was selected.
fn choose_processes(root: &Root, opts: &Options) -> anyhow::Result<(Vec<Info>, usize, Selected)> {
    use anyhow::Context;
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
    let mut sel = Selected {
        pids: opts.pids.clone(),
        guests_only: opts.guests,
        processes: pids.len(),
        proc_dir: root.join("/proc").display().to_string(),
        ..Selected::default()
    };
    let mut infos = Vec::new();
    let mut gone_early = 0;
    let users = audit::Users::read(root);
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
            sel.not_qemu += 1;
            continue;
        }
        let guest = if qemu {
            proc::cmdline(root, pid).and_then(|a| guest_name(&a))
        } else {
            None
        };
        let all = match vmas::read(root, pid) {
            Ok(all) => all,
            Err(e) => {
                if root.join(format!("/proc/{pid}/stat")).exists() {
                    sel.maps_unreadable += 1;
                    sel.maps_error.get_or_insert_with(|| e.to_string());
                } else {
                    gone_early += 1;
                }
                continue;
            }
        };
        let areas: Vec<vmas::Vma> = all
            .into_iter()
            .filter(|a| opts.selection.takes(a))
            .collect();
        if areas.is_empty() {
            sel.nothing_selected += 1;
            continue;
        }
        let group = match opts.group_by {
            GroupBy::Process => guest.clone().unwrap_or_else(|| format!("{comm}[{pid}]")),
            GroupBy::Cgroup => cgroup(root, pid).unwrap_or_else(|| "?".into()),
            GroupBy::Domain => {
                audit::domain_of(root, pid, opts.domains, &users).unwrap_or_else(|| "?".into())
            }
        };
        infos.push(Info {
            pid,
            comm,
            guest,
            group,
            areas,
        });
    }
    Ok((infos, gone_early, sel))
}

/// The scan's targets (the areas move out of `infos`) and the matrix
/// groups: the first 63 names in order, the rest in "other".
fn plan_scan(
    root: &Root,
    state: Option<&KsmState>,
    infos: &mut [Info],
    notes: &mut Vec<String>,
) -> Plan {
    let mut group_names: Vec<String> = Vec::new();
    let mut group_of: HashMap<String, u8> = HashMap::new();
    let mut targets = Vec::new();
    for i in infos.iter_mut() {
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
    Plan {
        targets,
        group_names,
    }
}

/// One row per process scanned. Pages KSM already merged with the zero
/// page are zero-page mappings now (not read): they count as saved zero
/// pages, up to what each process's ksm_stat says KSM did.
fn process_rows(
    root: &Root,
    sc: &scan::Scan,
    infos: &[Info],
    params: Params,
    notes: &mut Vec<String>,
) -> Rows {
    let mut rows = Vec::new();
    let mut already_zero = 0u64;
    let mut ksm_zero_now = 0u64;
    for (ps, info) in sc.processes.iter().zip(infos) {
        let zero_now = proc::ksm_stat(root, ps.pid)
            .and_then(|s| s.zero_pages)
            .unwrap_or(0);
        ksm_zero_now += zero_now.max(0) as u64;
        let kept_zero = (zero_now.max(0) as u64).min(ps.skipped.zero_page_mappings);
        already_zero += kept_zero;
        rows.push(row(
            ps,
            info.comm.clone(),
            info.guest.clone(),
            info.group.clone(),
            zero_now,
            kept_zero,
            params,
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
    Rows {
        rows,
        already_zero,
        ksm_zero_now,
    }
}

/// The table's projection, with the pages KSM already mapped to the zero
/// page added to `ksm_zero_pages`.
fn project(
    sc: &scan::Scan,
    params: Params,
    already_zero: u64,
    notes: &mut Vec<String>,
) -> Projection {
    let mut projection = sc.contents.project();
    projection.ksm_zero_pages += already_zero;
    projection.counted_pages += already_zero;
    projection.saved_pages += already_zero;
    projection.general_profit_bytes = table::general_profit(
        projection.counted_pages,
        projection.rmap_items,
        params.page_size,
    );
    projection.profit_bytes = table::general_profit(
        projection.saved_pages,
        projection.rmap_items,
        params.page_size,
    );
    if params.sample > 1 {
        notes.push(format!(
            "sampled: contents whose hash is 0 mod {}, figures scaled up; zero pages counted exactly",
            params.sample
        ));
    }
    projection
}

/// What KSM saves now: the kernel's counters, and in the scanned processes.
fn saved_now(state: Option<&KsmState>, sc: &scan::Scan, ksm_zero_now: u64, page: u64) -> Now {
    let ksm_pages = sc.ksm_frames.len() as u64;
    let scanned_saved_pages = sc.ksm_mappings.saturating_sub(ksm_pages) + ksm_zero_now;
    Now {
        host_pages_sharing: state.and_then(|s| s.pages_sharing),
        host_ksm_zero_pages: state.and_then(|s| s.ksm_zero_pages),
        host_saved_bytes: state.map(|s| s.saved_bytes(page)),
        host_general_profit_bytes: state.and_then(|s| s.general_profit),
        scanned_saved_bytes: scanned_saved_pages * page,
        ksm_pages,
        ksm_mappings: sc.ksm_mappings,
    }
}

/// The matrix of contents in common, and of KSM pages mapped now.
fn matrices(
    sc: &scan::Scan,
    group_names: &[String],
    matrix: bool,
    page: u64,
) -> (Option<Matrix>, Option<Matrix>) {
    let mb = |v: Vec<Vec<u64>>| {
        v.into_iter()
            .map(|r| r.into_iter().map(|x| x * page).collect())
            .collect()
    };
    let contents = sc.contents.matrix(group_names.len()).map(|m| Matrix {
        groups: group_names.to_vec(),
        bytes: mb(m),
    });
    let realized = matrix.then(|| {
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
            groups: group_names.to_vec(),
            bytes: mb(m),
        }
    });
    (contents, realized)
}

/// The huge pages read and what merging does to them.
fn huge_pages(
    thp: &Thp,
    sc: &scan::Scan,
    projection: &Projection,
    page: u64,
    notes: &mut Vec<String>,
) -> HugePages {
    let h = sc.huge;
    if h.zero_pages > 0 && !thp.split_maps_zero_pages {
        notes.push(
            "this kernel's huge-page splits keep all-zero subpages (no thp_underused_split_page \
             in /proc/vmstat, Linux before 6.12): KSM merges them, counted in pages_sharing"
                .into(),
        );
    }
    HugePages {
        mode: thp.mode.clone(),
        split_maps_zero_pages: thp.split_maps_zero_pages,
        huge_pages: h.huge_pages,
        bytes: h.pages * page,
        zero_bytes: h.zero_pages * page,
        split_huge_pages: h.split_huge_pages,
        split_freed_bytes: projection.split_zero_pages * page,
    }
}

/// The estimate from its parts.
#[allow(clippy::too_many_arguments)]
fn assemble(
    opts: &Options,
    host: Host,
    sc: scan::Scan,
    rows: Rows,
    gone_early: usize,
    projection: Projection,
    now: Now,
    cost: Cost,
    (matrix, realized_matrix): (Option<Matrix>, Option<Matrix>),
    thp: HugePages,
    selected: Selected,
    notes: Vec<String>,
) -> Estimate {
    let page_size = host.params.page_size;
    let scanned_bytes = projection.pages * page_size;
    let saved_bytes = projection.saved_pages * page_size;
    let secs = sc.elapsed.as_secs_f64();
    let rows = rows.rows;
    let zero_only_saved_bytes = rows.iter().map(|r| r.zero_only_bytes).sum::<u64>();
    Estimate {
        page_size_bytes: page_size,
        ksm_supported: host.state.is_some(),
        selection: opts.selection,
        group_by: opts.group_by,
        max_page_sharing: host.params.max_page_sharing,
        use_zero_pages: host.params.use_zero_pages,
        sample: host.params.sample,
        processes_scanned: rows.len(),
        processes_vanished: rows.iter().filter(|r| r.vanished).count() + gone_early,
        scanned_bytes,
        saved_bytes,
        ksm_counters_saved_bytes: projection.counted_pages * page_size,
        split_freed_bytes: projection.split_zero_pages * page_size,
        zero_only_saved_bytes,
        zero_only_profit_bytes: table::general_profit(
            zero_only_saved_bytes / page_size.max(1),
            projection.rmap_items,
            page_size,
        ),
        saved_error_bytes: (2.0 * projection.saved_stderr_pages * page_size as f64).round() as u64,
        general_profit_bytes: projection.general_profit_bytes,
        profit_bytes: projection.profit_bytes,
        to_gain_bytes: saved_bytes as i64 - now.scanned_saved_bytes as i64,
        projection,
        now,
        cost,
        huge_pages: thp,
        skipped: sc.skipped,
        selected,
        processes: rows,
        matrix,
        realized_matrix,
        domains: None,
        elapsed_seconds: secs,
        read_bytes_per_second: if secs > 0.0 {
            sc.bytes_read as f64 / secs
        } else {
            0.0
        },
        table_bytes: sc.contents.memory_bytes(),
        notes,
    }
}

fn row(
    ps: &ProcessScan,
    comm: String,
    guest: Option<String>,
    group: String,
    zero_now: i64,
    kept_zero: u64,
    params: Params,
) -> ProcessRow {
    let page = params.page_size;
    ProcessRow {
        pid: ps.pid,
        comm,
        guest,
        group,
        selected_bytes: ps.selected_bytes,
        scanned_bytes: ps.pages * page,
        zero_pages: ps.zero_pages,
        would_save_bytes: (ps.saved_kept_pages * params.sample + ps.saved_zero_pages + kept_zero)
            * page,
        huge_bytes: ps.huge_pages * page,
        split_freed_bytes: if params.split_maps_zero_pages {
            ps.huge_zero_pages * page
        } else {
            0
        },
        zero_only_bytes: (ps.zero_pages + kept_zero) * page,
        ksm_mapped_pages: ps.ksm_mapped_pages,
        ksm_zero_pages_now: zero_now,
        skipped: ps.skipped,
        vanished: ps.vanished,
        refused: ps.refused,
    }
}

#[cfg(test)]
mod tests;
