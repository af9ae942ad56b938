//! The crate's atomics: the workspace's atomics from ipc-core.
#![allow(unused_imports)]

pub(crate) use ipc_core::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
