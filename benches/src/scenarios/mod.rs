//! Scenario groups, one file each.

pub mod limit;
pub mod queue;
