//! The services around KSM as a reading sees them: which tuners run
//! (ksmtuned, ours or the original script) and whether systemd masked the
//! units. Used by `ksmctl status`, `ksmctl doctor`, the daemon (which
//! exits when masked) and `ksm-bench`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::kernel::proc;
use crate::root::Root;

/// The pid file of ksmtuned, in a directory of its own: the daemon
/// creates the file itself (in its own SELinux domain, so the policy's
/// type transition labels it), and the unit's `RuntimeDirectory=ksmtuned`
/// makes that directory writable in its sandbox and removes it at stop.
pub const TUNER_PID_FILE: &str = "/run/ksmtuned/ksmtuned.pid";

/// Where earlier packages kept the pid file (its unit created
/// the file before the start): still read, so that `ksmctl retune` and
/// the tuner detection find a daemon started by an older package.
pub const CLASSIC_PID_FILE: &str = "/run/ksmtuned.pid";

/// A running tuner (ksmtuned, ours or the original).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunningTuner {
    pub pid: u32,
    /// Its process name.
    pub comm: String,
    /// A `ksmtuned --dry-run`: it decides and logs but writes nothing.
    pub dry_run: bool,
}

/// Read a pid file: `Some(pid)` only when the process still exists
/// (`/proc/PID` under the root), so stale files are ignored.
pub fn live_pid_from_file(root: &Root, pid_file: &str) -> Option<u32> {
    let text = fs::read_to_string(root.join(pid_file)).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    (pid > 0 && root.join(format!("/proc/{pid}")).is_dir()).then_some(pid)
}

/// Tuners running on the host other than the calling process: the pid in
/// `/run/ksmtuned/ksmtuned.pid` (or the older `/run/ksmtuned.pid`) if
/// alive, and every process named `ksmtuned` (the original bash script has
/// that name too).
pub fn running_tuners(root: &Root) -> Vec<RunningTuner> {
    // Never the calling process itself, on a test root too (a fixture's
    // /proc may list the test's daemon under its real pid).
    let me = std::process::id();
    let mut out: Vec<RunningTuner> = Vec::new();
    // The older file may be a leftover whose pid now belongs to another
    // program: it counts only for a process named ksmtuned.
    let classic = live_pid_from_file(root, CLASSIC_PID_FILE)
        .filter(|&p| proc::comm(root, p).as_deref() == Some("ksmtuned"));
    for pid in live_pid_from_file(root, TUNER_PID_FILE)
        .into_iter()
        .chain(classic)
    {
        if pid != me && !out.iter().any(|t| t.pid == pid) {
            let comm = proc::comm(root, pid).unwrap_or_default();
            out.push(RunningTuner {
                pid,
                comm,
                dry_run: false,
            });
        }
    }
    for pid in proc::find_by_comm(root, "ksmtuned") {
        if pid != me && !out.iter().any(|t| t.pid == pid) && proc::is_tuning_daemon(root, pid) {
            out.push(RunningTuner {
                pid,
                comm: "ksmtuned".to_string(),
                dry_run: false,
            });
        }
    }
    out
}

/// A masked `ksm.service` or `ksmtuned.service` (a link to /dev/null, as
/// tuned's realtime and cpu-partitioning profiles leave them).
pub fn masked_unit(root: &Root) -> Option<PathBuf> {
    for dir in ["/etc/systemd/system", "/run/systemd/system"] {
        for unit in ["ksm.service", "ksmtuned.service"] {
            let p = root.join(format!("{dir}/{unit}"));
            match std::fs::read_link(&p) {
                Ok(t) if t == Path::new("/dev/null") => return Some(p),
                Ok(_) => {}
                // Absent, or a plain file (EINVAL): not masked.
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::EINVAL) => {}
                // Refused (an SELinux policy without systemd_unit_t search):
                // systemd itself would not start a masked unit, so going on
                // is right; one debug line says what was not checked.
                Err(e) => log::debug!("cannot check whether {} is masked: {e}", p.display()),
            }
        }
    }
    None
}
