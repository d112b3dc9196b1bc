//! `ksmctl top` in a real terminal (tmux) and without one.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

#[test]
fn top_without_a_terminal_says_so_and_exits_1() {
    let out = ksmctl()
        .arg("top")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a terminal"), "{err}");
    assert!(out.stdout.is_empty());
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .expect("running tmux (scripts/test installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

#[test]
fn top_in_tmux_shows_the_fixture_and_quits_with_q() {
    let tmux = Tmux {
        socket: format!("ksmctl-top-test-{}", std::process::id()),
    };
    let shell = format!(
        "{} --root {} top --interval 1; echo \"top exited $?\"; sleep 30",
        env!("CARGO_BIN_EXE_ksmctl"),
        fixture_root().display()
    );
    let st = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "80",
            "-y",
            "24",
            &shell,
        ])
        .env_remove("TMUX")
        .status()
        .expect("running tmux (scripts/test installs it)");
    assert!(st.success());
    let screen = poll_until(Duration::from_secs(15), || {
        let s = tmux.screen();
        (s.contains("rhel9") && s.contains("q quit")).then_some(s)
    })
    .unwrap_or_else(|| panic!("top did not draw in 15 s:\n{}", tmux.screen()));
    assert!(screen.contains("KSM running"), "{screen}");
    // (250000 sharing + 300 zero) pages of 4 KiB.
    assert!(screen.contains("saved 978 MiB"), "{screen}");
    assert!(
        screen.contains("web01") && screen.contains("qemu-kvm"),
        "{screen}"
    );
    assert!(screen.contains("3 processes"), "{screen}");
    assert!(screen.lines().count() <= 24);

    // s changes the sort order.
    tmux.cmd()
        .args(["send-keys", "-t", "top", "s"])
        .status()
        .unwrap();
    let sorted = poll_until(Duration::from_secs(5), || {
        let s = tmux.screen();
        s.contains("sort: profit").then_some(s)
    });
    assert!(
        sorted.is_some(),
        "s did not change the sort:\n{}",
        tmux.screen()
    );

    tmux.cmd()
        .args(["send-keys", "-t", "top", "q"])
        .status()
        .unwrap();
    let done = poll_until(Duration::from_secs(5), || {
        let s = tmux.screen();
        s.contains("top exited 0").then_some(s)
    });
    assert!(done.is_some(), "q did not end top:\n{}", tmux.screen());
}
