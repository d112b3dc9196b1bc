//! The JSON of `ksmctl status`, `ps`, `get`, `doctor` and `estimate` is a stable
//! interface, documented in docs/schema/ksmctl.schema.json (and
//! docs/json.md): every output over every fixture tree and on this host
//! validates against it, and the schema lists every KSM file.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::KSMCTL;

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/ksmctl.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A validator of one of the schema's definitions.
fn validator(def: &str) -> jsonschema::Validator {
    let s = schema();
    let wrapped = json!({
        "$schema": s["$schema"],
        "$defs": s["$defs"],
        "$ref": format!("#/$defs/{def}"),
    });
    jsonschema::validator_for(&wrapped).unwrap()
}

fn output(root: Option<&Path>, args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(KSMCTL);
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    let o = cmd.args(args).env_remove("KSM_ROOT").output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} under {root:?}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn roots() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut roots: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("sys").is_dir())
        .collect();
    roots.sort();
    assert!(roots.len() >= 5, "{roots:?}");
    roots
}

#[test]
fn every_output_validates() {
    let mut checked = 0;
    let host = Path::new("/sys/kernel/mm/ksm").is_dir();
    if !host {
        eprintln!("SKIPPED (host part only): this host has no KSM");
    }
    let mut places: Vec<Option<PathBuf>> = roots().into_iter().map(Some).collect();
    if host {
        places.push(None);
    }
    for root in &places {
        for (def, args) in [
            ("status", &["status", "--json"][..]),
            ("ps", &["ps", "--json"]),
            ("ps", &["ps", "--all", "--json"]),
            ("get", &["get", "--json"]),
            ("doctor", &["doctor", "--json"]),
        ] {
            // A fixture of /sys alone has no processes to list.
            let has_proc = root.as_ref().is_none_or(|r| r.join("proc").is_dir());
            if matches!(def, "ps" | "doctor") && !has_proc {
                continue;
            }
            let v = output(root.as_deref(), args);
            let errors: Vec<String> = validator(def)
                .iter_errors(&v)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{args:?} under {root:?} does not match $defs/{def}:\n{}\n{v:#}",
                errors.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}

#[test]
fn the_schema_lists_every_file_under_the_kernels_name() {
    let s = schema();
    for f in ksmtuned::kernel::ksm::FILES {
        for def in ["status", "get"] {
            assert!(
                s["$defs"][def]["properties"][f.name].is_object(),
                "$defs/{def} lacks {}",
                f.name
            );
        }
        if f.legacy_key != f.name {
            assert_eq!(
                s["$defs"]["status"]["properties"][f.legacy_key]["deprecated"], true,
                "{}",
                f.legacy_key
            );
        }
    }
    // Every property is described.
    for (name, def) in s["$defs"].as_object().unwrap() {
        for (key, p) in def["properties"].as_object().into_iter().flatten() {
            if p.get("$ref").is_none() && p.get("items").is_none() {
                assert!(
                    p["description"].is_string(),
                    "{name}.{key} has no description"
                );
            }
        }
    }
}

/// `ksmctl estimate --json` (with its matrices) on this host, over a probe
/// with zero, unique and duplicate pages: it reads process memory, so it
/// needs root and runs here only, not over the fixture trees.
#[test]
fn estimate_output_validates() {
    if ksmtuned::kernel::sys::euid() != 0 || !Path::new("/proc/kpageflags").exists() {
        eprintln!(
            "SKIPPED: estimate_output_validates: the estimate needs root and /proc/kpageflags"
        );
        return;
    }
    let p = support::Probe::with_args(&[
        "--pages",
        "256",
        "--zero-pages",
        "32",
        "--unique-pages",
        "16",
    ]);
    let v = output(
        None,
        &["estimate", "--json", "--matrix", &p.pid.to_string()],
    );
    let errors: Vec<String> = validator("estimate")
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "estimate --json does not match $defs/estimate:\n{}\n{v:#}",
        errors.join("\n")
    );
    assert_eq!(v["processes"].as_array().unwrap().len(), 1, "{v:#}");
    // The zero-only what-if: the probe's 32 all-zero pages at most (ksmd,
    // not held here, may have merged some into a KSM page meanwhile).
    let page = v["page_size_bytes"].as_u64().unwrap();
    let zero_only = v["zero_only_saved_bytes"].as_u64().unwrap();
    assert!(zero_only <= 32 * page, "{v:#}");
    assert_eq!(
        v["processes"][0]["zero_only_bytes"].as_u64(),
        Some(zero_only)
    );
}

/// A copy of the linux-6.18 fixture tree to add the daemon's files to, and
/// the time now (seconds since 1970).
fn fixture_copy() -> (tempfile::TempDir, u64) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux-6.18");
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&fixture, dir.path());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (dir, now)
}

/// `status --json` with ksmtuned's last background estimate: on a copy of
/// a fixture tree whose `/run/ksmtuned/estimate.json` is a minute old.
#[test]
fn status_with_an_estimate_validates() {
    let (dir, now) = fixture_copy();
    let e = ksmtuned::sample::last_estimate::LastEstimate {
        finished_unix_seconds: now - 60,
        interval_seconds: 3600,
        saved_bytes: 3 << 30,
        saved_error_bytes: 100 << 20,
        to_gain_bytes: 1 << 30,
        zero_only_saved_bytes: 1 << 29,
        scanned_bytes: 8 << 30,
        sample: 16,
        cpu_seconds: 4.5,
        elapsed_seconds: 45.0,
    };
    e.write(&ksmtuned::Root::new(dir.path())).unwrap();
    let v = output(Some(dir.path()), &["status", "--json"]);
    let errors: Vec<String> = validator("status")
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}\n{v:#}", errors.join("\n"));
    assert_eq!(v["estimate"]["to_gain_bytes"], 1 << 30, "{v:#}");
    // Two intervals later it is stale: not shown.
    ksmtuned::sample::last_estimate::LastEstimate {
        finished_unix_seconds: now - 7300,
        ..e
    }
    .write(&ksmtuned::Root::new(dir.path()))
    .unwrap();
    let v = output(Some(dir.path()), &["status", "--json"]);
    assert!(v.get("estimate").is_none(), "{v:#}");
}

/// `status --json`, `ps --json` and the text views with ksmtuned's last
/// cross-domain audit holding KSM (KSM_CROSS_DOMAIN=refuse): on a copy of
/// a fixture tree whose `/run/ksmtuned/domains.json` names its process.
#[test]
fn status_and_ps_with_a_domain_audit() {
    use ksmtuned::sample::last_audit::{DomainAudit, DomainPair, LastAudit, Refusal};
    let (dir, now) = fixture_copy();
    let pair = DomainPair {
        a: "/tenant-a".into(),
        b: "/tenant-b".into(),
        shared_bytes: 2 << 20,
    };
    let last = LastAudit {
        policy: "refuse".into(),
        interval_seconds: 300,
        audit: DomainAudit {
            trust_domains: "cgroup:1".into(),
            pairs: vec![pair.clone()],
            cross_domain_bytes: 2 << 20,
            ksm_bytes: 10 << 20,
            domains: [("/tenant-a".to_string(), vec!["vm1".to_string()])].into(),
            process_domains: [(4242, "/tenant-a".to_string())].into(),
            processes_scanned: 2,
            pages_examined: 5000,
            timestamp_seconds: now as f64 - 30.0,
            duration_seconds: 0.2,
            cpu_seconds: 0.02,
        },
        refusal: Some(Refusal {
            since_unix_seconds: now - 30,
            pairs: vec![pair],
            cross_domain_bytes: 2 << 20,
            saved_bytes_given_up: Some(8 << 20),
            unmerged: true,
        }),
    };
    // Its process merges pages.
    std::fs::write(
        dir.path().join("proc/4242/ksm_stat"),
        "ksm_rmap_items 600\nksm_zero_pages 0\nksm_merging_pages 512\nksm_process_profit 1900000\n",
    )
    .unwrap();
    let root = ksmtuned::Root::new(dir.path());
    last.write(&root).unwrap();
    for (def, args) in [
        ("status", &["status", "--json"][..]),
        ("ps", &["ps", "--json"][..]),
    ] {
        let v = output(Some(dir.path()), args);
        let errors: Vec<String> = validator(def)
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{def}: {}\n{v:#}", errors.join("\n"));
        let audit = if def == "ps" {
            let row = &v["processes"][0];
            assert_eq!(
                (row["pid"].as_u64(), &row["domain"]),
                (Some(4242), &json!("/tenant-a"))
            );
            assert_eq!(row["shares_with"], json!(["/tenant-b"]), "{v:#}");
            &v["domain_audit"]
        } else {
            &v["domain_audit"]
        };
        assert_eq!(audit["refusal"]["saved_bytes_given_up"], 8 << 20, "{v:#}");
    }
    let text = |args: &[&str]| {
        let o = std::process::Command::new(KSMCTL)
            .arg("--root")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let status = text(&["status"]);
    assert!(
        status.contains(
            "Trust domains:  (by cgroup:1, ksmtuned's audit 30 s ago): /tenant-a and /tenant-b \
             share 2.00 MiB."
        ) || status.contains("ksmtuned's audit 31 s ago"),
        "{status}"
    );
    assert!(
        status.contains(
            "Held:           KSM held stopped by ksmtuned (KSM_CROSS_DOMAIN=refuse): /tenant-a and \
             /tenant-b shared pages; every page was unmerged, giving up 8.00 MiB saved, until \
             `systemctl reload ksmtuned`."
        ),
        "{status}"
    );
    let ps = text(&["ps"]);
    let row = ps.lines().nth(1).unwrap();
    assert!(row.ends_with("[shares across domains: /tenant-b]"), "{ps}");
    // Without a hold, an audit two intervals old is not shown.
    LastAudit {
        refusal: None,
        audit: DomainAudit {
            timestamp_seconds: now as f64 - 700.0,
            ..last.audit.clone()
        },
        ..last
    }
    .write(&root)
    .unwrap();
    assert!(output(Some(dir.path()), &["status", "--json"])
        .get("domain_audit")
        .is_none());
    assert!(!text(&["ps"]).contains("shares across"));
}
