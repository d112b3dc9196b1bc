//! The shipped service files: `units/ksm.service` (checked by systemd's
//! own `systemd-analyze verify`, with ksmctl installed where the unit
//! names it, in a temporary root) and the example `etc/sysconfig/ksm`.

#[path = "../examples/gen-docs/docgen.rs"]
#[allow(dead_code)]
mod docgen;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn unit_text() -> String {
    fs::read_to_string(repo("units/ksm.service")).unwrap()
}

#[test]
fn unit_has_the_service_directives() {
    let text = unit_text();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for want in [
        "[Unit]",
        "ConditionPathExists=/sys/kernel/mm/ksm",
        "ConditionVirtualization=!container",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        "EnvironmentFile=-/etc/default/ksm",
        "EnvironmentFile=-/etc/sysconfig/ksm",
        "ExecStart=/usr/sbin/ksmctl start",
        "ExecStop=/usr/sbin/ksmctl stop",
        "[Install]",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&want), "units/ksm.service lacks {want:?}");
    }
    // /etc/sysconfig/ksm comes last, so it overrides /etc/default/ksm as
    // in ksmctl's own lookup.
    let pos = |s: &str| lines.iter().position(|l| *l == s).unwrap();
    assert!(pos("EnvironmentFile=-/etc/default/ksm") < pos("EnvironmentFile=-/etc/sysconfig/ksm"));
}

/// The directory the host's systemd keeps its own units in.
fn host_unit_dir() -> Option<PathBuf> {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("multi-user.target").exists())
}

fn verify(root: &Path) -> (i32, String) {
    // Documentation=man:... is checked with man(1): point it at the pages
    // as they will be installed.
    let man = root.join("usr/share/man");
    let out = Command::new("systemd-analyze")
        .env("MANPATH", &man)
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(["ksm.service", "ksmtuned.service"])
        .output()
        .expect("running systemd-analyze");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: systemd_analyze_verify: systemd-analyze is not installed \
             (Debian package systemd; scripts/test installs it)"
        );
        return;
    }
    let units = host_unit_dir()
        .expect("systemd-analyze is installed but systemd's own units (multi-user.target) are not");
    // A root with systemd's targets and slices (the unit's default
    // dependencies), the unit, and the binary where the unit names it.
    let root = tempfile::tempdir().unwrap();
    let lib = root.path().join("usr/lib/systemd/system");
    let etc = root.path().join("etc/systemd/system");
    let sbin = root.path().join("usr/sbin");
    for d in [&lib, &etc, &sbin] {
        fs::create_dir_all(d).unwrap();
    }
    for e in fs::read_dir(&units).unwrap() {
        let p = e.unwrap().path();
        if p.is_file()
            && matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("target" | "slice")
            )
        {
            fs::copy(&p, lib.join(p.file_name().unwrap())).unwrap();
        }
    }
    for unit in ["ksm.service", "ksmtuned.service"] {
        fs::copy(repo(&format!("units/{unit}")), etc.join(unit)).unwrap();
    }

    // Without the binaries the verification must fail: it really looks.
    let (code, text) = verify(root.path());
    assert_ne!(code, 0, "verify passed without /usr/sbin/ksmctl: {text}");
    assert!(text.contains("/usr/sbin/ksmctl"), "{text}");
    assert!(text.contains("/usr/sbin/ksmtuned"), "{text}");

    // ExecReload= uses the host's kill(1), as installed units do.
    fs::create_dir_all(root.path().join("bin")).unwrap();
    fs::copy("/bin/kill", root.path().join("bin/kill")).unwrap();
    // The man pages the units' Documentation= names.
    let man = root.path().join("usr/share/man");
    let generated = root.path().join("tmp-docs");
    docgen::write_all(&generated).unwrap();
    for (src, dst) in [
        (generated.join(docgen::man_file("ksmctl")), "man8/ksmctl.8"),
        (
            generated.join(docgen::man_file("ksmtuned")),
            "man8/ksmtuned.8",
        ),
        (repo("man/ksmtuned.conf.5"), "man5/ksmtuned.conf.5"),
    ] {
        let dst = man.join(dst);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(src, dst).unwrap();
    }
    for (name, built) in [
        ("ksmctl", env!("CARGO_BIN_EXE_ksmctl")),
        ("ksmtuned", env!("CARGO_BIN_EXE_ksmtuned")),
    ] {
        let bin = sbin.join(name);
        fs::copy(built, &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, text) = verify(root.path());
    assert_eq!(code, 0, "systemd-analyze verify failed: {text}");
    // Warnings (unknown keys, bad values) exit 0 too: none allowed.
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify warned: {text}"
    );
    eprintln!("systemd-analyze verify --root=... ksm.service ksmtuned.service: ok, no warnings");
}

fn start_with_sysconfig(text: &str) -> (i32, String, String) {
    let root = tempfile::tempdir().unwrap();
    let ksm = root.path().join("sys/kernel/mm/ksm");
    fs::create_dir_all(&ksm).unwrap();
    let fixture = repo("tests/fixtures/linux-2.6.32/sys/kernel/mm/ksm");
    for e in fs::read_dir(fixture).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), ksm.join(e.file_name())).unwrap();
    }
    fs::write(ksm.join("run"), "0\n").unwrap();
    let etc = root.path().join("etc/sysconfig");
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("ksm"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ksmctl"))
        .arg("--root")
        .arg(root.path())
        .arg("start")
        .env_remove("KSM_MAX_KERNEL_PAGES")
        .env_remove("KSM_ROOT")
        .output()
        .unwrap();
    let value = fs::read_to_string(ksm.join("max_kernel_pages"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(fs::read_to_string(ksm.join("run")).unwrap().trim(), "1");
    (
        out.status.code().unwrap(),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_sysconfig_documents_what_ksmctl_does() {
    let text = fs::read_to_string(repo("etc/sysconfig/ksm")).unwrap();
    // As shipped (all commented out): the default, half of memory.
    let (code, value, stderr) = start_with_sysconfig(&text);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(value, (ksmtuned::kernel::sys::phys_pages() / 2).to_string());
    // Every form the file documents ("#   FORM   meaning") does what it says.
    let mut forms = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("#   ") else {
            continue;
        };
        let form = rest.split_whitespace().next().unwrap();
        let want = match form {
            "unset" => continue,
            "0" => 0,
            f if f.starts_with("0x") => u64::from_str_radix(&f[2..], 16).unwrap(),
            f if f.starts_with('0') => u64::from_str_radix(&f[1..], 8).unwrap(),
            f => f.parse().unwrap(),
        };
        let config = text.replace(
            "#KSM_MAX_KERNEL_PAGES=\n",
            &format!("KSM_MAX_KERNEL_PAGES={form}\n"),
        );
        assert_ne!(config, text, "the example lacks #KSM_MAX_KERNEL_PAGES=");
        let (code, value, stderr) = start_with_sysconfig(&config);
        assert_eq!(code, 0, "{form}: {stderr}");
        assert_eq!(value, want.to_string(), "{form}");
        forms += 1;
    }
    assert_eq!(forms, 4, "documented forms: 0, decimal, hex, octal");
}

#[test]
fn example_default_ksm_is_the_default() {
    // Debian's /etc/default/ksm: parsed like /etc/sysconfig/ksm, every
    // line commented out as shipped, and the variable it documents is the
    // one ksmctl reads.
    let path = repo("etc/default/ksm");
    let text = fs::read_to_string(&path).unwrap();
    let parsed = ksmtuned::config::shellvars::parse(&path, &text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert!(parsed.assignments.is_empty(), "{:?}", parsed.assignments);
    let uncommented = text.replace("#KSM_MAX_KERNEL_PAGES=\n", "KSM_MAX_KERNEL_PAGES=0x10\n");
    assert_ne!(
        uncommented, text,
        "etc/default/ksm lacks #KSM_MAX_KERNEL_PAGES="
    );
    let parsed = ksmtuned::config::shellvars::parse(&path, &uncommented);
    let a = parsed
        .get(ksmtuned::cli::service::MAX_KERNEL_PAGES_VAR)
        .expect("the documented variable is ksmctl's");
    assert_eq!(a.value, "0x10");
    assert!(ksmtuned::cli::service::SERVICE_CONFIG_FILES.contains(&"/etc/default/ksm"));
}
