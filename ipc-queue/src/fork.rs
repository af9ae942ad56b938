//! A number that changes in a child process after `fork`: handles compare it with the value they
//! saw when they claimed a participant entry or a role, and claim again (in the child's own
//! name) when it differs, so that a fork child never acts under its parent's identity.

#[cfg(not(loom))]
use crate::primitive::{Ordering, private::AtomicU64};

#[cfg(not(loom))]
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

#[cfg(not(loom))]
extern "C" fn after_fork_in_child() {
    // ORDERING: Relaxed, the child is single-threaded right after fork; later loads in this
    // thread see the store in program order.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This process's fork generation: 0 in a process that was not forked from one that asked, and
/// one more in each fork child.
#[cfg(not(loom))]
#[inline]
pub(crate) fn generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handler only does an atomic add, which is async-signal-safe and so fine
        // to run in a child right after fork.
        unsafe { ipc_core::raw::os::on_fork_child(after_fork_in_child) };
    });
    // ORDERING: Relaxed, only compared with a value this same process read earlier.
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Under loom there is no fork.
#[cfg(loom)]
pub(crate) fn generation() -> u64 {
    0
}
