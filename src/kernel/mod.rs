//! The kernel's interfaces: every read and write of `/sys/kernel/mm/ksm`
//! and `/proc`, and the few system calls the project makes. Nothing above
//! this layer opens a kernel file itself.
//!
//! - [`ksm`]: the files of `/sys/kernel/mm/ksm` (read into a `KsmState`,
//!   written as validated `Setting`s), and the ksmd lock for experiments;
//! - [`meminfo`]: `/proc/meminfo` and memory pressure (PSI);
//! - [`proc`]: per-process files (`comm`, `cmdline`, `status`, `stat`,
//!   `ksm_stat`);
//! - [`smaps`]: per-process memory KSM can never merge (shared, hugetlb,
//!   pinned), and what it scans;
//! - [`host`]: NUMA nodes, virtual machine or not, writable `/sys`;
//! - [`ksmd`]: the ksmd kernel thread and its CPU time;
//! - [`procevents`]: the kernel's process events (netlink connector);
//! - [`selinux`]: SELinux's mode, the loaded policy's types, a process's
//!   context (`/sys/fs/selinux`, `/proc/PID/attr/current`);
//! - [`sys`]: small, documented wrappers of `libc` calls;
//! - [`mapping`]: anonymous memory for probes and benchmark workers;
//! - [`vmas`]: a process's memory areas one by one, and their KSM flag;
//! - [`pagemap`]: which pages are in RAM, their frames' flags, and
//!   reading another process's memory (`ksmctl estimate`).

pub mod host;
pub mod ksm;
pub mod ksmd;
pub mod mapping;
pub mod meminfo;
pub mod pagemap;
pub mod proc;
pub mod procevents;
pub mod selinux;
pub mod smaps;
pub mod sys;
pub mod vmas;
