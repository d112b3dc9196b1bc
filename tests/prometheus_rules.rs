//! contrib/prometheus/ksm-rules.yml: promtool accepts it and its unit tests
//! (contrib/prometheus/ksm-rules.test.yml) pass; every alert is tested
//! firing and not firing; every metric the rules use is one that ksmctl,
//! ksmtuned or a real node_exporter exposes.

mod obs_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use obs_support::*;

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn contrib() -> std::path::PathBuf {
    rules_path().parent().unwrap().to_path_buf()
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    if !have_tool(
        "promtool_checks_the_rules_and_runs_their_unit_tests",
        "promtool",
        "Debian package prometheus",
    ) {
        return;
    }
    let (ok, out) = promtool(&["check", "rules", "ksm-rules.yml"], &contrib());
    assert!(ok, "promtool check rules ksm-rules.yml:\n{out}");
    // Our line reader of the file sees every rule promtool sees.
    let n = rules().len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "promtool counts other rules than the {n} read here:\n{out}"
    );
    let (ok, out) = promtool(&["test", "rules", "ksm-rules.test.yml"], &contrib());
    assert!(ok, "promtool test rules ksm-rules.test.yml:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let tests = std::fs::read_to_string(contrib().join("ksm-rules.test.yml")).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    let mut exprs_tested = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(name) = l.strip_prefix("alertname: ") {
            match lines.get(i + 1) {
                Some(&"exp_alerts: []") => quiet.insert(name),
                Some(&"exp_alerts:") => firing.insert(name),
                other => panic!("alertname: {name} is followed by {other:?}, not exp_alerts"),
            };
        }
        if let Some(e) = l.strip_prefix("- expr: ") {
            exprs_tested.insert(e);
        }
    }
    let rules = rules();
    let alerts: Vec<&str> = rules
        .iter()
        .filter(|r| r.0 == "alert")
        .map(|r| r.1.as_str())
        .collect();
    assert!(alerts.len() >= 5, "only {alerts:?}");
    for a in &alerts {
        assert!(firing.contains(a), "no unit test has {a} firing");
        assert!(quiet.contains(a), "no unit test has {a} not firing");
    }
    for r in rules.iter().filter(|r| r.0 == "record") {
        assert!(
            exprs_tested.contains(r.1.as_str()),
            "recording rule {} has no promql_expr_test",
            r.1
        );
    }
    // Every alert waits (`for:`), has a severity and runbook text.
    let text = std::fs::read_to_string(rules_path()).unwrap();
    for key in ["for: ", "severity: ", "summary: ", "description: ", "runbook: "] {
        let n = text
            .lines()
            .filter(|l| l.trim_start().starts_with(key))
            .count();
        assert_eq!(n, alerts.len(), "{} alerts but {n} {key:?} lines", alerts.len());
    }
}

#[test]
fn every_ksm_metric_and_recording_rule_the_rules_use_exists() {
    let rendered: BTreeSet<String> = families(&full_rendering()).into_iter().collect();
    let rules = rules();
    let records: BTreeSet<&str> = rules
        .iter()
        .filter(|r| r.0 == "record")
        .map(|r| r.1.as_str())
        .collect();
    let mut used = BTreeSet::new();
    for (kind, name, expr) in &rules {
        for m in metric_names(expr) {
            assert!(
                rendered.contains(&m),
                "{kind} {name} uses {m}, which ksmctl/ksmtuned do not render; they render {rendered:?}"
            );
            used.insert(m);
        }
        for r in recorded_names(expr) {
            assert!(
                records.contains(r.as_str()),
                "{kind} {name} uses {r}, which no rule records"
            );
        }
        for id in promql_identifiers(expr) {
            assert!(
                !id.starts_with("ksm:"),
                "{name}: recording rules are named level:metric:operations, not {id}"
            );
        }
    }
    for must in [
        "ksm_memory_saved_bytes",
        "ksm_general_profit_bytes",
        "ksm_ksmd_cpu_seconds_total",
        "ksm_run",
        "ksm_tuner_cycles_total",
    ] {
        assert!(used.contains(must), "the rules do not use {must}");
    }
    // The helpers see what they should.
    assert_eq!(
        recorded_names("sum(instance:ksm_x:max[5m:1m]) by (instance)"),
        ["instance:ksm_x:max"]
    );
}

#[test]
fn node_exporter_exposes_the_node_metrics_the_rules_use() {
    let test = "node_exporter_exposes_the_node_metrics_the_rules_use";
    if !have_tool(
        test,
        "prometheus-node-exporter",
        "Debian package prometheus-node-exporter",
    ) {
        return;
    }
    // A host writing `ksmctl metrics` for the textfile collector, as
    // docs/fleet.md shows, with node_exporter's memory collector.
    let dir = tempfile::tempdir().unwrap();
    let textfiles = dir.path().join("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    std::fs::write(textfiles.join("ksm.prom"), full_rendering()).unwrap();
    let body = node_exporter_scrape(&textfiles, &["meminfo"]);
    let exposed: BTreeSet<String> = families(&body).into_iter().collect();
    let mut used = BTreeSet::new();
    for (kind, name, expr) in rules() {
        for id in promql_identifiers(&expr) {
            if id.starts_with("node_") {
                assert!(
                    exposed.contains(&id),
                    "{kind} {name} uses {id}, which node_exporter does not expose"
                );
                used.insert(id);
            }
        }
    }
    assert!(
        used.contains("node_memory_MemAvailable_bytes") && used.contains("node_textfile_mtime_seconds"),
        "{used:?}"
    );
    // KsmMetricsStale matches the file label with (.*/)?ksm\.prom: this
    // node_exporter labels the file so.
    let file = body
        .lines()
        .filter(|l| l.starts_with("node_textfile_mtime_seconds{"))
        .find_map(|l| l.split("file=\"").nth(1)?.split('"').next())
        .unwrap_or_else(|| panic!("no node_textfile_mtime_seconds for ksm.prom:\n{body}"));
    assert!(
        file == "ksm.prom" || file.ends_with("/ksm.prom"),
        "node_exporter labels the file {file:?}"
    );
    // And the ksm_ series come through it.
    assert_eq!(value_of(&body, "node_textfile_scrape_error"), Some(0.0), "{body}");
    assert!(exposed.contains("ksm_memory_saved_bytes"));
}
