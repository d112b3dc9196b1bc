//! The library's error type: every variant names the file (or key) and
//! what was being done, so that a message can be acted upon.

use std::io;
use std::path::PathBuf;

/// Errors of the KSM readers and writers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/sys/kernel/mm/ksm` (under the root) does not exist.
    #[error("KSM is not supported here: {} does not exist (kernel built without CONFIG_KSM?)", .path.display())]
    NotSupported { path: PathBuf },

    /// A file this kernel does not have was asked for by name.
    #[error("this kernel has no {name} ({} does not exist)", .path.display())]
    Missing { name: String, path: PathBuf },

    /// Reading a file failed.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file's content is not what the kernel documents.
    #[error("{}: cannot parse {value:?} as {expected}", .path.display())]
    Parse {
        path: PathBuf,
        value: String,
        expected: &'static str,
    },

    /// The kernel (or the file system) refused a write.
    #[error("cannot write {value} to {}: {reason}{hint}", .path.display())]
    Write {
        path: PathBuf,
        value: String,
        reason: String,
        hint: String,
        #[source]
        source: io::Error,
    },

    /// A value given by the user is not valid for the setting.
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },

    /// A setting name that KSM does not have.
    #[error("unknown KSM setting {key:?}; known settings: {known}")]
    UnknownKey { key: String, known: String },

    /// A `NAME=value` file (ksmtuned.conf, sysconfig/ksm) has a bad line.
    #[error("{}:{line}: {message}", .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A configuration file or its directory that someone other than
    /// root (or the user running ksmtuned) could have written.
    #[error(
        "{}: refusing to use this configuration {what} (owner uid {uid}, mode {mode:04o}): \
         {reason}; {}",
        .path.display(),
        insecure_fix(.what, .path, .file)
    )]
    Insecure {
        path: PathBuf,
        /// "file" or "directory".
        what: &'static str,
        /// The configuration file concerned (`path` itself, or a file in
        /// the directory `path`).
        file: PathBuf,
        uid: u32,
        mode: u32,
        reason: String,
    },

    /// Another operation failed; the message says which.
    #[error("{0}")]
    Other(String),

    /// The metrics endpoint cannot listen; `refused` when the kernel or a
    /// security policy refused the port (EACCES, EPERM), which trying
    /// again does not mend.
    #[error("{message}")]
    Listen { message: String, refused: bool },
}

impl Error {
    /// The `errno` behind a refused read or write, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Read { source, .. } | Error::Write { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to do about a configuration file that others could write: make
/// the file root's; a directory others can write (such as /tmp) is not
/// for the administrator to change, so the advice is to move the file.
fn insecure_fix(what: &str, path: &std::path::Path, file: &std::path::Path) -> String {
    if what == "file" {
        format!(
            "it must be owned by root and not writable by group or others \
             (fix: chown root {p} && chmod go-w {p}), or start ksmtuned with --insecure-config",
            p = path.display()
        )
    } else {
        format!(
            "a configuration must be in a directory that only root can write: move {f} to one \
             (such as /etc, or a private mktemp -d); to check a candidate file where it is, run \
             ksmtuned --insecure-config --check-config {f}",
            f = file.display()
        )
    }
}

/// A short text for an I/O error without Rust's "(os error N)" noise.
pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let s = io::Error::from_raw_os_error(code).to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
        None => e.to_string(),
    }
}
