//! Which distribution's ksmtuned the classic policy reproduces
//! (`KSM_FLAVOUR`).
//!
//! - `rhel`: the script of RHEL, Fedora and Debian: guests are the
//!   processes whose name matches QEMU's (`qemu-kvm`, `qemu-system-*`,
//!   `qemu:NAME`), counted by RSS; `KSM_SLEEP_MSEC` defaults to 10.
//! - `proxmox`: Proxmox VE's `ksm-control-daemon`: guests are the
//!   processes named `kvm`, counted by PSS (`ps -C kvm -o pss=` summed in
//!   awk, printed with `%.0f`); `KSM_SLEEP_MSEC` defaults to 100.
//! - `auto` (the default): `proxmox` when `/etc/pve` exists or dpkg knows
//!   the package `ksm-control-daemon` (installed, or replaced by this one
//!   and its configuration files kept), `rhel` otherwise.

use std::fmt;
use std::fs;

use crate::root::Root;

/// A ksmtuned flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// RHEL / Fedora / Debian.
    #[default]
    Rhel,
    /// Proxmox VE (`ksm-control-daemon`).
    Proxmox,
}

impl Flavour {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Rhel => "rhel",
            Flavour::Proxmox => "proxmox",
        }
    }

    /// KSM_SLEEP_MSEC when the configuration leaves it unset or empty.
    pub fn default_sleep_msec(self) -> u64 {
        match self {
            Flavour::Rhel => 10,
            Flavour::Proxmox => 100,
        }
    }

    /// Whether a process with this kernel name (`comm`) is a guest whose
    /// memory the classic policy counts as committed.
    pub fn is_guest_comm(self, comm: &str) -> bool {
        match self {
            Flavour::Rhel => crate::kernel::proc::is_qemu_comm(comm),
            // `ps -C kvm`: the name, exactly.
            Flavour::Proxmox => comm == "kvm",
        }
    }

    /// What the flavour counts, for messages.
    pub fn committed_measure(self) -> &'static str {
        match self {
            Flavour::Rhel => "RSS of the QEMU processes",
            Flavour::Proxmox => "PSS of the processes named kvm",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Proxmox's `committed`: the processes' PSS (KiB) summed as awk sums
/// them (in double precision, in order) and printed with `%.0f` (rounded
/// to the nearest integer, no exponent). Exact below 2^53 KiB.
pub fn awk_sum_kib(values: impl IntoIterator<Item = u64>) -> u64 {
    let sum: f64 = values.into_iter().fold(0.0, |acc, v| acc + v as f64);
    // `as` saturates; a sum of u64 values cannot be negative or NaN.
    sum.round_ties_even() as u64
}

/// `KSM_FLAVOUR`: a flavour, or `auto` (`None`).
pub fn parse_setting(s: &str) -> Result<Option<Flavour>, String> {
    match s {
        "auto" => Ok(None),
        "rhel" => Ok(Some(Flavour::Rhel)),
        "proxmox" => Ok(Some(Flavour::Proxmox)),
        _ => Err(format!(
            "unknown flavour {s:?} (known: auto, rhel, proxmox)"
        )),
    }
}

/// The setting as written in the configuration.
pub fn setting_name(setting: Option<Flavour>) -> &'static str {
    setting.map_or("auto", Flavour::as_str)
}

/// The package Proxmox VE ships ksmtuned in.
pub const PROXMOX_PACKAGE: &str = "ksm-control-daemon";

/// The flavour to run and why: the configured one, or (auto) the one
/// detected on the host under `root`.
pub fn resolve(root: &Root, setting: Option<Flavour>) -> (Flavour, String) {
    if let Some(f) = setting {
        return (f, format!("KSM_FLAVOUR={f}"));
    }
    let pve = root.join("/etc/pve");
    if pve.is_dir() {
        return (
            Flavour::Proxmox,
            format!("auto: {} exists (Proxmox VE)", pve.display()),
        );
    }
    let status = root.join("/var/lib/dpkg/status");
    match fs::read_to_string(&status) {
        Ok(text) if dpkg_knows(&text, PROXMOX_PACKAGE) => {
            return (
                Flavour::Proxmox,
                format!("auto: {} lists {PROXMOX_PACKAGE}", status.display()),
            );
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Refused (an SELinux policy without dpkg_var_lib_t read): /etc/pve
        // said no already, which is what Proxmox VE has; the reason says
        // what could not be checked.
        Err(e) => {
            return (
                Flavour::Rhel,
                format!(
                    "auto: not a Proxmox VE host ({} unreadable: {})",
                    status.display(),
                    crate::error::describe_io(&e)
                ),
            )
        }
    }
    (Flavour::Rhel, "auto: not a Proxmox VE host".to_string())
}

/// Whether dpkg's status file has a stanza for `package` in a state other
/// than "not-installed" (installed, or removed with its configuration
/// files kept, as when this package replaced it).
pub fn dpkg_knows(status: &str, package: &str) -> bool {
    status.split("\n\n").any(|stanza| {
        let mut name = None;
        let mut state = None;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                state = v.split_whitespace().last();
            }
        }
        name == Some(package) && state.is_some_and(|s| s != "not-installed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awk_sums_like_printf_percent_dot_zero() {
        assert_eq!(awk_sum_kib([]), 0);
        assert_eq!(awk_sum_kib([1, 2, 3]), 6);
        // Hosts with many TiB: exact (no exponent form, no 2^31 limit).
        let tib = 1024 * 1024 * 1024u64;
        assert_eq!(awk_sum_kib([3 * tib, 5 * tib]), 8 * tib);
        // Beyond 2^53 the double rounds, as awk's does: 2^53 + 1 is not
        // representable and the sum stays 2^53.
        assert_eq!(awk_sum_kib([1 << 53, 1]), 1 << 53);
    }

    #[test]
    fn settings() {
        assert_eq!(parse_setting("auto"), Ok(None));
        assert_eq!(parse_setting("proxmox"), Ok(Some(Flavour::Proxmox)));
        assert_eq!(parse_setting("rhel"), Ok(Some(Flavour::Rhel)));
        assert!(parse_setting("debian")
            .unwrap_err()
            .contains("auto, rhel, proxmox"));
        assert_eq!(setting_name(None), "auto");
    }

    #[test]
    fn guests_by_flavour() {
        assert!(Flavour::Proxmox.is_guest_comm("kvm"));
        assert!(!Flavour::Proxmox.is_guest_comm("qemu-kvm"));
        assert!(!Flavour::Proxmox.is_guest_comm("kvm-pit/1234"));
        assert!(Flavour::Rhel.is_guest_comm("qemu-kvm"));
        assert!(!Flavour::Rhel.is_guest_comm("kvm"));
        assert_eq!(Flavour::Proxmox.default_sleep_msec(), 100);
        assert_eq!(Flavour::Rhel.default_sleep_msec(), 10);
    }

    #[test]
    fn dpkg_status() {
        let s = "Package: bash\nStatus: install ok installed\n\n\
                 Package: ksm-control-daemon\nStatus: deinstall ok config-files\nVersion: 1.5-1\n\n\
                 Package: gone\nStatus: purge ok not-installed\n";
        assert!(dpkg_knows(s, "ksm-control-daemon"));
        assert!(dpkg_knows(s, "bash"));
        assert!(!dpkg_knows(s, "gone"));
        assert!(!dpkg_knows(s, "ksm"));
    }

    #[test]
    fn detection() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert_eq!(resolve(&root, None).0, Flavour::Rhel);
        assert_eq!(resolve(&root, Some(Flavour::Proxmox)).0, Flavour::Proxmox);
        fs::create_dir_all(t.path().join("var/lib/dpkg")).unwrap();
        fs::write(
            t.path().join("var/lib/dpkg/status"),
            "Package: ksm-control-daemon\nStatus: install ok installed\n",
        )
        .unwrap();
        let (f, why) = resolve(&root, None);
        assert_eq!(f, Flavour::Proxmox);
        assert!(why.contains("lists ksm-control-daemon"), "{why}");
        assert_eq!(resolve(&root, Some(Flavour::Rhel)).0, Flavour::Rhel);
        fs::remove_file(t.path().join("var/lib/dpkg/status")).unwrap();
        fs::create_dir_all(t.path().join("etc/pve")).unwrap();
        let (f, why) = resolve(&root, None);
        assert_eq!(f, Flavour::Proxmox);
        assert!(why.contains("/etc/pve exists"), "{why}");
    }
}
