//! The `ksm-bench` tables in docs/benchmark.md are the real output of the
//! runs recorded beside them: each table follows a marker `<!-- not
//! checked: ...; tests/bench_docs.rs checks it against docs/bench/FILE.json
//! -->` (tests/readme.rs cannot rerun a benchmark) naming the `--json` file
//! the run wrote, and must be exactly what that report renders; the figures in the report must be what its samples give. The
//! rows of the sprint table, which start with a report's name, give that
//! report's figures.

use std::path::{Path, PathBuf};

use ksmtuned::bench::report::{self, Report};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// (json file, the text block after the marker) for every marker.
fn tables(doc: &str) -> Vec<(String, String)> {
    const MARK: &str = "tests/bench_docs.rs checks it against docs/bench/";
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(MARK) {
        rest = &rest[i + MARK.len()..];
        let end = rest.find(" -->").expect("unterminated marker");
        let file = rest[..end].to_string();
        let open = rest
            .find("```text\n")
            .expect("no text block after the marker")
            + 8;
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
    let doc = std::fs::read_to_string(repo("docs/benchmark.md")).unwrap();
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
                "docs/benchmark.md shows another table than {file} renders (written to {})",
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

fn fig(r: &Report, tuner: &str, f: impl Fn(&report::Figures) -> Option<f64>, unit: &str) -> String {
    let v = r
        .tuners
        .iter()
        .find(|t| t.spec.name == tuner)
        .and_then(|t| t.figures.as_ref())
        .and_then(f);
    match (v, unit) {
        (None, _) => "-".to_string(),
        (Some(v), "s1") => format!("{v:.1} s"),
        (Some(v), "s2") => format!("{v:.2} s"),
        (Some(v), _) => format!("{v:.1}%"),
    }
}

#[test]
fn sprint_rows_are_the_reports_figures() {
    let doc = std::fs::read_to_string(repo("docs/benchmark.md")).unwrap();
    let mut rows = 0;
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains(".json`"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let file = cells[0].trim_matches('`');
        let path = repo("docs/bench").join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r: Report = serde_json::from_str(&text).unwrap();
        let want = [
            fig(&r, "max-rate", |f| f.t90_s, "s1"),
            fig(&r, "adaptive", |f| f.t90_s, "s1"),
            fig(&r, "adaptive", |f| f.ksmd_cpu_s_per_gib, "s2"),
            fig(&r, "adaptive", |f| f.peak_10s_ksmd_cpu_pct, "%"),
        ];
        assert_eq!(&cells[1..], &want[..], "docs/benchmark.md row for {file}");
        rows += 1;
    }
    assert!(rows >= 8, "expected the sprint table's rows, found {rows}");
}

/// The benchmark's figures quoted in prose (the README, docs/design.md,
/// ksmtuned.conf(5)) are those of the recorded default run, so the
/// documents cannot tell different stories.
#[test]
fn quoted_figures_are_the_recorded_default_run() {
    let text = std::fs::read_to_string(repo("docs/bench/default-after.json")).unwrap();
    let r: Report = serde_json::from_str(&text).unwrap();
    let s1 = |t: &str, f: fn(&report::Figures) -> Option<f64>| fig(&r, t, f, "s1");
    let s2 = |t: &str, f: fn(&report::Figures) -> Option<f64>| fig(&r, t, f, "s2");
    let pct = |t: &str, f: fn(&report::Figures) -> Option<f64>| {
        let v = r
            .tuners
            .iter()
            .find(|x| x.spec.name == t)
            .and_then(|x| x.figures.as_ref())
            .and_then(f)
            .unwrap();
        format!("{v:.2}%")
    };
    let (a90, c90) = (s1("adaptive", |f| f.t90_s), s1("classic", |f| f.t90_s));
    let (a_gib, c_gib) = (
        s2("adaptive", |f| f.ksmd_cpu_s_per_gib),
        s2("classic", |f| f.ksmd_cpu_s_per_gib),
    );
    let (rest, worst, c_rest, c_worst) = (
        pct("adaptive", |f| f.rest_ksmd_cpu_pct),
        pct("adaptive", |f| f.rest_worst_5s_ksmd_cpu_pct),
        pct("classic", |f| f.rest_ksmd_cpu_pct),
        pct("classic", |f| f.rest_worst_5s_ksmd_cpu_pct),
    );
    let quotes = [
        (
            "README.md",
            format!("saving in {a90} where classic took {c90}"),
        ),
        (
            "README.md",
            format!("rested at {rest} of a core (worst 5 s: {worst}) against classic's {c_rest}"),
        ),
        ("docs/design.md", format!("| {a90}: ")),
        ("docs/design.md", format!("classic ({c90})")),
        ("docs/design.md", format!("| {a_gib}: classic {c_gib}")),
        (
            "docs/design.md",
            format!("{rest} average, worst 5 s {worst} (classic {c_rest} and {c_worst}"),
        ),
        (
            "man/ksmtuned.conf.5",
            format!("in {a90} for {a_gib} of ksmd CPU per GiB"),
        ),
        ("man/ksmtuned.conf.5", format!("(classic: {c90}, {c_gib})")),
    ];
    for (file, quote) in &quotes {
        let doc = std::fs::read_to_string(repo(file)).unwrap();
        // Prose wraps: compare with the line breaks as spaces.
        let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            doc.contains(quote.as_str()),
            "{file} does not say {quote:?}"
        );
    }
}

/// The estimate-cost table of docs/estimate.md is what its run's JSON
/// (docs/bench/estimate-cost.json) renders.
#[test]
fn estimate_cost_table_is_its_json() {
    const MARK: &str = "tests/bench_docs.rs renders docs/bench/estimate-cost.json -->";
    let doc = std::fs::read_to_string(repo("docs/estimate.md")).unwrap();
    let at = doc
        .find(MARK)
        .expect("no estimate-cost table marker in docs/estimate.md")
        + MARK.len();
    let open = at
        + doc[at..]
            .find("```text\n")
            .expect("no text block after the marker")
        + 8;
    let close = open + doc[open..].find("```").unwrap();
    let r: ksmtuned::bench::estimate_cost::CostReport =
        serde_json::from_slice(&std::fs::read(repo("docs/bench/estimate-cost.json")).unwrap())
            .unwrap();
    assert!(r.release_build, "the recorded run is the release build's");
    assert_eq!(&doc[open..close], r.render());
}
