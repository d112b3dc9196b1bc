//! Which processes changed since the tuner last looked.
//!
//! A tuner wants to know which processes are QEMU guests (classic) or have
//! memory opted in to KSM (adaptive). Reading every process's files every
//! cycle costs a few microseconds of kernel time per process: 36 ms a
//! cycle on a host with 10,000 processes. Instead, a [`Census`] subscribes
//! to the kernel's process events ([`crate::kernel::procevents`]) and a background
//! thread collects the pids that were created, ran `execve`, renamed
//! themselves or exited; a tuner then reads the files of those processes
//! only. Idle processes cost nothing per cycle.
//!
//! The full listing of `/proc` remains: for the first look, after the
//! kernel dropped events (the socket's buffer overflowed), when more
//! processes changed than are worth tracking one by one, and as the only
//! source where events are unavailable (before Linux 6.6 without
//! `CAP_NET_ADMIN`, in a container, or on a test root other than `/`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::kernel::proc;
use crate::kernel::procevents::{Connector, ProcEvent, Wait};
use crate::root::Root;

/// Process events kept between two looks; more, and a listing of `/proc`
/// is cheaper than following them one by one (thousands of processes
/// started in one interval). The log is allocated, and every page of it
/// written, once: the daemon's memory does not grow with bursts.
const LOG_ENTRIES: usize = 8192;

/// How long [`Census::new`] waits for the kernel to confirm the
/// subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What changed since the previous [`Census::changes`] (borrowed from the
/// census's buffers, which are reused: a look allocates nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes<'a> {
    /// Every pid in `/proc` now, ascending: forget what you knew.
    All(&'a [u32]),
    /// Processes that exited (apply these first: a pid can be reused), and
    /// processes that started, ran `execve` or changed their name since
    /// and are still there, each list ascending. A process that started
    /// and exited in between appears in `exited` only.
    Since {
        exited: &'a [u32],
        changed: &'a [u32],
    },
}

/// One process event as logged: a process (not a thread) changed or
/// exited. Sorting entries orders them by pid, then as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    pid: u32,
    /// Position in the log, times two, plus one for an exit.
    seq_exit: u32,
}

impl Entry {
    fn exit(&self) -> bool {
        self.seq_exit & 1 == 1
    }
}

/// A vector of `n` elements' capacity whose every page is written now (a
/// fresh allocation is mapped lazily, and would grow the resident memory
/// later, with the first burst that reaches it).
fn prefaulted<T: Copy>(n: usize, fill: T) -> Vec<T> {
    let mut v = vec![fill; n];
    v.clear();
    v
}

/// What the event thread collected since the last look, in order.
#[derive(Debug)]
struct Pending {
    log: Box<[Entry]>,
    len: usize,
    /// Events were dropped or too many piled up: list `/proc` next time.
    lost: bool,
    /// The socket failed for good: why.
    failed: Option<String>,
}

impl Pending {
    fn new(capacity: usize) -> Pending {
        // A non-zero pattern: every page is written now (see prefaulted).
        let log = vec![
            Entry {
                pid: u32::MAX,
                seq_exit: u32::MAX
            };
            capacity
        ]
        .into_boxed_slice();
        Pending {
            log,
            len: 0,
            // The first look lists /proc in any case.
            lost: true,
            failed: None,
        }
    }

    fn apply(&mut self, ev: ProcEvent) {
        if self.lost {
            // /proc is listed next time: nothing to track until then.
            return;
        }
        let (pid, exit) = match ev {
            ProcEvent::Fork {
                child_pid,
                child_tgid,
                ..
            } if child_pid == child_tgid => (child_tgid, false),
            // After execve the task leads its thread group: tgid is the
            // process either way.
            ProcEvent::Exec { tgid, .. } => (tgid, false),
            // A thread's name is not the process's (`/proc/PID/comm` shows
            // the main thread's).
            ProcEvent::Comm { pid, tgid } if pid == tgid => (tgid, false),
            ProcEvent::Exit { pid, tgid } if pid == tgid => (tgid, true),
            _ => return,
        };
        let seq_exit = (self.len as u32) << 1 | u32::from(exit);
        match self.log.get_mut(self.len) {
            Some(slot) => {
                *slot = Entry { pid, seq_exit };
                self.len += 1;
            }
            None => self.lost = true,
        }
    }

    /// Forget the log: a listing follows.
    fn restart(&mut self) {
        self.len = 0;
        self.lost = false;
    }

    /// Empty the log into `exited` and `changed` (see [`Changes::Since`]),
    /// which have room for a full log.
    fn take(&mut self, exited: &mut Vec<u32>, changed: &mut Vec<u32>) {
        exited.clear();
        changed.clear();
        let log = &mut self.log[..self.len];
        log.sort_unstable();
        for events in log.chunk_by(|a, b| a.pid == b.pid) {
            let pid = events[0].pid;
            if events.iter().any(Entry::exit) {
                exited.push(pid);
            }
            // Its last event says whether a process has this pid now.
            if !events[events.len() - 1].exit() {
                changed.push(pid);
            }
        }
        self.len = 0;
    }
}

struct Shared {
    pending: Mutex<Pending>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The event thread never panics while holding the lock; if it did,
        // the data is still a valid set of pids.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a [`Census`] learns about processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The kernel's process events.
    Events,
    /// A listing of `/proc` on every look, and why.
    Listing(String),
}

/// The processes' changes, from the kernel's events or from `/proc`.
pub struct Census {
    root: Root,
    events: Option<(Arc<Shared>, JoinHandle<()>)>,
    source: Source,
    /// The buffers [`Changes`] borrows.
    pids: Vec<u32>,
    exited: Vec<u32>,
    changed: Vec<u32>,
}

impl std::fmt::Debug for Census {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Census")
            .field("root", &self.root)
            .field("source", &self.source)
            .finish()
    }
}

impl Census {
    /// Subscribe to the kernel's process events if `root` is the host's,
    /// else (or if that fails) list `/proc` on every look; see
    /// [`Census::source`].
    pub fn new(root: &Root) -> Census {
        Census::with_buffer(root, crate::kernel::procevents::RCVBUF)
    }

    /// [`Census::new`] with a socket receive buffer of `rcvbuf` bytes (a
    /// tiny one lets tests make the kernel drop events).
    #[doc(hidden)]
    pub fn with_buffer(root: &Root, rcvbuf: usize) -> Census {
        if !root.is_host() {
            return Census::listing(
                root,
                "the root is not /: its processes are not the kernel's",
            );
        }
        let conn = match Connector::subscribe(SUBSCRIBE_TIMEOUT, rcvbuf) {
            Ok(c) => c,
            Err(e) => {
                return Census::listing(
                    root,
                    &format!(
                        "the kernel's process events are not available: {}",
                        crate::kernel::procevents::why_unavailable(&e)
                    ),
                )
            }
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::new(LOG_ENTRIES)),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        match std::thread::Builder::new()
            .name("proc-events".into())
            .spawn(move || event_thread(conn, &s))
        {
            Ok(thread) => Census {
                root: root.clone(),
                events: Some((shared, thread)),
                source: Source::Events,
                pids: Vec::new(),
                exited: prefaulted(LOG_ENTRIES, u32::MAX),
                changed: prefaulted(LOG_ENTRIES, u32::MAX),
            },
            Err(e) => Census::listing(root, &format!("cannot start the event thread: {e}")),
        }
    }

    /// A census that lists `/proc` on every look.
    pub fn listing(root: &Root, why: &str) -> Census {
        Census {
            root: root.clone(),
            events: None,
            source: Source::Listing(why.to_string()),
            pids: Vec::new(),
            exited: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// Where the changes come from now.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// What changed since the previous call: [`Changes::All`] on the first
    /// call, when `primed` is false (the caller has nothing to apply
    /// changes to), after lost events, and always without events.
    pub fn changes(&mut self, primed: bool) -> io::Result<Changes<'_>> {
        if let Some((shared, _)) = &self.events {
            let mut p = shared.lock();
            if let Some(why) = p.failed.take() {
                drop(p);
                log::warn!(
                    "process events stopped ({why}); listing {} on every cycle from now on",
                    self.root.join("/proc").display()
                );
                self.stop_events();
                self.source = Source::Listing(format!("process events stopped: {why}"));
            } else if primed && !p.lost {
                p.take(&mut self.exited, &mut self.changed);
                return Ok(Changes::Since {
                    exited: &self.exited,
                    changed: &self.changed,
                });
            } else {
                // Events from now on are relative to the listing below.
                p.restart();
            }
        }
        proc::pids_into(&self.root, &mut self.pids)?;
        Ok(Changes::All(&self.pids))
    }

    fn stop_events(&mut self) {
        if let Some((shared, thread)) = self.events.take() {
            shared.stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }
}

impl Drop for Census {
    fn drop(&mut self) {
        self.stop_events();
    }
}

/// How often the event thread checks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// After each wake-up the event thread drains the socket, then rests this
/// long before waiting again, so that a burst of process starts costs a
/// few wake-ups a second instead of one per event (the socket's buffer
/// holds the events meanwhile). A tuner then sees a change at most this
/// much later.
const BATCH: Duration = Duration::from_millis(20);

fn event_thread(conn: Connector, shared: &Shared) {
    let mut buf = vec![0u8; 8192];
    let mut events = Vec::with_capacity(256);
    while !shared.stop.load(Ordering::SeqCst) {
        match conn.wait(STOP_CHECK) {
            Ok(Wait::TimedOut) => continue,
            Ok(Wait::Ready) => {}
            Err(e) => {
                shared.lock().failed = Some(format!("waiting for events: {e}"));
                return;
            }
        }
        // Drain what is there, applying it under one lock per batch.
        loop {
            events.clear();
            let mut lost = false;
            let mut failed = None;
            let mut empty = false;
            while events.len() < 256 {
                match conn.recv(&mut buf, &mut events, false) {
                    Ok(true) => {}
                    Ok(false) => {
                        empty = true;
                        break;
                    }
                    // The kernel dropped events; any event may be among
                    // them.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => lost = true,
                    // A message we cannot read: treat it as a loss.
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        log::debug!("process events: {e}");
                        lost = true;
                    }
                    Err(e) => {
                        failed = Some(format!("reading events: {e}"));
                        break;
                    }
                }
            }
            let mut p = shared.lock();
            if lost {
                p.lost = true;
            } else {
                for &ev in &events {
                    p.apply(ev);
                }
            }
            if failed.is_some() {
                p.failed = failed;
                return;
            }
            drop(p);
            if empty {
                break;
            }
        }
        std::thread::sleep(BATCH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork(child: u32) -> ProcEvent {
        ProcEvent::Fork {
            parent_tgid: 1,
            child_pid: child,
            child_tgid: child,
        }
    }

    fn since(p: &mut Pending) -> (Vec<u32>, Vec<u32>) {
        let (mut exited, mut changed) = (Vec::new(), Vec::new());
        p.take(&mut exited, &mut changed);
        (exited, changed)
    }

    #[test]
    fn pending_follows_a_process_life() {
        let mut p = Pending::new(64);
        assert!(p.lost, "the first look is a listing");
        p.restart();
        p.apply(fork(10));
        // A thread of 10: not a process.
        p.apply(ProcEvent::Fork {
            parent_tgid: 10,
            child_pid: 11,
            child_tgid: 10,
        });
        p.apply(ProcEvent::Exec { pid: 20, tgid: 20 });
        p.apply(ProcEvent::Comm { pid: 30, tgid: 30 });
        p.apply(ProcEvent::Comm { pid: 31, tgid: 30 }); // a thread renamed
        p.apply(ProcEvent::Exit { pid: 11, tgid: 10 }); // a thread exits
        p.apply(ProcEvent::Other);
        assert_eq!(since(&mut p), (vec![], vec![10, 20, 30]));
        // Emptied by the look.
        assert_eq!(since(&mut p), (vec![], vec![]));
        // 20 exits, and its pid is reused by a new process.
        p.apply(ProcEvent::Exit { pid: 20, tgid: 20 });
        p.apply(fork(20));
        // Short-lived: started and gone between two looks.
        p.apply(fork(40));
        p.apply(ProcEvent::Exec { pid: 40, tgid: 40 });
        p.apply(ProcEvent::Exit { pid: 40, tgid: 40 });
        // Renamed, then exited.
        p.apply(ProcEvent::Comm { pid: 30, tgid: 30 });
        p.apply(ProcEvent::Exit { pid: 30, tgid: 30 });
        assert_eq!(since(&mut p), (vec![20, 30, 40], vec![20]));
        assert!(!p.lost);
    }

    #[test]
    fn a_full_log_becomes_a_listing() {
        let mut p = Pending::new(100);
        p.restart();
        for pid in 0..=100 {
            p.apply(fork(pid + 100));
        }
        assert!(p.lost);
        p.restart();
        assert!(!p.lost);
        assert_eq!(since(&mut p), (vec![], vec![]));
    }

    #[test]
    fn a_test_root_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/42")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc/7")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        let mut c = Census::new(&Root::new(dir.path()));
        assert!(matches!(c.source(), Source::Listing(_)));
        assert_eq!(c.changes(true).unwrap(), Changes::All(&[7, 42]));
        assert_eq!(c.changes(true).unwrap(), Changes::All(&[7, 42]));
    }
}
