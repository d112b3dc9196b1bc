//! The content table: one entry per distinct page content (a 64-bit hash),
//! how many copies of it were found, and the arithmetic that turns the
//! copies into what KSM would do with them. Pure: fed page contents (or
//! hashes), tested with numbers.
//!
//! # Hash and collisions
//!
//! A page's content is keyed by its 64-bit XXH3 hash. Two different
//! contents with the same hash would be counted as one (one page too many
//! saved). For N distinct contents the chance that any two collide is at
//! most N²/2⁶⁵: 3·10⁻⁸ for 4 GiB of distinct 4 KiB pages (2²⁰), 2·10⁻³
//! for 1 TiB (2²⁸); and a collision changes the estimate by one page.
//!
//! # Attribution
//!
//! KSM keeps one copy of each content (one KSM page per `max_page_sharing`
//! mappings) and frees the others. The copy kept is credited to the
//! process where the content was found first (processes are scanned in
//! PID order, oldest first); every other copy is a page saved, credited to
//! the process that holds it. The per-process figures add up to the total.
//!
//! # Sampling
//!
//! With `sample = K > 1` only contents whose hash is 0 mod K are kept, so
//! all copies of a content are kept or dropped together; the kept figures
//! are multiplied by K. All-zero pages are always counted exactly (one
//! content with many copies would make the sample's error large). The
//! standard error of the saved pages is `sqrt(K (K-1) Σ s²)` over the kept
//! contents, `s` being the pages one content saves.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

/// Bytes the kernel spends per page it tracks (`sizeof(struct
/// ksm_rmap_item)` on 64-bit), used in `general_profit`.
pub const RMAP_ITEM_BYTES: u64 = 64;

/// Pages saved when `n` identical pages are merged: KSM keeps one KSM page
/// per `max_page_sharing` mappings (`pages_shared`), the other mappings
/// are `pages_sharing`. A lone page saves nothing.
pub fn saved_in_group(n: u64, max_page_sharing: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let m = max_page_sharing.max(2);
    n - n.div_ceil(m)
}

/// The key is already a hash: use it as it is.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Mix the high bits down: the low ones are 0 under sampling.
        self.0 = n ^ (n >> 29);
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// What KSM would do on this host: its settings that shape the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Params {
    pub page_size: u64,
    /// `max_page_sharing` (256 by default; at least 2).
    pub max_page_sharing: u64,
    /// `use_zero_pages`: empty pages map the kernel's zero page.
    pub use_zero_pages: bool,
    /// Keep one content in `sample` (1: all).
    pub sample: u64,
    /// This kernel maps the all-zero subpages of a huge page it splits to
    /// the shared zero page (see [`crate::kernel::thp`]): the all-zero
    /// pages found in huge pages are freed by the split KSM causes, not
    /// merged by KSM.
    pub split_maps_zero_pages: bool,
}

/// The hash of a page's content: 64-bit XXH3 (`twox-hash` picks its AVX2
/// or SSE2 code when the program starts, not when it is built).
pub fn hash_page(data: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(data)
}

/// Whether every byte is 0. Or-ing 64-byte blocks without stopping early
/// lets the compiler use vector instructions (a byte-by-byte `all` with an
/// early exit does not, and took half of the scan's own CPU time on the
/// zero pages of ksm-bench's workload).
pub fn is_zero(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    let mut acc = [0u8; 64];
    for b in &mut blocks {
        for (a, x) in acc.iter_mut().zip(b) {
            *a |= *x;
        }
    }
    acc.iter().chain(blocks.remainder()).all(|&b| b == 0)
}

/// The result of adding one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// An all-zero page; `saved`: KSM would free it.
    Zero { saved: bool },
    /// A page kept by the sample; `saved`: KSM would free it.
    Kept { saved: bool },
    /// Dropped by the sample.
    Dropped,
}

/// Every content seen, and the counts that do not need the table.
pub struct Contents {
    params: Params,
    /// Contents found once so far: the key only (8 bytes an entry). Most
    /// contents are never found twice, so this keeps the table near 8-16
    /// bytes per distinct content with the hash table's spare room.
    once: HashSet<u64, BuildHasherDefault<IdHasher>>,
    /// Copies of each content found at least twice (16 bytes an entry
    /// with the key and padding).
    map: Map<u32>,
    /// Per content, the groups (bit i = group i, up to 64) holding it;
    /// only for `--matrix`.
    groups: Option<Map<u64>>,
    zero_hash: u64,
    /// All-zero pages KSM itself would merge (not in a huge page that its
    /// split maps to the zero page).
    pub zero_pages: u64,
    /// All-zero subpages of huge pages: mapped to the zero page when KSM
    /// splits their huge page ([`Params::split_maps_zero_pages`]).
    pub split_zero_pages: u64,
    /// Non-zero pages (kept or not).
    pub other_pages: u64,
    /// Non-zero pages kept by the sample.
    pub kept_pages: u64,
}

impl Contents {
    /// An empty table; `matrix`: remember which groups hold each content.
    pub fn new(params: Params, matrix: bool) -> Contents {
        Contents {
            params: Params {
                max_page_sharing: params.max_page_sharing.max(2),
                sample: params.sample.max(1),
                ..params
            },
            once: HashSet::default(),
            map: Map::default(),
            groups: matrix.then(Map::default),
            zero_hash: hash_page(&vec![0u8; params.page_size as usize]),
            zero_pages: 0,
            split_zero_pages: 0,
            other_pages: 0,
            kept_pages: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Add one page's content, found in a process of matrix group `group`
    /// (< 64). The result says whether this copy is one KSM would free:
    /// the attribution rule.
    pub fn add_page(&mut self, group: Option<u8>, data: &[u8]) -> Added {
        let key = self.key(data);
        self.add_key(group, key)
    }

    /// A page's key: its hash, or `None` for an all-zero page. The
    /// scan hashes a run of pages first and then adds their keys
    /// ([`Contents::add_key`]), so that the table's cache misses of
    /// consecutive pages overlap.
    pub fn key(&self, data: &[u8]) -> Option<u64> {
        let h = hash_page(data);
        if h == self.zero_hash && is_zero(data) {
            return None;
        }
        Some(h)
    }

    /// Add a page by its [`Contents::key`].
    pub fn add_key(&mut self, group: Option<u8>, key: Option<u64>) -> Added {
        match key {
            None => self.add_zero(),
            Some(h) => self.add_hash(group, h),
        }
    }

    /// Add an all-zero page.
    pub fn add_zero(&mut self) -> Added {
        let i = self.zero_pages;
        self.zero_pages += 1;
        let saved = self.params.use_zero_pages || i % self.params.max_page_sharing != 0;
        Added::Zero { saved }
    }

    /// Add an all-zero subpage of a huge page. On a kernel whose splits
    /// map all-zero subpages to the zero page it is freed by the split
    /// (always saved, in no KSM counter); otherwise KSM merges it like any
    /// all-zero page.
    pub fn add_huge_zero(&mut self) -> Added {
        if !self.params.split_maps_zero_pages {
            return self.add_zero();
        }
        self.split_zero_pages += 1;
        Added::Zero { saved: true }
    }

    /// How many copies of a kept content were found (`None`: not kept by
    /// the sample, or never added).
    pub fn copies(&self, h: u64) -> Option<u64> {
        if let Some(&c) = self.map.get(&h) {
            Some(u64::from(c))
        } else {
            self.once.contains(&h).then_some(1)
        }
    }

    /// Add a non-zero page by its hash.
    pub fn add_hash(&mut self, group: Option<u8>, h: u64) -> Added {
        self.add_hash_seen(group, h).0
    }

    /// [`Contents::add_hash`], and whether the content was found before
    /// (false for a content the sample drops).
    pub fn add_hash_seen(&mut self, group: Option<u8>, h: u64) -> (Added, bool) {
        self.other_pages += 1;
        if self.params.sample > 1 && h % self.params.sample != 0 {
            return (Added::Dropped, false);
        }
        self.kept_pages += 1;
        let i = if let Some(count) = self.map.get_mut(&h) {
            let i = u64::from(*count);
            *count = count.saturating_add(1);
            i
        } else if self.once.insert(h) {
            // First copy (one probe of `once`, not a failed remove first).
            0
        } else {
            self.once.remove(&h);
            self.map.insert(h, 2);
            1
        };
        if let (Some(groups), Some(g)) = (self.groups.as_mut(), group) {
            *groups.entry(h).or_insert(0) |= 1u64 << (g & 63);
        }
        (
            Added::Kept {
                saved: i % self.params.max_page_sharing != 0,
            },
            i > 0,
        )
    }

    /// Distinct non-zero contents kept.
    pub fn distinct_kept(&self) -> u64 {
        (self.once.len() + self.map.len()) as u64
    }

    /// Bytes the table takes (entries and the hash table's spare room).
    pub fn memory_bytes(&self) -> u64 {
        let per = (std::mem::size_of::<(u64, u32)>() + 1) as u64;
        let groups = self.groups.as_ref().map_or(0, |g| g.capacity() as u64 * 17);
        self.once.capacity() as u64 * 9 + self.map.capacity() as u64 * per + groups
    }

    /// The projection from everything added.
    pub fn project(&self) -> Projection {
        let p = self.params;
        let m = p.max_page_sharing;
        let k = p.sample as f64;
        let (mut shared, mut sharing, mut dup_pages, mut dup_contents, mut sq) =
            (0u64, 0u64, 0u64, 0u64, 0f64);
        for &count in self.map.values() {
            let c = u64::from(count);
            if c >= 2 {
                let s = saved_in_group(c, m);
                sharing += s;
                shared += c - s;
                dup_pages += c;
                dup_contents += 1;
                sq += (s as f64) * (s as f64);
            }
        }
        let scale = |n: u64| (n as f64 * k).round() as u64;
        let z = self.zero_pages;
        // A lone all-zero page splits nothing by itself (it has no copy to
        // merge with, unless use_zero_pages): then none is freed by a split.
        let split = if self.split_zero_pages + z >= 2 || p.use_zero_pages {
            self.split_zero_pages
        } else {
            0
        };
        let z = z + self.split_zero_pages - split;
        let (zero_shared, zero_sharing, ksm_zero) = if p.use_zero_pages {
            (0, 0, z)
        } else if z >= 2 {
            let s = saved_in_group(z, m);
            (z - s, s, 0)
        } else {
            (0, 0, 0)
        };
        let pages_sharing = scale(sharing) + zero_sharing;
        let pages_shared = scale(shared) + zero_shared;
        let counted = pages_sharing + ksm_zero;
        let pages = self.zero_pages + self.split_zero_pages + self.other_pages;
        let all_zero = z + split;
        // The pages the split maps to the zero page leave KSM's tracking
        // (their rmap items are freed on its next pass).
        let rmap_items = pages - split;
        Projection {
            pages,
            zero_pages: all_zero,
            distinct_contents: scale(self.distinct_kept()) + u64::from(all_zero > 0),
            duplicate_pages: scale(dup_pages) + if all_zero >= 2 { all_zero } else { 0 },
            duplicated_contents: scale(dup_contents) + u64::from(all_zero >= 2),
            pages_shared,
            pages_sharing,
            ksm_zero_pages: ksm_zero,
            counted_pages: counted,
            split_zero_pages: split,
            saved_pages: counted + split,
            saved_stderr_pages: (k * (k - 1.0) * sq).sqrt(),
            rmap_items,
            general_profit_bytes: general_profit(counted, rmap_items, p.page_size),
            profit_bytes: general_profit(counted + split, rmap_items, p.page_size),
        }
    }

    /// What merging only within each group would save, and what merging
    /// across groups adds, in pages (scaled by the sample): a content
    /// found `c` times in `g` groups saves `c - g` within them and `g - 1`
    /// more across them. Non-zero contents only; `max_page_sharing` is not
    /// applied (a bound the caller states). `None` without `matrix`.
    pub fn within_groups(&self) -> Option<(u64, u64)> {
        let groups = self.groups.as_ref()?;
        let (mut within, mut across) = (0u64, 0u64);
        for (h, &count) in &self.map {
            let c = u64::from(count);
            let g = groups
                .get(h)
                .map_or(1, |m| u64::from(m.count_ones().max(1)));
            within += c.saturating_sub(g);
            across += g.min(c) - 1;
        }
        let k = self.params.sample;
        Some((within * k, across * k))
    }

    /// Distinct contents in common between every pair of groups
    /// (`n` groups; `[a][b]`, the diagonal: a group's own contents),
    /// multiplied by the sample factor. `None` without `matrix`.
    pub fn matrix(&self, n: usize) -> Option<Vec<Vec<u64>>> {
        let groups = self.groups.as_ref()?;
        let n = n.min(64);
        let mut out = vec![vec![0u64; n]; n];
        for &mask in groups.values() {
            let members: Vec<usize> = (0..n).filter(|&i| mask >> i & 1 == 1).collect();
            for &a in &members {
                for &b in &members {
                    out[a][b] += 1;
                }
            }
        }
        let k = self.params.sample;
        for row in &mut out {
            for v in row.iter_mut() {
                *v *= k;
            }
        }
        Some(out)
    }
}

/// KSM's `general_profit`: bytes saved minus the kernel's bookkeeping
/// (one rmap item per page it tracks).
pub fn general_profit(saved_pages: u64, rmap_items: u64, page_size: u64) -> i64 {
    (saved_pages as i128 * page_size as i128 - rmap_items as i128 * RMAP_ITEM_BYTES as i128)
        .clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// What KSM would reach on the scanned pages, in its own counters' terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Projection {
    /// Pages scanned (present, anonymous, not the zero page): what KSM
    /// would track.
    pub pages: u64,
    /// All-zero pages among them.
    pub zero_pages: u64,
    /// Distinct contents (zero included).
    pub distinct_contents: u64,
    /// Pages whose content is found at least twice (zero included).
    pub duplicate_pages: u64,
    /// Contents found at least twice.
    pub duplicated_contents: u64,
    /// Projected `pages_shared`.
    pub pages_shared: u64,
    /// Projected `pages_sharing`.
    pub pages_sharing: u64,
    /// Projected `ksm_zero_pages` (with `use_zero_pages=1`).
    pub ksm_zero_pages: u64,
    /// Pages saved that KSM's counters will show: `pages_sharing +
    /// ksm_zero_pages`.
    pub counted_pages: u64,
    /// All-zero subpages of huge pages that KSM's splits map to the shared
    /// zero page: freed, but in none of KSM's counters (0 on kernels whose
    /// splits keep them, and without huge pages).
    pub split_zero_pages: u64,
    /// Pages saved in all: `counted_pages + split_zero_pages`.
    pub saved_pages: u64,
    /// Standard error of `saved_pages` from sampling (0 without).
    pub saved_stderr_pages: f64,
    /// Projected `ksm_rmap_items`.
    pub rmap_items: u64,
    /// Projected `general_profit` (the kernel's formula: counted pages
    /// only).
    pub general_profit_bytes: i64,
    /// What merging really gains: all pages saved (split ones included)
    /// minus the rmap items.
    pub profit_bytes: i64,
}

/// Up to this many bytes of selected memory (the areas' sizes), `sample`
/// 0 keeps every content: the table of so few pages stays small, and a
/// few contents repeated many times (which a sample can miss whole) are
/// counted.
pub const AUTO_FULL_BELOW: u64 = 1 << 30;
/// Above it, `sample` 0 keeps one content in this many.
pub const AUTO_SAMPLE: u64 = 16;

/// The sample factor `sample` 0 chooses for `bytes` of selected memory.
pub fn auto_sample(bytes: u64) -> u64 {
    if bytes <= AUTO_FULL_BELOW {
        1
    } else {
        AUTO_SAMPLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(m: u64, zero: bool, k: u64) -> Params {
        Params {
            page_size: 4096,
            max_page_sharing: m,
            use_zero_pages: zero,
            sample: k,
            split_maps_zero_pages: true,
        }
    }

    #[test]
    fn duplicates_zeros_and_uniques() {
        let mut t = Contents::new(params(256, false, 1), false);
        let mut page = vec![0u8; 4096];
        for _ in 0..10 {
            t.add_page(None, &page);
        }
        page[0] = 1;
        for _ in 0..5 {
            t.add_page(None, &page);
        }
        for i in 0..3u8 {
            page[1] = i + 2;
            t.add_page(None, &page);
        }
        let p = t.project();
        assert_eq!(p.pages, 18);
        assert_eq!(p.zero_pages, 10);
        assert_eq!(p.distinct_contents, 5);
        assert_eq!(p.duplicate_pages, 15);
        assert_eq!(p.duplicated_contents, 2);
        assert_eq!(
            (p.pages_shared, p.pages_sharing, p.ksm_zero_pages),
            (2, 13, 0)
        );
        assert_eq!(p.saved_pages, 13);
        assert_eq!(p.rmap_items, 18);
        assert_eq!(p.general_profit_bytes, 13 * 4096 - 18 * 64);
        assert_eq!(p.saved_stderr_pages, 0.0);
    }

    #[test]
    fn zero_pages_setting() {
        let mut t = Contents::new(params(256, true, 1), false);
        for _ in 0..10 {
            assert_eq!(t.add_zero(), Added::Zero { saved: true });
        }
        let p = t.project();
        assert_eq!(
            (p.pages_shared, p.pages_sharing, p.ksm_zero_pages),
            (0, 0, 10)
        );
        assert_eq!(p.saved_pages, 10);
    }

    #[test]
    fn zero_subpages_of_huge_pages() {
        for (uzp, split) in [(false, true), (true, true), (false, false)] {
            let mut t = Contents::new(
                Params {
                    split_maps_zero_pages: split,
                    ..params(256, uzp, 1)
                },
                false,
            );
            for _ in 0..1000 {
                t.add_huge_zero();
            }
            for _ in 0..300 {
                t.add_zero();
            }
            t.add_hash(None, 7);
            t.add_hash(None, 7);
            let p = t.project();
            assert_eq!(p.pages, 1302);
            assert_eq!(p.zero_pages, 1300);
            match (uzp, split) {
                (false, true) => {
                    // 300 zero pages merge: 2 KSM pages, 298 sharers; +1 of content 7.
                    assert_eq!((p.pages_sharing, p.ksm_zero_pages), (299, 0));
                    assert_eq!((p.split_zero_pages, p.saved_pages), (1000, 1299));
                    assert_eq!(p.rmap_items, 302);
                }
                (true, true) => {
                    assert_eq!((p.pages_sharing, p.ksm_zero_pages), (1, 300));
                    assert_eq!((p.split_zero_pages, p.saved_pages), (1000, 1301));
                }
                _ => {
                    // 1300 zero pages merge: 6 KSM pages.
                    assert_eq!((p.pages_sharing, p.split_zero_pages), (1295, 0));
                    assert_eq!(p.saved_pages, 1295);
                    assert_eq!(p.rmap_items, 1302);
                }
            }
            assert_eq!(p.counted_pages, p.pages_sharing + p.ksm_zero_pages);
            assert_eq!(
                p.profit_bytes - p.general_profit_bytes,
                p.split_zero_pages as i64 * 4096
            );
            assert_eq!(t.copies(7), Some(2));
            assert_eq!(t.copies(8), None);
        }
        // A lone all-zero subpage splits nothing.
        let mut t = Contents::new(params(256, false, 1), false);
        t.add_huge_zero();
        let p = t.project();
        assert_eq!((p.split_zero_pages, p.saved_pages, p.zero_pages), (0, 0, 1));
    }

    #[test]
    fn max_page_sharing_splits_groups() {
        // 1000 copies, max_page_sharing 256: 4 KSM pages, 996 sharers.
        let mut t = Contents::new(params(256, false, 1), false);
        let mut credited = 0;
        for _ in 0..1000 {
            if t.add_hash(None, 0xabcd) == (Added::Kept { saved: true }) {
                credited += 1;
            }
        }
        let p = t.project();
        assert_eq!((p.pages_shared, p.pages_sharing), (4, 996));
        assert_eq!(credited, 996, "the per-process credits add up");
        assert_eq!(p.saved_pages, saved_in_group(1000, 256));
    }

    #[test]
    fn sampling_scales_and_bounds() {
        // 4000 contents of 3 copies each: 8000 pages saved.
        let k = 16;
        let mut full = Contents::new(params(256, false, 1), false);
        let mut sampled = Contents::new(params(256, false, k), false);
        for c in 0..4000u64 {
            let h = hash_page(&c.to_le_bytes());
            for _ in 0..3 {
                full.add_hash(None, h);
                sampled.add_hash(None, h);
            }
        }
        let f = full.project();
        let s = sampled.project();
        assert_eq!(f.saved_pages, 8000);
        let err = (s.saved_pages as f64 - 8000.0).abs();
        assert!(s.saved_stderr_pages > 0.0);
        assert!(err <= 4.0 * s.saved_stderr_pages, "{s:?}");
        assert!(sampled.distinct_kept() < 4000 / 8);
    }

    #[test]
    fn matrix_counts_contents_in_common() {
        let mut t = Contents::new(params(256, false, 1), true);
        // Content 1 in groups 0 and 1, content 2 in groups 1 and 2, content 3 in 0 only.
        for (h, g) in [(1u64, 0u8), (1, 1), (2, 1), (2, 2), (2, 2), (3, 0)] {
            t.add_hash(Some(g), h);
        }
        let m = t.matrix(3).unwrap();
        assert_eq!(m, vec![vec![2, 1, 0], vec![1, 2, 1], vec![0, 1, 1]]);
        assert!(Contents::new(params(256, false, 1), false)
            .matrix(3)
            .is_none());
    }

    #[test]
    fn within_and_across_groups() {
        let mut t = Contents::new(params(256, false, 1), true);
        // Content 1: 3 copies in group 0 (2 saved within); content 2: in
        // groups 0, 1 and 2 once each (2 saved only across); content 3:
        // twice in 1 and once in 2 (1 within, 1 across); content 4 once.
        for (h, g) in [(1u64, 0u8), (1, 0), (1, 0), (2, 0), (2, 1), (2, 2)] {
            t.add_hash(Some(g), h);
        }
        for (h, g) in [(3u64, 1u8), (3, 1), (3, 2), (4, 0)] {
            t.add_hash(Some(g), h);
        }
        assert_eq!(t.within_groups(), Some((3, 3)));
        // Together they are everything KSM saves (before max_page_sharing).
        assert_eq!(t.project().saved_pages, 6);
        assert!(Contents::new(params(256, false, 1), false)
            .within_groups()
            .is_none());
    }

    #[test]
    fn hash_is_xxh3_64() {
        // Reference values of XXH3-64 (seed 0), also given by the
        // xxhash-rust crate used before: the contents and the sample a
        // content falls in do not depend on the implementation.
        assert_eq!(hash_page(b""), 0x2d06800538d394c2);
        assert_eq!(hash_page(&[0u8; 4096]), 0x93d76fe148c689ba);
        let p: Vec<u8> = (0..4096usize).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(hash_page(&p), 0xd7428746842be37e);
    }

    #[test]
    fn zero_check() {
        let mut p = vec![0u8; 4096];
        assert!(is_zero(&p));
        for i in [0, 63, 64, 2049, 4095] {
            p[i] = 1;
            assert!(!is_zero(&p), "byte {i}");
            p[i] = 0;
        }
        assert!(is_zero(&[0u8; 100]));
        assert!(!is_zero(&[0, 0, 0, 1]));
        assert!(is_zero(&[]));
    }

    #[test]
    fn profit_formula() {
        assert_eq!(general_profit(0, 10, 4096), -640);
        assert_eq!(general_profit(100, 1000, 4096), 409_600 - 64_000);
    }
}
