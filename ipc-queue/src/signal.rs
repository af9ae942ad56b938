//! Blocking without lost wake-ups: an event counter plus a waiter count, both in shared memory.
//!
//! | side   | steps                                                                          |
//! |--------|--------------------------------------------------------------------------------|
//! | waiter | `e = epoch`; `waiters += 1` (SeqCst); `barrier::heavy()`; re-check its condition; `futex_wait(epoch, e)`; `waiters -= 1` |
//! | waker  | change the shared state; `barrier::light()`; load `waiters`; if it was `> 0`: `epoch += 1`, `futex_wake` |
//!
//! The waker's change and the waiter's increment are the two stores of the store-buffer
//! pattern, and [`ipc_core::raw::barrier`] puts a full barrier between each side's store and
//! load: either the waker's load of `waiters` sees the increment (and it bumps the epoch, so the
//! waiter's `futex_wait` returns at once or is woken), or the waiter's re-check sees the
//! waker's change. The waker's barrier is a compiler fence: a push or a pop that finds nobody
//! asleep pays one load of a line nobody writes, no locked instruction and no syscall. The
//! waiter pays one `membarrier` call before it sleeps, after it has spun (see [`block_on`]).
//! `tests/loom.rs` model-checks the protocol with the barrier pair as two SeqCst fences,
//! against a futex model that really blocks, so a lost wake-up is a deadlock loom reports.
//!
//! A waiter killed while asleep leaves the count one too high, which costs later wakers a
//! syscall, never a hang. Waits sleep in bounded slices and re-check liveness between them, so
//! nobody sleeps forever on a peer that died.

use std::time::{Duration, Instant};

use ipc_core::raw::futex::WaitResult;
#[cfg(not(loom))]
use ipc_core::raw::{barrier, futex};

use crate::primitive::{AtomicU32, Ordering};

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
    /// A signal on the model's heap (in a mapping, a zeroed `Signal` is a fresh one).
    #[cfg(loom)]
    #[allow(dead_code)] // only the models of `tests/loom.rs` build one on the heap
    pub(crate) fn new() -> Self {
        Self {
            epoch: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Wakes every waiter, if any announced itself. Call after changing the shared state.
    #[inline]
    pub(crate) fn notify(&self) {
        light_barrier();
        // ORDERING: Relaxed, ordered after the caller's change by the barrier above, which
        // pairs with the heavy barrier in `prepare`: either this load sees the waiter's
        // increment, or the waiter's re-check sees the caller's change.
        if self.waiters.load(Ordering::Relaxed) != 0 {
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
        #[cfg(loom)]
        model_futex::wake();
    }

    /// Announces a waiter; returns the epoch to sleep on. Re-check the condition afterwards.
    pub(crate) fn prepare(&self) -> u32 {
        // ORDERING: Acquire, pairs with the Release increment in `wake`.
        let epoch = self.epoch.load(Ordering::Acquire);
        // ORDERING: SeqCst, the waiter's store of the store-buffer pair; the heavy barrier
        // below orders it before the caller's re-check against every waker's `light` barrier.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        heavy_barrier();
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
            let _ = deadline;
            model_futex::wait(&self.epoch, epoch);
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

/// The waker's half of the barrier pair (see the module docs).
#[inline]
fn light_barrier() {
    #[cfg(not(loom))]
    barrier::light();
    // ORDERING: SeqCst fence, what `barrier::light` amounts to against `barrier::heavy`.
    #[cfg(loom)]
    crate::primitive::fence(Ordering::SeqCst);
}

/// The waiter's half of the barrier pair.
fn heavy_barrier() {
    // `false` is the one case the pair cannot cover (see `ipc_core::raw::barrier`); the sleep
    // that follows is bounded by `SLICE` in any case, after which the waiter re-checks.
    #[cfg(not(loom))]
    let _covered = barrier::heavy();
    // ORDERING: SeqCst fence, what `barrier::heavy` amounts to against `barrier::light`.
    #[cfg(loom)]
    crate::primitive::fence(Ordering::SeqCst);
}

/// A futex for loom models that really blocks: `wait` compares the word and sleeps under one
/// mutex (the kernel's hash-bucket lock), `wake` notifies under it, so a lost wake-up is a
/// deadlock loom reports.
#[cfg(loom)]
mod model_futex {
    use crate::primitive::{AtomicU32, Ordering};

    loom::lazy_static! {
        static ref BUCKET: (loom::sync::Mutex<()>, loom::sync::Condvar) =
            (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32) {
        let guard = BUCKET.0.lock().unwrap();
        // ORDERING: SeqCst, under the bucket lock as the kernel compares the word.
        if word.load(Ordering::SeqCst) == expected {
            drop(BUCKET.1.wait(guard).unwrap());
        }
    }

    pub(super) fn wake() {
        let _guard = BUCKET.0.lock().unwrap();
        BUCKET.1.notify_all();
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
