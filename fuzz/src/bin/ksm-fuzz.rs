//! AFL++ harness: `ksm-fuzz TARGET`, input on standard input (or files, as
//! afl-fuzz passes them). The targets are in `fuzz/targets.rs`.

#[path = "../../targets.rs"]
mod targets;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(&(_, target)) = targets::TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = targets::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: ksm-fuzz TARGET (one of: {})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
