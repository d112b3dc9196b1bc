//! Syslog priorities for the journal.
//!
//! When a service's standard error is connected to the journal, systemd
//! sets `JOURNAL_STREAM=DEV:INODE` to that stream; a line starting with
//! `<N>` (sd-daemon(3)'s prefixes) is then stored with priority N, so that
//! `journalctl -p warning -u ksmtuned` shows the warnings and errors. On a
//! terminal or a file (or when standard error was redirected elsewhere)
//! there is no prefix.

use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

/// `<3>`: an error.
pub const ERR: &str = "<3>";
/// `<4>`: a warning.
pub const WARNING: &str = "<4>";
/// `<5>`: normal but significant.
pub const NOTICE: &str = "<5>";
/// `<6>`: information.
pub const INFO: &str = "<6>";
/// `<7>`: debugging.
pub const DEBUG: &str = "<7>";

/// Whether `JOURNAL_STREAM` (`DEV:INODE`) names the stream `fd_path` is
/// (`/proc/self/fd/2` for standard error).
pub fn is_journal_stream(journal_stream: Option<&str>, fd_path: &str) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.trim().split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata(fd_path).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Whether this process's standard error is the journal (checked once).
pub fn stderr_is_journal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| {
        is_journal_stream(
            std::env::var("JOURNAL_STREAM").ok().as_deref(),
            "/proc/self/fd/2",
        )
    })
}

/// The prefix for a log line of this level on standard error: the
/// priority when standard error is the journal, else nothing.
pub fn prefix(level: log::Level) -> &'static str {
    if !stderr_is_journal() {
        return "";
    }
    level_prefix(level)
}

/// The syslog priority of a `log` level.
pub fn level_prefix(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => ERR,
        log::Level::Warn => WARNING,
        log::Level::Info => INFO,
        log::Level::Debug | log::Level::Trace => DEBUG,
    }
}

/// `prio` when standard error is the journal, else nothing (for lines
/// written with `eprintln!`).
pub fn when_journal(prio: &'static str) -> &'static str {
    if stderr_is_journal() {
        prio
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_stream() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let m = std::fs::metadata(f.path()).unwrap();
        let path = f.path().to_str().unwrap();
        let v = format!("{}:{}", m.dev(), m.ino());
        assert!(is_journal_stream(Some(&v), path));
        assert!(!is_journal_stream(
            Some(&format!("{}:{}", m.dev(), m.ino() + 1)),
            path
        ));
        assert!(!is_journal_stream(None, path));
        assert!(!is_journal_stream(Some("garbage"), path));
        assert!(!is_journal_stream(Some(&v), "/nonexistent"));
    }

    #[test]
    fn priorities() {
        assert_eq!(level_prefix(log::Level::Error), "<3>");
        assert_eq!(level_prefix(log::Level::Warn), "<4>");
        assert_eq!(level_prefix(log::Level::Info), "<6>");
        assert_eq!(level_prefix(log::Level::Trace), "<7>");
    }
}
