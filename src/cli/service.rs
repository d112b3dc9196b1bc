//! The `ksm` service: start and stop ksmd as RHEL/Fedora's `ksm` did
//! (which tuners run: [`crate::sample::services`]).

use std::path::PathBuf;

use crate::config::shellvars;
use crate::error::{Error, Result};
use crate::kernel::ksm::{Knob, Ksm, Run};
use crate::kernel::sys;
use crate::root::Root;
pub use crate::sample::services::{
    dry_run_tuners, other_writers, running_tuners, OtherWriter, RunningTuner,
};

/// The variable that sets the 2.6.32-era limit on KSM pages.
pub const MAX_KERNEL_PAGES_VAR: &str = "KSM_MAX_KERNEL_PAGES";

/// Files the service reads `KSM_MAX_KERNEL_PAGES` from, in order (the
/// first that sets it wins): RHEL/Fedora's, then Debian's.
pub const SERVICE_CONFIG_FILES: [&str; 2] = ["/etc/sysconfig/ksm", "/etc/default/ksm"];

/// Where a `KSM_MAX_KERNEL_PAGES` value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Environment,
    File { path: PathBuf, line: usize },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment => write!(f, "the environment"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// The user's `KSM_MAX_KERNEL_PAGES`, raw, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxKernelPagesVar {
    pub value: String,
    pub origin: Origin,
}

/// Look `KSM_MAX_KERNEL_PAGES` up: the environment (systemd's
/// `EnvironmentFile=` puts it there), else the service config files under
/// the root. Syntax errors in those files are reported.
pub fn find_max_kernel_pages(
    root: &Root,
    env: Option<String>,
) -> Result<Option<MaxKernelPagesVar>> {
    if let Some(value) = env {
        return Ok(Some(MaxKernelPagesVar {
            value,
            origin: Origin::Environment,
        }));
    }
    for file in SERVICE_CONFIG_FILES {
        let path = root.join(file);
        let Some(parsed) = shellvars::read(&path)? else {
            continue;
        };
        if let Some(e) = parsed.errors.into_iter().next() {
            return Err(e);
        }
        if let Some(a) = parsed
            .assignments
            .iter()
            .rev()
            .find(|a| a.name == MAX_KERNEL_PAGES_VAR)
        {
            return Ok(Some(MaxKernelPagesVar {
                value: a.value.clone(),
                origin: Origin::File {
                    path: path.clone(),
                    line: a.line,
                },
            }));
        }
    }
    Ok(None)
}

/// The value to write to `max_kernel_pages`: the user's (decimal, `0x`
/// hex or `0` octal; 0 = unlimited) or, when unset or empty, half of the
/// physical pages.
pub fn max_kernel_pages_value(var: Option<&MaxKernelPagesVar>, phys_pages: u64) -> Result<u64> {
    let Some(var) = var.filter(|v| !v.value.trim().is_empty()) else {
        return Ok(phys_pages / 2);
    };
    match shellvars::parse_c_integer(&var.value) {
        Some(n) if n >= 0 && n <= i128::from(u64::MAX) => Ok(n as u64),
        _ => Err(Error::InvalidValue {
            key: format!("{MAX_KERNEL_PAGES_VAR} (from {})", var.origin),
            value: var.value.clone(),
            reason: "expected a number of pages (decimal, 0x hex or 0 octal; 0 = unlimited)"
                .to_string(),
        }),
    }
}

/// What `start` did, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    /// The value written to `max_kernel_pages`, on kernels that have it.
    pub max_kernel_pages: Option<u64>,
    /// A note for the user (a setting this kernel ignores).
    pub note: Option<String>,
}

/// The service's `start`: the page limit where the kernel has one, then
/// `run=1`.
pub fn start(root: &Root, ksm: &Ksm, env: Option<String>) -> Result<StartReport> {
    ksm.require()?;
    let var = find_max_kernel_pages(root, env)?;
    let mut report = StartReport {
        max_kernel_pages: None,
        note: None,
    };
    if ksm.path(Knob::MaxKernelPages.name()).exists() {
        let n = max_kernel_pages_value(var.as_ref(), sys::phys_pages())?;
        ksm.write(Knob::MaxKernelPages.parse(&n.to_string())?)?;
        report.max_kernel_pages = Some(n);
    } else if let Some(v) = var.filter(|v| !v.value.trim().is_empty()) {
        // The value is not used here, so a bad one does not stop KSM from
        // starting; the note says it is bad, so it is fixed before it matters.
        let bad = if max_kernel_pages_value(Some(&v), 0).is_err() {
            " (and it is not a valid number of pages)"
        } else {
            ""
        };
        report.note = Some(format!(
            "note: {MAX_KERNEL_PAGES_VAR}={:?} (from {}) is ignored{bad}: this kernel has no \
             max_kernel_pages limit (KSM pages are swappable since Linux 2.6.33)",
            v.value, v.origin
        ));
    }
    ksm.set_run(Run::Merge)?;
    Ok(report)
}

/// The service's `stop`: `run=0`, merged pages stay merged.
pub fn stop(ksm: &Ksm) -> Result<()> {
    ksm.require()?;
    ksm.set_run(Run::Stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(v: &str) -> MaxKernelPagesVar {
        MaxKernelPagesVar {
            value: v.to_string(),
            origin: Origin::Environment,
        }
    }

    #[test]
    fn max_kernel_pages_forms() {
        assert_eq!(max_kernel_pages_value(None, 1000).unwrap(), 500);
        assert_eq!(max_kernel_pages_value(Some(&var("")), 1001).unwrap(), 500);
        assert_eq!(max_kernel_pages_value(Some(&var("0")), 1000).unwrap(), 0);
        assert_eq!(
            max_kernel_pages_value(Some(&var("2000")), 1000).unwrap(),
            2000
        );
        assert_eq!(
            max_kernel_pages_value(Some(&var("0x100")), 1000).unwrap(),
            256
        );
        assert_eq!(
            max_kernel_pages_value(Some(&var("0100")), 1000).unwrap(),
            64
        );
        let e = max_kernel_pages_value(Some(&var("lots")), 1000).unwrap_err();
        assert!(e.to_string().contains("\"lots\""), "{e}");
        assert!(max_kernel_pages_value(Some(&var("-1")), 1000).is_err());
    }
}
