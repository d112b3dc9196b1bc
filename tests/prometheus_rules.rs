//! contrib/prometheus/ksm-rules.yml: promtool accepts it and its unit tests
//! (contrib/prometheus/ksm-rules.test.yml) pass; every alert is tested
//! firing and not firing; every metric the rules use is one that ksmctl,
//! ksmtuned or a real node_exporter exposes.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

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
    for key in [
        "for: ",
        "severity: ",
        "summary: ",
        "description: ",
        "runbook: ",
    ] {
        let n = text
            .lines()
            .filter(|l| l.trim_start().starts_with(key))
            .count();
        assert_eq!(
            n,
            alerts.len(),
            "{} alerts but {n} {key:?} lines",
            alerts.len()
        );
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
        "ksm_tuner_max_cpu_ratio",
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
        used.contains("node_memory_MemAvailable_bytes")
            && used.contains("node_textfile_mtime_seconds"),
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
    assert_eq!(
        value_of(&body, "node_textfile_scrape_error"),
        Some(0.0),
        "{body}"
    );
    assert!(exposed.contains("ksm_memory_saved_bytes"));
}

/// The scrape configuration of docs/fleet.md (its YAML block with
/// `scrape_configs:`).
fn docs_scrape_config() -> String {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fleet.md"))
        .expect("reading docs/fleet.md");
    docs.split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("scrape_configs:"))
        .expect("docs/fleet.md has no ```yaml block with scrape_configs:")
        .to_string()
}

/// Prometheus's HTTP API: the result vector of an instant query.
fn prom_query(port: u16, query: &str) -> Result<Vec<serde_json::Value>, String> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut enc = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    let r = http_get(addr, &format!("/api/v1/query?query={enc}")).map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
    if v["status"] != "success" {
        return Err(r.body);
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn sample_value(v: &serde_json::Value) -> f64 {
    v["value"][1].as_str().unwrap().parse().unwrap()
}

/// A real Prometheus with the scrape configuration of docs/fleet.md (its
/// targets pointed at this machine), the rules, a ksmtuned serving the
/// fixture host's metrics, and a real node_exporter: the relabelled
/// `instance` joins the two, the recording rules produce every series
/// (the CPU budget is the adaptive ksmtuned's KSM_MAX_CPU),
/// and every expression of the dashboard's Fleet row returns data.
#[test]
fn prometheus_runs_the_docs_config_with_the_rules_and_feeds_the_fleet_row() {
    let test = "prometheus_runs_the_docs_config_with_the_rules_and_feeds_the_fleet_row";
    if !have_tool(test, "prometheus", "Debian package prometheus")
        || !have_tool(
            test,
            "prometheus-node-exporter",
            "Debian package prometheus-node-exporter",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // ksmtuned on a copy of the fixture host, a dry run serving its metrics.
    let root = dir.path().join("root");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(fixture_root())
        .arg(&root)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::write(
        root.join("proc/meminfo"),
        "MemTotal: 16777216 kB\nMemFree: 8388608 kB\nMemAvailable: 8388608 kB\n\
         Buffers: 0 kB\nCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
    )
    .unwrap();
    let tuned_port = free_port();
    let conf = dir.path().join("ksmtuned.conf");
    std::fs::write(
        &conf,
        // The adaptive policy, to see its CPU budget reach the rules.
        format!(
            "KSM_POLICY=adaptive\nKSM_MAX_CPU=30\nKSM_MONITOR_INTERVAL=3600\n\
             KSM_METRICS_LISTEN=127.0.0.1:{tuned_port}\n"
        ),
    )
    .unwrap();
    let tuned = Command::new(env!("CARGO_BIN_EXE_ksmtuned"))
        .arg("--root")
        .arg(&root)
        .arg("--config")
        .arg(&conf)
        .arg("--dry-run")
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("ksmtuned.log")).unwrap())
        .spawn()
        .expect("starting ksmtuned");
    let _tuned = Kill(tuned);
    // node_exporter with its memory collector (the real host's meminfo).
    let node_port = free_port();
    let node = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
        .args(["--collector.disable-defaults", "--collector.meminfo"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting prometheus-node-exporter");
    let _node = Kill(node);

    // The docs' configuration: targets here, everything every second.
    let mut config = docs_scrape_config()
        .replace("/etc/prometheus/ksm-rules.yml", "ksm-rules.yml")
        .replace(
            "scrape_interval: 30s",
            "scrape_interval: 1s\n  evaluation_interval: 1s",
        )
        .replace(
            "['kvm1.example.org:9926', 'kvm2.example.org:9926']",
            &format!("['127.0.0.1:{tuned_port}']"),
        )
        .replace(
            "['kvm1.example.org:9100', 'kvm2.example.org:9100']",
            &format!("['127.0.0.1:{node_port}']"),
        );
    assert!(
        !config.contains("example.org"),
        "targets left in:\n{config}"
    );
    config = config.replacen("global:\n", "global:\n  scrape_timeout: 1s\n", 1);
    std::fs::write(dir.path().join("prometheus.yml"), &config).unwrap();
    let rules = std::fs::read_to_string(rules_path())
        .unwrap()
        .replace("interval: 1m", "interval: 1s");
    std::fs::write(dir.path().join("ksm-rules.yml"), rules).unwrap();
    let port = free_port();
    let prom = Command::new("prometheus")
        .arg("--config.file=prometheus.yml")
        .arg("--storage.tsdb.path=data")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("starting prometheus");
    let _prom = Kill(prom);
    let logs = || {
        ["prometheus.log", "ksmtuned.log"]
            .iter()
            .map(|f| {
                format!(
                    "--- {f}:\n{}",
                    std::fs::read_to_string(dir.path().join(f)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The join by instance works once both jobs are scraped and the
    // rules have run (rates need two scrapes of the counter).
    let headroom = poll_until(Duration::from_secs(60), || {
        let h = prom_query(port, "instance:ksm_unmerge_headroom_bytes").ok()?;
        let c = prom_query(port, "instance:ksm_ksmd_cpu_seconds:rate5m").ok()?;
        (!h.is_empty() && !c.is_empty()).then_some(h)
    })
    .unwrap_or_else(|| panic!("no instance:ksm_unmerge_headroom_bytes in 60 s\n{}", logs()));
    assert_eq!(headroom.len(), 1, "{headroom:?}");
    assert_eq!(
        headroom[0]["metric"]["instance"], "127.0.0.1",
        "{headroom:?}"
    );
    let saved = prom_query(port, "fleet:ksm_memory_saved_bytes:sum").unwrap();
    let rendered = value_of(&full_rendering(), "ksm_memory_saved_bytes").unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        sample_value(&saved[0]),
        rendered,
        "the fixture host's memory saved"
    );
    // The host's own budget, KSM_MAX_CPU=30 (the rules' unit tests cover
    // the default for hosts without one).
    let budget = prom_query(port, "instance:ksm_ksmd_cpu_budget:ratio").unwrap();
    assert_eq!(budget.len(), 1, "{budget:?}");
    assert_eq!(sample_value(&budget[0]), 0.3, "{budget:?}");
    let up = prom_query(port, r#"up{job="ksmtuned"}"#).unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(sample_value(&up[0]), 1.0);
    // Every recording rule has a value.
    for (kind, name, _) in support::rules() {
        if kind == "record" {
            let r = prom_query(port, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!r.is_empty(), "no series for {name}\n{}", logs());
        }
    }
    // The dashboard: every expression runs; the Fleet row's return data.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/grafana/ksm-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let r = prom_query(port, &e).unwrap_or_else(|err| panic!("{e}: {err}"));
            if !recorded_names(&e).is_empty() {
                assert!(
                    !r.is_empty(),
                    "panel {} ({e}) has no data\n{}",
                    p["title"],
                    logs()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} fleet expressions");
    // No KSM alert fires for this healthy host.
    let alerts = prom_query(port, r#"ALERTS{alertname=~"Ksm.*"}"#).unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");
}
