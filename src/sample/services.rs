//! The services around KSM as a reading sees them: which tuners run
//! (ksmtuned, ours or the original script, and dry runs) and whether
//! systemd masked the units. The one place that finds tuners: used by
//! `ksmctl status`, `ksmctl doctor`, the sampler's process trackers, the
//! daemon (which exits when masked) and `ksm-bench`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::kernel::proc::{self, DaemonKind};
use crate::root::Root;

/// The pid file of ksmtuned.
pub const TUNER_PID_FILE: &str = "/run/ksmtuned.pid";

/// The pid file of a `ksmtuned --dry-run`, so that it can run beside the
/// real one.
pub const DRY_RUN_PID_FILE: &str = "/run/ksmtuned.dry-run.pid";

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

/// The process name of every ksmtuned, ours and the original bash script.
pub const TUNER_COMM: &str = "ksmtuned";

/// Whether `pid`, named `comm`, is a ksmtuned that tunes this host's KSM
/// (not a one-shot command, a `--dry-run` or a daemon on another root):
/// what the process trackers ask of each process they meet.
pub fn is_tuner(root: &Root, pid: u32, comm: &str) -> bool {
    comm == TUNER_COMM && proc::is_tuning_daemon(root, pid)
}

/// Tuners running on the host other than the calling process: the pid in
/// `/run/ksmtuned.pid` if alive, and every process named `ksmtuned` (the
/// original bash script has that name too) that tunes this host's KSM.
pub fn running_tuners(root: &Root) -> Vec<RunningTuner> {
    find_tuners(root, TUNER_PID_FILE, DaemonKind::Tuning)
}

/// `ksmtuned --dry-run` daemons on the host (they write nothing): the pid
/// in `/run/ksmtuned.dry-run.pid` if alive, and every process named
/// `ksmtuned` started with `--dry-run` for this root.
pub fn dry_run_tuners(root: &Root) -> Vec<RunningTuner> {
    find_tuners(root, DRY_RUN_PID_FILE, DaemonKind::DryRun)
}

/// The daemons of one kind: the live pid of its pid file, then every
/// other process named ksmtuned of that kind.
fn find_tuners(root: &Root, pid_file: &str, kind: DaemonKind) -> Vec<RunningTuner> {
    let me = root.is_host().then(std::process::id);
    let dry_run = kind == DaemonKind::DryRun;
    let mut out: Vec<RunningTuner> = Vec::new();
    if let Some(pid) = live_pid_from_file(root, pid_file) {
        if Some(pid) != me {
            let comm = proc::comm(root, pid).unwrap_or_default();
            out.push(RunningTuner { pid, comm, dry_run });
        }
    }
    for pid in proc::find_by_comm(root, TUNER_COMM) {
        if Some(pid) != me
            && !out.iter().any(|t| t.pid == pid)
            && proc::daemon_kind(root, pid) == Some(kind)
        {
            out.push(RunningTuner {
                pid,
                comm: TUNER_COMM.to_string(),
                dry_run,
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
            if std::fs::read_link(&p).is_ok_and(|t| t == Path::new("/dev/null")) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuners_and_dry_runs_by_pid_file_and_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mk = |pid: u32, comm: &str, cmdline: &str| {
            let d = dir.path().join(format!("proc/{pid}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(d.join("cmdline"), cmdline.replace(' ', "\0")).unwrap();
        };
        mk(10, "ksmtuned", "ksmtuned ");
        mk(11, "ksmtuned", "ksmtuned --dry-run ");
        mk(12, "ksmtuned", "ksmtuned retune ");
        mk(13, "ksmtuned", "ksmtuned --root /tmp/x ");
        mk(20, "renamed", "x ");
        mk(21, "other", "y ");
        fs::create_dir_all(dir.path().join("run")).unwrap();
        fs::write(dir.path().join("run/ksmtuned.pid"), "20\n").unwrap();
        fs::write(dir.path().join("run/ksmtuned.dry-run.pid"), "21\n").unwrap();
        let pids = |v: Vec<RunningTuner>| v.iter().map(|t| (t.pid, t.dry_run)).collect::<Vec<_>>();
        assert_eq!(pids(running_tuners(&root)), [(20, false), (10, false)]);
        assert_eq!(pids(dry_run_tuners(&root)), [(21, true), (11, true)]);
        assert!(is_tuner(&root, 10, "ksmtuned"));
        assert!(!is_tuner(&root, 11, "ksmtuned") && !is_tuner(&root, 12, "ksmtuned"));
        assert!(!is_tuner(&root, 13, "ksmtuned") && !is_tuner(&root, 20, "renamed"));
    }
}
