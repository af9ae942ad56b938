//! The one place that names atomic types: std's normally, loom's under
//! `--cfg loom`, so algorithms written against these names can be model-checked.
#![allow(unused_imports, unreachable_pub)]

// Normally the workspace's shared-memory atomics from ipc-core (`#[repr(transparent)]` over
// std's, so they pass to `ipc_core::futex`); under loom, loom's behind the same names.
#[cfg(not(loom))]
pub(crate) use ipc_core::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
    AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
    AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

/// Pads and aligns a value to 128 bytes, so that two of them never share a cache line (nor an
/// adjacent-line prefetch pair), as `crossbeam_utils::CachePadded` does on x86_64.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(not(loom))]
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

#[cfg(not(loom))]
extern "C" fn after_fork_in_child() {
    // ORDERING: Relaxed, the child is single-threaded right after fork; later loads in this
    // thread see the store in program order.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes in a child process after `fork`: handles compare it with the value
/// they saw at attach time and attach again (in the child's own name) when it differs.
#[cfg(not(loom))]
pub(crate) fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add, which is async-signal-safe
        // and so fine to run in a child right after fork.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    // ORDERING: Relaxed, only compared with a value this same process read earlier.
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Under loom there is no fork.
#[cfg(loom)]
pub(crate) fn fork_generation() -> u64 {
    0
}
