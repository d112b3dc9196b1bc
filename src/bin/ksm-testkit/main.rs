//! `ksm-testkit`: the processes the integration tests run against the real
//! kernel, a probe (memory that KSM can merge) and process churn. Test
//! support only: it is no part of `ksmctl` or `ksmtuned`, and the Debian
//! package does not ship it (`[package.metadata.deb]` assets). It is a
//! binary of this package, not a library module, so that the tests reach it
//! as `CARGO_BIN_EXE_ksm-testkit` (tests/support) and `cargo test` builds it.

mod churn;
mod probe;

use std::io::Write;

use clap::{Parser, Subcommand};

/// Processes for the tests on the real kernel.
#[derive(Debug, Parser)]
#[command(name = "ksm-testkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Map PAGES identical pages, opt them in, print "ready PID" and wait
    /// until standard input closes.
    Probe(probe::Args),
    /// Start and reap RATE short-lived processes per second until standard
    /// input closes (or SECONDS pass); print "ready PID" first and the
    /// count at the end.
    Churn(churn::Args),
}

fn main() {
    ksmtuned::kernel::sys::default_sigpipe();
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let res = match cli.command {
        Command::Probe(args) => probe::run(&args, &mut out),
        Command::Churn(args) => churn::run(&args, &mut out),
    };
    let _ = out.flush();
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ksm-testkit: {e:#}");
            std::process::exit(1);
        }
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
