//! Kernel Samepage Merging (KSM) service and tuning daemon.
//!
//! The library holds everything; the binaries in `src/bin/` only parse their
//! arguments and call into it. Data flows one way, and the folders follow
//! it (see `docs/architecture.md`):
//!
//! [`kernel`] (readers and writers of `/sys` and `/proc`) -> [`sample`]
//! (one [`sample::Sample`] per cycle, taken by a [`sample::Sampler`]) ->
//! [`policy`] (pure decisions, and the [`policy::plan`] of writes) -> the
//! views: [`daemon`] (`ksmtuned`), [`cli`] (`ksmctl`), [`metrics`]
//! (Prometheus), [`doctor`] (`ksmctl doctor`, and the unmerge rails) and
//! [`bench`] (`ksm-bench`).
//!
//! Everything that touches the system goes through a [`Root`], `/` in
//! production and a temporary tree in tests, for reads *and* writes.

pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod estimate;
pub mod human;
pub mod journal;
pub mod kernel;
pub mod metrics;
pub mod policy;
pub mod report;
pub mod root;
pub mod sample;

pub use error::{Error, Result};
pub use root::Root;
