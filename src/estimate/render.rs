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

/// "1 process", "2 processes".
fn processes(n: usize) -> String {
    format!("{n} process{}", if n == 1 { "" } else { "es" })
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
        if self.processes_scanned == 0 {
            let _ = writeln!(
                o,
                "Nothing was read, so there is no saving to estimate: {}.",
                self.why_nothing()
            );
        } else {
            let _ = writeln!(
                o,
                "KSM would save {}{err} ({} of the {} of {what} scanned) for {} of one core.",
                b(self.saved_bytes),
                pct(self.saved_bytes, self.scanned_bytes),
                b(self.scanned_bytes),
                duration(self.cost.cpu_seconds),
            );
        }
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
        if self.processes_scanned > 0 {
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
        }
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
        line(&mut o, "Selected:", self.selected_line());
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
        if let Some(d) = &self.domains {
            line(
                &mut o,
                "Within domains:",
                format!(
                    "{} would be saved merging only within each domain ({} {}, by {})",
                    b(d.within_domains_bytes),
                    d.domains,
                    if d.domains == 1 { "domain" } else { "domains" },
                    d.trust_domains
                ),
            );
            let all = d.within_domains_bytes + d.across_domains_bytes;
            line(
                &mut o,
                "Across domains:",
                format!(
                    "{} more by merging across them ({:.1}% of the non-zero saving)",
                    b(d.across_domains_bytes),
                    if all > 0 {
                        d.across_domains_bytes as f64 * 100.0 / all as f64
                    } else {
                        0.0
                    }
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
            let by_cgroup = matches!(self.group_by, GroupBy::Cgroup | GroupBy::Domain);
            let _ = write!(
                o,
                "{:>7}  {:<name_w$}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
                "PID", "NAME", "SCANNED", "ZERO", "WOULD SAVE", "ZERO ONLY", "MERGED NOW"
            );
            let _ = writeln!(
                o,
                "{}",
                match self.group_by {
                    GroupBy::Cgroup => "  CGROUP",
                    GroupBy::Domain => "  DOMAIN",
                    GroupBy::Process => "",
                }
            );
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
                    c(r.zero_pages),
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
        let scaled = if self.sample > 1 {
            " (scaled up from the sample)"
        } else {
            ""
        };
        for (title, cell, m) in [
            (
                "Contents in common (who would share with whom)",
                format!(
                    "Row [a], column [b]: the distinct page contents that a and b both hold, one \
                     page each{scaled}: KSM would keep one page for each, mapped by both."
                ),
                &self.matrix,
            ),
            (
                "Merged now (who shares with whom)",
                "Row [a], column [b]: the KSM pages that a and b both map now, one page each \
                 (from the KSM flag of each frame in /proc/kpageflags)."
                    .to_string(),
                &self.realized_matrix,
            ),
        ] {
            let Some(m) = m else { continue };
            let _ = writeln!(o);
            let _ = writeln!(o, "{title}:");
            if let [only] = &m.groups[..] {
                let _ = writeln!(
                    o,
                    "One group only ({only}): no pair to compare; its own figures are in the \
                     table above."
                );
                continue;
            } else if m.groups.is_empty() {
                let _ = writeln!(o, "No group: nothing was read.");
                continue;
            }
            let _ = writeln!(
                o,
                "{cell} The diagonal is left out: what a group saves on its own is WOULD SAVE \
                 and MERGED NOW above."
            );
            o.push_str(&render_matrix(m));
        }
        o
    }
}

impl Estimate {
    /// Which processes were looked at and why the others were not read.
    fn selected_line(&self) -> String {
        let s = &self.selected;
        let mut parts = vec![match (s.pids.len(), s.guests_only) {
            (0, false) => format!("{} user processes looked at", s.processes),
            (0, true) => format!("{} user processes looked at for QEMU guests", s.processes),
            (_, g) => format!(
                "PID {}{}",
                s.pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if g { ", QEMU guests only" } else { "" }
            ),
        }];
        if s.not_qemu > 0 {
            parts.push(format!("{} not QEMU", s.not_qemu));
        }
        if s.nothing_selected > 0 {
            parts.push(format!(
                "{} with {}",
                s.nothing_selected,
                match self.selection {
                    Selection::Mergeable => "nothing opted in to KSM",
                    Selection::AllAnonymous => "no private memory",
                }
            ));
        }
        if s.maps_unreadable > 0 {
            parts.push(format!(
                "{} whose memory map cannot be read",
                s.maps_unreadable
            ));
        }
        parts.join("; ")
    }

    /// Why no process was read, in words, with what to try.
    fn why_nothing(&self) -> String {
        let s = &self.selected;
        let mut why = Vec::new();
        // "PID 7 has", "none of the 3 processes has", "2 processes have".
        let who_has = |n: usize| {
            if s.pids.len() == 1 && n == 1 {
                format!("PID {} has", s.pids[0])
            } else if n == s.processes && n > 1 {
                format!("none of the {n} processes has")
            } else if n == 1 {
                "1 process has".to_string()
            } else {
                format!("{n} processes have")
            }
        };
        let none = s.nothing_selected == s.processes && s.processes > 1;
        let its = if s.nothing_selected == 1 {
            "its"
        } else {
            "their"
        };
        if s.processes == 0 {
            why.push(format!(
                "no user process was found in {} (each is read from its /proc/PID/stat)",
                s.proc_dir
            ));
        }
        if s.guests_only && s.not_qemu == s.processes {
            why.push(
                "no QEMU process is running (--guests takes processes named qemu-kvm, \
                 qemu-system-* or qemu:NAME)"
                    .to_string(),
            );
        }
        if s.nothing_selected > 0 {
            let args: String = s.pids.iter().map(|p| format!(" {p}")).collect();
            let guests = if s.guests_only { " --guests" } else { "" };
            why.push(match self.selection {
                Selection::Mergeable => format!(
                    "{} {} opted in to KSM (no area marked mergeable, `mg` in /proc/PID/smaps \
                     VmFlags); `ksmctl estimate --all-anonymous{guests}{args}` estimates all \
                     {its} private memory, what opting in would offer KSM",
                    who_has(s.nothing_selected),
                    if none { "memory" } else { "no memory" },
                ),
                Selection::AllAnonymous => format!(
                    "{} {} KSM could merge",
                    who_has(s.nothing_selected),
                    if none {
                        "private memory"
                    } else {
                        "no private memory"
                    },
                ),
            });
        }
        if s.maps_unreadable > 0 {
            why.push(format!(
                "the memory map of {} cannot be read ({})",
                processes(s.maps_unreadable),
                s.maps_error.as_deref().unwrap_or("?")
            ));
        }
        if self.processes_vanished > 0 {
            why.push(format!(
                "{} exited before being read",
                processes(self.processes_vanished)
            ));
        }
        if why.is_empty() {
            why.push("no process was chosen".into());
        }
        why.join("; ")
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
        for (j, v) in row.iter().enumerate() {
            let cell = if i == j {
                "-".into()
            } else {
                human::ubytes(*v)
            };
            let _ = write!(o, "  {cell:>10}");
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
