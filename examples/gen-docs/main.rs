//! Writes the man pages ksmctl.8 and ksmtuned.8 and the bash, zsh and fish
//! completions, generated from the CLI definitions, below a directory:
//!
//!     cargo run --example gen-docs [-- OUTDIR]     (default: target/assets)
//!
//! OUTDIR/man/*.8 and OUTDIR/completions/* are what the Debian package
//! (Cargo.toml, [package.metadata.deb]) and `make install` ship.

mod docgen;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/assets"));
    if args.next().is_some() {
        eprintln!("usage: gen-docs [OUTDIR]");
        return ExitCode::from(2);
    }
    match docgen::write_all(&out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-docs: {e}");
            ExitCode::FAILURE
        }
    }
}
