//! The root directory every system path is resolved under.

use std::path::{Path, PathBuf};

/// Environment variable that sets the root when `--root` is not given.
pub const ROOT_ENV: &str = "KSM_ROOT";

/// A root directory: `/` on a real host, a fixture tree in tests.
///
/// Reads and writes both go through it, so a whole run can be tried
/// against a copy of `/sys` and `/proc` without touching the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    /// A root at `base`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// `--root` if given, else `$KSM_ROOT` if set and non-empty, else `/`.
    pub fn from_option(opt: Option<PathBuf>) -> Self {
        match opt {
            Some(p) => Root::new(p),
            None => match std::env::var_os(ROOT_ENV) {
                Some(v) if !v.is_empty() => Root::new(v),
                _ => Root::default(),
            },
        }
    }

    /// A root other than `/` must be a directory: `--root /nonexistent`
    /// is a mistake to name, not a host without KSM.
    pub fn check(&self) -> Result<(), String> {
        if self.is_host() || self.base.is_dir() {
            return Ok(());
        }
        let why = match std::fs::metadata(&self.base) {
            Ok(_) => "not a directory".to_string(),
            Err(e) => crate::error::describe_io(&e),
        };
        Err(format!(
            "root {}: {why} (--root or ${ROOT_ENV} must name a directory that holds sys/ and proc/)",
            self.base.display()
        ))
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// True when this is the real `/`.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Resolve an absolute system path (`/proc/meminfo`) under the root.
    pub fn join(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        let rel = abs.strip_prefix("/").unwrap_or(abs);
        self.base.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_under_base() {
        let r = Root::new("/tmp/x");
        assert_eq!(
            r.join("/proc/meminfo"),
            PathBuf::from("/tmp/x/proc/meminfo")
        );
        assert_eq!(r.join("proc/1/comm"), PathBuf::from("/tmp/x/proc/1/comm"));
        assert_eq!(Root::default().join("/sys"), PathBuf::from("/sys"));
        assert!(Root::default().is_host());
        assert!(!r.is_host());
    }
}
