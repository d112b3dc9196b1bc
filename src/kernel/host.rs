//! Facts about the host that decide what KSM can do here: NUMA nodes,
//! whether this is a virtual machine, whether `/sys` can be written.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::root::Root;

/// The number of entries in a kernel list like `0-3,8,10-11` (the format
/// of `/sys/devices/system/node/online`); `None` when it is malformed.
pub fn parse_list_count(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    let mut n: u64 = 0;
    for part in text.split(',') {
        let count = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                b.checked_sub(a)?.checked_add(1)?
            }
            None => {
                part.trim().parse::<u64>().ok()?;
                1
            }
        };
        n = n.checked_add(count)?;
    }
    Some(n)
}

/// How many NUMA nodes are online; `None` where the kernel does not say
/// (built without NUMA, or a test tree without the file).
pub fn numa_nodes(root: &Root) -> Option<u64> {
    let text = fs::read_to_string(root.join("/sys/devices/system/node/online")).ok()?;
    parse_list_count(&text)
}

/// Whether the text of `/proc/cpuinfo` shows the `hypervisor` CPU flag
/// (set by every hypervisor on x86: this kernel runs in a virtual machine).
pub fn cpuinfo_has_hypervisor(text: &str) -> bool {
    text.lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|w| w == "hypervisor"))
}

/// Whether this kernel runs in a virtual machine: the `hypervisor` CPU flag,
/// or `/sys/hypervisor/type` (Xen, and other architectures). `false` when
/// neither says so.
pub fn in_virtual_machine(root: &Root) -> bool {
    if fs::read_to_string(root.join("/proc/cpuinfo")).is_ok_and(|t| cpuinfo_has_hypervisor(&t)) {
        return true;
    }
    fs::read_to_string(root.join("/sys/hypervisor/type")).is_ok_and(|t| !t.trim().is_empty())
}

/// Whether this process may write `path` (access(2) with `W_OK`: false on
/// a read-only mount, as `/sys` is in most containers, and for non-root
/// users). `None` when the file does not exist.
pub fn writable(path: &Path) -> Option<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid NUL-terminated path; access only reads it.
    let r = unsafe { libc::access(c.as_ptr(), libc::W_OK) };
    if r == 0 {
        return Some(true);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => None,
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list_count("0\n"), Some(1));
        assert_eq!(parse_list_count("0-3"), Some(4));
        assert_eq!(parse_list_count("0-3,8,10-11\n"), Some(7));
        assert_eq!(parse_list_count(""), Some(0));
        for bad in ["x", "3-1", "1-", "-", "0-18446744073709551615", "1,,2"] {
            assert_eq!(parse_list_count(bad), None, "{bad}");
        }
    }

    #[test]
    fn hypervisor_flag() {
        assert!(cpuinfo_has_hypervisor(
            "processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n"
        ));
        assert!(!cpuinfo_has_hypervisor("flags\t\t: fpu vme lahf_lm\n"));
        assert!(!cpuinfo_has_hypervisor("model name\t: hypervisor\n"));
        assert!(!cpuinfo_has_hypervisor(""));
    }

    #[test]
    fn writability() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("run");
        assert_eq!(writable(&f), None);
        fs::write(&f, "0").unwrap();
        assert_eq!(writable(&f), Some(true));
    }
}
