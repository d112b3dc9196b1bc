//! Which processes changed since the tuner last looked.
//!
//! A tuner wants to know which processes are QEMU guests (classic) or have
//! memory opted in to KSM (adaptive). Reading every process's files every
//! cycle costs a few microseconds of kernel time per process: 36 ms a
//! cycle on a host with 10,000 processes. Instead, a [`Census`] subscribes
//! to the kernel's process events ([`crate::procevents`]) and a background
//! thread collects the pids that were created, ran `execve`, renamed
//! themselves or exited; a tuner then reads the files of those processes
//! only. Idle processes cost nothing per cycle.
//!
//! The full listing of `/proc` remains: for the first look, after the
//! kernel dropped events (the socket's buffer overflowed), when more
//! processes changed than are worth tracking one by one, and as the only
//! source where events are unavailable (before Linux 6.6 without
//! `CAP_NET_ADMIN`, in a container, or on a test root other than `/`).

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::process;
use crate::procevents::{Connector, ProcEvent, Wait};
use crate::root::Root;

/// More changed processes than this between two looks: a full listing is
/// cheaper than tracking them, and memory stays bounded.
const MAX_PENDING: usize = 50_000;

/// How long [`Census::new`] waits for the kernel to confirm the
/// subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What changed since the previous [`Census::changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Every pid in `/proc` now, ascending: forget what you knew.
    All(Vec<u32>),
    /// Processes that exited (apply these first: a pid can be reused), and
    /// processes that started, ran `execve` or changed their name since,
    /// each list ascending. A process that started and exited in between
    /// appears in `exited` only.
    Since { exited: Vec<u32>, changed: Vec<u32> },
}

/// What the event thread collected since the last look.
#[derive(Debug, Default)]
struct Pending {
    changed: HashSet<u32>,
    exited: HashSet<u32>,
    /// Events were dropped or too many piled up: list `/proc` next time.
    lost: bool,
    /// The socket failed for good: why.
    failed: Option<String>,
}

impl Pending {
    fn apply(&mut self, ev: ProcEvent) {
        if self.lost {
            // /proc is listed next time: nothing to track until then.
            return;
        }
        match ev {
            ProcEvent::Fork {
                child_pid,
                child_tgid,
                ..
            } if child_pid == child_tgid => {
                self.changed.insert(child_tgid);
            }
            // After execve the task leads its thread group: tgid is the
            // process either way.
            ProcEvent::Exec { tgid, .. } => {
                self.changed.insert(tgid);
            }
            // A thread's name is not the process's (`/proc/PID/comm` shows
            // the main thread's).
            ProcEvent::Comm { pid, tgid } if pid == tgid => {
                self.changed.insert(tgid);
            }
            ProcEvent::Exit { pid, tgid } if pid == tgid => {
                self.changed.remove(&tgid);
                self.exited.insert(tgid);
            }
            _ => {}
        }
        if self.changed.len() + self.exited.len() > MAX_PENDING {
            self.overflow();
        }
    }

    fn overflow(&mut self) {
        self.lost = true;
        self.changed.clear();
        self.exited.clear();
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
        Census::with_buffer(root, crate::procevents::RCVBUF)
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
                    &format!("the kernel's process events are not available: {e}"),
                )
            }
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                // The first look lists /proc in any case.
                lost: true,
                ..Pending::default()
            }),
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
        }
    }

    /// Where the changes come from now.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// What changed since the previous call: [`Changes::All`] on the first
    /// call, when `primed` is false (the caller has nothing to apply
    /// changes to), after lost events, and always without events.
    pub fn changes(&mut self, primed: bool) -> io::Result<Changes> {
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
                let mut exited: Vec<u32> = p.exited.drain().collect();
                let mut changed: Vec<u32> = p.changed.drain().collect();
                drop(p);
                exited.sort_unstable();
                changed.sort_unstable();
                return Ok(Changes::Since { exited, changed });
            } else {
                // Events from now on are relative to the listing below.
                p.lost = false;
                p.changed.clear();
                p.exited.clear();
            }
        }
        Ok(Changes::All(process::pids(&self.root)?))
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
                p.overflow();
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

    #[test]
    fn pending_follows_a_process_life() {
        let mut p = Pending::default();
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
        let mut changed: Vec<_> = p.changed.iter().copied().collect();
        changed.sort_unstable();
        assert_eq!(changed, vec![10, 20, 30]);
        assert!(p.exited.is_empty());
        // 20 exits, and its pid is reused by a new process.
        p.apply(ProcEvent::Exit { pid: 20, tgid: 20 });
        assert!(!p.changed.contains(&20));
        p.apply(fork(20));
        assert!(p.changed.contains(&20) && p.exited.contains(&20));
        // Short-lived: started and gone between two looks.
        p.apply(fork(40));
        p.apply(ProcEvent::Exit { pid: 40, tgid: 40 });
        assert!(!p.changed.contains(&40) && p.exited.contains(&40));
        assert!(!p.lost);
    }

    #[test]
    fn too_many_changes_become_a_listing() {
        let mut p = Pending::default();
        for pid in 0..=MAX_PENDING as u32 {
            p.apply(fork(pid + 100));
        }
        assert!(p.lost);
        assert!(p.changed.is_empty() && p.exited.is_empty());
    }

    #[test]
    fn a_test_root_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/42")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc/7")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        let mut c = Census::new(&Root::new(dir.path()));
        assert!(matches!(c.source(), Source::Listing(_)));
        assert_eq!(c.changes(true).unwrap(), Changes::All(vec![7, 42]));
        assert_eq!(c.changes(true).unwrap(), Changes::All(vec![7, 42]));
    }
}
