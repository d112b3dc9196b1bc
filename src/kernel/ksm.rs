//! Reader and writer of `/sys/kernel/mm/ksm/`.
//!
//! Every file is optional: kernels gain and lose them (`max_kernel_pages`
//! only on 2.6.32, `general_profit` from 6.4, the advisor from 6.8, ...), so
//! an absent file is `None`, "this kernel does not have it", never an error.
//! Writes are typed ([`Knob`], [`Setting`]) and validated before they reach
//! the kernel; a refused write says what the errno means for KSM.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{describe_io, Error, Result};
use crate::root::Root;

/// Where KSM lives, relative to the root.
pub const KSM_DIR: &str = "/sys/kernel/mm/ksm";

/// The values of the `run` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Run {
    /// 0: ksmd stopped, merged pages stay merged.
    Stop,
    /// 1: ksmd scanning.
    Merge,
    /// 2: ksmd stopped and every merged page unmerged.
    Unmerge,
}

impl Run {
    /// The number written to / read from the file.
    pub fn as_u8(self) -> u8 {
        match self {
            Run::Stop => 0,
            Run::Merge => 1,
            Run::Unmerge => 2,
        }
    }

    fn from_u64(v: u64) -> Option<Run> {
        match v {
            0 => Some(Run::Stop),
            1 => Some(Run::Merge),
            2 => Some(Run::Unmerge),
            _ => None,
        }
    }
}

/// The kernel's scan-time advisor selection (`advisor_mode`, Linux 6.8+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdvisorMode {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "scan-time")]
    ScanTime,
}

impl AdvisorMode {
    /// The kernel's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            AdvisorMode::None => "none",
            AdvisorMode::ScanTime => "scan-time",
        }
    }

    /// Parse the file's `[none] scan-time` form (the selected word is in
    /// brackets) or a bare mode name.
    pub fn parse_selection(s: &str) -> Option<AdvisorMode> {
        let s = s.trim();
        let selected = if s.contains('[') {
            let start = s.find('[')? + 1;
            let end = s[start..].find(']')? + start;
            &s[start..end]
        } else {
            s
        };
        selected.parse().ok()
    }
}

impl FromStr for AdvisorMode {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s.trim() {
            "none" => Ok(AdvisorMode::None),
            "scan-time" => Ok(AdvisorMode::ScanTime),
            _ => Err(()),
        }
    }
}

impl fmt::Display for AdvisorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reading of every file in `/sys/kernel/mm/ksm/`; `None` = absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KsmState {
    // Tunables.
    pub run: Option<Run>,
    pub pages_to_scan: Option<u64>,
    pub sleep_millisecs: Option<u64>,
    pub merge_across_nodes: Option<u64>,
    pub use_zero_pages: Option<u64>,
    pub max_page_sharing: Option<u64>,
    pub stable_node_chains_prune_millisecs: Option<u64>,
    pub smart_scan: Option<u64>,
    pub advisor_mode: Option<AdvisorMode>,
    pub advisor_max_cpu: Option<u64>,
    pub advisor_target_scan_time: Option<u64>,
    pub advisor_min_pages_to_scan: Option<u64>,
    pub advisor_max_pages_to_scan: Option<u64>,
    pub max_kernel_pages: Option<u64>,
    // Counters.
    pub pages_shared: Option<u64>,
    pub pages_sharing: Option<u64>,
    pub pages_unshared: Option<u64>,
    pub pages_volatile: Option<u64>,
    pub pages_scanned: Option<u64>,
    pub pages_skipped: Option<u64>,
    pub full_scans: Option<u64>,
    pub general_profit: Option<i64>,
    pub ksm_zero_pages: Option<i64>,
    pub stable_node_chains: Option<u64>,
    pub stable_node_dups: Option<u64>,
}

impl KsmState {
    /// Pages saved: `pages_sharing + ksm_zero_pages` (zero pages only count
    /// when positive; the kernel's counter is signed).
    pub fn saved_pages(&self) -> u64 {
        self.pages_sharing.unwrap_or(0) + self.ksm_zero_pages.unwrap_or(0).max(0) as u64
    }

    /// Memory saved in bytes for the given page size.
    pub fn saved_bytes(&self, page_size: u64) -> u64 {
        self.saved_pages().saturating_mul(page_size)
    }

    /// Whether the advisor is choosing `pages_to_scan`.
    pub fn advisor_active(&self) -> bool {
        self.advisor_mode == Some(AdvisorMode::ScanTime)
    }
}

/// Whether a file holds a setting or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Knob,
    Counter,
}

/// Every file the kernel has had in `/sys/kernel/mm/ksm/`, in display order.
pub const FILES: &[(&str, FileKind)] = &[
    ("run", FileKind::Knob),
    ("pages_to_scan", FileKind::Knob),
    ("sleep_millisecs", FileKind::Knob),
    ("merge_across_nodes", FileKind::Knob),
    ("use_zero_pages", FileKind::Knob),
    ("max_page_sharing", FileKind::Knob),
    ("stable_node_chains_prune_millisecs", FileKind::Knob),
    ("smart_scan", FileKind::Knob),
    ("advisor_mode", FileKind::Knob),
    ("advisor_max_cpu", FileKind::Knob),
    ("advisor_target_scan_time", FileKind::Knob),
    ("advisor_min_pages_to_scan", FileKind::Knob),
    ("advisor_max_pages_to_scan", FileKind::Knob),
    ("max_kernel_pages", FileKind::Knob),
    ("pages_shared", FileKind::Counter),
    ("pages_sharing", FileKind::Counter),
    ("pages_unshared", FileKind::Counter),
    ("pages_volatile", FileKind::Counter),
    ("pages_scanned", FileKind::Counter),
    ("pages_skipped", FileKind::Counter),
    ("full_scans", FileKind::Counter),
    ("general_profit", FileKind::Counter),
    ("ksm_zero_pages", FileKind::Counter),
    ("stable_node_chains", FileKind::Counter),
    ("stable_node_dups", FileKind::Counter),
];

/// A writable KSM setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Knob {
    Run,
    PagesToScan,
    SleepMillisecs,
    MergeAcrossNodes,
    UseZeroPages,
    MaxPageSharing,
    StableNodeChainsPruneMillisecs,
    SmartScan,
    AdvisorMode,
    AdvisorMaxCpu,
    AdvisorTargetScanTime,
    AdvisorMinPagesToScan,
    AdvisorMaxPagesToScan,
    MaxKernelPages,
}

impl Knob {
    /// All knobs, in the order they are shown.
    pub const ALL: [Knob; 14] = [
        Knob::Run,
        Knob::PagesToScan,
        Knob::SleepMillisecs,
        Knob::MergeAcrossNodes,
        Knob::UseZeroPages,
        Knob::MaxPageSharing,
        Knob::StableNodeChainsPruneMillisecs,
        Knob::SmartScan,
        Knob::AdvisorMode,
        Knob::AdvisorMaxCpu,
        Knob::AdvisorTargetScanTime,
        Knob::AdvisorMinPagesToScan,
        Knob::AdvisorMaxPagesToScan,
        Knob::MaxKernelPages,
    ];

    /// The file name in `/sys/kernel/mm/ksm/`.
    pub fn name(self) -> &'static str {
        match self {
            Knob::Run => "run",
            Knob::PagesToScan => "pages_to_scan",
            Knob::SleepMillisecs => "sleep_millisecs",
            Knob::MergeAcrossNodes => "merge_across_nodes",
            Knob::UseZeroPages => "use_zero_pages",
            Knob::MaxPageSharing => "max_page_sharing",
            Knob::StableNodeChainsPruneMillisecs => "stable_node_chains_prune_millisecs",
            Knob::SmartScan => "smart_scan",
            Knob::AdvisorMode => "advisor_mode",
            Knob::AdvisorMaxCpu => "advisor_max_cpu",
            Knob::AdvisorTargetScanTime => "advisor_target_scan_time",
            Knob::AdvisorMinPagesToScan => "advisor_min_pages_to_scan",
            Knob::AdvisorMaxPagesToScan => "advisor_max_pages_to_scan",
            Knob::MaxKernelPages => "max_kernel_pages",
        }
    }

    /// Look a knob up by its file name.
    pub fn from_name(name: &str) -> Result<Knob> {
        Knob::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| Error::UnknownKey {
                key: name.to_string(),
                known: Knob::ALL.map(|k| k.name()).join(", "),
            })
    }

    /// Knobs the kernel refuses to change (EBUSY) while pages are merged.
    pub fn needs_unmerge(self) -> bool {
        matches!(self, Knob::MergeAcrossNodes | Knob::MaxPageSharing)
    }

    /// Validate and normalise a user value for this knob.
    pub fn parse(self, value: &str) -> Result<Setting> {
        let v = value.trim();
        let invalid = |reason: &str| Error::InvalidValue {
            key: self.name().to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let uint = |max: u64| -> Result<u64> {
            let n: u64 = v
                .parse()
                .map_err(|_| invalid("not a non-negative whole number"))?;
            if n > max {
                return Err(invalid(&format!("larger than the kernel's limit {max}")));
            }
            Ok(n)
        };
        let flag = || -> Result<u64> {
            match v {
                "0" | "n" | "no" | "off" | "false" => Ok(0),
                "1" | "y" | "yes" | "on" | "true" => Ok(1),
                _ => Err(invalid("expected 0 or 1")),
            }
        };
        let u32max = u64::from(u32::MAX);
        let value = match self {
            Knob::Run => match v {
                "0" | "stop" => 0,
                "1" | "merge" | "start" => 1,
                "2" | "unmerge" => 2,
                _ => {
                    return Err(invalid(
                        "expected 0 (stop), 1 (run) or 2 (stop and unmerge all)",
                    ))
                }
            },
            Knob::PagesToScan | Knob::SleepMillisecs | Knob::StableNodeChainsPruneMillisecs => {
                uint(u32max)?
            }
            Knob::MergeAcrossNodes | Knob::UseZeroPages | Knob::SmartScan => flag()?,
            Knob::MaxPageSharing => {
                let n = uint(i32::MAX as u64)?;
                if n < 2 {
                    return Err(invalid("must be at least 2"));
                }
                n
            }
            Knob::AdvisorMode => {
                let m: AdvisorMode = v
                    .parse()
                    .map_err(|_| invalid("expected none or scan-time"))?;
                return Ok(Setting {
                    knob: self,
                    value: SettingValue::Mode(m),
                });
            }
            Knob::AdvisorMaxCpu => {
                let n = uint(100)?;
                if n == 0 {
                    return Err(invalid("must be a percentage from 1 to 100"));
                }
                n
            }
            Knob::AdvisorTargetScanTime
            | Knob::AdvisorMinPagesToScan
            | Knob::AdvisorMaxPagesToScan => {
                let n = uint(u64::from(u32::MAX))?;
                if n == 0 {
                    return Err(invalid("must be at least 1 (0 would stall ksmd)"));
                }
                n
            }
            Knob::MaxKernelPages => uint(u64::MAX)?,
        };
        Ok(Setting {
            knob: self,
            value: SettingValue::Number(value),
        })
    }

    /// The current value of this knob in a state, as text (None = absent).
    pub fn current(self, s: &KsmState) -> Option<String> {
        let n = match self {
            Knob::Run => s.run.map(|r| u64::from(r.as_u8())),
            Knob::PagesToScan => s.pages_to_scan,
            Knob::SleepMillisecs => s.sleep_millisecs,
            Knob::MergeAcrossNodes => s.merge_across_nodes,
            Knob::UseZeroPages => s.use_zero_pages,
            Knob::MaxPageSharing => s.max_page_sharing,
            Knob::StableNodeChainsPruneMillisecs => s.stable_node_chains_prune_millisecs,
            Knob::SmartScan => s.smart_scan,
            Knob::AdvisorMode => return s.advisor_mode.map(|m| m.to_string()),
            Knob::AdvisorMaxCpu => s.advisor_max_cpu,
            Knob::AdvisorTargetScanTime => s.advisor_target_scan_time,
            Knob::AdvisorMinPagesToScan => s.advisor_min_pages_to_scan,
            Knob::AdvisorMaxPagesToScan => s.advisor_max_pages_to_scan,
            Knob::MaxKernelPages => s.max_kernel_pages,
        };
        n.map(|n| n.to_string())
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingValue {
    Number(u64),
    Mode(AdvisorMode),
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Number(n) => write!(f, "{n}"),
            SettingValue::Mode(m) => write!(f, "{m}"),
        }
    }
}

/// A knob with a validated value, ready to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub knob: Knob,
    pub value: SettingValue,
}

impl Setting {
    /// A numeric setting, validated like user input.
    pub fn number(knob: Knob, n: u64) -> Result<Setting> {
        knob.parse(&n.to_string())
    }

    /// `run` = the given state.
    pub fn run(run: Run) -> Setting {
        Setting {
            knob: Knob::Run,
            value: SettingValue::Number(u64::from(run.as_u8())),
        }
    }

    /// Parse `KEY=VALUE`.
    pub fn parse_assignment(s: &str) -> Result<Setting> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| Error::Other(format!("expected KEY=VALUE, got {s:?}")))?;
        Knob::from_name(k.trim())?.parse(v)
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.knob, self.value)
    }
}

/// A handle on the KSM directory under a root.
#[derive(Debug, Clone)]
pub struct Ksm {
    dir: PathBuf,
}

impl Ksm {
    /// KSM under `root` (which need not have KSM: see [`Ksm::supported`]).
    pub fn new(root: &Root) -> Ksm {
        Ksm {
            dir: root.join(KSM_DIR),
        }
    }

    /// The directory, e.g. `/sys/kernel/mm/ksm`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one file.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether this kernel has KSM at all.
    pub fn supported(&self) -> bool {
        self.dir.is_dir()
    }

    /// Fail with [`Error::NotSupported`] when there is no KSM.
    /// A directory that cannot be looked at (EACCES: a security policy
    /// denying the daemon sysfs) is a read error, not "no KSM".
    pub fn require(&self) -> Result<()> {
        if let Err(e) = fs::metadata(&self.dir) {
            if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
                return Err(Error::Read {
                    path: self.dir.clone(),
                    source: e,
                });
            }
        }
        if self.supported() {
            Ok(())
        } else {
            Err(Error::NotSupported {
                path: self.dir.clone(),
            })
        }
    }

    /// Read one file's text, `None` when the kernel does not have it.
    pub fn read_raw(&self, name: &str) -> Result<Option<String>> {
        let path = self.path(name);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    fn read_num<T: FromStr>(&self, name: &str, expected: &'static str) -> Result<Option<T>> {
        match self.read_raw(name)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| Error::Parse {
                path: self.path(name),
                value: s,
                expected,
            }),
        }
    }

    fn u(&self, name: &str) -> Result<Option<u64>> {
        self.read_num(name, "an unsigned integer")
    }

    fn i(&self, name: &str) -> Result<Option<i64>> {
        self.read_num(name, "a signed integer")
    }

    /// Read every file. Fails with [`Error::NotSupported`] without KSM.
    pub fn read(&self) -> Result<KsmState> {
        self.require()?;
        let run = match self.u("run")? {
            None => None,
            Some(v) => Some(Run::from_u64(v).ok_or_else(|| Error::Parse {
                path: self.path("run"),
                value: v.to_string(),
                expected: "0, 1 or 2",
            })?),
        };
        let advisor_mode = match self.read_raw("advisor_mode")? {
            None => None,
            Some(s) => Some(
                AdvisorMode::parse_selection(&s).ok_or_else(|| Error::Parse {
                    path: self.path("advisor_mode"),
                    value: s.clone(),
                    expected: "a selection like \"[none] scan-time\"",
                })?,
            ),
        };
        Ok(KsmState {
            run,
            pages_to_scan: self.u("pages_to_scan")?,
            sleep_millisecs: self.u("sleep_millisecs")?,
            merge_across_nodes: self.u("merge_across_nodes")?,
            use_zero_pages: self.u("use_zero_pages")?,
            max_page_sharing: self.u("max_page_sharing")?,
            stable_node_chains_prune_millisecs: self.u("stable_node_chains_prune_millisecs")?,
            smart_scan: self.u("smart_scan")?,
            advisor_mode,
            advisor_max_cpu: self.u("advisor_max_cpu")?,
            advisor_target_scan_time: self.u("advisor_target_scan_time")?,
            advisor_min_pages_to_scan: self.u("advisor_min_pages_to_scan")?,
            advisor_max_pages_to_scan: self.u("advisor_max_pages_to_scan")?,
            max_kernel_pages: self.u("max_kernel_pages")?,
            pages_shared: self.u("pages_shared")?,
            pages_sharing: self.u("pages_sharing")?,
            pages_unshared: self.u("pages_unshared")?,
            pages_volatile: self.u("pages_volatile")?,
            pages_scanned: self.u("pages_scanned")?,
            pages_skipped: self.u("pages_skipped")?,
            full_scans: self.u("full_scans")?,
            general_profit: self.i("general_profit")?,
            ksm_zero_pages: self.i("ksm_zero_pages")?,
            stable_node_chains: self.u("stable_node_chains")?,
            stable_node_dups: self.u("stable_node_dups")?,
        })
    }

    /// Read `run` alone (the daemons' cheapest check).
    pub fn run_state(&self) -> Result<Option<Run>> {
        Ok(self.u("run")?.and_then(Run::from_u64))
    }

    /// Write a validated setting. The file must exist: a missing file means
    /// this kernel lacks the knob, and it is never created.
    pub fn write(&self, setting: Setting) -> Result<()> {
        let name = setting.knob.name();
        let path = self.path(name);
        let value = setting.value.to_string();
        let res = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()));
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.supported() {
                    Err(Error::Missing {
                        name: name.to_string(),
                        path,
                    })
                } else {
                    Err(Error::NotSupported {
                        path: self.dir.clone(),
                    })
                }
            }
            Err(source) => Err(Error::Write {
                hint: self.hint(setting, &source),
                reason: describe_io(&source),
                path,
                value,
                source,
            }),
        }
    }

    /// What an errno means for KSM, for the given write.
    fn hint(&self, setting: Setting, e: &io::Error) -> String {
        let knob = setting.knob;
        match e.raw_os_error() {
            Some(libc::EBUSY) if knob.needs_unmerge() => {
                let shared = self
                    .u("pages_shared")
                    .ok()
                    .flatten()
                    .map(|n| format!(", and pages_shared = {n}"))
                    .unwrap_or_default();
                format!(
                    " (the kernel changes {knob} only while no pages are merged{shared}: \
                     unmerge first with `ksmctl set --unmerge {setting}`, which writes run=2, \
                     sets {knob} and restores run)"
                )
            }
            Some(libc::EINVAL) if knob == Knob::PagesToScan => {
                let mode = self.read_raw("advisor_mode").ok().flatten();
                match mode.as_deref().and_then(AdvisorMode::parse_selection) {
                    Some(AdvisorMode::ScanTime) => " (the kernel's scan-time advisor is choosing \
                         pages_to_scan: set advisor_mode=none first)"
                        .to_string(),
                    _ => " (the kernel rejected the value)".to_string(),
                }
            }
            Some(libc::EINVAL) => " (the kernel rejected the value as invalid)".to_string(),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                " (changing KSM settings needs root, and a writable /sys)".to_string()
            }
            Some(libc::ENOMEM) if knob == Knob::Run => " (not enough memory to unmerge every \
                 page: run fell back to 0 and some pages stay merged)"
                .to_string(),
            Some(libc::EINTR) if knob == Knob::Run => {
                " (unmerging was interrupted: run fell back to 0)".to_string()
            }
            _ => String::new(),
        }
    }

    /// Write `run`.
    pub fn set_run(&self, run: Run) -> Result<()> {
        self.write(Setting::run(run))
    }

    /// Write a knob that needs no merged pages (merge_across_nodes,
    /// max_page_sharing) the safe way: remember run, unmerge (run=2), write,
    /// restore run. The restore is attempted even when the write fails.
    pub fn write_with_unmerge(&self, setting: Setting) -> Result<()> {
        let before = self.run_state()?.unwrap_or(Run::Stop);
        self.set_run(Run::Unmerge)?;
        let res = self.write(setting);
        let restore = match before {
            Run::Unmerge => Ok(()),
            r => self.set_run(r),
        };
        res.and(restore)
    }
}

/// The writable knobs as they were, to put back after an experiment
/// (tests, `ksm-bench`).
#[derive(Debug, Clone)]
pub struct Snapshot {
    state: KsmState,
}

impl Snapshot {
    /// Take a snapshot of every knob.
    pub fn take(ksm: &Ksm) -> Result<Snapshot> {
        Ok(Snapshot { state: ksm.read()? })
    }

    /// The state it was taken from.
    pub fn state(&self) -> &KsmState {
        &self.state
    }

    /// Put every knob back, in an order the kernel accepts: the
    /// unmerge-only knobs (with run=2 if they changed), then the advisor
    /// (switching it resets pages_to_scan), the other knobs, and run last.
    /// Every knob is attempted; the first error is returned.
    pub fn restore(&self, ksm: &Ksm) -> Result<()> {
        let now = ksm.read()?;
        let mut first_err = None;
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        };
        let changed = |k: Knob| {
            Knob::current(k, &self.state).is_some() && k.current(&now) != k.current(&self.state)
        };
        let put = |k: Knob| -> Result<()> {
            match k.current(&self.state) {
                Some(v) => ksm.write(k.parse(&v)?),
                None => Ok(()),
            }
        };
        if changed(Knob::MergeAcrossNodes) || changed(Knob::MaxPageSharing) {
            keep(ksm.set_run(Run::Unmerge));
            keep(put(Knob::MergeAcrossNodes));
            keep(put(Knob::MaxPageSharing));
        }
        keep(put(Knob::AdvisorMode));
        for k in Knob::ALL {
            if matches!(
                k,
                Knob::Run
                    | Knob::AdvisorMode
                    | Knob::MergeAcrossNodes
                    | Knob::MaxPageSharing
                    | Knob::MaxKernelPages
            ) || !changed(k)
            {
                continue;
            }
            // The advisor refuses pages_to_scan; it owns it then.
            if k == Knob::PagesToScan && self.state.advisor_active() {
                continue;
            }
            keep(put(k));
        }
        if changed(Knob::MaxKernelPages) {
            keep(put(Knob::MaxKernelPages));
        }
        keep(put(Knob::Run));
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// An exclusive, advisory lock for programs that take ksmd over for an
/// experiment (the real-kernel tests, `ksm-bench`): there is one ksmd per
/// machine, so such programs run one at a time. Released on drop.
pub struct KsmdLock {
    _file: fs::File,
}

impl KsmdLock {
    /// The lock file.
    pub const PATH: &'static str = "/run/lock/ksmtuned-ksmd.lock";

    /// Wait for the lock.
    pub fn acquire() -> Result<KsmdLock> {
        let path = Path::new(Self::PATH);
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
        crate::kernel::sys::flock_exclusive(&file, true).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(KsmdLock { _file: file })
    }
}

/// Exclusive use of ksmd for an experiment: holds the [`KsmdLock`] and a
/// [`Snapshot`], and on drop (also when a test panics) unmerges what the
/// experiment merged when the host had nothing merged before, and restores
/// every knob.
pub struct Experiment {
    ksm: Ksm,
    snapshot: Snapshot,
    _lock: KsmdLock,
}

/// The environment variable that lets experiments (the tests on the real
/// kernel) run on a host where memory is merged already: they may unmerge
/// it (`run=2`) or retune ksmd. `scripts/test` sets it when `CI=true`.
pub const HOST_IN_USE_OK: &str = "KSMTUNED_TEST_HOST_IN_USE_OK";

impl Experiment {
    /// Wait for the lock, then snapshot the knobs of `ksm`. Refused
    /// ([`Error::HostInUse`]) when memory is merged already (pages_sharing
    /// or ksm_zero_pages above 0 before the experiment merged anything:
    /// someone else's, such as the guests of a hypervisor in use), unless
    /// [`HOST_IN_USE_OK`] is `1`: an experiment unmerges and retunes, and
    /// unmerging a host's guests is a sudden rise in their memory use.
    pub fn begin(ksm: &Ksm) -> Result<Experiment> {
        let opted_in = std::env::var(HOST_IN_USE_OK).is_ok_and(|v| v == "1");
        Self::begin_checked(ksm, !opted_in)
    }

    /// [`Experiment::begin`] without the check for merged memory, for a
    /// program that makes its own (`ksm-bench`, which has `--force`).
    pub fn begin_even_if_merged(ksm: &Ksm) -> Result<Experiment> {
        Self::begin_checked(ksm, false)
    }

    /// [`Experiment::begin`] for a test: `None`, after printing
    /// `SKIPPED: <test>: <why>` to standard error, when the host has merged
    /// memory that is not the test's; panics on other errors. The test's
    /// name is the thread's (libtest names it so).
    pub fn begin_or_skip(ksm: &Ksm) -> Option<Experiment> {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("test");
        match Self::begin(ksm) {
            Ok(e) => Some(e),
            Err(e @ Error::HostInUse { .. }) => {
                eprintln!("SKIPPED: {test}: {e}");
                None
            }
            Err(e) => panic!("{test}: cannot take ksmd over: {e}"),
        }
    }

    fn begin_checked(ksm: &Ksm, refuse_merged: bool) -> Result<Experiment> {
        let lock = KsmdLock::acquire()?;
        let snapshot = Snapshot::take(ksm)?;
        if refuse_merged {
            let st = snapshot.state();
            let (sharing, zero) = (
                st.pages_sharing.unwrap_or(0),
                st.ksm_zero_pages.unwrap_or(0).max(0) as u64,
            );
            if sharing > 0 || zero > 0 {
                return Err(Error::HostInUse {
                    pages_sharing: sharing,
                    zero_pages: zero,
                    opt_in: HOST_IN_USE_OK,
                });
            }
        }
        Ok(Experiment {
            ksm: ksm.clone(),
            snapshot,
            _lock: lock,
        })
    }

    /// The knobs as they were.
    pub fn before(&self) -> &KsmState {
        self.snapshot.state()
    }

    /// Restore now (also done on drop). Every step is attempted even when
    /// an earlier one fails; the first error is returned.
    pub fn restore(&self) -> Result<()> {
        let mut first = None;
        match self.ksm.read() {
            Ok(now) => {
                if self.snapshot.state().pages_shared == Some(0)
                    && (now.pages_shared.unwrap_or(0) > 0 || now.pages_sharing.unwrap_or(0) > 0)
                {
                    // Nothing was merged before: leave nothing merged
                    // behind. This also clears the counts of exited
                    // processes, which a stopped ksmd would keep showing.
                    // Unmerging can be interrupted (EINTR): try again.
                    for attempt in 1..=5 {
                        match self.ksm.set_run(Run::Unmerge) {
                            Ok(()) => break,
                            Err(e) if attempt < 5 && e.raw_os_error() == Some(libc::EINTR) => {}
                            Err(e) => {
                                first.get_or_insert(e);
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = self.snapshot.restore(&self.ksm) {
            first.get_or_insert(e);
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Experiment {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("warning: could not restore KSM settings: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisor_selection() {
        assert_eq!(
            AdvisorMode::parse_selection("[none] scan-time"),
            Some(AdvisorMode::None)
        );
        assert_eq!(
            AdvisorMode::parse_selection("none [scan-time]\n"),
            Some(AdvisorMode::ScanTime)
        );
        assert_eq!(
            AdvisorMode::parse_selection("scan-time"),
            Some(AdvisorMode::ScanTime)
        );
        assert_eq!(AdvisorMode::parse_selection("[bogus] none"), None);
        assert_eq!(AdvisorMode::parse_selection("[none"), None);
    }

    #[test]
    fn knob_validation() {
        assert_eq!(Knob::Run.parse("2").unwrap().to_string(), "run=2");
        assert!(Knob::Run.parse("3").is_err());
        assert!(Knob::PagesToScan.parse("-1").is_err());
        assert!(Knob::PagesToScan.parse("abc").is_err());
        assert!(Knob::PagesToScan.parse("4294967296").is_err());
        assert_eq!(
            Knob::PagesToScan.parse(" 4294967295 ").unwrap().value,
            SettingValue::Number(4294967295)
        );
        assert!(Knob::MaxPageSharing.parse("1").is_err());
        assert!(Knob::MaxPageSharing.parse("2").is_ok());
        assert!(Knob::UseZeroPages.parse("2").is_err());
        assert_eq!(
            Knob::SmartScan.parse("yes").unwrap().value,
            SettingValue::Number(1)
        );
        assert!(Knob::AdvisorMaxCpu.parse("0").is_err());
        assert!(Knob::AdvisorMaxCpu.parse("101").is_err());
        assert!(Knob::AdvisorMaxPagesToScan.parse("0").is_err());
        assert_eq!(
            Knob::AdvisorMode.parse("scan-time").unwrap().to_string(),
            "advisor_mode=scan-time"
        );
        assert!(Knob::AdvisorMode.parse("fast").is_err());
        let e = Knob::from_name("pages_to_scna").unwrap_err().to_string();
        assert!(
            e.contains("pages_to_scna") && e.contains("sleep_millisecs"),
            "{e}"
        );
        assert!(Setting::parse_assignment("run").is_err());
        assert_eq!(
            Setting::parse_assignment("sleep_millisecs=20")
                .unwrap()
                .to_string(),
            "sleep_millisecs=20"
        );
    }

    #[test]
    fn every_knob_is_a_file() {
        for k in Knob::ALL {
            assert!(FILES
                .iter()
                .any(|(n, kind)| *n == k.name() && *kind == FileKind::Knob));
        }
        assert_eq!(
            FILES.iter().filter(|(_, k)| *k == FileKind::Knob).count(),
            Knob::ALL.len()
        );
    }

    #[test]
    fn saved_pages_counts_zero_pages_when_positive() {
        let s = KsmState {
            pages_sharing: Some(10),
            ksm_zero_pages: Some(5),
            ..Default::default()
        };
        assert_eq!(s.saved_pages(), 15);
        assert_eq!(s.saved_bytes(4096), 15 * 4096);
        let s = KsmState {
            pages_sharing: Some(10),
            ksm_zero_pages: Some(-3),
            ..Default::default()
        };
        assert_eq!(s.saved_pages(), 10);
    }
}
