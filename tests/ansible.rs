//! contrib/ansible: the ksmtuned role run for real by ansible-playbook
//! against this machine (`connection: local`), and ansible-lint.
//!
//! The role installs the package made by scripts/build-deb (or the one
//! $KSMTUNED_DEB names), writes /etc/ksmtuned.conf, and writes and removes
//! MemoryKSM= drop-ins. Checked: the first run changes things, the second
//! changes nothing, bad values are refused by `validate: ksmtuned
//! --check-config` with the live file untouched, and the role's own
//! refusals (a wrong type, MemoryKSM= on an old systemd) say why. The
//! machine is left as it was (a guard purges the package and removes what
//! the runs left, also when an assertion fails), as scripts/package-test
//! does; the two take the same lock so that they never overlap.
//!
//! The services are not started on this machine: the role's service tasks
//! are turned off here (they would start ksmtuned on the real KSM, and PID
//! 1 may not be systemd). The test says so on stderr.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const PKG: &str = "ksmtuned";
const CONF: &str = "/etc/ksmtuned.conf";
const POLICY_RC: &str = "/usr/sbin/policy-rc.d";
const CACHE_DIR: &str = "/var/cache/ksmtuned";
/// A unit that exists nowhere: the role only writes its drop-in.
const TEST_UNIT: &str = "ksmtuned-ansible-test.service";
const DROPIN_NAME: &str = "50-ksmtuned-memory-ksm.conf";
/// Shared with scripts/package-test: one package test at a time.
const PACKAGE_LOCK: &str = "/run/lock/ksmtuned-package.lock";

/// The tests that run the role on this machine, one at a time: each run
/// removes the MemoryKSM= drop-ins it was not asked for, the other's too.
static HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dropin_dir() -> PathBuf {
    Path::new("/etc/systemd/system").join(format!("{TEST_UNIT}.d"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn skip_without(test: &str, tool: &str, how: &str) -> bool {
    if on_path(tool) {
        return false;
    }
    eprintln!("SKIPPED: {test}: {tool} is not installed ({how}; scripts/test installs it)");
    true
}

/// dpkg's state of the package: "" when unknown, "ii", "rc", ...
fn pkg_state() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", PKG])
        .output()
        .expect("running dpkg-query");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The version dpkg knows of the package ("" when none).
fn installed_version() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", PKG])
        .output()
        .expect("running dpkg-query");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn package_installed() -> bool {
    !matches!(pkg_state().as_str(), "" | "un")
}

/// Everything the test may leave on the machine, put back on drop. Until
/// [`HostGuard::arm`] it only holds the lock: a test that skips (the
/// package was already there, someone else's) leaves everything alone.
struct HostGuard {
    _lock: fs::File,
    armed: bool,
    /// The version of the .deb this test installs: only that is purged
    /// (another session on this machine may install its own meanwhile).
    version: String,
    made_policy_rc: bool,
    made_cache_dir: bool,
    /// /etc/ksmtuned.conf as it was before (not from the package).
    conf_before: Option<(Vec<u8>, u32)>,
}

impl HostGuard {
    fn new() -> HostGuard {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PACKAGE_LOCK)
            .unwrap_or_else(|e| panic!("opening {PACKAGE_LOCK}: {e}"));
        eprintln!(
            "ansible: waiting for {PACKAGE_LOCK} (scripts/package-test holds it while it runs)"
        );
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "flock {PACKAGE_LOCK}: {}",
            std::io::Error::last_os_error()
        );
        HostGuard {
            _lock: lock,
            armed: false,
            version: String::new(),
            made_policy_rc: false,
            made_cache_dir: false,
            conf_before: None,
        }
    }

    /// Note what is there, keep dpkg from starting services, and from now
    /// on put everything back on drop.
    fn arm(&mut self, deb: &Path) {
        let out = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(deb)
            .arg("Version")
            .output()
            .expect("running dpkg-deb -f");
        self.version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!self.version.is_empty(), "no Version in {}", deb.display());
        self.made_policy_rc = !Path::new(POLICY_RC).exists();
        if self.made_policy_rc {
            fs::write(
                POLICY_RC,
                "#!/bin/sh\n# tests/ansible.rs: start no services\nexit 101\n",
            )
            .unwrap();
            fs::set_permissions(POLICY_RC, fs::Permissions::from_mode(0o755)).unwrap();
        }
        self.conf_before = fs::read(CONF).ok().map(|b| {
            let mode = fs::metadata(CONF).unwrap().permissions().mode();
            (b, mode)
        });
        self.made_cache_dir = !Path::new(CACHE_DIR).exists();
        self.armed = true;
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let installed = installed_version();
        if package_installed() && installed != self.version {
            eprintln!(
                "ansible: NOT purging {PKG} {installed}: this test installed {} (someone else's?)",
                self.version
            );
        } else if package_installed() {
            eprintln!("ansible: cleaning up: dpkg --purge {PKG}");
            // dpkg's lock may be held a while by apt elsewhere on the
            // machine: try for up to two minutes.
            let mut last = String::new();
            for _ in 0..60 {
                match Command::new("dpkg").args(["--purge", PKG]).output() {
                    Ok(o) if o.status.success() => {
                        last.clear();
                        break;
                    }
                    Ok(o) => last = String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => last = e.to_string(),
                }
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            if !last.is_empty() {
                eprintln!("ansible: dpkg --purge {PKG} failed: {last}");
            }
        }
        if self.made_cache_dir {
            let _ = fs::remove_dir_all(CACHE_DIR);
        }
        let _ = fs::remove_dir_all(dropin_dir());
        if let Some((bytes, mode)) = &self.conf_before {
            let _ = fs::write(CONF, bytes);
            let _ = fs::set_permissions(CONF, fs::Permissions::from_mode(*mode));
        } else if !package_installed() {
            // Written by a run without the package (it was not there before).
            let _ = fs::remove_file(CONF);
        }
        if self.made_policy_rc {
            let _ = fs::remove_file(POLICY_RC);
        }
    }
}

/// The .deb: $KSMTUNED_DEB, or what scripts/build-deb makes (once for
/// all the tests here).
fn deb() -> PathBuf {
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(build_deb).clone()
}

fn build_deb() -> PathBuf {
    if let Some(p) = std::env::var_os("KSMTUNED_DEB") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "KSMTUNED_DEB={} is not a file", p.display());
        return p;
    }
    eprintln!("ansible: building the package (scripts/build-deb; set KSMTUNED_DEB to reuse one)");
    let out = Command::new(repo().join("scripts/build-deb"))
        .current_dir(repo())
        .output()
        .expect("running scripts/build-deb");
    assert!(
        out.status.success(),
        "scripts/build-deb failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = repo().join(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        path.is_file(),
        "scripts/build-deb printed {}",
        path.display()
    );
    path
}

/// One ansible-playbook run of the role on this machine.
struct Run {
    ok: bool,
    changed: u64,
    failed: u64,
    output: String,
}

struct Ansible {
    dir: tempfile::TempDir,
    runs: u32,
    check_mode: bool,
}

impl Ansible {
    fn new() -> Ansible {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("inventory"),
            "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("play.yml"),
            "- name: ksmtuned on this machine\n  hosts: localhost\n  gather_facts: false\n  \
             roles:\n    - role: ksmtuned\n",
        )
        .unwrap();
        Ansible {
            dir,
            runs: 0,
            check_mode: false,
        }
    }

    fn run(&mut self, what: &str, vars: &Value) -> Run {
        self.run_with_path(what, vars, None)
    }

    /// A run in check mode (`--check`): it reports, changes nothing.
    fn check(&mut self, what: &str, vars: &Value) -> Run {
        self.check_mode = true;
        let r = self.run_with_path(what, vars, None);
        self.check_mode = false;
        r
    }

    /// A run with `bin` first on PATH.
    fn run_with_path(&mut self, what: &str, vars: &Value, bin: Option<&Path>) -> Run {
        self.runs += 1;
        let d = self.dir.path();
        let vars_file = d.join(format!("vars-{}.json", self.runs));
        fs::write(&vars_file, serde_json::to_string_pretty(vars).unwrap()).unwrap();
        let mut cmd = Command::new("ansible-playbook");
        if let Some(bin) = bin {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![bin.to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        }
        if self.check_mode {
            cmd.arg("--check");
        }
        let out = cmd
            .arg("-i")
            .arg(d.join("inventory"))
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .arg(d.join("play.yml"))
            .env("ANSIBLE_ROLES_PATH", repo().join("contrib/ansible/roles"))
            .env("ANSIBLE_HOME", d.join("home"))
            .env("ANSIBLE_LOCAL_TEMP", d.join("local-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", d.join("remote-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_CONFIG", d.join("no-ansible.cfg"))
            .output()
            .expect("running ansible-playbook");
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let recap = output
            .lines()
            .find(|l| l.starts_with("localhost") && l.contains(" ok="))
            .unwrap_or_else(|| panic!("{what}: no PLAY RECAP line in:\n{output}"))
            .to_string();
        let count = |key: &str| -> u64 {
            recap
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.parse().ok())
                .unwrap_or_else(|| panic!("{what}: no {key} in {recap:?}"))
        };
        let run = Run {
            ok: out.status.success(),
            changed: count("changed="),
            failed: count("failed="),
            output,
        };
        eprintln!(
            "ansible: {what}: exit {:?}, {}",
            out.status.code(),
            recap.split_once(':').map_or(recap.as_str(), |x| x.1.trim())
        );
        run
    }
}

fn systemd_version() -> u32 {
    let out = Command::new("systemctl").arg("--version").output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The file and when it was last written.
fn snapshot(path: &str) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    (bytes, fs::metadata(path).unwrap().modified().unwrap())
}

fn assert_refused(
    run: &Run,
    what: &str,
    needles: &[&str],
    before: &(Vec<u8>, std::time::SystemTime),
) {
    assert!(
        !run.ok && run.failed > 0,
        "{what}: the run did not fail:\n{}",
        run.output
    );
    for n in needles {
        assert!(
            run.output.contains(n),
            "{what}: no {n:?} in the output:\n{}",
            run.output
        );
    }
    assert!(
        snapshot(CONF) == *before,
        "{what}: {CONF} was changed although the run failed"
    );
}

#[test]
fn role_installs_configures_and_is_idempotent_on_this_machine() {
    let test = "role_installs_configures_and_is_idempotent_on_this_machine";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root (it installs the package)");
        return;
    }
    if skip_without(test, "ansible-playbook", "pip package ansible-core")
        || skip_without(test, "dpkg-deb", "Debian package dpkg")
    {
        return;
    }
    let deb = deb();
    let _host = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let mut guard = HostGuard::new();
    if package_installed() {
        eprintln!(
            "SKIPPED: {test}: the package {PKG} is on this machine ({}); this test installs and \
             purges it, so it leaves it alone",
            pkg_state()
        );
        return;
    }
    if dropin_dir().exists() {
        panic!(
            "{} exists before the test: a run before this one did not clean up",
            dropin_dir().display()
        );
    }
    guard.arm(&deb);
    let old_systemd = systemd_version() < 256;
    let mut ansible = Ansible::new();
    let good = json!({
        "ksmtuned_deb": deb,
        "ksmtuned_policy": "adaptive",
        "ksmtuned_max_cpu": 30,
        "ksmtuned_metrics_listen": "127.0.0.1:9926",
        "ksmtuned_config": {"KSM_MONITOR_INTERVAL": 30, "KSM_NPAGES_MAX": 2500},
        "ksmtuned_manage_services": "false",
        "ksmtuned_memory_ksm_services": [TEST_UNIT],
        "ksmtuned_memory_ksm_old_systemd": "write",
    });
    let with = |extra: Value| {
        let mut v = good.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };

    // --- Without the package the role says so and writes nothing.
    if !on_path("ksmtuned") {
        let r = ansible.run(
            "ksmtuned not installed, ksmtuned_install=false",
            &with(json!({"ksmtuned_install": false})),
        );
        assert!(
            !r.ok
                && r.output
                    .contains("ksmtuned is not installed or does not run"),
            "{}",
            r.output
        );
        assert!(!Path::new(CONF).exists() || guard.conf_before.is_some());
    }

    // --- Check mode first: reports what it would do, does nothing.
    let r = ansible.check("--check before the package", &good);
    assert!(r.ok && r.changed >= 1, "{}", r.output);
    assert!(
        r.output
            .contains("Check mode: ksmtuned is not installed yet"),
        "{}",
        r.output
    );
    assert!(!package_installed(), "--check installed the package");
    assert!(
        !guard.made_cache_dir || !Path::new(CACHE_DIR).exists(),
        "--check made {CACHE_DIR}"
    );
    assert_eq!(
        Path::new(CONF).exists(),
        guard.conf_before.is_some(),
        "--check touched {CONF}"
    );

    // --- First run: installs, writes, changes.
    let first = ansible.run("first run", &good);
    assert!(first.ok, "first run failed:\n{}", first.output);
    assert!(
        first.changed >= 4,
        "first run changed only {}:\n{}",
        first.changed,
        first.output
    );
    assert_eq!(
        pkg_state(),
        "ii",
        "the package is not installed after the first run"
    );
    let conf = fs::read_to_string(CONF).unwrap();
    for line in [
        "KSM_POLICY='adaptive'",
        "KSM_MAX_CPU='30'",
        "KSM_METRICS_LISTEN='127.0.0.1:9926'",
        "KSM_MONITOR_INTERVAL='30'",
        "KSM_NPAGES_MAX='2500'",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "no {line:?} in {CONF}:\n{conf}"
        );
    }
    let mode = fs::metadata(CONF).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "{CONF} has mode {mode:o}");
    let check = Command::new("/usr/sbin/ksmtuned")
        .args(["--check-config", CONF])
        .output()
        .unwrap();
    assert!(
        check.status.success() && check.stderr.is_empty(),
        "the installed ksmtuned does not accept the written file without a word:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let dropin = dropin_dir().join(DROPIN_NAME);
    let text = fs::read_to_string(&dropin)
        .unwrap_or_else(|e| panic!("the drop-in {} was not written: {e}", dropin.display()));
    assert!(text.contains("[Service]\nMemoryKSM=yes\n"), "{text}");

    // --- Second run: nothing to do.
    let second = ansible.run("second run (idempotence)", &good);
    assert!(second.ok, "second run failed:\n{}", second.output);
    assert_eq!(
        second.changed, 0,
        "the second run changed things:\n{}",
        second.output
    );
    let r = ansible.check("--check when all is done", &good);
    assert!(r.ok && r.changed == 0, "{}", r.output);
    let before = snapshot(CONF);

    // --- Bad values: refused by ksmtuned --check-config, file untouched.
    let r = ansible.run("KSM_MAX_CPU=500", &with(json!({"ksmtuned_max_cpu": 500})));
    assert_refused(
        &r,
        "KSM_MAX_CPU=500",
        &["failed to validate", "KSM_MAX_CPU=", "500", "at most 100"],
        &before,
    );
    let r = ansible.run(
        "KSM_MAX_CPU=abc",
        &with(json!({"ksmtuned_config": {"KSM_MAX_CPU": "abc"}})),
    );
    assert_refused(
        &r,
        "KSM_MAX_CPU=abc",
        &[
            "failed to validate",
            "KSM_MAX_CPU=",
            "abc",
            "not a whole number",
        ],
        &before,
    );
    let r = ansible.run("KSM_POLICY=fast", &with(json!({"ksmtuned_policy": "fast"})));
    assert_refused(
        &r,
        "KSM_POLICY=fast",
        &["failed to validate", "KSM_POLICY"],
        &before,
    );
    // A wrong type is refused by the role's argument spec, before anything.
    let r = ansible.run(
        "ksmtuned_max_cpu: abc",
        &with(json!({"ksmtuned_max_cpu": "abc"})),
    );
    assert_refused(&r, "ksmtuned_max_cpu: abc", &["ksmtuned_max_cpu"], &before);

    // --- A misspelt variable: an error where ksmtuned has --strict.
    let help = Command::new("/usr/sbin/ksmtuned")
        .arg("--help")
        .output()
        .unwrap();
    let has_strict = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .any(|w| w == "--strict");
    let typo = with(json!({"ksmtuned_config": {"KSM_NPAGE_MAX": 10}}));
    let r = ansible.run("misspelt KSM_NPAGE_MAX", &typo);
    if has_strict {
        assert_refused(
            &r,
            "misspelt KSM_NPAGE_MAX (--strict)",
            &["failed to validate", "KSM_NPAGE_MAX"],
            &before,
        );
    } else {
        eprintln!(
            "NOTE: {test}: this ksmtuned has no --check-config --strict yet: a misspelt variable \
             is a warning only, and the role (strict: auto) accepted it"
        );
        assert!(r.ok, "misspelt variable without --strict:\n{}", r.output);
        // Asking for --strict where ksmtuned lacks it is refused, loudly.
        let r = ansible.run(
            "strict forced without --strict",
            &with(json!({"ksmtuned_check_config_strict": "true"})),
        );
        assert!(!r.ok && r.output.contains("--strict"), "{}", r.output);
        // Back to the good file.
        let r = ansible.run("back to the good variables", &good);
        assert!(r.ok && r.changed == 1, "{}", r.output);
    }
    let after = ansible.run("third run (idempotence)", &good);
    assert!(after.ok && after.changed == 0, "{}", after.output);
    // The misspelt run rewrote the file and the next one wrote it back.
    let before = snapshot(CONF);

    // --- MemoryKSM= drop-ins: removed when the unit leaves the list.
    let r = ansible.run(
        "no MemoryKSM services",
        &with(json!({"ksmtuned_memory_ksm_services": []})),
    );
    assert!(r.ok && r.changed == 1, "{}", r.output);
    assert!(!dropin.exists(), "{} is still there", dropin.display());
    if old_systemd {
        // The default refuses to write what this systemd would ignore.
        let mut v = good.clone();
        v.as_object_mut()
            .unwrap()
            .remove("ksmtuned_memory_ksm_old_systemd");
        let r = ansible.run("MemoryKSM= on systemd < 256", &v);
        assert_refused(
            &r,
            "MemoryKSM= on systemd < 256",
            &["MemoryKSM= needs systemd 256"],
            &before,
        );
        assert!(
            !dropin.exists(),
            "{} was written although the role refused",
            dropin.display()
        );
        let r = ansible.run(
            "MemoryKSM= on systemd < 256, skip",
            &with(json!({"ksmtuned_memory_ksm_old_systemd": "skip"})),
        );
        assert!(r.ok && r.changed == 0 && !dropin.exists(), "{}", r.output);
    }
    eprintln!(
        "NOT EXERCISED on this machine: the service tasks (enable/start ksm.service and \
         ksmtuned.service, reload on change, daemon-reload): ksmtuned_manage_services=false here, \
         so that nothing starts ksmtuned on the real KSM{}; \
         role_manages_the_services_under_systemd_in_a_container runs them",
        if Path::new("/run/systemd/system").exists() {
            ""
        } else {
            " (and systemd is not PID 1 here)"
        }
    );

    // --- Purge and put everything back; then check that it is so.
    drop(guard);
    assert!(
        !package_installed(),
        "{PKG} is still installed: {}",
        pkg_state()
    );
    assert!(!dropin_dir().exists());
}

#[test]
fn ansible_lint_passes() {
    let test = "ansible_lint_passes";
    if skip_without(test, "ansible-lint", "pip package ansible-lint") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("ansible-lint")
        .arg("--offline")
        .current_dir(repo().join("contrib/ansible"))
        .env("ANSIBLE_HOME", home.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("running ansible-lint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ansible-lint:\n{text}");
    assert!(
        text.contains("0 failure(s), 0 warning(s)"),
        "ansible-lint:\n{text}"
    );
}

/// The service tasks for real: scripts/ansible-sandbox-test boots systemd
/// in a container (over the KSM fixture tree, not the real ksmd) and runs
/// the role there with ksmtuned_manage_services=true.
#[test]
fn role_manages_the_services_under_systemd_in_a_container() {
    let test = "role_manages_the_services_under_systemd_in_a_container";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root (systemd-nspawn)");
        return;
    }
    if skip_without(test, "ansible-playbook", "pip package ansible-core")
        || skip_without(test, "systemd-nspawn", "Debian package systemd-container")
    {
        return;
    }
    let out = Command::new(repo().join("scripts/ansible-sandbox-test"))
        .arg(deb())
        .current_dir(repo())
        .output()
        .expect("running scripts/ansible-sandbox-test");
    let err = String::from_utf8_lossy(&out.stderr);
    for l in err
        .lines()
        .filter(|l| l.starts_with("ansible-sandbox-test: "))
    {
        eprintln!("{l}");
    }
    assert!(
        out.status.success(),
        "scripts/ansible-sandbox-test failed:\n{err}"
    );
}

/// Where `ksmtuned --help` lists `--strict` (another branch adds it), the
/// role checks with it; `ksmtuned_check_config_strict: "false"` turns it
/// off. A stand-in ksmtuned first on PATH records how it is called; the
/// file goes to a temporary directory, nothing is installed.
#[test]
fn strict_check_is_used_where_ksmtuned_has_it() {
    let test = "strict_check_is_used_where_ksmtuned_has_it";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root (the role writes root-owned files)");
        return;
    }
    if skip_without(test, "ansible-playbook", "pip package ansible-core") {
        return;
    }
    let _host = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let calls = dir.path().join("calls");
    let fake = bin.join("ksmtuned");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --help ]; then\n  echo '      --check-config [<FILE>]  Check the configuration'\n  \
             echo '      --strict                 Unknown variables are errors'\n  exit 0\nfi\n\
             echo \"$*\" >>{}\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.path().join("ksmtuned.conf");
    let mut ansible = Ansible::new();
    let vars = |strict: &str, cpu: u32| -> Value {
        json!({
            "ksmtuned_install": false,
            "ksmtuned_manage_services": "false",
            "ksmtuned_config_file": conf,
            "ksmtuned_check_config_strict": strict,
            "ksmtuned_max_cpu": cpu,
        })
    };
    let r = ansible.run_with_path(
        "strict: auto, ksmtuned has --strict",
        &vars("auto", 20),
        Some(&bin),
    );
    assert!(r.ok, "{}", r.output);
    // YAML booleans work as well as the strings.
    let mut v = vars("", 30);
    v["ksmtuned_check_config_strict"] = json!(false);
    let r = ansible.run_with_path("strict: false", &v, Some(&bin));
    assert!(r.ok, "{}", r.output);
    let log = fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("--strict --check-config /"), "{log}");
    assert!(lines[1].starts_with("--check-config /"), "{log}");
    assert!(fs::read_to_string(&conf)
        .unwrap()
        .contains("KSM_MAX_CPU='30'"));
}

#[test]
fn every_role_variable_has_a_type_and_is_documented() {
    let role = repo().join("contrib/ansible/roles/ksmtuned");
    let defaults = fs::read_to_string(role.join("defaults/main.yml")).unwrap();
    let specs = fs::read_to_string(role.join("meta/argument_specs.yml")).unwrap();
    let docs = fs::read_to_string(repo().join("docs/fleet.md")).unwrap();
    let names = |text: &str, indent: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(indent))
            .filter(|l| l.starts_with("ksmtuned_"))
            .filter_map(|l| l.split(':').next())
            .map(String::from)
            .collect()
    };
    let vars = names(&defaults, "");
    assert!(vars.len() >= 10, "{vars:?}");
    let typed = names(&specs, "      ");
    assert_eq!(
        vars, typed,
        "defaults/main.yml and meta/argument_specs.yml list different variables"
    );
    for v in &vars {
        assert!(
            docs.contains(&format!("| `{v}` |")),
            "{v} is not in the variables table of docs/fleet.md"
        );
    }
}
