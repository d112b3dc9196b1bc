//! The `ksmd` kernel thread: where it is, and how much CPU it used.
//!
//! This is the one reader of ksmd's CPU time for the daemon, the metrics
//! and `ksm-bench`. It reads the run time the scheduler keeps in
//! nanoseconds (`/proc/PID/schedstat`, first field: the task's
//! `sum_exec_runtime`) and falls back to `utime + stime` from
//! `/proc/PID/stat` in clock ticks (10 ms at `USER_HZ` 100) on kernels
//! built without `CONFIG_SCHED_INFO`. Callers that act on small CPU shares
//! look at [`CpuTime::resolution_ns`] to know how long a window must be
//! to resolve them.

use crate::kernel::proc;
use crate::kernel::sys;
use crate::root::Root;

/// ksmd's CPU time (user + system).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    /// Nanoseconds on a CPU since ksmd started.
    pub ns: u64,
    /// The granularity of `ns`: 1 from schedstat, one clock tick from stat.
    pub resolution_ns: u64,
}

impl CpuTime {
    /// The time in seconds.
    pub fn seconds(&self) -> f64 {
        self.ns as f64 / 1e9
    }
}

/// The first field of `/proc/PID/schedstat`: nanoseconds on a CPU.
pub fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The CPU time of process `pid`: from schedstat when the kernel has it,
/// else from stat in clock ticks. `None` when the process is gone.
pub fn cpu_time(root: &Root, pid: u32) -> Option<CpuTime> {
    let schedstat = std::fs::read_to_string(root.join(format!("/proc/{pid}/schedstat")));
    if let Some(ns) = schedstat.ok().as_deref().and_then(parse_schedstat_ns) {
        return Some(CpuTime {
            ns,
            resolution_ns: 1,
        });
    }
    let tick_ns = 1_000_000_000 / sys::clock_ticks().max(1);
    let ticks = proc::cpu_ticks(root, pid)?;
    Some(CpuTime {
        ns: ticks.saturating_mul(tick_ns),
        resolution_ns: tick_ns,
    })
}

/// The pid of the `ksmd` kernel thread, if there is one.
pub fn find_pid(root: &Root) -> Option<u32> {
    // Kernel threads are started early: ksmd has a low pid.
    proc::pids(root)
        .ok()?
        .into_iter()
        .find(|&p| proc::comm(root, p).as_deref() == Some("ksmd"))
}

/// ksmd, with its pid found once and looked up again only when the
/// thread is gone (KSM built as... never a module, but a test tree
/// changes under us).
#[derive(Debug, Clone)]
pub struct Ksmd {
    root: Root,
    pid: Option<u32>,
}

impl Ksmd {
    /// Find ksmd under `root`.
    pub fn new(root: &Root) -> Ksmd {
        Ksmd {
            root: root.clone(),
            pid: find_pid(root),
        }
    }

    /// ksmd's pid, looked up again when the cached one is gone.
    pub fn pid(&mut self) -> Option<u32> {
        if self
            .pid
            .is_none_or(|pid| !self.root.join(format!("/proc/{pid}")).is_dir())
        {
            self.pid = find_pid(&self.root);
        }
        self.pid
    }

    /// ksmd's CPU time now; `None` without a ksmd thread.
    pub fn cpu(&mut self) -> Option<CpuTime> {
        let pid = self.pid()?;
        cpu_time(&self.root, pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat() {
        assert_eq!(parse_schedstat_ns("5879 246140 2\n"), Some(5879));
        assert_eq!(parse_schedstat_ns(""), None);
        assert_eq!(parse_schedstat_ns("x 1 2"), None);
    }

    #[test]
    fn falls_back_to_ticks() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("proc/7");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), "ksmd\n").unwrap();
        std::fs::write(
            d.join("stat"),
            "7 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 3 4 0 0 39 19 1 0 21 0 0\n",
        )
        .unwrap();
        let root = Root::new(t.path());
        let mut k = Ksmd::new(&root);
        assert_eq!(k.pid(), Some(7));
        let tick = 1_000_000_000 / sys::clock_ticks();
        assert_eq!(
            k.cpu(),
            Some(CpuTime {
                ns: 7 * tick,
                resolution_ns: tick
            })
        );
        std::fs::write(d.join("schedstat"), "123456789 0 1\n").unwrap();
        assert_eq!(k.cpu().map(|c| c.ns), Some(123_456_789));
        assert_eq!(k.cpu().map(|c| c.resolution_ns), Some(1));
    }
}
