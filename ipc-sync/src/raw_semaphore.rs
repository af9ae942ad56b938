//! The counting semaphore state machine shared by `Semaphore` and `BoundedSemaphore`.
//!
//! ## State
//!
//! | field     | meaning                                                              |
//! |-----------|----------------------------------------------------------------------|
//! | `count`   | permits available; the futex word sleepers wait on while it is 0     |
//! | `waiters` | sleepers that announced themselves (a hint: a stale value costs a syscall or a slice) |
//! | `bound`   | the largest legal count for a bounded semaphore, 0 for unbounded     |
//!
//! | from      | to        | by                                                      |
//! |-----------|-----------|---------------------------------------------------------|
//! | c > 0     | c - 1     | `acquire`, one CAS                                      |
//! | c         | c + n     | `release(n)`, one CAS, refused past `bound` or `u32::MAX`; wakes `n` if `waiters > 0` |
//!
//! Waiters and wakers pair by the store-buffer pattern of `ipc_core::raw::futex`: the waiter
//! increments `waiters` and fences (SeqCst) before the kernel re-checks `count == 0`; the waker
//! changes `count` then fences (SeqCst) before it reads `waiters`. (The loom model found the
//! pattern without the waiter's fence to lose a wake-up under its rules.) Sleeps are bounded by slices anyway,
//! so a corrupted `waiters` costs latency, never a hang. Every `count` is a legal state.

use std::task::Poll;
use std::time::Instant;

use crate::primitive::{AtomicU32, Ordering, fence};
use crate::sys::{Arm, Park, passed, slice_end};

/// The shared state of a semaphore (16 bytes, `#[repr(C)]`, every bit pattern valid).
#[repr(C)]
#[derive(Debug)]
pub struct SemaphoreState {
    count: AtomicU32,
    waiters: AtomicU32,
    bound: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<SemaphoreState>() == 16);

/// What an async acquisition carries from one poll to the next.
#[derive(Debug, Default)]
pub(crate) struct AcquireWait {
    /// Counted in `waiters` now.
    announced: bool,
    /// Armed at least once: a release's wake may have gone to this waiter.
    armed: bool,
}

/// A release was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseRefused {
    /// The count would pass the bound.
    PastBound,
    /// The count would pass `u32::MAX`.
    Overflow,
}

impl SemaphoreState {
    /// A semaphore holding `value` permits; `bound` 0 means unbounded.
    pub fn new(value: u32, bound: u32) -> Self {
        let s = Self {
            count: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            bound: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        };
        s.init(value, bound);
        s
    }

    /// Writes the initial state into zeroed shared memory.
    pub(crate) fn init(&self, value: u32, bound: u32) {
        // ORDERING: Relaxed, not yet published: the segment header's Release publishes it.
        self.count.store(value, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        self.bound.store(bound, Ordering::Relaxed);
    }

    /// The bound recorded at creation (0: unbounded).
    pub(crate) fn bound(&self) -> u32 {
        // ORDERING: Relaxed, written once before the segment was published.
        self.bound.load(Ordering::Relaxed)
    }

    /// The permits available now (a snapshot).
    pub(crate) fn value(&self) -> u32 {
        // ORDERING: Relaxed, a snapshot.
        self.count.load(Ordering::Relaxed)
    }

    /// Takes a permit if one is available; never blocks.
    pub(crate) fn try_acquire(&self) -> bool {
        // ORDERING: Relaxed, the CAS below carries the Acquire.
        let mut c = self.count.load(Ordering::Relaxed);
        while c > 0 {
            // ORDERING: Acquire on success, pairs with the Release CAS in `release`: what the
            // releaser wrote before releasing is visible.
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes a permit, sleeping in slices until `deadline` (`None`: no limit). Returns `false`
    /// if the deadline passed first.
    pub(crate) fn acquire(&self, deadline: Option<Instant>, park: &impl Park) -> bool {
        loop {
            if self.try_acquire() {
                return true;
            }
            if passed(deadline) {
                return false;
            }
            // ORDERING: SeqCst, pairs with the SeqCst fence in `release` (store-buffer pair).
            self.waiters.fetch_add(1, Ordering::SeqCst);
            // ORDERING: SeqCst fence, orders the increment before the count check (made by the
            // kernel, or by the loom model); with the fence in `release` either side sees the
            // other's write. Free on x86 after a locked RMW; it also keeps loom, which treats
            // SeqCst accesses as AcqRel, exact.
            fence(Ordering::SeqCst);
            let end = slice_end(deadline, park.slice());
            park.wait(&self.count, 0, end);
            // ORDERING: Relaxed, only a hint for wakers.
            self.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// One poll of an async acquisition (the steps of [`acquire`](Self::acquire), returning
    /// `Pending` where it would sleep): announces itself in `waiters` as a sleeper does, then
    /// arms `arm` on `count` with the value 0 its last check read. `Ready(false)` once
    /// `deadline` has passed.
    pub(crate) fn poll_acquire(
        &self,
        deadline: Option<Instant>,
        wait: &mut AcquireWait,
        park: &impl Park,
        arm: &mut impl Arm,
    ) -> Poll<bool> {
        self.withdraw(wait);
        loop {
            if self.try_acquire() {
                return Poll::Ready(true);
            }
            if passed(deadline) {
                return Poll::Ready(false);
            }
            // ORDERING: SeqCst, pairs with the SeqCst fence in `release` (store-buffer pair), as
            // in `acquire`.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            wait.announced = true;
            // ORDERING: SeqCst fence, orders the increment before the re-check below; with the
            // fence in `release`, either the releaser sees the increment or we see its count.
            fence(Ordering::SeqCst);
            // ORDERING: Relaxed, ordered after the fence; `try_acquire` takes with Acquire.
            if self.count.load(Ordering::Relaxed) != 0 {
                self.withdraw(wait);
                continue;
            }
            wait.armed = true;
            arm.arm(&self.count, 0, deadline, park.slice());
            return Poll::Pending;
        }
    }

    /// Withdraws an async waiter's announcement, if it made one.
    pub(crate) fn withdraw(&self, wait: &mut AcquireWait) {
        if wait.announced {
            wait.announced = false;
            // ORDERING: Relaxed, only a hint for wakers.
            self.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// An async acquisition given up (its future dropped): withdraws its announcement and, if
    /// it was armed and a permit is available, hands on the wake-up it may have consumed.
    pub(crate) fn cancel_wait(&self, wait: &mut AcquireWait, park: &impl Park) {
        self.withdraw(wait);
        if wait.armed && self.value() != 0 {
            park.wake(&self.count, 1);
        }
    }

    /// Returns `n` permits and wakes up to `n` sleepers.
    pub(crate) fn release(&self, n: u32, park: &impl Park) -> Result<(), ReleaseRefused> {
        let bound = self.bound();
        // ORDERING: Relaxed, the CAS below carries the Release.
        let mut c = self.count.load(Ordering::Relaxed);
        loop {
            let new = c.checked_add(n).ok_or(ReleaseRefused::Overflow)?;
            if bound != 0 && new > bound {
                return Err(ReleaseRefused::PastBound);
            }
            // ORDERING: Release on success, pairs with the Acquire CAS in `try_acquire`:
            // publishes what was written before releasing.
            match self
                .count
                .compare_exchange_weak(c, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        // ORDERING: SeqCst fence, pairs with the SeqCst increment in `acquire`: orders the count
        // change before the waiter-count load.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            park.wake(&self.count, n);
        }
        Ok(())
    }
}
