//! Processes in `/proc`: names, resident memory, CPU time and `ksm_stat`.
//!
//! A process can exit between listing `/proc` and reading its files; every
//! per-process reader returns `None` then, and callers skip it.

use std::fs;
use std::io;

use serde::Serialize;

use crate::root::Root;

/// The pids in `/proc` under the root, in ascending order.
pub fn pids(root: &Root) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    pids_into(root, &mut out)?;
    Ok(out)
}

/// The pids in `/proc` under the root, in ascending order, into `out`
/// (its allocation reused).
pub fn pids_into(root: &Root, out: &mut Vec<u32>) -> io::Result<()> {
    out.clear();
    let proc_dir = fs::File::open(root.join("/proc"))?;
    crate::kernel::sys::for_each_dir_entry(&proc_dir, |name| {
        if let Some(pid) = std::str::from_utf8(name).ok().and_then(|s| s.parse().ok()) {
            out.push(pid);
        }
    })?;
    out.sort_unstable();
    Ok(())
}

fn read_proc(root: &Root, pid: u32, file: &str) -> Option<String> {
    fs::read_to_string(root.join(format!("/proc/{pid}/{file}"))).ok()
}

/// The kernel's 15-byte name of the process (`/proc/PID/comm`).
pub fn comm(root: &Root, pid: u32) -> Option<String> {
    read_proc(root, pid, "comm").map(|s| s.trim_end_matches('\n').to_string())
}

/// The command line's arguments (`/proc/PID/cmdline`).
pub fn cmdline(root: &Root, pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(root.join(format!("/proc/{pid}/cmdline"))).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// The program a process runs (`/proc/PID/exe`); for a script, its
/// interpreter (`/usr/bin/bash` for the original ksmtuned).
pub fn exe(root: &Root, pid: u32) -> Option<std::path::PathBuf> {
    fs::read_link(root.join(format!("/proc/{pid}/exe"))).ok()
}

/// VmRSS from the text of `/proc/PID/status`, in KiB (kernel threads have
/// none: 0).
pub fn parse_status_rss_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A `kB` field of the text of `/proc/PID/status` (`RssAnon`, `VmRSS`...),
/// KiB; `None` when absent.
pub fn parse_status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Anonymous resident memory of a process (`RssAnon`, Linux 4.5+), KiB.
pub fn rss_anon_kib(root: &Root, pid: u32) -> Option<u64> {
    read_proc(root, pid, "status").and_then(|s| parse_status_field_kib(&s, "RssAnon"))
}

/// The systemd service a process runs in, from the text of
/// `/proc/PID/cgroup`: the last `*.service` component of its cgroup path
/// (cgroup v2's `0::` line, or v1's `name=systemd` hierarchy).
pub fn parse_cgroup_service(text: &str) -> Option<String> {
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })?;
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") && c.len() > ".service".len())
        .map(str::to_string)
}

/// The systemd service of a process (`None`: none, or gone).
pub fn systemd_service(root: &Root, pid: u32) -> Option<String> {
    read_proc(root, pid, "cgroup").and_then(|s| parse_cgroup_service(&s))
}

/// The resident set size of a process in KiB (`VmRSS`).
pub fn rss_kib(root: &Root, pid: u32) -> Option<u64> {
    read_proc(root, pid, "status").map(|s| parse_status_rss_kib(&s))
}

/// `Pss:` from the text of `/proc/PID/smaps_rollup`, in KiB. Kernel
/// threads (and zombies) have an empty file: 0, as `ps -o pss=` prints.
pub fn parse_smaps_rollup_pss_kib(text: &str) -> Option<u64> {
    if text.trim().is_empty() {
        return Some(0);
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The proportional set size of a process in KiB (`Pss` of
/// `/proc/PID/smaps_rollup`, Linux 4.14+): its private memory plus its
/// share of memory mapped by several processes. `Err` when the process
/// is gone (NotFound) or the file cannot be read: reading it needs
/// ptrace-read access to the process (root with CAP_SYS_PTRACE for
/// processes with capabilities the reader lacks).
pub fn pss_kib(root: &Root, pid: u32) -> io::Result<u64> {
    let path = root.join(format!("/proc/{pid}/smaps_rollup"));
    let text = fs::read_to_string(&path)?;
    parse_smaps_rollup_pss_kib(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no Pss: line", path.display()),
        )
    })
}

/// The fields of `/proc/PID/stat` the project uses; times in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// Process group.
    pub pgrp: u32,
    /// `utime + stime`: the process's own CPU time.
    pub cpu_ticks: u64,
    /// `cutime + cstime`: its waited-for children's.
    pub children_ticks: u64,
}

impl Stat {
    /// Parse the text of `/proc/PID/stat`. The name field can hold spaces
    /// and parentheses, so fields are counted from the last `)`.
    pub fn parse(stat: &str) -> Option<Stat> {
        let after = &stat[stat.rfind(')')? + 1..];
        let mut f = after.split_whitespace();
        // After ")": state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
        // cutime(13) cstime(14).
        let mut num = |skip: usize| f.nth(skip)?.parse::<u64>().ok();
        let pgrp = u32::try_from(num(2)?).ok()?;
        let utime = num(8)?;
        let stime = num(0)?;
        // Fuzzing found the overflow: no kernel writes such values, but a
        // reader must not panic on them.
        let cpu_ticks = utime.checked_add(stime)?;
        let children_ticks = match (num(0), num(0)) {
            (Some(a), Some(b)) => a.checked_add(b)?,
            _ => 0,
        };
        Some(Stat {
            pgrp,
            cpu_ticks,
            children_ticks,
        })
    }
}

/// `/proc/PID/stat`; `None` when the process is gone.
pub fn stat(root: &Root, pid: u32) -> Option<Stat> {
    read_proc(root, pid, "stat").and_then(|s| Stat::parse(&s))
}

/// CPU time (user + system) of a process in clock ticks.
pub fn cpu_ticks(root: &Root, pid: u32) -> Option<u64> {
    stat(root, pid).map(|s| s.cpu_ticks)
}

/// Whether a kernel process name is QEMU's, as classic ksmtuned counts it:
/// `^qemu(-(kvm|system-.+)|:.{1,11})$` (`qemu-kvm`, `qemu-system-x86`,
/// `qemu:guestname`).
pub fn is_qemu_comm(comm: &str) -> bool {
    let Some(rest) = comm.strip_prefix("qemu") else {
        return false;
    };
    if let Some(r) = rest.strip_prefix('-') {
        return r == "kvm" || r.strip_prefix("system-").is_some_and(|s| !s.is_empty());
    }
    if let Some(r) = rest.strip_prefix(':') {
        let n = r.chars().count();
        return (1..=11).contains(&n);
    }
    false
}

/// The pids whose `comm` equals `name`.
pub fn find_by_comm(root: &Root, name: &str) -> Vec<u32> {
    pids(root)
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| comm(root, p).as_deref() == Some(name))
        .collect()
}

/// Whether a process named `ksmtuned` is a daemon that writes KSM's
/// settings: the original bash script, or ours, but not ours running a
/// one-shot command (`retune`, `--check-config`), a `--dry-run`, or on
/// another root (`--root DIR`: a test tree, not this host's KSM).
pub fn is_tuning_daemon(root: &Root, pid: u32) -> bool {
    daemon_kind(root, pid) == Some(DaemonKind::Tuning)
}

/// What a process named `ksmtuned` is doing to this host's KSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonKind {
    /// Tuning: it writes KSM's settings.
    Tuning,
    /// `--dry-run`: it decides and logs, and writes nothing.
    DryRun,
}

/// The kind of `ksmtuned` daemon `pid` is for this host; `None` for a
/// one-shot command, a daemon on another root, or a vanished process.
pub fn daemon_kind(root: &Root, pid: u32) -> Option<DaemonKind> {
    let args = cmdline(root, pid)?;
    let mut words = args.iter().skip(1);
    while let Some(a) = words.next() {
        let other_root = match a.strip_prefix("--root=") {
            Some(r) => Some(r),
            None if a == "--root" => words.next().map(String::as_str),
            None => None,
        };
        if other_root.is_some_and(|r| std::path::Path::new(r) != std::path::Path::new("/")) {
            return None;
        }
    }
    let one_shot = args.iter().skip(1).any(|a| {
        a == "retune"
            || a == "--check-config"
            || a.starts_with("--check-config=")
            || a == "--help"
            || a == "-h"
            || a == "--version"
            || a == "-V"
    });
    if one_shot {
        None
    } else if args.iter().skip(1).any(|a| a == "--dry-run") {
        Some(DaemonKind::DryRun)
    } else {
        Some(DaemonKind::Tuning)
    }
}

/// Whether a process has memory opted in to KSM: `ksm_mergeable: yes` or
/// `ksm_merge_any: yes` (6.14+), pages ksmd already tracks, or (older
/// kernels) a QEMU process.
pub fn is_mergeable(root: &Root, pid: u32, comm: &str) -> bool {
    mergeable(root, pid, comm).unwrap_or_else(|_| is_qemu_comm(comm))
}

/// [`is_mergeable`], with `Err` when the process's `ksm_stat` could not be
/// read for a refusal (see [`try_ksm_stat`]): the caller decides what an
/// unknown process counts as.
pub fn mergeable(root: &Root, pid: u32, comm: &str) -> io::Result<bool> {
    Ok(match try_ksm_stat(root, pid)? {
        Some(s) if s.mergeable == Some(true) || s.merge_any == Some(true) || s.rmap_items > 0 => {
            true
        }
        Some(s) if s.mergeable.is_some() => false,
        _ => is_qemu_comm(comm),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KsmStat {
    pub rmap_items: u64,
    pub zero_pages: Option<i64>,
    pub merging_pages: Option<u64>,
    pub process_profit: Option<i64>,
    pub merge_any: Option<bool>,
    pub mergeable: Option<bool>,
}

impl KsmStat {
    /// Parse the file's text. Unknown lines are ignored (future kernels).
    pub fn parse(text: &str) -> std::result::Result<KsmStat, String> {
        let mut s = KsmStat::default();
        let mut have_rmap = false;
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(key), Some(val)) = (w.next(), w.next()) else {
                continue;
            };
            let key = key.trim_end_matches(':');
            let bad = || format!("{key}: {val:?} is not a valid value");
            let yes_no = || match val {
                "yes" => Ok(true),
                "no" => Ok(false),
                _ => Err(bad()),
            };
            match key {
                "ksm_rmap_items" => {
                    s.rmap_items = val.parse().map_err(|_| bad())?;
                    have_rmap = true;
                }
                "ksm_zero_pages" => s.zero_pages = Some(val.parse().map_err(|_| bad())?),
                "ksm_merging_pages" => s.merging_pages = Some(val.parse().map_err(|_| bad())?),
                "ksm_process_profit" => s.process_profit = Some(val.parse().map_err(|_| bad())?),
                "ksm_merge_any" => s.merge_any = Some(yes_no()?),
                "ksm_mergeable" => s.mergeable = Some(yes_no()?),
                _ => {}
            }
        }
        if !have_rmap {
            return Err("no ksm_rmap_items line".to_string());
        }
        Ok(s)
    }
}

/// Read `/proc/PID/ksm_stat`: `None` when the process is gone, the kernel
/// has no such file, or it cannot be read (it is 0400: root only).
///
/// The file grew over the kernel releases: Linux 6.1 (Debian 12's kernel)
/// writes only `ksm_rmap_items`; `ksm_merging_pages` and
/// `ksm_process_profit` came with 6.4, `ksm_zero_pages` with 6.6. The
/// merging pages of such a kernel are in `/proc/PID/ksm_merging_pages`
/// (Linux 5.19+), read here when `ksm_stat` lacks the line, so that every
/// reader sees them (without it `ksmctl ps` showed 0 for every process on
/// 6.1 and left out processes whose pages were merged).
pub fn ksm_stat(root: &Root, pid: u32) -> Option<KsmStat> {
    try_ksm_stat(root, pid).ok().flatten()
}

/// [`ksm_stat`], telling a refusal apart: `Err` when reading the file was
/// refused (EACCES, EPERM: another user's process without
/// `CAP_DAC_READ_SEARCH`, or a security policy denying that capability),
/// `Ok(None)` when the process is gone, the kernel has no such file, or
/// its text is not ksm_stat's.
pub fn try_ksm_stat(root: &Root, pid: u32) -> io::Result<Option<KsmStat>> {
    let text = match fs::read_to_string(root.join(format!("/proc/{pid}/ksm_stat"))) {
        Ok(t) => t,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            return Err(e)
        }
        Err(_) => return Ok(None),
    };
    let Ok(mut stat) = KsmStat::parse(&text) else {
        return Ok(None);
    };
    if stat.merging_pages.is_none() {
        stat.merging_pages = ksm_merging_pages(root, pid);
    }
    Ok(Some(stat))
}

/// `/proc/PID/ksm_merging_pages` (Linux 5.19+, one number, 0400 like
/// `ksm_stat`): `None` when absent, unreadable or malformed.
pub fn ksm_merging_pages(root: &Root, pid: u32) -> Option<u64> {
    read_proc(root, pid, "ksm_merging_pages").and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_names() {
        for yes in [
            "qemu-kvm",
            "qemu-system-x86",
            "qemu-system-aarch64"[..15].as_ref(),
            "qemu:guest",
            "qemu:a",
            "qemu:12345678901",
        ] {
            assert!(is_qemu_comm(yes), "{yes}");
        }
        for no in [
            "qemu",
            "qemu-",
            "qemu-kvm2",
            "qemu-system-",
            "qemu:",
            "qemu:123456789012",
            "qemu-img",
            "qemu-nbd",
            "xqemu-kvm",
            "kvm",
        ] {
            assert!(!is_qemu_comm(no), "{no}");
        }
    }

    #[test]
    fn smaps_rollup_pss() {
        let text =
            "55d0c8a00000-7ffc1a3f1000 ---p 00000000 00:00 0                          [rollup]\n\
Rss:              123456 kB\nPss:               98765 kB\nPss_Dirty:          4000 kB\n";
        assert_eq!(parse_smaps_rollup_pss_kib(text), Some(98765));
        assert_eq!(parse_smaps_rollup_pss_kib(""), Some(0));
        assert_eq!(parse_smaps_rollup_pss_kib("Rss: 5 kB\n"), None);
        // This process: a PSS, at most its RSS.
        let me = std::process::id();
        let pss = pss_kib(&Root::default(), me).unwrap();
        let rss = rss_kib(&Root::default(), me).unwrap();
        assert!(pss > 0 && pss <= rss, "pss {pss} rss {rss}");
        assert_eq!(
            pss_kib(&Root::default(), u32::MAX).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn stat_cpu() {
        let stat = "42 (a (weird) name) S 2 0 0 0 -1 69238880 0 0 0 0 17 25 0 0 39 19 1 0 4 0 0";
        assert_eq!(Stat::parse(stat).map(|s| s.cpu_ticks), Some(42));
        assert_eq!(Stat::parse("42 (x) S 1 2"), None);
        assert_eq!(Stat::parse("garbage"), None);
        let stat = "4242 (ksm tuned) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 25 3 4 20 0 1 0 5 0 0";
        assert_eq!(
            Stat::parse(stat),
            Some(Stat {
                pgrp: 4242,
                cpu_ticks: 42,
                children_ticks: 7
            })
        );
        // Found by AFL++: utime + stime overflowed (a panic in debug builds).
        let max = u64::MAX;
        let huge = format!("2 (x) S 0 0 0 0 -1 0 0 0 0 0 {max} {max} 0");
        assert_eq!(Stat::parse(&huge), None);
    }

    #[test]
    fn status_fields_and_cgroup_services() {
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nRssAnon:\t  1536 kB\n";
        assert_eq!(parse_status_field_kib(status, "RssAnon"), Some(1536));
        assert_eq!(parse_status_field_kib(status, "RssFile"), None);
        assert_eq!(
            parse_cgroup_service("0::/system.slice/postgresql@15-main.service\n").as_deref(),
            Some("postgresql@15-main.service")
        );
        assert_eq!(
            parse_cgroup_service("0::/system.slice/foo.service/payload\n").as_deref(),
            Some("foo.service")
        );
        assert_eq!(
            parse_cgroup_service("12:cpu:/x\n1:name=systemd:/system.slice/redis.service\n")
                .as_deref(),
            Some("redis.service")
        );
        assert_eq!(
            parse_cgroup_service("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(parse_cgroup_service("0::/\n"), None);
        assert_eq!(parse_cgroup_service(""), None);
    }

    #[test]
    fn status_rss() {
        assert_eq!(
            parse_status_rss_kib("Name:\tqemu\nVmRSS:\t  123456 kB\nThreads: 1\n"),
            123456
        );
        assert_eq!(parse_status_rss_kib("Name:\tkthreadd\n"), 0);
    }

    /// The getdents64 listing sees what `read_dir` sees, over several
    /// buffers' worth of entries.
    #[test]
    fn pids_list_every_numeric_entry() {
        let t = tempfile::tempdir().unwrap();
        let proc_ = t.path().join("proc");
        fs::create_dir_all(&proc_).unwrap();
        for pid in (1..3000u32).step_by(3) {
            fs::create_dir(proc_.join(pid.to_string())).unwrap();
        }
        for other in ["self", "meminfo", "12a", "-5", "4294967296", "0042"] {
            fs::write(proc_.join(other), "").unwrap();
        }
        let mut want: Vec<u32> = fs::read_dir(&proc_)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
            .collect();
        want.sort_unstable();
        assert_eq!(pids(&Root::new(t.path())).unwrap(), want);
        assert_eq!(want.len(), 1000 + 1, "1000 pids and 0042");
        // The real /proc: this process is in it.
        assert!(pids(&Root::default())
            .unwrap()
            .contains(&std::process::id()));
    }

    #[test]
    fn tuners_on_another_root_do_not_count() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let cases: &[(&str, bool)] = &[
            ("/bin/bash\0/usr/sbin/ksmtuned\0", true),
            ("ksmtuned\0", true),
            ("ksmtuned\0-v\0--root\0/\0", true),
            ("ksmtuned\0--root=/\0", true),
            ("ksmtuned\0--dry-run\0", false),
            ("ksmtuned\0retune\0", false),
            ("ksmtuned\0--root\0/tmp/fixture\0", false),
            ("ksmtuned\0--root=/tmp/fixture\0-v\0", false),
        ];
        for (i, (cmdline, tuner)) in cases.iter().enumerate() {
            let pid = 100 + i as u32;
            let d = t.path().join(format!("proc/{pid}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cmdline"), cmdline).unwrap();
            assert_eq!(is_tuning_daemon(&root, pid), *tuner, "{cmdline:?}");
        }
        assert!(!is_tuning_daemon(&root, 99), "a vanished process");
        assert_eq!(daemon_kind(&root, 104), Some(DaemonKind::DryRun));
        assert_eq!(daemon_kind(&root, 105), None);
    }

    #[test]
    fn ksm_stat_forms() {
        let new = "ksm_rmap_items 1026\nksm_zero_pages 0\nksm_merging_pages 1024\n\
ksm_process_profit 4128768\nksm_merge_any: no\nksm_mergeable: yes\n";
        let s = KsmStat::parse(new).unwrap();
        assert_eq!(s.rmap_items, 1026);
        assert_eq!(s.merging_pages, Some(1024));
        assert_eq!(s.process_profit, Some(4128768));
        assert_eq!(s.merge_any, Some(false));
        assert_eq!(s.mergeable, Some(true));
        let old = KsmStat::parse("ksm_rmap_items 5\n").unwrap();
        assert_eq!(old.merging_pages, None);
        let neg = KsmStat::parse("ksm_rmap_items 5\nksm_process_profit -320\n").unwrap();
        assert_eq!(neg.process_profit, Some(-320));
        assert!(KsmStat::parse("ksm_rmap_items x").is_err());
        assert!(KsmStat::parse("").is_err());
        assert!(KsmStat::parse("ksm_rmap_items 1\nksm_mergeable: maybe").is_err());
    }

    /// Linux 6.1's ksm_stat has only ksm_rmap_items: the merging pages
    /// come from /proc/PID/ksm_merging_pages; a later kernel's own line
    /// wins over that file.
    #[test]
    fn ksm_stat_of_linux_6_1_takes_ksm_merging_pages() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let write = |pid: u32, stat: &str, merging: Option<&str>| {
            let d = t.path().join(format!("proc/{pid}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("ksm_stat"), stat).unwrap();
            if let Some(m) = merging {
                fs::write(d.join("ksm_merging_pages"), m).unwrap();
            }
        };
        write(10, "ksm_rmap_items 2048\n", Some("1536\n"));
        let s = ksm_stat(&root, 10).unwrap();
        assert_eq!((s.rmap_items, s.merging_pages), (2048, Some(1536)));
        assert_eq!((s.zero_pages, s.process_profit), (None, None));
        write(
            11,
            "ksm_rmap_items 9\nksm_merging_pages 7\n",
            Some("1000\n"),
        );
        assert_eq!(ksm_stat(&root, 11).unwrap().merging_pages, Some(7));
        write(12, "ksm_rmap_items 9\n", None);
        assert_eq!(ksm_stat(&root, 12).unwrap().merging_pages, None);
        write(13, "ksm_rmap_items 9\n", Some("garbage\n"));
        assert_eq!(ksm_stat(&root, 13).unwrap().merging_pages, None);
        assert_eq!(ksm_stat(&root, 14), None);
    }
}
