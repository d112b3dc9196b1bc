//! The daemon's last cross-domain audit (`KSM_TRUST_DOMAINS`), and the
//! hold `KSM_CROSS_DOMAIN=refuse` put on KSM. The daemon writes it to
//! [`LAST_AUDIT_FILE`] after each audit and when it refuses; `ksmctl
//! status`, `ps` and `top` read the file to say which domains share pages
//! and to mark the processes whose domain shares. The audit itself is
//! `estimate::audit`; its result's types are here, below the views.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::root::Root;

/// Where the daemon keeps its last audit (under the root).
pub const LAST_AUDIT_FILE: &str = "/run/ksmtuned/domains.json";

/// KSM stopped and unmerged because domains shared pages
/// (`KSM_CROSS_DOMAIN=refuse`), held until a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// When the audit found the sharing, seconds since 1970.
    pub since_unix_seconds: u64,
    /// The pairs it found, most bytes first.
    pub pairs: Vec<DomainPair>,
    /// Bytes of KSM pages mapped by more than one domain then.
    pub cross_domain_bytes: u64,
    /// What KSM saved when the daemon stopped it: what the hold gives up
    /// (`None` until the daemon has acted on it).
    pub saved_bytes_given_up: Option<u64>,
    /// Whether the daemon unmerged (run=2); `false`: it only stopped ksmd
    /// (run=0), the host having no room for the unmerged pages, or it has
    /// not acted yet.
    #[serde(default)]
    pub unmerged: bool,
}

/// The last audit and the policy it ran under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastAudit {
    /// KSM_CROSS_DOMAIN: allow, warn or refuse.
    pub policy: String,
    /// KSM_DOMAIN_AUDIT_INTERVAL when it ran, seconds.
    pub interval_seconds: u64,
    pub audit: DomainAudit,
    /// The hold in force (refuse), if any.
    pub refusal: Option<Refusal>,
}

impl LastAudit {
    /// The file under `root`.
    pub fn path(root: &Root) -> PathBuf {
        root.join(LAST_AUDIT_FILE)
    }

    /// The last audit; `None` when there is none (no daemon auditing, or
    /// a file that does not parse).
    pub fn read(root: &Root) -> Option<LastAudit> {
        super::published::read(&Self::path(root))
    }

    /// Write it (a temporary file renamed over the old one, so a reader
    /// never sees half of it).
    pub fn write(&self, root: &Root) -> std::io::Result<()> {
        super::published::write(&Self::path(root), self)
    }

    /// Remove the file (domains no longer configured); absent is fine.
    pub fn remove(root: &Root) -> std::io::Result<()> {
        match std::fs::remove_file(Self::path(root)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// How old the audit is at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        let at = UNIX_EPOCH + Duration::from_secs_f64(self.audit.timestamp_seconds.max(0.0));
        now.duration_since(at).unwrap_or(Duration::ZERO)
    }

    /// Whether it is recent at `now`: younger than two intervals plus the
    /// audit's own run time. The daemon audits (and rewrites the file)
    /// every interval, during a hold too; an older file was left by a
    /// daemon that no longer runs, and its hold with it.
    pub fn recent(&self, now: SystemTime) -> bool {
        let limit = Duration::from_secs(self.interval_seconds.saturating_mul(2).max(120))
            + Duration::from_secs_f64(self.audit.duration_seconds.max(0.0));
        self.age(now) <= limit
    }
}

/// Two domains that map the same KSM pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainPair {
    /// The two domains, `a` < `b`.
    pub a: String,
    pub b: String,
    /// Bytes of KSM pages both map.
    pub shared_bytes: u64,
}

/// One audit's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainAudit {
    /// How domains were formed (KSM_TRUST_DOMAINS).
    pub trust_domains: String,
    /// Every pair that shares, most bytes first.
    pub pairs: Vec<DomainPair>,
    /// Bytes of KSM pages mapped by more than one domain (each page once).
    pub cross_domain_bytes: u64,
    /// Bytes of KSM pages the audited processes map.
    pub ksm_bytes: u64,
    /// Domains whose processes map KSM pages; some of their processes'
    /// names (a guest by its name, else `comm[PID]`).
    pub domains: BTreeMap<String, Vec<String>>,
    /// The domain of every process audited (PID: domain), for the views
    /// that mark the processes whose domain shares (`ksmctl ps`, `top`).
    #[serde(default)]
    pub process_domains: BTreeMap<u32, String>,
    pub processes_scanned: usize,
    /// Present pages whose frame flags were read.
    pub pages_examined: u64,
    /// When it started (seconds since the epoch) and how long it took.
    pub timestamp_seconds: f64,
    pub duration_seconds: f64,
    /// CPU time the audit's thread used.
    pub cpu_seconds: f64,
}

impl DomainAudit {
    /// The domains that share pages with `domain`, most bytes first.
    pub fn sharing_with(&self, domain: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter_map(|p| {
                if p.a == domain {
                    Some(p.b.as_str())
                } else if p.b == domain {
                    Some(p.a.as_str())
                } else {
                    None
                }
            })
            .collect()
    }

    /// The domain of process `pid` and the domains it shares pages with
    /// (empty: none), when the audit looked at it.
    pub fn of_process(&self, pid: u32) -> Option<(&str, Vec<&str>)> {
        let d = self.process_domains.get(&pid)?;
        Some((d.as_str(), self.sharing_with(d)))
    }

    /// The `n` pairs sharing most, and the bytes of all the others.
    pub fn top_pairs(&self, n: usize) -> (&[DomainPair], u64) {
        let k = n.min(self.pairs.len());
        let rest = self.pairs[k..].iter().map(|p| p.shared_bytes).sum();
        (&self.pairs[..k], rest)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> LastAudit {
        LastAudit {
            policy: "warn".into(),
            interval_seconds: 300,
            audit: DomainAudit {
                trust_domains: "cgroup".into(),
                pairs: vec![DomainPair {
                    a: "/tenant-a".into(),
                    b: "/tenant-b".into(),
                    shared_bytes: 2 << 20,
                }],
                cross_domain_bytes: 2 << 20,
                ksm_bytes: 10 << 20,
                domains: BTreeMap::from([
                    ("/tenant-a".to_string(), vec!["web".to_string()]),
                    ("/tenant-b".to_string(), vec!["db".to_string()]),
                    ("/tenant-c".to_string(), vec!["cache".to_string()]),
                ]),
                process_domains: BTreeMap::from([
                    (10, "/tenant-a".to_string()),
                    (11, "/tenant-b".to_string()),
                    (12, "/tenant-c".to_string()),
                ]),
                processes_scanned: 3,
                pages_examined: 9000,
                timestamp_seconds: 1_000_000.0,
                duration_seconds: 0.5,
                cpu_seconds: 0.05,
            },
            refusal: None,
        }
    }

    #[test]
    fn written_read_aged_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert_eq!(LastAudit::read(&root), None);
        let a = example();
        a.write(&root).unwrap();
        assert_eq!(LastAudit::read(&root), Some(a.clone()));
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(a.age(at + Duration::from_secs(30)), Duration::from_secs(30));
        assert!(a.recent(at + Duration::from_secs(600)));
        assert!(!a.recent(at + Duration::from_secs(601)));
        let mut held = a.clone();
        held.refusal = Some(Refusal {
            since_unix_seconds: 1_000_000,
            pairs: a.audit.pairs.clone(),
            cross_domain_bytes: 2 << 20,
            saved_bytes_given_up: Some(8 << 20),
            unmerged: true,
        });
        assert!(held.recent(at + Duration::from_secs(600)));
        assert!(
            !held.recent(at + Duration::from_secs(601)),
            "a hold no daemon renews is not shown"
        );
        assert_eq!(
            a.audit.of_process(11),
            Some(("/tenant-b", vec!["/tenant-a"]))
        );
        assert_eq!(a.audit.of_process(12), Some(("/tenant-c", vec![])));
        assert_eq!(a.audit.of_process(13), None);
        LastAudit::remove(&root).unwrap();
        LastAudit::remove(&root).unwrap();
        assert_eq!(LastAudit::read(&root), None);
        std::fs::create_dir_all(LastAudit::path(&root).parent().unwrap()).unwrap();
        std::fs::write(LastAudit::path(&root), "{").unwrap();
        assert_eq!(LastAudit::read(&root), None, "a broken file is none");
    }
}
