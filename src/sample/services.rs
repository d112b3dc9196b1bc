//! The services around KSM as a reading sees them: which tuners run
//! (ksmtuned, ours or the original script, and dry runs) and whether
//! systemd masked the units. The one place that finds running tuners:
//! used by `ksmctl status`, `ksmctl doctor`, the daemon (which exits when
//! masked) and `ksm-bench`.

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

/// The pid file of a `ksmtuned --dry-run`, so that it can run beside the
/// real one.
pub const DRY_RUN_PID_FILE: &str = "/run/ksmtuned.dry-run.pid";

/// `ksmtuned --dry-run` daemons on the host (they write nothing): the pid
/// in `/run/ksmtuned.dry-run.pid` if alive, and every process named
/// `ksmtuned` started with `--dry-run` for this root.
pub fn dry_run_tuners(root: &Root) -> Vec<RunningTuner> {
    let me = root.is_host().then(std::process::id);
    let mut out: Vec<RunningTuner> = Vec::new();
    if let Some(pid) = live_pid_from_file(root, DRY_RUN_PID_FILE) {
        if Some(pid) != me {
            let comm = proc::comm(root, pid).unwrap_or_default();
            out.push(RunningTuner {
                pid,
                comm,
                dry_run: true,
            });
        }
    }
    for pid in proc::find_by_comm(root, "ksmtuned") {
        if Some(pid) != me
            && !out.iter().any(|t| t.pid == pid)
            && proc::daemon_kind(root, pid) == Some(proc::DaemonKind::DryRun)
        {
            out.push(RunningTuner {
                pid,
                comm: "ksmtuned".to_string(),
                dry_run: true,
            });
        }
    }
    out
}

/// The KSM files libvirt writes for `virsh node-memory-tune`
/// (`--shm-pages-to-scan`, `--shm-sleep-millisecs`,
/// `--shm-merge-across-nodes`: virNodeSetMemoryParameters).
pub const LIBVIRT_KSM_FILES: [&str; 3] = ["pages_to_scan", "sleep_millisecs", "merge_across_nodes"];

/// The libvirt daemons that serve `virsh node-memory-tune`: the monolithic
/// daemon and the modular QEMU driver's.
pub const LIBVIRT_DAEMONS: [&str; 2] = ["libvirtd", "virtqemud"];

/// A program besides the tuner that writes KSM's settings when asked: a
/// libvirt daemon, which `virsh node-memory-tune` has write
/// [`LIBVIRT_KSM_FILES`]. Seen only while it runs; what it wrote and when
/// leaves no trace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OtherWriter {
    pub pid: u32,
    pub comm: String,
    /// The command an administrator runs to make it write.
    pub command: &'static str,
    /// The files it writes.
    pub files: &'static [&'static str],
}

/// The libvirt daemons running under the root, by process name.
pub fn other_writers(root: &Root) -> Vec<OtherWriter> {
    LIBVIRT_DAEMONS
        .iter()
        .flat_map(|name| {
            proc::find_by_comm(root, name)
                .into_iter()
                .map(move |pid| OtherWriter {
                    pid,
                    comm: name.to_string(),
                    command: "virsh node-memory-tune",
                    files: &LIBVIRT_KSM_FILES,
                })
        })
        .collect()
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
        for (file, pid) in [(TUNER_PID_FILE, "20\n"), (DRY_RUN_PID_FILE, "21\n")] {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, pid).unwrap();
        }
        let pids = |v: Vec<RunningTuner>| v.iter().map(|t| (t.pid, t.dry_run)).collect::<Vec<_>>();
        assert_eq!(pids(running_tuners(&root)), [(20, false), (10, false)]);
        assert_eq!(pids(dry_run_tuners(&root)), [(21, true), (11, true)]);
        assert!(other_writers(&root).is_empty());
        mk(30, "virtqemud", "/usr/sbin/virtqemud --timeout 120 ");
        mk(31, "libvirtd", "/usr/sbin/libvirtd ");
        let w: Vec<(u32, String)> = other_writers(&root)
            .into_iter()
            .map(|w| (w.pid, w.comm))
            .collect();
        assert_eq!(w, [(31, "libvirtd".into()), (30, "virtqemud".into())]);
    }
}
