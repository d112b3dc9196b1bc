//! The checks of what today's kernels tell: transparent huge pages in the
//! memory opted in (`AnonHugePages` of the mergeable areas, the split
//! counters), the scan-time advisor's settings (6.8+), whole-process vs
//! madvise opt-ins (`ksm_merge_any`, `ksm_mergeable`: 6.14+), and
//! `general_profit` against the processes' `ksm_process_profit`.

use crate::human;
use crate::kernel::ksm::KsmState;

use super::super::gather::{Facts, ProcFacts};
use super::super::{Finding, Severity};
use super::{list, pids, COUNTERS_MIN_BYTES};

/// A process opted in whole (prctl) that loses at least this much (bytes,
/// its `ksm_process_profit` below minus this) is a warning.
pub const WHOLE_PROCESS_LOSS_MIN_BYTES: u64 = 1 << 20;
/// The processes' profits may differ from `general_profit` by this much
/// (bytes) before it is explained: rmap items come and go between reads.
pub const PROFIT_SUM_SLACK_BYTES: u64 = 1 << 20;

/// Transparent huge pages in the memory opted in to KSM: THP's mode, how
/// much of the mergeable areas huge pages back (`AnonHugePages`), the
/// split counters since boot, and the remedies with their costs.
pub(super) fn huge_pages(f: &Facts, out: &mut Vec<Finding>) {
    let Some(mode) = f.thp.mode.as_deref().filter(|_| f.thp.enabled()) else {
        return;
    };
    let huge = |p: &ProcFacts| p.smaps.map_or(0, |m| m.mergeable_anon_huge_kib);
    let hit: Vec<&ProcFacts> = f
        .processes
        .iter()
        .filter(|p| p.opted_in() && huge(p) > 0)
        .collect();
    if hit.is_empty() {
        return;
    }
    let kib = hit.iter().fold(0u64, |a, p| a.saturating_add(huge(p)));
    let bytes = kib.saturating_mul(1024);
    let c = &f.thp.counters;
    let n = |v: Option<u64>| v.map_or("-".to_string(), human::count);
    let severity = if mode == "always" && bytes >= COUNTERS_MIN_BYTES {
        Severity::Warning
    } else {
        Severity::Info
    };
    let zero = if f.thp.split_maps_zero_pages {
        "; this kernel maps the all-zero subpages of a split huge page to the zero page, \
         which frees them outside KSM's counters (ksmctl estimate counts them)"
    } else {
        ""
    };
    out.push(
        Finding::new(
            "thp-in-mergeable-memory",
            severity,
            format!(
                "transparent huge pages are {mode}: {} of the memory opted in to KSM sits in \
                 huge pages (AnonHugePages of the mergeable areas) in {}; since boot \
                 thp_split_page = {}, thp_split_pmd = {}, thp_split_page_failed = {}",
                human::ubytes(bytes),
                list(&hit),
                n(c.split_page),
                n(c.split_pmd),
                n(c.split_page_failed),
            ),
            format!(
                "KSM merges base pages: to merge one page of a huge page it splits the whole \
                 huge page first, so the huge pages of the merged areas are lost and memory \
                 faulted in again under THP {mode} is huge again: KSM and THP undo each \
                 other's work, and merging is slower the more huge pages it meets. The split \
                 counters count every cause (KSM, reclaim, migration, the underused-page \
                 shrinker){zero}"
            ),
            "each remedy has a cost. See first what merging would split: ksmctl estimate \
             (its huge-pages line). Keep both if the saving is worth the split huge pages \
             (their TLB benefit is lost, a few percent on memory-bound work). Or set THP to \
             madvise (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled): only \
             memory that asks for huge pages (MADV_HUGEPAGE; QEMU asks for guest RAM) gets \
             them, other processes lose them. Or turn merging off for the guests that need \
             huge pages (mem-merge=off), which loses their saving",
        )
        .num("mergeable_huge_bytes", bytes)
        .num("pids", pids(&hit))
        .num("thp_always", u8::from(mode == "always"))
        .num("thp_split_page", c.split_page)
        .num("thp_split_pmd", c.split_pmd)
        .num("thp_split_page_failed", c.split_page_failed),
    );
}

/// The kernel's scan-time advisor and its settings, when it is on; a
/// warning when a limit of 0 (which the kernel does not refuse) stalls it.
pub(super) fn advisor(state: &KsmState, out: &mut Vec<Finding>) {
    if !state.advisor_active() {
        return;
    }
    let n = |v: Option<u64>| v.map_or("-".to_string(), human::count);
    let stall = state.advisor_max_pages_to_scan == Some(0) || state.advisor_max_cpu == Some(0);
    let mut finding = Finding::new(
        "advisor-settings",
        if stall {
            Severity::Warning
        } else {
            Severity::Info
        },
        format!(
            "the kernel's scan-time advisor chooses pages_to_scan (now {}): a full scan in \
             about advisor_target_scan_time = {} s, at most advisor_max_cpu = {}% of a CPU, \
             between advisor_min_pages_to_scan = {} and advisor_max_pages_to_scan = {}",
            n(state.pages_to_scan),
            n(state.advisor_target_scan_time),
            n(state.advisor_max_cpu),
            n(state.advisor_min_pages_to_scan),
            n(state.advisor_max_pages_to_scan),
        ),
        format!(
            "the advisor (Linux 6.8+) adjusts pages_to_scan once per full scan; it never \
             changes sleep_millisecs (now {}) nor stops ksmd, and writes to pages_to_scan \
             fail (EINVAL) while it is on{}",
            n(state.sleep_millisecs),
            if stall {
                "; the kernel does not check these limits, and 0 leaves ksmd scanning \
                 (almost) nothing"
            } else {
                ""
            }
        ),
        if stall {
            "give the advisor room: ksmctl set advisor_max_pages_to_scan=30000 \
             advisor_max_cpu=70 (the kernel's defaults)"
        } else {
            "nothing; ksmtuned leaves pages_to_scan to the advisor. To choose the rate \
             yourself or by ksmtuned's policy: ksmctl set advisor_mode=none"
        },
    );
    for (key, v) in [
        ("advisor_max_cpu_percent", state.advisor_max_cpu),
        (
            "advisor_target_scan_time_seconds",
            state.advisor_target_scan_time,
        ),
        ("advisor_min_pages_to_scan", state.advisor_min_pages_to_scan),
        ("advisor_max_pages_to_scan", state.advisor_max_pages_to_scan),
    ] {
        if let Some(v) = v {
            finding = finding.num(key, v);
        }
    }
    out.push(finding);
}

/// Processes opted in whole (prctl PR_SET_MEMORY_MERGE: `ksm_merge_any`
/// in ksm_stat, Linux 6.14+) rather than some areas (madvise:
/// `ksm_mergeable`); a warning for those that cost more than they save.
pub(super) fn whole_process(f: &Facts, out: &mut Vec<Finding>) {
    let stat = |p: &ProcFacts| p.ksm_stat.clone().unwrap_or_default();
    let prctl: Vec<&ProcFacts> = f
        .processes
        .iter()
        .filter(|p| stat(p).merge_any == Some(true))
        .collect();
    if prctl.is_empty() {
        return;
    }
    let madvise = f
        .processes
        .iter()
        .filter(|p| stat(p).merge_any != Some(true) && stat(p).mergeable == Some(true))
        .count();
    let profit = |p: &ProcFacts| stat(p).process_profit.unwrap_or(0);
    let losing: Vec<&ProcFacts> = prctl
        .iter()
        .copied()
        .filter(|p| profit(p) <= -(WHOLE_PROCESS_LOSS_MIN_BYTES as i64))
        .collect();
    let sum = prctl.iter().fold(0i64, |a, p| a.saturating_add(profit(p)));
    let lost = if losing.is_empty() {
        String::new()
    } else {
        format!("; costing more than they save: {}", list(&losing))
    };
    out.push(
        Finding::new(
            "whole-process-opt-in",
            if losing.is_empty() {
                Severity::Info
            } else {
                Severity::Warning
            },
            format!(
                "{} process(es) opted in whole (prctl PR_SET_MEMORY_MERGE: systemd's \
                 MemoryKSM=yes, ksmctl exec): {}, their profit {}; {madvise} opted in some \
                 areas (madvise, as QEMU does for guest RAM){lost}",
                prctl.len(),
                list(&prctl),
                human::bytes(sum.into()),
            ),
            "a whole-process opt-in offers KSM all the process's private memory (heap, \
             stacks, caches), not only the areas the program chose: every page ksmd scans \
             costs an rmap item (64 bytes) whether it finds a copy or not, so a process \
             with few duplicates costs more than it saves (ksm_merge_any and ksm_mergeable \
             in /proc/PID/ksm_stat, Linux 6.14+, tell the two apart; ksmctl ps shows them \
             as OPT-IN)",
            if losing.is_empty() {
                "nothing while their profit stays positive (ksmctl ps shows it)"
            } else {
                "opt those out: drop MemoryKSM=yes from their unit (or stop starting them \
                 with ksmctl exec) and restart them; ksmctl estimate --all-anonymous PID \
                 tells what a process could save before opting it in again"
            },
        )
        .num("processes", prctl.len())
        .num("pids", pids(&prctl))
        .num("madvise_processes", madvise)
        .num("profit_bytes", sum)
        .num("losing_pids", pids(&losing)),
    );
}

/// `general_profit` against the sum of the processes' `ksm_process_profit`
/// (which `ksmctl ps` shows): each process counts every KSM page it maps,
/// the copy KSM keeps included, so the sum overcounts by about
/// `pages_shared` pages; processes that exited or could not be read make
/// it smaller.
pub(super) fn profit_sums(f: &Facts, state: &KsmState, out: &mut Vec<Finding>) {
    let Some(general) = state.general_profit else {
        return;
    };
    let profits: Vec<i64> = f
        .processes
        .iter()
        .filter_map(|p| p.ksm_stat.as_ref()?.process_profit)
        .collect();
    if !f.root_user || profits.is_empty() {
        return;
    }
    let sum = profits.iter().fold(0i64, |a, &p| a.saturating_add(p));
    let diff = i128::from(sum) - i128::from(general);
    if diff.unsigned_abs() < u128::from(PROFIT_SUM_SLACK_BYTES) {
        return;
    }
    let shared = state.pages_shared.unwrap_or(0);
    let shared_bytes = shared.saturating_mul(f.page_size);
    let why = if diff > 0 {
        format!(
            "each process counts every KSM page it maps as saved, the one copy KSM keeps of \
             each included: the sum overcounts by about pages_shared = {} pages ({}). \
             general_profit is the host's figure",
            human::count(shared),
            human::ubytes(shared_bytes)
        )
    } else {
        "the sum misses processes KSM scanned: exited since (ksmd frees their rmap items \
         on its next pass) or whose ksm_stat could not be read. general_profit is the \
         host's figure"
            .to_string()
    };
    out.push(
        Finding::new(
            "profit-sums-differ",
            Severity::Info,
            format!(
                "the {} processes' ksm_process_profit sum to {}, general_profit is {} ({} {})",
                profits.len(),
                human::bytes(sum.into()),
                human::bytes(general.into()),
                human::bytes(diff.abs()),
                if diff > 0 { "more" } else { "less" }
            ),
            why,
            "nothing: read what the host saves in ksmctl status (general_profit); the \
             per-process MERGED and PROFIT of ksmctl ps are each process's view, and ps \
             prints the same note",
        )
        .num("general_profit_bytes", general)
        .num("process_profit_sum_bytes", sum)
        .num("pages_shared", shared),
    );
}
