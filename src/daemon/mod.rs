//! `ksmtuned`: the tuning daemon. This file is its command line and
//! one-shot commands (`retune`, `--check-config`); [`run`] is its loop
//! and cycle, [`debuglog`] the original's DEBUG/LOGFILE channel,
//! [`pidfile`] the single-instance lock.
//!
//! Transient errors (a refused write, an unreadable file) are logged once
//! and the loop goes on; configuration errors stop the start-up.

pub mod debuglog;
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
#[command(name = "ksmtuned", version)]
pub struct Cli {
    /// Configuration file [default: /etc/ksmtuned.conf under the root].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (FILE, or the one --config names), report
    /// every problem, and exit: 0 when it is valid, 1 otherwise.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub check_config: Option<String>,

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

    /// Pid file and single-instance lock [default: /run/ksmtuned.pid under
    /// the root; /run/ksmtuned.dry-run.pid with --dry-run].
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
    Retune {
        /// Pid file of the daemon [default: /run/ksmtuned.pid under the root].
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
    },
}

/// The pid file of a `--dry-run` daemon, so that it can run beside the
/// real one.
pub const DRY_RUN_PID_FILE: &str = "/run/ksmtuned.dry-run.pid";

/// Set up the stderr logger: no timestamps (journald adds them).
pub fn init_logger(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level)
        .format(|f, r| writeln!(f, "{}: {}", r.level().as_str().to_lowercase(), r.args()));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    let _ = b.try_init();
}

/// Run a parsed command line; returns the exit status.
pub fn main(cli: Cli) -> i32 {
    init_logger(cli.verbose);
    let root = Root::from_option(cli.root.clone());
    let pid_path = |opt: &Option<PathBuf>| opt.clone().unwrap_or_else(|| root.join(TUNER_PID_FILE));
    if let Some(TunedCommand::Retune { pid_file }) = &cli.command {
        let path = pid_file.clone().or(cli.pid_file.clone());
        return retune(&pid_path(&path));
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
        );
    }
    // A dry run keeps out of the real daemon's way by default.
    let pid_file = match (&cli.pid_file, cli.dry_run) {
        (None, true) => Some(root.join(DRY_RUN_PID_FILE)),
        (p, _) => p.clone(),
    };
    match Daemon::start(&root, &cli, pid_path(&pid_file)) {
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
            1
        }
    }
}

/// `ksmtuned retune` / `ksmctl retune`: SIGUSR1 to the running daemon.
pub fn retune(pid_file: &Path) -> i32 {
    match pidfile::signal(pid_file, libc::SIGUSR1) {
        Ok(pid) => {
            println!("asked ksmtuned (pid {pid}) to retune");
            0
        }
        Err(e) => {
            eprintln!("ksmtuned: {e}");
            1
        }
    }
}

/// `--check-config`: report every problem; 0 when valid.
pub fn check_config(root: &Root, explicit: Option<&Path>, trust: config::Trust) -> i32 {
    let loaded = config::load(root, explicit, trust);
    let name = loaded
        .path
        .clone()
        .unwrap_or_else(|| root.join(config::DEFAULT_CONFIG));
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    if loaded.is_ok() {
        if loaded.path.is_some() {
            println!("{}: OK", name.display());
        } else {
            println!("{}: not present, defaults apply: OK", name.display());
        }
        0
    } else {
        eprintln!(
            "{}: {} error(s); ksmtuned would refuse to start",
            name.display(),
            loaded.errors.len()
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
