//! `/etc/ksmtuned.conf`: the original's variables, read as data.
//!
//! Every variable of the original keeps its name, meaning and default; an
//! empty value means the default, as in the original. Values are checked:
//! a bad one is an error naming `file:line`, and unknown names are warned
//! about (a typo would otherwise silently keep a default).

pub mod flavour;
pub mod shellvars;
pub mod web;

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::root::Root;
pub use flavour::Flavour;
use shellvars::{Assignment, Parsed};

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
        ]
    }
}

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
        }
    }
}

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
];

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

/// Whether [`load`] checks who could have written the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The file and its directory must be owned by root or by `euid` (the
    /// user running ksmtuned: root in production, so root only) and be
    /// writable by nobody else.
    Owner { euid: u32 },
    /// `--insecure-config`: read it anyway (with a warning).
    Insecure,
}

impl Trust {
    /// The rule for this process: its effective uid, or `--insecure-config`.
    pub fn for_this_process(insecure: bool) -> Trust {
        if insecure {
            Trust::Insecure
        } else {
            Trust::Owner {
                euid: crate::kernel::sys::euid(),
            }
        }
    }
}

/// Check that the configuration file `path` (whose opened file has
/// `meta`), the directory it is named in and the directory it really is in
/// (through symlinks) are owned by root or `euid` and not writable by group
/// or others: the daemon runs as root, and whoever can write its
/// configuration steers it (LOGFILE names a file it appends to).
pub fn check_secure(path: &Path, meta: &fs::Metadata, euid: u32) -> Result<(), Error> {
    check_owner_mode(path, path, meta, "file", euid)?;
    let named_in = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dirs = vec![named_in];
    if let Some(real) = fs::canonicalize(path)
        .ok()
        .and_then(|r| r.parent().map(Path::to_path_buf))
    {
        dirs.push(real);
    }
    for dir in dirs {
        let m = fs::metadata(&dir).map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        check_owner_mode(&dir, path, &m, "directory", euid)?;
    }
    Ok(())
}

fn check_owner_mode(
    path: &Path,
    file: &Path,
    meta: &fs::Metadata,
    what: &'static str,
    euid: u32,
) -> Result<(), Error> {
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    let reason = if uid != 0 && uid != euid {
        format!(
            "it is owned by uid {uid}, not by root{}",
            if euid != 0 {
                format!(" or uid {euid} (who runs ksmtuned)")
            } else {
                String::new()
            }
        )
    } else if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and by others",
            (true, false) => "its group",
            _ => "others",
        };
        format!("it is writable by {who}")
    } else {
        return Ok(());
    };
    Err(Error::Insecure {
        path: path.to_path_buf(),
        what,
        file: file.to_path_buf(),
        uid,
        mode,
        reason,
    })
}

/// Load the configuration. `explicit` is a file named on the command line
/// (used as is, it must exist); otherwise the default file under the root
/// is read if it exists, and defaults apply if it does not. The drop-in
/// files of [`drop_in_dir`] are read first. Every file is checked (see
/// [`check_secure`]) on the opened file, then read from it.
pub fn load(root: &Root, explicit: Option<&Path>, trust: Trust) -> Loaded {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => root.join(DEFAULT_CONFIG),
    };
    let fail = |e: Error| Loaded {
        errors: vec![e],
        ..Default::default()
    };
    let mut warnings = Vec::new();
    let mut drop_ins = Vec::new();
    let mut combined: Option<Parsed> = None;
    let dir = drop_in_dir(&path);
    match drop_in_files(&dir) {
        Ok(files) => {
            for f in files {
                match read_checked(&f, trust, &mut warnings) {
                    Ok(Some(p)) => {
                        drop_ins.push(f);
                        match &mut combined {
                            Some(c) => c.extend(p),
                            None => combined = Some(p),
                        }
                    }
                    // Vanished since the listing.
                    Ok(None) => {}
                    Err(e) => return fail(e),
                }
            }
        }
        Err(e) => return fail(e),
    }
    let main = match read_checked(&path, trust, &mut warnings) {
        Ok(Some(p)) => Some(p),
        Ok(None) if explicit.is_none() => None,
        Ok(None) => {
            return fail(Error::Other(format!(
                "configuration file {} does not exist",
                path.display()
            )))
        }
        Err(e) => return fail(e),
    };
    let parsed = match (combined, main) {
        (Some(mut c), Some(m)) => {
            c.path = m.path.clone();
            c.extend(m);
            Some(c)
        }
        (Some(mut c), None) => {
            c.path = path.clone();
            Some(c)
        }
        (None, m) => m,
    };
    let Some(parsed) = parsed else {
        return Loaded {
            warnings,
            ..Default::default()
        };
    };
    let main_present = path.exists();
    let mut loaded = from_parsed(parsed);
    // The web configuration is checked with the file that names it.
    if let Some(web) = &loaded.config.metrics_web_config {
        match web::load(web, trust) {
            Ok(w) => warnings.extend(w.warnings),
            Err(mut e) => loaded.errors.append(&mut e),
        }
    }
    if !main_present {
        loaded.path = None;
    }
    loaded.drop_ins = drop_ins;
    warnings.append(&mut loaded.warnings);
    loaded.warnings = warnings;
    loaded
}

/// The `*.conf` files of a drop-in directory, sorted by name; none when
/// the directory does not exist.
fn drop_in_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "conf") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Open, check and parse one file; `Ok(None)` when it does not exist.
fn read_checked(
    path: &Path,
    trust: Trust,
    warnings: &mut Vec<String>,
) -> Result<Option<Parsed>, Error> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if let Err(e) = check_secure(path, &meta, euid_of(trust)) {
        match (trust, e) {
            (
                Trust::Insecure,
                Error::Insecure {
                    path: p, reason, ..
                },
            ) => warnings.push(format!(
                "{}: {reason}; read anyway because of --insecure-config",
                p.display()
            )),
            (Trust::Insecure, _) => {}
            (Trust::Owner { .. }, e) => return Err(e),
        }
    }
    shellvars::read_from(path, &mut file).map(Some)
}

fn euid_of(trust: Trust) -> u32 {
    match trust {
        Trust::Owner { euid } => euid,
        // Checked only for the warning: as if run by root.
        Trust::Insecure => 0,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Loaded {
        from_parsed(shellvars::parse(Path::new("/etc/ksmtuned.conf"), text))
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(conf("").config, Config::default());
        let l = conf(
            "KSM_MONITOR_INTERVAL=5\nexport KSM_SLEEP_MSEC='20'\nKSM_NPAGES_BOOST=\"1000\"\n\
             KSM_NPAGES_DECAY=-10\nKSM_NPAGES_MIN=1\nKSM_NPAGES_MAX=5000\nKSM_THRES_COEF=30\n\
             KSM_THRES_CONST=4096\nLOGFILE=/var/log/ksmtuned\nDEBUG=0\nKSM_POLICY=classic\n",
        );
        assert!(l.is_ok(), "{:?}", l.errors);
        let c = l.config;
        assert_eq!(c.monitor_interval, 5);
        assert_eq!(c.sleep_msec, Some(20));
        assert_eq!(c.sleep_msec(Flavour::Proxmox), 20);
        assert_eq!(Config::default().sleep_msec(Flavour::Proxmox), 100);
        assert_eq!(Config::default().sleep_msec(Flavour::Rhel), 10);
        assert_eq!(c.flavour, None);
        assert_eq!(
            conf("KSM_FLAVOUR=proxmox\n").config.flavour,
            Some(Flavour::Proxmox)
        );
        assert_eq!(conf("KSM_FLAVOUR=auto\n").config.flavour, None);
        let bad = conf("KSM_FLAVOUR=pve\n");
        assert!(
            bad.errors[0].to_string().contains(":1: KSM_FLAVOUR"),
            "{:?}",
            bad.errors
        );
        assert_eq!(c.npages_boost, 1000);
        assert_eq!(c.npages_decay, -10);
        assert_eq!((c.npages_min, c.npages_max), (1, 5000));
        assert_eq!((c.thres_coef, c.thres_const), (30, 4096));
        assert_eq!(c.logfile.as_deref(), Some(Path::new("/var/log/ksmtuned")));
        assert!(c.debug, "DEBUG=0 is non-empty: on, as in the original");
        assert_eq!(c.policy, PolicyKind::Classic);
    }

    #[test]
    fn empty_means_default() {
        let l = conf("KSM_NPAGES_BOOST=\nDEBUG=\nLOGFILE=''\n");
        assert!(l.is_ok());
        assert_eq!(l.config, Config::default());
    }

    #[test]
    fn errors_name_file_and_line() {
        let l = conf(
            "KSM_MONITOR_INTERVAL=0\nKSM_NPAGES_BOOST=lots\nKSM_NPAGES_MIN=-1\n\
             KSM_THRES_COEF=1.5\nKSM_POLICY=fast\n",
        );
        let msgs: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert!(
            msgs[0].starts_with("/etc/ksmtuned.conf:1: KSM_MONITOR_INTERVAL"),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.starts_with("/etc/ksmtuned.conf:2: ")));
        assert!(msgs.iter().any(|m| m.starts_with("/etc/ksmtuned.conf:5: ")));
    }

    #[test]
    fn min_above_max() {
        let l = conf("KSM_NPAGES_MIN=2000\n");
        assert_eq!(l.errors.len(), 1);
        let m = l.errors[0].to_string();
        assert!(
            m.contains(":1:") && m.contains("2000") && m.contains("1250"),
            "{m}"
        );
    }

    #[test]
    fn values_follow_the_variables() {
        let names: Vec<&str> = Config::default().values().iter().map(|v| v.0).collect();
        let known: Vec<&str> = VARIABLES.iter().map(|v| v.0).collect();
        assert_eq!(names, known);
    }

    #[test]
    fn unknown_names_warn() {
        let l = conf("KSM_NPAGE_MAX=10\n");
        assert!(l.is_ok());
        assert_eq!(l.warnings.len(), 1);
        assert!(
            l.warnings[0].contains(
                ":1: unknown variable KSM_NPAGE_MAX (ignored; did you mean KSM_NPAGES_MAX?)"
            ),
            "{:?}",
            l.warnings
        );
        let l = conf("KSM_SLEEP_MSECS=10\nksm_policy=adaptive\nFOO=1\n");
        assert!(
            l.warnings[0].contains("did you mean KSM_SLEEP_MSEC?"),
            "{:?}",
            l.warnings
        );
        assert!(
            l.warnings[1].contains("did you mean KSM_POLICY?"),
            "{:?}",
            l.warnings
        );
        assert!(
            l.warnings[2].ends_with("unknown variable FOO (ignored)"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn listen_messages() {
        let msg = |v: &str| {
            let l = conf(&format!("KSM_METRICS_LISTEN={v}\n"));
            assert_eq!(l.errors.len(), 1, "{v}");
            l.errors[0].to_string()
        };
        let m = msg("localhost:9926");
        assert!(
            m.contains("KSM_METRICS_LISTEN=\"localhost:9926\"")
                && m.contains("is a host name")
                && m.contains("127.0.0.1:9926 or [::1]:9926"),
            "{m}"
        );
        assert!(msg("metrics.example.org:9926").contains("is a host name"));
        assert!(msg("127.0.0.1:99999").contains("\"99999\" is not a port number"));
        assert!(msg("127.0.0.1").contains("no port"));
        assert!(conf("KSM_METRICS_LISTEN=[::1]:9926\n").is_ok());
    }

    #[test]
    fn refused_syntax_quotes_the_value() {
        let l = conf("KSM_SLEEP_MSEC=$(nproc)\n");
        let m = l.errors[0].to_string();
        assert!(m.contains("KSM_SLEEP_MSEC=$(nproc): expansions"), "{m}");
    }

    #[test]
    fn shipped_example_is_the_defaults() {
        // Every line is commented out: an upgrade from Debian's ksmtuned
        // (whose conffile is the same) changes nothing, and the policy is
        // classic unless a drop-in (a new installation's) or the
        // administrator sets it.
        let text = include_str!("../../etc/ksmtuned.conf");
        let l = conf(text);
        assert!(l.is_ok(), "{:?}", l.errors);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config, Config::default());
        assert_eq!(Config::default().policy, PolicyKind::Classic);
        // Every variable is documented in it.
        for (name, _) in VARIABLES {
            assert!(
                text.contains(&format!("# {name}=")),
                "{name} not in the example"
            );
        }
    }

    #[test]
    fn drop_ins_are_read_first_and_the_file_wins() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        let f = t.path().join("etc/ksmtuned.conf");
        let d = drop_in_dir(&f);
        fs::create_dir(&d).unwrap();
        fs::write(
            d.join("50-policy.conf"),
            "KSM_POLICY=adaptive\nKSM_MAX_CPU=30\n",
        )
        .unwrap();
        fs::write(
            d.join("10-first.conf"),
            "KSM_MAX_CPU=20\nKSM_NPAGES_BOOST=400\n",
        )
        .unwrap();
        fs::write(d.join("ignored.dpkg-old"), "KSM_POLICY=bad\n").unwrap();
        let trust = Trust::Owner {
            euid: crate::kernel::sys::euid(),
        };
        // No main file: the drop-ins alone.
        let l = load(&Root::new(t.path()), None, trust);
        assert!(l.is_ok(), "{:?}", l.errors);
        assert!(l.path.is_none());
        assert_eq!(l.config.policy, PolicyKind::Adaptive);
        fs::write(&f, "# all commented\n").unwrap();
        let l = load(&Root::default(), Some(&f), trust);
        assert!(l.is_ok(), "{:?}", l.errors);
        assert_eq!(l.config.policy, PolicyKind::Adaptive);
        assert_eq!(l.config.max_cpu, 30);
        assert_eq!(l.config.npages_boost, 400);
        assert_eq!(l.drop_ins.len(), 2);
        assert_eq!(
            l.policy_origin.as_deref(),
            Some(format!("{}:1", d.join("50-policy.conf").display()).as_str())
        );
        // The file has the last word.
        fs::write(&f, "KSM_POLICY=classic\n").unwrap();
        let l = load(&Root::default(), Some(&f), trust);
        assert_eq!(l.config.policy, PolicyKind::Classic);
        assert_eq!(l.config.max_cpu, 30);
        // An error in a drop-in names the drop-in.
        fs::write(d.join("60-bad.conf"), "\nKSM_MAX_CPU=200\n").unwrap();
        let l = load(&Root::default(), Some(&f), trust);
        assert_eq!(l.errors.len(), 1);
        let m = l.errors[0].to_string();
        assert!(
            m.starts_with(&format!("{}:2: ", d.join("60-bad.conf").display())),
            "{m}"
        );
    }

    mod security {
        use super::super::*;
        use std::os::unix::fs::{chown, symlink, PermissionsExt};

        fn is_root() -> bool {
            let root = crate::kernel::sys::euid() == 0;
            if !root {
                eprintln!("SKIPPED: changing file owners needs root");
            }
            root
        }

        /// A config file `dir/ksmtuned.conf` with the given owner and
        /// mode, in a directory with the given owner and mode.
        fn setup(dir_uid: u32, dir_mode: u32, uid: u32, mode: u32) -> (tempfile::TempDir, PathBuf) {
            let t = tempfile::tempdir().unwrap();
            let d = t.path().join("etc");
            fs::create_dir(&d).unwrap();
            let f = d.join("ksmtuned.conf");
            fs::write(&f, "KSM_NPAGES_BOOST=500\n").unwrap();
            chown(&f, Some(uid), None).unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
            chown(&d, Some(dir_uid), None).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(dir_mode)).unwrap();
            (t, f)
        }

        fn load_as(f: &Path, euid: u32) -> Loaded {
            load(&Root::default(), Some(f), Trust::Owner { euid })
        }

        fn refused(l: &Loaded) -> String {
            assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
            assert!(
                matches!(l.errors[0], Error::Insecure { .. }),
                "{:?}",
                l.errors
            );
            l.errors[0].to_string()
        }

        #[test]
        fn root_owned_and_not_writable_by_others_is_read() {
            if !is_root() {
                return;
            }
            let (_t, f) = setup(0, 0o755, 0, 0o644);
            let l = load_as(&f, 0);
            assert!(l.is_ok(), "{:?}", l.errors);
            assert_eq!(l.config.npages_boost, 500);
            let (_t, f) = setup(0, 0o700, 0, 0o600);
            assert!(load_as(&f, 0).is_ok());
        }

        #[test]
        fn file_of_another_user_is_refused() {
            if !is_root() {
                return;
            }
            let (_t, f) = setup(0, 0o755, 1000, 0o644);
            let m = refused(&load_as(&f, 0));
            assert!(
                m.starts_with(&format!("{}: refusing", f.display()))
                    && m.contains("configuration file (owner uid 1000, mode 0644)")
                    && m.contains("owned by uid 1000, not by root")
                    && m.contains("--insecure-config"),
                "{m}"
            );
        }

        #[test]
        fn file_writable_by_group_or_others_is_refused() {
            if !is_root() {
                return;
            }
            for (mode, who) in [
                (0o664, "by its group"),
                (0o646, "by others"),
                (0o666, "by its group and by others"),
            ] {
                let (_t, f) = setup(0, 0o755, 0, mode);
                let m = refused(&load_as(&f, 0));
                assert!(m.contains(&format!("mode {mode:04o}")), "{m}");
                assert!(m.contains(&format!("it is writable {who}")), "{m}");
            }
        }

        #[test]
        fn directory_of_another_user_or_writable_is_refused() {
            if !is_root() {
                return;
            }
            for (uid, mode, what) in [
                (1000, 0o755, "owned by uid 1000"),
                (0, 0o775, "writable by its group"),
                (0, 0o777, "writable by its group and by others"),
                (0, 0o1777, "writable by its group and by others"),
            ] {
                let (_t, f) = setup(uid, mode, 0, 0o644);
                let m = refused(&load_as(&f, 0));
                let dir = f.parent().unwrap();
                assert!(
                    m.starts_with(&format!(
                        "{}: refusing to use this configuration directory",
                        dir.display()
                    )),
                    "{m}"
                );
                assert!(
                    m.contains(what) && m.contains(&format!("mode {mode:04o}")),
                    "{m}"
                );
            }
        }

        #[test]
        fn a_symlink_is_judged_by_what_it_points_to() {
            if !is_root() {
                return;
            }
            // A root-owned link in a safe directory to a file in a
            // world-writable one: whoever writes there steers the daemon.
            let (_t, target) = setup(0, 0o777, 0, 0o644);
            let safe = tempfile::tempdir().unwrap();
            let link = safe.path().join("ksmtuned.conf");
            symlink(&target, &link).unwrap();
            let m = refused(&load_as(&link, 0));
            assert!(
                m.contains("configuration directory") && m.contains("mode 0777"),
                "{m}"
            );
            // A link to another user's file.
            let (_t2, target) = setup(0, 0o755, 1000, 0o644);
            let link2 = safe.path().join("other.conf");
            symlink(&target, &link2).unwrap();
            let m = refused(&load_as(&link2, 0));
            assert!(m.contains("owner uid 1000"), "{m}");
        }

        #[test]
        fn an_unprivileged_daemon_may_read_its_own_files() {
            if !is_root() {
                return;
            }
            // Run as uid 1000 (a test tree): its own files and root's are fine,
            // a third user's are not.
            let (_t, f) = setup(1000, 0o755, 1000, 0o644);
            assert!(load_as(&f, 1000).is_ok());
            let (_t, f) = setup(0, 0o755, 0, 0o644);
            assert!(load_as(&f, 1000).is_ok());
            let (_t, f) = setup(0, 0o755, 2000, 0o644);
            let m = refused(&load_as(&f, 1000));
            assert!(
                m.contains("not by root or uid 1000 (who runs ksmtuned)"),
                "{m}"
            );
            // Root's daemon does not trust uid 1000's file.
            let (_t, f) = setup(1000, 0o755, 1000, 0o644);
            refused(&load_as(&f, 0));
        }

        #[test]
        fn insecure_config_reads_it_with_a_warning() {
            if !is_root() {
                return;
            }
            let (_t, f) = setup(0, 0o777, 1000, 0o666);
            let l = load(&Root::default(), Some(&f), Trust::Insecure);
            assert!(l.is_ok(), "{:?}", l.errors);
            assert_eq!(l.config.npages_boost, 500);
            assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
            assert!(
                l.warnings[0].contains("owned by uid 1000")
                    && l.warnings[0].contains("read anyway because of --insecure-config"),
                "{:?}",
                l.warnings
            );
        }

        #[test]
        fn a_missing_default_file_is_not_checked() {
            let t = tempfile::tempdir().unwrap();
            let l = load(&Root::new(t.path()), None, Trust::Owner { euid: 0 });
            assert!(l.is_ok() && l.path.is_none(), "{:?}", l.errors);
        }
    }
}
