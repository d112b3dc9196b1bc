//! `ksm-bench`: see [`ksmtuned::bench`].

use clap::Parser;

fn main() {
    ksmtuned::kernel::sys::default_sigpipe();
    let cli = ksmtuned::bench::Cli::parse();
    std::process::exit(ksmtuned::bench::main(cli));
}
