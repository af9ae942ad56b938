//! An asymmetric full barrier: a [`light`] side that costs a compiler fence, for the path that
//! runs on every operation, and a [`heavy`] side that makes the light one a full barrier, for
//! the path that runs only before a sleep.
//!
//! ## What it is for
//!
//! A waker and a sleeper meet in the store-buffer pattern: the waker stores its change and then
//! loads a waiter count; the sleeper stores its increment of the count and then loads the
//! change. Each side needs a full barrier between its store and its load, or both loads can
//! miss both stores and the sleeper never wakes. On x86 a full barrier (`mfence`, or a locked
//! read-modify-write) waits for the store buffer to drain, and when the other process is
//! reading the stored line (a ring's consumer spinning on the tail) that is a cross-core cache
//! transfer on every message.
//!
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` moves the whole cost to the sleeper: it runs a
//! full barrier on every running thread of every process registered for it, so the waker's
//! side needs only to keep the compiler from reordering its store and load.
//!
//! | side  | call          | cost                                              |
//! |-------|---------------|---------------------------------------------------|
//! | waker | [`light`]     | a compiler fence (a `fence(SeqCst)` in a process that could not register) |
//! | sleeper | [`heavy`]   | `fence(SeqCst)` and one `membarrier` system call (about 2 µs with a registered process running on another CPU, 0.2 µs without) |
//!
//! Either the barrier [`heavy`] forces on the waker's CPU comes after the waker's store, and the
//! sleeper's load (after [`heavy`] returns) sees the store; or it comes before the waker's load,
//! and that load sees the sleeper's increment (made before [`heavy`]). The loom model in
//! `ipc-queue/tests/loom.rs` checks the signal protocol built on it with both sides as
//! `fence(SeqCst)`, which is what the pair guarantees.
//!
//! ## Registration
//!
//! A process registers at its first [`light`] (one system call); a forked child registers again
//! at its own first [`light`] (a fork handler forgets the parent's registration). Where the
//! kernel lacks the command, no process can register, so every [`light`] stays a
//! `fence(SeqCst)` and [`heavy`]'s own fence completes the pair. (The slow system-wide
//! `MEMBARRIER_CMD_GLOBAL` is not used as a fallback: it waits for an RCU grace period,
//! milliseconds before every sleep.) A sleeper in a process that a seccomp filter keeps from
//! calling `membarrier` while its waker's process registered is the one case the pair cannot
//! cover: [`heavy`] returns `false` there, and the caller must bound its sleep (the workspace's
//! waits sleep in slices of at most 20 ms and re-check).

use core::sync::atomic::{Ordering, compiler_fence, fence};

use super::sync::private::AtomicU8;
use crate::platform;

/// Not yet decided in this process (or forked since).
const UNKNOWN: u8 = 0;
/// Registered: [`light`] is a compiler fence.
const ASYMMETRIC: u8 = 1;
/// Could not register: [`light`] is a full fence.
const SYMMETRIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The waker's side: orders the caller's earlier stores before its later loads against any
/// thread that calls [`heavy`].
#[inline]
pub fn light() {
    // ORDERING: Relaxed, a process-private flag; a stale `UNKNOWN` or `SYMMETRIC` only takes
    // the full fence, which is always enough.
    if MODE.load(Ordering::Relaxed) == ASYMMETRIC {
        // ORDERING: compiler fence, keeps the caller's store and load in program order; the
        // processor-level barrier is supplied by `heavy` on the other side.
        compiler_fence(Ordering::SeqCst);
    } else {
        light_slow();
    }
}

#[cold]
fn light_slow() {
    decide();
    // ORDERING: SeqCst fence, a full barrier for this call (registration, if it succeeded,
    // covers the later ones).
    fence(Ordering::SeqCst);
}

/// Registers this process if it has not decided yet.
fn decide() {
    // ORDERING: Relaxed, as in `light`.
    if MODE.load(Ordering::Relaxed) != UNKNOWN {
        return;
    }
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| platform::at_fork_child(forget_in_child));
    let mode = if cfg!(miri) {
        SYMMETRIC
    } else if platform::membarrier_register().is_ok() {
        ASYMMETRIC
    } else {
        SYMMETRIC
    };
    // ORDERING: Relaxed, the registration is complete (the system call returned) before any
    // thread of this process can read ASYMMETRIC; the value only selects a code path.
    MODE.store(mode, Ordering::Relaxed);
}

extern "C" fn forget_in_child() {
    // ORDERING: Relaxed, the child is single-threaded right after fork.
    MODE.store(UNKNOWN, Ordering::Relaxed);
}

/// The sleeper's side: after it returns, every [`light`] caller's stores before its call are
/// visible to the caller's later loads, or that [`light`] caller's later loads see the
/// caller's stores before this call. Returns `false` in the one case it cannot promise that
/// for a registered waker (see the module docs): the caller then bounds its sleep.
pub fn heavy() -> bool {
    // ORDERING: SeqCst fence, a full barrier on this thread: the whole of this side's half when
    // the waker could not register and uses full fences.
    fence(Ordering::SeqCst);
    if cfg!(miri) {
        return true;
    }
    platform::membarrier_global().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_decides_once_and_heavy_is_a_barrier_here() {
        light();
        // ORDERING: Relaxed, read back by the thread that decided.
        assert_ne!(MODE.load(Ordering::Relaxed), UNKNOWN);
        light();
        assert!(heavy(), "membarrier refused on this machine");
    }
}
