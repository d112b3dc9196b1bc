//! Processes in `/proc`: names, resident memory, CPU time and `ksm_stat`.
//!
//! A process can exit between listing `/proc` and reading its files; every
//! per-process reader returns `None` then, and callers skip it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use serde::Serialize;

use crate::census::{Census, Changes};
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
    crate::sys::for_each_dir_entry(&proc_dir, |name| {
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

/// The resident set size of a process in KiB (`VmRSS`).
pub fn rss_kib(root: &Root, pid: u32) -> Option<u64> {
    read_proc(root, pid, "status").map(|s| parse_status_rss_kib(&s))
}

/// `utime + stime` in clock ticks, from the text of `/proc/PID/stat`.
///
/// The name field can hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_whitespace();
    // After ")": state(3) ppid(4) ... utime is field 14, stime field 15.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // Fuzzing found the overflow: no kernel writes such values, but a
    // reader must not panic on them.
    utime.checked_add(stime)
}

/// CPU time (user + system) of a process in clock ticks.
pub fn cpu_ticks(root: &Root, pid: u32) -> Option<u64> {
    read_proc(root, pid, "stat").and_then(|s| parse_stat_cpu_ticks(&s))
}

/// The pid of the `ksmd` kernel thread, if there is one.
pub fn ksmd_pid(root: &Root) -> Option<u32> {
    // Kernel threads are started early: ksmd has a low pid.
    pids(root)
        .ok()?
        .into_iter()
        .find(|&p| comm(root, p).as_deref() == Some("ksmd"))
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

/// What one look at the processes found, for the tuners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcScan {
    /// Sum of the resident set sizes of QEMU processes (KiB): classic
    /// ksmtuned's "committed" memory.
    pub qemu_rss_kib: u64,
    /// The QEMU processes counted.
    pub qemu_pids: Vec<u32>,
    /// Processes named `ksmtuned` other than `exclude`.
    pub tuner_pids: Vec<u32>,
}

/// One pass over `/proc`: QEMU processes (by `comm`, see [`is_qemu_comm`])
/// and their RSS, and other tuners. Processes that exit during the pass
/// are skipped.
pub fn scan(root: &Root, exclude: Option<u32>) -> io::Result<ProcScan> {
    ProcTable::new(exclude).update(root, &mut Census::listing(root, "one pass"))
}

/// The QEMU processes and other tuners on the host, kept up to date from a
/// [`Census`]: only processes that started, ran `execve`, renamed
/// themselves or exited since the last update have their name read (all
/// of them when the census lists `/proc`). Then each QEMU process's RSS is
/// read, as it changes all the time.
#[derive(Debug, Default)]
pub struct ProcTable {
    qemu: BTreeSet<u32>,
    tuners: BTreeSet<u32>,
    exclude: Option<u32>,
    primed: bool,
}

impl ProcTable {
    /// A table that does not count `exclude` (the daemon itself) as
    /// another tuner.
    pub fn new(exclude: Option<u32>) -> ProcTable {
        ProcTable {
            exclude,
            ..Default::default()
        }
    }

    /// Apply what changed and read the QEMU processes' RSS.
    pub fn update(&mut self, root: &Root, census: &mut Census) -> io::Result<ProcScan> {
        // The processes whose names are to be read: all, or the changed.
        let to_read = match census.changes(self.primed)? {
            Changes::All(pids) => {
                self.qemu.clear();
                self.tuners.clear();
                pids
            }
            Changes::Since { exited, changed } => {
                for pid in exited.iter().chain(changed) {
                    self.qemu.remove(pid);
                    self.tuners.remove(pid);
                }
                changed
            }
        };
        if !to_read.is_empty() {
            // Every name is read relative to one open /proc into one
            // buffer: no path building or allocation per process (a
            // listing reads thousands of them).
            let proc_dir = fs::File::open(root.join("/proc"))?;
            let mut name = Vec::with_capacity(32);
            let mut buf = [0u8; 64];
            for &pid in to_read {
                self.classify(root, &proc_dir, pid, &mut name, &mut buf);
            }
        }
        self.primed = true;
        let mut out = ProcScan::default();
        for &pid in &self.qemu {
            // Gone since (its exit is applied next time): skipped.
            if let Some(rss) = rss_kib(root, pid) {
                out.qemu_rss_kib = out.qemu_rss_kib.saturating_add(rss);
                out.qemu_pids.push(pid);
            }
        }
        out.tuner_pids = self.tuners.iter().copied().collect();
        Ok(out)
    }

    fn classify(
        &mut self,
        root: &Root,
        proc_dir: &fs::File,
        pid: u32,
        name: &mut Vec<u8>,
        buf: &mut [u8; 64],
    ) {
        use std::io::Write;
        name.clear();
        write!(name, "{pid}/comm\0").expect("writing to a Vec");
        let file = std::ffi::CStr::from_bytes_with_nul(name).expect("one NUL, at the end");
        // Gone since the listing (or unreadable): skipped, as comm() does.
        let Ok(n) = crate::sys::read_small_at(proc_dir, file, buf) else {
            return;
        };
        let Ok(comm) = std::str::from_utf8(&buf[..n]) else {
            return;
        };
        let comm = comm.trim_end_matches('\n');
        if is_qemu_comm(comm) {
            self.qemu.insert(pid);
        } else if comm == "ksmtuned" && Some(pid) != self.exclude && is_tuning_daemon(root, pid) {
            self.tuners.insert(pid);
        }
    }
}

/// Whether a process named `ksmtuned` is a daemon that writes KSM's
/// settings: the original bash script, or ours, but not ours running a
/// one-shot command (`retune`, `--check-config`), a `--dry-run`, or on
/// another root (`--root DIR`: a test tree, not this host's KSM).
pub fn is_tuning_daemon(root: &Root, pid: u32) -> bool {
    let Some(args) = cmdline(root, pid) else {
        return false;
    };
    let mut words = args.iter().skip(1);
    while let Some(a) = words.next() {
        let other_root = match a.strip_prefix("--root=") {
            Some(r) => Some(r),
            None if a == "--root" => words.next().map(String::as_str),
            None => None,
        };
        if other_root.is_some_and(|r| std::path::Path::new(r) != std::path::Path::new("/")) {
            return false;
        }
    }
    !args.iter().skip(1).any(|a| {
        a == "retune"
            || a == "--dry-run"
            || a == "--check-config"
            || a.starts_with("--check-config=")
            || a == "--help"
            || a == "-h"
            || a == "--version"
            || a == "-V"
    })
}

/// How a process matters to the adaptive tuner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// It has memory opted in to KSM.
    Mergeable,
    /// Another KSM tuner.
    Tuner,
    /// Neither (yet).
    Other,
}

/// What changed since the last [`ProcWatch::update`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchChange {
    /// Processes that opted memory in since the last update.
    pub appeared: usize,
    /// Processes with mergeable memory that exited.
    pub exited: usize,
    /// Other KSM tuners now running.
    pub tuners: Vec<u32>,
}

/// Notices processes that opt memory in to KSM, or exit, without reading
/// every process's files every time: each update takes what changed from
/// a [`Census`] and looks only at processes it has not seen (or that ran
/// `execve` or renamed themselves), re-checking a new process for
/// [`ProcWatch::GRACE`] updates in case it opts in after starting (QEMU
/// does so while setting up guest memory).
#[derive(Debug, Default)]
pub struct ProcWatch {
    /// Known pids with what they are and how many more updates a new
    /// `Other` is re-checked.
    known: BTreeMap<u32, (Kind, u8)>,
    primed: bool,
    exclude: Option<u32>,
}

/// Whether a process has memory opted in to KSM: `ksm_mergeable: yes` or
/// `ksm_merge_any: yes` (6.14+), pages ksmd already tracks, or (older
/// kernels) a QEMU process.
pub fn is_mergeable(root: &Root, pid: u32, comm: &str) -> bool {
    match ksm_stat(root, pid) {
        Some(s) if s.mergeable == Some(true) || s.merge_any == Some(true) || s.rmap_items > 0 => {
            true
        }
        Some(s) if s.mergeable.is_some() => false,
        _ => is_qemu_comm(comm),
    }
}

/// What a process is to the adaptive tuner; `None` if it is gone.
fn classify(root: &Root, exclude: Option<u32>, pid: u32) -> Option<Kind> {
    let name = comm(root, pid)?;
    Some(if name == "ksmtuned" {
        if Some(pid) != exclude && is_tuning_daemon(root, pid) {
            Kind::Tuner
        } else {
            Kind::Other
        }
    } else if is_mergeable(root, pid, &name) {
        Kind::Mergeable
    } else {
        Kind::Other
    })
}

/// A new process seen `Other` before: look again while its grace lasts.
fn recheck(
    root: &Root,
    exclude: Option<u32>,
    pid: u32,
    grace: u8,
    change: &mut WatchChange,
) -> Option<(Kind, u8)> {
    match classify(root, exclude, pid)? {
        Kind::Mergeable => {
            change.appeared += 1;
            Some((Kind::Mergeable, 0))
        }
        k => Some((k, grace - 1)),
    }
}

impl ProcWatch {
    /// Updates during which a new process is re-checked.
    pub const GRACE: u8 = 10;

    /// A watch that ignores `exclude` (the daemon itself).
    pub fn new(exclude: Option<u32>) -> ProcWatch {
        ProcWatch {
            exclude,
            ..Default::default()
        }
    }

    /// A process not seen before (or changed by `execve` or a new name):
    /// what it is, and its grace.
    fn learn(&self, root: &Root, pid: u32) -> Option<(Kind, u8)> {
        let kind = classify(root, self.exclude, pid)?;
        Some((kind, if self.primed { Self::GRACE } else { 0 }))
    }

    /// Apply what changed since the last update. The first update learns
    /// what is there and reports no change.
    pub fn update(&mut self, root: &Root, census: &mut Census) -> io::Result<WatchChange> {
        let mut change = WatchChange::default();
        let mergeable = |e: Option<(Kind, u8)>| e.is_some_and(|(k, _)| k == Kind::Mergeable);
        match census.changes(self.primed)? {
            Changes::All(now) => {
                let mut old = std::mem::take(&mut self.known);
                for &pid in now {
                    let entry = match old.remove(&pid) {
                        Some((Kind::Other, grace)) if grace > 0 => {
                            recheck(root, self.exclude, pid, grace, &mut change)
                        }
                        Some(e) => Some(e),
                        None => {
                            let e = self.learn(root, pid);
                            change.appeared += usize::from(mergeable(e));
                            e
                        }
                    };
                    if let Some(e) = entry {
                        self.known.insert(pid, e);
                    }
                }
                // Processes gone since the last update.
                change.exited += old.values().filter(|(k, _)| *k == Kind::Mergeable).count();
            }
            Changes::Since { exited, changed } => {
                for pid in exited {
                    change.exited += usize::from(mergeable(self.known.remove(pid)));
                }
                let exclude = self.exclude;
                self.known.retain(|&pid, entry| match *entry {
                    (Kind::Other, grace) if grace > 0 => {
                        match recheck(root, exclude, pid, grace, &mut change) {
                            Some(e) => {
                                *entry = e;
                                true
                            }
                            None => false,
                        }
                    }
                    _ => true,
                });
                // A new process, or a new program or name: learned anew; a
                // mergeable process that stays mergeable (a guest renaming
                // itself) is no change.
                for &pid in changed {
                    let before = mergeable(self.known.remove(&pid));
                    let now = self.learn(root, pid);
                    match (before, mergeable(now)) {
                        (false, true) => change.appeared += 1,
                        (true, false) => change.exited += 1,
                        _ => {}
                    }
                    if let Some(e) = now {
                        self.known.insert(pid, e);
                    }
                }
            }
        }
        change.tuners = self
            .known
            .iter()
            .filter(|(_, (k, _))| *k == Kind::Tuner)
            .map(|(&p, _)| p)
            .collect();
        if !self.primed {
            change.appeared = 0;
            change.exited = 0;
            self.primed = true;
        }
        Ok(change)
    }

    /// How many known processes have mergeable memory.
    pub fn mergeable(&self) -> usize {
        self.known
            .values()
            .filter(|(k, _)| *k == Kind::Mergeable)
            .count()
    }
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
pub fn ksm_stat(root: &Root, pid: u32) -> Option<KsmStat> {
    read_proc(root, pid, "ksm_stat").and_then(|s| KsmStat::parse(&s).ok())
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
    fn stat_cpu() {
        let stat = "42 (a (weird) name) S 2 0 0 0 -1 69238880 0 0 0 0 17 25 0 0 39 19 1 0 4 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(42));
        assert_eq!(parse_stat_cpu_ticks("42 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        // Found by AFL++: utime + stime overflowed (a panic in debug builds).
        let max = u64::MAX;
        let huge = format!("2 (x) S 0 0 0 0 -1 0 0 0 0 0 {max} {max} 0");
        assert_eq!(parse_stat_cpu_ticks(&huge), None);
    }

    #[test]
    fn status_rss() {
        assert_eq!(
            parse_status_rss_kib("Name:\tqemu\nVmRSS:\t  123456 kB\nThreads: 1\n"),
            123456
        );
        assert_eq!(parse_status_rss_kib("Name:\tkthreadd\n"), 0);
    }

    fn fake_proc(root: &std::path::Path, pid: u32, comm: &str, ksm_stat: Option<&str>) {
        let d = root.join(format!("proc/{pid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(d.join("cmdline"), format!("{comm}\0")).unwrap();
        if let Some(s) = ksm_stat {
            std::fs::write(d.join("ksm_stat"), s).unwrap();
        }
    }

    #[test]
    fn watch_notices_new_and_exited_mergeable_processes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let no = "ksm_rmap_items 0\nksm_mergeable: no\n";
        let yes = "ksm_rmap_items 0\nksm_mergeable: yes\n";
        fake_proc(dir.path(), 1, "init", Some(no));
        fake_proc(dir.path(), 50, "qemu-kvm", Some(yes));
        let mut w = ProcWatch::new(None);
        let mut census = Census::listing(&root, "a test root");
        assert_eq!(
            w.update(&root, &mut census).unwrap(),
            WatchChange::default()
        );
        assert_eq!(w.mergeable(), 1);
        // Nothing new.
        assert_eq!(
            w.update(&root, &mut census).unwrap(),
            WatchChange::default()
        );
        // A new process that opts in a little later, and one that exits.
        fake_proc(dir.path(), 70, "worker", Some(no));
        assert_eq!(w.update(&root, &mut census).unwrap().appeared, 0);
        std::fs::write(dir.path().join("proc/70/ksm_stat"), yes).unwrap();
        std::fs::remove_dir_all(dir.path().join("proc/50")).unwrap();
        let c = w.update(&root, &mut census).unwrap();
        assert_eq!((c.appeared, c.exited), (1, 1));
        // Old kernels without ksm_mergeable: QEMU by name; rmap items.
        fake_proc(dir.path(), 80, "qemu:vm2", None);
        fake_proc(dir.path(), 90, "java", Some("ksm_rmap_items 12\n"));
        fake_proc(dir.path(), 95, "bash", Some("ksm_rmap_items 0\n"));
        let c = w.update(&root, &mut census).unwrap();
        assert_eq!((c.appeared, c.exited), (2, 0));
        assert_eq!(w.mergeable(), 3);
        // Another tuner; and not our own one-shot commands.
        fake_proc(dir.path(), 100, "ksmtuned", None);
        fake_proc(dir.path(), 101, "ksmtuned", None);
        std::fs::write(dir.path().join("proc/101/cmdline"), "ksmtuned\0retune\0").unwrap();
        let c = w.update(&root, &mut census).unwrap();
        assert_eq!(c.tuners, vec![100]);
    }

    /// The scan reads comm through one directory descriptor and buffer;
    /// its results are those of the per-process readers.
    #[test]
    fn scan_matches_the_per_process_readers() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let proc_ = t.path().join("proc");
        let mk = |pid: u32, comm: &[u8], status: Option<&str>, cmdline: &str| {
            let d = proc_.join(pid.to_string());
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("comm"), comm).unwrap();
            if let Some(s) = status {
                fs::write(d.join("status"), s).unwrap();
            }
            fs::write(d.join("cmdline"), cmdline).unwrap();
        };
        mk(1, b"systemd\n", Some("VmRSS:\t100 kB\n"), "init\0");
        mk(10, b"qemu-kvm\n", Some("VmRSS:\t4000 kB\n"), "qemu-kvm\0");
        mk(11, b"qemu:vm1\n", Some("VmRSS:\t2000 kB\n"), "qemu\0");
        mk(12, b"qemu-system-x86\n", None, "qemu\0"); // vanished before status
        mk(13, b"qemu-kvm\n\n", Some("VmRSS:\t7 kB\n"), "x\0"); // newline in the name
        mk(14, b"qemu-kvm", Some("VmRSS:\t1 kB\n"), "x\0"); // no newline
        mk(15, b"qemu\xff\n", Some("VmRSS:\t9 kB\n"), "x\0"); // not UTF-8
        mk(16, b"ksmtuned\n", Some(""), "ksmtuned\0");
        mk(17, b"ksmtuned\n", Some(""), "ksmtuned\0--dry-run\0");
        mk(18, b"kthreadd\n", Some("Name:\tkthreadd\n"), "");
        fs::create_dir_all(proc_.join("19")).unwrap(); // vanished entirely
        fs::create_dir_all(proc_.join("self")).unwrap();
        let s = scan(&root, Some(1)).unwrap();
        // The reference: the per-process readers.
        let mut want = ProcScan::default();
        for pid in pids(&root).unwrap() {
            let Some(name) = comm(&root, pid) else {
                continue;
            };
            if is_qemu_comm(&name) {
                if let Some(rss) = rss_kib(&root, pid) {
                    want.qemu_rss_kib += rss;
                    want.qemu_pids.push(pid);
                }
            } else if name == "ksmtuned" && is_tuning_daemon(&root, pid) {
                want.tuner_pids.push(pid);
            }
        }
        assert_eq!(s, want);
        assert_eq!(s.qemu_pids, vec![10, 11, 13, 14]);
        assert_eq!(s.qemu_rss_kib, 4000 + 2000 + 7 + 1);
        assert_eq!(s.tuner_pids, vec![16]);
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
}
