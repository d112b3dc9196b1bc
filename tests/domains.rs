//! Trust domains on the real kernel: two tenants (cgroups made for the
//! test in the cgroup v2 hierarchy), each with probes holding content
//! duplicated within the tenant and a known amount in common with the
//! other; once ksmd merged them, the cross-domain audit reports the bytes
//! in common between the two tenants and nothing else between them.
//!
//! With KSM_CROSS_DOMAIN=refuse the daemon stops ksmd and unmerges once
//! the tenants share, says what it gave up, and holds KSM so until a
//! reload.
//!
//! Holds the ksmd lock (`Experiment`, which restores every knob), removes
//! the cgroups it made and puts `/run/ksmtuned/domains.json` back as it
//! was, also when it fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ksmtuned::config::TrustDomains;
use ksmtuned::estimate::audit;
use ksmtuned::kernel::ksm::{Knob, Run, Setting};
use ksmtuned::kernel::{proc, sys};
use ksmtuned::Root;

mod support;
use support::{Experiment, Probe};

/// A cgroup made for the test, removed on drop (its processes gone).
struct Cgroup(PathBuf);

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid host).
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

impl Cgroup {
    fn make(name: &str) -> Option<Cgroup> {
        let Some(mount) = cgroup2_mount() else {
            eprintln!("SKIPPED: no cgroup v2 hierarchy is mounted");
            return None;
        };
        let p = mount.join(format!("{name}-{}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => Some(Cgroup(p)),
            Err(e) => {
                eprintln!("SKIPPED: cannot make the cgroup {} ({e})", p.display());
                None
            }
        }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.0.display()));
    }

    /// Its name as a domain at depth 1.
    fn domain(&self) -> String {
        format!("/{}", self.0.file_name().unwrap().to_string_lossy())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The probes were reaped before; the kernel may take a moment.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: could not remove {}", self.0.display());
    }
}

fn probe(seed: u64, distinct: usize, distinct_seed: u64) -> Probe {
    Probe::with_args(&[
        "--pages",
        "1",
        "--seed",
        &seed.to_string(),
        "--distinct-pages",
        &distinct.to_string(),
        "--distinct-seed",
        &distinct_seed.to_string(),
    ])
}

const OWN: usize = 1000;
const COMMON: usize = 512;

/// The daemon's `/run/ksmtuned/domains.json` put back as it was on drop
/// (panics included).
struct AuditFile(Option<Vec<u8>>);

impl AuditFile {
    fn save() -> AuditFile {
        AuditFile(std::fs::read(ksmtuned::sample::last_audit::LAST_AUDIT_FILE).ok())
    }
}

impl Drop for AuditFile {
    fn drop(&mut self) {
        let path = ksmtuned::sample::last_audit::LAST_AUDIT_FILE;
        let _ = match &self.0 {
            Some(old) => std::fs::write(path, old),
            None => std::fs::remove_file(path),
        };
    }
}

/// Two tenants' probes: each tenant's two with the same `OWN` pages, and
/// one each with `COMMON` pages the other tenant has too.
fn tenants(a: &Cgroup, b: &Cgroup) -> ([Probe; 3], [Probe; 3]) {
    let tenant_a = [
        probe(21, OWN, 100),
        probe(21, OWN, 100),
        probe(21, COMMON, 300),
    ];
    let tenant_b = [
        probe(23, OWN, 200),
        probe(23, OWN, 200),
        probe(23, COMMON, 300),
    ];
    for p in tenant_a.iter() {
        a.add(p.pid);
    }
    for p in &tenant_b {
        b.add(p.pid);
    }
    (tenant_a, tenant_b)
}

fn merging(pid: u32) -> u64 {
    proc::ksm_stat(&Root::default(), pid)
        .and_then(|s| s.merging_pages)
        .unwrap_or(0)
}

/// Run ksmd fast until every probe of the two tenants has its pages
/// merged (its own, or the common ones, and the page all three share),
/// then stop it; panics after 120 s.
fn merge_tenants(ksm: &ksmtuned::kernel::ksm::Ksm, tenant_a: &[Probe], tenant_b: &[Probe]) {
    ksm.write(Setting::number(Knob::PagesToScan, 5000).unwrap())
        .unwrap();
    ksm.write(Setting::number(Knob::SleepMillisecs, 5).unwrap())
        .unwrap();
    ksm.set_run(Run::Merge).unwrap();
    let want = |i: usize| 1 + if i == 2 { COMMON } else { OWN } as u64;
    let done = || {
        tenant_a
            .iter()
            .chain(tenant_b)
            .enumerate()
            .all(|(i, p)| merging(p.pid) >= want(i % 3))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    ksm.set_run(Run::Stop).unwrap();
    assert!(done(), "ksmd did not merge the probes in 120 s");
}

/// Two tenants on the real kernel, ready to merge: the ksmd lock (its
/// knobs restored last), the two cgroups with their probes, and the
/// daemon's audit file put back as it was. Fields drop in this order:
/// the probes, their cgroups, the file, then the lock.
struct TwoTenants {
    tenant_a: Vec<Probe>,
    tenant_b: Vec<Probe>,
    a: Cgroup,
    b: Cgroup,
    _file: AuditFile,
    _exp: Experiment,
    ksm: ksmtuned::kernel::ksm::Ksm,
}

impl TwoTenants {
    /// `None` (said) where the test cannot run: no writable KSM, not root,
    /// no cgroup v2.
    fn set_up(test: &str, names: (&str, &str)) -> Option<TwoTenants> {
        let ksm = support::real_ksm(test)?;
        if sys::euid() != 0 {
            eprintln!("SKIPPED: needs root (to make cgroups)");
            return None;
        }
        let exp = Experiment::begin_or_skip(&ksm)?;
        let (a, b) = (Cgroup::make(names.0)?, Cgroup::make(names.1)?);
        let _file = AuditFile::save();
        let (tenant_a, tenant_b) = tenants(&a, &b);
        Some(TwoTenants {
            tenant_a: tenant_a.into(),
            tenant_b: tenant_b.into(),
            a,
            b,
            _file,
            _exp: exp,
            ksm,
        })
    }
}

#[test]
fn audit_reports_the_pages_two_tenants_share() {
    // Tenant A: two probes with the same 1000 pages, one with 512 pages
    // tenant B also has; B likewise with its own 1000.
    let Some(t) = TwoTenants::set_up(
        "audit_reports_the_pages_two_tenants_share",
        ("ksmtuned-test-a", "ksmtuned-test-b"),
    ) else {
        return;
    };
    let (ksm, a, b, tenant_a, tenant_b) = (&t.ksm, &t.a, &t.b, &t.tenant_a, &t.tenant_b);
    // Before ksmd runs: the estimate by domain says what merging only
    // within each tenant saves (their own 1000 pages twice over, and the
    // one identical page of their three probes) and what merging across
    // them adds (the pages in common).
    let mut est = std::process::Command::new(support::KSMCTL);
    est.args([
        "estimate",
        "--json",
        "--by",
        "domain",
        "--domains",
        "cgroup:1",
    ]);
    est.args(
        tenant_a
            .iter()
            .chain(tenant_b.iter())
            .map(|p| p.pid.to_string()),
    );
    let o = est.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &j["domains"];
    let page = sys::page_size();
    assert_eq!(d["domains"], 2, "{d}");
    assert_eq!(d["trust_domains"], "cgroup:1");
    assert_eq!(
        d["within_domains_bytes"].as_u64(),
        Some((2 * OWN as u64 + 2 * 2) * page),
        "{d}"
    );
    assert_eq!(
        d["across_domains_bytes"].as_u64(),
        Some(COMMON as u64 * page),
        "{d}"
    );
    let groups: Vec<&str> = j["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["group"].as_str().unwrap())
        .collect();
    assert!(
        groups.iter().all(|g| *g == a.domain() || *g == b.domain()),
        "{groups:?}"
    );

    merge_tenants(ksm, tenant_a, tenant_b);

    let root = Root::default();
    let r = audit::audit(&root, TrustDomains::Cgroup { depth: 1 }, None).unwrap();
    let (da, db) = (a.domain(), b.domain());
    let ours: Vec<_> = r
        .pairs
        .iter()
        .filter(|p| [&da, &db].contains(&&p.a) || [&da, &db].contains(&&p.b))
        .collect();
    let expected = COMMON as u64 * page;
    assert_eq!(ours.len(), 1, "{:#?}", r.pairs);
    let got = ours[0].shared_bytes;
    assert!(
        got.abs_diff(expected) * 100 <= expected,
        "cross-domain bytes {got}, built in {expected}"
    );
    assert!(
        r.domains[&da].len() == 3 && r.domains[&db].len() == 3,
        "{:?}",
        r.domains
    );
    // Within each tenant, its own pages are merged but cross nothing.
    assert!(r.ksm_bytes >= (2 * OWN + COMMON) as u64 * page);
    eprintln!(
        "audit: {} processes, {} pages examined in {:.3} s ({:.3} s CPU); {:?} and {:?} share {got} bytes",
        r.processes_scanned, r.pages_examined, r.duration_seconds, r.cpu_seconds, da, db
    );
    // The same with the daemon's CPU cap: the same answer.
    let capped = audit::audit(
        &root,
        TrustDomains::Cgroup { depth: 1 },
        Some(audit::DEFAULT_CPU_LIMIT),
    )
    .unwrap();
    let again = capped
        .pairs
        .iter()
        .find(|p| p.a == ours[0].a && p.b == ours[0].b)
        .unwrap();
    assert_eq!(again.shared_bytes, got);

    // The daemon (a dry run: it writes nothing) audits at start, serves the
    // pair in its metrics, and with warn logs it once, the probes named.
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let conf = format!(
        "KSM_TRUST_DOMAINS=cgroup:1\nKSM_CROSS_DOMAIN=warn\nKSM_METRICS_LISTEN=127.0.0.1:{port}\n"
    );
    let d = support::daemon(dir.path(), &conf, &["--dry-run"]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let series = format!("ksm_cross_domain_shared_bytes{{a={da:?},b={db:?}}}");
    let text = support::poll_until(Duration::from_secs(60), || {
        let r = support::http_get(addr, "/metrics").ok()?;
        r.body.contains(&series).then_some(r.body)
    })
    .unwrap_or_else(|| panic!("no {series} in the metrics within 60 s"));
    assert_eq!(
        support::value_of(&text, &series),
        Some(got as f64),
        "{text}"
    );
    assert!(support::value_of(&text, "ksm_cross_domain_audit_timestamp_seconds").unwrap() > 0.0);
    let duration = support::value_of(&text, "ksm_cross_domain_audit_duration_seconds").unwrap();
    assert!(duration < 10.0, "{duration}");
    // ksmctl ps marks the tenants' processes from the daemon's audit, and
    // says which domains share.
    let ps = std::process::Command::new(support::KSMCTL)
        .arg("ps")
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    for p in tenant_a.iter() {
        let row = ps
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&p.pid.to_string()))
            .unwrap_or_else(|| panic!("no row for {} in:\n{ps}", p.pid));
        assert!(
            row.ends_with(&format!("[shares across domains: {db}]")),
            "{row}"
        );
    }
    let line = ps
        .lines()
        .find(|l| l.starts_with("Trust domains (by cgroup:1"))
        .unwrap_or_else(|| panic!("no domains line in:\n{ps}"));
    assert!(line.contains(&format!("{da} and {db} share")), "{line}");
    let j = std::process::Command::new(support::KSMCTL)
        .args(["ps", "--json"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let row = j["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == tenant_b[0].pid)
        .unwrap();
    assert_eq!(row["domain"], db.as_str(), "{row:#}");
    assert_eq!(row["shares_with"][0], da.as_str(), "{row:#}");
    // A reload that changes the audit's settings audits again at once; the
    // pair, warned about already, is not warned about twice.
    let first = support::value_of(&text, "ksm_cross_domain_audit_timestamp_seconds").unwrap();
    std::fs::write(
        dir.path().join("ksmtuned.conf"),
        format!("{conf}KSM_DOMAIN_AUDIT_INTERVAL=120\n"),
    )
    .unwrap();
    sys::kill(d.0.id(), libc::SIGHUP).unwrap();
    support::poll_until(Duration::from_secs(60), || {
        let r = support::http_get(addr, "/metrics").ok()?;
        let t = support::value_of(&r.body, "ksm_cross_domain_audit_timestamp_seconds")?;
        (t > first && support::value_of(&r.body, &series) == Some(got as f64)).then_some(())
    })
    .expect("no second audit within 60 s of the reload");
    // Reloaded without domains: the audit stops and its series go.
    std::fs::write(
        dir.path().join("ksmtuned.conf"),
        format!("KSM_METRICS_LISTEN=127.0.0.1:{port}\n"),
    )
    .unwrap();
    sys::kill(d.0.id(), libc::SIGHUP).unwrap();
    support::poll_until(Duration::from_secs(60), || {
        let r = support::http_get(addr, "/metrics").ok()?;
        (!r.body.contains("ksm_cross_domain_")).then_some(())
    })
    .expect("the cross-domain series still served 60 s after a reload without domains");
    drop(d);
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("KSM merged pages across trust domains") && l.contains(&da))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("ksm-testkit["), "{}", warned[0]);

    drop(t);
}

/// KSM_CROSS_DOMAIN=refuse on the real kernel: the two tenants merged
/// (within each and across), the daemon's first audit finds them sharing;
/// it stops ksmd and unmerges every page (run=2), says once what it gave
/// up, holds KSM so through retunes although its policy would run ksmd,
/// shows the hold in the metrics, `ksmctl status`, `ps` and `top`'s file,
/// and lets KSM run again on a reload.
#[test]
fn refuse_unmerges_and_holds_until_a_reload() {
    let Some(mut t) = TwoTenants::set_up(
        "refuse_unmerges_and_holds_until_a_reload",
        ("ksmtuned-test-ra", "ksmtuned-test-rb"),
    ) else {
        return;
    };
    let (ksm, a, b) = (&t.ksm, &t.a, &t.b);
    let (tenant_a, tenant_b) = (&t.tenant_a, &t.tenant_b);
    merge_tenants(ksm, tenant_a, tenant_b);
    let page = sys::page_size();
    let before = ksm.read().unwrap();
    let saved_before = before.saved_bytes(page);
    let (da, db) = (a.domain(), b.domain());
    eprintln!(
        "merged: {} pages sharing ({} KiB saved), {} of them within the tenants",
        before.pages_sharing.unwrap_or(0),
        saved_before / 1024,
        2 * OWN + 2 * 2
    );

    // KSM_THRES_COEF=100: the classic policy wants ksmd running all the
    // time; the hold must win over it.
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let conf = format!(
        "KSM_TRUST_DOMAINS=cgroup:1\nKSM_CROSS_DOMAIN=refuse\nKSM_THRES_COEF=100\n\
         KSM_MONITOR_INTERVAL=3600\nKSM_METRICS_LISTEN=127.0.0.1:{port}\n"
    );
    let d = support::daemon(dir.path(), &conf, &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let text = support::poll_until(Duration::from_secs(60), || {
        let r = support::http_get(addr, "/metrics").ok()?;
        (support::value_of(&r.body, "ksm_cross_domain_refused") == Some(1.0)
            && support::value_of(&r.body, "ksm_cross_domain_refused_saved_bytes")? > 0.0)
            .then_some(r.body)
    })
    .expect("no hold in the metrics within 60 s");
    let gave_up = support::value_of(&text, "ksm_cross_domain_refused_saved_bytes").unwrap() as u64;
    // What it gave up is what KSM saved when it stopped it (the probes'
    // merged pages; the host may have a few of its own).
    assert!(
        gave_up >= saved_before.min((2 * OWN as u64 + COMMON as u64) * page),
        "gave up {gave_up}, saved before {saved_before}"
    );
    support::poll_until(Duration::from_secs(60), || {
        let k = ksm.read().ok()?;
        (k.run == Some(Run::Unmerge) && k.pages_sharing == Some(0)).then_some(())
    })
    .expect("KSM not stopped and unmerged (run=2, no page sharing) within 60 s");
    let root = Root::default();
    let r = audit::audit(&root, TrustDomains::Cgroup { depth: 1 }, None).unwrap();
    assert!(
        r.pairs.is_empty(),
        "still shared after the unmerge: {:#?}",
        r.pairs
    );
    for p in tenant_a.iter().chain(tenant_b.iter()) {
        assert_eq!(merging(p.pid), 0, "pid {} still has merged pages", p.pid);
    }

    // Held through retunes, although the policy would run ksmd.
    sys::kill(d.0.id(), libc::SIGUSR1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ksm.run_state().unwrap(),
        Some(Run::Unmerge),
        "a retune lifted the hold"
    );
    // The views say so: status's "Held" line, ps's domains line.
    let status = std::process::Command::new(support::KSMCTL)
        .arg("status")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    let held = status
        .lines()
        .find(|l| l.starts_with("Held:"))
        .unwrap_or_else(|| panic!("no Held line in:\n{status}"));
    assert!(
        held.contains("KSM_CROSS_DOMAIN=refuse") && held.contains(&da) && held.contains(&db),
        "{held}"
    );
    let j = std::process::Command::new(support::KSMCTL)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let refusal = &j["domain_audit"]["refusal"];
    assert_eq!(
        refusal["saved_bytes_given_up"].as_u64(),
        Some(gave_up),
        "{j:#}"
    );
    assert_eq!(refusal["pairs"][0]["a"], da.as_str(), "{j:#}");

    // Tenant B leaves (its next audit would refuse again otherwise), and a
    // reload lifts the hold: the policy runs ksmd again.
    t.tenant_b.clear();
    sys::kill(d.0.id(), libc::SIGHUP).unwrap();
    support::poll_until(Duration::from_secs(60), || {
        (ksm.run_state().ok()? == Some(Run::Merge)).then_some(())
    })
    .expect("ksmd not started again within 60 s of the reload");
    drop(d);
    ksm.set_run(Run::Stop).unwrap();
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("KSM_CROSS_DOMAIN=refuse:") && l.contains("unmerging every page"))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(
        refused[0].starts_with("error: ")
            && refused[0].contains(&da)
            && refused[0].contains(&format!("giving up {} KiB saved", gave_up / 1024)),
        "{}",
        refused[0]
    );
    let warned = log
        .lines()
        .filter(|l| l.contains("KSM merged pages across trust domains") && l.contains(&da))
        .count();
    assert_eq!(warned, 1, "{log}");
    assert!(
        log.contains("the hold on KSM is lifted by the reload"),
        "{log}"
    );
    eprintln!(
        "refuse: gave up {} KiB saved (all of it: {} KiB within the tenants, {} KiB across)",
        gave_up / 1024,
        (2 * OWN as u64 + 4) * page / 1024,
        COMMON as u64 * page / 1024
    );

    drop(t);
}

/// Pages of each of the two big probes: 1 GiB with 4 KiB pages.
const BIG: usize = 262_144;

/// The audit's cost on a host with 2 GiB of mergeable memory in processes
/// that map KSM pages: every page's frame looked at, and the CPU it used
/// held to the daemon's cap (10% of one CPU, plus the unthrottled listing
/// of /proc: 15% allowed).
#[test]
fn audit_cpu_is_held_to_its_budget() {
    let Some(ksm) = support::real_ksm("audit_cpu_is_held_to_its_budget") else {
        return;
    };
    let Some(exp) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    let page = sys::page_size() as usize;
    let pages = BIG * 4096 / page;
    // Two identical pages each (merged), the rest unique (scanned, never
    // merged): the audit must look at all of them.
    let probes: Vec<Probe> = (0..2)
        .map(|_| {
            Probe::with_args(&[
                "--pages",
                "2",
                "--seed",
                "41",
                "--unique-pages",
                &pages.to_string(),
            ])
        })
        .collect();
    ksm.write(Setting::number(Knob::PagesToScan, 20_000).unwrap())
        .unwrap();
    ksm.write(Setting::number(Knob::SleepMillisecs, 1).unwrap())
        .unwrap();
    ksm.set_run(Run::Merge).unwrap();
    let merged = |pid: u32| {
        proc::ksm_stat(&Root::default(), pid)
            .and_then(|s| s.merging_pages)
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = || probes.iter().all(|p| merged(p.pid) >= 2);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    ksm.set_run(Run::Stop).unwrap();
    assert!(done(), "ksmd did not merge the probes' pages in 180 s");
    let root = Root::default();
    let spec = TrustDomains::Guest;
    let full = audit::audit(&root, spec, None).unwrap();
    let capped = audit::audit(&root, spec, Some(audit::DEFAULT_CPU_LIMIT)).unwrap();
    for r in [&full, &capped] {
        assert!(r.pages_examined >= 2 * pages as u64, "{r:?}");
    }
    let share = capped.cpu_seconds / capped.duration_seconds;
    eprintln!(
        "audit of {} pages ({} MiB) in {} processes: uncapped {:.2} s wall, {:.2} s CPU \
         ({:.2} µs a page); capped at {}%: {:.2} s wall, {:.2} s CPU, {:.1}% of one CPU",
        capped.pages_examined,
        (capped.pages_examined * page as u64) >> 20,
        capped.processes_scanned,
        full.duration_seconds,
        full.cpu_seconds,
        full.cpu_seconds * 1e6 / full.pages_examined as f64,
        audit::DEFAULT_CPU_LIMIT,
        capped.duration_seconds,
        capped.cpu_seconds,
        share * 100.0
    );
    assert!(
        share <= 0.15,
        "the capped audit used {:.1}% of one CPU",
        share * 100.0
    );
    drop(probes);
    drop(exp);
}
