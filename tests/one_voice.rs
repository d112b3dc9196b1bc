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
