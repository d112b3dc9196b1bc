//! What docs/migration.md promises about the programs ours replaces: the
//! C `ksmctl start|stop` usage of Fedora/RHEL/Debian works unchanged
//! (same arguments, exit status 0, nothing on standard output on today's
//! kernels, the same writes), and what differs is what the guide says.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const KSMCTL: &str = env!("CARGO_BIN_EXE_ksmctl");

/// A writable copy of a fixture tree.
fn tree(fixture: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let st = Command::new("cp")
        .arg("-a")
        .arg(src.join("."))
        .arg(t.path())
        .status()
        .unwrap();
    assert!(st.success());
    t
}

fn ksmctl(root: &Path, args: &[&str], env: Option<(&str, &str)>) -> Output {
    let mut c = Command::new(KSMCTL);
    c.env_remove("KSM_MAX_KERNEL_PAGES")
        .env_remove("KSM_ROOT")
        .arg("--root")
        .arg(root)
        .args(args);
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn knob(root: &Path, name: &str) -> String {
    fs::read_to_string(root.join("sys/kernel/mm/ksm").join(name))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn c_ksmctl_start_stop_usage_is_accepted() {
    let t = tree("linux-6.18");
    let root = t.path();
    fs::write(root.join("sys/kernel/mm/ksm/run"), "0\n").unwrap();
    let out = ksmctl(root, &["start"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(knob(root, "run"), "1");
    let out = ksmctl(root, &["stop"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(knob(root, "run"), "0");
}

#[test]
fn c_ksmctl_max_kernel_pages_on_old_kernels() {
    // 2.6.32-era kernels: start writes KSM_MAX_KERNEL_PAGES (decimal, hex
    // or octal, as the C program's strtol read it), half of memory when
    // unset. Ours says what it set, on standard output.
    let t = tree("linux-2.6.32");
    let root = t.path();
    let out = ksmctl(root, &["start"], Some(("KSM_MAX_KERNEL_PAGES", "0x100")));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(knob(root, "max_kernel_pages"), "256");
    assert_eq!(knob(root, "run"), "1");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "max_kernel_pages set to 256 pages\n"
    );
}

#[test]
fn other_ksmctl_usages_are_usage_errors() {
    // No command, and CachyOS's -e/-d/-s options: exit status 2 with
    // clap's usage text, nothing written.
    let t = tree("linux-6.18");
    let root = t.path();
    let before = knob(root, "run");
    for args in [&[][..], &["-e"], &["-d"], &["-s"], &["enable"]] {
        let out = ksmctl(root, args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage: ksmctl"),
            "{args:?}: {out:?}"
        );
    }
    assert_eq!(knob(root, "run"), before);
}
