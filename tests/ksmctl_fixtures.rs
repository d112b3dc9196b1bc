//! `ksmctl` end to end over fixture trees of three kernel eras: the real
//! binary, run with `--root` (or `$KSM_ROOT`) pointing at
//! `tests/fixtures/<era>/` or at a temporary copy of it for writes.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use tempfile::TempDir;

use ksmtuned::human::{count, ubytes};
use ksmtuned::kernel::sys::{page_size, phys_pages};
use support::copy_tree;

const KSM: &str = "sys/kernel/mm/ksm";

fn fixture(era: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(era)
}

/// A writable copy of a fixture.
fn copy_fixture(era: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(era), dir.path());
    dir
}

fn read_ksm(root: &Path, name: &str) -> String {
    fs::read_to_string(root.join(KSM).join(name))
        .unwrap()
        .trim()
        .to_string()
}

fn write_ksm(root: &Path, name: &str, value: &str) {
    fs::write(root.join(KSM).join(name), format!("{value}\n")).unwrap();
}

/// Every file of the KSM directory, for "nothing was written" checks.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = fs::read_dir(root.join(KSM))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run ksmctl with `--root root` (when given), a clean environment for the
/// variables it reads, and `env` on top.
fn ksmctl_env(root: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ksmctl"));
    cmd.env_remove("KSM_ROOT")
        .env_remove("KSM_MAX_KERNEL_PAGES")
        .env_remove("RUST_LOG");
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("running ksmctl");
    let run = Run {
        code: out.status.code().expect("ksmctl killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "ksmctl {args:?} panicked: {}",
        run.stderr
    );
    run
}

fn ksmctl(root: &Path, args: &[&str]) -> Run {
    ksmctl_env(Some(root), args, &[])
}

/// Assert the exit status and that stderr holds every `needles`.
#[track_caller]
fn expect_err(run: &Run, code: i32, needles: &[&str]) {
    assert_eq!(
        run.code, code,
        "exit status; stdout: {} stderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.starts_with("ksmctl: ") || run.stderr.starts_with("error: "));
    for n in needles {
        assert!(run.stderr.contains(n), "stderr lacks {n:?}: {}", run.stderr);
    }
}

fn status_json(root: &Path) -> (i32, serde_json::Map<String, Value>) {
    let run = ksmctl(root, &["status", "--json"]);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
    (run.code, v.as_object().unwrap().clone())
}

/// Compare the JSON field by field, and its key set.
#[track_caller]
fn check_fields(got: &serde_json::Map<String, Value>, want: Value) {
    let want = want.as_object().unwrap();
    for (k, w) in want {
        assert_eq!(got.get(k), Some(w), "status --json field {k}");
    }
    // Since 0.3 each file is also under the kernel's name (0.2's key is
    // kept until 0.4): the same value under both.
    let mut renamed = Vec::new();
    for f in ksmtuned::kernel::ksm::FILES {
        if f.legacy_key != f.name {
            assert_eq!(got.get(f.name), got.get(f.legacy_key), "{}", f.name);
            renamed.push(f.name);
        }
    }
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k) && !renamed.contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "unchecked fields in status --json: {extra:?}"
    );
}

const SHARING_WORD: &str =
    "(extra mappings per KSM page; higher is better, at most max_page_sharing)";
const UNSHARED_WORD: &str =
    "(unique pages rescanned per page saved; high means scanning is wasted)";

#[test]
fn status_linux_2_6_32() {
    let root = fixture("linux-2.6.32");
    let ps = page_size();
    let run = ksmctl(&root, &["status"]);
    assert_eq!(run.code, 0, "running: exit 0; {}", run.stderr);
    let want = format!(
        "KSM:            running (ksmd is scanning)\n\
         Tuner:          none running\n\
         Memory saved:   {}  (30,500 pages sharing, page size {})\n\
         Pages:          shared 1,250  sharing 30,500  unshared 61,000  volatile 375\n\
         Sharing ratio:  24.40  {SHARING_WORD}\n\
         Unshared ratio: 2.00  {UNSHARED_WORD}\n\
         Full scans:     42\n\
         Scanner:        100 pages every 20 ms = at most 5,000 pages/s ({}/s)\n\
         Options:        max_kernel_pages 1,507,328\n",
        ubytes(30500 * ps),
        ubytes(ps),
        ubytes(5000 * ps)
    );
    assert_eq!(run.stdout, want);

    let (code, got) = status_json(&root);
    assert_eq!(code, 0);
    check_fields(
        &got,
        json!({
            "supported": true, "state": "running", "run": 1, "tuners": [], "other_writers": [],
            "page_size_bytes": ps,
            "shared_pages": 1250, "sharing_pages": 30500, "unshared_pages": 61000,
            "volatile_pages": 375, "zero_pages": null, "scanned_pages": null,
            "skipped_pages": null, "full_scans": 42, "stable_node_chains": null,
            "stable_node_dups": null,
            "saved_pages": 30500, "saved_bytes": 30500 * ps, "general_profit_bytes": null,
            "sharing_ratio": 24.4, "unshared_ratio": 2.0,
            "pages_to_scan": 100, "sleep_ms": 20,
            "scan_rate_pages_per_s": 5000, "scan_rate_bytes_per_s": 5000 * ps,
            "advisor_mode": null, "advisor_max_cpu_percent": null,
            "advisor_target_scan_time_s": null, "advisor_min_pages_to_scan": null,
            "advisor_max_pages_to_scan": null,
            "smart_scan": null, "use_zero_pages": null, "merge_across_nodes": null,
            "max_page_sharing": null, "stable_node_chains_prune_ms": null,
            "max_kernel_pages": 1507328
        }),
    );
}

#[test]
fn status_linux_5_15_stopped() {
    let root = fixture("linux-5.15");
    let ps = page_size();
    let run = ksmctl(&root, &["status"]);
    assert_eq!(run.code, 3, "stopped: exit 3; {}", run.stderr);
    let want = format!(
        "KSM:            stopped (ksmd idle; merged pages stay merged)\n\
         Tuner:          none running\n\
         Memory saved:   {}  (262,144 pages sharing, page size {})\n\
         Pages:          shared 8,000  sharing 262,144  unshared 40,000  volatile 1,200\n\
         Sharing ratio:  32.77  {SHARING_WORD}\n\
         Unshared ratio: 0.15  {UNSHARED_WORD}\n\
         Full scans:     917\n\
         Scanner:        1,250 pages every 50 ms = at most 25,000 pages/s ({}/s)\n\
         Options:        use_zero_pages on, merge_across_nodes off, max_page_sharing 512\n",
        ubytes(262144 * ps),
        ubytes(ps),
        ubytes(25000 * ps)
    );
    assert_eq!(run.stdout, want);

    let (code, got) = status_json(&root);
    assert_eq!(code, 3);
    check_fields(
        &got,
        json!({
            "supported": true, "state": "stopped", "run": 0, "tuners": [], "other_writers": [],
            "page_size_bytes": ps,
            "shared_pages": 8000, "sharing_pages": 262144, "unshared_pages": 40000,
            "volatile_pages": 1200, "zero_pages": null, "scanned_pages": null,
            "skipped_pages": null, "full_scans": 917, "stable_node_chains": 3,
            "stable_node_dups": 770,
            "saved_pages": 262144, "saved_bytes": 262144 * ps, "general_profit_bytes": null,
            "sharing_ratio": 32.768, "unshared_ratio": 40000.0 / 262144.0,
            "pages_to_scan": 1250, "sleep_ms": 50,
            "scan_rate_pages_per_s": 25000, "scan_rate_bytes_per_s": 25000 * ps,
            "advisor_mode": null, "advisor_max_cpu_percent": null,
            "advisor_target_scan_time_s": null, "advisor_min_pages_to_scan": null,
            "advisor_max_pages_to_scan": null,
            "smart_scan": null, "use_zero_pages": true, "merge_across_nodes": false,
            "max_page_sharing": 512, "stable_node_chains_prune_ms": 5000,
            "max_kernel_pages": null
        }),
    );
}

#[test]
fn status_linux_6_18_with_tuner_and_negative_profit() {
    let root = fixture("linux-6.18");
    let ps = page_size();
    let run = ksmctl(&root, &["status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let want = format!(
        "KSM:            running (ksmd is scanning)\n\
         Tuner:          ksmtuned (pid 4242)\n\
         Memory saved:   {}  (150 pages sharing + 64 zero pages, page size {})\n\
         General profit: -71.9 MiB  (saved minus KSM's own metadata: costs more than it saves)\n\
         Pages:          shared 100  sharing 150  unshared 1,200,000  volatile 25,000  zero 64\n\
         Sharing ratio:  1.50  {SHARING_WORD}\n\
         Unshared ratio: 8000.00  {UNSHARED_WORD}\n\
         Full scans:     7  (987,654,321 pages scanned, 12,345 skipped)\n\
         Scanner:        3,000 pages every 10 ms = at most 300,000 pages/s ({}/s)\n\
         Advisor:        scan-time  (max cpu 40%, target scan time 120 s, pages_to_scan 500..30,000)\n\
         Options:        smart_scan on, use_zero_pages on, merge_across_nodes on, max_page_sharing 256\n",
        ubytes(214 * ps),
        ubytes(ps),
        ubytes(300_000 * ps)
    );
    assert_eq!(run.stdout, want);

    let (code, got) = status_json(&root);
    assert_eq!(code, 0);
    check_fields(
        &got,
        json!({
            "supported": true, "state": "running", "run": 1,
            "tuners": [{"pid": 4242, "comm": "ksmtuned", "dry_run": false}],
            "other_writers": [],
            "page_size_bytes": ps,
            "shared_pages": 100, "sharing_pages": 150, "unshared_pages": 1200000,
            "volatile_pages": 25000, "zero_pages": 64, "scanned_pages": 987654321u64,
            "skipped_pages": 12345, "full_scans": 7, "stable_node_chains": 0,
            "stable_node_dups": 0,
            "saved_pages": 214, "saved_bytes": 214 * ps,
            "general_profit_bytes": -75366400,
            "sharing_ratio": 1.5, "unshared_ratio": 8000.0,
            "pages_to_scan": 3000, "sleep_ms": 10,
            "scan_rate_pages_per_s": 300000, "scan_rate_bytes_per_s": 300000 * ps,
            "advisor_mode": "scan-time", "advisor_max_cpu_percent": 40,
            "advisor_target_scan_time_s": 120, "advisor_min_pages_to_scan": 500,
            "advisor_max_pages_to_scan": 30000,
            "smart_scan": true, "use_zero_pages": true, "merge_across_nodes": true,
            "max_page_sharing": 256, "stable_node_chains_prune_ms": 2000,
            "max_kernel_pages": null
        }),
    );
}

#[test]
fn status_through_ksm_root_env() {
    let root = fixture("linux-5.15");
    let run = ksmctl_env(
        None,
        &["status", "--json"],
        &[("KSM_ROOT", root.to_str().unwrap())],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["sharing_pages"], 262144);
    assert_eq!(v["max_page_sharing"], 512);
    // --root wins over $KSM_ROOT.
    let other = fixture("linux-2.6.32");
    let run = ksmctl_env(
        Some(&other),
        &["get", "full_scans"],
        &[("KSM_ROOT", root.to_str().unwrap())],
    );
    assert_eq!(run.stdout, "full_scans = 42\n");
}

#[test]
fn status_without_ksm() {
    let empty = tempfile::tempdir().unwrap();
    let run = ksmctl(empty.path(), &["status"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!(
            "KSM:            not supported ({} does not exist: kernel built without CONFIG_KSM)\n",
            empty.path().join(KSM).display()
        )
    );
    let (code, got) = status_json(empty.path());
    assert_eq!(code, 1);
    assert_eq!(got["supported"], false);
    assert_eq!(got["state"], "unsupported");
    assert_eq!(got["run"], Value::Null);
    assert_eq!(got["saved_bytes"], 0);
}

#[test]
fn get_all_one_and_json() {
    let old = fixture("linux-2.6.32");
    let run = ksmctl(&old, &["get"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "run              = 1\n\
         pages_to_scan    = 100\n\
         sleep_millisecs  = 20\n\
         max_kernel_pages = 1507328\n\
         pages_shared     = 1250\n\
         pages_sharing    = 30500\n\
         pages_unshared   = 61000\n\
         pages_volatile   = 375\n\
         full_scans       = 42\n"
    );
    let new = fixture("linux-6.18");
    let run = ksmctl(&new, &["get", "pages_to_scan", "advisor_mode"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "pages_to_scan = 3000\nadvisor_mode  = none [scan-time]\n"
    );
    let run = ksmctl(&new, &["get", "--json"]);
    assert_eq!(run.code, 0);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let m = v.as_object().unwrap();
    assert_eq!(m.len(), 24, "every file of the 6.18 fixture: {m:?}");
    assert_eq!(m["general_profit"], -75366400);
    assert_eq!(m["ksm_zero_pages"], 64);
    assert_eq!(m["advisor_mode"], "scan-time");
    assert_eq!(m["pages_scanned"], 987654321);
    assert_eq!(m["run"], 1);
    let run = ksmctl(&new, &["get", "--json", "general_profit"]);
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).unwrap(),
        json!({"general_profit": -75366400})
    );
}

#[test]
fn get_bad_keys() {
    let old = fixture("linux-2.6.32");
    // A file this kernel does not have: absent (null in JSON), exit 0.
    let run = ksmctl(&old, &["get", "smart_scan", "run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "smart_scan   absent (this kernel has no such file)\nrun        = 1\n"
    );
    let run = ksmctl(&old, &["get", "--json", "smart_scan", "run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).unwrap(),
        json!({"smart_scan": null, "run": 1})
    );
    // A name no kernel has: usage error.
    let run = ksmctl(&old, &["get", "pages_to_scna"]);
    expect_err(
        &run,
        2,
        &["unknown KSM file \"pages_to_scna\"", "pages_to_scan"],
    );
}

#[test]
fn set_writes_every_setting() {
    let dir = copy_fixture("linux-6.18");
    let root = dir.path();
    let run = ksmctl(
        root,
        &[
            "set",
            "pages_to_scan=777",
            "sleep_millisecs=50",
            "advisor_mode=none",
            "use_zero_pages=off",
            "run=0",
            "max_page_sharing=300",
            "advisor_max_cpu=25",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // advisor_mode is written first (it resets pages_to_scan), run last.
    assert_eq!(
        run.stdout,
        "advisor_mode=none\npages_to_scan=777\nsleep_millisecs=50\nuse_zero_pages=0\n\
         max_page_sharing=300\nadvisor_max_cpu=25\nrun=0\n"
    );
    for (k, v) in [
        ("pages_to_scan", "777"),
        ("sleep_millisecs", "50"),
        ("advisor_mode", "none"),
        ("use_zero_pages", "0"),
        ("run", "0"),
        ("max_page_sharing", "300"),
        ("advisor_max_cpu", "25"),
    ] {
        assert_eq!(read_ksm(root, k), v, "{k}");
    }
    let run = ksmctl(root, &["get", "pages_to_scan", "run"]);
    assert_eq!(run.stdout, "pages_to_scan = 777\nrun           = 0\n");
}

#[test]
fn set_validates_everything_before_writing() {
    let dir = copy_fixture("linux-6.18");
    let root = dir.path();
    // The fixture's advisor is off for these.
    write_ksm(root, "advisor_mode", "[none] scan-time");
    let before = snapshot(root);
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["pages_to_scan=200", "sleep_millisecs=abc"],
            2,
            &["invalid value \"abc\" for sleep_millisecs", "whole number"],
        ),
        (
            &["pages_to_scan=200", "pages_to_scan=99999999999"],
            2,
            &["\"99999999999\"", "pages_to_scan", "limit 4294967295"],
        ),
        (&["sleep_millisecs=5", "pages_to_scan=-1"], 2, &["\"-1\""]),
        (
            &["sleep_millisecs=5", "run=3"],
            2,
            &["invalid value \"3\" for run", "0 (stop), 1 (run) or 2"],
        ),
        (&["max_page_sharing=1"], 2, &["at least 2"]),
        (&["use_zero_pages=2"], 2, &["use_zero_pages", "0 or 1"]),
        (&["advisor_mode=fast"], 2, &["none or scan-time"]),
        (&["advisor_max_cpu=101"], 2, &["advisor_max_cpu"]),
        (
            &["sleep_millisecs=5", "bogus=1"],
            2,
            &["unknown KSM setting \"bogus\"", "pages_to_scan"],
        ),
        (
            &["sleep_millisecs=5", "pages_shared=0"],
            2,
            &["pages_shared is a read-only counter"],
        ),
        (
            &["sleep_millisecs=5", "general_profit=1"],
            2,
            &["general_profit is a read-only counter"],
        ),
        (&["sleep_millisecs"], 2, &["expected KEY=VALUE"]),
        (
            &["sleep_millisecs=5", "max_kernel_pages=10"],
            1,
            &["this kernel has no max_kernel_pages"],
        ),
    ];
    for (args, code, needles) in cases {
        let mut a = vec!["set"];
        a.extend_from_slice(args);
        let run = ksmctl(root, &a);
        expect_err(&run, *code, needles);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert_eq!(snapshot(root), before, "{args:?} wrote something");
    }
}

#[test]
fn set_pages_to_scan_under_the_advisor() {
    let dir = copy_fixture("linux-6.18");
    let root = dir.path();
    let before = snapshot(root);
    let run = ksmctl(root, &["set", "sleep_millisecs=5", "pages_to_scan=200"]);
    expect_err(
        &run,
        1,
        &[
            "scan-time advisor",
            "advisor_mode=none",
            "nothing was written",
        ],
    );
    assert_eq!(snapshot(root), before);
    let run = ksmctl(root, &["set", "pages_to_scan=200", "advisor_mode=none"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read_ksm(root, "pages_to_scan"), "200");
    // Turning the advisor on in the same command is refused too.
    let run = ksmctl(
        root,
        &["set", "pages_to_scan=300", "advisor_mode=scan-time"],
    );
    expect_err(&run, 1, &["scan-time advisor"]);
    assert_eq!(read_ksm(root, "pages_to_scan"), "200");
}

#[test]
fn set_on_an_old_kernel() {
    let dir = copy_fixture("linux-2.6.32");
    let root = dir.path();
    let before = snapshot(root);
    let run = ksmctl(root, &["set", "pages_to_scan=64", "use_zero_pages=1"]);
    expect_err(&run, 1, &["this kernel has no use_zero_pages"]);
    assert_eq!(snapshot(root), before);
    let run = ksmctl(root, &["set", "pages_to_scan=64", "max_kernel_pages=0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read_ksm(root, "pages_to_scan"), "64");
    assert_eq!(read_ksm(root, "max_kernel_pages"), "0");
}

fn start_2632(env: &[(&str, &str)], sysconfig: Option<&str>) -> (TempDir, Run) {
    let dir = copy_fixture("linux-2.6.32");
    write_ksm(dir.path(), "run", "0");
    write_ksm(dir.path(), "max_kernel_pages", "2000");
    if let Some(text) = sysconfig {
        let etc = dir.path().join("etc/sysconfig");
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("ksm"), text).unwrap();
    }
    let run = ksmctl_env(Some(dir.path()), &["start"], env);
    (dir, run)
}

#[test]
fn start_sets_max_kernel_pages_on_2_6_32() {
    let half = phys_pages() / 2;
    // (environment, /etc/sysconfig/ksm, the value that must be written)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, u64);
    let cases: &[Case] = &[
        (&[], None, half),
        (&[("KSM_MAX_KERNEL_PAGES", "")], None, half),
        (&[("KSM_MAX_KERNEL_PAGES", "123456")], None, 123456),
        (&[("KSM_MAX_KERNEL_PAGES", "0x100")], None, 256),
        (&[("KSM_MAX_KERNEL_PAGES", "0100")], None, 64),
        (&[("KSM_MAX_KERNEL_PAGES", "0")], None, 0),
        (
            &[],
            Some("# site settings\n\nKSM_MAX_KERNEL_PAGES=0x2000\n"),
            0x2000,
        ),
        (
            &[],
            Some("export KSM_MAX_KERNEL_PAGES=\"777\"  # hand-tuned\n"),
            777,
        ),
        (&[], Some("KSM_MAX_KERNEL_PAGES=\n"), half),
        (&[], Some("# nothing set\n"), half),
        // The environment (systemd's EnvironmentFile=) wins over the file.
        (
            &[("KSM_MAX_KERNEL_PAGES", "99")],
            Some("KSM_MAX_KERNEL_PAGES=5\n"),
            99,
        ),
    ];
    for (env, file, want) in cases {
        let (dir, run) = start_2632(env, *file);
        assert_eq!(run.code, 0, "{env:?} {file:?}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{}", run.stderr);
        assert_eq!(
            read_ksm(dir.path(), "max_kernel_pages"),
            want.to_string(),
            "{env:?} {file:?}"
        );
        assert_eq!(read_ksm(dir.path(), "run"), "1");
        let what = if *want == 0 {
            "unlimited".to_string()
        } else {
            format!("{want} pages")
        };
        assert_eq!(run.stdout, format!("max_kernel_pages set to {what}\n"));
    }
}

#[test]
fn start_reads_debian_default_file() {
    let dir = copy_fixture("linux-2.6.32");
    write_ksm(dir.path(), "run", "0");
    let etc = dir.path().join("etc/default");
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("ksm"), "KSM_MAX_KERNEL_PAGES=4321\n").unwrap();
    let run = ksmctl(dir.path(), &["start"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read_ksm(dir.path(), "max_kernel_pages"), "4321");
}

#[test]
fn start_refuses_bad_max_kernel_pages() {
    let (dir, run) = start_2632(&[("KSM_MAX_KERNEL_PAGES", "lots")], None);
    expect_err(
        &run,
        1,
        &[
            "invalid value \"lots\"",
            "KSM_MAX_KERNEL_PAGES",
            "the environment",
        ],
    );
    assert_eq!(read_ksm(dir.path(), "run"), "0", "ksmd must not start");
    assert_eq!(read_ksm(dir.path(), "max_kernel_pages"), "2000");

    let (dir, run) = start_2632(&[], Some("# comment\n\nKSM_MAX_KERNEL_PAGES=12x\n"));
    let origin = format!("{}:3", dir.path().join("etc/sysconfig/ksm").display());
    expect_err(&run, 1, &["invalid value \"12x\"", &origin]);
    assert_eq!(read_ksm(dir.path(), "run"), "0");

    let (dir, run) = start_2632(&[], Some("KSM_MAX_KERNEL_PAGES=-5\n"));
    expect_err(&run, 1, &["\"-5\""]);
    assert_eq!(read_ksm(dir.path(), "run"), "0");

    // The file is data: an expansion is refused, never run.
    let (dir, run) = start_2632(&[], Some("\nKSM_MAX_KERNEL_PAGES=$(echo 5)\n"));
    let origin = format!("{}:2", dir.path().join("etc/sysconfig/ksm").display());
    expect_err(&run, 1, &[&origin, "not supported"]);
    assert_eq!(read_ksm(dir.path(), "run"), "0");
}

#[test]
fn start_on_a_modern_kernel_notes_the_ignored_limit() {
    let dir = copy_fixture("linux-6.18");
    let root = dir.path();
    write_ksm(root, "run", "0");
    let run = ksmctl(root, &["start"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(read_ksm(root, "run"), "1");
    assert!(!root.join(KSM).join("max_kernel_pages").exists());

    write_ksm(root, "run", "0");
    let run = ksmctl_env(Some(root), &["start"], &[("KSM_MAX_KERNEL_PAGES", "5000")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(
        run.stderr.contains("KSM_MAX_KERNEL_PAGES=\"5000\"")
            && run.stderr.contains("ignored")
            && run.stderr.contains("no max_kernel_pages"),
        "{}",
        run.stderr
    );
    assert_eq!(read_ksm(root, "run"), "1");
    assert!(!root.join(KSM).join("max_kernel_pages").exists());

    // An empty value means "default": nothing to note.
    write_ksm(root, "run", "0");
    let run = ksmctl_env(Some(root), &["start"], &[("KSM_MAX_KERNEL_PAGES", "")]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    // A bad value the kernel would not use anyway does not stop KSM, but
    // the note says it is bad.
    write_ksm(root, "run", "0");
    let run = ksmctl_env(Some(root), &["start"], &[("KSM_MAX_KERNEL_PAGES", "lots")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("not a valid number"), "{}", run.stderr);
    assert_eq!(read_ksm(root, "run"), "1");
}

#[test]
fn stop_and_unmerge() {
    let dir = copy_fixture("linux-6.18");
    let root = dir.path();
    let run = ksmctl(root, &["stop"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(read_ksm(root, "run"), "0");
    // Stopped now: status says so with exit 3.
    assert_eq!(ksmctl(root, &["status"]).code, 3);
    let run = ksmctl(root, &["unmerge"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read_ksm(root, "run"), "2");
    let ps = page_size();
    assert!(
        run.stdout.starts_with(&format!(
            "Unmerging {} pages: their processes will use {} more memory.",
            count(214),
            ubytes(214 * ps)
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("take a while"), "{}", run.stdout);
    assert_eq!(ksmctl(root, &["status", "--json"]).code, 3);
}

#[test]
fn commands_without_ksm() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().join(KSM).display().to_string();
    for args in [
        &["start"][..],
        &["stop"],
        &["unmerge"],
        &["get"],
        &["get", "run"],
        &["set", "run=1"],
    ] {
        let run = ksmctl(empty.path(), args);
        expect_err(&run, 1, &["KSM is not supported here", &path]);
    }
    assert!(
        fs::read_dir(empty.path()).unwrap().next().is_none(),
        "created files"
    );
}

#[test]
fn usage_errors_exit_2() {
    let root = fixture("linux-6.18");
    for args in [
        &[][..],
        &["bogus"],
        &["set"],
        &["status", "--bogus"],
        &["get", "--json=3"],
        &["exec"],
        &["--root"],
    ] {
        let run = ksmctl(&root, args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
    for args in [&["--help"][..], &["set", "--help"], &["exec", "--help"]] {
        let run = ksmctl(&root, args);
        assert_eq!(run.code, 0, "{args:?}");
        assert!(run.stdout.contains("Usage: ksmctl"), "{}", run.stdout);
    }
    let run = ksmctl(&root, &["--help"]);
    assert!(
        run.stdout
            .starts_with("Start, stop and inspect the kernel's samepage merging"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("2 usage error"), "{}", run.stdout);
}

#[test]
fn unmerge_with_nothing_merged() {
    let dir = copy_fixture("linux-5.15");
    let root = dir.path();
    for c in ["pages_shared", "pages_sharing"] {
        write_ksm(root, c, "0");
    }
    let run = ksmctl(root, &["unmerge"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "No pages were merged; ksmd stopped (run=2).\n");
    assert_eq!(read_ksm(root, "run"), "2");
}

#[test]
fn refused_write_names_file_value_and_reason_once() {
    let dir = copy_fixture("linux-6.18");
    let root = dir.path();
    // A file the kernel would refuse: here a directory in its place.
    let path = root.join(KSM).join("sleep_millisecs");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let run = ksmctl(root, &["set", "sleep_millisecs=30"]);
    expect_err(
        &run,
        1,
        &[&format!(
            "cannot write 30 to {}: Is a directory",
            path.display()
        )],
    );
    assert!(
        !run.stderr.contains("os error"),
        "cause repeated: {}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
