//! `ksmctl ps`: which processes KSM merges, and what it gains for each.
//!
//! Every process's `/proc/PID/ksm_stat` is read; a process that exits
//! between the listing of `/proc` and the read of its files is skipped.
//! For QEMU processes the guest's name is taken from the command line
//! (`-name guest=NAME,...` or `-name NAME`, and Proxmox VE's `-id VMID`).
//! Every guest is listed, merged or not; one whose memory KSM cannot merge
//! says why in the OPT-IN column (`no: mem-merge=off`, `no: nothing opted
//! in`).

use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::human;
use crate::root::Root;
use crate::sample::processes::{guest_label, opt_in_name, scan, ProcessKsm};
use crate::sample::split::{self, SplitFreed};

/// One row of `ksmctl ps --json`: raw integers, units in the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub pid: u32,
    pub comm: String,
    pub guest: Option<String>,
    /// Proxmox VE's VMID.
    pub vmid: Option<u64>,
    /// A QEMU guest (listed even with nothing merged).
    pub qemu: bool,
    /// A guest whose memory KSM cannot merge: why.
    pub not_mergeable: Option<String>,
    pub merging_pages: u64,
    pub zero_pages: i64,
    pub merged_bytes: u64,
    pub profit_bytes: Option<i64>,
    pub rmap_items: u64,
    pub merge_any: Option<bool>,
    pub mergeable: Option<bool>,
    /// Freed by KSM's huge-page splits outside its counters (`None`: not
    /// counted; see the report's `split_freed`).
    pub split_freed_bytes: Option<u64>,
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
    /// What KSM's huge-page splits freed outside its counters
    /// ([`Report::with_split_freed`]).
    pub split_freed: Option<SplitFreed>,
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
                    vmid: p.vmid,
                    qemu: p.qemu,
                    not_mergeable: p.not_mergeable.clone(),
                    merging_pages: p.merging_pages,
                    zero_pages: p.zero_pages,
                    merged_bytes,
                    profit_bytes: p.profit_bytes,
                    rmap_items: p.rmap_items,
                    merge_any: p.merge_any,
                    mergeable: p.mergeable,
                    split_freed_bytes: None,
                }
            })
            .collect();
        Report {
            page_size_bytes: page_size,
            processes,
            total,
            split_freed: None,
        }
    }

    /// Add what KSM's huge-page splits freed outside its counters.
    pub fn with_split_freed(mut self, f: SplitFreed) -> Report {
        for r in &mut self.processes {
            r.split_freed_bytes = f.of(r.pid).map(|n| n * self.page_size_bytes);
        }
        self.split_freed = Some(f);
        self
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
            let opt = match &r.not_mergeable {
                Some(why) => format!("no: {why}"),
                None => opt_in_name(r.merge_any, r.mergeable).to_string(),
            };
            let _ = writeln!(
                o,
                "{:>7} {:<15} {:<14} {:>11} {:>9} {:>10} {:>10} {:>11} {}",
                r.pid,
                r.comm,
                guest_label(r.vmid, r.guest.as_deref()).unwrap_or_else(|| "-".into()),
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
        if let Some(line) = self
            .split_freed
            .as_ref()
            .and_then(|f| f.summary(self.page_size_bytes))
        {
            let _ = writeln!(o, "Splits: {line}");
        }
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
    let page = crate::kernel::sys::page_size();
    let report = Report::build(&procs, page).with_split_freed(split::measure(root, &procs, page));
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.render())?;
        if procs.is_empty() {
            let hint = if crate::kernel::sys::euid() != 0 && root.is_host() {
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
    use crate::sample::processes::tests::p;

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
    fn proxmox_guests_and_why_not() {
        let mut a = p(20, 0, 0, 0, Some(0));
        a.comm = "kvm".into();
        a.qemu = true;
        a.guest = Some("web".into());
        a.vmid = Some(101);
        a.not_mergeable = Some("mem-merge=off".into());
        a.mergeable = Some(false);
        let text = Report::build(&[a], 4096).render();
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains(" kvm ") && row.contains("101 (web)"), "{row}");
        assert!(row.ends_with("no: mem-merge=off"), "{row}");
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
