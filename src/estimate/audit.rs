//! The cross-domain audit: which trust domains (KSM_TRUST_DOMAINS) share
//! KSM pages now, and how much.
//!
//! It is the estimate's realized matrix ([`super::scan`] with
//! `ksm_only`), grouped by domain: for every process whose `ksm_stat`
//! counts merged pages, the pagemap entries of its mergeable areas and the
//! flags of their frames in `/proc/kpageflags`; a frame with the KSM flag
//! is a KSM page, and the domains that map it share it. No page is read
//! or hashed. The cost is bounded by a CPU share: the scan sleeps between
//! batches of 256 pages so that it uses at most `cpu_limit` percent of one
//! CPU (measured in docs/domains.md); the daemon runs it on its own thread
//! every KSM_DOMAIN_AUDIT_INTERVAL seconds, not in its tuning cycle.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use super::scan::{self, ScanOptions, Selection, Target};
use super::table::{Contents, Params};
use super::MAX_GROUPS;
use crate::config::domains::cgroup_prefix;
use crate::config::TrustDomains;
use crate::kernel::{proc, sys, vmas};
use crate::root::Root;
pub use crate::sample::last_audit::{DomainAudit, DomainPair};
use crate::sample::processes::guest_name;

/// The CPU share the daemon's audit may use: percent of one CPU.
pub const DEFAULT_CPU_LIMIT: u32 = 10;

/// Pairs the metrics show one by one; the rest are summed.
pub const TOP_PAIRS: usize = 10;

/// Process names kept per domain (for the warnings).
const NAMES_PER_DOMAIN: usize = 5;

/// The domain of a process, `None` for no domains.
pub fn domain_of(root: &Root, pid: u32, spec: TrustDomains, users: &Users) -> Option<String> {
    match spec {
        TrustDomains::None => None,
        TrustDomains::Cgroup { depth } => {
            let s = std::fs::read_to_string(root.join(format!("/proc/{pid}/cgroup"))).ok()?;
            let path = s.lines().find_map(|l| l.strip_prefix("0::"))?;
            Some(cgroup_prefix(path, depth))
        }
        TrustDomains::User => {
            let s = std::fs::read_to_string(root.join(format!("/proc/{pid}/status"))).ok()?;
            let uid: u32 = s
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(users.name(uid))
        }
        TrustDomains::Guest => {
            let comm = proc::comm(root, pid)?;
            if proc::is_qemu_comm(&comm) {
                let name = proc::cmdline(root, pid).and_then(|a| guest_name(&a));
                Some(name.unwrap_or_else(|| format!("{comm}[{pid}]")))
            } else {
                Some("host".to_string())
            }
        }
    }
}

/// User names from `/etc/passwd` under the root.
#[derive(Debug, Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    pub fn read(root: &Root) -> Users {
        let text = std::fs::read_to_string(root.join("/etc/passwd")).unwrap_or_default();
        Users(
            text.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
                })
                .collect(),
        )
    }

    /// `NAME`, or `uid N` for a user without a name.
    pub fn name(&self, uid: u32) -> String {
        self.0
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| format!("uid {uid}"))
    }
}

/// The pairs of groups that map the same KSM frames, from each frame's
/// groups mask: `(a, b, frames)` with `a < b`.
pub fn pairs_of(frames: &HashMap<u64, u64>) -> (BTreeMap<(usize, usize), u64>, u64) {
    let mut pairs = BTreeMap::new();
    let mut cross = 0;
    for &mask in frames.values() {
        if mask.count_ones() < 2 {
            continue;
        }
        cross += 1;
        let members: Vec<usize> = (0..MAX_GROUPS).filter(|&i| mask >> i & 1 == 1).collect();
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                *pairs.entry((a, b)).or_insert(0) += 1;
            }
        }
    }
    (pairs, cross)
}

/// Audit now: which domains share KSM pages. `cpu_limit`: percent of one
/// CPU the scan may use (`None`: no cap). Errors only when
/// `/proc/kpageflags` or `/proc` cannot be read.
pub fn audit(
    root: &Root,
    spec: TrustDomains,
    cpu_limit: Option<u32>,
) -> std::io::Result<DomainAudit> {
    let t0 = Instant::now();
    let cpu0 = sys::thread_cpu_time();
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let page = sys::page_size();
    let users = Users::read(root);
    let me = std::process::id();
    let mut names: Vec<String> = Vec::new();
    let mut group_of: HashMap<String, u8> = HashMap::new();
    let mut members: Vec<Vec<String>> = Vec::new();
    let mut targets = Vec::new();
    let mut process_domains = BTreeMap::new();
    for pid in proc::pids(root)? {
        if pid == me {
            continue;
        }
        // A process whose ksm_stat shows nothing merged maps no KSM page.
        let merged = proc::ksm_stat(root, pid)
            .map(|s| s.merging_pages.is_none_or(|m| m > 0))
            .unwrap_or(false);
        if !merged {
            continue;
        }
        let Some(domain) = domain_of(root, pid, spec, &users) else {
            continue;
        };
        let Ok(all) = vmas::read(root, pid) else {
            continue;
        };
        let areas: Vec<vmas::Vma> = all
            .into_iter()
            .filter(|a| Selection::Mergeable.takes(a))
            .collect();
        if areas.is_empty() {
            continue;
        }
        let g = match group_of.get(&domain) {
            Some(&g) => g,
            None if names.len() < MAX_GROUPS - 1 => {
                names.push(domain.clone());
                members.push(Vec::new());
                let g = (names.len() - 1) as u8;
                group_of.insert(domain, g);
                g
            }
            None => {
                if names.len() < MAX_GROUPS {
                    names.push("other".into());
                    members.push(Vec::new());
                }
                (MAX_GROUPS - 1) as u8
            }
        };
        process_domains.insert(pid, names[g as usize].clone());
        let who = match proc::comm(root, pid) {
            Some(c) if proc::is_qemu_comm(&c) => proc::cmdline(root, pid)
                .and_then(|a| guest_name(&a))
                .unwrap_or_else(|| format!("{c}[{pid}]")),
            Some(c) => format!("{c}[{pid}]"),
            None => format!("[{pid}]"),
        };
        let m = &mut members[g as usize];
        if m.len() < NAMES_PER_DOMAIN {
            m.push(who);
        }
        targets.push(Target {
            pid,
            group: Some(g),
            areas,
            ksm_pages_possible: true,
        });
    }
    let contents = Contents::new(
        Params {
            page_size: page,
            max_page_sharing: 256,
            use_zero_pages: false,
            sample: 1,
            split_maps_zero_pages: false,
        },
        false,
    );
    let sc = scan::scan(
        root,
        &targets,
        contents,
        ScanOptions {
            selection: Selection::Mergeable,
            cpu_limit,
            ksm_only: true,
        },
        &mut |_| {},
    )?;
    let (pairs, cross) = pairs_of(&sc.ksm_frames);
    let mut pairs: Vec<DomainPair> = pairs
        .into_iter()
        .map(|((a, b), n)| {
            let (a, b) = (names[a].clone(), names[b].clone());
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            DomainPair {
                a,
                b,
                shared_bytes: n * page,
            }
        })
        .collect();
    pairs.sort_by(|x, y| {
        y.shared_bytes
            .cmp(&x.shared_bytes)
            .then_with(|| (&x.a, &x.b).cmp(&(&y.a, &y.b)))
    });
    Ok(DomainAudit {
        trust_domains: spec.to_string(),
        pairs,
        cross_domain_bytes: cross * page,
        ksm_bytes: sc.ksm_frames.len() as u64 * page,
        domains: names.into_iter().zip(members).collect(),
        process_domains,
        processes_scanned: sc.processes.len(),
        pages_examined: sc.processes.iter().map(|p| p.pages).sum(),
        timestamp_seconds: timestamp,
        duration_seconds: t0.elapsed().as_secs_f64(),
        cpu_seconds: sys::thread_cpu_time().saturating_sub(cpu0).as_secs_f64(),
    })
}

/// A pair not seen before, for KSM_CROSS_DOMAIN=warn or refuse: the
/// warning to log once, naming the domains and some of their processes.
pub fn warning(pair: &DomainPair, audit: &DomainAudit, policy: &str) -> String {
    let who = |d: &str| {
        audit
            .domains
            .get(d)
            .map(|v| v.join(", "))
            .unwrap_or_default()
    };
    format!(
        "KSM merged pages across trust domains: {:?} ({}) and {:?} ({}) share {} KiB \
         (KSM_CROSS_DOMAIN={policy}; this pair is reported once)",
        pair.a,
        who(&pair.a),
        pair.b,
        who(&pair.b),
        pair.shared_bytes / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_from_frame_masks() {
        let mut f = HashMap::new();
        f.insert(1, 0b001); // one domain: not shared
        f.insert(2, 0b011); // 0 and 1
        f.insert(3, 0b011);
        f.insert(4, 0b111); // 0, 1 and 2: three pairs, one page
        let (pairs, cross) = pairs_of(&f);
        assert_eq!(cross, 3);
        assert_eq!(pairs[&(0, 1)], 3);
        assert_eq!(pairs[&(0, 2)], 1);
        assert_eq!(pairs[&(1, 2)], 1);
        assert_eq!(pairs.len(), 3);
    }

    #[test]
    fn top_pairs_and_the_rest() {
        let p = |a: &str, n| DomainPair {
            a: a.into(),
            b: "z".into(),
            shared_bytes: n,
        };
        let a = DomainAudit {
            trust_domains: "user".into(),
            pairs: vec![p("a", 30), p("b", 20), p("c", 10), p("d", 5)],
            cross_domain_bytes: 0,
            ksm_bytes: 0,
            domains: BTreeMap::new(),
            process_domains: BTreeMap::new(),
            processes_scanned: 0,
            pages_examined: 0,
            timestamp_seconds: 0.0,
            duration_seconds: 0.0,
            cpu_seconds: 0.0,
        };
        let (top, rest) = a.top_pairs(2);
        assert_eq!((top.len(), rest), (2, 15));
        assert_eq!(a.top_pairs(10), (&a.pairs[..], 0));
        assert_eq!(a.sharing_with("z"), ["a", "b", "c", "d"]);
        assert_eq!(a.sharing_with("b"), ["z"]);
        assert!(a.sharing_with("y").is_empty());
    }

    #[test]
    fn users_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        let u = Users::read(&Root::new(dir.path()));
        assert_eq!(u.name(1000), "alice");
        assert_eq!(u.name(1001), "uid 1001");
    }
}
