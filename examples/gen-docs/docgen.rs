//! Man pages (clap_mangen) and shell completions (clap_complete) made from
//! the CLI definitions, `ksmtuned::cli::Cli` and `ksmtuned::daemon::Cli`.
//!
//! Shared by `cargo run --example gen-docs` (which writes the files the
//! package and `make install` ship) and by `tests/docs.rs` (which
//! regenerates them and checks them against `--help`, man(1) and the
//! shells), so the pages cannot drift from the options.
//!
//! One page per program: the synopsis, description and options of the
//! program, then a COMMANDS section with each subcommand's synopsis,
//! description and options, then hand-written sections (exit status,
//! signals, files, environment) whose paths come from the library's own
//! constants.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use ksmtuned::cli::service;
use ksmtuned::{config, daemon, root};

/// The programs that get a page and completions.
pub const PROGRAMS: [&str; 2] = ["ksmctl", "ksmtuned"];

/// The shells that get completions.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The clap command of a program.
pub fn command(program: &str) -> Command {
    match program {
        "ksmctl" => ksmtuned::cli::Cli::command(),
        "ksmtuned" => ksmtuned::daemon::Cli::command(),
        other => panic!("no such program {other:?} (known: {PROGRAMS:?})"),
    }
}

/// The subcommands documented in a page: the visible ones, without
/// clap's own `help`.
pub fn documented_subcommands(cmd: &Command) -> Vec<&Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect()
}

/// Where a file goes below the output directory.
pub fn completion_file(program: &str, shell: Shell) -> PathBuf {
    let name = match shell {
        Shell::Bash => format!("{program}.bash"),
        Shell::Zsh => format!("_{program}"),
        Shell::Fish => format!("{program}.fish"),
        other => panic!("no completion file name for {other}"),
    };
    Path::new("completions").join(name)
}

/// Where a man page goes below the output directory.
pub fn man_file(program: &str) -> PathBuf {
    Path::new("man").join(format!("{program}.8"))
}

/// Write every page and completion script below `out`; returns the files.
pub fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut put = |rel: PathBuf, bytes: Vec<u8>| -> io::Result<()> {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| named(e, dir))?;
        }
        fs::write(&path, bytes).map_err(|e| named(e, &path))?;
        written.push(path);
        Ok(())
    };
    for program in PROGRAMS {
        put(man_file(program), man_page(program)?)?;
        for shell in SHELLS {
            put(completion_file(program, shell), completion(program, shell))?;
        }
    }
    Ok(written)
}

fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The completion script of a program for a shell.
pub fn completion(program: &str, shell: Shell) -> Vec<u8> {
    let mut cmd = command(program);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, program, &mut out);
    if shell == Shell::Fish {
        fish_positional_values(&cmd, program, &mut out);
    }
    out
}

/// clap_complete's fish script offers no values for positional arguments
/// (bash and zsh get them): add a line per subcommand whose positional
/// argument has possible values (`ksmctl get`'s file names, `set`'s
/// `NAME=`).
fn fish_positional_values(cmd: &Command, program: &str, out: &mut Vec<u8>) {
    for sub in cmd.get_subcommands() {
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if values.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "complete -c {program} -n \"__fish_{program}_using_subcommand {}\" -f -a \"{}\"",
                sub.get_name(),
                values.join(" ")
            );
        }
    }
}

/// The roff source of a program's page, section 8.
pub fn man_page(program: &str) -> io::Result<Vec<u8>> {
    let mut cmd = command(program)
        .subcommand_value_name("COMMAND")
        .subcommand_help_heading("Commands");
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = |c: Command| {
        Man::new(c)
            .title(program.to_uppercase())
            .section("8")
            .source(format!("{program} {version}"))
            .manual("System Manager's Manual")
    };
    let top = man(cmd.clone());
    let mut out = Vec::new();
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    let mut roff = Roff::new();
    extra_description(program, &mut roff);
    roff.to_writer(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        top.render_options_section(&mut out)?;
    }
    let subs = documented_subcommands(&cmd);
    if !subs.is_empty() {
        writeln!(out, ".SH COMMANDS")?;
        for sub in subs {
            // Options inherited from the program (global ones, -h) are
            // documented once, under OPTIONS above.
            let mut sub = sub.clone();
            let inherited: Vec<String> = sub
                .get_arguments()
                .filter(|a| a.is_global_set() || a.get_id() == "help")
                .map(|a| a.get_id().to_string())
                .collect();
            for id in inherited {
                sub = sub.mut_arg(id, |a| a.hide(true));
            }
            let has_options = sub.get_arguments().any(|a| !a.is_hide_set());
            let page = man(sub.clone());
            let mut roff = Roff::new();
            roff.control("SS", [sub.get_name()]);
            roff.to_writer(&mut out)?;
            let mut body = Vec::new();
            page.render_synopsis_section(&mut body)?;
            roff = Roff::new();
            roff.control("PP", []);
            roff.to_writer(&mut body)?;
            page.render_description_section(&mut body)?;
            if has_options {
                page.render_options_section(&mut body)?;
            }
            // The sections' own .SH lines would end COMMANDS: drop them.
            for line in String::from_utf8_lossy(&body).lines() {
                if !line.starts_with(".SH ") {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    let mut roff = Roff::new();
    extra_sections(program, &mut roff);
    roff.to_writer(&mut out)?;
    Ok(out)
}

fn para(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.text([roman(text)]);
}

fn item(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(tag)]);
    roff.text([roman(text)]);
}

fn see_also(roff: &mut Roff, pages: &[(&str, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (name, section)) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(*name));
        line.push(roman(format!("({section})")));
    }
    roff.text(line);
}

fn extra_description(program: &str, roff: &mut Roff) {
    match program {
        "ksmctl" => {
            para(
                roff,
                "Kernel Samepage Merging (KSM) lets the kernel thread ksmd merge identical \
                 memory pages of programs that opted in (above all KVM guests) into one \
                 copy-on-write page. ksmctl is the ksm service of RHEL and Fedora as one \
                 program: ksm.service runs ksmctl start at boot and ksmctl stop at shutdown. \
                 It also reads and changes every file of /sys/kernel/mm/ksm, validating \
                 each value before anything is written.",
            );
        }
        "ksmtuned" => {
            para(
                roff,
                "ksmtuned is a drop-in for the ksmtuned daemon of RHEL, Fedora and Proxmox. \
                 Once at start and then every KSM_MONITOR_INTERVAL seconds it reads the free \
                 memory and the memory of the running QEMU guests, starts ksmd when the \
                 guests and a free-memory threshold would not fit into memory, stops it \
                 when they do, and raises or lowers pages_to_scan and sleep_millisecs in \
                 /sys/kernel/mm/ksm with the memory pressure. ksmtuned.conf(5) describes \
                 every setting.",
            );
            para(
                roff,
                "It runs in the foreground and logs to standard error. Under systemd \
                 (Type=notify) it reports READY after its first adjustment and a STATUS line \
                 every cycle. While another tuning daemon (for example the original shell \
                 script) runs, it writes nothing and waits. When ksm.service or \
                 ksmtuned.service is masked (a link to /dev/null, as tuned's realtime \
                 profiles leave them), it exits with status 0 at once.",
            );
        }
        _ => {}
    }
}

fn extra_sections(program: &str, roff: &mut Roff) {
    let ksm_dir = "/sys/kernel/mm/ksm/";
    match program {
        "ksmctl" => {
            roff.control("SH", ["EXIT STATUS"]);
            item(roff, "0", "Done; for status: KSM is running.");
            item(
                roff,
                "1",
                "Runtime error: no KSM (under the root), a file this kernel does not have, \
                 a write the kernel refused, a bad KSM_MAX_KERNEL_PAGES; for status: this \
                 kernel has no KSM.",
            );
            item(
                roff,
                "2",
                "Usage error: unknown command, option or key, or a value the setting cannot take.",
            );
            item(roff, "3", "status only: KSM is supported but stopped.");
            roff.control("SH", ["ENVIRONMENT"]);
            item(
                roff,
                root::ROOT_ENV,
                "Used as --root when that is not given.",
            );
            item(
                roff,
                service::MAX_KERNEL_PAGES_VAR,
                "For start, on 2.6.32-era kernels that limit KSM pages: the limit in pages \
                 (0 = unlimited; decimal, 0x hexadecimal or 0 octal). Read from the \
                 environment (ksm.service sets it from the files below), else from the \
                 files; unset or empty means half of the physical pages.",
            );
            roff.control("SH", ["FILES"]);
            item(roff, ksm_dir, "KSM's settings and counters.");
            for file in service::SERVICE_CONFIG_FILES {
                item(
                    roff,
                    file,
                    "Settings of the ksm service (KSM_MAX_KERNEL_PAGES); the first file that \
                     sets the variable wins.",
                );
            }
            item(
                roff,
                daemon::pidfile::TUNER_PID_FILE,
                "Pid file of ksmtuned, which retune signals.",
            );
            see_also(
                roff,
                &[
                    ("ksmtuned", "8"),
                    ("ksmtuned.conf", "5"),
                    ("systemctl", "1"),
                    ("madvise", "2"),
                    ("prctl", "2"),
                ],
            );
        }
        "ksmtuned" => {
            roff.control("SH", ["SIGNALS"]);
            item(
                roff,
                "SIGUSR1",
                "Adjust KSM now (what retune and the libvirt hook send); the next \
                 interval starts from then.",
            );
            item(
                roff,
                "SIGHUP",
                "Read the configuration file again, then adjust (systemctl reload \
                 ksmtuned). An invalid file is reported and the old settings stay.",
            );
            item(
                roff,
                "SIGTERM, SIGINT",
                "Exit, leaving KSM's run setting as it is.",
            );
            roff.control("SH", ["EXIT STATUS"]);
            item(
                roff,
                "0",
                "Clean exit on a signal; a valid configuration (--check-config); retune \
                 delivered; a masked unit.",
            );
            item(
                roff,
                "1",
                "An invalid configuration, no KSM in this kernel, another ksmtuned holding \
                 the pid file, or (retune) no running ksmtuned.",
            );
            item(roff, "2", "Usage error.");
            roff.control("SH", ["ENVIRONMENT"]);
            item(
                roff,
                root::ROOT_ENV,
                "Used as --root when that is not given.",
            );
            item(roff, "RUST_LOG", "Log filter (e.g. debug), overriding -v.");
            item(
                roff,
                "NOTIFY_SOCKET, WATCHDOG_USEC",
                "Set by systemd: readiness and status notifications, watchdog pings.",
            );
            roff.control("SH", ["FILES"]);
            item(
                roff,
                config::DEFAULT_CONFIG,
                "The configuration, see ksmtuned.conf(5).",
            );
            item(
                roff,
                daemon::pidfile::TUNER_PID_FILE,
                "Pid file and single-instance lock (an exclusive flock held while running).",
            );
            item(
                roff,
                daemon::DRY_RUN_PID_FILE,
                "The same, for --dry-run, so that a dry run can watch beside the real daemon.",
            );
            item(roff, ksm_dir, "KSM's settings, written by the daemon.");
            item(
                roff,
                "/etc/libvirt/hooks/qemu.d/ksmtuned",
                "libvirt hook: runs ksmtuned retune when a guest has started or was released.",
            );
            see_also(
                roff,
                &[
                    ("ksmtuned.conf", "5"),
                    ("ksmctl", "8"),
                    ("systemd.service", "5"),
                ],
            );
        }
        _ => {}
    }
    // The kernel's own documentation, for both.
    roff.text([
        roman("The kernel's documentation: "),
        italic("Documentation/admin-guide/mm/ksm.rst"),
        roman("."),
    ]);
}
