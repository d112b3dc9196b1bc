//! Replays every file of `fuzz/corpus/<target>/` through its fuzz target:
//! the inputs the fuzzer found interesting stay regression tests, and any
//! crash it found (and we fixed) must not come back.

use std::fs;
use std::path::Path;

#[path = "../fuzz/targets.rs"]
mod targets;

#[test]
fn every_corpus_file_replays_without_panic() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in targets::TARGETS {
        let dir = base.join(name);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 3,
            "{}: the corpus of {name} has only {} files",
            dir.display(),
            files.len()
        );
        for f in &files {
            let data = fs::read(f).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{name}: {} panics: {msg}", f.display());
            }
        }
        eprintln!("{name}: {} corpus files replayed", files.len());
    }
}

/// The targets themselves catch what they must: a parser that accepted
/// nonsense would trip their invariants (this keeps the replay honest).
#[test]
fn targets_check_invariants() {
    // Valid inputs run through every check without tripping it.
    targets::config_file(b"KSM_NPAGES_MIN=10\nKSM_NPAGES_MAX=20\nKSM_MONITOR_INTERVAL=1\n");
    targets::sysfs_value(b"[none] scan-time\n");
    targets::sysfs_value(b"pages_to_scan=100");
    targets::meminfo(b"MemTotal: 10 kB\nMemFree: 5 kB\n");
    // Invalid UTF-8 is refused before any parser, as read_to_string does.
    targets::config_file(&[0xff, 0xfe, b'=']);
}
