//! Memory that opts in to KSM: the probe processes of the tests and the
//! workers of `ksm-bench` use it.

use std::io;
use std::ptr::NonNull;

/// `madvise` advice numbers (stable kernel ABI).
pub const MADV_MERGEABLE: libc::c_int = 12;
pub const MADV_UNMERGEABLE: libc::c_int = 13;

/// What backs a [`Mapping`]. Only `Private` can be merged by KSM: the
/// kernel accepts `MADV_MERGEABLE` on the others and ignores it (the
/// probes of `ksmctl doctor`'s tests show that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// MAP_PRIVATE | MAP_ANONYMOUS.
    Private,
    /// MAP_SHARED | MAP_ANONYMOUS (shmem, like a memfd).
    Shared,
    /// MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB (hugetlbfs pages).
    HugeTlb,
}

/// An anonymous mapping, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned memory like a Vec<u8>.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Map `len` bytes of private anonymous memory (zero-filled, not yet
    /// touched).
    pub fn anonymous(len: usize) -> io::Result<Mapping> {
        Mapping::with_backing(len, Backing::Private)
    }

    /// Map `len` bytes of anonymous memory backed as asked (`HugeTlb`
    /// needs `len` to be a multiple of the huge page size and huge pages
    /// reserved in `/proc/sys/vm/nr_hugepages`).
    pub fn with_backing(len: usize, backing: Backing) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh anonymous mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                match backing {
                    Backing::Private => libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    Backing::Shared => libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    Backing::HugeTlb => libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                },
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p as *mut u8).expect("mmap returned NULL"),
            len,
        })
    }

    /// `madvise(MADV_MERGEABLE)` on the whole mapping.
    pub fn merge(&self, on: bool) -> io::Result<()> {
        let advice = if on { MADV_MERGEABLE } else { MADV_UNMERGEABLE };
        // SAFETY: the range is exactly our mapping.
        let r = unsafe { libc::madvise(self.ptr.as_ptr() as *mut libc::c_void, self.len, advice) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Any other `madvise` advice on the whole mapping (e.g.
    /// `MADV_NOHUGEPAGE`).
    pub fn advise(&self, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly our mapping.
        let r = unsafe { libc::madvise(self.ptr.as_ptr() as *mut libc::c_void, self.len, advice) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Lock the mapping in memory (`mlock`).
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY: the range is exactly our mapping.
        let r = unsafe { libc::mlock(self.ptr.as_ptr() as *const libc::c_void, self.len) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The memory as a byte slice.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: we own len readable and writable bytes at ptr.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty mappings cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping exactly once.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}

/// Fill every page of `buf` with the same non-zero content derived from
/// `seed` (pages of one seed are identical to each other).
pub fn fill_identical(buf: &mut [u8], page_size: usize, seed: u64) {
    for page in buf.chunks_mut(page_size) {
        for (i, b) in page.iter_mut().enumerate() {
            *b = (seed as u8).wrapping_add(i as u8) | 1;
        }
    }
}
