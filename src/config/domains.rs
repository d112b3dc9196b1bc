//! KSM_TRUST_DOMAINS and KSM_CROSS_DOMAIN: how processes are grouped into
//! trust domains (tenants), and what the daemon does when KSM makes two
//! domains share a page. Parsed once here; the audit that uses them is
//! `estimate::audit`.

use std::fmt;

/// The cgroup depth `cgroup` means without `:DEPTH`: `/machine.slice/
/// machine-qemu\x2d1\x2dvm.scope` (libvirt), `/qemu.slice/100.scope`
/// (Proxmox VE), `/user.slice/user-1000.slice`, `/system.slice/x.service`.
pub const DEFAULT_CGROUP_DEPTH: usize = 2;

/// How processes are grouped into trust domains (KSM_TRUST_DOMAINS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustDomains {
    /// No domains: no audit (the default, today's behaviour).
    #[default]
    None,
    /// The cgroup (v2) path cut to its first `depth` components.
    Cgroup { depth: usize },
    /// The process's real user ID.
    User,
    /// The QEMU guest's name (`-name`; a Proxmox VMID's guest, a libvirt
    /// domain); every other process is in the domain `host`.
    Guest,
}

impl TrustDomains {
    /// Whether domains are configured (an audit runs).
    pub fn enabled(self) -> bool {
        self != TrustDomains::None
    }
}

impl std::str::FromStr for TrustDomains {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let known = "known: none, cgroup, cgroup:DEPTH, user, guest";
        match s {
            "none" => Ok(TrustDomains::None),
            "cgroup" => Ok(TrustDomains::Cgroup {
                depth: DEFAULT_CGROUP_DEPTH,
            }),
            "user" => Ok(TrustDomains::User),
            "guest" => Ok(TrustDomains::Guest),
            _ => match s.strip_prefix("cgroup:") {
                Some(d) => match d.parse::<usize>() {
                    Ok(depth @ 1..=16) => Ok(TrustDomains::Cgroup { depth }),
                    _ => Err(format!(
                        "cgroup depth {d:?} is not a whole number from 1 to 16 ({known})"
                    )),
                },
                None => Err(format!("unknown trust domains {s:?} ({known})")),
            },
        }
    }
}

impl fmt::Display for TrustDomains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustDomains::None => f.write_str("none"),
            TrustDomains::Cgroup { depth } if *depth == DEFAULT_CGROUP_DEPTH => {
                f.write_str("cgroup")
            }
            TrustDomains::Cgroup { depth } => write!(f, "cgroup:{depth}"),
            TrustDomains::User => f.write_str("user"),
            TrustDomains::Guest => f.write_str("guest"),
        }
    }
}

/// What the daemon does about pages shared across domains
/// (KSM_CROSS_DOMAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrossDomain {
    /// Audit and export the metrics only.
    #[default]
    Allow,
    /// Also log a warning once for each new pair of domains that share,
    /// naming their processes.
    Warn,
    /// Keep pages from being shared across domains: when an audit finds a
    /// pair, stop ksmd and unmerge every page (run=2), and hold it so
    /// until a reload; the savings given up are logged and exported. The
    /// kernel has no lever finer than that (docs/domains.md, "refuse").
    Refuse,
}

impl std::str::FromStr for CrossDomain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(CrossDomain::Allow),
            "warn" => Ok(CrossDomain::Warn),
            "refuse" => Ok(CrossDomain::Refuse),
            _ => Err(format!(
                "unknown cross-domain policy {s:?} (known: allow, warn, refuse)"
            )),
        }
    }
}

impl fmt::Display for CrossDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CrossDomain::Allow => "allow",
            CrossDomain::Warn => "warn",
            CrossDomain::Refuse => "refuse",
        })
    }
}

/// The domain of a process from its cgroup (v2) path, cut to `depth`
/// components: `/a/b/c` at depth 2 is `/a/b`. The root cgroup is `/`.
pub fn cgroup_prefix(path: &str, depth: usize) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .take(depth)
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domains_parse_and_print_back() {
        for s in ["none", "cgroup", "cgroup:1", "cgroup:3", "user", "guest"] {
            let t: TrustDomains = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "cgroup:2".parse::<TrustDomains>().unwrap(),
            TrustDomains::Cgroup { depth: 2 }
        );
        for bad in ["", "cgroups", "cgroup:0", "cgroup:x", "cgroup:17", "User"] {
            assert!(bad.parse::<TrustDomains>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cross_domain_parse() {
        assert_eq!("warn".parse::<CrossDomain>(), Ok(CrossDomain::Warn));
        assert_eq!("allow".parse::<CrossDomain>(), Ok(CrossDomain::Allow));
        assert_eq!("refuse".parse::<CrossDomain>(), Ok(CrossDomain::Refuse));
        for p in ["allow", "warn", "refuse"] {
            assert_eq!(p.parse::<CrossDomain>().unwrap().to_string(), p);
        }
        let e = "deny".parse::<CrossDomain>().unwrap_err();
        assert!(e.contains("known: allow, warn, refuse"), "{e}");
    }

    #[test]
    fn cgroup_prefixes() {
        let libvirt = "/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator";
        assert_eq!(
            cgroup_prefix(libvirt, 2),
            "/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope"
        );
        assert_eq!(
            cgroup_prefix("/qemu.slice/100.scope", 2),
            "/qemu.slice/100.scope"
        );
        assert_eq!(cgroup_prefix("/ksm-a/x", 1), "/ksm-a");
        assert_eq!(cgroup_prefix("/", 2), "/");
    }
}
