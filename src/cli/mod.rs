//! `ksmctl`: the `ksm` service and KSM's settings from the command line.
//!
//! The argument definitions live here (not in the binary) so that tests,
//! man pages and completions reach the same [`Cli`].

pub mod estimate;
pub mod ps;
pub mod service;
pub mod status;
pub mod top;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::human;
use crate::kernel::ksm::{AdvisorMode, File, Kind, Knob, Ksm, Run, Setting, SettingValue, FILES};
use crate::kernel::sys;
use crate::report::{KsmRun, Report};
use crate::root::Root;
use crate::sample::{Parts, Sampler};

/// Start, stop and inspect the kernel's samepage merging (KSM).
#[derive(Debug, Parser)]
#[command(
    name = "ksmctl",
    version,
    after_help = "Exit status: 0 ok, 1 runtime error (no KSM, a write the kernel refused, \
                  an unmerge refused), 2 usage error (unknown key, invalid value); `status`: \
                  0 running, 3 stopped, 1 not supported; `doctor`: 0 nothing needs attention, \
                  4 a finding needs attention, 1 the check failed.",
    after_long_help = "Exit status: 0 ok; 1 runtime error (no KSM under the root, a write the \
                       kernel refused such as EBUSY or EACCES, a bad KSM_MAX_KERNEL_PAGES, an \
                       unmerge refused because the memory would not fit); 2 \
                       usage error (an unknown command, option or key; a value the setting cannot \
                       take, such as run=3, pages_to_scan=abc, or a read-only counter); 3 from \
                       `status` only: KSM is supported but stopped (the init script convention, \
                       not an error); 4 from `doctor` only: a finding \
                       needs attention.\n\n\
                       Every command reads /sys/kernel/mm/ksm under --root (or $KSM_ROOT), so it \
                       can be tried on a copy such as the fixture trees in tests/fixtures. A file \
                       this kernel does not have is absent (null in JSON), never an error when \
                       reading. Changing settings needs root; reading does not, except \
                       /proc/PID/ksm_stat (ps, top, metrics' per-process figures)."
)]
pub struct Cli {
    /// Resolve /sys and /proc under this directory instead of / (also $KSM_ROOT).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start ksmd, as the ksm service does (KSM_MAX_KERNEL_PAGES on kernels that have the limit, then run=1).
    ///
    /// On kernels that have max_kernel_pages (the 2.6.32 era) it writes
    /// KSM_MAX_KERNEL_PAGES there first. The variable comes from the
    /// environment (systemd's EnvironmentFile=), else from /etc/sysconfig/ksm
    /// or /etc/default/ksm under the root; decimal, 0x hex and 0 octal are
    /// accepted, 0 means unlimited, unset or empty means half of the physical
    /// pages. A bad value stops start before anything is written, naming
    /// where it came from. On newer kernels a set variable earns one note.
    Start,
    /// Stop ksmd (run=0); merged pages stay merged.
    Stop,
    /// Stop ksmd and unmerge every merged page (run=2); can take a while.
    /// Refused when the memory that comes back (what KSM saves now) exceeds
    /// MemAvailable plus free swap, unless --force.
    Unmerge {
        /// Unmerge even when the host cannot take the memory back (the
        /// out-of-memory killer makes up the difference).
        #[arg(long)]
        force: bool,
    },
    /// Check why KSM is or is not merging here, what it costs and how risky
    /// an unmerge would be (each finding: what was seen, why, what to do;
    /// see docs/troubleshooting.md). Exit status: 0 nothing needs
    /// attention, 4 a finding needs attention, 1 the check failed.
    Doctor {
        /// Print JSON: {"attention": bool, "findings": [{"id", "severity",
        /// "seen", "why", "what_to_do", "numbers"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Show whether KSM runs, what it saves and how it is set.
    /// Exit status: 0 running, 3 stopped, 1 not supported.
    ///
    /// Memory saved = (pages_sharing + ksm_zero_pages) x page size; general
    /// profit is the kernel's figure after KSM's own metadata (negative:
    /// KSM costs more than it saves). Sharing ratio = pages_sharing /
    /// pages_shared; unshared ratio = pages_unshared / pages_sharing. The
    /// scanner's rate is the most ksmd scans with these settings
    /// (pages_to_scan every sleep_millisecs). Tuner: a running ksmtuned
    /// (ours or the original), found by its pid file and by process
    /// name; a `ksmtuned --dry-run` is listed as "dry run: writes nothing".
    /// Other writer: a running libvirtd or virtqemud, through which `virsh
    /// node-memory-tune` writes pages_to_scan, sleep_millisecs and
    /// merge_across_nodes. --json gives every field as a raw integer, keys carrying their units;
    /// null means this kernel does not have that file.
    Status {
        /// Print JSON (raw integers, unit-carrying keys).
        #[arg(long)]
        json: bool,
    },
    /// Print KSM settings and counters (all present ones when no KEY is given).
    ///
    /// Without keys: every file this kernel has, settings first, then
    /// counters. A named file this kernel does not have is printed as
    /// "absent" (null with --json), with exit status 0; a name no kernel has
    /// is a usage error (exit 2).
    Get {
        /// File names in /sys/kernel/mm/ksm, e.g. pages_to_scan.
        #[arg(value_parser = KsmNames { settings: false }, hide_possible_values = true)]
        keys: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change KSM settings, each validated before anything is written.
    ///
    /// All values are checked first; one bad value and nothing is written.
    /// advisor_mode is written first (switching it resets pages_to_scan),
    /// run last; pages_to_scan is refused while the kernel's scan-time
    /// advisor owns it. merge_across_nodes and max_page_sharing change only
    /// while no page is merged: without --unmerge the kernel's EBUSY is
    /// explained; with it, ksmctl remembers run, unmerges (run=2), writes,
    /// and restores run. A refused write names the file, the value and what
    /// the errno means for KSM.
    Set {
        /// Settings as KEY=VALUE, e.g. pages_to_scan=500 sleep_millisecs=20.
        #[arg(required = true, value_name = "KEY=VALUE",
              value_parser = KsmNames { settings: true }, hide_possible_values = true)]
        settings: Vec<String>,
        /// For merge_across_nodes and max_page_sharing: unmerge all pages
        /// first (run=2), set the value, then restore run. Refused when the
        /// memory that comes back exceeds MemAvailable plus free swap,
        /// unless --force.
        #[arg(long)]
        unmerge: bool,
        /// With --unmerge or run=2: unmerge even when the host cannot take
        /// the memory back (run=2 is refused like --unmerge otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Run a program with its whole memory opted in to KSM
    /// (prctl PR_SET_MEMORY_MERGE, Linux 6.4+).
    Exec {
        /// The program and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Ask the running ksmtuned to adjust KSM now (SIGUSR1), e.g. after
    /// starting or stopping guests.
    ///
    /// Finds the daemon by /run/ksmtuned/ksmtuned.pid, then
    /// /run/ksmtuned.pid (earlier packages), then by its process
    /// name in /proc (a daemon that could not create its pid file). A
    /// refused signal says so (EACCES: a security policy such as SELinux;
    /// EPERM: run it as root). Exit status 1 when no daemon was signalled.
    Retune {
        /// Pid file of the daemon, the only place looked at when given
        /// [default: as above, under the root].
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
    },
    /// Print KSM's metrics once in the Prometheus text format
    /// (for node_exporter's textfile collector).
    ///
    /// Names start with ksm_ and carry their unit (_bytes, _seconds,
    /// _ratio; sleep_millisecs becomes ksm_sleep_seconds); the kernel's
    /// cumulative counters and ksmd's CPU time end in _total. Besides one
    /// family per kernel file: ksm_memory_saved_bytes, ksm_general_profit_bytes,
    /// ksm_page_size_bytes, ksm_supported, ksm_advisor_mode{mode},
    /// ksm_build_info{version}, and for the processes with the most merging
    /// pages (--top) one family per line of /proc/PID/ksm_stat
    /// (ksm_process_merging_pages, ksm_process_zero_pages,
    /// ksm_process_profit_bytes, ksm_process_rmap_items, and on 6.14+
    /// ksm_process_merge_any and ksm_process_mergeable, 0 or 1), labelled
    /// pid, comm and guest. Write it atomically for the textfile collector:
    /// ksmctl metrics > DIR/ksm.prom.tmp && mv DIR/ksm.prom.tmp DIR/ksm.prom.
    Metrics {
        /// Processes with the most merging pages to include.
        #[arg(long, value_name = "N", default_value_t = crate::metrics::DEFAULT_TOP)]
        top: usize,
    },
    /// Show which processes KSM merges pages of, sorted by merged pages, with totals.
    ///
    /// MERGING: pages of the process mapped to KSM pages; ZERO: pages mapped
    /// to the zero page (use_zero_pages); MERGED: that memory; PROFIT: the
    /// kernel's estimate of the gain (merged memory minus KSM's 64-byte rmap
    /// item per scanned page; it can be negative); RMAP: rmap items; OPT-IN:
    /// prctl (the whole process) or madvise (some mappings), or for a guest
    /// KSM cannot merge, why (no: mem-merge=off, no: nothing opted in).
    /// Every QEMU guest is listed, merged or not; GUEST is its name from
    /// -name, on Proxmox VE "VMID (NAME)" from -id and -name. With trust
    /// domains audited by ksmtuned (KSM_TRUST_DOMAINS), a process whose
    /// domain shares KSM pages with another ends its row with [shares
    /// across domains: OTHER], and a line under the totals names the
    /// pairs (--json: domain and shares_with per process, domain_audit).
    /// /proc/PID/ksm_stat is readable by root only. --json prints raw integers with units in the
    /// key names.
    Ps {
        /// Only these processes (shown whatever KSM does with them).
        #[arg(value_name = "PID")]
        pids: Vec<u32>,
        /// Only QEMU guests (processes named qemu-kvm, qemu-system-*, qemu:NAME, kvm).
        #[arg(long)]
        guests: bool,
        /// Print JSON (raw integers, unit-carrying keys).
        #[arg(long)]
        json: bool,
        /// Also show processes KSM scans but has merged nothing of.
        #[arg(long)]
        all: bool,
    },
    /// Watch KSM live, full screen: savings, ksmd's CPU use, processes
    /// (keys: q quit, s sort, + and - refresh rate).
    Top {
        /// Seconds between refreshes, from 0.1 to 3600.
        #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = top::parse_interval)]
        interval: f64,
    },
    /// Estimate what KSM would save here, for which processes and guests,
    /// and what it would cost, before running it.
    #[command(after_help = estimate::AFTER_HELP)]
    Estimate(estimate::Args),
}

/// A mistake in the command line's values (an unknown key, a value the
/// setting cannot take): exit status 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Run a parsed command line; returns the process exit status: 0 ok,
/// 1 runtime error, 2 usage error (3 from `status`: stopped).
pub fn run(cli: Cli) -> i32 {
    let root = Root::from_option(cli.root);
    let result = match root.check() {
        Ok(()) => dispatch(&root, cli.command),
        Err(e) => Err(usage(e)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "{}ksmctl: {}",
                crate::journal::when_journal(crate::journal::ERR),
                message(&e)
            );
            if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// The error and its causes, `: `-separated; the chain stops after one of
/// the library's errors, whose message already says what its I/O source
/// said (anyhow's `{:#}` would repeat "Permission denied (os error 13)").
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, cause) in e.chain().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
        if cause.downcast_ref::<crate::Error>().is_some() {
            break;
        }
    }
    out
}

fn dispatch(root: &Root, command: Command) -> anyhow::Result<i32> {
    let ksm = Ksm::new(root);
    let mut out = std::io::stdout().lock();
    match command {
        Command::Start => {
            let env = std::env::var(service::MAX_KERNEL_PAGES_VAR).ok();
            let report = service::start(root, &ksm, env)?;
            if let Some(note) = report.note {
                eprintln!(
                    "{}ksmctl: {note}",
                    crate::journal::when_journal(crate::journal::NOTICE)
                );
            }
            if let Some(n) = report.max_kernel_pages {
                let what = if n == 0 {
                    "unlimited".to_string()
                } else {
                    format!("{n} pages")
                };
                writeln!(out, "max_kernel_pages set to {what}")?;
            }
            Ok(0)
        }
        Command::Stop => {
            service::stop(&ksm)?;
            Ok(0)
        }
        Command::Unmerge { force } => {
            let state = ksm.read()?;
            unmerge_rail(root, &state, force)?;
            let saved = state.saved_bytes(sys::page_size());
            let merged = state.saved_pages() > 0 || state.pages_shared.unwrap_or(0) > 0;
            if merged {
                writeln!(
                    out,
                    "Unmerging {} pages: their processes will use {} more memory. \
                     This can take a while.",
                    human::count(state.saved_pages()),
                    human::ubytes(saved)
                )?;
                out.flush()?;
            }
            ksm.set_run(Run::Unmerge)?;
            if merged {
                writeln!(out, "Done: ksmd stopped, no pages merged.")?;
            } else {
                writeln!(out, "No pages were merged; ksmd stopped (run=2).")?;
            }
            Ok(0)
        }
        Command::Status { json } => {
            // The processes too: what KSM's huge-page splits freed outside
            // its counters is counted in their mergeable memory.
            let sample = Sampler::new(
                root,
                Parts {
                    split_freed: crate::sample::Split::Always,
                    last_estimate: true,
                    last_audit: true,
                    ..Parts::default()
                },
            )
            .take()?;
            let (mut tuners, mut writers) = (Vec::new(), Vec::new());
            if sample.ksm.is_some() {
                tuners = service::running_tuners(root);
                tuners.extend(service::dry_run_tuners(root));
                writers = service::other_writers(root);
            }
            let report = Report::build(&sample, None, tuners).with_other_writers(writers);
            if json {
                serde_json::to_writer_pretty(&mut out, &report.status_json())?;
                writeln!(out)?;
            } else if report.run == KsmRun::Unsupported {
                // Name the directory actually looked at (under --root).
                writeln!(
                    out,
                    "KSM:            not supported ({} does not exist: kernel built without CONFIG_KSM)",
                    ksm.dir().display()
                )?;
            } else {
                write!(out, "{}", status::render(&report))?;
            }
            Ok(report.run.exit_code())
        }
        Command::Get { keys, json } => get(&ksm, &keys, json, &mut out),
        Command::Set {
            settings,
            unmerge,
            force,
        } => set(root, &ksm, &settings, (unmerge, force), &mut out),
        Command::Doctor { json } => crate::doctor::command(root, json, &mut out),
        Command::Exec { command } => exec(&command),
        Command::Retune { pid_file } => {
            Ok(crate::daemon::retune("ksmctl", root, pid_file.as_deref()))
        }
        Command::Metrics { top } => crate::metrics::command(root, top, &mut out),
        Command::Ps {
            pids,
            guests,
            json,
            all,
        } => crate::cli::ps::command(
            root,
            &crate::cli::ps::Select { pids, guests, all },
            json,
            &mut out,
        ),
        Command::Top { interval } => crate::cli::top::command(root, interval),
        Command::Estimate(args) => estimate::command(root, &args, &mut out),
    }
}

/// The words of `get` and `set`: any string (the commands check them and
/// name what is known), with the KSM file names (for `set`, the settings
/// as `NAME=`) offered to the shell completions.
#[derive(Debug, Clone, Copy)]
struct KsmNames {
    settings: bool,
}

impl clap::builder::TypedValueParser for KsmNames {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let settings = self.settings;
        Some(Box::new(
            FILES
                .iter()
                .filter(move |f| !settings || f.knob.is_some())
                .map(move |f| {
                    clap::builder::PossibleValue::new(if settings {
                        // One string per setting, made once per completion
                        // script (clap's names are &'static str).
                        &*Box::leak(format!("{}=", f.name).into_boxed_str())
                    } else {
                        f.name
                    })
                }),
        ))
    }
}

fn get(ksm: &Ksm, keys: &[String], json: bool, out: &mut impl Write) -> anyhow::Result<i32> {
    ksm.require()?;
    let names: Vec<&str> = if keys.is_empty() {
        FILES.iter().map(|f| f.name).collect()
    } else {
        for k in keys {
            if File::named(k).is_none() {
                return Err(usage(format!(
                    "unknown KSM file {k:?}; known: {}",
                    FILES.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        keys.iter().map(String::as_str).collect()
    };
    // A file this kernel does not have is absent, not an error: `null` in
    // JSON, "absent" in text (named keys only; the listing of all keys
    // shows what the kernel has).
    let mut values: Vec<(&str, Option<String>)> = Vec::new();
    for name in names {
        match ksm.read_raw(name)? {
            Some(v) => values.push((name, Some(v))),
            None if keys.is_empty() => {}
            None => values.push((name, None)),
        }
    }
    if json {
        let map: serde_json::Map<String, serde_json::Value> = values
            .into_iter()
            .map(|(k, v)| {
                let Some(v) = v else {
                    return (k.to_string(), serde_json::Value::Null);
                };
                let val = match v.parse::<i64>() {
                    Ok(n) => n.into(),
                    Err(_) => match k {
                        "advisor_mode" => crate::kernel::ksm::AdvisorMode::parse_selection(&v)
                            .map(|m| m.to_string())
                            .unwrap_or(v)
                            .into(),
                        _ => v.into(),
                    },
                };
                (k.to_string(), val)
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &map)?;
        writeln!(out)?;
    } else {
        let width = values.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in values {
            match v {
                Some(v) => writeln!(out, "{k:<width$} = {v}")?,
                None => writeln!(out, "{k:<width$}   absent (this kernel has no such file)")?,
            }
        }
    }
    Ok(0)
}

/// The rail: refuse to unmerge when the memory that would come back does
/// not fit in MemAvailable + free swap (see [`crate::doctor::rails`]),
/// unless forced. Also refused when /proc/meminfo cannot be read; nothing
/// saved, nothing to refuse.
fn unmerge_rail(
    root: &Root,
    state: &crate::kernel::ksm::KsmState,
    force: bool,
) -> anyhow::Result<()> {
    use crate::doctor::rails::{refuse_unmerge, Headroom};
    if force || state.saved_pages() == 0 {
        return Ok(());
    }
    let mem = crate::kernel::meminfo::MemInfo::read(root).context(
        "refusing to unmerge without knowing whether the memory fits (add --force to unmerge anyway)",
    )?;
    let h = Headroom::new(state, &mem, sys::page_size());
    match refuse_unmerge(&h) {
        Some(msg) => bail!("{msg}"),
        None => Ok(()),
    }
}

fn set(
    root: &Root,
    ksm: &Ksm,
    raw: &[String],
    (unmerge, force): (bool, bool),
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    ksm.require()?;
    // Validate everything before writing anything.
    let mut settings = Vec::new();
    for s in raw {
        let setting = Setting::parse_assignment(s).map_err(|e| {
            let key = s.split('=').next().unwrap_or(s).trim();
            if File::named(key).is_some_and(|f| f.kind != Kind::Setting) {
                usage(format!(
                    "{key} is a read-only counter, not a setting (see `ksmctl get {key}`)"
                ))
            } else {
                usage(e.to_string())
            }
        })?;
        if !ksm.path(setting.knob.name()).exists() {
            bail!(
                "this kernel has no {} ({} does not exist)",
                setting.knob,
                ksm.path(setting.knob.name()).display()
            );
        }
        settings.push(setting);
    }
    // advisor_mode first (switching it resets pages_to_scan), run last (the
    // settings are in place before ksmd starts); the rest in the given order.
    settings.sort_by_key(|s| match s.knob {
        Knob::AdvisorMode => 0,
        Knob::Run => 2,
        _ => 1,
    });
    if settings.iter().any(|s| s.knob == Knob::PagesToScan) {
        let mode = settings
            .iter()
            .rev()
            .find_map(|s| match s.value {
                SettingValue::Mode(m) if s.knob == Knob::AdvisorMode => Some(m),
                _ => None,
            })
            .or(ksm.read()?.advisor_mode);
        if mode == Some(AdvisorMode::ScanTime) {
            bail!(
                "cannot set pages_to_scan while the kernel's scan-time advisor chooses it \
                 (advisor_mode = scan-time; the kernel would refuse with EINVAL): \
                 add advisor_mode=none to the same command to take it over; nothing was written"
            );
        }
    }
    let unmerges = settings
        .iter()
        .any(|s| (unmerge && s.knob.needs_unmerge()) || *s == Setting::run(Run::Unmerge));
    if unmerges {
        unmerge_rail(root, &ksm.read()?, force)?;
    }
    for setting in settings {
        if unmerge && setting.knob.needs_unmerge() {
            ksm.write_with_unmerge(setting)
                .with_context(|| format!("setting {setting} with unmerge"))?;
            writeln!(out, "{setting} (after unmerging all pages; run restored)")?;
        } else {
            ksm.write(setting)?;
            writeln!(out, "{setting}")?;
        }
    }
    Ok(0)
}

fn exec(command: &[String]) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| usage("no command given"))?;
    if let Err(e) = sys::set_memory_merge(true) {
        if e.raw_os_error() == Some(libc::EINVAL) {
            bail!(
                "this kernel cannot opt a whole process in to KSM \
                 (prctl PR_SET_MEMORY_MERGE needs Linux 6.4 or later, built with CONFIG_KSM)"
            );
        }
        if e.raw_os_error() == Some(libc::EPERM) {
            bail!(
                "prctl(PR_SET_MEMORY_MERGE) was refused: it needs CAP_SYS_RESOURCE (run as root)"
            );
        }
        bail!("prctl(PR_SET_MEMORY_MERGE) failed: {e}");
    }
    let err = std::process::Command::new(prog).args(args).exec();
    bail!("cannot run {prog:?}: {err}")
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
