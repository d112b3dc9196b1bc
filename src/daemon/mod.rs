//! `ksmtuned`: the tuning daemon. This file is its command line and
//! one-shot commands (`retune`, `--check-config`); [`run`] is its loop
//! and cycle, [`debuglog`] the original's DEBUG/LOGFILE channel,
//! [`pidfile`] the single-instance lock.
//!
//! Transient errors (a refused write, an unreadable file) are logged once
//! and the loop goes on; configuration errors stop the start-up.

mod audit;
pub mod debuglog;
mod estimate;
mod faults;
pub mod pidfile;
pub mod run;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use log::error;

use crate::config::{self, PolicyKind};
use crate::root::Root;
pub use debuglog::DebugLog;
use pidfile::TUNER_PID_FILE;
use run::Daemon;

/// Tune Kernel Samepage Merging to the host's memory pressure.
#[derive(Debug, Parser)]
#[command(
    name = "ksmtuned",
    version,
    after_long_help = "Signals: SIGUSR1 (ksmtuned retune, ksmctl retune) adjusts now; SIGHUP \
                       (systemctl reload ksmtuned) re-reads the configuration, keeping the old \
                       one if the new one is bad; SIGTERM and SIGINT exit at once, leaving run \
                       as it is.\n\n\
                       Logs go to standard error without time stamps: info by default, -v for \
                       every decision with its reason, RUST_LOG overrides. When standard error \
                       is the journal (JOURNAL_STREAM), each line carries its syslog priority, \
                       so journalctl -p warning -u ksmtuned shows warnings and errors only. A \
                       fault that repeats is logged when it starts and when it clears. With \
                       DEBUG set, the original's debug lines go to LOGFILE or standard output.\n\n\
                       Exit status: 0 after SIGTERM, or when ksm.service is masked; 1 a runtime \
                       error (no KSM, another ksmtuned running); 2 a usage error; 77 \
                       (EX_NOPERM) access to KSM's files or /proc/meminfo refused (permissions, \
                       sandbox, SELinux); 78 (EX_CONFIG) an invalid configuration. The shipped \
                       unit restarts on neither (RestartPreventExitStatus=77 78). --check-config \
                       exits 0 or 1.\n\n\
                       Files: /etc/ksmtuned.conf and /etc/ksmtuned.conf.d/*.conf \
                       (ksmtuned.conf(5)); /run/ksmtuned/ksmtuned.pid \
                       (/run/ksmtuned.dry-run.pid with --dry-run), which ksmtuned creates and \
                       holds locked. If it cannot create it (a read-only /run, an SELinux \
                       policy without a type for it), it says so once and runs without it: \
                       retune then finds the daemon by its process name. retune reads \
                       /run/ksmtuned.pid too (the file of earlier packages). With \
                       KSM_ESTIMATE_INTERVAL set, /run/ksmtuned/estimate.json holds the last \
                       background estimate."
)]
pub struct Cli {
    /// Configuration file [default: /etc/ksmtuned.conf under the root].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (FILE, or the one --config names, and the
    /// drop-ins in FILE.d/), report every problem and the policy that would
    /// run, and exit: 0 when it is valid, 1 otherwise.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub check_config: Option<String>,

    /// Treat warnings (an unknown variable, an insecure file read because
    /// of --insecure-config) as errors: --check-config exits 1 and the
    /// daemon does not start.
    #[arg(long)]
    pub strict: bool,

    /// Read the configuration file even if someone other than root could
    /// have written it or its directory (owner not root, or writable by
    /// group or others); a warning says so.
    #[arg(long)]
    pub insecure_config: bool,

    /// Tuning policy, overriding KSM_POLICY.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PolicyKind>,

    /// Run the whole daemon (pid file, signals, logs, decisions) but write
    /// nothing to /sys/kernel/mm/ksm.
    #[arg(long)]
    pub dry_run: bool,

    /// Pid file and single-instance lock [default:
    /// /run/ksmtuned/ksmtuned.pid under the root;
    /// /run/ksmtuned.dry-run.pid with --dry-run].
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Time between adjustments in milliseconds, overriding
    /// KSM_MONITOR_INTERVAL (whole seconds): for soak and churn tests.
    #[arg(long, value_name = "MS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: Option<u64>,

    /// Resolve /sys, /proc, /etc and /run under this directory (also $KSM_ROOT).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// More log output on standard error (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<TunedCommand>,
}

/// Commands for a running daemon.
#[derive(Debug, Subcommand)]
pub enum TunedCommand {
    /// Ask the running ksmtuned to adjust KSM now (SIGUSR1).
    ///
    /// Finds the daemon by /run/ksmtuned/ksmtuned.pid, then
    /// /run/ksmtuned.pid, then by its process name in /proc.
    Retune {
        /// Pid file of the daemon, the only place looked at when given
        /// [default: as above, under the root].
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
    },
}

/// The pid file of a `--dry-run` daemon, so that it can run beside the
/// real one.
pub use crate::sample::services::DRY_RUN_PID_FILE;

/// Set up the stderr logger: no timestamps (journald adds them), and each
/// line's syslog priority when standard error is the journal
/// ([`crate::journal`]).
pub fn init_logger(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level).format(|f, r| {
        writeln!(
            f,
            "{}{}: {}",
            crate::journal::prefix(r.level()),
            r.level().as_str().to_lowercase(),
            r.args()
        )
    });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    let _ = b.try_init();
}

/// Run a parsed command line; returns the exit status.
pub fn main(cli: Cli) -> i32 {
    init_logger(cli.verbose);
    let root = Root::from_option(cli.root.clone());
    if let Err(e) = root.check() {
        error!("{e}");
        return 2;
    }
    let pid_path = |opt: &Option<PathBuf>| opt.clone().unwrap_or_else(|| root.join(TUNER_PID_FILE));
    if let Some(TunedCommand::Retune { pid_file }) = &cli.command {
        let path = pid_file.clone().or(cli.pid_file.clone());
        return retune("ksmtuned", &root, path.as_deref());
    }
    if let Some(file) = &cli.check_config {
        let explicit = if file.is_empty() {
            cli.config.clone()
        } else {
            Some(PathBuf::from(file))
        };
        return check_config(
            &root,
            explicit.as_deref(),
            config::Trust::for_this_process(cli.insecure_config),
            cli.strict,
        );
    }
    // A dry run keeps out of the real daemon's way by default.
    let pid_file = match (&cli.pid_file, cli.dry_run) {
        (None, true) => Some(root.join(DRY_RUN_PID_FILE)),
        (p, _) => p.clone(),
    };
    let opts = run::Options {
        config: cli.config.clone(),
        trust: config::Trust::for_this_process(cli.insecure_config),
        strict: cli.strict,
        policy: cli.policy,
        dry_run: cli.dry_run,
        interval: cli.interval_ms.map(std::time::Duration::from_millis),
        pid_file: pid_path(&pid_file),
    };
    match Daemon::start(&root, opts) {
        Ok(Some(mut d)) => match d.run_loop() {
            Ok(()) => 0,
            Err(e) => {
                error!("{e:#}");
                1
            }
        },
        Ok(None) => 0,
        Err(e) => {
            error!("{e:#}");
            if e.downcast_ref::<InvalidConfig>().is_some() {
                EXIT_CONFIG
            } else if denied(&e) {
                error!(
                    "access was refused (by file permissions, the sandbox or a security policy \
                     such as SELinux: `ausearch -m avc -ts recent`); not starting, and exiting \
                     with status {EXIT_NOPERM} so that systemd does not restart ksmtuned in a loop"
                );
                EXIT_NOPERM
            } else {
                1
            }
        }
    }
}

/// Whether a start-up error comes from a refusal (EACCES, EPERM, EROFS)
/// anywhere in its chain: restarting cannot help.
fn denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(pidfile::is_denied)
    })
}

/// `ksmtuned retune` / `ksmctl retune`: SIGUSR1 to the running daemon,
/// found by `pid_file` alone when one is named, else as
/// [`pidfile::find_daemon`] says. Errors are prefixed with `caller`, the
/// program the administrator ran (`ksmtuned` or `ksmctl`).
pub fn retune(caller: &str, root: &Root, pid_file: Option<&Path>) -> i32 {
    match pidfile::signal(root, pid_file, libc::SIGUSR1, "SIGUSR1") {
        Ok((pid, how)) => {
            if how.starts_with("from ") {
                println!("asked ksmtuned (pid {pid}) to retune");
            } else {
                println!("asked ksmtuned (pid {pid}, {how}) to retune");
            }
            0
        }
        Err(e) => {
            eprintln!("{caller}: {e}");
            1
        }
    }
}

/// The exit status of a daemon that does not start because its
/// configuration is invalid: EX_CONFIG of sysexits.h, listed in the unit's
/// `RestartPreventExitStatus=` so that systemd does not restart it in a
/// loop (a restart cannot fix the file).
pub const EXIT_CONFIG: i32 = 78;

/// The exit status of a daemon that does not start because access to
/// something it cannot do without (KSM's files, /proc/meminfo) was
/// refused: EX_NOPERM of sysexits.h, also in the unit's
/// `RestartPreventExitStatus=`: under a denial a restart fails the same
/// way every 5 s.
pub const EXIT_NOPERM: i32 = 77;

/// The daemon's configuration is invalid (exit status [`EXIT_CONFIG`]).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: not starting (check it with `ksmtuned --check-config{strict}`)")]
pub struct InvalidConfig {
    strict: &'static str,
}

/// `--check-config`: report every problem; 0 when valid. With `strict`,
/// warnings count as errors.
pub fn check_config(
    root: &Root,
    explicit: Option<&Path>,
    trust: config::Trust,
    strict: bool,
) -> i32 {
    let loaded = config::load(root, explicit, trust);
    // The file checked: the one named, else the default under the root.
    let name = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join(config::DEFAULT_CONFIG));
    let level = if strict { "error" } else { "warning" };
    for w in &loaded.warnings {
        eprintln!("{level}: {w}");
    }
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    let warned = if strict { loaded.warnings.len() } else { 0 };
    let errors = loaded.errors.len() + warned;
    if errors == 0 {
        let read: Vec<String> = loaded
            .drop_ins
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let what = if loaded.path.is_some() {
            "OK"
        } else {
            "not present, defaults apply: OK"
        };
        let also = if read.is_empty() {
            String::new()
        } else {
            format!(" (drop-ins read before it: {})", read.join(", "))
        };
        println!("{}: {what}{also}", name.display());
        let origin = match &loaded.policy_origin {
            Some(o) => format!("KSM_POLICY in {o}"),
            None => "the default: KSM_POLICY is not set".to_string(),
        };
        println!("policy: {} ({origin})", loaded.config.policy);
        if loaded.config.policy == PolicyKind::Classic {
            let (flavour, why) = config::flavour::resolve(root, loaded.config.flavour);
            println!("classic policy: flavour {flavour} ({why})");
        }
        let c = &loaded.config;
        if c.trust_domains.enabled() {
            println!(
                "trust domains: {} (cross-domain sharing: {}; audited every {} s)",
                c.trust_domains, c.cross_domain, c.domain_audit_interval
            );
        }
        0
    } else {
        let warnings = if warned > 0 {
            format!(" ({warned} of them warning(s), --strict)")
        } else {
            String::new()
        };
        eprintln!(
            "{}: {errors} error(s){warnings}; ksmtuned would refuse to start",
            name.display(),
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
