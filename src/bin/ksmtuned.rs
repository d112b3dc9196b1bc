//! `ksmtuned`: see [`ksmtuned::daemon`].

use clap::Parser;

fn main() {
    ksmtuned::kernel::sys::default_sigpipe();
    let cli = ksmtuned::daemon::Cli::parse();
    std::process::exit(ksmtuned::daemon::main(cli));
}
