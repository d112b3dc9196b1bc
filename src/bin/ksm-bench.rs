//! `ksm-bench`: see [`ksmtuned::bench`].

use clap::Parser;

fn main() {
    ksmtuned::sys::default_sigpipe();
    let cli = ksmtuned::bench::Cli::parse();
    std::process::exit(ksmtuned::bench::main(cli));
}
