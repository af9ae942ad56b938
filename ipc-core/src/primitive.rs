//! The crate's atomics facade: every atomic type the crate uses comes from here. ipc-core works
//! on shared memory through syscalls, which loom cannot model, so it always uses the
//! shared-memory atomics of [`crate::atomic`]; crates above swap them for loom's under
//! `--cfg loom`.
#![allow(unused_imports)]

pub(crate) use crate::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
    AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
