//! Reader and writer of `/sys/kernel/mm/ksm/`.
//!
//! Every file is optional: kernels gain and lose them (`max_kernel_pages`
//! only on 2.6.32, `general_profit` from 6.4, the advisor from 6.8, ...), so
//! an absent file is `None`, "this kernel does not have it", never an error.
//! The files are described once, in [`files`]; writes are typed ([`Knob`],
//! [`Setting`]) and validated before they reach the kernel; a refused write
//! says what the errno means for KSM.

mod files;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use files::{
    AdvisorMode, File, Kind, Knob, KsmState, Limits, Run, Setting, SettingValue, Unit, Value, FILES,
};

use crate::error::{describe_io, Error, Result};
use crate::root::Root;

/// Where KSM lives, relative to the root.
pub const KSM_DIR: &str = "/sys/kernel/mm/ksm";

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

    fn u(&self, name: &str) -> Result<Option<u64>> {
        match self.read_raw(name)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| Error::Parse {
                path: self.path(name),
                value: s,
                expected: "an unsigned integer",
            }),
        }
    }

    /// Read every file of [`FILES`]. Fails with [`Error::NotSupported`]
    /// without KSM.
    pub fn read(&self) -> Result<KsmState> {
        self.require()?;
        KsmState::read_from(
            |name| self.read_raw(name),
            |name, value, expected| Error::Parse {
                path: self.path(name),
                value,
                expected,
            },
        )
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
        for &k in Knob::ALL {
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
