//! The rail against KSM's one dangerous moment: unmerging gives every
//! saved page back at once, so it must fit in what the host can still
//! take (MemAvailable plus free swap), or the OOM killer picks a guest.
//!
//! One rule for `ksmctl unmerge`, `ksmctl set --unmerge`, `ksmctl doctor`
//! (finding `unmerge-risk`) and the metric `ksm_unmerge_headroom_bytes`.

use serde::Serialize;

use crate::human;
use crate::kernel::ksm::KsmState;
use crate::kernel::meminfo::MemInfo;

/// What an unmerge would give back and what the host can take, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Headroom {
    /// Memory saved now: `(pages_sharing + ksm_zero_pages) * page size`.
    pub saved_bytes: u64,
    /// MemAvailable (MemFree + Buffers + Cached on kernels before 3.14).
    pub available_bytes: u64,
    /// SwapFree.
    pub swap_free_bytes: u64,
    /// Whether `available_bytes` is MemAvailable (false: the older estimate).
    #[serde(skip)]
    pub mem_available: bool,
}

impl Headroom {
    /// From a reading of KSM and of `/proc/meminfo`.
    pub fn new(state: &KsmState, mem: &MemInfo, page_size: u64) -> Headroom {
        Headroom {
            saved_bytes: state.saved_bytes(page_size),
            available_bytes: mem
                .mem_available
                .unwrap_or_else(|| mem.classic_free())
                .saturating_mul(1024),
            swap_free_bytes: mem.swap_free.saturating_mul(1024),
            mem_available: mem.mem_available.is_some(),
        }
    }

    /// MemAvailable + SwapFree - saved: what would be left after an
    /// unmerge (negative: the host cannot take it).
    pub fn headroom_bytes(&self) -> i128 {
        i128::from(self.available_bytes) + i128::from(self.swap_free_bytes)
            - i128::from(self.saved_bytes)
    }

    /// Whether unmerging everything fits.
    pub fn fits(&self) -> bool {
        self.headroom_bytes() >= 0
    }

    /// The numbers in one line, e.g. for a refusal.
    pub fn describe(&self) -> String {
        format!(
            "unmerging would give back {} (saved now), but the host can take only {} \
             ({} {} + {} free swap)",
            human::ubytes(self.saved_bytes),
            human::ubytes(self.available_bytes.saturating_add(self.swap_free_bytes)),
            human::ubytes(self.available_bytes),
            if self.mem_available {
                "MemAvailable"
            } else {
                "free (MemFree + Buffers + Cached)"
            },
            human::ubytes(self.swap_free_bytes),
        )
    }
}

/// The refusal of an unmerge that does not fit, `None` when it fits.
pub fn refuse_unmerge(h: &Headroom) -> Option<String> {
    (!h.fits()).then(|| {
        format!(
            "refusing to unmerge: {}; the out-of-memory killer would have to make up the \
             difference of {}. Free memory first (stop or migrate guests), or add --force \
             to unmerge anyway",
            h.describe(),
            human::bytes(-h.headroom_bytes())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(avail: Option<u64>, free: u64, swap_free: u64) -> MemInfo {
        MemInfo {
            mem_total: 16 << 20,
            mem_free: free,
            mem_available: avail,
            buffers: 0,
            cached: 0,
            swap_total: swap_free,
            swap_free,
        }
    }

    fn ksm(sharing: u64, zero: i64) -> KsmState {
        KsmState {
            pages_sharing: Some(sharing),
            ksm_zero_pages: Some(zero),
            ..Default::default()
        }
    }

    #[test]
    fn fits_when_available_plus_swap_covers_saved() {
        // 1 GiB saved (262144 pages of 4 KiB), 768 MiB available, 512 MiB swap.
        let h = Headroom::new(&ksm(262_144, 0), &mem(Some(768 << 10), 0, 512 << 10), 4096);
        assert_eq!(h.saved_bytes, 1 << 30);
        assert_eq!(h.headroom_bytes(), 256 << 20);
        assert!(h.fits());
        assert_eq!(refuse_unmerge(&h), None);
    }

    #[test]
    fn refuses_with_the_numbers() {
        // 2 GiB saved (zero pages count), 1 GiB available, no swap.
        let h = Headroom::new(&ksm(262_144, 262_144), &mem(Some(1 << 20), 0, 0), 4096);
        assert_eq!(h.headroom_bytes(), -(1 << 30));
        let msg = refuse_unmerge(&h).unwrap();
        assert!(msg.contains("2.00 GiB (saved now)"), "{msg}");
        assert!(
            msg.contains("only 1.00 GiB (1.00 GiB MemAvailable + 0 B free swap)"),
            "{msg}"
        );
        assert!(msg.contains("--force"), "{msg}");
    }

    #[test]
    fn exactly_equal_fits_and_old_kernels_use_free() {
        let h = Headroom::new(&ksm(256, 0), &mem(Some(1024), 0, 0), 4096);
        assert_eq!(h.headroom_bytes(), 0);
        assert!(h.fits());
        let h = Headroom::new(&ksm(256, -5), &mem(None, 512, 0), 4096);
        assert_eq!(h.available_bytes, 512 * 1024);
        assert!(!h.fits());
        assert!(h.describe().contains("MemFree + Buffers + Cached"));
    }
}
