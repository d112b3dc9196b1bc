//! contrib/grafana/ksm-dashboard.json uses exactly the metric names that
//! are rendered and the recording rules of contrib/prometheus/ksm-rules.yml,
//! in expressions that Prometheus parses, for one host or many.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

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
            !names.is_empty() || !recorded_names(e).is_empty() || e.contains("ALERTS{"),
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
        "ksm_tuner_max_cpu_ratio",
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

#[test]
fn dashboard_serves_one_host_and_many() {
    let d = dashboard();
    let (mut exprs, mut queries) = (Vec::new(), Vec::new());
    expressions(&d, &mut exprs, &mut queries);
    // The Host variable: several hosts at once, or all.
    let vars = d["templating"]["list"].as_array().unwrap();
    let host = vars
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("no instance variable");
    assert_eq!(host["multi"], true, "{host}");
    assert_eq!(host["includeAll"], true, "{host}");
    assert_eq!(host["allValue"], ".*", "{host}");
    // Every panel follows the selection.
    for e in &exprs {
        assert!(
            e.contains(r#"instance=~"$instance""#),
            "{e:?} does not follow the Host variable"
        );
    }
    // Every recording rule used is one the rules file records.
    let records: BTreeSet<String> = rules()
        .into_iter()
        .filter(|r| r.0 == "record")
        .map(|r| r.1)
        .collect();
    let mut used = BTreeSet::new();
    for e in &exprs {
        for r in recorded_names(e) {
            assert!(
                records.contains(&r),
                "the dashboard uses {r} (in {e:?}), which contrib/prometheus/ksm-rules.yml does not record"
            );
            used.insert(r);
        }
    }
    // Fleet totals, and the top hosts by savings and by ksmd CPU.
    let has = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    assert!(
        has("sum(instance:ksm_memory_saved_bytes:max"),
        "no fleet total of memory saved"
    );
    assert!(
        has("sum(instance:ksm_ksmd_cpu_seconds:rate5m"),
        "no fleet total of ksmd CPU"
    );
    assert!(
        has("topk(10, instance:ksm_memory_saved_bytes:max"),
        "no top hosts by savings"
    );
    assert!(
        has("topk(10, instance:ksm_ksmd_cpu_seconds:rate5m"),
        "no top hosts by ksmd CPU"
    );
    // The first row is the fleet's.
    let panels = d["panels"].as_array().unwrap();
    assert_eq!(panels[0]["type"], "row");
    assert!(panels[0]["title"].as_str().unwrap().starts_with("Fleet"));
}
