//! Everything the checks look at, read once through the kernel readers
//! into plain data ([`Facts`]). Missing files are `None`/empty, never an
//! error: the checks say what could not be seen.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{self, Config, PolicyKind, Trust};
use crate::kernel::host;
use crate::kernel::ksm::{Ksm, KsmState};
use crate::kernel::meminfo::MemInfo;
use crate::kernel::proc::{self, KsmStat};
use crate::kernel::smaps::{self, SmapsSummary};
use crate::kernel::sys;
use crate::kernel::thp::Thp;
use crate::policy::classic;
use crate::root::Root;
use crate::sample::services::{self, OtherWriter, RunningTuner};
use crate::sample::{processes, trackers};

/// One process the checks look at: QEMU guests, and processes with
/// memory opted in to KSM.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcFacts {
    pub pid: u32,
    pub comm: String,
    /// The guest's name (QEMU `-name`).
    pub guest: Option<String>,
    /// A QEMU process (by name or by its binary).
    pub qemu: bool,
    /// `/proc/PID/ksm_stat` (`None`: gone, unreadable, or an old kernel).
    pub ksm_stat: Option<KsmStat>,
    /// Its command line turns merging off (`mem-merge=off`).
    pub merge_off_arg: bool,
    /// It holds a VFIO device, or its command line assigns one (`-device
    /// vfio-pci,...`): memory pinned.
    pub vfio: bool,
    /// Its mappings by kind (`None`: gone or unreadable).
    pub smaps: Option<SmapsSummary>,
    /// VmRSS, KiB.
    pub rss_kib: u64,
}

impl ProcFacts {
    /// Whether it has memory opted in to KSM, as far as the kernel says.
    pub fn opted_in(&self) -> bool {
        let by_stat = self.ksm_stat.as_ref().is_some_and(|s| {
            s.mergeable == Some(true) || s.merge_any == Some(true) || s.rmap_items > 0
        });
        by_stat || self.smaps.is_some_and(|m| m.mergeable_kib > 0)
    }

    /// The name people know it by: `guest NAME (pid N)` or `COMM (pid N)`.
    pub fn label(&self) -> String {
        match &self.guest {
            Some(g) => format!("guest {g} ({}, pid {})", self.comm, self.pid),
            None => format!("{} (pid {})", self.comm, self.pid),
        }
    }
}

/// A systemd service none of whose processes opted memory in to KSM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceFacts {
    /// The unit, e.g. `postgresql@15-main.service`.
    pub unit: String,
    /// Anonymous resident memory of its processes (RssAnon), KiB.
    pub anon_kib: u64,
    pub pids: Vec<u32>,
}

/// A running tuner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunerFacts {
    pub pid: u32,
    pub comm: String,
    /// A shell script (the original bash ksmtuned, which writes
    /// pages_to_scan on every cycle), not our daemon.
    pub script: bool,
}

impl TunerFacts {
    fn read(root: &Root, t: RunningTuner) -> TunerFacts {
        let script = proc::exe(root, t.pid)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .is_some_and(|n| matches!(n.as_str(), "bash" | "sh" | "dash" | "busybox"));
        TunerFacts {
            pid: t.pid,
            comm: t.comm,
            script,
        }
    }
}

/// The tuner's configuration as read from its file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunerConfig {
    #[serde(skip)]
    pub config: Config,
    /// The file read (`None`: defaults, no file).
    pub path: Option<PathBuf>,
    /// Errors in it (the daemon would refuse to start).
    pub errors: Vec<String>,
}

/// Everything the checks need.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// Running as root (otherwise other processes' files are hidden).
    pub root_user: bool,
    /// `/sys/kernel/mm/ksm` exists.
    pub ksm_present: bool,
    /// Its files (`None`: no KSM, or unreadable: see `ksm_error`).
    pub ksm: Option<KsmState>,
    pub ksm_error: Option<String>,
    /// Whether `run` can be written (`None`: no such file).
    pub ksm_writable: Option<bool>,
    pub ksm_dir: PathBuf,
    /// `/proc/meminfo` (`None`: unreadable, see `mem_error`).
    pub mem: Option<MemInfo>,
    pub mem_error: Option<String>,
    pub page_size: u64,
    /// This kernel runs in a virtual machine.
    pub in_vm: bool,
    /// Online NUMA nodes (`None`: not known).
    pub numa_nodes: Option<u64>,
    /// Tuners running (ksmtuned, ours or the original).
    pub tuners: Vec<TunerFacts>,
    /// Other programs that write KSM's settings when asked (libvirt's
    /// daemons, for `virsh node-memory-tune`).
    pub other_writers: Vec<OtherWriter>,
    /// A masked `ksm.service` / `ksmtuned.service`.
    pub masked_unit: Option<PathBuf>,
    /// The tuner's configuration (`/etc/ksmtuned.conf`).
    pub tuner_config: Option<TunerConfig>,
    /// QEMU guests and processes with memory opted in.
    pub processes: Vec<ProcFacts>,
    /// systemd services whose processes have no memory opted in to KSM,
    /// by anonymous memory, largest first.
    pub services: Vec<ServiceFacts>,
    /// Classic ksmtuned's `committed` on this host, KiB, as the daemon
    /// computes it for the tuner's flavour (`None`: /proc unreadable).
    pub committed_kib: Option<u64>,
    /// SELinux (`None`: not there: selinuxfs is not mounted).
    pub selinux: Option<SelinuxFacts>,
    /// Transparent huge pages: the mode and the split counters of
    /// `/proc/vmstat` (`mode` `None`: no THP).
    pub thp: Thp,
}

/// SELinux and the `ksmtuned` policy module. selinuxfs lists no modules,
/// so "loaded" is asked two ways: the live kernel, whether the loaded
/// policy knows the module's types (`ksmtuned_t`, the distribution's
/// module and ours; `ksmtuned_metrics_port_t`, ours only), and the module
/// store, `/var/lib/selinux/POLICY/active/modules/PRIORITY/ksmtuned`
/// (the distribution's module at priority 100, this package's at 200;
/// `modules/disabled/ksmtuned` marks it disabled, as Debian ships it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SelinuxFacts {
    pub enforcing: bool,
    /// SELINUXTYPE of /etc/selinux/config (`targeted`, Debian's `default`).
    pub policy: Option<String>,
    /// The priorities at which the store has a `ksmtuned` module.
    pub store_priorities: Vec<u32>,
    /// The store marks the `ksmtuned` module disabled.
    pub store_disabled: bool,
    /// The loaded policy knows `ksmtuned_t` (`None`: not asked: not the
    /// host's root, or refused).
    pub knows_domain: Option<bool>,
    /// The loaded policy knows `ksmtuned_metrics_port_t` (this package's
    /// module).
    pub knows_metrics_port: Option<bool>,
    /// The running tuner's pid and context.
    pub tuner_context: Option<(u32, String)>,
}

/// The priority the distribution installs its modules at.
pub const DISTRIBUTION_PRIORITY: u32 = 100;

impl SelinuxFacts {
    /// A `ksmtuned` module is in the loaded policy.
    pub fn module_loaded(&self) -> bool {
        self.knows_domain
            .unwrap_or(!self.store_disabled && !self.store_priorities.is_empty())
    }

    /// This package's module is loaded (not only the distribution's).
    pub fn ours_loaded(&self) -> bool {
        self.knows_metrics_port.unwrap_or(
            !self.store_disabled
                && self
                    .store_priorities
                    .iter()
                    .any(|&p| p > DISTRIBUTION_PRIORITY),
        )
    }

    fn read(root: &Root, tuner: Option<u32>) -> Option<SelinuxFacts> {
        use crate::kernel::selinux;
        let st = selinux::status(root)?;
        let policy = std::fs::read_to_string(root.join("/etc/selinux/config"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.trim().strip_prefix("SELINUXTYPE="))
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
            .filter(|v| !v.is_empty());
        let mut store_priorities = Vec::new();
        let mut store_disabled = false;
        if let Some(p) = &policy {
            let modules = root.join(format!("/var/lib/selinux/{p}/active/modules"));
            for e in std::fs::read_dir(&modules).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == "disabled" {
                    store_disabled = e.path().join("ksmtuned").exists();
                } else if let Ok(prio) = name.parse::<u32>() {
                    if e.path().join("ksmtuned").is_dir() {
                        store_priorities.push(prio);
                    }
                }
            }
            store_priorities.sort_unstable();
        }
        Some(SelinuxFacts {
            enforcing: st.enforcing,
            policy,
            store_priorities,
            store_disabled,
            knows_domain: selinux::type_known(root, st, "system_r", "ksmtuned_t"),
            knows_metrics_port: selinux::type_known(
                root,
                st,
                "object_r",
                "ksmtuned_metrics_port_t",
            ),
            tuner_context: tuner.and_then(|p| Some((p, selinux::process_context(root, p)?))),
        })
    }
}

impl Facts {
    /// Classic ksmtuned's `committed`: RSS of the QEMU processes, KiB.
    pub fn qemu_rss_kib(&self) -> u64 {
        self.guest_rss_kib(crate::config::Flavour::Rhel)
    }

    /// The RSS of the guests as `flavour` counts them, KiB (on Proxmox VE
    /// the daemon sums their PSS, which is at most this).
    pub fn guest_rss_kib(&self, flavour: crate::config::Flavour) -> u64 {
        self.processes
            .iter()
            .filter(|p| flavour.is_guest_comm(&p.comm))
            .fold(0u64, |a, p| a.saturating_add(p.rss_kib))
    }
}

/// A tuner's `--config FILE` (`-c FILE`, `--config=FILE`, `-cFILE`) and
/// `--policy NAME` from its command line (argv[0] first).
pub fn tuner_options(args: &[String]) -> (Option<PathBuf>, Option<PolicyKind>) {
    let (mut config, mut policy) = (None, None);
    let mut words = args.iter().skip(1);
    while let Some(a) = words.next() {
        if a == "--config" || a == "-c" {
            config = words.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--config=") {
            config = Some(PathBuf::from(v));
        } else if let Some(v) = a
            .strip_prefix("-c")
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            config = Some(PathBuf::from(v));
        } else if a == "--policy" {
            policy = words.next().and_then(|v| v.parse().ok());
        } else if let Some(v) = a.strip_prefix("--policy=") {
            policy = v.parse().ok();
        }
    }
    (config, policy)
}

fn is_merge_off(args: &[String]) -> bool {
    args.iter()
        .any(|a| a.split(',').any(|opt| opt == "mem-merge=off"))
}

fn looks_like_qemu(comm: &str, args: &[String]) -> bool {
    if proc::is_qemu_comm(comm) {
        return true;
    }
    args.first().is_some_and(|argv0| {
        let base = argv0.rsplit('/').next().unwrap_or("");
        base.starts_with("qemu-system-") || base == "qemu-kvm" || base == "kvm"
    })
}

/// Read one process, `None` when it is neither QEMU nor opted in (or gone).
pub fn read_process(root: &Root, pid: u32) -> Option<ProcFacts> {
    let comm = proc::comm(root, pid)?;
    let args = proc::cmdline(root, pid).unwrap_or_default();
    let qemu = looks_like_qemu(&comm, &args);
    let ksm_stat = proc::ksm_stat(root, pid);
    let mut p = ProcFacts {
        pid,
        qemu,
        ksm_stat,
        ..Default::default()
    };
    if !qemu && !p.opted_in() {
        return None;
    }
    p.guest = if qemu {
        processes::guest_name(&args)
    } else {
        None
    };
    p.merge_off_arg = is_merge_off(&args);
    // An open /dev/vfio device, or (for users who cannot read the fds) a
    // passthrough device on QEMU's command line.
    p.vfio = smaps::uses_vfio(root, pid)
        || (qemu
            && args
                .iter()
                .any(|a| a.starts_with("vfio-pci") || a.contains(",vfio-pci")));
    p.smaps = smaps::read(root, pid);
    p.rss_kib = proc::rss_kib(root, pid).unwrap_or(0);
    p.comm = comm;
    Some(p)
}

/// Read everything under the root.
pub fn gather(root: &Root) -> Facts {
    let ksm = Ksm::new(root);
    let mut f = Facts {
        root_user: sys::euid() == 0,
        ksm_present: ksm.supported(),
        ksm_dir: ksm.dir().to_path_buf(),
        page_size: sys::page_size(),
        in_vm: host::in_virtual_machine(root),
        numa_nodes: host::numa_nodes(root),
        tuners: services::running_tuners(root)
            .into_iter()
            .map(|t| TunerFacts::read(root, t))
            .collect(),
        other_writers: services::other_writers(root),
        masked_unit: services::masked_unit(root),
        thp: Thp::read(root),
        ..Default::default()
    };
    f.selinux = SelinuxFacts::read(root, f.tuners.first().map(|t| t.pid));
    if f.ksm_present {
        match ksm.read() {
            Ok(s) => f.ksm = Some(s),
            Err(e) => f.ksm_error = Some(e.to_string()),
        }
        f.ksm_writable = host::writable(&ksm.path("run"));
    }
    match MemInfo::read(root) {
        Ok(m) => f.mem = Some(m),
        Err(e) => f.mem_error = Some(e.to_string()),
    }
    // The configuration the running tuner reads (its --config, else the
    // default file), and its --policy when given.
    let args = f
        .tuners
        .first()
        .and_then(|t| proc::cmdline(root, t.pid))
        .unwrap_or_default();
    let (explicit, policy) = tuner_options(&args);
    let explicit = explicit.map(|p| if p.is_absolute() { root.join(&p) } else { p });
    let mut loaded = config::load(root, explicit.as_deref(), Trust::Insecure);
    if let Some(p) = policy {
        loaded.config.policy = p;
    }
    // KSM_FLAVOUR=auto resolved on this host, as the daemon does.
    let flavour = config::flavour::resolve(root, loaded.config.flavour).0;
    loaded.config.flavour = Some(flavour);
    // Classic's `committed`, read by the daemon's own tracker (PSS on
    // Proxmox VE).
    let me = root.is_host().then(std::process::id);
    f.committed_kib = trackers::scan_flavour(root, me, flavour)
        .ok()
        .map(|s| classic::committed_kib(&s));
    f.tuner_config = Some(TunerConfig {
        path: loaded.path.or(explicit),
        config: loaded.config,
        errors: loaded.errors.iter().map(|e| e.to_string()).collect(),
    });
    // Guests and opted-in processes; the others' anonymous memory by
    // systemd service (what MemoryKSM=yes would opt in).
    let mut services: std::collections::BTreeMap<String, ServiceFacts> = Default::default();
    for pid in proc::pids(root).unwrap_or_default() {
        if Some(pid) == me {
            continue;
        }
        if let Some(p) = read_process(root, pid) {
            f.processes.push(p);
        } else if let Some(unit) = proc::systemd_service(root, pid) {
            let anon = proc::rss_anon_kib(root, pid).unwrap_or(0);
            let s = services
                .entry(unit.clone())
                .or_insert_with(|| ServiceFacts {
                    unit,
                    ..Default::default()
                });
            s.anon_kib = s.anon_kib.saturating_add(anon);
            s.pids.push(pid);
        }
    }
    f.services = services
        .into_values()
        .filter(|s| s.anon_kib >= SERVICE_FACTS_MIN_KIB)
        .collect();
    f.services
        .sort_by(|a, b| b.anon_kib.cmp(&a.anon_kib).then(a.unit.cmp(&b.unit)));
    f
}

/// Services with less anonymous memory than this (KiB) are not kept.
const SERVICE_FACTS_MIN_KIB: u64 = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuner_command_lines() {
        let a = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(tuner_options(&a("ksmtuned")), (None, None));
        assert_eq!(
            tuner_options(&a("ksmtuned -c /x.conf --policy adaptive")),
            (Some("/x.conf".into()), Some(PolicyKind::Adaptive))
        );
        assert_eq!(
            tuner_options(&a("ksmtuned --config=/y --policy=classic")),
            (Some("/y".into()), Some(PolicyKind::Classic))
        );
        assert_eq!(tuner_options(&a("ksmtuned -c/z")).0, Some("/z".into()));
        assert_eq!(
            tuner_options(&a("ksmtuned --policy bogus --config")),
            (None, None)
        );
        assert_eq!(tuner_options(&[]), (None, None));
    }

    #[test]
    fn merge_off_forms() {
        let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(is_merge_off(&a(&[
            "qemu",
            "-machine",
            "pc-q35-8.2,mem-merge=off"
        ])));
        assert!(is_merge_off(&a(&[
            "kvm",
            "-machine",
            "mem-merge=off,accel=kvm"
        ])));
        assert!(!is_merge_off(&a(&["qemu", "-machine", "pc,mem-merge=on"])));
        assert!(!is_merge_off(&a(&["qemu", "-name", "mem-merge=offish"])));
    }
}
