//! contrib/grafana/ksm-dashboard.json uses exactly the metric names that
//! are rendered, in expressions that Prometheus parses.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use ksmtuned::metrics::{collect, render, TunerMetrics, DEFAULT_TOP};
use ksmtuned::Root;
use serde_json::Value;
use support::*;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/ksm-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("reading the dashboard");
    serde_json::from_str(&text).expect("the dashboard is not valid JSON")
}

/// Every PromQL expression of the panels, and the variables' queries.
fn expressions(v: &Value, exprs: &mut Vec<String>, queries: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match (k.as_str(), val) {
                    ("expr", Value::String(s)) => exprs.push(s.clone()),
                    ("definition", Value::String(s)) => queries.push(s.clone()),
                    _ => expressions(val, exprs, queries),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| expressions(x, exprs, queries)),
        _ => {}
    }
}

/// The `ksm_` identifiers of an expression (quoted strings skipped).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let mut in_quote = None;
    while let Some(c) = chars.next() {
        if let Some(q) = in_quote {
            if c == '\\' {
                chars.next();
            } else if c == q {
                in_quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if word.starts_with("ksm_") {
            out.push(word.clone());
        }
        word.clear();
        if c == '"' || c == '\'' || c == '`' {
            in_quote = Some(c);
        }
    }
    if word.starts_with("ksm_") {
        out.push(word);
    }
    out
}

fn full_rendering() -> String {
    let tuner = TunerMetrics {
        policy: "classic".into(),
        state: "running".into(),
        pages_to_scan: Some(1250),
        sleep_ms: Some(10),
        adjustments: 3,
        retunes: 1,
        reloads: 1,
        errors: 0,
        last_adjustment: Some(UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
        cycles: 40,
        cycles_skipped: 0,
        interval: Some(Duration::from_secs(60)),
        cycle_delay: Some(Duration::from_millis(1)),
        cycle_delay_max: Duration::from_millis(3),
        cycle_duration: Some(Duration::from_millis(2)),
    };
    let sample = collect(&Root::new(fixture_root())).unwrap();
    render(&sample, Some(&tuner), DEFAULT_TOP).unwrap()
}

#[test]
fn every_metric_of_the_dashboard_is_rendered() {
    let (mut exprs, mut queries) = (Vec::new(), Vec::new());
    expressions(&dashboard(), &mut exprs, &mut queries);
    assert!(exprs.len() >= 30, "only {} expressions found", exprs.len());
    assert!(!queries.is_empty(), "no variable queries found");
    let rendered: BTreeSet<String> = families(&full_rendering()).into_iter().collect();
    let mut used = BTreeSet::new();
    for e in exprs.iter().chain(&queries) {
        let names = metric_names(e);
        assert!(
            !names.is_empty() || e.starts_with("time()"),
            "no metric in {e:?}"
        );
        for n in names {
            assert!(
                rendered.contains(&n),
                "the dashboard uses {n} (in {e:?}), which is not rendered; rendered: {rendered:?}"
            );
            used.insert(n);
        }
    }
    // The dashboard covers the main families.
    for must in [
        "ksm_memory_saved_bytes",
        "ksm_general_profit_bytes",
        "ksm_pages_sharing",
        "ksm_ksmd_cpu_seconds_total",
        "ksm_process_merging_pages",
        "ksm_tuner_adjustments_total",
    ] {
        assert!(used.contains(must), "the dashboard does not show {must}");
    }
    assert_eq!(
        metric_names(r#"a{x="ksm_no"} + ksm_yes_total"#),
        ["ksm_yes_total"]
    );
}

#[test]
fn dashboard_expressions_parse_as_promql() {
    let (mut exprs, mut queries) = (Vec::new(), Vec::new());
    expressions(&dashboard(), &mut exprs, &mut queries);
    // Each expression as a recording rule: promtool parses them all.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("running promtool (Debian package prometheus; scripts/test installs it)");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboard_panels_are_well_formed() {
    let d = dashboard();
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id in {p}");
        let w = p["gridPos"]["w"].as_u64().unwrap();
        let x = p["gridPos"]["x"].as_u64().unwrap();
        assert!(x + w <= 24, "panel {} is wider than the grid", p["title"]);
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{t}");
        }
    }
    assert_eq!(d["uid"], "ksm-ksmtuned");
}
