//! `ksmctl`: see [`ksmtuned::ctl`].

use clap::Parser;

fn main() {
    ksmtuned::sys::default_sigpipe();
    let cli = ksmtuned::ctl::Cli::parse();
    std::process::exit(ksmtuned::ctl::run(cli));
}
