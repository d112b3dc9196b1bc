//! One reading of the system: a [`Sample`], taken by a [`Sampler`].
//!
//! Every view reads the system through a `Sampler`: the daemon once per
//! cycle, the metrics once per scrape, `ksmctl top` once per refresh and
//! `ksm-bench` every 100 ms. The sampler owns what is worth keeping between
//! readings: the [`Ksmd`] thread's cached pid, the [`Census`] of process
//! events and the tracker the policy needs ([`ProcTable`] for classic's
//! QEMU guests, [`ProcWatch`] for adaptive's opted-in processes). What
//! each policy makes of a sample is written beside the policy
//! (`classic::Input::try_from(&Sample)`, `adaptive::Input::from_sample`).

pub mod census;
pub mod last_audit;
pub mod last_estimate;
pub mod processes;
pub mod published;
pub mod services;
pub mod split;
pub mod trackers;

use std::time::{Duration, Instant};

use crate::config::{Flavour, PolicyKind};
use crate::error::{Error, Result};
use crate::kernel::ksm::{Ksm, KsmState};
use crate::kernel::ksmd::{CpuTime, Ksmd};
use crate::kernel::meminfo::{self, MemInfo};
use crate::kernel::sys;
use crate::root::Root;
use census::{Census, Source};
use processes::ProcessKsm;
use trackers::{ProcScan, ProcTable, ProcWatch, WatchChange};

/// Which processes a sampler follows from one sample to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// None.
    Nothing,
    /// QEMU guests by name, and their resident memory (classic).
    Guests,
    /// Processes with memory opted in to KSM (adaptive).
    OptedIn,
}

/// Whether, and how, a sampler reads `/proc/meminfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Memory {
    /// Not read.
    #[default]
    No,
    /// Read when it can be (`None` otherwise): for views that show it.
    IfReadable,
    /// Read; an unreadable one fails the sample (the policies decide
    /// from it).
    Required,
}

/// Which processes' `ksm_stat` a sampler reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Processes {
    /// None.
    #[default]
    No,
    /// The processes with merged pages, and every QEMU guest.
    Merged,
    /// Also those KSM only scanned (rmap items, nothing merged).
    Scanned,
}

/// What a sampler reads besides KSM's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts {
    /// `/proc/meminfo`.
    pub memory: Memory,
    /// Memory pressure (`/proc/pressure/memory`, when the kernel has it).
    pub pressure: bool,
    /// ksmd's CPU time.
    pub ksmd: bool,
    /// Processes' `ksm_stat`.
    pub processes: Processes,
    /// The memory KSM's huge-page splits freed outside its counters
    /// ([`split`]; a pagemap read of the mergeable areas of the processes
    /// KSM scans, done again at most every [`SPLIT_EVERY`] in this
    /// program).
    pub split_freed: Split,
    /// The daemon's last continuous estimate ([`last_estimate`]).
    pub last_estimate: bool,
    /// The daemon's last cross-domain audit ([`last_audit`]).
    pub last_audit: bool,
}

/// When a sampler counts what KSM's huge-page splits freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Split {
    /// Never.
    #[default]
    No,
    /// Every sample (the views).
    Always,
    /// While ksmd runs (what the adaptive policy's profit checks use).
    WhileRunning,
}

/// How often the sampler counts the memory KSM's splits freed when it
/// does not read the processes anyway.
pub const SPLIT_EVERY: Duration = Duration::from_secs(30);

/// One reading. Parts the sampler was not asked for are `None` (or empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Time since the sampler started.
    pub elapsed: Duration,
    /// KSM's files; `None`: this kernel has no KSM.
    pub ksm: Option<KsmState>,
    pub page_size: u64,
    pub mem: Option<MemInfo>,
    /// PSI `some avg10` of memory, percent.
    pub psi_some_avg10: Option<f64>,
    /// ksmd's CPU time; `None` without a ksmd thread.
    pub ksmd_cpu: Option<CpuTime>,
    /// The QEMU guests and their RSS ([`Follow::Guests`]).
    pub guests: Option<ProcScan>,
    /// Opted-in processes that came and went ([`Follow::OptedIn`]).
    pub opted_in: Option<WatchChange>,
    /// Other KSM tuners running (when processes are followed).
    pub tuners: Vec<u32>,
    /// Processes with merged pages, any order ([`Parts::processes`]).
    pub processes: Vec<ProcessKsm>,
    /// What KSM's huge-page splits freed outside its counters
    /// ([`Parts::split_freed`]).
    pub split_freed: Option<split::SplitFreed>,
    /// The daemon's last continuous estimate ([`Parts::last_estimate`];
    /// `None` also when there is none).
    pub last_estimate: Option<last_estimate::LastEstimate>,
    /// The daemon's last cross-domain audit ([`Parts::last_audit`];
    /// `None` also when there is none).
    pub last_audit: Option<last_audit::LastAudit>,
}

impl Sample {
    /// A sample of nothing: no KSM, no parts (the base of test fixtures).
    pub fn empty() -> Sample {
        Sample {
            elapsed: Duration::ZERO,
            ksm: None,
            page_size: sys::page_size(),
            mem: None,
            psi_some_avg10: None,
            ksmd_cpu: None,
            guests: None,
            opted_in: None,
            tuners: Vec::new(),
            processes: Vec::new(),
            split_freed: None,
            last_estimate: None,
            last_audit: None,
        }
    }

    /// ksmd's CPU time in seconds.
    pub fn ksmd_cpu_seconds(&self) -> Option<f64> {
        self.ksmd_cpu.map(|c| c.seconds())
    }

    /// KSM's files, or an error saying this kernel has none.
    pub fn ksm_state(&self, ksm: &Ksm) -> Result<&KsmState> {
        self.ksm.as_ref().ok_or_else(|| Error::NotSupported {
            path: ksm.dir().to_path_buf(),
        })
    }
}

enum Tracker {
    Nothing,
    Guests(ProcTable),
    OptedIn(ProcWatch),
}

/// Takes [`Sample`]s.
pub struct Sampler {
    root: Root,
    ksm: Ksm,
    ksmd: Option<Ksmd>,
    parts: Parts,
    census: Option<Census>,
    tracker: Tracker,
    /// The process not to count as another tuner (the daemon itself).
    exclude: Option<u32>,
    /// Which processes are the guests classic counts, and how.
    flavour: Flavour,
    start: Instant,
}

impl Sampler {
    /// A sampler of KSM and the given parts, following no processes.
    pub fn new(root: &Root, parts: Parts) -> Sampler {
        Sampler {
            root: root.clone(),
            ksm: Ksm::new(root),
            ksmd: parts.ksmd.then(|| Ksmd::new(root)),
            parts,
            census: None,
            tracker: Tracker::Nothing,
            exclude: None,
            flavour: Flavour::default(),
            start: Instant::now(),
        }
    }

    /// Follow processes as `follow` says; `exclude` (the daemon itself) is
    /// never another tuner. The census starts with the first process
    /// follower and is kept when the follower changes (a reload that
    /// changes the policy).
    pub fn follow(&mut self, follow: Follow, exclude: Option<u32>) {
        self.exclude = exclude;
        self.tracker = match follow {
            Follow::Nothing => Tracker::Nothing,
            Follow::Guests => Tracker::Guests(ProcTable::for_flavour(exclude, self.flavour)),
            Follow::OptedIn => Tracker::OptedIn(ProcWatch::new(exclude)),
        };
        if follow != Follow::Nothing && self.census.is_none() {
            self.census = Some(Census::new(&self.root));
        }
    }

    /// The sampler of a tuning policy (and of the daemon running it):
    /// meminfo and ksmd's CPU time always (the metrics endpoint serves the
    /// daemon's sample); for adaptive also memory pressure; the processes the policy follows (classic the QEMU guests,
    /// adaptive those with memory opted in), never counting `exclude`
    /// (the daemon itself) as another tuner.
    pub fn for_policy(root: &Root, kind: PolicyKind, exclude: Option<u32>) -> Sampler {
        let adaptive = kind == PolicyKind::Adaptive;
        let mut s = Sampler::new(
            root,
            Parts {
                memory: Memory::Required,
                pressure: adaptive,
                ksmd: true,
                processes: Processes::No,
                split_freed: if adaptive {
                    Split::WhileRunning
                } else {
                    Split::No
                },
                // (Published for the metrics endpoint.)
                last_estimate: true,
                // (The daemon has its audit in its metrics.)
                last_audit: false,
            },
        );
        s.follow(
            match kind {
                PolicyKind::Classic => Follow::Guests,
                PolicyKind::Adaptive => Follow::OptedIn,
            },
            exclude,
        );
        s
    }

    /// Count the guests as `flavour`'s ksmtuned does (the QEMU processes'
    /// RSS, or on Proxmox VE the `kvm` processes' PSS); the guest table
    /// starts anew when the flavour changes.
    pub fn set_flavour(&mut self, flavour: Flavour) {
        if flavour != self.flavour {
            self.flavour = flavour;
            if let Tracker::Guests(_) = self.tracker {
                self.tracker = Tracker::Guests(ProcTable::for_flavour(self.exclude, flavour));
            }
        }
    }

    /// Follow processes with this census (e.g. a listing of `/proc`
    /// instead of the kernel's events, to compare the two).
    pub fn set_census(&mut self, census: Census) {
        self.census = Some(census);
    }

    /// How processes are followed: the kernel's events or listings of
    /// `/proc` (`None` when no process is followed).
    pub fn census_source(&self) -> Option<&Source> {
        self.census.as_ref().map(Census::source)
    }

    /// The KSM directory this sampler reads.
    pub fn ksm(&self) -> &Ksm {
        &self.ksm
    }

    /// Take one sample.
    pub fn take(&mut self) -> Result<Sample> {
        let proc_err = |root: &Root| {
            let path = root.join("/proc");
            move |source| Error::Read { path, source }
        };
        let mem = match self.parts.memory {
            Memory::No => None,
            Memory::IfReadable => MemInfo::read(&self.root).ok(),
            Memory::Required => Some(MemInfo::read(&self.root)?),
        };
        let (mut guests, mut opted_in, mut tuners) = (None, None, Vec::new());
        match (&mut self.tracker, &mut self.census) {
            (Tracker::Guests(table), Some(census)) => {
                let scan = table
                    .update(&self.root, census)
                    .map_err(proc_err(&self.root))?;
                tuners.clone_from(&scan.tuner_pids);
                guests = Some(scan);
            }
            (Tracker::OptedIn(watch), Some(census)) => {
                let change = watch
                    .update(&self.root, census)
                    .map_err(proc_err(&self.root))?;
                tuners.clone_from(&change.tuners);
                opted_in = Some(change);
            }
            _ => {}
        }
        let ksm = if self.ksm.supported() {
            Some(self.ksm.read()?)
        } else {
            None
        };
        let processes = match self.parts.processes {
            Processes::No => Vec::new(),
            p => processes::scan(&self.root, p == Processes::Scanned)
                .map_err(proc_err(&self.root))?,
        };
        let running = ksm
            .as_ref()
            .is_some_and(|k| k.run == Some(crate::kernel::ksm::Run::Merge));
        let read_processes = self.parts.processes != Processes::No;
        let want_split = match self.parts.split_freed {
            Split::No => false,
            Split::Always => true,
            Split::WhileRunning => running,
        };
        let split_freed = if !want_split {
            None
        } else {
            Some(split::measure_cached(&self.root, SPLIT_EVERY, || {
                if read_processes {
                    processes.clone()
                } else {
                    // (A /proc that cannot be listed counts nothing here:
                    // the policy's sample does not fail for it.)
                    processes::scan(&self.root, false).unwrap_or_default()
                }
            }))
        };
        Ok(Sample {
            split_freed,
            last_estimate: if self.parts.last_estimate {
                last_estimate::LastEstimate::read(&self.root)
            } else {
                None
            },
            last_audit: if self.parts.last_audit {
                last_audit::LastAudit::read(&self.root)
            } else {
                None
            },
            elapsed: self.start.elapsed(),
            ksm,
            page_size: sys::page_size(),
            mem,
            psi_some_avg10: if self.parts.pressure {
                meminfo::psi_some_avg10(&self.root)
            } else {
                None
            },
            ksmd_cpu: self.ksmd.as_mut().and_then(Ksmd::cpu),
            guests,
            opted_in,
            tuners,
            processes,
        })
    }
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("root", &self.root)
            .field("parts", &self.parts)
            .field("exclude", &self.exclude)
            .finish_non_exhaustive()
    }
}

/// A sample with every KSM file and four processes, for the views' tests.
#[cfg(test)]
pub(crate) fn fixture() -> Sample {
    use crate::kernel::ksm::{AdvisorMode, Run};
    let state = KsmState {
        run: Some(Run::Merge),
        pages_to_scan: Some(100),
        sleep_millisecs: Some(20),
        merge_across_nodes: Some(1),
        use_zero_pages: Some(0),
        max_page_sharing: Some(256),
        stable_node_chains_prune_millisecs: Some(2000),
        smart_scan: Some(1),
        advisor_mode: Some(AdvisorMode::None),
        advisor_max_cpu: Some(70),
        advisor_target_scan_time: Some(200),
        advisor_min_pages_to_scan: Some(500),
        advisor_max_pages_to_scan: Some(30000),
        max_kernel_pages: None,
        pages_shared: Some(10),
        pages_sharing: Some(1990),
        pages_unshared: Some(300),
        pages_volatile: Some(7),
        pages_scanned: Some(123456789),
        pages_skipped: Some(42),
        full_scans: Some(17),
        general_profit: Some(-65536),
        ksm_zero_pages: Some(5),
        stable_node_chains: Some(0),
        stable_node_dups: Some(0),
    };
    let proc_ = |pid: u32, comm: &str, merging: u64, profit: i64| ProcessKsm {
        pid,
        comm: comm.into(),
        guest: None,
        vmid: None,
        qemu: false,
        not_mergeable: None,
        merging_pages: merging,
        zero_pages: 0,
        rmap_items: merging + 3,
        profit_bytes: Some(profit),
        merge_any: Some(false),
        mergeable: Some(true),
        stat: crate::kernel::proc::KsmStat {
            rmap_items: merging + 3,
            zero_pages: Some(0),
            merging_pages: Some(merging),
            process_profit: Some(profit),
            merge_any: Some(false),
            mergeable: Some(true),
        },
    };
    let mut vm = proc_(4242, "qemu-system-x86", 1500, 6_000_000);
    vm.guest = Some("rhel9".into());
    Sample {
        ksm: Some(state),
        page_size: 4096,
        ksmd_cpu: Some(CpuTime {
            ns: 12_340_000_000,
            resolution_ns: 1,
        }),
        processes: vec![
            proc_(100, "small", 1, -128),
            vm,
            proc_(200, "probe \"x\"", 499, 2_000_000),
            proc_(300, "idle", 0, -640),
        ],
        ..Sample::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Root {
        Root::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/obs-6.18"
        ))
    }

    #[test]
    fn reads_only_the_parts_asked_for() {
        let mut s = Sampler::new(&fixture(), Parts::default());
        let a = s.take().unwrap();
        assert!(a.ksm.is_some());
        assert!(a.mem.is_none() && a.ksmd_cpu.is_none() && a.processes.is_empty());
        assert!(a.guests.is_none() && a.opted_in.is_none());
        let mut s = Sampler::new(
            &fixture(),
            Parts {
                processes: Processes::Merged,
                ..Parts::default()
            },
        );
        assert!(!s.take().unwrap().processes.is_empty());
    }

    #[test]
    fn no_ksm_is_none_not_an_error() {
        let t = tempfile::tempdir().unwrap();
        let mut s = Sampler::new(&Root::new(t.path()), Parts::default());
        let a = s.take().unwrap();
        assert_eq!(a.ksm, None);
        assert!(a.ksm_state(s.ksm()).is_err());
    }
}
