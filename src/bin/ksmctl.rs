//! `ksmctl`: see [`ksmtuned::cli`].

use clap::Parser;

fn main() {
    ksmtuned::kernel::sys::default_sigpipe();
    let cli = ksmtuned::cli::Cli::parse();
    std::process::exit(ksmtuned::cli::run(cli));
}
