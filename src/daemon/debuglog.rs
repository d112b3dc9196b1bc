//! The classic debug channel: `DEBUG` / `LOGFILE` lines exactly as the
//! original ksmtuned wrote them, `<date(1)>: <text>`. It is separate from
//! the daemon's own log (standard error, the journal).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::Config;
use crate::kernel::sys;

/// The classic debug channel: `DEBUG` / `LOGFILE` lines exactly as the
/// original wrote them, `<date(1)>: <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugLog {
    pub enabled: bool,
    pub logfile: Option<PathBuf>,
}

impl DebugLog {
    pub fn from_config(c: &Config) -> DebugLog {
        DebugLog {
            enabled: c.debug,
            logfile: c.logfile.clone(),
        }
    }

    /// Append one line to LOGFILE, or print it when LOGFILE is unset or
    /// cannot be written (the error is returned, for the caller to report
    /// once). The file is not followed if it is a symlink.
    pub fn line(&self, text: &str) -> std::io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let s = format!("{}: {text}\n", sys::date_string(SystemTime::now()));
        let mut res = Ok(());
        if let Some(path) = &self.logfile {
            res = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .and_then(|mut f| f.write_all(s.as_bytes()));
            if res.is_ok() {
                return res;
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_log_does_not_follow_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        // LOGFILE in a world-writable, sticky directory (/tmp-like) where
        // someone planted a link to a file root owns, and one to a file
        // that does not exist yet: neither is written or created.
        let public = tempfile::tempdir().unwrap();
        std::fs::set_permissions(public.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let private = tempfile::tempdir().unwrap();
        let victim = private.path().join("shadow");
        std::fs::write(&victim, "root:x:0:0\n").unwrap();
        let link = public.path().join("ksmtuned.log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let created = private.path().join("created");
        let dangling = public.path().join("dangling.log");
        std::os::unix::fs::symlink(&created, &dangling).unwrap();
        for logfile in [&link, &dangling] {
            // Refused (the line goes to standard output instead).
            assert!(DebugLog {
                enabled: true,
                logfile: Some(logfile.clone()),
            }
            .line("committed 0 free 1")
            .is_err());
            assert!(std::fs::symlink_metadata(logfile)
                .unwrap()
                .file_type()
                .is_symlink());
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
        assert!(!created.exists());
        // The same directory without the link: the file is created and written.
        let real = public.path().join("real.log");
        DebugLog {
            enabled: true,
            logfile: Some(real.clone()),
        }
        .line("committed 0 free 1")
        .unwrap();
        assert!(std::fs::read_to_string(&real)
            .unwrap()
            .ends_with(": committed 0 free 1\n"));
    }

    #[test]
    fn debug_log_appends_or_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let l = DebugLog {
            enabled: true,
            logfile: Some(path.clone()),
        };
        l.line("total 100").unwrap();
        l.line("sleep 10").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(": total 100"), "{text}");
        // "<date>: " where date has six fields.
        let date = lines[1].strip_suffix(": sleep 10").unwrap();
        assert_eq!(date.split_whitespace().count(), 6, "{date}");
        // Disabled: nothing written.
        DebugLog {
            enabled: false,
            logfile: Some(path.clone()),
        }
        .line("x")
        .unwrap();
        // An unwritable LOGFILE: the error is returned (and the line printed).
        let bad = DebugLog {
            enabled: true,
            logfile: Some(dir.path().join("no/such/dir/log")),
        };
        assert!(bad.line("x").is_err());
        // A symlink is not followed.
        let target = dir.path().join("target");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let l = DebugLog {
            enabled: true,
            logfile: Some(link),
        };
        assert!(l.line("x").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
