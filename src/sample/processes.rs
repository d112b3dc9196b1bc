//! Each process's use of KSM (`/proc/PID/ksm_stat`), with the guest's
//! name for QEMU processes: what `ksmctl ps`, `ksmctl top` and the
//! metrics list.
//!
//! A guest is named from QEMU's command line: libvirt's `-name guest=NAME`,
//! a plain `-name NAME`, and on Proxmox VE (`/usr/bin/kvm -id VMID -name
//! NAME`) the VMID too. Guests whose memory KSM cannot merge are listed
//! with the reason ([`ProcessKsm::not_mergeable`]).

use std::io;

use serde::Serialize;

use crate::kernel::proc;
use crate::root::Root;

/// One process's use of KSM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessKsm {
    pub pid: u32,
    pub comm: String,
    /// The guest's name, for QEMU processes that were given `-name`.
    pub guest: Option<String>,
    /// Proxmox VE's VMID (`-id VMID` on the command line of its `kvm`).
    pub vmid: Option<u64>,
    /// Whether this is a QEMU guest (by its name or its program).
    pub qemu: bool,
    /// For a guest: why KSM cannot merge its memory, if it cannot:
    /// `mem-merge=off` (QEMU was told not to opt guest memory in; Proxmox
    /// VE's `allow-ksm: 0`), or `nothing opted in` (the kernel reports no
    /// mergeable memory, Linux 6.14+).
    pub not_mergeable: Option<String>,
    /// Pages of this process that are mapped to a KSM page.
    #[serde(rename = "ksm_merging_pages")]
    pub merging_pages: u64,
    /// Empty pages merged with the kernel's zero page (signed in the kernel).
    #[serde(rename = "ksm_zero_pages")]
    pub zero_pages: i64,
    /// KSM's bookkeeping entries for this process's scanned pages.
    #[serde(rename = "ksm_rmap_items")]
    pub rmap_items: u64,
    /// The kernel's estimate of this process's gain, in bytes (Linux 6.4+).
    #[serde(rename = "ksm_process_profit")]
    pub profit_bytes: Option<i64>,
    /// Whole process opted in with prctl(PR_SET_MEMORY_MERGE) (Linux 6.14+).
    #[serde(rename = "ksm_merge_any")]
    pub merge_any: Option<bool>,
    /// Has memory opted in with madvise or prctl (Linux 6.14+).
    #[serde(rename = "ksm_mergeable")]
    pub mergeable: Option<bool>,
    /// The `ksm_stat` reading itself: every line this kernel writes (the
    /// per-process metrics come from it, line by line).
    #[serde(skip)]
    pub stat: proc::KsmStat,
}

impl ProcessKsm {
    /// Pages of this process that KSM merged: merging pages plus zero
    /// pages (each KSM page counts in every process that maps it, so the
    /// processes' sum exceeds what the host saves by the KSM pages).
    pub fn merged_pages(&self) -> u64 {
        self.merging_pages + self.zero_pages.max(0) as u64
    }

    /// How the process opted in: see [`opt_in_name`].
    pub fn opt_in(&self) -> &'static str {
        opt_in_name(self.merge_any, self.mergeable)
    }

    /// Whether KSM has merged anything of this process.
    pub fn has_merged(&self) -> bool {
        self.merging_pages > 0 || self.zero_pages > 0
    }

    /// The guest as a person names it: `VMID (NAME)` on Proxmox VE, else
    /// the name; `None` for unnamed processes.
    pub fn guest_label(&self) -> Option<String> {
        guest_label(self.vmid, self.guest.as_deref())
    }
}

/// `VMID (NAME)`, `VMID`, `NAME` or nothing.
pub fn guest_label(vmid: Option<u64>, name: Option<&str>) -> Option<String> {
    match (vmid, name) {
        (Some(id), Some(n)) => Some(format!("{id} ({n})")),
        (Some(id), None) => Some(id.to_string()),
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    }
}

/// Why KSM cannot merge a guest's memory: `mem-merge=off` on QEMU's
/// command line, or (when the kernel says, Linux 6.14+) nothing of the
/// process opted in and nothing scanned.
pub fn not_mergeable_reason(args: &[String], stat: &proc::KsmStat) -> Option<String> {
    if mem_merge_off(args) {
        return Some("mem-merge=off".to_string());
    }
    let opted_in = stat.mergeable == Some(true) || stat.merge_any == Some(true);
    if stat.mergeable == Some(false) && !opted_in && stat.rmap_items == 0 {
        return Some("nothing opted in".to_string());
    }
    None
}

/// Whether a QEMU command line turns merging off: `mem-merge=off` in a
/// `-machine`/`-M` option (the last setting wins, as in QEMU).
pub fn mem_merge_off(args: &[String]) -> bool {
    let mut off = false;
    for w in args.windows(2) {
        if matches!(w[0].as_str(), "-machine" | "--machine" | "-M") {
            for part in split_qemu_opts(&w[1]) {
                match part.as_str() {
                    "mem-merge=off" | "mem-merge=no" | "mem-merge=false" => off = true,
                    "mem-merge=on" | "mem-merge=yes" | "mem-merge=true" | "mem-merge" => {
                        off = false
                    }
                    _ => {}
                }
            }
        }
    }
    off
}

/// Proxmox VE's VMID: `-id VMID` (a whole number).
pub fn vmid(args: &[String]) -> Option<u64> {
    args.windows(2)
        .filter(|w| w[0] == "-id")
        .map(|w| w[1].as_str())
        .next_back()?
        .parse()
        .ok()
}

/// How a process opted in, from its `ksm_merge_any` and `ksm_mergeable`:
/// `prctl` (whole process), `madvise` (some mappings), `no`, or `-` when
/// the kernel does not say (before Linux 6.14).
pub fn opt_in_name(merge_any: Option<bool>, mergeable: Option<bool>) -> &'static str {
    match (merge_any, mergeable) {
        (Some(true), _) => "prctl",
        (_, Some(true)) => "madvise",
        (Some(false), _) | (_, Some(false)) => "no",
        (None, None) => "-",
    }
}

/// Read one process; `None` when it is gone, has no `ksm_stat` or cannot
/// be read.
pub fn read_process(root: &Root, pid: u32) -> Option<ProcessKsm> {
    let stat = proc::ksm_stat(root, pid)?;
    let comm = proc::comm(root, pid)?;
    let qemu = looks_like_qemu(root, pid, &comm);
    let (guest, vmid, not_mergeable) = match qemu.then(|| proc::cmdline(root, pid)).flatten() {
        Some(args) => (
            guest_name(&args),
            vmid(&args),
            not_mergeable_reason(&args, &stat),
        ),
        None => (None, None, None),
    };
    Some(ProcessKsm {
        pid,
        comm,
        guest,
        vmid,
        qemu,
        not_mergeable,
        merging_pages: stat.merging_pages.unwrap_or(0),
        zero_pages: stat.zero_pages.unwrap_or(0),
        rmap_items: stat.rmap_items,
        profit_bytes: stat.process_profit,
        merge_any: stat.merge_any,
        mergeable: stat.mergeable,
        stat,
    })
}

fn looks_like_qemu(root: &Root, pid: u32, comm: &str) -> bool {
    // QEMU by its name, as either flavour of ksmtuned counts it.
    if proc::is_qemu_comm(comm) || comm == "kvm" {
        return true;
    }
    // A renamed QEMU (`-name x,process=NAME`) still runs a qemu binary.
    proc::cmdline(root, pid)
        .and_then(|a| a.into_iter().next())
        .map(|argv0| {
            let base = argv0.rsplit('/').next().unwrap_or("").to_string();
            base.starts_with("qemu-system-") || base == "qemu-kvm" || base == "kvm"
        })
        .unwrap_or(false)
}

/// Every process that KSM merged pages of (with `all`: also those it only
/// scanned, i.e. with rmap items), and every QEMU guest (merged or not,
/// so that guests KSM cannot merge show with the reason), sorted by
/// saving, largest first. Processes that vanish during the scan are
/// skipped.
pub fn scan(root: &Root, all: bool) -> io::Result<Vec<ProcessKsm>> {
    let mut out: Vec<ProcessKsm> = proc::pids(root)?
        .into_iter()
        .filter_map(|pid| read_process(root, pid))
        .filter(|p| p.has_merged() || p.qemu || (all && p.rmap_items > 0))
        .collect();
    sort(&mut out, SortKey::Merged);
    Ok(out)
}

/// What the process list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Merged pages (merging + zero), largest first.
    Merged,
    /// The kernel's profit estimate, largest first.
    Profit,
    /// rmap items (KSM's cost), largest first.
    Rmap,
    /// Process id, ascending.
    Pid,
}

impl SortKey {
    /// All keys, in the order `s` in `ksmctl top` cycles through them.
    pub const ALL: [SortKey; 4] = [
        SortKey::Merged,
        SortKey::Profit,
        SortKey::Rmap,
        SortKey::Pid,
    ];

    /// A short name for the footer.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Merged => "merged",
            SortKey::Profit => "profit",
            SortKey::Rmap => "rmap items",
            SortKey::Pid => "pid",
        }
    }

    /// The next key in the cycle.
    pub fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|&k| k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// Sort processes by a key; ties are broken by pid.
pub fn sort(procs: &mut [ProcessKsm], key: SortKey) {
    procs.sort_by(|a, b| {
        let primary = match key {
            SortKey::Merged => b.merged_pages().cmp(&a.merged_pages()),
            SortKey::Profit => b
                .profit_bytes
                .unwrap_or(i64::MIN)
                .cmp(&a.profit_bytes.unwrap_or(i64::MIN)),
            SortKey::Rmap => b.rmap_items.cmp(&a.rmap_items),
            SortKey::Pid => std::cmp::Ordering::Equal,
        };
        primary.then(a.pid.cmp(&b.pid))
    });
}

/// The guest name from a QEMU command line: `-name guest=NAME,...`,
/// `-name NAME` or `-name NAME,process=...` (`,,` is a literal comma, as
/// in QEMU's option syntax). The last `-name` wins, as in QEMU.
pub fn guest_name(args: &[String]) -> Option<String> {
    let value = args
        .windows(2)
        .filter(|w| w[0] == "-name" || w[0] == "--name")
        .map(|w| w[1].as_str())
        .next_back()?;
    let mut name = None;
    for (i, part) in split_qemu_opts(value).into_iter().enumerate() {
        if let Some(n) = part.strip_prefix("guest=") {
            name = Some(n.to_string());
        } else if i == 0 && !part.contains('=') {
            // The implied key of -name is guest.
            name = Some(part);
        }
    }
    name.filter(|n| !n.is_empty())
}

/// Split a QEMU option string at single commas; `,,` stands for a comma.
fn split_qemu_opts(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push(',');
                }
            } else {
                parts.push(String::new());
            }
        } else if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    parts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn guest_names() {
        let libvirt =
            args("/usr/bin/qemu-system-x86_64 -name guest=rhel9,debug-threads=on -S -machine pc");
        assert_eq!(guest_name(&libvirt).as_deref(), Some("rhel9"));
        assert_eq!(
            guest_name(&args("qemu-kvm -m 1024 -name web01")).as_deref(),
            Some("web01")
        );
        assert_eq!(
            guest_name(&args("qemu-kvm -name db,process=qemu:db")).as_deref(),
            Some("db")
        );
        assert_eq!(
            guest_name(&args("qemu-kvm -name process=x,guest=a,,b")).as_deref(),
            Some("a,b")
        );
        assert_eq!(
            guest_name(&args("qemu-kvm -name old -name new")).as_deref(),
            Some("new")
        );
        assert_eq!(guest_name(&args("qemu-kvm -m 1024")), None);
        assert_eq!(guest_name(&args("qemu-kvm -name")), None);
        assert_eq!(guest_name(&args("qemu-kvm -name process=x")), None);
        // Proxmox VE.
        let pve = args(
            "/usr/bin/kvm -id 101 -name web,debug-threads=on -no-shutdown \
             -machine type=pc-i440fx-8.1+pve0,mem-merge=off -m 2048",
        );
        assert_eq!(guest_name(&pve).as_deref(), Some("web"));
        assert_eq!(vmid(&pve), Some(101));
        assert!(mem_merge_off(&pve));
        assert_eq!(vmid(&args("kvm -id x")), None);
        assert_eq!(
            guest_label(Some(101), Some("web")).as_deref(),
            Some("101 (web)")
        );
        assert_eq!(guest_label(Some(101), None).as_deref(), Some("101"));
        assert_eq!(guest_label(None, None), None);
    }

    #[test]
    fn why_a_guest_cannot_merge() {
        let stat = |text: &str| proc::KsmStat::parse(text).unwrap();
        let opted = stat("ksm_rmap_items 0\nksm_merge_any: no\nksm_mergeable: yes\n");
        let none = stat("ksm_rmap_items 0\nksm_merge_any: no\nksm_mergeable: no\n");
        let old = stat("ksm_rmap_items 0\n");
        let off = args("kvm -id 100 -machine pc,mem-merge=off");
        let on = args("kvm -machine pc,mem-merge=off -machine mem-merge=on");
        assert_eq!(
            not_mergeable_reason(&off, &none).as_deref(),
            Some("mem-merge=off")
        );
        // Said by the command line even where the kernel does not tell.
        assert_eq!(
            not_mergeable_reason(&off, &old).as_deref(),
            Some("mem-merge=off")
        );
        assert!(!mem_merge_off(&on), "the last setting wins");
        assert_eq!(
            not_mergeable_reason(&on, &none).as_deref(),
            Some("nothing opted in")
        );
        assert_eq!(not_mergeable_reason(&on, &opted), None);
        assert_eq!(not_mergeable_reason(&on, &old), None);
        assert!(mem_merge_off(&args(
            "qemu-system-x86_64 -M q35,mem-merge=off"
        )));
        assert!(!mem_merge_off(&args(
            "qemu-system-x86_64 -name mem-merge=off"
        )));
    }

    /// A process with the given KSM figures, for the views' tests.
    pub(crate) fn p(
        pid: u32,
        merging: u64,
        zero: i64,
        rmap: u64,
        profit: Option<i64>,
    ) -> ProcessKsm {
        ProcessKsm {
            pid,
            comm: format!("p{pid}"),
            guest: None,
            vmid: None,
            qemu: false,
            not_mergeable: None,
            merging_pages: merging,
            zero_pages: zero,
            rmap_items: rmap,
            profit_bytes: profit,
            merge_any: None,
            mergeable: None,
            stat: proc::KsmStat {
                rmap_items: rmap,
                zero_pages: Some(zero),
                merging_pages: Some(merging),
                process_profit: profit,
                merge_any: None,
                mergeable: None,
            },
        }
    }

    #[test]
    fn sorting() {
        let mut v = vec![
            p(3, 10, 0, 5, Some(100)),
            p(1, 5, 10, 50, Some(-5)),
            p(2, 10, 0, 7, None),
        ];
        sort(&mut v, SortKey::Merged);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3]);
        sort(&mut v, SortKey::Profit);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [3, 1, 2]);
        sort(&mut v, SortKey::Rmap);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3]);
        sort(&mut v, SortKey::Pid);
        assert_eq!(v.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(SortKey::Pid.next(), SortKey::Merged);
    }
}
