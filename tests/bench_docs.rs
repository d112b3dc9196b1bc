//! The `ksm-bench` tables in docs/ksm-bench.md are the real output of the
//! runs recorded beside them: each table follows a marker
//! `<!-- ksm-bench report: FILE.json -->` naming the `--json` file the run
//! wrote (kept in docs/bench/), and must be exactly what that report
//! renders; the figures in the report must be what its samples give.

use std::path::{Path, PathBuf};

use ksmtuned::bench::report::{self, Report};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// (json file, the console block after the marker) for every marker.
fn tables(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("<!-- ksm-bench report: ") {
        rest = &rest[i + "<!-- ksm-bench report: ".len()..];
        let end = rest.find(" -->").expect("unterminated marker");
        let file = rest[..end].to_string();
        let open = rest
            .find("```console\n")
            .expect("no console block after the marker")
            + 11;
        let close = open + rest[open..].find("```").expect("unterminated block");
        out.push((file, rest[open..close].to_string()));
        rest = &rest[close..];
    }
    out
}

/// Equal, numbers within a relative 1e-9 (a float read back from JSON may
/// differ in its last bit).
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| close(v, w))
        }
        _ => a == b,
    }
}

#[test]
fn bench_tables_are_what_the_recorded_reports_render() {
    let doc = std::fs::read_to_string(repo("docs/ksm-bench.md")).unwrap();
    let tables = tables(&doc);
    assert!(tables.len() >= 2, "expected the before and after tables");
    for (file, shown) in tables {
        let path = repo("docs/bench").join(&file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r: Report = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a ksm-bench report: {e}", path.display()));
        let rendered = r.render();
        if shown != rendered {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{file}.txt"));
            std::fs::write(&out, &rendered).unwrap();
            panic!(
                "docs/ksm-bench.md shows another table than {file} renders (written to {})",
                out.display()
            );
        }
        // The figures are the samples' (where the samples were kept).
        for t in &r.tuners {
            let (Some(f), false) = (&t.figures, t.samples.is_empty()) else {
                continue;
            };
            let again = report::figures(
                &t.samples,
                &r.workload.attainable,
                r.host.page_size_bytes,
                &r.limits,
                r.machine.ideal_s,
            );
            let (a, b) = (
                serde_json::to_value(&again).unwrap(),
                serde_json::to_value(f).unwrap(),
            );
            assert!(close(&a, &b), "{file}: {}: {a} != {b}", t.spec.name);
        }
    }
}
