//! `ksmctl doctor`: why KSM is not merging here, what it costs, and how
//! risky an unmerge would be.
//!
//! Findings are data: [`gather`] reads the host once into [`Facts`], the
//! pure [`checks::check`] turns them into [`Finding`]s (tested with
//! numbers), and [`Report`] renders the same findings as text or JSON.
//! Each finding has a stable identifier; `docs/troubleshooting.md` has a
//! section per identifier ([`checks::IDS`]).

pub mod checks;
pub mod gather;
pub mod rails;

use std::io::Write;

use serde::Serialize;

pub use gather::{gather, Facts, ProcFacts};

use crate::root::Root;

/// Exit status of `ksmctl doctor` when a finding needs attention (a
/// warning); 0 when none does, 1 when the check itself failed.
pub const EXIT_ATTENTION: i32 = 4;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do unless it surprises you.
    Info,
    /// KSM is not doing what it should here, or an unmerge is risky.
    Warning,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Warning => "WARNING",
        }
    }
}

/// One thing the doctor saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable, kebab-case identifier (a section of docs/troubleshooting.md).
    pub id: &'static str,
    pub severity: Severity,
    /// What was seen, with the numbers.
    pub seen: String,
    /// Why it matters.
    pub why: String,
    /// What to do about it.
    pub what_to_do: String,
    /// The numbers behind `seen`, raw, with units in the key names.
    pub numbers: serde_json::Map<String, serde_json::Value>,
}

impl Finding {
    /// A finding without numbers (add them with [`Finding::num`]).
    pub fn new(
        id: &'static str,
        severity: Severity,
        seen: impl Into<String>,
        why: impl Into<String>,
        what_to_do: impl Into<String>,
    ) -> Finding {
        Finding {
            id,
            severity,
            seen: seen.into(),
            why: why.into(),
            what_to_do: what_to_do.into(),
            numbers: serde_json::Map::new(),
        }
    }

    /// Add a number (`key` carries the unit, e.g. `saved_bytes`).
    pub fn num(mut self, key: &str, v: impl Into<serde_json::Value>) -> Finding {
        self.numbers.insert(key.to_string(), v.into());
        self
    }
}

/// The findings, warnings first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Whether any finding needs attention (exit status 4).
    pub attention: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Order the findings (warnings first, then as checked).
    pub fn new(mut findings: Vec<Finding>) -> Report {
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Report {
            attention: findings.iter().any(|f| f.severity >= Severity::Warning),
            findings,
        }
    }

    /// The process exit status: 0, or [`EXIT_ATTENTION`].
    pub fn exit_code(&self) -> i32 {
        if self.attention {
            EXIT_ATTENTION
        } else {
            0
        }
    }

    /// The findings for people.
    pub fn render(&self) -> String {
        let warnings = self
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .count();
        let notes = self.findings.len() - warnings;
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut out = if warnings == 0 {
            format!(
                "Nothing needs attention ({}).\n",
                plural(notes, "note", "notes")
            )
        } else {
            format!(
                "{} attention, {}.\n",
                plural(warnings, "finding needs", "findings need"),
                plural(notes, "note", "notes")
            )
        };
        for f in &self.findings {
            out.push_str(&format!("\n{} {}\n", f.severity.label(), f.id));
            for (label, text) in [("seen", &f.seen), ("why", &f.why), ("do", &f.what_to_do)] {
                out.push_str(&format!("  {label:<5} {}\n", wrap(text, 72, 8)));
            }
        }
        out
    }
}

/// Wrap text at `width` columns, continuation lines indented by `indent`.
fn wrap(text: &str, width: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in text.split_whitespace() {
        if col > 0 && col + 1 + word.len() > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

/// `ksmctl doctor`: gather, check, print; returns the exit status.
pub fn command(root: &Root, json: bool, out: &mut impl Write) -> anyhow::Result<i32> {
    let facts = gather(root);
    let report = Report::new(checks::check(&facts));
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.render())?;
    }
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_first_and_exit_status() {
        let r = Report::new(vec![
            Finding::new("a", Severity::Info, "x", "y", "z"),
            Finding::new("b", Severity::Warning, "x", "y", "z").num("n_bytes", 5),
        ]);
        assert_eq!(r.findings[0].id, "b");
        assert_eq!(r.exit_code(), EXIT_ATTENTION);
        let text = r.render();
        assert!(
            text.starts_with("1 finding needs attention, 1 note.\n"),
            "{text}"
        );
        assert!(
            text.contains("\nWARNING b\n  seen  x\n  why   y\n  do    z\n"),
            "{text}"
        );
        let none = Report::new(vec![Finding::new("a", Severity::Info, "x", "y", "z")]);
        assert_eq!(none.exit_code(), 0);
        assert!(none
            .render()
            .starts_with("Nothing needs attention (1 note).\n"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["findings"][0]["numbers"]["n_bytes"], 5);
        assert_eq!(json["findings"][0]["severity"], "warning");
        assert_eq!(json["attention"], true);
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("aa bb cc", 5, 2), "aa bb\n  cc");
        assert_eq!(wrap("", 5, 2), "");
    }
}
