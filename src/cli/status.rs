//! `ksmctl status`: the state of KSM as a person reads it; the JSON
//! (`--json`) is [`Report::status_json`]. Both render one [`Report`].

use std::fmt::Write as _;

use crate::human;
use crate::report::{KsmRun, Report};

/// The human summary of a report.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let line = |o: &mut String, label: &str, text: String| {
        let _ = writeln!(o, "{:<16}{}", format!("{label}:"), text);
    };
    line(&mut o, "KSM", r.run.describe().to_string());
    if r.run == KsmRun::Unsupported {
        return o;
    }
    let k = r.files();
    let tuner = if r.tuners.is_empty() {
        "none running".to_string()
    } else {
        r.tuners
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
    if !r.other_writers.is_empty() {
        let who: Vec<String> = r
            .other_writers
            .iter()
            .map(|w| format!("{} (pid {})", w.comm, w.pid))
            .collect();
        let w = &r.other_writers[0];
        line(
            &mut o,
            "Other writer",
            format!(
                "{}: `{}` sets {} (ksmctl doctor)",
                who.join(", "),
                w.command,
                w.files.join(", ")
            ),
        );
    }
    let zero = match k.ksm_zero_pages {
        Some(z) => format!(" + {} zero pages", human::count(z.max(0) as u64)),
        None => String::new(),
    };
    line(
        &mut o,
        "Memory saved",
        format!(
            "{}  ({} pages sharing{zero}, page size {})",
            human::ubytes(r.saved_bytes),
            human::count(k.pages_sharing.unwrap_or(0)),
            human::ubytes(r.page_size)
        ),
    );
    if let Some(text) = r.thp_split_freed().and_then(|f| f.summary(r.page_size)) {
        line(&mut o, "Split freed", text);
    }
    if let Some(e) = r.recent_estimate(std::time::SystemTime::now()) {
        line(
            &mut o,
            "Still to gain",
            still_to_gain(e, std::time::SystemTime::now()),
        );
    }
    for l in r.domain_lines() {
        match l.strip_prefix("Trust domains ") {
            Some(rest) => line(&mut o, "Trust domains", rest.to_string()),
            None => line(&mut o, "Held", l),
        }
    }
    if let Some(p) = k.general_profit {
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
        opt(k.pages_shared),
        opt(k.pages_sharing),
        opt(k.pages_unshared),
        opt(k.pages_volatile)
    );
    if let Some(z) = k.ksm_zero_pages {
        let _ = write!(pages, "  zero {z}");
    }
    line(&mut o, "Pages", pages);
    line(
        &mut o,
        "Sharing ratio",
        match r.sharing_ratio {
            Some(r) => format!(
                "{r:.2}  (extra mappings per KSM page; higher is better, at most max_page_sharing)"
            ),
            None => "-  (no KSM pages yet)".to_string(),
        },
    );
    line(
        &mut o,
        "Unshared ratio",
        match r.unshared_ratio {
            Some(r) => format!(
                "{r:.2}  (unique pages rescanned per page saved; high means scanning is wasted)"
            ),
            None => "-  (nothing saved yet)".to_string(),
        },
    );
    let mut scans = opt(k.full_scans);
    if let Some(s) = k.pages_scanned {
        let _ = write!(scans, "  ({} pages scanned", human::count(s));
        if let Some(k) = k.pages_skipped {
            let _ = write!(scans, ", {} skipped", human::count(k));
        }
        scans.push(')');
    }
    line(&mut o, "Full scans", scans);
    let scanner = match (k.pages_to_scan, k.sleep_millisecs) {
        (Some(p), Some(ms)) => {
            let rate = match r.scan_limit_pages_per_s {
                Some(p) => format!(
                    " = at most {} pages/s ({}/s)",
                    human::count(p),
                    human::ubytes(r.bytes(p))
                ),
                _ => " (no sleep: ksmd scans continuously)".to_string(),
            };
            format!("{} pages every {ms} ms{rate}", human::count(p))
        }
        _ => "-".to_string(),
    };
    line(&mut o, "Scanner", scanner);
    if let Some(mode) = k.advisor_mode {
        line(
            &mut o,
            "Advisor",
            format!(
                "{mode}  (max cpu {}%, target scan time {} s, pages_to_scan {}..{})",
                opt(k.advisor_max_cpu),
                opt(k.advisor_target_scan_time),
                opt(k.advisor_min_pages_to_scan),
                opt(k.advisor_max_pages_to_scan)
            ),
        );
    }
    let mut opts = Vec::new();
    for (name, v) in [
        ("smart_scan", k.smart_scan),
        ("use_zero_pages", k.use_zero_pages),
        ("merge_across_nodes", k.merge_across_nodes),
    ] {
        if let Some(v) = v {
            opts.push(format!("{name} {}", if v != 0 { "on" } else { "off" }));
        }
    }
    if let Some(m) = k.max_page_sharing {
        opts.push(format!("max_page_sharing {m}"));
    }
    if let Some(m) = k.max_kernel_pages {
        opts.push(if m == 0 {
            "max_kernel_pages unlimited".to_string()
        } else {
            format!("max_kernel_pages {}", human::count(m))
        });
    }
    line(&mut o, "Options", opts.join(", "));
    o
}

/// The "Still to gain" line of the daemon's last estimate at `now`.
fn still_to_gain(
    e: &crate::sample::last_estimate::LastEstimate,
    now: std::time::SystemTime,
) -> String {
    let err = if e.sample > 1 {
        format!(" ± {}", human::ubytes(e.saved_error_bytes))
    } else {
        String::new()
    };
    let ago = human::age(e.age(now));
    format!(
        "{}  (KSM would save {}{err} on the memory opted in; ksmtuned's estimate of {ago} ago)",
        human::bytes(i128::from(e.to_gain_bytes)),
        human::ubytes(e.saved_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn still_to_gain_line() {
        let e = crate::sample::last_estimate::LastEstimate {
            finished_unix_seconds: 1_000_000,
            interval_seconds: 3600,
            saved_bytes: 3 << 30,
            saved_error_bytes: 100 << 20,
            to_gain_bytes: 1 << 30,
            zero_only_saved_bytes: 0,
            scanned_bytes: 8 << 30,
            sample: 16,
            cpu_seconds: 1.0,
            elapsed_seconds: 10.0,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000 + 600);
        assert_eq!(
            still_to_gain(&e, now),
            "1.00 GiB  (KSM would save 3.00 GiB ± 100 MiB on the memory opted in; ksmtuned's \
             estimate of 10 min ago)"
        );
    }
}
