//! Kernel Samepage Merging (KSM) service and tuning daemon.
//!
//! The library holds everything; the binaries in `src/bin/` only parse their
//! arguments and call into it. Data flows one way:
//!
//! readers of the kernel ([`ksm`] sysfs, [`process`] and [`meminfo`] in
//! `/proc`) -> samples -> a pure policy -> settings -> the [`ksm`] writer.
//!
//! Everything that touches the system goes through a [`Root`], `/` in
//! production and a temporary tree in tests, for reads *and* writes.

pub mod bench;
pub mod census;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod error;
pub mod human;
pub mod ksm;
pub mod mem;
pub mod meminfo;
pub mod metrics;
pub mod pidfile;
pub mod policy;
pub mod process;
pub mod procevents;
pub mod ps;
pub mod root;
pub mod service;
pub mod shellvars;
pub mod status;
pub mod sys;
pub mod top;

pub use error::{Error, Result};
pub use root::Root;
