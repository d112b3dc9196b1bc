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
