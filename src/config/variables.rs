//! The variables of `/etc/ksmtuned.conf`: their table, and their values
//! checked into a [`Config`] (errors name `file:line`, unknown names are
//! warned about with the known name they most likely meant).

use std::path::{Path, PathBuf};

use super::shellvars::{Assignment, Parsed};
use super::{flavour, Config, Loaded};
use crate::error::Error;

/// The variables this file knows, with a line for `--help`-like listings.
pub const VARIABLES: &[(&str, &str)] = &[
    ("KSM_MONITOR_INTERVAL", "seconds between adjustments (60)"),
    (
        "KSM_SLEEP_MSEC",
        "sleep_millisecs for a 16 GiB host, scaled by MemTotal (10; 100 on Proxmox VE)",
    ),
    (
        "KSM_NPAGES_BOOST",
        "added to pages_to_scan when free memory is low (300)",
    ),
    ("KSM_NPAGES_DECAY", "added to pages_to_scan otherwise (-50)"),
    ("KSM_NPAGES_MIN", "lower bound of pages_to_scan (64)"),
    ("KSM_NPAGES_MAX", "upper bound of pages_to_scan (1250)"),
    (
        "KSM_THRES_COEF",
        "free-memory threshold, percent of MemTotal (20)",
    ),
    ("KSM_THRES_CONST", "threshold floor in KiB (2048)"),
    (
        "LOGFILE",
        "file the debug lines are appended to (stdout when unset)",
    ),
    ("DEBUG", "any non-empty value turns debug lines on (unset)"),
    ("KSM_POLICY", "tuning policy: classic or adaptive (classic)"),
    (
        "KSM_MAX_CPU",
        "adaptive: ksmd CPU budget, percent of one core (50)",
    ),
    (
        "KSM_METRICS_LISTEN",
        "ADDRESS:PORT to serve Prometheus metrics on (off)",
    ),
    (
        "KSM_FLAVOUR",
        "classic: whose ksmtuned to reproduce: auto, rhel or proxmox (auto)",
    ),
    (
        "KSM_METRICS_WEB_CONFIG",
        "web configuration file: TLS and basic auth for the metrics (unset)",
    ),
    (
        "KSM_TRUST_DOMAINS",
        "trust domains to audit: none, cgroup[:DEPTH], user or guest (none)",
    ),
    (
        "KSM_CROSS_DOMAIN",
        "pages shared across trust domains: allow or warn (allow)",
    ),
    (
        "KSM_DOMAIN_AUDIT_INTERVAL",
        "seconds between cross-domain audits, at least 60 (300)",
    ),
    (
        "KSM_ESTIMATE_INTERVAL",
        "seconds between background estimates of what KSM would save; 0 = off (0)",
    ),
];

/// Build the configuration from parsed assignments.
pub fn from_parsed(mut parsed: Parsed) -> Loaded {
    let mut c = Config::default();
    let mut errors = std::mem::take(&mut parsed.errors);
    let mut warnings = Vec::new();
    let path = parsed.path.clone();
    let err = |a: &Assignment, msg: String| Error::Syntax {
        path: a.path.clone(),
        line: a.line,
        message: format!("{}={:?}: {msg}", a.name, a.value),
    };
    // The last assignment of each name wins, as when a shell sources it.
    let last = |name: &str| parsed.get(name).filter(|a| !a.value.is_empty());
    let int = |name: &str, min: i64| -> Result<Option<i64>, Error> {
        let Some(a) = last(name) else { return Ok(None) };
        let v: i64 = a
            .value
            .trim()
            .parse()
            .map_err(|_| err(a, "not a whole number".to_string()))?;
        if v < min {
            return Err(err(a, format!("must be at least {min}")));
        }
        if v > i64::from(u32::MAX) {
            return Err(err(a, format!("must be at most {}", u32::MAX)));
        }
        Ok(Some(v))
    };
    let mut take = |name: &str, min: i64, slot: &mut dyn FnMut(i64)| match int(name, min) {
        Ok(Some(v)) => slot(v),
        Ok(None) => {}
        Err(e) => errors.push(e),
    };
    take("KSM_MONITOR_INTERVAL", 1, &mut |v| {
        c.monitor_interval = v as u64
    });
    take("KSM_SLEEP_MSEC", 0, &mut |v| c.sleep_msec = Some(v as u64));
    take("KSM_NPAGES_BOOST", 0, &mut |v| c.npages_boost = v);
    take("KSM_NPAGES_DECAY", -i64::from(u32::MAX), &mut |v| {
        c.npages_decay = v
    });
    take("KSM_NPAGES_MIN", 0, &mut |v| c.npages_min = v);
    take("KSM_NPAGES_MAX", 0, &mut |v| c.npages_max = v);
    take("KSM_THRES_COEF", 0, &mut |v| c.thres_coef = v as u64);
    take("KSM_THRES_CONST", 0, &mut |v| c.thres_const = v as u64);
    take("KSM_MAX_CPU", 1, &mut |v| c.max_cpu = v as u64);
    take(
        "KSM_DOMAIN_AUDIT_INTERVAL",
        super::MIN_DOMAIN_AUDIT_INTERVAL as i64,
        &mut |v| c.domain_audit_interval = v as u64,
    );
    take("KSM_ESTIMATE_INTERVAL", 0, &mut |v| {
        c.estimate_interval = v as u64
    });
    if c.max_cpu > 100 {
        let a = last("KSM_MAX_CPU").expect("set when above 100");
        errors.push(err(
            a,
            "must be a percentage of one core, at most 100".to_string(),
        ));
    }
    if c.npages_min > c.npages_max {
        let a = last("KSM_NPAGES_MAX")
            .or_else(|| last("KSM_NPAGES_MIN"))
            .expect("MIN > MAX needs one of them set");
        errors.push(err(
            a,
            format!(
                "KSM_NPAGES_MIN ({}) is larger than KSM_NPAGES_MAX ({})",
                c.npages_min, c.npages_max
            ),
        ));
    }
    if let Some(a) = last("LOGFILE") {
        c.logfile = Some(PathBuf::from(&a.value));
    }
    c.debug = last("DEBUG").is_some();
    if let Some(a) = last("KSM_METRICS_LISTEN") {
        match a.value.parse::<std::net::SocketAddr>() {
            Ok(_) => c.metrics_listen = Some(a.value.clone()),
            Err(_) => errors.push(err(a, listen_problem(&a.value))),
        }
    }
    if let Some(a) = last("KSM_FLAVOUR") {
        match flavour::parse_setting(a.value.trim()) {
            Ok(f) => c.flavour = f,
            Err(m) => errors.push(err(a, m)),
        }
    }
    if let Some(a) = last("KSM_METRICS_WEB_CONFIG") {
        // Relative to the file that sets it.
        let dir = a.path.parent().unwrap_or(Path::new("/"));
        c.metrics_web_config = Some(dir.join(&a.value));
        if c.metrics_listen.is_none() {
            warnings.push(format!(
                "{}:{}: KSM_METRICS_WEB_CONFIG has no effect without KSM_METRICS_LISTEN",
                a.path.display(),
                a.line
            ));
        }
    }
    if let Some(a) = last("KSM_TRUST_DOMAINS") {
        match a.value.trim().parse() {
            Ok(t) => c.trust_domains = t,
            Err(m) => errors.push(err(a, m)),
        }
    }
    if let Some(a) = last("KSM_CROSS_DOMAIN") {
        match a.value.trim().parse() {
            Ok(p) => c.cross_domain = p,
            Err(m) => errors.push(err(a, m)),
        }
        if !c.trust_domains.enabled() {
            warnings.push(format!(
                "{}:{}: KSM_CROSS_DOMAIN has no effect without KSM_TRUST_DOMAINS",
                a.path.display(),
                a.line
            ));
        }
    }
    let mut policy_origin = None;
    if let Some(a) = last("KSM_POLICY") {
        match a.value.parse() {
            Ok(p) => {
                c.policy = p;
                policy_origin = Some(format!("{}:{}", a.path.display(), a.line));
            }
            Err(m) => errors.push(err(a, m)),
        }
    }
    for a in &parsed.assignments {
        if !VARIABLES.iter().any(|(n, _)| *n == a.name) {
            let hint = match did_you_mean(&a.name) {
                Some(known) => format!("; did you mean {known}?"),
                None => String::new(),
            };
            warnings.push(format!(
                "{}:{}: unknown variable {} (ignored{hint})",
                a.path.display(),
                a.line,
                a.name
            ));
        }
    }
    errors.sort_by_key(|e| match e {
        Error::Syntax { line, .. } => *line,
        _ => 0,
    });
    Loaded {
        config: c,
        warnings,
        errors,
        path: Some(path),
        drop_ins: Vec::new(),
        policy_origin,
    }
}

/// The known variable an unknown name is most likely a typo of: a small
/// edit distance (case ignored), the closest one.
pub fn did_you_mean(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    VARIABLES
        .iter()
        .map(|(known, _)| (strsim::damerau_levenshtein(&upper, known), *known))
        .filter(|(d, known)| *d <= 3.min(known.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Why a KSM_METRICS_LISTEN value is refused: a host name gets its own
/// message (the daemon binds an address and resolves no names).
fn listen_problem(value: &str) -> String {
    let example = "e.g. 127.0.0.1:9926 or [::1]:9926";
    if let Some((host, port)) = value.rsplit_once(':') {
        let named = !host.is_empty()
            && host.parse::<std::net::IpAddr>().is_err()
            && !host.starts_with('[')
            && host
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.')
            && host.chars().any(|ch| ch.is_ascii_alphabetic());
        if named && port.parse::<u16>().is_ok() {
            return format!(
                "{host:?} is a host name, and ksmtuned resolves no names: give an IP address, \
                 e.g. 127.0.0.1:{port} or [::1]:{port}"
            );
        }
        if port.parse::<u16>().is_err() {
            return format!(
                "{port:?} is not a port number (0 to 65535): expected ADDRESS:PORT, {example}"
            );
        }
    } else {
        return format!("no port: expected ADDRESS:PORT, {example}");
    }
    format!("expected ADDRESS:PORT, {example}")
}
