//! One voice: every command names, counts and advises the same way, and
//! what it says is true (issue 29). Over the fixture trees, as an
//! administrator would run the commands.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{fixture_root, Probe, KSMCTL, KSMTUNED};

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
    // 3: status says ksmd is stopped; 4: doctor has a finding that needs
    // attention. Both are answers, not errors.
    assert!(matches!(o.code, 0 | 3 | 4), "{args:?}: {}", o.stderr);
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

/// `estimate` reads other processes' memory: root only.
fn estimate_can_run(test: &str) -> bool {
    let root = ksmtuned::kernel::sys::euid() == 0;
    if !root {
        eprintln!("SKIPPED: {test}: ksmctl estimate needs root");
    }
    root
}

fn live(args: &[&str]) -> Out {
    run(KSMCTL, args)
}

/// Item 4: a process that has not opted in, or `--guests` where no QEMU
/// process is chosen, is not "would save 0 B": the first line says what
/// was selected and why nothing was read, and points at --all-anonymous.
#[test]
fn estimate_says_why_nothing_was_read() {
    if !estimate_can_run("estimate_says_why_nothing_was_read") {
        return;
    }
    let p = Probe::with_args(&["--merge", "none", "--pages", "64"]);
    let pid = p.pid.to_string();
    let o = live(&["estimate", &pid]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let first = o.stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("Nothing was read")
            && first.contains(&format!("PID {pid} has no memory opted in to KSM"))
            && first.contains(&format!("ksmctl estimate --all-anonymous {pid}")),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("would save 0 B"), "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!(
            "Selected:           PID {pid}; 1 with nothing opted in to KSM"
        )),
        "{}",
        o.stdout
    );
    // Two: neither has; the advice names both.
    let q = Probe::with_args(&["--merge", "none", "--pages", "8"]);
    let qid = q.pid.to_string();
    let o = live(&["estimate", &pid, &qid]);
    assert!(
        o.stdout.starts_with(
            "Nothing was read, so there is no saving to estimate: none of the 2 processes has \
             memory opted in to KSM"
        ) && o.stdout.contains(&format!(
            "ksmctl estimate --all-anonymous {pid} {qid}` estimates all their"
        )),
        "{}",
        o.stdout
    );
    drop(q);
    let o = live(&["estimate", "--guests", &pid]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.starts_with("Nothing was read") && o.stdout.contains("no QEMU process is running"),
        "{}",
        o.stdout
    );
    let o = live(&["estimate", "--json", &pid]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["processes_scanned"], 0, "{v:#}");
    assert_eq!(v["selected"]["processes"], 1, "{v:#}");
    assert_eq!(v["selected"]["nothing_selected"], 1, "{v:#}");
    // The advice works: all its private memory is read.
    let o = live(&["estimate", "--all-anonymous", "--json", &pid]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["processes_scanned"], 1, "{v:#}");
    assert!(v["scanned_bytes"].as_u64().unwrap() >= 64 * 4096, "{v:#}");
}

/// Item 5: the matrix defines its cells, leaves out the diagonal (a
/// group's distinct contents are not its saving) and is not drawn for
/// one group.
#[test]
fn estimate_matrix_cells_are_defined() {
    if !estimate_can_run("estimate_matrix_cells_are_defined") {
        return;
    }
    // Two processes of 64 identical pages each, the same content.
    let a = Probe::with_args(&["--pages", "64", "--seed", "29"]);
    let b = Probe::with_args(&["--pages", "64", "--seed", "29"]);
    let (pa, pb) = (a.pid.to_string(), b.pid.to_string());
    let o = live(&["estimate", "--matrix", "--json", &pa, &pb]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let page = v["page_size_bytes"].as_u64().unwrap();
    // One content in common; each would save far more than its one
    // distinct content (what the diagonal showed).
    let m = &v["matrix"]["bytes"];
    assert!(m[0][1].as_u64().unwrap() >= page, "{v:#}");
    assert_eq!(m[0][0].as_u64(), m[0][1].as_u64(), "{v:#}");
    let saves: u64 = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["would_save_bytes"].as_u64().unwrap())
        .sum();
    assert!(saves >= 127 * page, "{v:#}");
    let o = live(&["estimate", "--matrix", &pa, &pb]);
    let t = &o.stdout;
    let contents = t
        .split("Contents in common (who would share with whom):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{t}"));
    let mut lines = contents.lines();
    assert!(
        lines.next().unwrap().starts_with(
            "Row [a], column [b]: the distinct page contents that a and b both hold, one page each"
        ),
        "{t}"
    );
    let _header = lines.next();
    for (i, row) in lines.take(2).enumerate() {
        let cells: Vec<&str> = row.split("  ").filter(|c| !c.trim().is_empty()).collect();
        let cells = &cells[cells.len() - 2..];
        assert_eq!(cells[i].trim(), "-", "diagonal of row {i}: {t}");
        assert_ne!(cells[1 - i].trim(), "-", "{t}");
    }
    assert!(
        t.contains("Merged now (who shares with whom):\nRow [a], column [b]: the KSM pages"),
        "{t}"
    );
    // One group: no matrix, said so.
    let o = live(&["estimate", "--matrix", &pa]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("Contents in common (who would share with whom):\nOne group only")
            && o.stdout
                .contains("Merged now (who shares with whom):\nOne group only"),
        "{}",
        o.stdout
    );
    drop((a, b));
}

/// ZERO is a page count in `ps` and in `estimate`, as the JSON's
/// `zero_pages` in both.
#[test]
fn zero_is_a_page_count_everywhere() {
    let root = fixture_root();
    let ps = ksmctl(&root, &["ps"]);
    let v = json(&root, &["ps", "--json"]);
    let zero_col = |text: &str, header: &str| -> Vec<String> {
        let mut lines = text.lines();
        let h = lines.next().unwrap();
        assert!(h.contains(header), "{text}");
        let names: Vec<&str> = h.split_whitespace().collect();
        let at = names.iter().position(|n| *n == "ZERO").unwrap();
        lines
            .take_while(|l| !l.starts_with("TOTAL") && !l.is_empty())
            .map(|l| l.split_whitespace().nth(at).unwrap().to_string())
            .collect()
    };
    let got = zero_col(&ps.stdout, "MERGING");
    let want: Vec<String> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ksm_zero_pages"].to_string())
        .collect();
    assert_eq!(got, want, "{}", ps.stdout);
    if !estimate_can_run("zero_is_a_page_count_everywhere (estimate)") {
        return;
    }
    let p = Probe::with_args(&["--merge", "none", "--pages", "8", "--zero-pages", "1200"]);
    let pid = p.pid.to_string();
    let o = live(&["estimate", "--all-anonymous", &pid]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let table = o
        .stdout
        .split("\n\n")
        .find(|b| b.contains("WOULD SAVE"))
        .unwrap();
    let mut lines = table.lines();
    let h = lines.next().unwrap();
    let at = h.find("ZERO").unwrap() + 4;
    let row = lines.next().unwrap();
    let cell = row[..at].split_whitespace().last().unwrap();
    let o = live(&["estimate", "--all-anonymous", "--json", &pid]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let n = v["processes"][0]["zero_pages"].as_u64().unwrap();
    assert!(n >= 1200, "{v:#}");
    assert_eq!(cell.replace(',', ""), n.to_string(), "{table}");
}

/// Item 7: every command works on a fixture root, estimate too: without
/// /proc/kpageflags it runs without what KSM merged, and says so once.
#[test]
fn estimate_on_a_fixture_root_degrades() {
    let root = fixture_root();
    let o = ksmctl(&root, &["estimate"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert_eq!(o.stdout.matches("kpageflags").count(), 1, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("no KSM-merged page (MERGED NOW, saved now, the realized matrix)"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.starts_with("Nothing was read"), "{}", o.stdout);
    let v = json(&root, &["estimate", "--json"]);
    assert_eq!(v["notes"].as_array().unwrap().len(), 1, "{v:#}");
}

/// Item 7: `ksmctl retune` speaks as ksmctl, `ksmtuned retune` as ksmtuned.
#[test]
fn retune_errors_name_the_program_run() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("none.pid");
    let pid_file = pid_file.to_str().unwrap();
    let root = fixture_root();
    for bin in [KSMCTL, KSMTUNED] {
        let name = Path::new(bin).file_name().unwrap().to_str().unwrap();
        let o = run(
            bin,
            &[
                "--root",
                root.to_str().unwrap(),
                "retune",
                "--pid-file",
                pid_file,
            ],
        );
        assert_eq!(o.code, 1, "{name}: {}", o.stderr);
        assert_eq!(
            o.stderr,
            format!("{name}: no ksmtuned is running ({pid_file} does not exist)\n"),
            "{name}"
        );
    }
}

/// Item 9: etc/logrotate.d/ksmtuned rotates LOGFILE as ksmtuned writes it
/// (each line opens LOGFILE anew): after a rotation the old lines are in
/// LOGFILE.1 and the next line starts a new LOGFILE.
#[test]
fn logrotate_snippet_rotates_logfile() {
    use ksmtuned::daemon::debuglog::DebugLog;
    let Some(logrotate) = ["/usr/sbin/logrotate", "/sbin/logrotate"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIPPED: logrotate_snippet_rotates_logfile: logrotate is not installed");
        return;
    };
    let snippet = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/logrotate.d/ksmtuned");
    let text = std::fs::read_to_string(snippet).unwrap();
    // The shipped snippet names the documented LOGFILE and never truncates
    // under a writer that does not need it.
    assert!(text.contains("/var/log/ksmtuned {"), "{text}");
    assert!(!text.contains("\n    copytruncate"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("ksmtuned.log");
    let conf = dir.path().join("ksmtuned.logrotate");
    std::fs::write(
        &conf,
        text.replace("/var/log/ksmtuned {", &format!("{} {{", logfile.display())),
    )
    .unwrap();
    let log = DebugLog {
        enabled: true,
        logfile: Some(logfile.clone()),
    };
    log.line("before the rotation").unwrap();
    let state = dir.path().join("state");
    let o = Command::new(logrotate)
        .arg("-f")
        .arg("-s")
        .arg(&state)
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "logrotate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let old = std::fs::read_to_string(dir.path().join("ksmtuned.log.1")).unwrap();
    assert!(old.ends_with(": before the rotation\n"), "{old}");
    assert!(!logfile.exists(), "LOGFILE was not moved away");
    log.line("after the rotation").unwrap();
    let new = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        new.ends_with(": after the rotation\n") && new.lines().count() == 1,
        "{new}"
    );
}

/// Item 9: a libvirt daemon is a second writer of KSM's settings
/// (`virsh node-memory-tune`): status names it, its JSON lists it, and
/// doctor says what to do when a tuner runs too.
#[test]
fn libvirt_daemon_is_shown_as_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&fixture_root(), dir.path());
    let root = dir.path();
    let o = ksmctl(root, &["status"]);
    assert!(!o.stdout.contains("Other writer"), "{}", o.stdout);
    let mk = |pid: u32, comm: &str, cmdline: &str| {
        let d = root.join(format!("proc/{pid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(d.join("cmdline"), format!("{cmdline}\0")).unwrap();
    };
    mk(7701, "virtqemud", "/usr/sbin/virtqemud");
    let o = ksmctl(root, &["status"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(
            "Other writer:   virtqemud (pid 7701): `virsh node-memory-tune` sets pages_to_scan, \
             sleep_millisecs, merge_across_nodes (ksmctl doctor)\n"
        ),
        "{}",
        o.stdout
    );
    let v = json(root, &["status", "--json"]);
    assert_eq!(v["other_writers"][0]["comm"], "virtqemud", "{v:#}");
    assert_eq!(v["other_writers"][0]["pid"], 7701, "{v:#}");
    let finding = |v: &Value| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "libvirt-writes-ksm")
            .cloned()
    };
    // No tuner: libvirt is the only writer.
    assert!(finding(&json(root, &["doctor", "--json"])).is_none());
    mk(7702, "ksmtuned", "/usr/sbin/ksmtuned");
    let d = json(root, &["doctor", "--json"]);
    let f = finding(&d).unwrap_or_else(|| panic!("{d:#}"));
    assert_eq!(f["severity"], "info", "{f:#}");
    assert_eq!(f["numbers"]["writer_pid"], 7701, "{f:#}");
    assert_eq!(f["numbers"]["tuner_pid"], 7702, "{f:#}");
    let text = ksmctl(root, &["doctor"]).stdout;
    assert!(
        text.contains("virtqemud (pid 7701) runs beside the tuner ksmtuned (pid 7702)"),
        "{text}"
    );
}
