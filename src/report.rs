//! One computed report of KSM's state, rendered by every view.
//!
//! A [`Report`] is built from a [`Sample`] and, for the rates that need
//! two readings (ksmd's CPU share, pages scanned per second), the sample
//! before it. `ksmctl status` (text and JSON), `ksmctl top`, `ksmctl ps`
//! and the Prometheus metrics render the same report, so the run state is
//! worded, and the savings, ratios and totals computed, in one place.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::doctor::rails::Headroom;
use crate::kernel::ksm::{KsmState, Run, FILES};
use crate::sample::last_audit::{LastAudit, Refusal};
use crate::sample::last_estimate::LastEstimate;
use crate::sample::processes::ProcessKsm;
use crate::sample::services::{OtherWriter, RunningTuner};
use crate::sample::split::SplitFreed;
use crate::sample::Sample;

/// What ksmd is doing, as `run` and the presence of KSM say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsmRun {
    /// No `/sys/kernel/mm/ksm`: the kernel was built without CONFIG_KSM.
    Unsupported,
    /// run=1.
    Running,
    /// run=0: merged pages stay merged.
    Stopped,
    /// run=2: stopped, and the merged pages were unmerged.
    Unmerged,
    /// KSM without a `run` file.
    Unknown,
}

impl KsmRun {
    /// From a reading (`None`: no KSM).
    pub fn of(state: Option<&KsmState>) -> KsmRun {
        match state.map(|s| s.run) {
            None => KsmRun::Unsupported,
            Some(Some(Run::Merge)) => KsmRun::Running,
            Some(Some(Run::Stop)) => KsmRun::Stopped,
            Some(Some(Run::Unmerge)) => KsmRun::Unmerged,
            Some(None) => KsmRun::Unknown,
        }
    }

    /// One word, for machines (`ksmctl status --json`'s `state`).
    pub fn word(self) -> &'static str {
        match self {
            KsmRun::Unsupported => "unsupported",
            KsmRun::Running => "running",
            _ => "stopped",
        }
    }

    /// A few words, for a header line (`ksmctl top`).
    pub fn short(self) -> &'static str {
        match self {
            KsmRun::Unsupported => "not supported",
            KsmRun::Running => "running",
            KsmRun::Stopped => "stopped",
            KsmRun::Unmerged => "stopped, unmerged",
            KsmRun::Unknown => "unknown",
        }
    }

    /// The state with what it means (`ksmctl status`).
    pub fn describe(self) -> &'static str {
        match self {
            KsmRun::Unsupported => "not supported (kernel built without CONFIG_KSM)",
            KsmRun::Running => "running (ksmd is scanning)",
            KsmRun::Stopped => "stopped (ksmd idle; merged pages stay merged)",
            KsmRun::Unmerged => "stopped (run=2: merged pages were unmerged)",
            KsmRun::Unknown => "unknown (no run file)",
        }
    }

    /// The exit status of `ksmctl status`, as an init script's: 0
    /// running, 3 stopped, 1 not supported.
    pub fn exit_code(self) -> i32 {
        match self {
            KsmRun::Running => 0,
            KsmRun::Unsupported => 1,
            _ => 3,
        }
    }
}

/// The sums over the processes of a report (named in JSON as the
/// per-process figures they add up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub processes: usize,
    #[serde(rename = "ksm_merging_pages")]
    pub merging_pages: u64,
    #[serde(rename = "ksm_zero_pages")]
    pub zero_pages: i64,
    pub merged_bytes: u64,
    /// Sum over the processes that report a profit.
    #[serde(rename = "ksm_process_profit")]
    pub profit_bytes: Option<i64>,
    #[serde(rename = "ksm_rmap_items")]
    pub rmap_items: u64,
}

/// The per-process keys of `ksmctl ps --json` renamed in 0.3 to the rule
/// every JSON output follows (the kernel's name, here `ksm_stat`'s, plus a
/// unit suffix only where the unit is changed): (new, 0.2's). The old keys
/// are written beside the new ones until 0.4.
pub const PROCESS_LEGACY_KEYS: &[(&str, &str)] = &[
    ("ksm_merging_pages", "merging_pages"),
    ("ksm_zero_pages", "zero_pages"),
    ("ksm_rmap_items", "rmap_items"),
    ("ksm_process_profit", "profit_bytes"),
    ("ksm_merge_any", "merge_any"),
    ("ksm_mergeable", "mergeable"),
];

/// Copy each `(new, old)` key of a JSON object to its old name, for the
/// scripts written against an earlier release.
pub fn add_legacy_keys(v: &mut serde_json::Value, keys: &[(&str, &str)]) {
    if let Some(m) = v.as_object_mut() {
        for (new, old) in keys {
            if let Some(x) = m.get(*new).cloned() {
                m.insert((*old).to_string(), x);
            }
        }
    }
}

impl Totals {
    fn of(procs: &[ProcessKsm], page_size: u64) -> Totals {
        let mut t = Totals::default();
        for p in procs {
            t.processes += 1;
            t.merging_pages += p.merging_pages;
            t.zero_pages += p.zero_pages;
            t.merged_bytes += p.merged_pages().saturating_mul(page_size);
            t.rmap_items += p.rmap_items;
            if let Some(pr) = p.profit_bytes {
                t.profit_bytes = Some(t.profit_bytes.unwrap_or(0) + pr);
            }
        }
        t
    }
}

/// Everything the views show, computed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub page_size: u64,
    /// KSM's files; `None`: no KSM.
    pub ksm: Option<KsmState>,
    pub run: KsmRun,
    /// `pages_sharing + ksm_zero_pages`.
    pub saved_pages: u64,
    pub saved_bytes: u64,
    /// pages_sharing / pages_shared.
    pub sharing_ratio: Option<f64>,
    /// pages_unshared / pages_sharing.
    pub unshared_ratio: Option<f64>,
    /// The most ksmd scans with its settings: pages_to_scan every
    /// sleep_millisecs (`None` without a sleep: it scans continuously).
    pub scan_limit_pages_per_s: Option<u64>,
    /// Pages scanned per second between the sample before and this one.
    pub scan_rate_pages_per_s: Option<f64>,
    /// ksmd's CPU time since boot, seconds.
    pub ksmd_cpu_seconds: Option<f64>,
    /// ksmd's CPU use between the sample before and this one, a fraction
    /// of one CPU.
    pub ksmd_cpu_ratio: Option<f64>,
    /// What an unmerge would give back and what the host can take (when
    /// meminfo was read).
    pub headroom: Option<Headroom>,
    /// The tuners running (ksmtuned, ksmtuned's dry runs, others).
    pub tuners: Vec<RunningTuner>,
    /// Other programs that write KSM's settings when asked (libvirt's
    /// daemons: `virsh node-memory-tune`); filled by the views that show
    /// them ([`Report::with_other_writers`]).
    pub other_writers: Vec<OtherWriter>,
    /// What KSM's huge-page splits freed outside its counters (where the
    /// sample counted it; see [`Report::thp_split_freed`]).
    pub split_freed: Option<SplitFreed>,
    /// The daemon's last continuous estimate, when the sample read it
    /// (see [`Report::recent_estimate`]).
    pub last_estimate: Option<LastEstimate>,
    /// The daemon's last cross-domain audit, when the sample read it (see
    /// [`Report::recent_audit`]).
    pub last_audit: Option<LastAudit>,
    /// The processes with merged pages (and every QEMU guest), as sampled.
    pub processes: Vec<ProcessKsm>,
    pub totals: Totals,
}

fn ratio(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    }
}

impl Report {
    /// The report of `sample`; `before` (an earlier sample of the same
    /// sampler) gives the rates.
    pub fn build(sample: &Sample, before: Option<&Sample>, tuners: Vec<RunningTuner>) -> Report {
        let page_size = sample.page_size;
        let ksm = sample.ksm.clone();
        let s = ksm.clone().unwrap_or_default();
        let dt = before
            .map(|b| sample.elapsed.saturating_sub(b.elapsed).as_secs_f64())
            .filter(|dt| *dt > 0.0);
        let ksmd_cpu_seconds = sample.ksmd_cpu_seconds();
        let ksmd_cpu_ratio = match (dt, before.and_then(Sample::ksmd_cpu_seconds)) {
            (Some(dt), Some(c0)) => ksmd_cpu_seconds.map(|c1| ((c1 - c0) / dt).max(0.0)),
            _ => None,
        };
        let scanned = |s: &Sample| s.ksm.as_ref().and_then(|k| k.pages_scanned);
        let scan_rate_pages_per_s = match (dt, before.and_then(scanned), scanned(sample)) {
            (Some(dt), Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / dt),
            _ => None,
        };
        Report {
            page_size,
            run: KsmRun::of(ksm.as_ref()),
            saved_pages: s.saved_pages(),
            saved_bytes: s.saved_bytes(page_size),
            sharing_ratio: ratio(s.pages_sharing, s.pages_shared),
            unshared_ratio: ratio(s.pages_unshared, s.pages_sharing),
            scan_limit_pages_per_s: match (s.pages_to_scan, s.sleep_millisecs) {
                (Some(p), Some(ms)) if ms > 0 => Some(p.saturating_mul(1000) / ms),
                _ => None,
            },
            scan_rate_pages_per_s,
            ksmd_cpu_seconds,
            ksmd_cpu_ratio,
            headroom: match (&ksm, &sample.mem) {
                (Some(k), Some(mem)) => Some(Headroom::new(k, mem, page_size)),
                _ => None,
            },
            tuners,
            other_writers: Vec::new(),
            split_freed: sample.split_freed.clone(),
            last_estimate: sample.last_estimate.clone(),
            last_audit: sample.last_audit.clone(),
            totals: Totals::of(&sample.processes, page_size),
            processes: sample.processes.clone(),
            ksm,
        }
    }

    /// KSM's files (the default, all absent, without KSM).
    pub fn files(&self) -> KsmState {
        self.ksm.clone().unwrap_or_default()
    }

    /// What KSM's huge-page splits freed, on a kernel with transparent
    /// huge pages (`None` without them: nothing to say).
    pub fn thp_split_freed(&self) -> Option<&SplitFreed> {
        self.split_freed.as_ref().filter(|f| f.thp_mode.is_some())
    }

    /// The daemon's last estimate while it is recent at `now` (younger
    /// than two of its intervals).
    pub fn recent_estimate(&self, now: std::time::SystemTime) -> Option<&LastEstimate> {
        self.last_estimate.as_ref().filter(|e| e.recent(now))
    }

    /// The daemon's last cross-domain audit while it is recent at `now`
    /// (its hold of KSM_CROSS_DOMAIN=refuse with it).
    pub fn recent_audit(&self, now: std::time::SystemTime) -> Option<&LastAudit> {
        self.last_audit.as_ref().filter(|a| a.recent(now))
    }

    /// The mark of a process whose trust domain shares KSM pages with
    /// another, from ksmtuned's last audit: `shares across domains: B, C`
    /// (empty when it does not, or no audit is recent).
    pub fn domain_mark(&self, pid: u32) -> String {
        let Some(a) = self.recent_audit(std::time::SystemTime::now()) else {
            return String::new();
        };
        match a.audit.of_process(pid) {
            Some((_, with)) if !with.is_empty() => {
                format!("shares across domains: {}", with.join(", "))
            }
            _ => String::new(),
        }
    }

    /// The lines under a view's table that say which trust domains share
    /// pages, from ksmtuned's last audit (none without a recent one).
    pub fn domain_lines(&self) -> Vec<String> {
        let now = std::time::SystemTime::now();
        let Some(a) = self.recent_audit(now) else {
            return Vec::new();
        };
        let age = crate::human::age(a.age(now));
        let mut lines = Vec::new();
        let head = format!(
            "Trust domains (by {}, ksmtuned's audit {age} ago):",
            a.audit.trust_domains
        );
        if a.audit.pairs.is_empty() {
            lines.push(format!("{head} no KSM page is shared across domains."));
        } else {
            let pairs: Vec<String> = a
                .audit
                .pairs
                .iter()
                .take(3)
                .map(|p| {
                    format!(
                        "{} and {} share {}",
                        p.a,
                        p.b,
                        crate::human::ubytes(p.shared_bytes)
                    )
                })
                .collect();
            let more = a.audit.pairs.len().saturating_sub(3);
            let more = if more > 0 {
                format!(
                    " (and {more} more pair{})",
                    if more == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            lines.push(format!("{head} {}{more}.", pairs.join("; ")));
        }
        if let Some(h) = &a.refusal {
            lines.push(refusal_line(h));
        }
        lines
    }

    /// The bytes of `pages` pages.
    pub fn bytes(&self, pages: u64) -> u64 {
        pages.saturating_mul(self.page_size)
    }

    /// The report with the other writers of KSM's settings seen now.
    pub fn with_other_writers(mut self, writers: Vec<OtherWriter>) -> Report {
        self.other_writers = writers;
        self
    }

    /// `ksmctl status --json`: the state, every file of KSM's under its
    /// published key (`null`: this kernel does not have it), and what is
    /// computed from them. Keys carry their units.
    pub fn status_json(&self) -> StatusJson<'_> {
        StatusJson(self)
    }
}

/// What KSM_CROSS_DOMAIN=refuse did, in one sentence.
pub fn refusal_line(h: &Refusal) -> String {
    let pair = h
        .pairs
        .first()
        .map(|p| format!("{} and {} shared pages", p.a, p.b))
        .unwrap_or_else(|| "domains shared pages".into());
    let done = match (h.unmerged, h.saved_bytes_given_up) {
        (true, Some(b)) => format!(
            "every page was unmerged, giving up {} saved",
            crate::human::ubytes(b)
        ),
        (false, Some(_)) => {
            "ksmd was stopped, its pages left merged (the host has no room to unmerge them)"
                .to_string()
        }
        (_, None) => "ksmd is being stopped".to_string(),
    };
    format!(
        "KSM held stopped by ksmtuned (KSM_CROSS_DOMAIN=refuse): {pair}; {done}, until \
         `systemctl reload ksmtuned`."
    )
}

/// The JSON of `ksmctl status` (see [`Report::status_json`]).
pub struct StatusJson<'a>(&'a Report);

impl Serialize for StatusJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let files = r.files();
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("supported", &r.ksm.is_some())?;
        m.serialize_entry("state", r.run.word())?;
        m.serialize_entry("tuners", &r.tuners)?;
        m.serialize_entry("other_writers", &r.other_writers)?;
        m.serialize_entry("page_size_bytes", &r.page_size)?;
        for f in FILES {
            m.serialize_entry(f.name, &f.json_value(&files))?;
        }
        m.serialize_entry("saved_pages", &r.saved_pages)?;
        m.serialize_entry("saved_bytes", &r.saved_bytes)?;
        m.serialize_entry("sharing_ratio", &r.sharing_ratio)?;
        m.serialize_entry("unshared_ratio", &r.unshared_ratio)?;
        m.serialize_entry("scan_rate_pages_per_s", &r.scan_limit_pages_per_s)?;
        m.serialize_entry(
            "scan_rate_bytes_per_s",
            &r.scan_limit_pages_per_s.map(|p| r.bytes(p)),
        )?;
        if let Some(f) = r.thp_split_freed() {
            m.serialize_entry("split_freed", f)?;
        }
        if let Some(e) = r.recent_estimate(std::time::SystemTime::now()) {
            m.serialize_entry("estimate", e)?;
        }
        if let Some(a) = r.recent_audit(std::time::SystemTime::now()) {
            m.serialize_entry("domain_audit", a)?;
        }
        // 0.2's names of the files, until 0.4.
        for f in FILES.iter().filter(|f| f.legacy_key != f.name) {
            m.serialize_entry(f.legacy_key, &f.json_value(&files))?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refusal_says_what_was_done() {
        let mut h = Refusal {
            since_unix_seconds: 1,
            pairs: vec![crate::sample::last_audit::DomainPair {
                a: "a".into(),
                b: "b".into(),
                shared_bytes: 4096,
            }],
            cross_domain_bytes: 4096,
            saved_bytes_given_up: None,
            unmerged: false,
        };
        assert!(refusal_line(&h).contains("a and b shared pages; ksmd is being stopped"));
        h.saved_bytes_given_up = Some(0);
        assert!(refusal_line(&h).contains("its pages left merged (the host has no room"));
        h.saved_bytes_given_up = Some(2 << 20);
        h.unmerged = true;
        assert!(refusal_line(&h).contains(
            "every page was unmerged, giving up 2.00 MiB saved, until `systemctl reload"
        ));
    }

    #[test]
    fn run_states() {
        let s = |run| KsmState {
            run,
            ..Default::default()
        };
        assert_eq!(KsmRun::of(None), KsmRun::Unsupported);
        assert_eq!(KsmRun::of(Some(&s(Some(Run::Merge)))), KsmRun::Running);
        assert_eq!(KsmRun::of(Some(&s(Some(Run::Unmerge)))), KsmRun::Unmerged);
        assert_eq!(KsmRun::of(Some(&s(None))).exit_code(), 3);
        assert_eq!(KsmRun::Unsupported.exit_code(), 1);
        assert_eq!(KsmRun::Unmerged.word(), "stopped");
    }

    #[test]
    fn computed_once_from_a_sample_and_the_one_before() {
        let mut now = crate::sample::fixture();
        now.elapsed = Duration::from_secs(10);
        let mut before = now.clone();
        before.elapsed = Duration::from_secs(8);
        before.ksmd_cpu = now.ksmd_cpu.map(|c| crate::kernel::ksmd::CpuTime {
            ns: c.ns - 500_000_000,
            ..c
        });
        if let Some(k) = before.ksm.as_mut() {
            k.pages_scanned = k.pages_scanned.map(|n| n - 2000);
        }
        let r = Report::build(&now, Some(&before), Vec::new());
        let k = now.ksm.as_ref().unwrap();
        assert_eq!(r.saved_pages, k.saved_pages());
        assert_eq!(r.saved_bytes, k.saved_pages() * now.page_size);
        assert_eq!(
            r.sharing_ratio,
            Some(k.pages_sharing.unwrap() as f64 / k.pages_shared.unwrap() as f64)
        );
        assert_eq!(r.scan_rate_pages_per_s, Some(1000.0));
        assert!((r.ksmd_cpu_ratio.unwrap() - 0.25).abs() < 1e-9);
        let alone = Report::build(&now, None, Vec::new());
        assert_eq!(alone.ksmd_cpu_ratio, None);
        assert_eq!(alone.scan_rate_pages_per_s, None);
        assert_eq!(r.totals.processes, now.processes.len());
        assert_eq!(
            r.totals.merging_pages,
            now.processes.iter().map(|p| p.merging_pages).sum::<u64>()
        );
    }

    #[test]
    fn status_json_has_every_file_under_its_key() {
        let r = Report::build(&crate::sample::fixture(), None, Vec::new());
        let v = serde_json::to_value(r.status_json()).unwrap();
        for f in FILES {
            assert!(v.get(f.name).is_some(), "{}", f.name);
            assert_eq!(v.get(f.legacy_key), v.get(f.name), "{}", f.legacy_key);
        }
        assert_eq!(v["state"], "running");
        assert_eq!(v["saved_bytes"], r.saved_bytes);
        let none = Report::build(&Sample::empty(), None, Vec::new());
        let v = serde_json::to_value(none.status_json()).unwrap();
        assert_eq!(v["supported"], false);
        assert_eq!(v["state"], "unsupported");
        assert!(v["sharing_pages"].is_null());
    }
}
