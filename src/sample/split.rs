//! Memory that KSM's huge-page splits freed outside its counters.
//!
//! To merge a subpage of a transparent huge page KSM splits it; since
//! Linux 6.12 the split maps the huge page's all-zero subpages to the
//! shared zero page (see [`crate::kernel::thp`]). Those pages are freed,
//! but neither `pages_sharing` nor `ksm_zero_pages` counts them, and the
//! kernel has no counter of them either (`thp_split_page` counts splits,
//! of any cause, not the pages they freed). What can be counted: per
//! process that KSM scans, the pages of its mergeable areas mapped to the
//! zero page now, minus its `ksm_zero_pages` (those KSM mapped itself with
//! `use_zero_pages`). That includes pages mapped to the zero page by a
//! read of never-written memory (not KSM's doing; rare in guest RAM, which
//! guests write before they read), and needs root (frame numbers in
//! pagemap) and a pagemap read of 8 bytes per page of mergeable memory.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::kernel::pagemap;
use crate::kernel::thp::{self, Thp};
use crate::root::Root;
use crate::sample::processes::ProcessKsm;

/// What was found, or why it could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitFreed {
    /// THP mode and the split counters of `/proc/vmstat`.
    pub thp_mode: Option<String>,
    /// `thp_split_page`: huge pages split since boot (every cause).
    pub thp_split_pages: Option<u64>,
    /// This kernel's splits map all-zero subpages to the zero page.
    pub split_maps_zero_pages: bool,
    /// Pages freed that way in the processes KSM scans (`None`: not
    /// counted, see `why_not`).
    pub pages: Option<u64>,
    /// Per process: (pid, pages).
    pub processes: Vec<(u32, u64)>,
    /// Why `pages` is `None`.
    pub why_not: Option<String>,
}

impl SplitFreed {
    /// The pages of one process, if counted.
    pub fn of(&self, pid: u32) -> Option<u64> {
        self.pages?;
        Some(
            self.processes
                .iter()
                .find(|p| p.0 == pid)
                .map_or(0, |p| p.1),
        )
    }
}

impl SplitFreed {
    /// One sentence for the views (`None` without THP).
    pub fn summary(&self, page_size: u64) -> Option<String> {
        let mode = self.thp_mode.as_deref()?;
        let splits = self.thp_split_pages.map_or(String::new(), |n| {
            format!(", thp_split_page {n} since boot")
        });
        Some(match (self.pages, self.split_maps_zero_pages) {
            (Some(n), true) => format!(
                "{}  (all-zero subpages of the huge pages KSM split, mapped to the zero \
                 page: in none of its counters; THP {mode}{splits})",
                crate::human::ubytes(n * page_size)
            ),
            (Some(_), false) => format!(
                "none outside KSM's counters: this kernel's splits keep all-zero subpages \
                 (THP {mode}{splits})"
            ),
            (None, _) => format!(
                "not counted ({}; THP {mode}{splits})",
                self.why_not.as_deref().unwrap_or("unknown")
            ),
        })
    }
}

/// [`measure`] at most every `max_age` per root in this program (the
/// metrics read a new sample on every scrape); `procs` is called only when
/// it measures.
pub fn measure_cached(
    root: &Root,
    max_age: Duration,
    procs: impl FnOnce() -> Vec<ProcessKsm>,
) -> SplitFreed {
    static LAST: Mutex<Option<(Root, Instant, SplitFreed)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((r, at, f)) = last.as_ref() {
        if r == root && at.elapsed() < max_age {
            return f.clone();
        }
    }
    let f = measure(root, &procs(), crate::kernel::sys::page_size());
    *last = Some((root.clone(), Instant::now(), f.clone()));
    f
}

/// Count it for `procs` (the processes KSM scans: those with rmap items).
pub fn measure(root: &Root, procs: &[ProcessKsm], page_size: u64) -> SplitFreed {
    let t = Thp::read(root);
    let mut out = SplitFreed {
        thp_mode: t.mode.clone(),
        thp_split_pages: t.counters.split_page,
        split_maps_zero_pages: t.split_maps_zero_pages,
        pages: None,
        processes: Vec::new(),
        why_not: None,
    };
    if t.mode.is_none() {
        out.why_not = Some("this kernel has no transparent huge pages: nothing to split".into());
        out.pages = Some(0);
        return out;
    }
    if !t.split_maps_zero_pages {
        out.why_not = Some(
            "this kernel's huge-page splits keep all-zero subpages (no thp_underused_split_page \
             in /proc/vmstat): KSM merges them, so its counters show everything it frees"
                .into(),
        );
        out.pages = Some(0);
        return out;
    }
    let Some(zero) = pagemap::zero_pfn(root, page_size) else {
        out.why_not = Some(
            "cannot count it: the zero page's frame number is hidden (pagemap needs root)".into(),
        );
        return out;
    };
    let mut total = 0;
    for p in procs
        .iter()
        .filter(|p| p.rmap_items > 0 || p.merging_pages > 0)
    {
        // A process that exits meanwhile counts nothing.
        let Ok(n) = thp::zero_page_mappings(root, p.pid, page_size, zero) else {
            continue;
        };
        let n = n.saturating_sub(p.zero_pages.max(0) as u64);
        if n > 0 {
            out.processes.push((p.pid, n));
            total += n;
        }
    }
    out.pages = Some(total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_whose_splits_keep_zero_subpages() {
        let root = Root::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/thp-6.1"
        ));
        let s = measure(&root, &[], 4096);
        assert_eq!(s.thp_mode.as_deref(), Some("madvise"));
        assert_eq!(s.thp_split_pages, Some(210));
        assert!(!s.split_maps_zero_pages);
        assert_eq!(s.pages, Some(0));
        assert!(s.why_not.unwrap().contains("keep all-zero subpages"));
        assert_eq!(
            SplitFreed {
                pages: None,
                ..measure(&root, &[], 4096)
            }
            .of(1),
            None
        );
    }
}
