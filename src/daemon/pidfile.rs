//! The daemon's pid file, which is also its single-instance lock, and how
//! `ksmtuned retune` / `ksmctl retune` find the daemon.
//!
//! The running daemon holds an exclusive `flock` on the file for its whole
//! life; a file whose lock nobody holds is stale, whatever pid it names.
//!
//! The file is `/run/ksmtuned/ksmtuned.pid`, created by the daemon itself
//! (the directory too, when nothing made it: the unit's
//! `RuntimeDirectory=ksmtuned` does). A daemon that cannot create it (a
//! read-only `/run`, an SELinux policy without a type for it) logs that
//! once and runs without it; the retune commands then find the daemon by
//! its process name in `/proc` ([`find_daemon`]).

/// The pid file of ksmtuned, and the one earlier packages used (their unit created it).
pub use crate::sample::services::{CLASSIC_PID_FILE, TUNER_PID_FILE};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::kernel::sys;
use crate::root::Root;

/// Errors of the pid file.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("another ksmtuned is already running (pid {pid}, holding the lock on {})", .path.display())]
    Running { pid: String, path: PathBuf },
    #[error("no ksmtuned is running ({} does not exist)", .path.display())]
    NotRunning { path: PathBuf },
    #[error("no ksmtuned is running: {} is stale (pid {pid} does not hold its lock)", .path.display())]
    Stale { pid: String, path: PathBuf },
    #[error(
        "no ksmtuned is running ({tried}, and no process named ksmtuned runs a tuning daemon)"
    )]
    NotFound { tried: String },
    #[error(
        "several ksmtuned daemons run (pids {pids}) and none holds a pid file; \
         name one with --pid-file, or signal it with kill -USR1 PID"
    )]
    Several { pids: String },
    #[error("ksmtuned (pid {pid}, {how}) refused the signal {signal}: {source}; {hint}")]
    Refused {
        pid: u32,
        how: String,
        signal: &'static str,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A held pid file; removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: File,
}

fn open(path: &Path, create: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        o.write(true).create(true).truncate(false).mode(0o644);
    }
    o.open(path)
}

fn read_pid(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "unknown".to_string()
    } else {
        s.to_string()
    }
}

impl PidFile {
    /// Create (or take over a stale) pid file and lock it. The file is
    /// opened without following symbolic links.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io_err = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| PidFileError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let mut file = open(path, true).map_err(io_err)?;
        match sys::flock_exclusive(&file, false) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(PidFileError::Running {
                    pid: read_pid(&mut file),
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        file.flush().map_err(io_err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// [`PidFile::acquire`] for the daemon: another running daemon is an
    /// error (a second one must not run), any other failure (a refused
    /// or read-only directory) is logged once and the daemon runs without
    /// the file (`None`): it has no single-instance lock then, but the
    /// tuner detection still sees a second daemon by name and yields to
    /// it, and the retune commands find it by its process name.
    pub fn acquire_or_run_without(path: &Path) -> Result<Option<PidFile>, PidFileError> {
        match PidFile::acquire(path) {
            Ok(p) => Ok(Some(p)),
            Err(e @ PidFileError::Running { .. }) => Err(e),
            Err(e) => {
                let hint = if e.is_denied() {
                    " (refused: under SELinux the file must get a type ksmtuned_t may write, \
                     e.g. ksmtuned_var_run_t by the ksmtuned module's type transition; \
                     `ausearch -m avc -ts recent` shows the denial)"
                } else {
                    ""
                };
                log::warn!(
                    "cannot create the pid file: {e}{hint}; running without it: `ksmctl \
                     retune` and `ksmtuned retune` find the daemon by its process name instead"
                );
                Ok(None)
            }
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = &self.file;
    }
}

/// The pid of the running daemon that holds `path`.
pub fn running_pid(path: &Path) -> Result<u32, PidFileError> {
    let mut file = match open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PidFileError::NotRunning {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(PidFileError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let pid = read_pid(&mut file);
    match sys::flock_exclusive(&file, false) {
        // We got the lock: nobody holds it.
        Ok(()) => Err(PidFileError::Stale {
            pid,
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            pid.parse().map_err(|_| PidFileError::Io {
                path: path.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{pid:?} is not a process id"),
                ),
            })
        }
        Err(source) => Err(PidFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl PidFileError {
    /// Whether the error is a refusal (EACCES, EPERM, EROFS): a policy or
    /// the sandbox, not something that goes away on its own.
    pub fn is_denied(&self) -> bool {
        match self {
            PidFileError::Io { source, .. } => is_denied(source),
            _ => false,
        }
    }
}

/// EACCES, EPERM or EROFS: refused by permissions, a security policy
/// (SELinux answers EACCES) or a read-only file system (the sandbox).
pub fn is_denied(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
    )
}

/// The running daemon and how it was found: by `explicit` (a pid file
/// named with `--pid-file`) alone; else by [`TUNER_PID_FILE`], then
/// [`CLASSIC_PID_FILE`] (a daemon of an older package), then by its
/// process name: the one process named `ksmtuned` in `/proc` that is a
/// tuning daemon for this root (not a one-shot command, not a dry run,
/// not this process).
pub fn find_daemon(root: &Root, explicit: Option<&Path>) -> Result<(u32, String), PidFileError> {
    if let Some(path) = explicit {
        return running_pid(path).map(|pid| (pid, format!("from {}", path.display())));
    }
    let mut errors = Vec::new();
    for file in [TUNER_PID_FILE, CLASSIC_PID_FILE] {
        let path = root.join(file);
        match running_pid(&path) {
            Ok(pid) => return Ok((pid, format!("from {}", path.display()))),
            Err(e) => errors.push(e),
        }
    }
    let me = std::process::id();
    let daemons: Vec<u32> = crate::kernel::proc::find_by_comm(root, "ksmtuned")
        .into_iter()
        .filter(|&p| p != me && crate::kernel::proc::is_tuning_daemon(root, p))
        .collect();
    // Why the pid files did not do: the new file's reason, unless only
    // the older file says something (stale, unreadable).
    let why = match (errors.first(), errors.get(1)) {
        (Some(PidFileError::NotRunning { .. }), Some(e))
            if !matches!(e, PidFileError::NotRunning { .. }) =>
        {
            e.to_string()
        }
        (Some(e), _) => e.to_string(),
        (None, _) => String::new(),
    };
    match daemons[..] {
        [pid] => Ok((pid, format!("found by its process name; {why}"))),
        [] => {
            // A stale or unreadable file says more than "not running".
            match errors
                .into_iter()
                .find(|e| !matches!(e, PidFileError::NotRunning { .. }))
            {
                Some(e) => Err(e),
                None => Err(PidFileError::NotFound {
                    tried: format!(
                        "neither {} nor {} exists",
                        root.join(TUNER_PID_FILE).display(),
                        root.join(CLASSIC_PID_FILE).display()
                    ),
                }),
            }
        }
        _ => Err(PidFileError::Several {
            pids: daemons
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Send `signal` (named `name` in messages) to the daemon that
/// [`find_daemon`] finds. A refused signal says so, and why it may have
/// been refused (EACCES: a security policy such as SELinux; EPERM:
/// another user's process).
pub fn signal(
    root: &Root,
    explicit: Option<&Path>,
    signal: libc::c_int,
    name: &'static str,
) -> Result<(u32, String), PidFileError> {
    let (pid, how) = find_daemon(root, explicit)?;
    sys::kill(pid, signal).map_err(|source| PidFileError::Refused {
        pid,
        how: how.clone(),
        signal: name,
        hint: match source.raw_os_error() {
            Some(libc::EACCES) => {
                "the security policy refused it (with SELinux: a caller confined to \
                 ksmtuned_t or virtd_t may not signal the daemon; run `ksmctl retune` as an \
                 unconfined administrator, or load the ksmtuned SELinux module; \
                 `ausearch -m avc -ts recent` shows the denial)"
            }
            Some(libc::EPERM) => {
                "only root (or the daemon's own user) may signal it: run this as root \
                 (a security policy can refuse it too: `ausearch -m avc -ts recent`)"
            }
            _ => "the daemon may have just exited",
        },
        source,
    })?;
    Ok((pid, how))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_stale_and_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/ksmtuned.pid");
        assert!(matches!(
            running_pid(&path),
            Err(PidFileError::NotRunning { .. })
        ));
        let held = PidFile::acquire(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // A second daemon (another open file description) is refused.
        let e = PidFile::acquire(&path).unwrap_err().to_string();
        assert!(
            e.contains("already running") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        assert_eq!(running_pid(&path).unwrap(), std::process::id());
        drop(held);
        assert!(!path.exists());
        // A leftover file nobody locks is stale.
        fs::write(&path, "999999\n").unwrap();
        let e = running_pid(&path).unwrap_err();
        assert!(matches!(e, PidFileError::Stale { .. }), "{e}");
        // And is taken over.
        let held = PidFile::acquire(&path).unwrap();
        assert_eq!(running_pid(&path).unwrap(), std::process::id());
        drop(held);
    }

    /// Where retune looks, in order: the pid file, the older one, then the
    /// process name; and what it says when nothing or too much is found.
    #[test]
    fn find_daemon_by_file_older_file_then_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let e = find_daemon(&root, None).unwrap_err().to_string();
        assert!(
            e.starts_with("no ksmtuned is running (neither ")
                && e.contains("run/ksmtuned/ksmtuned.pid")
                && e.contains("run/ksmtuned.pid exists"),
            "{e}"
        );
        let daemon = |pid: u32, args: &str| {
            let d = dir.path().join(format!("proc/{pid}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("comm"), "ksmtuned\n").unwrap();
            fs::write(d.join("cmdline"), args).unwrap();
        };
        // One-shot commands and dry runs are not the daemon.
        daemon(50, "ksmtuned\0retune\0");
        daemon(51, "ksmtuned\0--dry-run\0");
        assert!(find_daemon(&root, None).is_err());
        daemon(52, "/usr/sbin/ksmtuned\0");
        let (pid, how) = find_daemon(&root, None).unwrap();
        assert_eq!(pid, 52);
        assert!(
            how.starts_with("found by its process name; no ksmtuned is running"),
            "{how}"
        );
        daemon(53, "/usr/sbin/ksmtuned\0-v\0");
        let e = find_daemon(&root, None).unwrap_err().to_string();
        assert!(e.contains("pids 52, 53") && e.contains("--pid-file"), "{e}");
        // A held pid file wins: the older name, then the new one.
        let older = PidFile::acquire(&root.join(CLASSIC_PID_FILE)).unwrap();
        let (pid, how) = find_daemon(&root, None).unwrap();
        assert_eq!(pid, std::process::id());
        assert!(how.ends_with("run/ksmtuned.pid"), "{how}");
        let held = PidFile::acquire(&root.join(TUNER_PID_FILE)).unwrap();
        let (_, how) = find_daemon(&root, None).unwrap();
        assert!(how.ends_with("run/ksmtuned/ksmtuned.pid"), "{how}");
        // Named with --pid-file: only that file counts.
        drop(held);
        let named = root.join(TUNER_PID_FILE);
        assert!(matches!(
            find_daemon(&root, Some(&named)),
            Err(PidFileError::NotRunning { .. })
        ));
        drop(older);
    }

    #[test]
    fn refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "").unwrap();
        let link = dir.path().join("ksmtuned.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(PidFile::acquire(&link).is_err());
    }

    #[test]
    fn a_planted_symlink_in_a_world_writable_dir_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        // /run/lock-like: world-writable and sticky; someone planted links
        // where the pid file goes, to an existing file and to a new one.
        let public = tempfile::tempdir().unwrap();
        fs::set_permissions(public.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let private = tempfile::tempdir().unwrap();
        let victim = private.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let link = public.path().join("ksmtuned.pid");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = PidFile::acquire(&link).unwrap_err().to_string();
        assert!(e.contains(&link.display().to_string()), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        // A dangling link does not create its target either.
        let created = private.path().join("created");
        let dangling = public.path().join("dangling.pid");
        std::os::unix::fs::symlink(&created, &dangling).unwrap();
        assert!(PidFile::acquire(&dangling).is_err());
        assert!(!created.exists());
    }
}
