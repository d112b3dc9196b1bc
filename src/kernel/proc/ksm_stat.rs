//! The one description of `/proc/PID/ksm_stat`'s lines.
//!
//! Each line is one entry of [`ksm_stat_lines!`] below: the field of
//! [`KsmStat`], its value type, the line's name, and a [`StatLine`]
//! (the kernel that added it, the per-process metric that exports it, its
//! help text). The parser ([`KsmStat::parse`]) and the per-process metrics
//! are derived from it: a line the kernel gains is one entry here.

use serde::Serialize;

/// One line of `/proc/PID/ksm_stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatLine {
    /// The line's name (`ksm_merge_any:` has a colon in the file).
    pub name: &'static str,
    /// The first kernel that writes it.
    pub since: &'static str,
    /// The per-process metric (labels pid, comm, guest).
    pub metric: &'static str,
    pub help: &'static str,
}

/// A value of a ksm_stat line.
trait StatValue: Sized + Copy {
    fn parse(text: &str) -> Option<Self>;
    fn as_f64(self) -> f64;
}

impl StatValue for u64 {
    fn parse(text: &str) -> Option<u64> {
        text.parse().ok()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl StatValue for i64 {
    fn parse(text: &str) -> Option<i64> {
        text.parse().ok()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl StatValue for bool {
    fn parse(text: &str) -> Option<bool> {
        match text {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }
    }
    fn as_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
}

/// Declares [`KsmStat`]'s optional lines, [`STAT_LINES`], the parser's
/// assignments and [`KsmStat::value`] from one list.
macro_rules! ksm_stat_lines {
    ($( $field:ident : $ty:ty = $line:literal => { $($spec:tt)* } )*) => {
        /// One reading of `/proc/PID/ksm_stat`. `ksm_rmap_items` is in
        /// every version of the file; the other lines are `None` on
        /// kernels that do not write them.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct KsmStat {
            pub rmap_items: u64,
            $( pub $field: Option<$ty>, )*
        }

        /// Every line of `/proc/PID/ksm_stat`, `ksm_rmap_items` first.
        pub const STAT_LINES: &[StatLine] = &[
            StatLine {
                name: "ksm_rmap_items",
                since: "6.1",
                metric: "ksm_process_rmap_items",
                help: "KSM's bookkeeping entries for the process's scanned pages (ksm_rmap_items).",
            },
            $( StatLine { name: $line, $($spec)* }, )*
        ];

        impl KsmStat {
            /// Take one optional line; `Ok(false)`: not one of them.
            fn set(&mut self, key: &str, val: &str) -> Result<bool, ()> {
                match key {
                    $( $line => self.$field = Some(<$ty as StatValue>::parse(val).ok_or(())?), )*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// The value of the line `name` as a number (flags 0/1);
            /// `None` when absent or not a line of the file.
            pub fn value(&self, name: &str) -> Option<f64> {
                match name {
                    "ksm_rmap_items" => Some(self.rmap_items as f64),
                    $( $line => self.$field.map(StatValue::as_f64), )*
                    _ => None,
                }
            }
        }
    };
}

ksm_stat_lines! {
    zero_pages: i64 = "ksm_zero_pages" => {
        since: "6.6", metric: "ksm_process_zero_pages",
        help: "Empty pages of the process merged with the zero page (ksm_zero_pages).",
    }
    merging_pages: u64 = "ksm_merging_pages" => {
        since: "6.4 (5.19 as /proc/PID/ksm_merging_pages)", metric: "ksm_process_merging_pages",
        help: "Pages of the process mapped to KSM pages (ksm_merging_pages), for the processes with the most.",
    }
    process_profit: i64 = "ksm_process_profit" => {
        since: "6.4", metric: "ksm_process_profit_bytes",
        help: "The kernel's estimate of what KSM gains for the process, may be negative (ksm_process_profit).",
    }
    merge_any: bool = "ksm_merge_any" => {
        since: "6.14", metric: "ksm_process_merge_any",
        help: "1 when the whole process opted in with prctl(PR_SET_MEMORY_MERGE) (ksm_merge_any).",
    }
    mergeable: bool = "ksm_mergeable" => {
        since: "6.14", metric: "ksm_process_mergeable",
        help: "1 when the process has memory opted in to KSM, by madvise or prctl (ksm_mergeable).",
    }
}

impl KsmStat {
    /// Parse the file's text. Unknown lines are ignored (future kernels).
    pub fn parse(text: &str) -> Result<KsmStat, String> {
        let mut s = KsmStat::default();
        let mut have_rmap = false;
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(key), Some(val)) = (w.next(), w.next()) else {
                continue;
            };
            let key = key.trim_end_matches(':');
            let bad = || format!("{key}: {val:?} is not a valid value");
            if key == "ksm_rmap_items" {
                s.rmap_items = val.parse().map_err(|_| bad())?;
                have_rmap = true;
            } else {
                s.set(key, val).map_err(|()| bad())?;
            }
        }
        if !have_rmap {
            return Err("no ksm_rmap_items line".to_string());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        let mut names: Vec<&str> = STAT_LINES.iter().map(|l| l.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STAT_LINES.len());
        for l in STAT_LINES {
            assert!(l.metric.starts_with("ksm_process_"), "{}", l.metric);
            assert!(l.help.contains(l.name), "{}", l.name);
        }
        // Every line has a value once parsed from a full file.
        let s = KsmStat::parse(
            "ksm_rmap_items 3\nksm_zero_pages -1\nksm_merging_pages 2\n\
             ksm_process_profit 5\nksm_merge_any: yes\nksm_mergeable: no\n",
        )
        .unwrap();
        for l in STAT_LINES {
            assert!(s.value(l.name).is_some(), "{}", l.name);
        }
        assert_eq!(s.value("ksm_merge_any"), Some(1.0));
        assert_eq!(s.value("ksm_zero_pages"), Some(-1.0));
        assert_eq!(s.value("nonsense"), None);
    }
}
