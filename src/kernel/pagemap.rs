//! Where a process's pages are, and what they hold, without touching them:
//! `/proc/PID/pagemap` (present, swapped, file page, page frame number),
//! `/proc/kpageflags` (is a frame a KSM page, the zero page) and
//! `process_vm_readv` to copy the contents of pages already in RAM.
//!
//! Reading `pagemap` never faults a page in. `process_vm_readv` would (it
//! pins the pages it reads, faulting in missing ones and swapping in
//! swapped ones), so callers give it only ranges that `pagemap` has just
//! reported present. Page frame numbers are only shown to a process with
//! `CAP_SYS_ADMIN`; `kpageflags` is root's only.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::root::Root;

/// One `pagemap` entry (64 bits, see the kernel's
/// Documentation/admin-guide/mm/pagemap.rst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageEntry(pub u64);

impl PageEntry {
    /// Bit 63: the page is in RAM.
    pub fn present(self) -> bool {
        self.0 >> 63 & 1 == 1
    }
    /// Bit 62: the page is in swap.
    pub fn swapped(self) -> bool {
        self.0 >> 62 & 1 == 1
    }
    /// Bit 61: a file page or shared anonymous memory (KSM merges neither).
    pub fn file_or_shared(self) -> bool {
        self.0 >> 61 & 1 == 1
    }
    /// Bit 56: mapped by this process only (no other mapping of the frame).
    pub fn exclusive(self) -> bool {
        self.0 >> 56 & 1 == 1
    }
    /// Bits 0-54 of a present page: its page frame number (0 when the
    /// reader lacks `CAP_SYS_ADMIN`).
    pub fn pfn(self) -> Option<u64> {
        let pfn = self.0 & ((1 << 55) - 1);
        (self.present() && pfn != 0).then_some(pfn)
    }
}

/// `/proc/kpageflags` bit: the frame is a KSM page.
pub const KPF_KSM: u32 = 21;
/// `/proc/kpageflags` bit: the first frame of a compound page.
pub const KPF_COMPOUND_HEAD: u32 = 15;
/// `/proc/kpageflags` bit: a frame of a compound page after its first.
pub const KPF_COMPOUND_TAIL: u32 = 16;
/// `/proc/kpageflags` bit: the frame is part of a transparent huge page
/// (anonymous or page-cache large folio).
pub const KPF_THP: u32 = 22;
/// `/proc/kpageflags` bit: the frame is the kernel's shared zero page.
pub const KPF_ZERO_PAGE: u32 = 24;

/// An open `/proc/PID/pagemap`.
pub struct Pagemap {
    file: File,
    page_size: u64,
}

impl Pagemap {
    /// Open the pagemap of `pid` under `root`.
    pub fn open(root: &Root, pid: u32, page_size: u64) -> io::Result<Pagemap> {
        let file = File::open(root.join(format!("/proc/{pid}/pagemap")))?;
        Ok(Pagemap { file, page_size })
    }

    /// Read the entries of the pages from address `start` into `out`
    /// (one per element; `out.len()` pages). Returns how many were read
    /// (fewer at the end of the address space).
    pub fn read(&self, start: u64, out: &mut [u64]) -> io::Result<usize> {
        // SAFETY: u64 has no invalid bit patterns and the byte view covers
        // exactly the slice's memory.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, std::mem::size_of_val(out))
        };
        let offset = start / self.page_size * 8;
        let mut n = 0;
        while n < bytes.len() {
            match self.file.read_at(&mut bytes[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n / 8)
    }
}

/// The frame of the kernel's shared zero page, found by reading a fresh
/// page of our own (a read fault maps the zero page) and looking it up in
/// our pagemap. `None` when that does not work (no PFNs without
/// `CAP_SYS_ADMIN`, or a huge zero page).
pub fn zero_pfn(root: &Root, page_size: u64) -> Option<u64> {
    let m = crate::kernel::mapping::Mapping::anonymous(page_size as usize).ok()?;
    m.advise(libc::MADV_NOHUGEPAGE).ok()?;
    let base = m.as_ptr() as u64;
    // SAFETY: reading one byte of our own mapping.
    std::hint::black_box(unsafe { std::ptr::read_volatile(m.as_ptr()) });
    let pm = Pagemap::open(root, std::process::id(), page_size).ok()?;
    let mut e = [0u64; 1];
    pm.read(base, &mut e).ok()?;
    PageEntry(e[0]).pfn()
}

/// An open `/proc/kpageflags` (root only).
pub struct KpageFlags {
    file: File,
    buf: Vec<u64>,
}

impl KpageFlags {
    /// Open `/proc/kpageflags` under `root`.
    pub fn open(root: &Root) -> io::Result<KpageFlags> {
        Ok(KpageFlags {
            file: File::open(root.join("/proc/kpageflags"))?,
            buf: Vec::new(),
        })
    }

    /// The flags of every frame in `pfns` (any order), written to
    /// `flags` in the same order; frames close to each other are read
    /// with one `pread`.
    pub fn read_many(&mut self, pfns: &[u64], flags: &mut Vec<u64>) -> io::Result<()> {
        flags.clear();
        flags.resize(pfns.len(), 0);
        let mut order: Vec<usize> = (0..pfns.len()).collect();
        order.sort_unstable_by_key(|&i| pfns[i]);
        let mut i = 0;
        while i < order.len() {
            // One read covers the frames up to 512 entries (4 KiB) apart.
            let first = pfns[order[i]];
            let mut j = i + 1;
            while j < order.len() && pfns[order[j]] - first < 512 {
                j += 1;
            }
            let last = pfns[order[j - 1]];
            let count = (last - first + 1) as usize;
            self.buf.clear();
            self.buf.resize(count, 0);
            // SAFETY: as in Pagemap::read.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(self.buf.as_mut_ptr() as *mut u8, count * 8)
            };
            let n = self.file.read_at(bytes, first * 8)?;
            for &k in &order[i..j] {
                let idx = (pfns[k] - first) as usize;
                if (idx + 1) * 8 <= n {
                    flags[k] = self.buf[idx];
                }
            }
            i = j;
        }
        Ok(())
    }
}

/// Whether a `kpageflags` value has bit `bit` set.
pub fn has_flag(flags: u64, bit: u32) -> bool {
    flags >> bit & 1 == 1
}

/// The most iovecs one `process_vm_readv` takes (`IOV_MAX`).
pub const IOV_MAX: usize = 1024;

/// Copy memory of process `pid`: the remote ranges `(address, length)`,
/// in order, into `local` (which must be at least their total length).
/// Returns the number of bytes copied: fewer than asked means the range
/// holding the next byte could not be read (unmapped meanwhile), and
/// everything before it was. At most [`IOV_MAX`] ranges per call.
///
/// Only give ranges whose pages are present (see [`Pagemap`]): the kernel
/// faults missing pages in to read them.
pub fn read_process_memory(
    pid: u32,
    local: &mut [u8],
    remote: &[(u64, usize)],
) -> io::Result<usize> {
    let total: usize = remote.iter().map(|r| r.1).sum();
    if total > local.len() || remote.len() > IOV_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "process_vm_readv: more remote bytes or ranges than the buffer takes",
        ));
    }
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    let local_iov = libc::iovec {
        iov_base: local.as_mut_ptr() as *mut libc::c_void,
        iov_len: total,
    };
    let remote_iov: Vec<libc::iovec> = remote
        .iter()
        .map(|&(addr, len)| libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    loop {
        // SAFETY: the local iovec covers `total` bytes of `local`, which
        // we borrow mutably; the remote addresses are only read by the
        // kernel, in the other process.
        let n = unsafe {
            libc::process_vm_readv(
                pid,
                &local_iov,
                1,
                remote_iov.as_ptr(),
                remote_iov.len() as libc::c_ulong,
                0,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mapping::Mapping;
    use crate::kernel::sys;

    #[test]
    fn entry_bits() {
        let e = PageEntry(1 << 63 | 1 << 56 | 0x1234);
        assert!(e.present() && e.exclusive() && !e.swapped() && !e.file_or_shared());
        assert_eq!(e.pfn(), Some(0x1234));
        let swapped = PageEntry(1 << 62 | 0x55);
        assert!(!swapped.present() && swapped.swapped());
        assert_eq!(swapped.pfn(), None);
        assert_eq!(
            PageEntry(1 << 63).pfn(),
            None,
            "pfn hidden without CAP_SYS_ADMIN"
        );
        assert!(PageEntry(1 << 61 | 1 << 63).file_or_shared());
        assert!(has_flag(1 << KPF_KSM, KPF_KSM));
        assert!(!has_flag(1 << KPF_ZERO_PAGE, KPF_KSM));
    }

    #[test]
    fn own_pages_present_and_read_back() {
        let page = sys::page_size() as usize;
        let mut m = Mapping::anonymous(8 * page).unwrap();
        let base = m.as_mut_slice().as_ptr() as u64;
        // Touch pages 0, 2 and 3 only.
        for i in [0, 2, 3] {
            m.as_mut_slice()[i * page] = 7 + i as u8;
        }
        let pm = Pagemap::open(&Root::default(), std::process::id(), page as u64).unwrap();
        let mut e = [0u64; 8];
        assert_eq!(pm.read(base, &mut e).unwrap(), 8);
        let present: Vec<bool> = e.iter().map(|&x| PageEntry(x).present()).collect();
        assert_eq!(
            present,
            [true, false, true, true, false, false, false, false]
        );
        let mut buf = vec![0u8; 3 * page];
        let ranges = [(base, page), (base + 2 * page as u64, 2 * page)];
        let n = read_process_memory(std::process::id(), &mut buf, &ranges).unwrap();
        assert_eq!(n, 3 * page);
        assert_eq!((buf[0], buf[page], buf[2 * page]), (7, 9, 10));
        // Reading did not fault in the untouched pages.
        pm.read(base, &mut e).unwrap();
        assert!(!PageEntry(e[1]).present());
    }
}
