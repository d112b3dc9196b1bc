//! The scan: for each chosen process, its areas (smaps), which of their
//! pages are in RAM (pagemap), which frames are KSM pages or the zero page
//! (kpageflags), then the contents of the present pages, read in batches
//! with `process_vm_readv` and added to the [`Contents`] table.
//!
//! Nothing is written to the scanned processes and no page is faulted in:
//! only pages `pagemap` reports present are read.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::estimate::table::{Added, Contents};
use crate::kernel::pagemap::{
    has_flag, read_process_memory, KpageFlags, PageEntry, Pagemap, IOV_MAX, KPF_COMPOUND_HEAD,
    KPF_KSM, KPF_THP, KPF_ZERO_PAGE,
};
use crate::kernel::vmas::Vma;
use crate::root::Root;

/// Pages per batch: one pagemap read, one `process_vm_readv` (1 MiB with
/// 4 KiB pages: the copy is still in the CPU's L2 cache when it is hashed;
/// at most [`IOV_MAX`] ranges).
pub const BATCH_PAGES: usize = 256;
const _: () = assert!(BATCH_PAGES <= IOV_MAX);

/// Which memory of a process is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Areas marked mergeable (`mg`): what KSM scans now.
    Mergeable,
    /// All private memory KSM could be told to merge.
    AllAnonymous,
}

impl Selection {
    /// Whether an area is selected.
    pub fn takes(self, vma: &Vma) -> bool {
        match self {
            Selection::Mergeable => vma.mergeable(),
            Selection::AllAnonymous => vma.mergeable() || vma.ksm_compatible(),
        }
    }
}

/// A process to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pid: u32,
    /// Its matrix group (index into the groups), if any.
    pub group: Option<u8>,
    /// The selected areas (see [`Selection::takes`]).
    pub areas: Vec<Vma>,
    /// Whether it may map KSM pages (its `ksm_stat` counts merged pages,
    /// or cannot tell): each frame's flags are then read from
    /// `/proc/kpageflags`; otherwise only the zero page is looked for, by
    /// its frame number (much faster).
    pub ksm_pages_possible: bool,
}

/// Pages not read, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// In a selected area but never touched (or dropped): not in RAM.
    pub not_present_pages: u64,
    /// In swap (never swapped in by the estimate).
    pub swapped_pages: u64,
    /// File pages or shared memory (KSM merges anonymous pages only).
    pub file_pages: u64,
    /// Mapped to the kernel's zero page: they take no memory.
    pub zero_page_mappings: u64,
    /// Present, but the read failed (unmapped meanwhile, process gone).
    pub unreadable_pages: u64,
}

impl Skipped {
    fn add(&mut self, o: &Skipped) {
        self.not_present_pages += o.not_present_pages;
        self.swapped_pages += o.swapped_pages;
        self.file_pages += o.file_pages;
        self.zero_page_mappings += o.zero_page_mappings;
        self.unreadable_pages += o.unreadable_pages;
    }
}

/// What was found in one process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessScan {
    pub pid: u32,
    /// Bytes of the selected areas.
    pub selected_bytes: u64,
    /// Pages read and hashed.
    pub pages: u64,
    /// All-zero pages among them.
    pub zero_pages: u64,
    /// Pages KSM would free here (see the attribution rule), sampled
    /// pages not yet multiplied by the sample factor.
    pub saved_kept_pages: u64,
    /// All-zero pages KSM would free here (exact).
    pub saved_zero_pages: u64,
    /// Pages mapped to a KSM page now.
    pub ksm_mapped_pages: u64,
    /// Pages read that sit in transparent huge pages.
    pub huge_pages: u64,
    /// All-zero pages among them.
    pub huge_zero_pages: u64,
    pub skipped: Skipped,
    /// The process exited (or its memory became unreadable) during the scan.
    pub vanished: bool,
    /// Reading its memory was refused (EPERM/EACCES: Yama's ptrace_scope
    /// 3, a lockdown, a security module).
    pub refused: bool,
}

/// Where the scan is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub pid: u32,
    /// Bytes of resident memory done, and in all (from smaps `Rss`).
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// The transparent huge pages the scan read, and which of them KSM would
/// split (it splits a huge page to merge any of its subpages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HugeScan {
    /// Huge pages (by their frames: a huge page mapped in two places
    /// counts twice).
    pub huge_pages: u64,
    /// Subpages read in them.
    pub pages: u64,
    /// All-zero subpages among them.
    pub zero_pages: u64,
    /// Huge pages holding a content found more than once (an all-zero
    /// subpage included): KSM would split them. A lower bound under
    /// sampling (contents the sample drops are not looked up).
    pub split_huge_pages: u64,
}

/// One huge page being read.
#[derive(Debug, Clone, Copy, Default)]
struct Huge {
    zero: bool,
    /// A subpage's content was seen before it (KSM will split it).
    repeat: bool,
}

/// Everything the scan found.
pub struct Scan {
    pub contents: Contents,
    pub processes: Vec<ProcessScan>,
    pub skipped: Skipped,
    /// KSM frames mapped by the scanned processes: frame -> groups mask.
    pub ksm_frames: HashMap<u64, u64>,
    /// Mappings of KSM frames seen (a frame mapped twice counts twice).
    pub ksm_mappings: u64,
    /// Bytes read with `process_vm_readv`.
    pub bytes_read: u64,
    pub huge: HugeScan,
    pub elapsed: Duration,
    /// Why `/proc/kpageflags` could not be opened, if it could not: no
    /// KSM page nor huge page was seen.
    pub kpageflags_error: Option<String>,
}

/// How the scan runs.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    pub selection: Selection,
    /// Percent of one CPU the scan may use (sleeping between batches);
    /// `None` or 100: no cap.
    pub cpu_limit: Option<u32>,
    /// Only find the KSM frames each process maps (pagemap and
    /// kpageflags): read and hash no page (the cross-domain audit).
    pub ksm_only: bool,
}

/// Scan `targets` in order, adding their pages to `contents`. `progress`
/// is called after each batch; a process that cannot be read any more is
/// marked vanished and skipped. Without `/proc/kpageflags` (a fixture
/// root, no permission) the scan goes on without the frames' flags: no
/// KSM page and no huge page is seen, only the zero page by its frame
/// number ([`Scan::kpageflags_error`] says why).
pub fn scan(
    root: &Root,
    targets: &[Target],
    mut contents: Contents,
    opts: ScanOptions,
    progress: &mut dyn FnMut(Progress),
) -> io::Result<Scan> {
    let t0 = Instant::now();
    let page = contents.params().page_size;
    let (mut kflags, kpageflags_error) = match KpageFlags::open(root) {
        Ok(k) => (Some(k), None),
        Err(e) => (
            None,
            Some(format!("{}: {e}", root.join("/proc/kpageflags").display())),
        ),
    };
    let total_bytes: u64 = targets
        .iter()
        .flat_map(|t| &t.areas)
        .map(|a| a.rss_kib * 1024)
        .sum();
    let zero_pfn = crate::kernel::pagemap::zero_pfn(root, page);
    let mut st = State::new(zero_pfn, page, total_bytes, opts.cpu_limit);
    st.ksm_only = opts.ksm_only;
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for t in targets {
        let mut ps = ProcessScan {
            pid: t.pid,
            selected_bytes: t.areas.iter().map(Vma::len).sum(),
            ..ProcessScan::default()
        };
        if let Err(e) = st.process(root, t, &mut contents, kflags.as_mut(), &mut ps, progress) {
            log::debug!("pid {}: {e}", t.pid);
            if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                ps.refused = true;
            } else {
                ps.vanished = true;
            }
        }
        skipped.add(&ps.skipped);
        out.push(ps);
    }
    let huge = st.huge_scan(&contents, &out);
    Ok(Scan {
        contents,
        processes: out,
        skipped,
        ksm_frames: st.ksm_frames,
        ksm_mappings: st.ksm_mappings,
        bytes_read: st.bytes_read,
        huge,
        elapsed: t0.elapsed(),
        kpageflags_error,
    })
}

/// Buffers reused from batch to batch.
struct State {
    zero_pfn: Option<u64>,
    /// Read every frame's kpageflags (else compare with `zero_pfn`).
    all_flags: bool,
    buf: Vec<u8>,
    entries: Vec<u64>,
    pfns: Vec<u64>,
    pfn_idx: Vec<usize>,
    flags: Vec<u64>,
    /// Keys of the pages of one run read (see [`Contents::key`]).
    keys: Vec<Option<u64>>,
    ranges: Vec<(u64, usize)>,
    /// For each range: the index of its first page in the batch.
    range_pages: Vec<usize>,
    done_bytes: u64,
    total_bytes: u64,
    bytes_read: u64,
    ksm_frames: HashMap<u64, u64>,
    ksm_mappings: u64,
    cpu_limit: Option<u32>,
    /// The area being read has huge pages (smaps `AnonHugePages`): its
    /// frames' flags are read to find them.
    huge_area: bool,
    /// For each page of the batch: 0, or 1 + the index of its huge page
    /// in `huge`.
    page_huge: Vec<u32>,
    /// The huge page of the last frame looked at, and that frame.
    cur_huge: Option<(u32, u64)>,
    huge: Vec<Huge>,
    /// Contents found first in a huge page not yet known to be split:
    /// (huge page, key), looked up once the scan is done.
    huge_firsts: Vec<(u32, u64)>,
    /// See [`ScanOptions::ksm_only`].
    ksm_only: bool,
}

impl State {
    fn new(zero_pfn: Option<u64>, page: u64, total_bytes: u64, cpu_limit: Option<u32>) -> State {
        State {
            zero_pfn,
            all_flags: true,
            buf: vec![0u8; BATCH_PAGES * page as usize],
            entries: vec![0u64; BATCH_PAGES],
            pfns: Vec::new(),
            pfn_idx: Vec::new(),
            flags: Vec::new(),
            keys: Vec::with_capacity(BATCH_PAGES),
            ranges: Vec::new(),
            range_pages: Vec::new(),
            done_bytes: 0,
            total_bytes,
            bytes_read: 0,
            ksm_frames: HashMap::new(),
            ksm_mappings: 0,
            cpu_limit: cpu_limit.filter(|&c| (1..100).contains(&c)),
            huge_area: false,
            page_huge: vec![0; BATCH_PAGES],
            cur_huge: None,
            huge: Vec::new(),
            huge_firsts: Vec::new(),
            ksm_only: false,
        }
    }

    /// The huge pages read, once every process is done.
    fn huge_scan(&self, contents: &Contents, processes: &[ProcessScan]) -> HugeScan {
        let p = contents.params();
        let zero_copies = contents.zero_pages + contents.split_zero_pages;
        let zero_splits = zero_copies >= 2 || p.use_zero_pages;
        let mut split: Vec<bool> = self
            .huge
            .iter()
            .map(|h| h.repeat || (h.zero && zero_splits))
            .collect();
        for &(i, key) in &self.huge_firsts {
            if contents.copies(key).is_some_and(|c| c >= 2) {
                split[i as usize] = true;
            }
        }
        HugeScan {
            huge_pages: self.huge.len() as u64,
            pages: processes.iter().map(|p| p.huge_pages).sum(),
            zero_pages: processes.iter().map(|p| p.huge_zero_pages).sum(),
            split_huge_pages: split.iter().filter(|&&s| s).count() as u64,
        }
    }

    fn process(
        &mut self,
        root: &Root,
        t: &Target,
        contents: &mut Contents,
        mut kflags: Option<&mut KpageFlags>,
        ps: &mut ProcessScan,
        progress: &mut dyn FnMut(Progress),
    ) -> io::Result<()> {
        let page = contents.params().page_size;
        let pm = Pagemap::open(root, t.pid, page)?;
        self.all_flags = t.ksm_pages_possible || self.zero_pfn.is_none() || self.ksm_only;
        for a in &t.areas {
            self.huge_area = a.anon_huge_kib > 0;
            self.cur_huge = None;
            if a.rss_kib == 0 {
                // Nothing in RAM: skip reading its pagemap page by page.
                ps.skipped.not_present_pages += a.len() / page;
                continue;
            }
            let mut addr = a.start;
            while addr < a.end {
                let batch_start = Instant::now();
                let n = (((a.end - addr) / page) as usize).min(BATCH_PAGES);
                let got = pm.read(addr, &mut self.entries[..n])?;
                if got < n {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                let before = ps.pages;
                self.batch(t, addr, n, page, contents, kflags.as_deref_mut(), ps)?;
                self.done_bytes += (ps.pages - before) * page;
                progress(Progress {
                    pid: t.pid,
                    done_bytes: self.done_bytes.min(self.total_bytes),
                    total_bytes: self.total_bytes,
                });
                if let Some(limit) = self.cpu_limit {
                    // Busy for `took`, then idle so that busy/(busy+idle) = limit.
                    let took = batch_start.elapsed();
                    std::thread::sleep(took * (100 - limit) / limit);
                }
                addr += n as u64 * page;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn batch(
        &mut self,
        t: &Target,
        addr: u64,
        n: usize,
        page: u64,
        contents: &mut Contents,
        kflags: Option<&mut KpageFlags>,
        ps: &mut ProcessScan,
    ) -> io::Result<()> {
        // Is each frame a KSM page, or the zero page? (Not only the frames
        // pagemap calls shared: it reports one mapping of a KSM page
        // as exclusive.)
        self.pfns.clear();
        self.pfn_idx.clear();
        for (i, &raw) in self.entries[..n].iter().enumerate() {
            let e = PageEntry(raw);
            if e.present() && !e.file_or_shared() {
                if let Some(pfn) = e.pfn() {
                    self.pfns.push(pfn);
                    self.pfn_idx.push(i);
                }
            }
        }
        if let Some(kflags) = kflags.filter(|_| self.all_flags || self.huge_area) {
            kflags.read_many(&self.pfns, &mut self.flags)?;
        } else {
            let z = self.zero_pfn;
            self.flags.clear();
            self.flags.extend(self.pfns.iter().map(|&p| {
                if Some(p) == z {
                    1 << KPF_ZERO_PAGE
                } else {
                    0
                }
            }));
        }
        self.page_huge[..n].fill(0);
        for (k, &i) in self.pfn_idx.iter().enumerate() {
            let f = self.flags[k];
            let pfn = self.pfns[k];
            if has_flag(f, KPF_THP) && !has_flag(f, KPF_KSM) && !has_flag(f, KPF_ZERO_PAGE) {
                // The same huge page as the frame before, or a new one.
                let h = match self.cur_huge {
                    Some((h, last)) if pfn == last + 1 && !has_flag(f, KPF_COMPOUND_HEAD) => h,
                    _ => {
                        self.huge.push(Huge::default());
                        (self.huge.len() - 1) as u32
                    }
                };
                self.cur_huge = Some((h, pfn));
                self.page_huge[i] = h + 1;
            } else {
                self.cur_huge = None;
            }
            if has_flag(f, KPF_ZERO_PAGE) {
                // Mark: not to be read.
                self.entries[i] = 0;
                ps.skipped.zero_page_mappings += 1;
            } else if has_flag(f, KPF_KSM) {
                ps.ksm_mapped_pages += 1;
                self.ksm_mappings += 1;
                let bit = t.group.map_or(0, |g| 1u64 << (g & 63));
                *self.ksm_frames.entry(self.pfns[k]).or_insert(0) |= bit;
            }
        }
        if self.ksm_only {
            ps.pages += self.pfns.len() as u64;
            return Ok(());
        }
        // Runs of present anonymous pages to read.
        self.ranges.clear();
        self.range_pages.clear();
        let mut zero_marked = 0u64;
        for i in 0..n {
            let e = PageEntry(self.entries[i]);
            if self.entries[i] == 0 {
                zero_marked += 1;
                continue;
            }
            if !e.present() {
                if e.swapped() {
                    ps.skipped.swapped_pages += 1;
                } else {
                    ps.skipped.not_present_pages += 1;
                }
                continue;
            }
            if e.file_or_shared() {
                ps.skipped.file_pages += 1;
                continue;
            }
            let a = addr + i as u64 * page;
            match self.ranges.last_mut() {
                Some((start, len)) if *start + *len as u64 == a => *len += page as usize,
                _ => {
                    self.ranges.push((a, page as usize));
                    self.range_pages.push(i);
                }
            }
        }
        // Entries zeroed above were either the zero page (counted) or not
        // present with no flags at all (counted here).
        ps.skipped.not_present_pages += zero_marked.saturating_sub(
            self.pfn_idx
                .iter()
                .filter(|&&i| self.entries[i] == 0)
                .count() as u64,
        );
        // Read the runs, resuming after a page that fails.
        let mut r = 0;
        let mut skip_bytes = 0usize;
        while r < self.ranges.len() {
            let (mut start, mut len) = self.ranges[r];
            start += skip_bytes as u64;
            len -= skip_bytes;
            let mut iov = vec![(start, len)];
            iov.extend_from_slice(&self.ranges[r + 1..]);
            let got = match read_process_memory(t.pid, &mut self.buf, &iov) {
                Ok(g) => g,
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => 0,
                Err(e) => return Err(e),
            };
            self.bytes_read += got as u64;
            // Hash whole pages read, in range order.
            let mut off = 0usize;
            for (j, &(_, l)) in iov.iter().enumerate() {
                let whole = l.min(got.saturating_sub(off)) / page as usize;
                // The batch index of the run's first page.
                let first = self.range_pages[r + j]
                    + if j == 0 {
                        skip_bytes / page as usize
                    } else {
                        0
                    };
                // Hash the run, then add it: the table's cache misses of
                // consecutive pages overlap instead of waiting on hashing.
                let run = &self.buf[off..off + whole * page as usize];
                self.keys.clear();
                self.keys
                    .extend(run.chunks_exact(page as usize).map(|d| contents.key(d)));
                for (p, &key) in self.keys.iter().enumerate() {
                    ps.pages += 1;
                    let huge = self.page_huge[first + p].checked_sub(1);
                    let added = match (huge, key) {
                        (Some(h), None) => {
                            ps.huge_pages += 1;
                            ps.huge_zero_pages += 1;
                            self.huge[h as usize].zero = true;
                            contents.add_huge_zero()
                        }
                        (Some(h), Some(k)) => {
                            ps.huge_pages += 1;
                            let (added, seen) = contents.add_hash_seen(t.group, k);
                            let hp = &mut self.huge[h as usize];
                            if seen {
                                hp.repeat = true;
                            } else if !hp.repeat && !hp.zero && added != Added::Dropped {
                                self.huge_firsts.push((h, k));
                            }
                            added
                        }
                        (None, key) => contents.add_key(t.group, key),
                    };
                    match added {
                        Added::Zero { saved } => {
                            ps.zero_pages += 1;
                            ps.saved_zero_pages += u64::from(saved);
                        }
                        Added::Kept { saved } => ps.saved_kept_pages += u64::from(saved),
                        Added::Dropped => {}
                    }
                }
                if whole * page as usize == l {
                    off += l;
                    continue;
                }
                // Page `whole` of iov[j] failed: count it, go on after it.
                ps.skipped.unreadable_pages += 1;
                r += j;
                skip_bytes = if j == 0 { skip_bytes } else { 0 } + (whole + 1) * page as usize;
                if skip_bytes >= self.ranges[r].1 {
                    r += 1;
                    skip_bytes = 0;
                }
                break;
            }
            if off == iov.iter().map(|x| x.1).sum::<usize>() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::table::Params;
    use crate::kernel::mapping::Mapping;
    use crate::kernel::sys;

    /// Pages that vanish between pagemap and the read are counted as
    /// unreadable, and the read goes on after each of them.
    #[test]
    fn reads_around_pages_that_vanished() {
        let root = Root::default();
        let Ok(mut kflags) = KpageFlags::open(&root) else {
            eprintln!("SKIPPED: /proc/kpageflags cannot be opened (not root)");
            return;
        };
        let page = sys::page_size();
        let ps_ = page as usize;
        let mut m = Mapping::anonymous(8 * ps_).unwrap();
        let base = m.as_ptr() as u64;
        for (i, p) in m.as_mut_slice().chunks_mut(ps_).enumerate() {
            p.fill(1 + (i % 2) as u8);
        }
        // Unmap pages 2, 3 and 6; pagemap said all 8 present (no frame
        // numbers, as for a reader without CAP_SYS_ADMIN).
        for i in [2u64, 3, 6] {
            // SAFETY: unmapping pages of our own mapping that nothing reads
            // any more (the mapping is leaked below, never unmapped again).
            unsafe { libc::munmap((base + i * page) as *mut libc::c_void, ps_) };
        }
        let mut st = State::new(None, page, 0, None);
        st.all_flags = false;
        for e in st.entries[..8].iter_mut() {
            *e = 1 << 63;
        }
        let mut contents = Contents::new(
            Params {
                page_size: page,
                max_page_sharing: 256,
                use_zero_pages: false,
                sample: 1,
                split_maps_zero_pages: true,
            },
            false,
        );
        let t = Target {
            pid: std::process::id(),
            group: None,
            areas: Vec::new(),
            ksm_pages_possible: false,
        };
        let mut ps = ProcessScan::default();
        st.batch(&t, base, 8, page, &mut contents, Some(&mut kflags), &mut ps)
            .unwrap();
        std::mem::forget(m);
        assert_eq!(ps.pages, 5);
        assert_eq!(ps.skipped.unreadable_pages, 3);
        // Pages 0, 4 hold 1s; 1, 5, 7 hold 2s: two contents.
        assert_eq!(contents.distinct_kept(), 2);
        assert_eq!(contents.project().saved_pages, 1 + 2);
    }
}
