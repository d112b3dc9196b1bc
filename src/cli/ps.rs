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

use crate::human;
use crate::report::{add_legacy_keys, Report, PROCESS_LEGACY_KEYS};
use crate::root::Root;
use crate::sample::processes::{self, guest_label};
use crate::sample::{Parts, Processes, Sampler, Split};

/// `ksmctl ps --json`: each sampled process with its merged pages
/// (merging + zero) in bytes, and the totals; the keys of 0.2 beside
/// their new names (see [`PROCESS_LEGACY_KEYS`]). With a recent audit of
/// ksmtuned's (KSM_TRUST_DOMAINS), each process it looked at has its
/// `domain` and the domains that domain `shares_with`.
pub fn json(r: &Report) -> serde_json::Value {
    let audit = r.recent_audit(std::time::SystemTime::now());
    let rows: Vec<serde_json::Value> = r
        .processes
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["merged_bytes"] = r.bytes(p.merged_pages()).into();
            // Freed by KSM's huge-page splits outside its counters (null:
            // not counted; see split_freed).
            v["split_freed_bytes"] = r
                .split_freed
                .as_ref()
                .and_then(|f| f.of(p.pid))
                .map(|n| r.bytes(n))
                .into();
            if let Some((domain, with)) = audit.and_then(|a| a.audit.of_process(p.pid)) {
                v["domain"] = domain.into();
                v["shares_with"] = with.into();
            }
            add_legacy_keys(&mut v, PROCESS_LEGACY_KEYS);
            v
        })
        .collect();
    let mut total = serde_json::to_value(&r.totals).unwrap_or_default();
    add_legacy_keys(&mut total, PROCESS_LEGACY_KEYS);
    serde_json::json!({
        "page_size_bytes": r.page_size,
        "processes": rows,
        "total": total,
        "split_freed": r.split_freed,
        "domain_audit": audit,
    })
}

/// The human table of a report's processes, aligned, with a totals line.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>7} {:<15} {:<14} {:>11} {:>9} {:>10} {:>10} {:>11} OPT-IN",
        "PID", "COMM", "GUEST", "MERGING", "ZERO", "MERGED", "PROFIT", "RMAP"
    );
    let profit = |p: Option<i64>| {
        p.map(|p| human::bytes(p.into()))
            .unwrap_or_else(|| "-".into())
    };
    for p in &r.processes {
        let mut opt = match &p.not_mergeable {
            Some(why) => format!("no: {why}"),
            None => p.opt_in().to_string(),
        };
        let mark = r.domain_mark(p.pid);
        if !mark.is_empty() {
            opt = format!("{opt}  [{mark}]");
        }
        let _ = writeln!(
            o,
            "{:>7} {:<15} {:<14} {:>11} {:>9} {:>10} {:>10} {:>11} {}",
            p.pid,
            p.comm,
            guest_label(p.vmid, p.guest.as_deref()).unwrap_or_else(|| "-".into()),
            human::count(p.merging_pages),
            p.zero_pages,
            human::ubytes(r.bytes(p.merged_pages())),
            profit(p.profit_bytes),
            human::count(p.rmap_items),
            opt
        );
    }
    let t = &r.totals;
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
        profit(t.profit_bytes),
        human::count(t.rmap_items),
    );
    if let Some(line) = r.thp_split_freed().and_then(|f| f.summary(r.page_size)) {
        let _ = writeln!(o, "Splits: {line}");
    }
    for line in r.domain_lines() {
        let _ = writeln!(o, "{line}");
    }
    // The sums are not the host's figures: say why, with the host's.
    if let Some(k) = r.ksm.as_ref().filter(|_| t.processes > 0) {
        let host_profit = k.general_profit;
        if t.merged_bytes != r.saved_bytes
            || (host_profit.is_some() && t.profit_bytes != host_profit)
        {
            let profit = host_profit
                .map(|p| format!(", its general profit {}", human::bytes(p.into())))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "MERGED and PROFIT count each KSM page in every process that maps it: \
                 the host saves {}{profit} (ksmctl status).",
                human::ubytes(r.saved_bytes)
            );
        }
    }
    o
}

/// Which processes `ksmctl ps` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    /// These (each shown whatever KSM does with it); all when empty.
    pub pids: Vec<u32>,
    /// QEMU guests only.
    pub guests: bool,
    /// Also those KSM scanned but merged nothing of.
    pub all: bool,
}

/// `ksmctl ps [PID...] [--guests] [--json] [--all]`. A PID that is not
/// there (or whose ksm_stat cannot be read) is named, and the exit status
/// is 1.
pub fn command(
    root: &Root,
    select: &Select,
    json_out: bool,
    out: &mut impl io::Write,
) -> anyhow::Result<i32> {
    use anyhow::Context;
    let processes = match (select.pids.is_empty(), select.all) {
        (false, _) => Processes::No,
        (true, true) => Processes::Scanned,
        (true, false) => Processes::Merged,
    };
    let mut sample = Sampler::new(
        root,
        Parts {
            processes,
            split_freed: Split::Always,
            last_audit: true,
            ..Parts::default()
        },
    )
    .take()
    .with_context(|| format!("cannot list processes in {}", root.join("/proc").display()))?;
    let mut missing = Vec::new();
    for &pid in &select.pids {
        match processes::read_process(root, pid) {
            Some(p) => sample.processes.push(p),
            None => missing.push(pid),
        }
    }
    if select.guests {
        sample.processes.retain(|p| p.qemu);
    }
    let report = Report::build(&sample, None, Vec::new());
    let code = if missing.is_empty() { 0 } else { 1 };
    for pid in &missing {
        let why = if root.join(format!("/proc/{pid}")).is_dir() {
            "its /proc/PID/ksm_stat cannot be read (root only; Linux 6.1+)"
        } else {
            "no such process"
        };
        eprintln!("ksmctl ps: PID {pid}: {why}");
    }
    if json_out {
        serde_json::to_writer_pretty(&mut *out, &json(&report))?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&report))?;
        if report.processes.is_empty() {
            let hint = if crate::kernel::sys::euid() != 0 && root.is_host() {
                " (/proc/PID/ksm_stat is readable by root only: run as root)"
            } else {
                ""
            };
            let what = match (select.pids.is_empty(), select.guests) {
                (false, _) => "None of the processes named",
                (true, true) => "No QEMU guest",
                (true, false) => "No process",
            };
            writeln!(
                out,
                "{what} has pages merged by KSM{}.{hint}",
                if select.all { " or scanned" } else { "" }
            )?;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::processes::tests::p;
    use crate::sample::processes::ProcessKsm;
    use crate::sample::Sample;

    fn report(processes: Vec<ProcessKsm>) -> Report {
        let sample = Sample {
            page_size: 4096,
            processes,
            ..Sample::empty()
        };
        Report::build(&sample, None, Vec::new())
    }

    #[test]
    fn report_totals_and_table() {
        let mut a = p(10, 1000, 24, 1100, Some(4_000_000));
        a.guest = Some("vm1".into());
        a.merge_any = Some(false);
        a.mergeable = Some(true);
        let b = p(11, 0, 0, 300, Some(-19_200));
        let r = report(vec![a, b]);
        assert_eq!(r.totals.processes, 2);
        assert_eq!(r.totals.merging_pages, 1000);
        assert_eq!(r.totals.merged_bytes, 1024 * 4096);
        assert_eq!(r.totals.profit_bytes, Some(4_000_000 - 19_200));
        assert_eq!(r.totals.rmap_items, 1400);
        let text = render(&r);
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
        let text = render(&report(vec![a]));
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
