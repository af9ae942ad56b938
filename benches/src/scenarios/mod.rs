//! Scenario groups, one file each.

pub mod cluster;
pub mod core;
pub mod iceoryx2;
pub mod ipc_channel;
pub mod limit;
pub mod os;
pub mod pool;
pub mod process;
pub mod python;
pub mod queue;
pub mod sync;
pub mod threads;
