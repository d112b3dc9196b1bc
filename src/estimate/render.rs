//! The text of an [`Estimate`] for people: a summary first, then the
//! details, the per-process table and the matrices.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{table, Estimate, GroupBy, Matrix, ProcessRow, Selection};
use crate::human;

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

fn duration(s: f64) -> String {
    if s < 1.0 {
        "under 1 s".into()
    } else if s < 120.0 {
        format!("about {s:.0} s")
    } else if s < 7200.0 {
        format!("about {:.0} min", s / 60.0)
    } else {
        format!("about {:.1} h", s / 3600.0)
    }
}

impl Estimate {
    /// The text for people: a summary first, then the details.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let b = human::ubytes;
        let what = match self.selection {
            Selection::Mergeable => "mergeable memory",
            Selection::AllAnonymous => "private memory",
        };
        let err = if self.sample > 1 {
            format!(" (± {})", b(self.saved_error_bytes))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "KSM would save {}{err} ({} of the {} of {what} scanned) for {} of one core.",
            b(self.saved_bytes),
            pct(self.saved_bytes, self.scanned_bytes),
            b(self.scanned_bytes),
            duration(self.cost.cpu_seconds),
        );
        // Who shares most: the groups with the largest savings.
        let mut by_group: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.processes {
            *by_group.entry(r.group.as_str()).or_default() += r.would_save_bytes;
        }
        let mut top: Vec<(&str, u64)> = by_group.into_iter().filter(|g| g.1 > 0).collect();
        top.sort_by(|a, c| c.1.cmp(&a.1).then(a.0.cmp(c.0)));
        if !top.is_empty() {
            let names: Vec<&str> = top.iter().take(4).map(|g| g.0).collect();
            let more = if top.len() > 4 {
                format!(" and {} more", top.len() - 4)
            } else {
                String::new()
            };
            let _ = writeln!(o, "Most of it from {}{more}.", names.join(", "));
        }
        if self.split_freed_bytes > 0 {
            let _ = writeln!(
                o,
                "KSM's counters will show {} of it (pages_sharing + ksm_zero_pages); the other {} \
                 is freed by the huge-page splits KSM causes (all-zero subpages mapped to the \
                 shared zero page), in none of its counters.",
                b(self.ksm_counters_saved_bytes),
                b(self.split_freed_bytes),
            );
        }
        let _ = writeln!(
            o,
            "Zero pages alone would save {} ({} of it): merging only all-zero pages, each \
             with the kernel's zero page (use_zero_pages=1).",
            b(self.zero_only_saved_bytes),
            pct(self.zero_only_saved_bytes, self.saved_bytes),
        );
        let _ = writeln!(
            o,
            "Saved now: {} in these processes; still to gain: {}.",
            b(self.now.scanned_saved_bytes),
            human::bytes(i128::from(self.to_gain_bytes))
        );
        let _ = writeln!(o);
        let p = &self.projection;
        let c = human::count;
        let line = |o: &mut String, k: &str, v: String| {
            let _ = writeln!(o, "{k:<20}{v}");
        };
        line(
            &mut o,
            "Scanned:",
            format!(
                "{} processes ({} exited during the scan), {} in RAM in {:.1} s ({}/s)",
                self.processes_scanned,
                self.processes_vanished,
                b(self.scanned_bytes),
                self.elapsed_seconds,
                b(self.read_bytes_per_second as u64),
            ),
        );
        line(
            &mut o,
            "Contents:",
            format!(
                "{} distinct; {} pages have a copy elsewhere ({} contents); {} zero pages",
                c(p.distinct_contents),
                c(p.duplicate_pages),
                c(p.duplicated_contents),
                c(p.zero_pages)
            ),
        );
        line(
            &mut o,
            "Projected:",
            format!(
                "pages_shared {}, pages_sharing {}, ksm_zero_pages {} (max_page_sharing {}, use_zero_pages {})",
                c(p.pages_shared),
                c(p.pages_sharing),
                c(p.ksm_zero_pages),
                self.max_page_sharing,
                u8::from(self.use_zero_pages)
            ),
        );
        let h = &self.huge_pages;
        if h.huge_pages > 0 {
            line(
                &mut o,
                "Huge pages:",
                format!(
                    "{} of the memory read in {} huge pages ({} all-zero); merging splits {} of \
                     them; a split {} (THP {})",
                    b(h.bytes),
                    c(h.huge_pages),
                    b(h.zero_bytes),
                    c(h.split_huge_pages),
                    if h.split_maps_zero_pages {
                        "maps all-zero subpages to the zero page"
                    } else {
                        "keeps all-zero subpages (KSM merges them)"
                    },
                    h.mode.as_deref().unwrap_or("not built in"),
                ),
            );
        }
        line(
            &mut o,
            "General profit:",
            format!(
                "{} (counted {} - {} rmap items x {} B); {} counting the splits' pages",
                human::bytes(i128::from(self.general_profit_bytes)),
                b(self.ksm_counters_saved_bytes),
                c(p.rmap_items),
                table::RMAP_ITEM_BYTES,
                human::bytes(i128::from(self.profit_bytes)),
            ),
        );
        if let Some(host) = self.now.host_saved_bytes {
            line(
                &mut o,
                "KSM now (host):",
                format!(
                    "saves {} (pages_sharing {}, ksm_zero_pages {}); general_profit {}",
                    b(host),
                    c(self.now.host_pages_sharing.unwrap_or(0)),
                    self.now.host_ksm_zero_pages.unwrap_or(0),
                    self.now
                        .host_general_profit_bytes
                        .map_or("-".into(), |g| human::bytes(i128::from(g)))
                ),
            );
        }
        line(
            &mut o,
            "Cost:",
            format!(
                "{:.1} s of ksmd CPU (2 scans x {} pages x {:.0} ns, {}); {} at KSM_MAX_CPU={}%",
                self.cost.cpu_seconds,
                c(p.pages),
                self.cost.ns_per_page,
                if self.cost.source == "measured" {
                    "measured on this host"
                } else {
                    "default: KSM has not run enough here"
                },
                duration(self.cost.seconds_at_max_cpu),
                self.cost.max_cpu_percent
            ),
        );
        let s = &self.skipped;
        let pg = |n: u64| b(n * self.page_size_bytes);
        line(
            &mut o,
            "Not read:",
            format!(
                "{} not in RAM, {} swapped, {} file/shared pages, {} zero-page mappings, {} unreadable",
                pg(s.not_present_pages),
                pg(s.swapped_pages),
                pg(s.file_pages),
                pg(s.zero_page_mappings),
                pg(s.unreadable_pages)
            ),
        );
        if self.sample > 1 {
            line(
                &mut o,
                "Sample:",
                format!(
                    "1 content in {}; saving ± {} (2 standard errors)",
                    self.sample,
                    b(self.saved_error_bytes)
                ),
            );
        }
        line(&mut o, "Table memory:", b(self.table_bytes));
        for n in &self.notes {
            let _ = writeln!(o, "Note: {n}");
        }
        if !self.processes.is_empty() {
            let _ = writeln!(o);
            let name = |r: &ProcessRow| r.guest.clone().unwrap_or_else(|| r.comm.clone());
            let name_w = self
                .processes
                .iter()
                .map(|r| name(r).len())
                .max()
                .unwrap_or(4)
                .clamp(4, 32);
            let by_cgroup = self.group_by == GroupBy::Cgroup;
            let _ = write!(
                o,
                "{:>7}  {:<name_w$}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
                "PID", "NAME", "SCANNED", "ZERO", "WOULD SAVE", "ZERO ONLY", "MERGED NOW"
            );
            let _ = writeln!(o, "{}", if by_cgroup { "  CGROUP" } else { "" });
            let mut rows: Vec<&ProcessRow> = self.processes.iter().collect();
            rows.sort_by(|a, c| {
                c.would_save_bytes
                    .cmp(&a.would_save_bytes)
                    .then(a.pid.cmp(&c.pid))
            });
            for r in rows {
                let n: String = name(r).chars().take(name_w).collect();
                let _ = write!(
                    o,
                    "{:>7}  {:<name_w$}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
                    r.pid,
                    n,
                    b(r.scanned_bytes),
                    pg(r.zero_pages),
                    b(r.would_save_bytes),
                    b(r.zero_only_bytes),
                    pg(r.ksm_mapped_pages),
                );
                if by_cgroup {
                    let _ = write!(o, "  {}", r.group);
                }
                let _ = writeln!(
                    o,
                    "{}",
                    if r.vanished {
                        "  (exited)"
                    } else if r.refused {
                        "  (refused)"
                    } else {
                        ""
                    }
                );
            }
        }
        for (title, m) in [
            ("Contents in common (would be shared by KSM)", &self.matrix),
            (
                "Merged now: KSM pages mapped by both",
                &self.realized_matrix,
            ),
        ] {
            if let Some(m) = m {
                let _ = writeln!(o);
                let _ = writeln!(o, "{title}:");
                o.push_str(&render_matrix(m));
            }
        }
        o
    }
}

fn render_matrix(m: &Matrix) -> String {
    let mut o = String::new();
    let w = m
        .groups
        .iter()
        .map(|g| g.len())
        .max()
        .unwrap_or(1)
        .clamp(1, 24)
        + 5;
    let labels: Vec<String> = m
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| format!("[{i}] {g}").chars().take(w).collect())
        .collect();
    let _ = write!(o, "{:<w$}", "");
    for i in 0..labels.len() {
        let _ = write!(o, "  {:>10}", format!("[{i}]"));
    }
    let _ = writeln!(o);
    for (i, row) in m.bytes.iter().enumerate() {
        let _ = write!(o, "{:<w$}", labels[i]);
        for v in row {
            let _ = write!(o, "  {:>10}", human::ubytes(*v));
        }
        let _ = writeln!(o);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0.2), "under 1 s");
        assert_eq!(duration(40.4), "about 40 s");
        assert_eq!(duration(600.0), "about 10 min");
    }
}
