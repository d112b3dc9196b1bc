//! `ksmctl ps`: which processes KSM merges, and what it gains for each.
//!
//! Every process's `/proc/PID/ksm_stat` is read; a process that exits
//! between the listing of `/proc` and the read of its files is skipped.
//! For QEMU processes the guest's name is taken from the command line
//! (`-name guest=NAME,...` or `-name NAME`).

use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::human;
use crate::process;
use crate::root::Root;

/// One process's use of KSM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessKsm {
    pub pid: u32,
    pub comm: String,
    /// The guest's name, for QEMU processes that were given `-name`.
    pub guest: Option<String>,
    /// Pages of this process that are mapped to a KSM page.
    pub merging_pages: u64,
    /// Empty pages merged with the kernel's zero page (signed in the kernel).
    pub zero_pages: i64,
    /// KSM's bookkeeping entries for this process's scanned pages.
    pub rmap_items: u64,
    /// The kernel's estimate of this process's gain, in bytes (Linux 6.4+).
    pub profit_bytes: Option<i64>,
    /// Whole process opted in with prctl(PR_SET_MEMORY_MERGE) (Linux 6.14+).
    pub merge_any: Option<bool>,
    /// Has memory opted in with madvise or prctl (Linux 6.14+).
    pub mergeable: Option<bool>,
}

impl ProcessKsm {
    /// Pages of this process that KSM merged: merging pages plus zero pages.
    pub fn saved_pages(&self) -> u64 {
        self.merging_pages + self.zero_pages.max(0) as u64
    }

    /// How the process opted in: see [`opt_in_name`].
    pub fn opt_in(&self) -> &'static str {
        opt_in_name(self.merge_any, self.mergeable)
    }

    /// Whether KSM has merged anything of this process.
    pub fn has_merged(&self) -> bool {
        self.merging_pages > 0 || self.zero_pages > 0
    }
}

/// How a process opted in, from its `ksm_merge_any` and `ksm_mergeable`:
/// `prctl` (whole process), `madvise` (some mappings), `no`, or `-` when
/// the kernel does not say (before Linux 6.14).
pub fn opt_in_name(merge_any: Option<bool>, mergeable: Option<bool>) -> &'static str {
    match (merge_any, mergeable) {
        (Some(true), _) => "prctl",
        (_, Some(true)) => "madvise",
        (Some(false), _) | (_, Some(false)) => "no",
        (None, None) => "-",
    }
}

/// Read one process; `None` when it is gone, has no `ksm_stat` or cannot
/// be read.
pub fn read_process(root: &Root, pid: u32) -> Option<ProcessKsm> {
    let stat = process::ksm_stat(root, pid)?;
    let comm = process::comm(root, pid)?;
    let guest = if looks_like_qemu(root, pid, &comm) {
        process::cmdline(root, pid).and_then(|args| guest_name(&args))
    } else {
        None
    };
    Some(ProcessKsm {
        pid,
        comm,
        guest,
        merging_pages: stat.merging_pages.unwrap_or(0),
        zero_pages: stat.zero_pages.unwrap_or(0),
        rmap_items: stat.rmap_items,
        profit_bytes: stat.process_profit,
        merge_any: stat.merge_any,
        mergeable: stat.mergeable,
    })
}

fn looks_like_qemu(root: &Root, pid: u32, comm: &str) -> bool {
    if process::is_qemu_comm(comm) {
        return true;
    }
    // A renamed QEMU (`-name x,process=NAME`) still runs a qemu binary.
    process::cmdline(root, pid)
        .and_then(|a| a.into_iter().next())
        .map(|argv0| {
            let base = argv0.rsplit('/').next().unwrap_or("").to_string();
            base.starts_with("qemu-system-") || base == "qemu-kvm" || base == "kvm"
        })
        .unwrap_or(false)
}

/// Every process that KSM merged pages of (with `all`: also those it only
/// scanned, i.e. with rmap items), sorted by saving, largest first.
/// Processes that vanish during the scan are skipped.
pub fn scan(root: &Root, all: bool) -> io::Result<Vec<ProcessKsm>> {
    let mut out: Vec<ProcessKsm> = process::pids(root)?
        .into_iter()
        .filter_map(|pid| read_process(root, pid))
        .filter(|p| p.has_merged() || (all && p.rmap_items > 0))
        .collect();
    sort(&mut out, SortKey::Saving);
    Ok(out)
}

/// What the process list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Merged pages (merging + zero), largest first.
    Saving,
    /// The kernel's profit estimate, largest first.
    Profit,
    /// rmap items (KSM's cost), largest first.
    Rmap,
    /// Process id, ascending.
    Pid,
}

impl SortKey {
    /// All keys, in the order `s` in `ksmctl top` cycles through them.
    pub const ALL: [SortKey; 4] = [
        SortKey::Saving,
        SortKey::Profit,
        SortKey::Rmap,
        SortKey::Pid,
    ];

    /// A short name for the footer.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Saving => "saving",
            SortKey::Profit => "profit",
            SortKey::Rmap => "rmap items",
            SortKey::Pid => "pid",
        }
    }

    /// The next key in the cycle.
    pub fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|&k| k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// Sort processes by a key; ties are broken by pid.
pub fn sort(procs: &mut [ProcessKsm], key: SortKey) {
    procs.sort_by(|a, b| {
        let primary = match key {
            SortKey::Saving => b.saved_pages().cmp(&a.saved_pages()),
            SortKey::Profit => b
                .profit_bytes
                .unwrap_or(i64::MIN)
                .cmp(&a.profit_bytes.unwrap_or(i64::MIN)),
            SortKey::Rmap => b.rmap_items.cmp(&a.rmap_items),
            SortKey::Pid => std::cmp::Ordering::Equal,
        };
        primary.then(a.pid.cmp(&b.pid))
    });
}

/// The guest name from a QEMU command line: `-name guest=NAME,...`,
/// `-name NAME` or `-name NAME,process=...` (`,,` is a literal comma, as
/// in QEMU's option syntax). The last `-name` wins, as in QEMU.
pub fn guest_name(args: &[String]) -> Option<String> {
    let value = args
        .windows(2)
        .filter(|w| w[0] == "-name" || w[0] == "--name")
        .map(|w| w[1].as_str())
        .next_back()?;
    let mut name = None;
    for (i, part) in split_qemu_opts(value).into_iter().enumerate() {
        if let Some(n) = part.strip_prefix("guest=") {
            name = Some(n.to_string());
        } else if i == 0 && !part.contains('=') {
            // The implied key of -name is guest.
            name = Some(part);
        }
    }
    name.filter(|n| !n.is_empty())
}

/// Split a QEMU option string at single commas; `,,` stands for a comma.
fn split_qemu_opts(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push(',');
                }
            } else {
                parts.push(String::new());
            }
        } else if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    parts
}

/// One row of `ksmctl ps --json`: raw integers, units in the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub pid: u32,
    pub comm: String,
    pub guest: Option<String>,
    pub merging_pages: u64,
    pub zero_pages: i64,
    pub merged_bytes: u64,
    pub profit_bytes: Option<i64>,
    pub rmap_items: u64,
    pub merge_any: Option<bool>,
    pub mergeable: Option<bool>,
}

/// The totals line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub processes: usize,
    pub merging_pages: u64,
    pub zero_pages: i64,
    pub merged_bytes: u64,
    /// Sum over the processes that report a profit.
    pub profit_bytes: Option<i64>,
    pub rmap_items: u64,
}

/// Everything `ksmctl ps` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub page_size_bytes: u64,
    pub processes: Vec<Row>,
    pub total: Totals,
}

impl Report {
    /// Build the report from scanned processes (kept in their order).
    pub fn build(procs: &[ProcessKsm], page_size: u64) -> Report {
        let mut total = Totals::default();
        let processes = procs
            .iter()
            .map(|p| {
                let merged_bytes = p.saved_pages().saturating_mul(page_size);
                total.processes += 1;
                total.merging_pages += p.merging_pages;
                total.zero_pages += p.zero_pages;
                total.merged_bytes += merged_bytes;
                total.rmap_items += p.rmap_items;
                if let Some(pr) = p.profit_bytes {
                    total.profit_bytes = Some(total.profit_bytes.unwrap_or(0) + pr);
                }
                Row {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    guest: p.guest.clone(),
                    merging_pages: p.merging_pages,
                    zero_pages: p.zero_pages,
                    merged_bytes,
                    profit_bytes: p.profit_bytes,
                    rmap_items: p.rmap_items,
                    merge_any: p.merge_any,
                    mergeable: p.mergeable,
                }
            })
            .collect();
        Report {
            page_size_bytes: page_size,
            processes,
            total,
        }
    }

    /// The human table, aligned, with a totals line.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:>7} {:<15} {:<14} {:>11} {:>9} {:>10} {:>10} {:>11} OPT-IN",
            "PID", "COMM", "GUEST", "MERGING", "ZERO", "MERGED", "PROFIT", "RMAP"
        );
        for r in &self.processes {
            let opt = opt_in_name(r.merge_any, r.mergeable);
            let _ = writeln!(
                o,
                "{:>7} {:<15} {:<14} {:>11} {:>9} {:>10} {:>10} {:>11} {}",
                r.pid,
                r.comm,
                r.guest.as_deref().unwrap_or("-"),
                human::count(r.merging_pages),
                r.zero_pages,
                human::ubytes(r.merged_bytes),
                r.profit_bytes
                    .map(|p| human::bytes(p.into()))
                    .unwrap_or_else(|| "-".into()),
                human::count(r.rmap_items),
                opt
            );
        }
        let t = &self.total;
        let label = format!(
            "TOTAL ({} process{})",
            t.processes,
            if t.processes == 1 { "" } else { "es" }
        );
        let _ = writeln!(
            o,
            "{:<38} {:>11} {:>9} {:>10} {:>10} {:>11}",
            label,
            human::count(t.merging_pages),
            t.zero_pages,
            human::ubytes(t.merged_bytes),
            t.profit_bytes
                .map(|p| human::bytes(p.into()))
                .unwrap_or_else(|| "-".into()),
            human::count(t.rmap_items),
        );
        o
    }
}

/// `ksmctl ps [--json] [--all]`.
pub fn command(
    root: &Root,
    json: bool,
    all: bool,
    out: &mut impl io::Write,
) -> anyhow::Result<i32> {
    use anyhow::Context;
    let procs = scan(root, all)
        .with_context(|| format!("cannot list processes in {}", root.join("/proc").display()))?;
    let report = Report::build(&procs, crate::sys::page_size());
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.render())?;
        if procs.is_empty() {
            let hint = if crate::sys::euid() != 0 && root.is_host() {
                " (/proc/PID/ksm_stat is readable by root only: run as root)"
            } else {
                ""
            };
            writeln!(
                out,
                "No process has pages merged by KSM{}.{hint}",
                if all { " or scanned" } else { "" }
            )?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn guest_names() {
        let libvirt =
            args("/usr/bin/qemu-system-x86_64 -name guest=rhel9,debug-threads=on -S -machine pc");
        assert_eq!(guest_name(&libvirt).as_deref(), Some("rhel9"));
        assert_eq!(
            guest_name(&args("qemu-kvm -m 1024 -name web01")).as_deref(),
            Some("web01")
        );
        assert_eq!(
            guest_name(&args("qemu-kvm -name db,process=qemu:db")).as_deref(),
            Some("db")
        );
        assert_eq!(
            guest_name(&args("qemu-kvm -name process=x,guest=a,,b")).as_deref(),
            Some("a,b")
        );
        assert_eq!(
            guest_name(&args("qemu-kvm -name old -name new")).as_deref(),
            Some("new")
        );
        assert_eq!(guest_name(&args("qemu-kvm -m 1024")), None);
        assert_eq!(guest_name(&args("qemu-kvm -name")), None);
        assert_eq!(guest_name(&args("qemu-kvm -name process=x")), None);
    }

    fn p(pid: u32, merging: u64, zero: i64, rmap: u64, profit: Option<i64>) -> ProcessKsm {
        ProcessKsm {
            pid,
            comm: format!("p{pid}"),
            guest: None,
            merging_pages: merging,
            zero_pages: zero,
            rmap_items: rmap,
            profit_bytes: profit,
            merge_any: None,
            mergeable: None,
        }
    }

    #[test]
    fn sorting() {
        let mut v = vec![
            p(3, 10, 0, 5, Some(100)),
            p(1, 5, 10, 50, Some(-5)),
            p(2, 10, 0, 7, None),
        ];
        sort(&mut v, SortKey::Saving);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3]);
        sort(&mut v, SortKey::Profit);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [3, 1, 2]);
        sort(&mut v, SortKey::Rmap);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3]);
        sort(&mut v, SortKey::Pid);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(SortKey::Pid.next(), SortKey::Saving);
    }

    #[test]
    fn report_totals_and_table() {
        let mut a = p(10, 1000, 24, 1100, Some(4_000_000));
        a.guest = Some("vm1".into());
        a.merge_any = Some(false);
        a.mergeable = Some(true);
        let b = p(11, 0, 0, 300, Some(-19_200));
        let r = Report::build(&[a, b], 4096);
        assert_eq!(r.total.processes, 2);
        assert_eq!(r.total.merging_pages, 1000);
        assert_eq!(r.total.merged_bytes, 1024 * 4096);
        assert_eq!(r.total.profit_bytes, Some(4_000_000 - 19_200));
        assert_eq!(r.total.rmap_items, 1400);
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("MERGING") && lines[0].contains("OPT-IN"));
        assert!(lines[1].contains("vm1") && lines[1].contains("1,000"));
        assert!(lines[1].contains("4.00 MiB") && lines[1].ends_with("madvise"));
        assert!(lines[2].contains("-18.8 KiB"), "{}", lines[2]);
        assert!(lines[3].starts_with("TOTAL (2 processes)"));
        // Columns line up: the MERGING column ends at the same place.
        let end = |l: &str, s: &str| l.find(s).map(|i| i + s.len());
        assert_eq!(end(lines[0], "MERGING"), end(lines[1], "1,000"));
        assert_eq!(end(lines[0], "MERGING"), end(lines[3], "1,000"));
    }

    #[test]
    fn opt_in_names() {
        let mut x = p(1, 0, 0, 0, None);
        assert_eq!(x.opt_in(), "-");
        x.merge_any = Some(true);
        assert_eq!(x.opt_in(), "prctl");
        x.merge_any = Some(false);
        x.mergeable = Some(false);
        assert_eq!(x.opt_in(), "no");
    }
}
