//! `/proc/PID/smaps` summed by the kinds of memory KSM cares about, and
//! the other per-process signs of memory KSM can never merge (VFIO).
//!
//! KSM merges only private anonymous memory: the kernel refuses
//! `MADV_MERGEABLE` silently on shared mappings (memfd, shm, vhost-user
//! backends) and on hugetlbfs, and pages pinned for a device (VFIO) fail
//! its page-count check. `smaps` shows each mapping's permissions (`s` =
//! shared) and its `VmFlags` (`mg` mergeable, `ht` hugetlb, `lo` locked).

use std::fs;

use serde::Serialize;

use crate::root::Root;

/// One process's mappings summed by kind, KiB (`Size`, the mapped size,
/// except `mergeable_rss_kib`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SmapsSummary {
    /// Writable shared mappings (`rw-s`), hugetlb ones excluded.
    pub shared_writable_kib: u64,
    /// hugetlbfs mappings (`VmFlags: ht`).
    pub hugetlb_kib: u64,
    /// Locked mappings (`VmFlags: lo`: mlock, QEMU `mem-lock=on`).
    pub locked_kib: u64,
    /// Mappings opted in to KSM (`VmFlags: mg`): their size...
    pub mergeable_kib: u64,
    /// ...and how much of it is resident (what ksmd walks)...
    pub mergeable_rss_kib: u64,
    /// ...and how much of that sits in transparent huge pages
    /// (`AnonHugePages`): KSM splits such a huge page to merge a page of it.
    pub mergeable_anon_huge_kib: u64,
}

#[derive(Default)]
struct Current {
    shared_writable: bool,
    size: u64,
    rss: u64,
    anon_huge: u64,
    flags_seen: bool,
}

/// Whether a line starts a mapping: `start-end perms offset dev inode [path]`.
fn mapping_header(line: &str) -> Option<&str> {
    let mut w = line.split_whitespace();
    let range = w.next()?;
    let perms = w.next()?;
    let (a, b) = range.split_once('-')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit());
    (hex(a) && hex(b) && perms.len() == 4).then_some(perms)
}

/// Parse the text of `/proc/PID/smaps`. Lines it does not know are
/// skipped; a mapping without `VmFlags` (kernels before 3.8) counts only
/// as shared or not.
pub fn parse(text: &str) -> SmapsSummary {
    let mut sum = SmapsSummary::default();
    let mut cur: Option<Current> = None;
    let kib = |rest: &str| -> u64 {
        rest.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let finish = |cur: &Option<Current>, sum: &mut SmapsSummary| {
        if let Some(c) = cur {
            if c.shared_writable && !c.flags_seen {
                sum.shared_writable_kib = sum.shared_writable_kib.saturating_add(c.size);
            }
        }
    };
    for line in text.lines() {
        if let Some(perms) = mapping_header(line) {
            finish(&cur, &mut sum);
            let p = perms.as_bytes();
            cur = Some(Current {
                shared_writable: p[1] == b'w' && p[3] == b's',
                ..Default::default()
            });
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if let Some(rest) = line.strip_prefix("Size:") {
            c.size = kib(rest);
        } else if let Some(rest) = line.strip_prefix("Rss:") {
            c.rss = kib(rest);
        } else if let Some(rest) = line.strip_prefix("AnonHugePages:") {
            c.anon_huge = kib(rest);
        } else if let Some(rest) = line.strip_prefix("VmFlags:") {
            c.flags_seen = true;
            let flags: Vec<&str> = rest.split_whitespace().collect();
            let has = |f: &str| flags.contains(&f);
            let add = |field: &mut u64, v: u64| *field = field.saturating_add(v);
            if has("ht") {
                add(&mut sum.hugetlb_kib, c.size);
            } else if c.shared_writable {
                add(&mut sum.shared_writable_kib, c.size);
            }
            if has("lo") {
                add(&mut sum.locked_kib, c.size);
            }
            if has("mg") {
                add(&mut sum.mergeable_kib, c.size);
                add(&mut sum.mergeable_rss_kib, c.rss);
                add(&mut sum.mergeable_anon_huge_kib, c.anon_huge);
            }
        }
    }
    finish(&cur, &mut sum);
    sum
}

/// Read and sum `/proc/PID/smaps`; `None` when the process is gone or the
/// file cannot be read (other users' processes need root).
pub fn read(root: &Root, pid: u32) -> Option<SmapsSummary> {
    fs::read_to_string(root.join(format!("/proc/{pid}/smaps")))
        .ok()
        .map(|t| parse(&t))
}

/// Whether a process holds a VFIO device open (`/proc/PID/fd/*` pointing
/// into `/dev/vfio/`): its guest memory is pinned for the device, and KSM
/// cannot merge pinned pages.
pub fn uses_vfio(root: &Root, pid: u32) -> bool {
    let Ok(dir) = fs::read_dir(root.join(format!("/proc/{pid}/fd"))) else {
        return false;
    };
    dir.flatten()
        .any(|e| fs::read_link(e.path()).is_ok_and(|t| t.starts_with("/dev/vfio/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55f35dad9000-55f35dadb000 r--p 00000000 fe:00 247282                     /usr/bin/head
Size:                  8 kB
Rss:                   8 kB
Locked:                0 kB
VmFlags: rd mr mw me
7f0000000000-7f0040000000 rw-p 00000000 00:00 0
Size:            1048576 kB
Rss:              524288 kB
AnonHugePages:    262144 kB
VmFlags: rd wr mr mw me ac mg
7f1000000000-7f1080000000 rw-s 00000000 00:01 1234                       /memfd:pc.ram (deleted)
Size:            2097152 kB
Rss:             2097152 kB
VmFlags: rd wr sh mr mw me ms
7f2000000000-7f2040000000 rw-s 00000000 00:10 99                         /dev/hugepages/vm1
Size:            1048576 kB
Rss:                   0 kB
AnonHugePages:      2048 kB
VmFlags: rd wr sh mr mw me ms de ht
7f3000000000-7f3000100000 rw-p 00000000 00:00 0
Size:               1024 kB
Rss:                1024 kB
Locked:             1024 kB
VmFlags: rd wr mr mw me lo ac mg
";

    #[test]
    fn sums_by_kind() {
        let s = parse(SMAPS);
        assert_eq!(s.shared_writable_kib, 2097152, "hugetlb not counted twice");
        assert_eq!(s.hugetlb_kib, 1048576);
        assert_eq!(s.locked_kib, 1024);
        assert_eq!(s.mergeable_kib, 1048576 + 1024);
        assert_eq!(s.mergeable_rss_kib, 524288 + 1024);
        assert_eq!(s.mergeable_anon_huge_kib, 262144, "mergeable areas only");
    }

    #[test]
    fn old_kernel_without_vmflags() {
        let s = parse(
            "7f1000000000-7f1080000000 rw-s 00000000 00:01 1234 /dev/shm/x\nSize: 4096 kB\n\
             7f2000000000-7f2000001000 r--s 00000000 00:01 1 /x\nSize: 4 kB\n",
        );
        assert_eq!(s.shared_writable_kib, 4096);
        assert_eq!(s.mergeable_kib, 0);
    }

    #[test]
    fn garbage_never_panics() {
        for t in [
            "",
            "\n\n",
            "Size: 5 kB\nVmFlags: mg\n",
            "zz-yy rw-s\nSize: x kB\n",
            "1-2 rw\nSize: 1 kB\n",
            "1-2 rw-s 0 0 0\nSize: 18446744073709551615 kB\n1-3 rw-s 0 0 0\nSize: 5 kB\n",
        ] {
            let _ = parse(t);
        }
        let s =
            parse("1-2 rw-s 0 0 0\nSize: 18446744073709551615 kB\n3-4 rw-s 0 0 0\nSize: 5 kB\n");
        assert_eq!(s.shared_writable_kib, u64::MAX, "saturates");
    }

    #[test]
    fn vfio_fds() {
        let t = tempfile::tempdir().unwrap();
        let fd = t.path().join("proc/7/fd");
        fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).unwrap();
        let root = Root::new(t.path());
        assert!(!uses_vfio(&root, 7));
        std::os::unix::fs::symlink("/dev/vfio/12", fd.join("5")).unwrap();
        assert!(uses_vfio(&root, 7));
        assert!(!uses_vfio(&root, 8), "a vanished process");
    }
}
