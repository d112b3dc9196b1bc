//! The Cockpit page (cockpit/) in a real browser: Debian's cockpit-ws
//! serving it on localhost, Debian's Chromium driven by playwright-core
//! (cockpit/test/browser.mjs), an administrator and a non-administrator
//! created for the test and removed after it. On the real KSM (holding the
//! ksmd lock; every knob restored on drop) and on fixture trees for the
//! states this kernel cannot be made to show. Screenshots go to
//! target/cockpit-screenshots/ (their paths are printed).
//!
//! Needs root, cockpit-ws, cockpit-bridge, chromium and `npm ci` in
//! cockpit/ (scripts/test installs them); without them it says SKIPPED,
//! except under CI=true, where it fails.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::Experiment;
use support::{free_port, Kill, Probe};

const PASSWORD: &str = "ksm-Cockpit-test-7";

fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("cockpit_page cannot run under CI: {why} (scripts/test should have installed it)");
    }
    eprintln!("SKIPPED: cockpit_page: {why}");
}

/// A user created for the test, removed (home and all) on drop.
struct User(String);

impl User {
    fn create(name: String, admin: bool) -> User {
        let _ = Command::new("userdel").args(["-r", "-f", &name]).output();
        let ok = Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", &name])
            .status()
            .expect("running useradd");
        assert!(ok.success(), "useradd {name} failed");
        let user = User(name);
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("running chpasswd");
        use std::io::Write;
        writeln!(chpasswd.stdin.take().unwrap(), "{}:{PASSWORD}", user.0).unwrap();
        assert!(
            chpasswd.wait().unwrap().success(),
            "chpasswd {} failed",
            user.0
        );
        if admin {
            // Debian's sudoers lets the group sudo run anything with the
            // user's password: Cockpit's administrative access.
            let ok = Command::new("usermod")
                .args(["-aG", "sudo", &user.0])
                .status()
                .unwrap();
            assert!(ok.success(), "usermod -aG sudo {} failed", user.0);
        }
        // The page, installed for this user as Cockpit reads it
        // (~/.local/share/cockpit/PACKAGE), from the committed build.
        let passwd = Command::new("getent")
            .args(["passwd", &user.0])
            .output()
            .unwrap();
        let passwd = String::from_utf8(passwd.stdout).unwrap();
        let home = PathBuf::from(
            passwd
                .trim()
                .split(':')
                .nth(5)
                .unwrap_or_else(|| panic!("getent passwd {}: {passwd:?}", user.0)),
        );
        let dest = home.join(".local/share/cockpit/ksm");
        support::copy_tree(&repo().join("cockpit/dist"), &dest);
        let ok = Command::new("chown")
            .args(["-R", &format!("{0}:{0}", user.0)])
            .arg(home.join(".local"))
            .status()
            .unwrap();
        assert!(ok.success());
        user
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // The user's Cockpit session (bridge, sudo) ends with cockpit-ws,
        // but the session D-Bus the bridge started lingers: end every
        // process of this user (created by this test) before removing it.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.0])
            .status();
        match Command::new("userdel").args(["-r", "-f", &self.0]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "cockpit_page: userdel -r -f {} failed: {}",
                self.0,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cockpit_page: userdel {}: {e}", self.0),
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(path: &str) -> bool {
    Path::new(path).exists()
}

#[test]
fn cockpit_page() {
    if ksmtuned::kernel::sys::euid() != 0 {
        return skip_or_fail("needs root (creates users, runs cockpit-ws)");
    }
    for (path, package) in [
        ("/usr/lib/cockpit/cockpit-ws", "cockpit-ws"),
        ("/usr/bin/cockpit-bridge", "cockpit-bridge"),
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/sudo", "sudo"),
    ] {
        if !have(path) {
            return skip_or_fail(&format!("{path} is missing (apt install {package})"));
        }
    }
    let cockpit = repo().join("cockpit");
    if !cockpit.join("node_modules/playwright-core").is_dir() {
        return skip_or_fail("cockpit/node_modules is missing (npm ci in cockpit/)");
    }
    // The committed page is what a build of cockpit/src makes.
    let built = Command::new("node")
        .arg("build.mjs")
        .arg("--check")
        .current_dir(&cockpit)
        .status()
        .expect("running node build.mjs --check");
    assert!(
        built.success(),
        "cockpit/dist is stale: npm run build in cockpit/ and commit dist/"
    );

    let Some(ksm) = support::real_ksm("cockpit_page") else {
        return;
    };
    let Some(_experiment) = Experiment::begin_or_skip(&ksm) else {
        return;
    };
    // The test starts ksmd from the page: it begins stopped.
    let out = support::ksmctl().arg("stop").output().unwrap();
    assert!(
        out.status.success(),
        "ksmctl stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The binaries and a scratch directory the test users can read.
    let work = tempfile::Builder::new()
        .prefix("ksm-cockpit-")
        .tempdir()
        .unwrap();
    let perms = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    perms(work.path());
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    perms(&bin);
    for (name, from) in [("ksmctl", support::KSMCTL), ("ksmtuned", support::KSMTUNED)] {
        std::fs::copy(from, bin.join(name)).unwrap();
        perms(&bin.join(name));
    }

    let id = std::process::id();
    let admin = User::create(format!("ksmt-admin-{id}"), true);
    let reader = User::create(format!("ksmt-reader-{id}"), false);

    let port = free_port();
    let ws = Kill(
        Command::new("/usr/lib/cockpit/cockpit-ws")
            .args([
                "--no-tls",
                "--address",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting cockpit-ws"),
    );
    support::wait_for("cockpit-ws to listen", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // Something for the estimate to find: two probes with the same
    // contents (they share with each other), big enough (2 x 16 MiB) that
    // the scan, held to 50% of a CPU, shows its progress (a debug ksmctl
    // reads about 2 MiB/s at that limit).
    let probes = [
        Probe::start("ksmt-probe-a", 4096, "madvise", 25),
        Probe::start("ksmt-probe-b", 4096, "madvise", 25),
    ];

    let shots = repo().join("target/cockpit-screenshots");
    let started = std::time::Instant::now();
    let mut node = Command::new("node")
        .arg("test/browser.mjs")
        .current_dir(&cockpit)
        .env("KSMT_URL", format!("http://127.0.0.1:{port}"))
        .env("KSMT_ADMIN", &admin.0)
        .env("KSMT_READER", &reader.0)
        .env("KSMT_PASSWORD", PASSWORD)
        .env("KSMT_KSMCTL", bin.join("ksmctl"))
        .env("KSMT_KSMTUNED", bin.join("ksmtuned"))
        .env("KSMT_FIXTURES", repo().join("tests/fixtures"))
        .env("KSMT_WORK", work.path())
        .env("KSMT_SHOTS", &shots)
        .env("KSMT_PROBES", "ksmt-probe-a,ksmt-probe-b")
        .env_remove("KSM_ROOT")
        // Its own process group, so that a timeout ends Chromium too.
        .process_group(0)
        .spawn()
        .expect("running node test/browser.mjs");
    // A browser that hangs must not hang CI: 5 minutes (it takes ~40 s).
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(300) {
            let group = format!("-{}", node.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = node.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    eprintln!(
        "cockpit_page: browser test took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    drop(probes);
    drop(ws);
    drop((admin, reader));
    let status = status.expect("the browser test did not end within 300 s (killed)");
    assert!(
        status.success(),
        "the browser test failed (see its output above)"
    );
}

/// The page's one reader of ksmctl's output (cockpit/src/model.js) against
/// what ksmctl prints today over the fixture trees (cockpit/test/model.test.mjs):
/// a renamed key fails here without a browser.
#[test]
fn cockpit_model() {
    if !support::have_tool("cockpit_model", "node", "nodejs") {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cockpit_model: node is missing under CI (scripts/test installs it)");
        }
        return;
    }
    let out = Command::new("node")
        .args(["--test", "test/model.test.mjs"])
        .current_dir(repo().join("cockpit"))
        .env("KSMT_KSMCTL", support::KSMCTL)
        .env("KSMT_KSMTUNED", support::KSMTUNED)
        .env("KSMT_FIXTURES", repo().join("tests/fixtures"))
        .env_remove("KSM_ROOT")
        .output()
        .expect("running node --test");
    assert!(
        out.status.success(),
        "cockpit/test/model.test.mjs failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The page's Debian package: the committed page, installed where
/// Cockpit looks for packages, depending on Cockpit's bridge and ksmtuned.
#[test]
fn cockpit_deb() {
    if !support::have_tool("cockpit_deb", "dpkg-deb", "dpkg") {
        return;
    }
    let out = Command::new(repo().join("scripts/build-deb-cockpit"))
        .current_dir(repo())
        .output()
        .expect("running scripts/build-deb-cockpit");
    assert!(
        out.status.success(),
        "scripts/build-deb-cockpit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = repo().join(String::from_utf8(out.stdout).unwrap().trim());
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for f in ["index.html", "manifest.json", "ksm.js", "ksm.css"] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!("./usr/share/cockpit/ksm/{f}")))
            .unwrap_or_else(|| {
                panic!(
                    "{} lacks /usr/share/cockpit/ksm/{f}:\n{listing}",
                    deb.display()
                )
            });
        assert!(line.starts_with("-rw-r--r-- root/root"), "{line}");
        let shipped = std::fs::read(repo().join("cockpit/dist").join(f)).unwrap();
        let size: usize = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(
            size,
            shipped.len(),
            "{f}: the package's copy differs from cockpit/dist"
        );
    }
    let field = |name: &str| {
        let o = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), "ksmtuned-cockpit");
    assert_eq!(field("Architecture"), "all");
    let depends = field("Depends");
    assert!(
        depends.starts_with("cockpit-bridge, ksmtuned (>= 1:"),
        "Depends: {depends}"
    );
}
