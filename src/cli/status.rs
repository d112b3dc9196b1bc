//! `ksmctl status`: the state of KSM as a person and as a machine read it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::service::RunningTuner;
use crate::human;
use crate::kernel::ksm::{KsmState, Run};

/// Everything `ksmctl status` reports. JSON keys carry their units; a
/// `null` means this kernel does not have that file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub supported: bool,
    /// `running`, `stopped` or `unsupported`.
    pub state: &'static str,
    pub run: Option<u8>,
    pub tuners: Vec<RunningTuner>,
    pub page_size_bytes: u64,

    pub shared_pages: Option<u64>,
    pub sharing_pages: Option<u64>,
    pub unshared_pages: Option<u64>,
    pub volatile_pages: Option<u64>,
    pub zero_pages: Option<i64>,
    pub scanned_pages: Option<u64>,
    pub skipped_pages: Option<u64>,
    pub full_scans: Option<u64>,
    pub stable_node_chains: Option<u64>,
    pub stable_node_dups: Option<u64>,

    pub saved_pages: u64,
    pub saved_bytes: u64,
    pub general_profit_bytes: Option<i64>,
    /// pages_sharing / pages_shared.
    pub sharing_ratio: Option<f64>,
    /// pages_unshared / pages_sharing.
    pub unshared_ratio: Option<f64>,

    pub pages_to_scan: Option<u64>,
    pub sleep_ms: Option<u64>,
    /// The most ksmd scans with these settings (batch every sleep).
    pub scan_rate_pages_per_s: Option<u64>,
    pub scan_rate_bytes_per_s: Option<u64>,

    pub advisor_mode: Option<String>,
    pub advisor_max_cpu_percent: Option<u64>,
    pub advisor_target_scan_time_s: Option<u64>,
    pub advisor_min_pages_to_scan: Option<u64>,
    pub advisor_max_pages_to_scan: Option<u64>,

    pub smart_scan: Option<bool>,
    pub use_zero_pages: Option<bool>,
    pub merge_across_nodes: Option<bool>,
    pub max_page_sharing: Option<u64>,
    pub stable_node_chains_prune_ms: Option<u64>,
    pub max_kernel_pages: Option<u64>,
    /// What KSM's huge-page splits freed outside its counters (set by the
    /// command after [`Status::build`]; absent without KSM or THP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_freed: Option<crate::sample::split::SplitFreed>,
}

fn ratio(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
        _ => None,
    }
}

impl Status {
    /// The status of a host without KSM.
    pub fn unsupported(page_size: u64) -> Status {
        Status::build(None, page_size, Vec::new())
    }

    /// Build the report from a reading (`None`: no KSM here).
    pub fn build(state: Option<&KsmState>, page_size: u64, tuners: Vec<RunningTuner>) -> Status {
        let empty = KsmState::default();
        let s = state.unwrap_or(&empty);
        let rate = match (s.pages_to_scan, s.sleep_millisecs) {
            (Some(p), Some(ms)) if ms > 0 => Some(p.saturating_mul(1000) / ms),
            _ => None,
        };
        Status {
            supported: state.is_some(),
            state: match (state, s.run) {
                (None, _) => "unsupported",
                (Some(_), Some(Run::Merge)) => "running",
                _ => "stopped",
            },
            run: s.run.map(Run::as_u8),
            tuners,
            page_size_bytes: page_size,
            shared_pages: s.pages_shared,
            sharing_pages: s.pages_sharing,
            unshared_pages: s.pages_unshared,
            volatile_pages: s.pages_volatile,
            zero_pages: s.ksm_zero_pages,
            scanned_pages: s.pages_scanned,
            skipped_pages: s.pages_skipped,
            full_scans: s.full_scans,
            stable_node_chains: s.stable_node_chains,
            stable_node_dups: s.stable_node_dups,
            saved_pages: s.saved_pages(),
            saved_bytes: s.saved_bytes(page_size),
            general_profit_bytes: s.general_profit,
            sharing_ratio: ratio(s.pages_sharing, s.pages_shared),
            unshared_ratio: ratio(s.pages_unshared, s.pages_sharing),
            pages_to_scan: s.pages_to_scan,
            sleep_ms: s.sleep_millisecs,
            scan_rate_pages_per_s: rate,
            scan_rate_bytes_per_s: rate.map(|r| r.saturating_mul(page_size)),
            advisor_mode: s.advisor_mode.map(|m| m.to_string()),
            advisor_max_cpu_percent: s.advisor_max_cpu,
            advisor_target_scan_time_s: s.advisor_target_scan_time,
            advisor_min_pages_to_scan: s.advisor_min_pages_to_scan,
            advisor_max_pages_to_scan: s.advisor_max_pages_to_scan,
            smart_scan: s.smart_scan.map(|v| v != 0),
            use_zero_pages: s.use_zero_pages.map(|v| v != 0),
            merge_across_nodes: s.merge_across_nodes.map(|v| v != 0),
            max_page_sharing: s.max_page_sharing,
            stable_node_chains_prune_ms: s.stable_node_chains_prune_millisecs,
            max_kernel_pages: s.max_kernel_pages,
            split_freed: None,
        }
    }

    /// The exit status of `status`, as an init script's: 0 running,
    /// 3 stopped, 1 not supported.
    pub fn exit_code(&self) -> i32 {
        match self.state {
            "running" => 0,
            "stopped" => 3,
            _ => 1,
        }
    }

    /// The human summary.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let line = |o: &mut String, label: &str, text: String| {
            let _ = writeln!(o, "{:<16}{}", format!("{label}:"), text);
        };
        if !self.supported {
            line(
                &mut o,
                "KSM",
                "not supported (no /sys/kernel/mm/ksm: kernel built without CONFIG_KSM)".into(),
            );
            return o;
        }
        let state = match self.run {
            Some(1) => "running (ksmd is scanning)".to_string(),
            Some(0) => "stopped (ksmd idle; merged pages stay merged)".to_string(),
            Some(2) => "stopped (run=2: merged pages were unmerged)".to_string(),
            _ => "unknown (no run file)".to_string(),
        };
        line(&mut o, "KSM", state);
        let tuner = if self.tuners.is_empty() {
            "none running".to_string()
        } else {
            self.tuners
                .iter()
                .map(|t| {
                    let dry = if t.dry_run {
                        ", dry run: writes nothing"
                    } else {
                        ""
                    };
                    format!("{} (pid {}{dry})", t.comm, t.pid)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        line(&mut o, "Tuner", tuner);
        let zero = match self.zero_pages {
            Some(z) => format!(" + {} zero pages", human::count(z.max(0) as u64)),
            None => String::new(),
        };
        line(
            &mut o,
            "Memory saved",
            format!(
                "{}  ({} pages sharing{zero}, page size {})",
                human::ubytes(self.saved_bytes),
                human::count(self.sharing_pages.unwrap_or(0)),
                human::ubytes(self.page_size_bytes)
            ),
        );
        if let Some(line_text) = self
            .split_freed
            .as_ref()
            .and_then(|f| f.summary(self.page_size_bytes))
        {
            line(&mut o, "Split freed", line_text);
        }
        if let Some(p) = self.general_profit_bytes {
            let verdict = if p > 0 {
                "worth its cost"
            } else if p < 0 {
                "costs more than it saves"
            } else {
                "nothing gained yet"
            };
            line(
                &mut o,
                "General profit",
                format!(
                    "{}  (saved minus KSM's own metadata: {verdict})",
                    human::bytes(p.into())
                ),
            );
        }
        let opt = |v: Option<u64>| v.map(human::count).unwrap_or_else(|| "-".into());
        let mut pages = format!(
            "shared {}  sharing {}  unshared {}  volatile {}",
            opt(self.shared_pages),
            opt(self.sharing_pages),
            opt(self.unshared_pages),
            opt(self.volatile_pages)
        );
        if let Some(z) = self.zero_pages {
            let _ = write!(pages, "  zero {z}");
        }
        line(&mut o, "Pages", pages);
        line(
            &mut o,
            "Sharing ratio",
            match self.sharing_ratio {
                Some(r) => format!(
                    "{r:.2}  (extra mappings per KSM page; higher is better, at most max_page_sharing)"
                ),
                None => "-  (no KSM pages yet)".to_string(),
            },
        );
        line(
            &mut o,
            "Unshared ratio",
            match self.unshared_ratio {
                Some(r) => format!(
                    "{r:.2}  (unique pages rescanned per page saved; high means scanning is wasted)"
                ),
                None => "-  (nothing saved yet)".to_string(),
            },
        );
        let mut scans = opt(self.full_scans);
        if let Some(s) = self.scanned_pages {
            let _ = write!(scans, "  ({} pages scanned", human::count(s));
            if let Some(k) = self.skipped_pages {
                let _ = write!(scans, ", {} skipped", human::count(k));
            }
            scans.push(')');
        }
        line(&mut o, "Full scans", scans);
        let scanner = match (self.pages_to_scan, self.sleep_ms) {
            (Some(p), Some(ms)) => {
                let rate = match (self.scan_rate_pages_per_s, self.scan_rate_bytes_per_s) {
                    (Some(r), Some(b)) => format!(
                        " = at most {} pages/s ({}/s)",
                        human::count(r),
                        human::ubytes(b)
                    ),
                    _ => " (no sleep: ksmd scans continuously)".to_string(),
                };
                format!("{} pages every {ms} ms{rate}", human::count(p))
            }
            _ => "-".to_string(),
        };
        line(&mut o, "Scanner", scanner);
        if let Some(mode) = &self.advisor_mode {
            line(
                &mut o,
                "Advisor",
                format!(
                    "{mode}  (max cpu {}%, target scan time {} s, pages_to_scan {}..{})",
                    opt(self.advisor_max_cpu_percent),
                    opt(self.advisor_target_scan_time_s),
                    opt(self.advisor_min_pages_to_scan),
                    opt(self.advisor_max_pages_to_scan)
                ),
            );
        }
        let onoff = |v: Option<bool>| match v {
            Some(true) => "on",
            Some(false) => "off",
            None => "-",
        };
        let mut opts = Vec::new();
        if self.smart_scan.is_some() {
            opts.push(format!("smart_scan {}", onoff(self.smart_scan)));
        }
        if self.use_zero_pages.is_some() {
            opts.push(format!("use_zero_pages {}", onoff(self.use_zero_pages)));
        }
        if self.merge_across_nodes.is_some() {
            opts.push(format!(
                "merge_across_nodes {}",
                onoff(self.merge_across_nodes)
            ));
        }
        if let Some(m) = self.max_page_sharing {
            opts.push(format!("max_page_sharing {m}"));
        }
        if let Some(m) = self.max_kernel_pages {
            opts.push(if m == 0 {
                "max_kernel_pages unlimited".to_string()
            } else {
                format!("max_kernel_pages {}", human::count(m))
            });
        }
        line(&mut o, "Options", opts.join(", "));
        o
    }
}
