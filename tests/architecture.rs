//! The module map of docs/architecture.md holds: the top-level modules of
//! `src/` use each other only downwards (kernel -> config -> sample ->
//! policy -> the views), so there is no import cycle and nothing low
//! reaches up into a view. Test code and comments are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Layers from the bottom; a module may use its own layer's lower ones.
const LAYERS: &[&[&str]] = &[
    &["error", "root", "human", "journal"],
    &["kernel"],
    &["config"],
    &["sample"],
    &["policy"],
    // What ksmctl computes beyond the policies (estimate, doctor).
    &["estimate", "doctor"],
    // The one report every view renders (status, top, ps, metrics).
    &["report"],
    &["metrics"],
    &["daemon"],
    &["cli"],
    &["bench"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// `crate::NAME` references outside tests and comments.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let name = match name.as_str() {
                "Error" | "Result" => "error".to_string(),
                "Root" => "root".to_string(),
                _ => name,
            };
            out.insert(name);
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let top = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "bin" {
            continue;
        }
        let text = fs::read_to_string(f).unwrap();
        for used in uses(&text) {
            if used != top {
                edges.entry(top.clone()).or_default().insert(used);
            }
        }
    }
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        let lf = layer(from).unwrap_or_else(|| {
            panic!("src/{from} is in no layer of this test (and of docs/architecture.md)")
        });
        for to in tos {
            let lt = layer(to).unwrap_or_else(|| panic!("{from} uses crate::{to}: no such layer"));
            if lt > lf {
                wrong.push(format!("{from} (layer {lf}) uses {to} (layer {lt})"));
            }
        }
    }
    assert!(wrong.is_empty(), "upward uses:\n{}", wrong.join("\n"));
    // Within a layer two modules could still use each other.
    for (from, tos) in &edges {
        for to in tos {
            assert!(
                !edges.get(to).is_some_and(|t| t.contains(from)),
                "{from} and {to} use each other"
            );
        }
    }
}

#[test]
fn the_scanner_sees_uses() {
    let text = "use crate::kernel::ksm::Ksm;\n// crate::bench in a comment\nfn f() -> crate::Result<()> { crate::cli::x() }\n#[cfg(test)]\nmod t { use crate::daemon; }";
    let u = uses(text);
    assert_eq!(
        u.into_iter().collect::<Vec<_>>(),
        ["cli", "error", "kernel"]
    );
}

/// What the Debian package ships, `ksmctl` and `ksmtuned`, holds no test
/// support: their binaries use no `bench` (ksm-bench's, and the ksmd lock
/// and `Experiment` the tests take), which the layers above keep `cli` and
/// `daemon` from reaching too; the tests' probes and churn are
/// src/bin/ksm-testkit; and the package's assets list no other binary.
#[test]
fn shipped_binaries_hold_no_test_support() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for bin in ["ksmctl", "ksmtuned"] {
        let text = fs::read_to_string(root.join(format!("src/bin/{bin}.rs"))).unwrap();
        assert!(
            !text.contains("bench") && !text.contains("testkit"),
            "src/bin/{bin}.rs reaches test support"
        );
    }
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let shipped: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[\"target/release/"))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(shipped, ["ksmctl", "ksmtuned"], "binaries in the package");
}

/// No source file over 900 lines: split along the data instead.
#[test]
fn no_source_file_over_900_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut long = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let lines = fs::read_to_string(f).unwrap().lines().count();
        if lines > 900 {
            long.push(format!("src/{rel}: {lines} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "files over 900 lines:\n{}",
        long.join("\n")
    );
}
