//! The crate's atomics: the workspace's one facade, [`ipc_core::raw::sync`] (shared-memory
//! atomics normally, loom's under `--cfg loom`, std's in `private` for process-private statics,
//! and crossbeam-utils' `CachePadded`). `tests/loom.rs` compiles the protocol files against this
//! same file.
#![allow(unused_imports, unreachable_pub)]

pub(crate) use ipc_core::raw::sync::*;
