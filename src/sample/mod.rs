//! One reading of the system per cycle.

pub mod census;
pub mod processes;
pub mod trackers;
