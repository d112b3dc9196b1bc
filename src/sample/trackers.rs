//! What the tuners keep between cycles about the host's processes: the
//! QEMU guests and other tuners ([`ProcTable`], the classic policy's) and
//! the processes with memory opted in to KSM ([`ProcWatch`], the adaptive
//! policy's), each brought up to date from a [`Census`] so that a cycle
//! reads only the processes that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use crate::config::flavour::awk_sum_kib;
use crate::config::Flavour;
use crate::kernel::proc::{comm, is_qemu_comm, is_tuning_daemon, mergeable, pss_kib, rss_kib};
use crate::root::Root;
use crate::sample::census::{Census, Changes};

/// What one look at the processes found, for the tuners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcScan {
    /// Sum of the resident set sizes of the guest processes (KiB): QEMU's
    /// by name, or on Proxmox VE the processes named `kvm`.
    pub qemu_rss_kib: u64,
    /// Classic ksmtuned's "committed" memory (KiB) in the table's flavour:
    /// the RSS sum above, or on Proxmox the PSS of the `kvm` processes
    /// summed as its awk does ([`awk_sum_kib`]).
    pub committed_kib: u64,
    /// The guest processes counted.
    pub qemu_pids: Vec<u32>,
    /// A process whose PSS could not be read (Proxmox flavour; its RSS is
    /// counted instead): pid and why. The first such process only.
    pub pss_unreadable: Option<(u32, String)>,
    /// Processes named `ksmtuned` other than `exclude`.
    pub tuner_pids: Vec<u32>,
}

/// One pass over `/proc`: QEMU processes (by `comm`, see [`is_qemu_comm`])
/// and their RSS, and other tuners. Processes that exit during the pass
/// are skipped.
pub fn scan(root: &Root, exclude: Option<u32>) -> io::Result<ProcScan> {
    scan_flavour(root, exclude, Flavour::default())
}

/// [`scan`] counting the guests as `flavour`'s ksmtuned does (on Proxmox
/// VE the PSS of the processes named `kvm`): the `committed` of a classic
/// cycle, for one-shot readers such as `ksmctl doctor`.
pub fn scan_flavour(root: &Root, exclude: Option<u32>, flavour: Flavour) -> io::Result<ProcScan> {
    ProcTable::for_flavour(exclude, flavour).update(root, &mut Census::listing(root, "one pass"))
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
    flavour: Flavour,
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

    /// A table of the guests as `flavour` counts them (see
    /// [`Flavour::is_guest_comm`]).
    pub fn for_flavour(exclude: Option<u32>, flavour: Flavour) -> ProcTable {
        ProcTable {
            exclude,
            flavour,
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
        let mut pss = Vec::new();
        for &pid in &self.qemu {
            // Gone since (its exit is applied next time): skipped.
            let Some(rss) = rss_kib(root, pid) else {
                continue;
            };
            if self.flavour == Flavour::Proxmox {
                match pss_kib(root, pid) {
                    Ok(p) => pss.push(p),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        pss.push(rss);
                        out.pss_unreadable.get_or_insert((pid, e.to_string()));
                    }
                }
            }
            out.qemu_rss_kib = out.qemu_rss_kib.saturating_add(rss);
            out.qemu_pids.push(pid);
        }
        out.committed_kib = match self.flavour {
            Flavour::Rhel => out.qemu_rss_kib,
            Flavour::Proxmox => awk_sum_kib(pss),
        };
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
        let Ok(n) = crate::kernel::sys::read_small_at(proc_dir, file, buf) else {
            return;
        };
        let Ok(comm) = std::str::from_utf8(&buf[..n]) else {
            return;
        };
        let comm = comm.trim_end_matches('\n');
        if self.flavour.is_guest_comm(comm) {
            self.qemu.insert(pid);
        } else if comm == "ksmtuned" && Some(pid) != self.exclude && is_tuning_daemon(root, pid) {
            self.tuners.insert(pid);
        }
    }
}

/// How a process matters to the adaptive tuner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// It has memory opted in to KSM.
    Mergeable,
    /// Another KSM tuner.
    Tuner,
    /// Its `ksm_stat` could not be read (refused), and its name is not
    /// QEMU's: whether it opted in is unknown, so it is not counted.
    Unreadable,
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
    /// Processes whose `ksm_stat` could not be read (refused: another
    /// user's, without `CAP_DAC_READ_SEARCH` or denied it by a security
    /// policy), and not named like QEMU: not counted, as it is unknown
    /// whether they opted in. QEMU processes are counted by their name.
    pub unreadable: Vec<u32>,
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

/// What a process is to the adaptive tuner; `None` if it is gone.
fn classify(root: &Root, exclude: Option<u32>, pid: u32) -> Option<Kind> {
    let name = comm(root, pid)?;
    Some(if name == "ksmtuned" {
        if Some(pid) != exclude && is_tuning_daemon(root, pid) {
            Kind::Tuner
        } else {
            Kind::Other
        }
    } else {
        match mergeable(root, pid, &name) {
            Ok(true) => Kind::Mergeable,
            Ok(false) => Kind::Other,
            Err(_) if is_qemu_comm(&name) => Kind::Mergeable,
            Err(_) => Kind::Unreadable,
        }
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
        let of_kind = |kind: Kind| -> Vec<u32> {
            self.known
                .iter()
                .filter(|(_, (k, _))| *k == kind)
                .map(|(&p, _)| p)
                .collect()
        };
        change.tuners = of_kind(Kind::Tuner);
        change.unreadable = of_kind(Kind::Unreadable);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::proc::is_qemu_comm;

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
        for pid in crate::kernel::proc::pids(&root).unwrap() {
            let Some(name) = comm(&root, pid) else {
                continue;
            };
            if is_qemu_comm(&name) {
                if let Some(rss) = rss_kib(&root, pid) {
                    want.qemu_rss_kib += rss;
                    want.committed_kib += rss;
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

        // Proxmox: the processes named kvm, by PSS.
        mk(
            20,
            b"kvm\n",
            Some("VmRSS:\t5000 kB\n"),
            "/usr/bin/kvm\0-id\x00101\0",
        );
        fs::write(
            proc_.join("20/smaps_rollup"),
            "x [rollup]\nRss: 5000 kB\nPss: 3000 kB\n",
        )
        .unwrap();
        mk(
            21,
            b"kvm\n",
            Some("VmRSS:\t800 kB\n"),
            "/usr/bin/kvm\0-id\x00102\0",
        );
        fs::write(
            proc_.join("21/smaps_rollup"),
            "x [rollup]\nRss: 800 kB\nPss: 700 kB\n",
        )
        .unwrap();
        mk(22, b"kvm\n", Some("VmRSS:\t900 kB\n"), "x\0"); // gone before smaps_rollup
        let s = ProcTable::for_flavour(Some(1), Flavour::Proxmox)
            .update(&root, &mut Census::listing(&root, "a test root"))
            .unwrap();
        assert_eq!(s.qemu_pids, vec![20, 21]);
        assert_eq!((s.committed_kib, s.qemu_rss_kib), (3700, 5800));
        assert_eq!(s.tuner_pids, vec![16]);
        assert_eq!(s.pss_unreadable, None);
        // A PSS that cannot be read (here: not a file) counts the RSS and
        // says which process.
        mk(23, b"kvm\n", Some("VmRSS:\t100 kB\n"), "x\0");
        fs::create_dir_all(proc_.join("23/smaps_rollup")).unwrap();
        let s = ProcTable::for_flavour(Some(1), Flavour::Proxmox)
            .update(&root, &mut Census::listing(&root, "a test root"))
            .unwrap();
        assert_eq!(s.committed_kib, 3700 + 100);
        assert_eq!(s.pss_unreadable.as_ref().map(|p| p.0), Some(23));
        // The RHEL flavour does not count them.
        assert_eq!(
            scan(&root, Some(1)).unwrap().committed_kib,
            4000 + 2000 + 7 + 1
        );
    }
}
