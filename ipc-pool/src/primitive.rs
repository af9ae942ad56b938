//! The crate's atomics: the workspace's shared-memory-safe atomics from ipc-core.
#![allow(unused_imports)]

pub(crate) use ipc_core::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
