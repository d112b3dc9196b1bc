//! The one description of KSM's files in `/sys/kernel/mm/ksm/`.
//!
//! Each file is one entry of [`ksm_files!`] below: its name (the field of
//! [`KsmState`]), its value type, for a setting its [`Knob`], and a
//! [`File`] saying what it is (kind, unit, accepted values, the kernel that
//! added it, the metric that exports it, its help text). The reader
//! ([`KsmState::read_from`]), the writer's validation ([`Knob::parse`]),
//! `ksmctl get`, the metrics (`crate::metrics`) and `ksmctl status --json`
//! are all derived from this table: adding a file the kernel gained is one
//! entry here plus its value in the fixture trees.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The values of the `run` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Run {
    /// 0: ksmd stopped, merged pages stay merged.
    Stop,
    /// 1: ksmd scanning.
    Merge,
    /// 2: ksmd stopped and every merged page unmerged.
    Unmerge,
}

impl Run {
    /// The number written to / read from the file.
    pub fn as_u8(self) -> u8 {
        match self {
            Run::Stop => 0,
            Run::Merge => 1,
            Run::Unmerge => 2,
        }
    }

    pub(crate) fn from_u64(v: u64) -> Option<Run> {
        match v {
            0 => Some(Run::Stop),
            1 => Some(Run::Merge),
            2 => Some(Run::Unmerge),
            _ => None,
        }
    }
}

/// The kernel's scan-time advisor selection (`advisor_mode`, Linux 6.8+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdvisorMode {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "scan-time")]
    ScanTime,
}

impl AdvisorMode {
    /// Every mode, in the kernel's order.
    pub const ALL: [AdvisorMode; 2] = [AdvisorMode::None, AdvisorMode::ScanTime];

    /// The kernel's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            AdvisorMode::None => "none",
            AdvisorMode::ScanTime => "scan-time",
        }
    }

    /// Parse the file's `[none] scan-time` form (the selected word is in
    /// brackets) or a bare mode name.
    pub fn parse_selection(s: &str) -> Option<AdvisorMode> {
        let s = s.trim();
        let selected = if s.contains('[') {
            let start = s.find('[')? + 1;
            let end = s[start..].find(']')? + start;
            &s[start..end]
        } else {
            s
        };
        selected.parse().ok()
    }
}

impl FromStr for AdvisorMode {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s.trim() {
            "none" => Ok(AdvisorMode::None),
            "scan-time" => Ok(AdvisorMode::ScanTime),
            _ => Err(()),
        }
    }
}

impl fmt::Display for AdvisorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A tunable root may write.
    Setting,
    /// A count that goes up and down.
    Gauge,
    /// A count that only grows (a Prometheus counter, `_total`).
    Counter,
}

/// The unit of a file's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A word or a state (`run`, `advisor_mode`).
    Choice,
    /// 0 or 1.
    Flag,
    /// Pages (of the page size).
    Pages,
    /// A plain count.
    Count,
    Milliseconds,
    Seconds,
    Percent,
    Bytes,
}

impl Unit {
    /// How many of this unit make one of the base unit a metric carries
    /// (seconds, a ratio): divide by it.
    pub fn per_base(self) -> f64 {
        match self {
            Unit::Milliseconds => 1000.0,
            Unit::Percent => 100.0,
            _ => 1.0,
        }
    }
}

/// The values a setting accepts (validated before they reach the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// A read-only counter.
    ReadOnly,
    /// `run`: 0, 1 or 2 (or stop, merge, unmerge).
    Run,
    /// `advisor_mode`: none or scan-time.
    Mode,
    /// 0 or 1 (or no/yes, off/on, false/true).
    Flag,
    /// A whole number from `min` to `max`; `below` says why a smaller one
    /// is refused.
    Range {
        min: u64,
        max: u64,
        below: &'static str,
    },
}

/// One file of `/sys/kernel/mm/ksm/`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct File {
    /// The file's name, also [`KsmState`]'s field.
    pub name: &'static str,
    /// The setting's knob; `None` for a counter.
    pub knob: Option<Knob>,
    pub kind: Kind,
    pub unit: Unit,
    pub limits: Limits,
    /// The first kernel that has it (distributions backport: never
    /// decide by version, only by the file's presence).
    pub since: &'static str,
    /// The Prometheus metric (base units: seconds, ratios, bytes).
    pub metric: &'static str,
    /// What it means, for the metric's HELP and the documentation.
    pub help: &'static str,
    /// Its key in 0.2's `ksmctl status --json`, where that was not the
    /// file's name; written beside the file's name until 0.4.
    pub legacy_key: &'static str,
}

impl File {
    /// The file named `name`.
    pub fn named(name: &str) -> Option<&'static File> {
        FILES.iter().find(|f| f.name == name)
    }

    /// Its value in a reading, converted to the metric's base unit
    /// (`None`: absent, or a choice exported with a label).
    pub fn metric_value(&self, s: &KsmState) -> Option<f64> {
        s.value(self.name)
            .and_then(|v| v.as_f64())
            .map(|v| v / self.unit.per_base())
    }

    /// Its value as `ksmctl status --json` shows it: flags as booleans,
    /// `run` as its number, the advisor's mode as its name.
    pub fn json_value(&self, s: &KsmState) -> serde_json::Value {
        match s.value(self.name) {
            None => serde_json::Value::Null,
            Some(Value::Unsigned(n)) if self.unit == Unit::Flag => (n != 0).into(),
            Some(Value::Unsigned(n)) => n.into(),
            Some(Value::Signed(n)) => n.into(),
            Some(Value::Run(r)) => r.as_u8().into(),
            Some(Value::Mode(m)) => m.as_str().into(),
        }
    }
}

/// One file's value, whatever its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Unsigned(u64),
    Signed(i64),
    Run(Run),
    Mode(AdvisorMode),
}

impl Value {
    /// As a number (`run` as 0/1/2; the advisor's mode is none).
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Value::Unsigned(n) => Some(n as f64),
            Value::Signed(n) => Some(n as f64),
            Value::Run(r) => Some(f64::from(r.as_u8())),
            Value::Mode(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unsigned(n) => write!(f, "{n}"),
            Value::Signed(n) => write!(f, "{n}"),
            Value::Run(r) => write!(f, "{}", r.as_u8()),
            Value::Mode(m) => write!(f, "{m}"),
        }
    }
}

/// A type a KSM file can hold: how its text is parsed.
pub(crate) trait FileValue: Sized + Copy + Into<Value> {
    /// What the text should have been, for the error.
    const EXPECTED: &'static str;
    fn parse_file(text: &str) -> Option<Self>;
}

impl FileValue for u64 {
    const EXPECTED: &'static str = "an unsigned integer";
    fn parse_file(text: &str) -> Option<u64> {
        text.parse().ok()
    }
}

impl FileValue for i64 {
    const EXPECTED: &'static str = "a signed integer";
    fn parse_file(text: &str) -> Option<i64> {
        text.parse().ok()
    }
}

impl FileValue for Run {
    const EXPECTED: &'static str = "0, 1 or 2";
    fn parse_file(text: &str) -> Option<Run> {
        text.parse().ok().and_then(Run::from_u64)
    }
}

impl FileValue for AdvisorMode {
    const EXPECTED: &'static str = "a selection like \"[none] scan-time\"";
    fn parse_file(text: &str) -> Option<AdvisorMode> {
        AdvisorMode::parse_selection(text)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Unsigned(n)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Signed(n)
    }
}

impl From<Run> for Value {
    fn from(r: Run) -> Value {
        Value::Run(r)
    }
}

impl From<AdvisorMode> for Value {
    fn from(m: AdvisorMode) -> Value {
        Value::Mode(m)
    }
}

macro_rules! knob_of {
    () => {
        None
    };
    ($knob:ident) => {
        Some(Knob::$knob)
    };
}

/// Declares [`KsmState`], [`Knob`] and [`FILES`] from one list of files.
macro_rules! ksm_files {
    ($( $field:ident : $ty:ty $(, $knob:ident)? => { $($spec:tt)* } )*) => {
        /// One reading of every file in `/sys/kernel/mm/ksm/`; `None` =
        /// absent (this kernel does not have the file).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct KsmState {
            $( pub $field: Option<$ty>, )*
        }

        /// A writable KSM setting.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Knob {
            $( $( $knob, )? )*
        }

        impl Knob {
            /// All knobs, in the order they are shown.
            pub const ALL: &'static [Knob] = &[ $( $( Knob::$knob, )? )* ];

            /// The file name in `/sys/kernel/mm/ksm/`.
            pub fn name(self) -> &'static str {
                match self {
                    $( $( Knob::$knob => stringify!($field), )? )*
                }
            }
        }

        /// Every file the kernel has had in `/sys/kernel/mm/ksm/`, in
        /// display order: the settings, then the counters.
        pub const FILES: &[File] = &[
            $( File { name: stringify!($field), knob: knob_of!($($knob)?), $($spec)* }, )*
        ];

        impl KsmState {
            /// Read every file through `read` (which returns `None` for a
            /// file this kernel does not have).
            pub(crate) fn read_from(
                mut read: impl FnMut(&'static str) -> Result<Option<String>>,
                parse_error: impl Fn(&'static str, String, &'static str) -> Error,
            ) -> Result<KsmState> {
                Ok(KsmState {
                    $( $field: match read(stringify!($field))? {
                        None => None,
                        Some(text) => Some(<$ty as FileValue>::parse_file(&text).ok_or_else(
                            || parse_error(stringify!($field), text, <$ty as FileValue>::EXPECTED),
                        )?),
                    }, )*
                })
            }

            /// The value of the file `name` (`None`: absent or unknown).
            pub fn value(&self, name: &str) -> Option<Value> {
                match name {
                    $( stringify!($field) => self.$field.map(Value::from), )*
                    _ => None,
                }
            }
        }
    };
}

const U32: u64 = u32::MAX as u64;

ksm_files! {
    run: Run, Run => {
        kind: Kind::Setting, unit: Unit::Choice, limits: Limits::Run, since: "2.6.32",
        metric: "ksm_run", legacy_key: "run",
        help: "KSM's run setting: 0 ksmd stopped, 1 ksmd scanning, 2 stopped and every page unmerged (run).",
    }
    pages_to_scan: u64, PagesToScan => {
        kind: Kind::Setting, unit: Unit::Pages,
        limits: Limits::Range { min: 0, max: U32, below: "" }, since: "2.6.32",
        metric: "ksm_pages_to_scan", legacy_key: "pages_to_scan",
        help: "Pages ksmd scans per batch (pages_to_scan).",
    }
    sleep_millisecs: u64, SleepMillisecs => {
        kind: Kind::Setting, unit: Unit::Milliseconds,
        limits: Limits::Range { min: 0, max: U32, below: "" }, since: "2.6.32",
        metric: "ksm_sleep_seconds", legacy_key: "sleep_ms",
        help: "Time ksmd sleeps between batches (sleep_millisecs).",
    }
    merge_across_nodes: u64, MergeAcrossNodes => {
        kind: Kind::Setting, unit: Unit::Flag, limits: Limits::Flag, since: "3.9",
        metric: "ksm_merge_across_nodes", legacy_key: "merge_across_nodes",
        help: "Whether pages of different NUMA nodes are merged (merge_across_nodes, 0 or 1).",
    }
    use_zero_pages: u64, UseZeroPages => {
        kind: Kind::Setting, unit: Unit::Flag, limits: Limits::Flag, since: "4.5",
        metric: "ksm_use_zero_pages", legacy_key: "use_zero_pages",
        help: "Whether empty pages are merged with the kernel's zero page (use_zero_pages, 0 or 1).",
    }
    max_page_sharing: u64, MaxPageSharing => {
        kind: Kind::Setting, unit: Unit::Count,
        limits: Limits::Range { min: 2, max: i32::MAX as u64, below: "must be at least 2" },
        since: "4.13", metric: "ksm_max_page_sharing", legacy_key: "max_page_sharing",
        help: "Most mappings one KSM page may have (max_page_sharing).",
    }
    stable_node_chains_prune_millisecs: u64, StableNodeChainsPruneMillisecs => {
        kind: Kind::Setting, unit: Unit::Milliseconds,
        limits: Limits::Range { min: 0, max: U32, below: "" }, since: "4.13",
        metric: "ksm_stable_node_chains_prune_seconds", legacy_key: "stable_node_chains_prune_ms",
        help: "How often stale stable node chains are pruned (stable_node_chains_prune_millisecs).",
    }
    smart_scan: u64, SmartScan => {
        kind: Kind::Setting, unit: Unit::Flag, limits: Limits::Flag, since: "6.7",
        metric: "ksm_smart_scan", legacy_key: "smart_scan",
        help: "Whether pages that repeatedly failed to merge are skipped (smart_scan, 0 or 1).",
    }
    advisor_mode: AdvisorMode, AdvisorMode => {
        kind: Kind::Setting, unit: Unit::Choice, limits: Limits::Mode, since: "6.8",
        metric: "ksm_advisor_mode", legacy_key: "advisor_mode",
        help: "The kernel's pages_to_scan advisor: 1 for the selected mode (advisor_mode).",
    }
    advisor_max_cpu: u64, AdvisorMaxCpu => {
        kind: Kind::Setting, unit: Unit::Percent,
        limits: Limits::Range { min: 1, max: 100, below: "must be a percentage from 1 to 100" },
        since: "6.8", metric: "ksm_advisor_max_cpu_ratio", legacy_key: "advisor_max_cpu_percent",
        help: "The kernel advisor's cap on ksmd's CPU use (advisor_max_cpu / 100).",
    }
    advisor_target_scan_time: u64, AdvisorTargetScanTime => {
        kind: Kind::Setting, unit: Unit::Seconds,
        limits: Limits::Range { min: 1, max: U32, below: "must be at least 1 (0 would stall ksmd)" },
        since: "6.8", metric: "ksm_advisor_target_scan_time_seconds",
        legacy_key: "advisor_target_scan_time_s",
        help: "The kernel advisor's target time for a full scan (advisor_target_scan_time).",
    }
    advisor_min_pages_to_scan: u64, AdvisorMinPagesToScan => {
        kind: Kind::Setting, unit: Unit::Pages,
        limits: Limits::Range { min: 1, max: U32, below: "must be at least 1 (0 would stall ksmd)" },
        since: "6.8", metric: "ksm_advisor_min_pages_to_scan",
        legacy_key: "advisor_min_pages_to_scan",
        help: "The kernel advisor's starting pages_to_scan (advisor_min_pages_to_scan).",
    }
    advisor_max_pages_to_scan: u64, AdvisorMaxPagesToScan => {
        kind: Kind::Setting, unit: Unit::Pages,
        limits: Limits::Range { min: 1, max: U32, below: "must be at least 1 (0 would stall ksmd)" },
        since: "6.8", metric: "ksm_advisor_max_pages_to_scan",
        legacy_key: "advisor_max_pages_to_scan",
        help: "The kernel advisor's largest pages_to_scan (advisor_max_pages_to_scan).",
    }
    max_kernel_pages: u64, MaxKernelPages => {
        kind: Kind::Setting, unit: Unit::Pages,
        limits: Limits::Range { min: 0, max: u64::MAX, below: "" }, since: "2.6.32 only",
        metric: "ksm_max_kernel_pages", legacy_key: "max_kernel_pages",
        help: "Most pages KSM may use, 0 unlimited (max_kernel_pages, 2.6.32-era kernels).",
    }
    pages_shared: u64 => {
        kind: Kind::Gauge, unit: Unit::Pages, limits: Limits::ReadOnly, since: "2.6.32",
        metric: "ksm_pages_shared", legacy_key: "shared_pages",
        help: "KSM pages in use (pages_shared).",
    }
    pages_sharing: u64 => {
        kind: Kind::Gauge, unit: Unit::Pages, limits: Limits::ReadOnly, since: "2.6.32",
        metric: "ksm_pages_sharing", legacy_key: "sharing_pages",
        help: "Further mappings of KSM pages, i.e. pages saved (pages_sharing).",
    }
    pages_unshared: u64 => {
        kind: Kind::Gauge, unit: Unit::Pages, limits: Limits::ReadOnly, since: "2.6.32",
        metric: "ksm_pages_unshared", legacy_key: "unshared_pages",
        help: "Unique pages checked again and again (pages_unshared).",
    }
    pages_volatile: u64 => {
        kind: Kind::Gauge, unit: Unit::Pages, limits: Limits::ReadOnly, since: "2.6.32",
        metric: "ksm_pages_volatile", legacy_key: "volatile_pages",
        help: "Pages changing too fast to be merged (pages_volatile).",
    }
    pages_scanned: u64 => {
        kind: Kind::Counter, unit: Unit::Pages, limits: Limits::ReadOnly, since: "6.6",
        metric: "ksm_pages_scanned_total", legacy_key: "scanned_pages",
        help: "Pages ksmd scanned (pages_scanned).",
    }
    pages_skipped: u64 => {
        kind: Kind::Counter, unit: Unit::Pages, limits: Limits::ReadOnly, since: "6.7",
        metric: "ksm_pages_skipped_total", legacy_key: "skipped_pages",
        help: "Pages smart_scan skipped (pages_skipped).",
    }
    full_scans: u64 => {
        kind: Kind::Counter, unit: Unit::Count, limits: Limits::ReadOnly, since: "2.6.32",
        metric: "ksm_full_scans_total", legacy_key: "full_scans",
        help: "Full scans ksmd completed over all mergeable memory (full_scans).",
    }
    general_profit: i64 => {
        kind: Kind::Gauge, unit: Unit::Bytes, limits: Limits::ReadOnly, since: "6.4",
        metric: "ksm_general_profit_bytes", legacy_key: "general_profit_bytes",
        help: "Memory saved minus KSM's own metadata, may be negative (general_profit).",
    }
    ksm_zero_pages: i64 => {
        kind: Kind::Gauge, unit: Unit::Pages, limits: Limits::ReadOnly, since: "6.6",
        metric: "ksm_zero_pages", legacy_key: "zero_pages",
        help: "Empty pages merged with the kernel's zero page (ksm_zero_pages).",
    }
    stable_node_chains: u64 => {
        kind: Kind::Gauge, unit: Unit::Count, limits: Limits::ReadOnly, since: "4.13",
        metric: "ksm_stable_node_chains", legacy_key: "stable_node_chains",
        help: "KSM pages that hit max_page_sharing and were chained (stable_node_chains).",
    }
    stable_node_dups: u64 => {
        kind: Kind::Gauge, unit: Unit::Count, limits: Limits::ReadOnly, since: "4.13",
        metric: "ksm_stable_node_dups", legacy_key: "stable_node_dups",
        help: "Duplicated KSM pages in chains (stable_node_dups).",
    }
}

impl KsmState {
    /// Pages saved: `pages_sharing + ksm_zero_pages` (zero pages only count
    /// when positive; the kernel's counter is signed).
    pub fn saved_pages(&self) -> u64 {
        self.pages_sharing.unwrap_or(0) + self.ksm_zero_pages.unwrap_or(0).max(0) as u64
    }

    /// Memory saved in bytes for the given page size.
    pub fn saved_bytes(&self, page_size: u64) -> u64 {
        self.saved_pages().saturating_mul(page_size)
    }

    /// Whether the advisor is choosing `pages_to_scan`.
    pub fn advisor_active(&self) -> bool {
        self.advisor_mode == Some(AdvisorMode::ScanTime)
    }
}

impl Knob {
    /// The knob's file.
    pub fn file(self) -> &'static File {
        File::named(self.name()).expect("every knob is a file of the table")
    }

    /// Look a knob up by its file name.
    pub fn from_name(name: &str) -> Result<Knob> {
        Knob::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| Error::UnknownKey {
                key: name.to_string(),
                known: Knob::ALL
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Knobs the kernel refuses to change (EBUSY) while pages are merged.
    pub fn needs_unmerge(self) -> bool {
        matches!(self, Knob::MergeAcrossNodes | Knob::MaxPageSharing)
    }

    /// Validate and normalise a user value for this knob (its [`Limits`]).
    pub fn parse(self, value: &str) -> Result<Setting> {
        let v = value.trim();
        let invalid = |reason: &str| Error::InvalidValue {
            key: self.name().to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let number = match self.file().limits {
            Limits::ReadOnly => return Err(invalid("a counter, not a setting")),
            Limits::Run => match v {
                "0" | "stop" => 0,
                "1" | "merge" | "start" => 1,
                "2" | "unmerge" => 2,
                _ => {
                    return Err(invalid(
                        "expected 0 (stop), 1 (run) or 2 (stop and unmerge all)",
                    ))
                }
            },
            Limits::Mode => {
                let m: AdvisorMode = v
                    .parse()
                    .map_err(|_| invalid("expected none or scan-time"))?;
                return Ok(Setting {
                    knob: self,
                    value: SettingValue::Mode(m),
                });
            }
            Limits::Flag => match v {
                "0" | "n" | "no" | "off" | "false" => 0,
                "1" | "y" | "yes" | "on" | "true" => 1,
                _ => return Err(invalid("expected 0 or 1")),
            },
            Limits::Range { min, max, below } => {
                let n: u64 = v
                    .parse()
                    .map_err(|_| invalid("not a non-negative whole number"))?;
                if n > max {
                    return Err(invalid(&format!("larger than the kernel's limit {max}")));
                }
                if n < min {
                    return Err(invalid(below));
                }
                n
            }
        };
        Ok(Setting {
            knob: self,
            value: SettingValue::Number(number),
        })
    }

    /// The current value of this knob in a state, as text (None = absent).
    pub fn current(self, s: &KsmState) -> Option<String> {
        s.value(self.name()).map(|v| v.to_string())
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingValue {
    Number(u64),
    Mode(AdvisorMode),
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Number(n) => write!(f, "{n}"),
            SettingValue::Mode(m) => write!(f, "{m}"),
        }
    }
}

/// A knob with a validated value, ready to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub knob: Knob,
    pub value: SettingValue,
}

impl Setting {
    /// A numeric setting, validated like user input.
    pub fn number(knob: Knob, n: u64) -> Result<Setting> {
        knob.parse(&n.to_string())
    }

    /// `run` = the given state.
    pub fn run(run: Run) -> Setting {
        Setting {
            knob: Knob::Run,
            value: SettingValue::Number(u64::from(run.as_u8())),
        }
    }

    /// Parse `KEY=VALUE`.
    pub fn parse_assignment(s: &str) -> Result<Setting> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| Error::Other(format!("expected KEY=VALUE, got {s:?}")))?;
        Knob::from_name(k.trim())?.parse(v)
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.knob, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisor_selection() {
        assert_eq!(
            AdvisorMode::parse_selection("[none] scan-time"),
            Some(AdvisorMode::None)
        );
        assert_eq!(
            AdvisorMode::parse_selection("none [scan-time]\n"),
            Some(AdvisorMode::ScanTime)
        );
        assert_eq!(
            AdvisorMode::parse_selection("scan-time"),
            Some(AdvisorMode::ScanTime)
        );
        assert_eq!(AdvisorMode::parse_selection("[bogus] none"), None);
        assert_eq!(AdvisorMode::parse_selection("[none"), None);
    }

    #[test]
    fn knob_validation() {
        assert_eq!(Knob::Run.parse("2").unwrap().to_string(), "run=2");
        assert!(Knob::Run.parse("3").is_err());
        assert!(Knob::PagesToScan.parse("-1").is_err());
        assert!(Knob::PagesToScan.parse("abc").is_err());
        assert!(Knob::PagesToScan.parse("4294967296").is_err());
        assert_eq!(
            Knob::PagesToScan.parse(" 4294967295 ").unwrap().value,
            SettingValue::Number(4294967295)
        );
        assert!(Knob::MaxPageSharing.parse("1").is_err());
        assert!(Knob::MaxPageSharing.parse("2").is_ok());
        assert!(Knob::UseZeroPages.parse("2").is_err());
        assert_eq!(
            Knob::SmartScan.parse("yes").unwrap().value,
            SettingValue::Number(1)
        );
        assert!(Knob::AdvisorMaxCpu.parse("0").is_err());
        assert!(Knob::AdvisorMaxCpu.parse("101").is_err());
        assert!(Knob::AdvisorMaxPagesToScan.parse("0").is_err());
        assert_eq!(
            Knob::AdvisorMode.parse("scan-time").unwrap().to_string(),
            "advisor_mode=scan-time"
        );
        assert!(Knob::AdvisorMode.parse("fast").is_err());
        let e = Knob::from_name("pages_to_scna").unwrap_err().to_string();
        assert!(
            e.contains("pages_to_scna") && e.contains("sleep_millisecs"),
            "{e}"
        );
        assert!(Setting::parse_assignment("run").is_err());
        assert_eq!(
            Setting::parse_assignment("sleep_millisecs=20")
                .unwrap()
                .to_string(),
            "sleep_millisecs=20"
        );
    }

    #[test]
    fn the_table_is_consistent() {
        for k in Knob::ALL {
            let f = k.file();
            assert_eq!(f.knob, Some(*k));
            assert_eq!(f.kind, Kind::Setting, "{}", f.name);
            assert_ne!(f.limits, Limits::ReadOnly, "{}", f.name);
        }
        assert_eq!(
            FILES.iter().filter(|f| f.kind == Kind::Setting).count(),
            Knob::ALL.len()
        );
        let mut names: Vec<&str> = FILES.iter().map(|f| f.name).collect();
        let mut metrics: Vec<&str> = FILES.iter().map(|f| f.metric).collect();
        let mut keys: Vec<&str> = FILES.iter().map(|f| f.legacy_key).collect();
        for list in [&mut names, &mut metrics, &mut keys] {
            let n = list.len();
            list.sort();
            list.dedup();
            assert_eq!(list.len(), n, "duplicates in {list:?}");
        }
        for f in FILES {
            // Prometheus conventions: a prefix, cumulative counters end
            // in _total, converted units are named.
            assert!(f.metric.starts_with("ksm_"), "{}", f.metric);
            assert_eq!(f.kind == Kind::Counter, f.metric.ends_with("_total"));
            match f.unit {
                Unit::Milliseconds | Unit::Seconds => assert!(f.metric.ends_with("_seconds")),
                Unit::Percent => assert!(f.metric.ends_with("_ratio")),
                Unit::Bytes => assert!(f.metric.ends_with("_bytes")),
                _ => {}
            }
            assert_eq!(f.kind == Kind::Setting, f.knob.is_some(), "{}", f.name);
            assert!(f.help.contains(f.name), "{}: help names the file", f.name);
        }
    }

    #[test]
    fn values_by_name() {
        let s = KsmState {
            run: Some(Run::Merge),
            sleep_millisecs: Some(20),
            general_profit: Some(-4096),
            advisor_mode: Some(AdvisorMode::ScanTime),
            use_zero_pages: Some(1),
            ..Default::default()
        };
        assert_eq!(s.value("run"), Some(Value::Run(Run::Merge)));
        assert_eq!(s.value("pages_to_scan"), None);
        assert_eq!(s.value("nonsense"), None);
        let f = |n| File::named(n).unwrap();
        assert_eq!(f("sleep_millisecs").metric_value(&s), Some(0.02));
        assert_eq!(f("general_profit").metric_value(&s), Some(-4096.0));
        assert_eq!(f("advisor_mode").metric_value(&s), None);
        assert_eq!(f("use_zero_pages").json_value(&s), serde_json::json!(true));
        assert_eq!(
            f("advisor_mode").json_value(&s),
            serde_json::json!("scan-time")
        );
        assert_eq!(f("run").json_value(&s), serde_json::json!(1));
        assert_eq!(Knob::AdvisorMode.current(&s).as_deref(), Some("scan-time"));
        assert_eq!(Knob::Run.current(&s).as_deref(), Some("1"));
    }

    #[test]
    fn saved_pages_counts_zero_pages_when_positive() {
        let s = KsmState {
            pages_sharing: Some(10),
            ksm_zero_pages: Some(5),
            ..Default::default()
        };
        assert_eq!(s.saved_pages(), 15);
        assert_eq!(s.saved_bytes(4096), 15 * 4096);
        let s = KsmState {
            pages_sharing: Some(10),
            ksm_zero_pages: Some(-3),
            ..Default::default()
        };
        assert_eq!(s.saved_pages(), 10);
    }
}
