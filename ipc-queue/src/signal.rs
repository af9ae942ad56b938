//! Blocking without lost wake-ups: an event counter plus a waiter count, both in shared memory.
//!
//! | side   | steps                                                                          |
//! |--------|--------------------------------------------------------------------------------|
//! | waiter | `e = epoch`; `waiters += 1` (SeqCst); re-check its condition; `futex_wait(epoch, e)`; `waiters -= 1` |
//! | waker  | change the shared state; `waiters += 0` (SeqCst RMW); if it was `> 0`: `epoch += 1`, `futex_wake` |
//!
//! The two read-modify-writes of `waiters` are ordered one way or the other: either the waker's
//! comes second and sees the waiter's increment (and then bumps the epoch, so the waiter's
//! `futex_wait` returns at once or is woken), or the waiter's comes second and synchronises with
//! the waker's, so its re-check sees the waker's change. A waker pays no syscall when nobody waits. A waiter killed
//! while asleep leaves the count one too high, which costs later wakers a syscall, never a hang.
//!
//! Waits sleep in bounded slices and re-check liveness between them, so nobody sleeps forever on
//! a peer that died.

use std::time::{Duration, Instant};

#[cfg(not(loom))]
use ipc_core::raw::futex;
use ipc_core::raw::futex::WaitResult;

use crate::primitive::{AtomicU32, Ordering, fence};

/// How long one sleep lasts at most before liveness is checked again.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// The default time a blocking call spins before it sleeps.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// An event counter and a waiter count (`#[repr(C)]`, 8 bytes, all bit patterns valid).
#[repr(C)]
#[allow(unreachable_pub)]
pub struct Signal {
    epoch: AtomicU32,
    waiters: AtomicU32,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            // ORDERING: Relaxed, a diagnostic snapshot that publishes nothing.
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            // ORDERING: Relaxed, a diagnostic snapshot that publishes nothing.
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

impl Signal {
    /// Wakes every waiter, if any announced itself. Call after changing the shared state.
    #[inline]
    pub(crate) fn notify(&self) {
        // ORDERING: SeqCst read-modify-write (adding nothing), pairs with the SeqCst increment
        // in `prepare`: both are RMWs of `waiters`, so one comes first in its modification
        // order. If ours is first, the waiter's increment reads from a release sequence headed
        // by ours and its re-check sees the caller's change; if the waiter's is first, we read
        // its count and wake it. On x86 a locked add is also cheaper than `mfence`.
        if self.waiters.fetch_add(0, Ordering::SeqCst) != 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // ORDERING: Release, makes the caller's change visible to a waiter that wakes and
        // loads the epoch with Acquire.
        self.epoch.fetch_add(1, Ordering::Release);
        #[cfg(not(loom))]
        futex::wake(&self.epoch, i32::MAX as u32);
    }

    /// Announces a waiter; returns the epoch to sleep on. Re-check the condition afterwards.
    pub(crate) fn prepare(&self) -> u32 {
        // ORDERING: Acquire, pairs with the Release increment in `wake`.
        let epoch = self.epoch.load(Ordering::Acquire);
        // ORDERING: SeqCst, pairs with the SeqCst RMW in `notify`: either the waker sees this
        // increment, or our re-check of the condition sees the waker's change.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // ORDERING: SeqCst fence, orders the increment before the caller's re-check loads.
        fence(Ordering::SeqCst);
        epoch
    }

    /// Withdraws a waiter announced by `prepare`.
    pub(crate) fn finish(&self) {
        // ORDERING: Relaxed, only a hint for wakers; a stale count costs a syscall.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sleeps while the epoch is `epoch`, until `deadline` at the latest.
    pub(crate) fn sleep(&self, epoch: u32, deadline: Instant) -> WaitResult {
        #[cfg(not(loom))]
        {
            futex::wait(&self.epoch, epoch, Some(deadline))
        }
        #[cfg(loom)]
        {
            let _ = (epoch, deadline);
            loom::thread::yield_now();
            WaitResult::Woken
        }
    }

    /// How many waiters are announced (for tests of the async forms' cancellation).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn waiters(&self) -> u32 {
        // ORDERING: Relaxed, a snapshot read by the thread that made every change it checks.
        self.waiters.load(Ordering::Relaxed)
    }

    /// The word itself, for `futex_waitv` over several objects.
    pub(crate) fn epoch_word(&self) -> &AtomicU32 {
        &self.epoch
    }
}

/// What one attempt of a blocking operation found.
pub(crate) enum Attempt<R, E> {
    /// Done (with a value or a final error).
    Ready(Result<R, E>),
    /// Not yet: wait for the signal.
    Pending,
}

/// Why a blocking operation ended without a result.
pub(crate) enum Blocked<E> {
    /// The deadline passed.
    Timeout,
    /// The liveness check (or an attempt) gave up with this error.
    Failed(E),
}

/// Runs `attempt` until it is ready: spinning for `spin`, then sleeping on `signal` in slices of
/// [`SLICE`], calling `check` (liveness) after every slice that ended without a wake-up.
pub(crate) fn block_on<R, E>(
    signal: &Signal,
    deadline: Option<Instant>,
    spin: Duration,
    mut attempt: impl FnMut() -> Attempt<R, E>,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<R, Blocked<E>> {
    if let Attempt::Ready(r) = attempt() {
        return r.map_err(Blocked::Failed);
    }
    if !spin.is_zero() {
        let spin_end = Instant::now() + spin;
        let mut i = 0u32;
        loop {
            std::hint::spin_loop();
            if let Attempt::Ready(r) = attempt() {
                return r.map_err(Blocked::Failed);
            }
            i = i.wrapping_add(1);
            if i % 64 == 0 && Instant::now() >= spin_end {
                break;
            }
        }
    }
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return match attempt() {
                Attempt::Ready(r) => r.map_err(Blocked::Failed),
                Attempt::Pending => Err(Blocked::Timeout),
            };
        }
        let slice_end = match deadline {
            Some(d) => d.min(now + SLICE),
            None => now + SLICE,
        };
        let epoch = signal.prepare();
        if let Attempt::Ready(r) = attempt() {
            signal.finish();
            return r.map_err(Blocked::Failed);
        }
        let woke = signal.sleep(epoch, slice_end);
        signal.finish();
        if let Attempt::Ready(r) = attempt() {
            return r.map_err(Blocked::Failed);
        }
        if woke == WaitResult::TimedOut {
            check().map_err(Blocked::Failed)?;
        }
    }
}
