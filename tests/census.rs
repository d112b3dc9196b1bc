//! The census against the real kernel: a process table kept up to date
//! from the kernel's process events must find the same QEMU processes as a
//! full pass over /proc, through every way a process can become (or stop
//! being) one: exec of a QEMU-named binary, a rename with prctl, a rename
//! through /proc/PID/comm, a fork of a QEMU process, and exit. It touches
//! no KSM knob (nothing is merged), so it needs no ksmd lock.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use ksmtuned::kernel::proc;
use ksmtuned::sample::census::{Census, Changes, Source};
use ksmtuned::sample::trackers::{self, ProcTable, ProcWatch};
use ksmtuned::Root;
use support::*;

/// The tests of this file one at a time: each counts the processes that
/// start and exit on the host, and the others' probes would count too (a
/// parallel test's exit was once taken for a rename counted as an exit).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The event census, or None (said loudly) where the kernel does not offer
/// process events to this process.
fn event_census(root: &Root) -> Option<Census> {
    let c = Census::new(root);
    match c.source() {
        Source::Events => Some(c),
        Source::Listing(why) => {
            // Linux 6.6+ allows any process in the initial namespaces; the
            // CI machines are such hosts, run as root.
            assert!(
                ksmtuned::kernel::sys::euid() != 0
                    || std::env::var_os("KSM_TEST_NO_EVENTS").is_some(),
                "root on this kernel should get process events: {why}"
            );
            eprintln!("SKIPPED: no process events here: {why}");
            None
        }
    }
}

fn qemu_set(table: &mut ProcTable, census: &mut Census, root: &Root) -> BTreeSet<u32> {
    table
        .update(root, census)
        .expect("updating the table")
        .qemu_pids
        .into_iter()
        .collect()
}

fn listed(root: &Root) -> BTreeSet<u32> {
    trackers::scan(root, None)
        .expect("scanning /proc")
        .qemu_pids
        .into_iter()
        .collect()
}

/// Wait until the event table holds `pid` (or not), and check that the
/// listing agrees about it.
fn settle(
    what: &str,
    table: &mut ProcTable,
    census: &mut Census,
    root: &Root,
    pid: u32,
    present: bool,
) {
    wait_for(what, 5, || {
        qemu_set(table, census, root).contains(&pid) == present
    });
    assert_eq!(listed(root).contains(&pid), present, "listing: {what}");
}

#[test]
fn event_table_follows_qemu_processes_like_a_listing() {
    let _serial = serial();
    let root = Root::default();
    let Some(mut census) = event_census(&root) else {
        return;
    };
    let mut table = ProcTable::new(None);
    // The first update lists /proc: the same set as a scan (modulo
    // processes of other tests starting or ending in between).
    let first = qemu_set(&mut table, &mut census, &root);
    let scan = listed(&root);
    assert!(
        first.symmetric_difference(&scan).count() <= 2,
        "first update {first:?}, scan {scan:?}"
    );
    // Later updates: only what changed.
    assert!(matches!(census.changes(true), Ok(Changes::Since { .. })));

    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu-kvm");
    std::os::unix::fs::symlink("/bin/sleep", &qemu).unwrap();

    // 1. exec of a binary named like QEMU.
    let exec = Kill(Command::new(&qemu).arg("600").spawn().unwrap());
    let exec_pid = exec.0.id();
    settle(
        "an exec'd qemu-kvm",
        &mut table,
        &mut census,
        &root,
        exec_pid,
        true,
    );

    // 2. a rename with prctl(PR_SET_NAME) after start (the probe names
    // itself once its pages are set up).
    let probe = Probe::start("qemu:guest1", 16, "none", 1);
    settle(
        "a probe renamed qemu:guest1",
        &mut table,
        &mut census,
        &root,
        probe.pid,
        true,
    );

    // 3. a rename through /proc/PID/comm (a process may only rename
    // itself this way: a shell whose builtin printf writes it), there and
    // back, one step per line on its stdin.
    let mut renamer = Kill(
        Command::new("bash")
            .args([
                "-c",
                "read -r _; printf qemu-system-x86 > /proc/$$/comm; \
                 read -r _; printf bash > /proc/$$/comm; read -r _",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let renamer_pid = renamer.0.id();
    let mut step = || {
        use std::io::Write;
        writeln!(renamer.0.stdin.as_mut().unwrap()).unwrap();
    };
    settle(
        "a plain bash",
        &mut table,
        &mut census,
        &root,
        renamer_pid,
        false,
    );
    step();
    settle(
        "bash renamed through /proc",
        &mut table,
        &mut census,
        &root,
        renamer_pid,
        true,
    );
    step();
    settle(
        "bash renamed back",
        &mut table,
        &mut census,
        &root,
        renamer_pid,
        false,
    );

    // 4. a QEMU process forks: the child has its parent's name until it
    // runs something else. A shell named qemu-kvm that forks a subshell.
    let shell = dir.path().join("qemu-kvm-sh");
    std::fs::create_dir(&shell).unwrap();
    let sh = shell.join("qemu-kvm");
    std::os::unix::fs::symlink("/bin/bash", &sh).unwrap();
    let mut parent = Kill(
        Command::new(&sh)
            .args(["-c", "exec 3<&0; (read -r _ <&3; exit 0) & echo $!; wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(parent.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let child_pid: u32 = line.trim().parse().expect("the subshell's pid");
    settle(
        "the forked child of qemu-kvm",
        &mut table,
        &mut census,
        &root,
        child_pid,
        true,
    );
    settle(
        "the qemu-kvm shell",
        &mut table,
        &mut census,
        &root,
        parent.0.id(),
        true,
    );

    // 5. exits.
    drop(exec);
    settle(
        "the exited qemu-kvm",
        &mut table,
        &mut census,
        &root,
        exec_pid,
        false,
    );
    drop(probe);
    drop(parent.0.stdin.take()); // the subshell reads EOF and exits
    let _ = parent.0.wait();
    settle(
        "the exited subshell",
        &mut table,
        &mut census,
        &root,
        child_pid,
        false,
    );
    drop(renamer);

    // The whole set: equal to a listing once nothing is starting (other
    // tests' processes may come and go: retried).
    wait_for("the event table to equal a listing", 5, || {
        qemu_set(&mut table, &mut census, &root) == listed(&root)
    });
}

#[test]
fn event_watch_sees_a_process_opt_in() {
    let _serial = serial();
    let root = Root::default();
    let Some(mut census) = event_census(&root) else {
        return;
    };
    let mut watch = ProcWatch::new(None);
    let first = watch.update(&root, &mut census).unwrap();
    assert_eq!((first.appeared, first.exited), (0, 0));
    // A probe that opts its pages in (MADV_MERGEABLE): it must appear, and
    // later its exit must count, through events only.
    let probe = Probe::start("worker", 16, "madvise", 2);
    let (mut appeared, mut exited) = (0, 0);
    wait_for("the mergeable probe to appear", 5, || {
        appeared += watch.update(&root, &mut census).unwrap().appeared;
        appeared >= 1
    });
    drop(probe);
    wait_for("the mergeable probe to exit", 5, || {
        exited += watch.update(&root, &mut census).unwrap().exited;
        exited >= 1
    });

    // A mergeable process that renames itself (as guests do) is neither
    // an exit nor a new process: a shell started by `ksmctl exec` (all its
    // memory opted in) writes its own /proc/self/comm.
    let mut shell = Kill(
        Command::new(KSMCTL)
            .args(["exec", "--", "bash", "-c"])
            .arg("read -r _; printf renamed > /proc/$$/comm; read -r _")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = shell.0.id();
    let mut appeared = 0;
    wait_for("the ksmctl exec'd shell to appear", 5, || {
        appeared += watch.update(&root, &mut census).unwrap().appeared;
        appeared >= 1 && proc::comm(&root, pid).as_deref() == Some("bash")
    });
    use std::io::Write;
    writeln!(shell.0.stdin.as_mut().unwrap()).unwrap();
    wait_for("the shell's new name", 5, || {
        proc::comm(&root, pid).as_deref() == Some("renamed")
    });
    // Let the event thread log the rename (it rests 20 ms between reads).
    std::thread::sleep(std::time::Duration::from_millis(100));
    let c = watch.update(&root, &mut census).unwrap();
    assert_eq!(c.exited, 0, "a rename counted as an exit: {c:?}");
}

/// When the kernel drops events (the socket's buffer overflows), the next
/// look lists /proc, and the table is right again.
#[test]
fn lost_events_lead_to_a_listing() {
    let _serial = serial();
    let root = Root::default();
    // The smallest buffer the kernel allows: a few events.
    let mut census = Census::with_buffer(&root, 1);
    if !matches!(census.source(), Source::Events) {
        eprintln!("SKIPPED: no process events here");
        return;
    }
    let mut table = ProcTable::new(None);
    qemu_set(&mut table, &mut census, &root);
    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu-kvm");
    std::os::unix::fs::symlink("/bin/sleep", &qemu).unwrap();
    // A burst of 200 processes started and reaped at once overflows the
    // buffer, and the guest's own events are lost with the rest: only the
    // listing that follows the loss can find it.
    for _ in 0..200 {
        Command::new("true").status().unwrap();
    }
    let guest = Kill(Command::new(&qemu).arg("600").spawn().unwrap());
    settle(
        "the guest after the loss",
        &mut table,
        &mut census,
        &root,
        guest.0.id(),
        true,
    );
}
