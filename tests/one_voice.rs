//! One voice: every command names, counts and advises the same way, and
//! what it says is true (issue 29). Over the fixture trees, as an
//! administrator would run the commands.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{fixture_root, KSMCTL, KSMTUNED};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(bin: &str, args: &[&str]) -> Out {
    let o = Command::new(bin)
        .args(args)
        .env_remove("KSM_ROOT")
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ksmctl(root: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--root", root.to_str().unwrap()];
    all.extend_from_slice(args);
    run(KSMCTL, &all)
}

fn json(root: &Path, args: &[&str]) -> Value {
    let o = ksmctl(root, args);
    assert!(o.code == 0 || o.code == 3, "{args:?}: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", o.stdout))
}

/// Usage errors exit 2, whatever the command: a value out of range is one
/// as much as a value that is not a number; a root that does not exist is
/// named as such, not taken for a kernel without KSM.
#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    for args in [
        &["top", "--interval", "0"][..],
        &["top", "--interval", "abc"],
        &["top", "--interval", "99999"],
    ] {
        let o = run(KSMCTL, args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("0.1 to 3600"), "{args:?}: {}", o.stderr);
    }
    for bin in [KSMCTL, KSMTUNED] {
        let args: &[&str] = if bin == KSMCTL {
            &["--root", "/nonexistent", "status"]
        } else {
            &["--root", "/nonexistent", "--check-config"]
        };
        let o = run(bin, args);
        assert_eq!(o.code, 2, "{bin} {args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("root /nonexistent") && !o.stderr.contains("CONFIG_KSM"),
            "{}",
            o.stderr
        );
    }
}

/// A candidate file under a world-writable directory: the advice is about
/// the file (move it), never to change the directory, and
/// `--insecure-config` lets a validation step check it where it is.
#[test]
fn advice_about_an_insecure_directory_is_about_the_file() {
    let dir = tempfile::Builder::new()
        .prefix("one-voice")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let conf = dir.path().join("ksmtuned.conf");
    std::fs::write(&conf, "KSM_POLICY=adaptive\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = conf.to_str().unwrap();
    let o = run(KSMTUNED, &["--check-config", c]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let d = dir.path().display().to_string();
    assert!(
        o.stderr.contains(&format!("move {c} to one"))
            && o.stderr
                .contains(&format!("--insecure-config --check-config {c}"))
            && !o.stderr.contains(&format!("chmod go-w {d}")),
        "{}",
        o.stderr
    );
    let o = run(KSMTUNED, &["--insecure-config", "--check-config", c]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains(&format!("{c}: OK")), "{}", o.stdout);
    assert!(o
        .stderr
        .contains("read anyway because of --insecure-config"));
}

/// `status --json`'s figures are the kernel's files, and the sums add up.
#[test]
fn status_json_matches_the_files() {
    let root = fixture_root();
    let v = json(&root, &["status", "--json"]);
    let get = json(&root, &["get", "--json"]);
    for (key, old) in [
        ("pages_sharing", "sharing_pages"),
        ("pages_shared", "shared_pages"),
        ("sleep_millisecs", "sleep_ms"),
    ] {
        assert_eq!(v[old], get[key], "{old} vs get's {key}");
    }
}

/// `ps` and `top` call the per-process figure MERGED; `ps`'s sums are not
/// the host's saving and profit, and it says so with `status`'s figures.
#[test]
fn ps_names_its_sums_and_gives_the_hosts_figures() {
    let root = fixture_root();
    let status = ksmctl(&root, &["status"]).stdout;
    let field = |label: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {status}"));
        line[label.len()..]
            .split("  (")
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    let (saved, profit) = (field("Memory saved:"), field("General profit:"));
    let ps = ksmctl(&root, &["ps"]).stdout;
    assert!(ps.lines().next().unwrap().contains(" MERGED "), "{ps}");
    let note = ps.lines().last().unwrap();
    assert!(
        note.contains(&format!(
            "the host saves {saved}, its general profit {profit}"
        )),
        "{note} vs status's {saved} / {profit}"
    );
    // The JSON says the same in numbers: the processes' merged bytes
    // exceed what the host saves by the KSM pages themselves.
    let s = json(&root, &["status", "--json"]);
    let p = json(&root, &["ps", "--json"]);
    let page = s["page_size_bytes"].as_u64().unwrap();
    let n = |v: &Value| v.as_u64().unwrap();
    let merging = n(&p["total"]["ksm_merging_pages"]);
    assert_eq!(
        n(&p["total"]["merged_bytes"]),
        (merging + n(&p["total"]["ksm_zero_pages"])) * page
    );
    // The fixture's processes map 10 pages more than KSM's counters hold
    // (its java process's): otherwise the sum is pages_shared +
    // pages_sharing, the KSM pages plus what they save.
    assert_eq!(
        merging,
        n(&s["pages_shared"]) + n(&s["pages_sharing"]) + 10,
        "merging pages vs pages_shared + pages_sharing"
    );
}

/// Where the documents name this project's package file or version, it
/// is the version being built.
#[test]
fn documents_name_the_current_package_version() {
    let version = env!("CARGO_PKG_VERSION");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(root.join("README.md"));
    let mut named = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (prefix, end) in [("ksmtuned_", "-1_amd64.deb"), ("ksmtuned=1:", "-1")] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                let Some(v) = rest.split(end).next() else {
                    continue;
                };
                if !v.chars().next().is_some_and(|c| c.is_ascii_digit()) || v.len() > 12 {
                    continue;
                }
                assert_eq!(v, version, "{} names {prefix}{v}{end}", doc.display());
                named += 1;
            }
        }
    }
    assert!(named >= 3, "{named}");
}

/// `ps` selects like `estimate`: PIDs and `--guests`; a PID that is not
/// there is named and the exit status is 1; totals are of what is shown.
#[test]
fn ps_filters_by_pid_and_guests() {
    let root = fixture_root();
    let g = json(&root, &["ps", "--guests", "--json"]);
    let rows = g["processes"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["qemu"] == true),
        "{g:#}"
    );
    assert_eq!(g["total"]["processes"], rows.len());
    let o = ksmctl(&root, &["ps", "6000", "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["processes"].as_array().unwrap().len(), 1);
    assert_eq!(v["processes"][0]["pid"], 6000);
    let o = ksmctl(&root, &["ps", "6000", "999999"]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains(" 6000 java"), "{}", o.stdout);
    assert!(
        o.stderr.contains("PID 999999: no such process"),
        "{}",
        o.stderr
    );
}
