//! Taking ksmd over for an experiment: `ksm-bench`'s runs and the tests on
//! the real kernel (which reach this through `tests/support`).
//!
//! There is one ksmd per machine, so such programs serialise on one lock
//! file ([`KsmdLock`]), and put back every knob they changed, also when
//! they fail ([`Experiment`]'s drop). This is no part of `ksmctl` or
//! `ksmtuned`: they never take ksmd over, and the layers keep them from
//! reaching `bench` (tests/architecture.rs).

use std::fs;
use std::path::Path;

use crate::error::Result;
use crate::kernel::ksm::{Knob, Ksm, KsmState, Run};
use crate::Error;

/// The writable knobs as they were, to put back after an experiment
/// (`ksm-bench`, the tests).
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
        for k in Knob::ALL.iter().copied() {
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

impl Experiment {
    /// Wait for the lock, then snapshot the knobs of `ksm`. It does not
    /// look at what is merged already: `ksm-bench` makes that check itself
    /// (it has `--force`), and the tests refuse a host in use in
    /// `tests/support` (`Experiment::begin`, with [`Experiment::new`]).
    pub fn begin_even_if_merged(ksm: &Ksm) -> Result<Experiment> {
        let lock = KsmdLock::acquire()?;
        let snapshot = Snapshot::take(ksm)?;
        Ok(Experiment::new(ksm, lock, snapshot))
    }

    /// An experiment from a snapshot taken under the lock, for a program
    /// that looks at the snapshot before it changes anything (and may
    /// drop the lock and the snapshot instead, restoring nothing).
    pub fn new(ksm: &Ksm, lock: KsmdLock, snapshot: Snapshot) -> Experiment {
        Experiment {
            ksm: ksm.clone(),
            snapshot,
            _lock: lock,
        }
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
