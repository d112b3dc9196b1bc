//! The memory areas of a process, one by one, from `/proc/PID/smaps`
//! ([`crate::kernel::smaps`] sums them by kind instead): where they are,
//! whether KSM may merge their pages (`mg` in `VmFlags`), and how much of
//! them is in RAM.
//!
//! `ksmctl estimate` reads this first to know which address ranges to look
//! at; the pages themselves are found through [`crate::kernel::pagemap`].

use std::path::Path;

use crate::error::{Error, Result};
use crate::root::Root;

/// One memory area (VMA) of a process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `rwxp` permissions as printed (`p` private, `s` shared).
    pub perms: String,
    /// Inode of the mapped file; 0 for anonymous memory.
    pub inode: u64,
    /// The mapped file or `[heap]`, `[stack]`...; empty for anonymous memory.
    pub name: String,
    /// `Rss:` in KiB.
    pub rss_kib: u64,
    /// `Anonymous:` in KiB (private pages that are not file pages).
    pub anonymous_kib: u64,
    /// `AnonHugePages:` in KiB (anonymous memory mapped by PMD-sized
    /// transparent huge pages).
    pub anon_huge_kib: u64,
    /// The two-letter `VmFlags` codes (`rd wr mr mw me ac mg`...).
    pub flags: Vec<[u8; 2]>,
}

impl Vma {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the area is empty (never for a real VMA).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a `VmFlags` code is set.
    pub fn has_flag(&self, code: &str) -> bool {
        self.flags.iter().any(|f| f == code.as_bytes())
    }

    /// KSM may merge its pages: `madvise(MADV_MERGEABLE)`, or the whole
    /// process opted in with `prctl(PR_SET_MEMORY_MERGE)` (`mg`).
    pub fn mergeable(&self) -> bool {
        self.has_flag("mg")
    }

    /// Private memory that KSM could be told to merge (what `prctl`,
    /// `ksmctl exec` or systemd's `MemoryKSM=` opt in): readable, private,
    /// and none of the kinds KSM refuses (the kernel's
    /// `vma_ksm_compatible`: shared, PFN or I/O mappings, hugetlb, mixed
    /// maps, `VM_DONTEXPAND`). Only its anonymous pages count (file pages
    /// are skipped page by page).
    pub fn ksm_compatible(&self) -> bool {
        let b = self.perms.as_bytes();
        let private = b.get(3) == Some(&b'p');
        let readable = b.first() == Some(&b'r');
        private
            && readable
            && !["sh", "ms", "pf", "io", "ht", "mm", "dc"]
                .iter()
                .any(|f| self.has_flag(f))
    }
}

/// Parse the text of `/proc/PID/smaps`.
pub fn parse(text: &str) -> std::result::Result<Vec<Vma>, String> {
    let mut out: Vec<Vma> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let addr = |s: &str| u64::from_str_radix(s, 16);
            let (Ok(start), Ok(end)) = (addr(a), addr(b)) else {
                return Err(format!("line {}: bad address range {first:?}", n + 1));
            };
            // start-end perms offset dev inode [name]
            let mut it = line.splitn(6, char::is_whitespace).skip(1);
            let perms = it.next().unwrap_or("").to_string();
            let _offset = it.next();
            let _dev = it.next();
            let inode = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let name = it.next().unwrap_or("").trim().to_string();
            out.push(Vma {
                start,
                end,
                perms,
                inode,
                name,
                ..Vma::default()
            });
            continue;
        }
        let Some(vma) = out.last_mut() else {
            return Err(format!("line {}: a field before any area: {line:?}", n + 1));
        };
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            vma.flags = rest
                .split_whitespace()
                .filter_map(|f| <[u8; 2]>::try_from(f.as_bytes()).ok())
                .collect();
        } else if let Some(v) = line.strip_prefix("Rss:") {
            vma.rss_kib = kib(v);
        } else if let Some(v) = line.strip_prefix("Anonymous:") {
            vma.anonymous_kib = kib(v);
        } else if let Some(v) = line.strip_prefix("AnonHugePages:") {
            vma.anon_huge_kib = kib(v);
        }
    }
    Ok(out)
}

fn kib(v: &str) -> u64 {
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Read and parse `/proc/PID/smaps` under `root`. A process that is gone
/// gives `Error::Read` with `NotFound`/`ESRCH`.
pub fn read(root: &Root, pid: u32) -> Result<Vec<Vma>> {
    let path = root.join(format!("/proc/{pid}/smaps"));
    read_path(&path)
}

fn read_path(path: &Path) -> Result<Vec<Vma>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        value: e,
        expected: "smaps areas",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                   8 kB
Anonymous:             8 kB
VmFlags: rd wr mr mw me ac
7f0000000000-7f0001000000 rw-p 00000000 00:00 0 
Size:              16384 kB
KernelPageSize:        4 kB
Rss:               16384 kB
Anonymous:         16384 kB
AnonHugePages:     14336 kB
KSM:                   0 kB
VmFlags: rd wr mr mw me ac mg
7f0002000000-7f0002001000 r--p 00000000 fd:01 1234                       /usr/lib/libc.so.6
Rss:                   4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
7f0003000000-7f0003100000 rw-s 00000000 00:01 99                         /memfd:guest (deleted)
Rss:                1024 kB
VmFlags: rd wr sh mr mw me ms
";

    #[test]
    fn parses_areas_and_flags() {
        let v = parse(SMAPS).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].name, "[heap]");
        assert_eq!(v[0].rss_kib, 8);
        assert!(!v[0].mergeable());
        assert!(v[0].ksm_compatible());
        assert_eq!(v[1].start, 0x7f00_0000_0000);
        assert_eq!(v[1].len(), 16 << 20);
        assert_eq!(v[1].name, "");
        assert_eq!(v[1].inode, 0);
        assert!(v[1].mergeable());
        assert_eq!(v[1].anonymous_kib, 16384);
        assert_eq!((v[0].anon_huge_kib, v[1].anon_huge_kib), (0, 14336));
        assert_eq!(v[2].inode, 1234);
        assert_eq!(v[2].name, "/usr/lib/libc.so.6");
        assert!(v[2].ksm_compatible(), "private file mapping: its COW pages");
        assert_eq!(v[3].name, "/memfd:guest (deleted)");
        assert!(!v[3].ksm_compatible(), "shared");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("Rss: 4 kB\n").is_err());
        assert!(parse("zz-10 rw-p 0 0 0\n").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
