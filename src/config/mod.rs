//! `/etc/ksmtuned.conf`: the original's variables, read as data.
//!
//! Every variable of the original keeps its name, meaning and default; an
//! empty value means the default, as in the original. Values are checked:
//! a bad one is an error naming `file:line`, and unknown names are warned
//! about (a typo would otherwise silently keep a default).
//!
//! Here: what the configuration is ([`Config`], [`Loaded`]); in
//! `files.rs`, which files are read, in which order, and whom they must
//! belong to ([`load`], [`Trust`]); in `variables.rs`, the variables'
//! table and their values checked ([`VARIABLES`], [`from_parsed`]); the
//! shell syntax in [`shellvars`].

pub mod domains;
pub mod flavour;
pub mod shellvars;
pub mod web;

mod files;
#[cfg(test)]
mod tests;
mod variables;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Error;
pub use domains::{CrossDomain, TrustDomains};
pub use files::{check_secure, load, Trust};
pub use flavour::Flavour;
pub use variables::{did_you_mean, from_parsed, VARIABLES};

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/ksmtuned.conf";

/// The drop-in directory of a configuration file: `FILE.d`
/// (`/etc/ksmtuned.conf.d`). Its `*.conf` files are read in name order
/// *before* the file itself, so a variable set in the file wins: they hold
/// defaults (the Debian package's postinst puts `KSM_POLICY=adaptive` there
/// on a new installation; see ksmtuned.conf(5)).
pub fn drop_in_dir(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_os_string();
    s.push(".d");
    PathBuf::from(s)
}

/// Which tuning policy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// The original ksmtuned's decisions, bit for bit.
    #[default]
    Classic,
    /// Merge fast within a CPU budget, then idle or stop
    /// (see [`crate::policy::adaptive`]).
    Adaptive,
}

impl PolicyKind {
    /// The name used in the config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Classic => "classic",
            PolicyKind::Adaptive => "adaptive",
        }
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "classic" => Ok(PolicyKind::Classic),
            "adaptive" => Ok(PolicyKind::Adaptive),
            _ => Err(format!("unknown policy {s:?} (known: classic, adaptive)")),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// KSM_MONITOR_INTERVAL: seconds between adjustments (> 0).
    pub monitor_interval: u64,
    /// KSM_SLEEP_MSEC: sleep_millisecs for a 16 GiB host, scaled; `None`
    /// when unset: the flavour's default (see [`Config::sleep_msec`]).
    pub sleep_msec: Option<u64>,
    /// KSM_NPAGES_BOOST: added to pages_to_scan when free memory is low.
    pub npages_boost: i64,
    /// KSM_NPAGES_DECAY: added otherwise (normally negative).
    pub npages_decay: i64,
    /// KSM_NPAGES_MIN: lower clamp of pages_to_scan.
    pub npages_min: i64,
    /// KSM_NPAGES_MAX: upper clamp.
    pub npages_max: i64,
    /// KSM_THRES_COEF: threshold, percent of MemTotal.
    pub thres_coef: u64,
    /// KSM_THRES_CONST: threshold floor, KiB.
    pub thres_const: u64,
    /// LOGFILE: where debug lines go (stdout when unset).
    pub logfile: Option<PathBuf>,
    /// DEBUG: any non-empty value turns the debug lines on.
    pub debug: bool,
    /// KSM_POLICY: classic or adaptive.
    pub policy: PolicyKind,
    /// KSM_MAX_CPU: ksmd's CPU budget for the adaptive policy, percent of
    /// one core (1..=100).
    pub max_cpu: u64,
    /// KSM_METRICS_LISTEN: ADDRESS:PORT of the Prometheus endpoint (off
    /// when unset).
    pub metrics_listen: Option<String>,
    /// KSM_FLAVOUR: whose ksmtuned classic reproduces; `None` = auto
    /// (see [`flavour::resolve`]).
    pub flavour: Option<Flavour>,
    /// KSM_METRICS_WEB_CONFIG: the endpoint's TLS and basic authentication
    /// ([`web`]); relative to the configuration file's directory. Plain
    /// HTTP without authentication when unset.
    pub metrics_web_config: Option<PathBuf>,
    /// KSM_TRUST_DOMAINS: how processes are grouped into trust domains
    /// for the cross-domain audit (none: no audit).
    pub trust_domains: TrustDomains,
    /// KSM_CROSS_DOMAIN: what the daemon does about pages shared across
    /// domains.
    pub cross_domain: CrossDomain,
    /// KSM_DOMAIN_AUDIT_INTERVAL: seconds between two audits (>= 60).
    pub domain_audit_interval: u64,
    /// KSM_ESTIMATE_INTERVAL: seconds between the daemon's background
    /// estimates (0: none).
    pub estimate_interval: u64,
}

impl Config {
    /// KSM_SLEEP_MSEC, or the flavour's default when it is unset.
    pub fn sleep_msec(&self, flavour: Flavour) -> u64 {
        self.sleep_msec
            .unwrap_or_else(|| flavour.default_sleep_msec())
    }

    /// Every variable with its value as a person reads it (`unset` for an
    /// absent path or address), in the order of [`VARIABLES`].
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "unset".to_string());
        vec![
            ("KSM_MONITOR_INTERVAL", self.monitor_interval.to_string()),
            (
                "KSM_SLEEP_MSEC",
                self.sleep_msec
                    .map_or_else(|| "unset".to_string(), |v| v.to_string()),
            ),
            ("KSM_NPAGES_BOOST", self.npages_boost.to_string()),
            ("KSM_NPAGES_DECAY", self.npages_decay.to_string()),
            ("KSM_NPAGES_MIN", self.npages_min.to_string()),
            ("KSM_NPAGES_MAX", self.npages_max.to_string()),
            ("KSM_THRES_COEF", self.thres_coef.to_string()),
            ("KSM_THRES_CONST", self.thres_const.to_string()),
            (
                "LOGFILE",
                opt(self.logfile.as_ref().map(|p| p.display().to_string())),
            ),
            ("DEBUG", if self.debug { "on" } else { "off" }.to_string()),
            ("KSM_POLICY", self.policy.to_string()),
            ("KSM_MAX_CPU", self.max_cpu.to_string()),
            ("KSM_METRICS_LISTEN", opt(self.metrics_listen.clone())),
            (
                "KSM_FLAVOUR",
                flavour::setting_name(self.flavour).to_string(),
            ),
            (
                "KSM_METRICS_WEB_CONFIG",
                opt(self
                    .metrics_web_config
                    .as_ref()
                    .map(|p| p.display().to_string())),
            ),
            ("KSM_TRUST_DOMAINS", self.trust_domains.to_string()),
            ("KSM_CROSS_DOMAIN", self.cross_domain.to_string()),
            (
                "KSM_DOMAIN_AUDIT_INTERVAL",
                self.domain_audit_interval.to_string(),
            ),
            ("KSM_ESTIMATE_INTERVAL", self.estimate_interval.to_string()),
        ]
    }
}

/// The default of KSM_DOMAIN_AUDIT_INTERVAL, and its floor: the audit
/// reads every mergeable page's pagemap entry and frame flags, so it runs
/// at most once a minute.
pub const DEFAULT_DOMAIN_AUDIT_INTERVAL: u64 = 300;
pub const MIN_DOMAIN_AUDIT_INTERVAL: u64 = 60;

/// The default of KSM_MAX_CPU (see README, "Adaptive policy").
pub const DEFAULT_MAX_CPU: u64 = 50;

impl Default for Config {
    fn default() -> Self {
        Config {
            monitor_interval: 60,
            sleep_msec: None,
            npages_boost: 300,
            npages_decay: -50,
            npages_min: 64,
            npages_max: 1250,
            thres_coef: 20,
            thres_const: 2048,
            logfile: None,
            debug: false,
            policy: PolicyKind::Classic,
            max_cpu: DEFAULT_MAX_CPU,
            metrics_listen: None,
            flavour: None,
            metrics_web_config: None,
            trust_domains: TrustDomains::None,
            cross_domain: CrossDomain::Allow,
            domain_audit_interval: DEFAULT_DOMAIN_AUDIT_INTERVAL,
            estimate_interval: 0,
        }
    }
}

/// The outcome of loading a file: the configuration (defaults where the
/// file had errors), warnings, and errors (the daemon refuses to start on
/// any error).
#[derive(Debug, Default)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    pub errors: Vec<Error>,
    /// The file read, if there was one.
    pub path: Option<PathBuf>,
    /// The drop-in files read before it (see [`drop_in_dir`]).
    pub drop_ins: Vec<PathBuf>,
    /// Where KSM_POLICY was set (`file:line`), if anywhere.
    pub policy_origin: Option<String>,
}

impl Loaded {
    /// Whether the configuration is usable.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}
