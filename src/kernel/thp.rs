//! Transparent huge pages as far as KSM is concerned: the THP mode, the
//! split counters of `/proc/vmstat`, and whether this kernel maps the
//! all-zero subpages of a huge page it splits to the shared zero page.
//!
//! KSM merges 4 KiB pages: to merge a subpage of a transparent huge page it
//! first splits the huge page (`split_huge_page` in `try_to_merge_one_page`,
//! mm/ksm.c). Since Linux 6.12 (commit b1f202060afe, "mm: remap unused
//! subpages to shared zeropage when splitting isolated thp", series "mm:
//! split underused THPs") every split of an anonymous huge page maps its
//! all-zero subpages to the shared zero page and frees them: memory freed
//! by KSM's work that neither `pages_sharing` nor `ksm_zero_pages` counts.
//! The same series added the `thp_underused_split_page` counter to
//! `/proc/vmstat` (commit dafff3f4c850) and
//! `/sys/kernel/mm/transparent_hugepage/shrink_underused`: their presence
//! is how the behaviour is detected (distribution kernels backport; the
//! kernel version is never looked at).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::root::Root;

/// The THP sysfs directory.
pub const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";

/// The `/proc/vmstat` counters about huge pages that KSM's splitting moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThpCounters {
    /// `thp_split_page`: huge pages split since boot (KSM, reclaim,
    /// migration, the underused shrinker: every cause).
    pub split_page: Option<u64>,
    /// `thp_split_page_failed`.
    pub split_page_failed: Option<u64>,
    /// `thp_split_pmd`: PMD mappings split (a huge page mapped by 4 KiB
    /// entries from then on).
    pub split_pmd: Option<u64>,
    /// `thp_underused_split_page` (6.12+): splits by the underused-THP
    /// shrinker. Its presence marks a kernel whose splits map all-zero
    /// subpages to the zero page.
    pub underused_split_page: Option<u64>,
    /// `thp_fault_alloc`: huge pages allocated at fault time.
    pub fault_alloc: Option<u64>,
}

/// What this kernel does with huge pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Thp {
    /// `enabled`: `always`, `madvise` or `never`; `None` without THP.
    pub mode: Option<String>,
    /// The split counters (all `None` when `/proc/vmstat` cannot be read).
    pub counters: ThpCounters,
    /// A split maps all-zero subpages to the shared zero page (Linux 6.12+
    /// or a backport: `thp_underused_split_page` in `/proc/vmstat` or
    /// `shrink_underused` in the THP directory).
    pub split_maps_zero_pages: bool,
    /// `AnonHugePages` of `/proc/meminfo` in KiB.
    pub anon_huge_kib: Option<u64>,
}

/// The selected value of a `[a] b c` sysfs selection.
pub fn selected(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_string)
}

/// Parse `/proc/vmstat` (`name value` lines).
pub fn parse_vmstat(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.trim().parse().ok()?))
        })
        .collect()
}

impl ThpCounters {
    /// The counters from the text of `/proc/vmstat`.
    pub fn parse(text: &str) -> ThpCounters {
        let v = parse_vmstat(text);
        let g = |k: &str| v.get(k).copied();
        ThpCounters {
            split_page: g("thp_split_page"),
            split_page_failed: g("thp_split_page_failed"),
            split_pmd: g("thp_split_pmd"),
            underused_split_page: g("thp_underused_split_page"),
            fault_alloc: g("thp_fault_alloc"),
        }
    }
}

impl Thp {
    /// Read under `root`; files this kernel lacks are `None`.
    pub fn read(root: &Root) -> Thp {
        let rd = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        let counters = rd("/proc/vmstat")
            .map(|t| ThpCounters::parse(&t))
            .unwrap_or_default();
        let split_maps_zero_pages = counters.underused_split_page.is_some()
            || root.join(format!("{THP_DIR}/shrink_underused")).exists();
        Thp {
            mode: rd(&format!("{THP_DIR}/enabled")).and_then(|t| selected(&t)),
            counters,
            split_maps_zero_pages,
            anon_huge_kib: rd("/proc/meminfo").and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("AnonHugePages:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            }),
        }
    }

    /// Whether huge pages can back anonymous memory at all here.
    pub fn enabled(&self) -> bool {
        self.mode.as_deref().is_some_and(|m| m != "never")
    }
}

/// Pages of `pid`'s mergeable areas (`mg`) mapped to the shared zero page
/// now, from `/proc/PID/pagemap` (8 bytes read per page of those areas,
/// whether in RAM or not). `zero_pfn`: the zero page's frame number
/// ([`crate::kernel::pagemap::zero_pfn`]; root only). Areas mapped by the
/// huge zero page (a read of untouched memory under THP) are not counted.
pub fn zero_page_mappings(
    root: &Root,
    pid: u32,
    page_size: u64,
    zero_pfn: u64,
) -> std::io::Result<u64> {
    use crate::kernel::pagemap::{PageEntry, Pagemap};
    let areas = crate::kernel::vmas::read(root, pid)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()))?;
    let pm = Pagemap::open(root, pid, page_size)?;
    let mut entries = vec![0u64; 4096];
    let mut n = 0u64;
    for a in areas.iter().filter(|a| a.mergeable()) {
        let mut addr = a.start;
        while addr < a.end {
            let want = (((a.end - addr) / page_size) as usize).min(entries.len());
            let got = pm.read(addr, &mut entries[..want])?;
            if got == 0 {
                break;
            }
            n += entries[..got]
                .iter()
                .filter(|&&e| PageEntry(e).pfn() == Some(zero_pfn))
                .count() as u64;
            addr += got as u64 * page_size;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_and_counters() {
        assert_eq!(
            selected("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(selected("always madvise never"), None);
        let c = ThpCounters::parse(
            "nr_free_pages 12\nthp_split_page 545\nthp_split_page_failed 2\n\
             thp_underused_split_page 0\nthp_split_pmd 600\n",
        );
        assert_eq!(c.split_page, Some(545));
        assert_eq!(c.underused_split_page, Some(0));
        assert_eq!(c.fault_alloc, None);
    }

    #[test]
    fn detected_by_presence() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::create_dir_all(dir.path().join(&THP_DIR[1..])).unwrap();
        std::fs::write(dir.path().join("proc/vmstat"), "thp_split_page 3\n").unwrap();
        std::fs::write(
            dir.path().join(&THP_DIR[1..]).join("enabled"),
            "always madvise [never]\n",
        )
        .unwrap();
        let t = Thp::read(&root);
        assert!(!t.split_maps_zero_pages);
        assert!(!t.enabled());
        assert_eq!(t.counters.split_page, Some(3));
        std::fs::write(
            dir.path().join("proc/vmstat"),
            "thp_split_page 3\nthp_underused_split_page 0\n",
        )
        .unwrap();
        assert!(Thp::read(&root).split_maps_zero_pages);
    }
}
