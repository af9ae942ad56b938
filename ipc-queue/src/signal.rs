//! Blocking without lost wake-ups: an event counter plus a waiter count, both in shared memory.
//!
//! | side   | steps                                                                          |
//! |--------|--------------------------------------------------------------------------------|
//! | waiter | `e = epoch`; `waiters += 1` (SeqCst); barrier; re-check its condition; `futex_wait(epoch, e)`; `waiters -= 1` |
//! | waker  | change the shared state; barrier; load `waiters`; if it was `> 0`: `epoch += 1`, `futex_wake` |
//!
//! The waker's change and the waiter's increment are the two stores of the store-buffer
//! pattern, and each side puts a full barrier between its store and its load: either the
//! waker's load of `waiters` sees the increment (and it bumps the epoch, so the waiter's
//! `futex_wait` returns at once or is woken), or the waiter's re-check sees the waker's change.
//! The barrier pair is one of two kinds, fixed when the object is made (a bit of `waiters` that
//! nothing changes afterwards):
//!
//! | kind | waker's barrier | waiter's barrier | for |
//! |------|-----------------|------------------|-----|
//! | symmetric (the default) | a SeqCst read-modify-write of `waiters` (adding nothing) | its SeqCst increment and a SeqCst fence | signals many processes sleep on (a queue's consumers, a pool's workers) |
//! | asymmetric ([`Signal::make_asymmetric`]) | a compiler fence ([`ipc_core::raw::barrier::light`]) | `membarrier` ([`ipc_core::raw::barrier::heavy`]) | one-to-one paths (a ring's two ends, a pipe's directions) |
//!
//! A symmetric signal's waker whose change was itself a SeqCst read-modify-write of the word the
//! waiter re-checks (a queue's commit and release CASes) needs no read-modify-write of its own:
//! [`Signal::notify_after_seqcst_change`] loads the count SeqCst (the argument is in its docs).
//!
//! An asymmetric signal costs a push or a pop that finds nobody asleep one load of a line
//! nobody writes, no locked instruction and no syscall; its waiter pays one `membarrier` call
//! (about 2 µs while the waker's process runs on another CPU) before it sleeps, which it does
//! only after spinning. Where many processes sleep on one signal and every wake-up wakes them
//! all, those calls add up (a pool of 64 workers mapped at 0.65× its symmetric speed), so queues
//! keep the symmetric kind. `tests/loom.rs` model-checks the protocol (both barrier pairs as
//! SeqCst fences) against a futex model that really blocks, so a lost wake-up is a deadlock loom
//! reports.
//!
//! A waiter killed while asleep leaves the count one too high, which costs later wakers a syscall,
//! never a hang. Waits sleep in bounded slices and re-check liveness between them, so nobody sleeps
//! forever on a peer that died; a wait announces itself once, at its first sleep, and stays
//! announced until it ends, each later slice reading the epoch again before its re-check
//! ([`Signal::epoch_again`]): an idle waiter pays no barrier per slice. A peer that flips the kind
//! bit can only cost wake-ups a slice of delay.

use std::time::{Duration, Instant};

use ipc_core::raw::futex::WaitResult;
#[cfg(not(loom))]
use ipc_core::raw::{barrier, futex};

use crate::primitive::{AtomicU32, Ordering, fence};

/// How long one sleep lasts at most before liveness is checked again.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// The default time a blocking call spins before it sleeps.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// The bit of `waiters` that marks an asymmetric signal (set once, before the object is shared).
const ASYMMETRIC: u32 = 1 << 31;

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

    /// Makes this signal asymmetric (see the module docs). Call on a fresh signal, before the
    /// object is shared: both sides must agree on the kind.
    pub(crate) fn make_asymmetric(&self) {
        // ORDERING: Relaxed, published with the rest of the fresh object by its creator's
        // Release publish of the header.
        self.waiters.fetch_or(ASYMMETRIC, Ordering::Relaxed);
    }

    /// Wakes every waiter, if any announced itself. Call after changing the shared state.
    #[inline]
    pub(crate) fn notify(&self) {
        // ORDERING: Relaxed, reads the kind bit, which nothing changes once the object is
        // shared.
        let count = if self.waiters.load(Ordering::Relaxed) & ASYMMETRIC != 0 {
            light_barrier();
            // ORDERING: Relaxed, ordered after the caller's change by the light barrier, which
            // pairs with the heavy one in `prepare`: either this load sees the waiter's
            // increment, or the waiter's re-check sees the caller's change.
            self.waiters.load(Ordering::Relaxed)
        } else {
            // ORDERING: SeqCst read-modify-write (adding nothing), pairs with the SeqCst
            // increment in `prepare`: both are RMWs of `waiters`, so one comes first in its
            // modification order. If ours is first, the waiter's increment reads from a release
            // sequence headed by ours and its re-check sees the caller's change; if the
            // waiter's is first, we read its count and wake it. On x86 a locked add is also
            // cheaper than `mfence`.
            self.waiters.fetch_add(0, Ordering::SeqCst)
        };
        if count & !ASYMMETRIC != 0 {
            self.wake();
        }
    }

    /// [`notify`](Self::notify) for a caller whose change was a SeqCst read-modify-write of
    /// the very word a waiter re-checks (a queue's slot word, by `commit_put` or `finish_get`),
    /// made just before: a symmetric signal's waker then needs no read-modify-write of its own.
    /// C++20's rules for SeqCst operations and fences (\[atomics.order\]) give it: if our
    /// SeqCst load misses the waiter's increment, the load precedes the increment in the single
    /// total order S, our change precedes the load, and the increment precedes the waiter's
    /// SeqCst fence, so the change precedes that fence in S; a re-check after the fence that
    /// read a value older than our change would put the fence before our change in S. So the
    /// re-check sees the change. (On x86 the locked instruction of the change is itself a full
    /// barrier; on AArch64 a `stlr`/`casal` is ordered before a later `ldar`.)
    #[inline]
    pub(crate) fn notify_after_seqcst_change(&self) {
        // ORDERING: SeqCst, the load of the argument above; also reads the kind bit, which
        // nothing changes once the object is shared.
        let count = self.waiters.load(Ordering::SeqCst);
        let count = if count & ASYMMETRIC != 0 {
            light_barrier();
            // ORDERING: Relaxed, as in `notify`.
            self.waiters.load(Ordering::Relaxed)
        } else {
            // loom treats a SeqCst load and read-modify-write as AcqRel (loom's documented
            // limit), so the model stands in a SeqCst fence for the total order argued above.
            #[cfg(loom)]
            {
                fence(Ordering::SeqCst);
                // ORDERING: Relaxed, after the model's fence.
                self.waiters.load(Ordering::Relaxed)
            }
            #[cfg(not(loom))]
            count
        };
        if count & !ASYMMETRIC != 0 {
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
        // ORDERING: SeqCst, the waiter's store of the store-buffer pair and, for a symmetric
        // signal, its full barrier (a locked read-modify-write is one).
        let before = self.waiters.fetch_add(1, Ordering::SeqCst);
        if before & ASYMMETRIC != 0 {
            heavy_barrier();
        } else {
            // ORDERING: SeqCst fence, orders the increment before the caller's re-check loads
            // (as the increment's own SeqCst does on x86; the fence says so in the model).
            fence(Ordering::SeqCst);
        }
        epoch
    }

    /// The epoch to sleep on next, for a waiter still announced by a `prepare` of the same wait
    /// (not yet withdrawn by `finish`): read, as `prepare` reads it, before the caller's
    /// re-check. The announcement and its barrier stand: the barrier lies between the increment
    /// and every later re-check, so the store-buffer argument of the module docs holds for each
    /// of them, and a wake-up after such a re-check bumps the epoch past this value (or the
    /// epoch load synchronises with that bump, and the re-check sees the change). A wait that
    /// sleeps slice after slice so announces itself once, not once a slice: for an asymmetric
    /// signal each announcement is a `membarrier` call, which on a virtual machine interrupts
    /// every CPU that runs a registered process.
    pub(crate) fn epoch_again(&self) -> u32 {
        // ORDERING: Acquire, pairs with the Release increment in `wake`, as in `prepare`.
        self.epoch.load(Ordering::Acquire)
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
        self.waiters.load(Ordering::Relaxed) & !ASYMMETRIC
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

/// The longest spin taken as asked: a longer one (`Duration::MAX` for "spin until ready") spins
/// this long, about a century, rather than overflowing the clock.
const LONGEST_SPIN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When a spin that starts `now` ends: after `spin`, or at the deadline if that comes first (a
/// call with a short timeout returns after it, not after the whole spin).
pub(crate) fn spin_end_at(now: Instant, spin: Duration, deadline: Option<Instant>) -> Instant {
    let spun = now + spin.min(LONGEST_SPIN);
    deadline.map_or(spun, |d| d.min(spun))
}

/// The liveness checks of a spin longer than a slice (`set_spin` allows any length): one per
/// [`SLICE`] of spinning, as a sleeping wait makes one per slice, so that no spin outlasts a
/// dead peer by more than a slice. A spin of the default length never reaches one.
#[derive(Debug, Default)]
pub(crate) struct SpinCheck {
    next: Option<Instant>,
}

impl SpinCheck {
    /// Whether a check is due at `now` (a reading of the clock the spin made anyway).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        let next = self.next.get_or_insert(now + SLICE);
        if now < *next {
            return false;
        }
        *next = now + SLICE;
        true
    }
}

/// Runs `attempt` until it is ready: spinning for `spin` (`look` between two attempts:
/// [`look_pause`](ipc_core::raw::sync::look_pause), or
/// [`quick_look_pause`](ipc_core::raw::sync::quick_look_pause) where the word an attempt looks
/// at is published by stores back to back), then sleeping on `signal` in slices of [`SLICE`],
/// calling `check` (liveness) after every slice that ended without a wake-up, and once per
/// slice of a spin longer than one (see [`SpinCheck`]).
pub(crate) fn block_on<R, E>(
    signal: &Signal,
    deadline: Option<Instant>,
    spin: Duration,
    look: impl Fn(),
    mut attempt: impl FnMut() -> Attempt<R, E>,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<R, Blocked<E>> {
    if let Attempt::Ready(r) = attempt() {
        return r.map_err(Blocked::Failed);
    }
    if !spin.is_zero() {
        // The clock is read first after 64 attempts: a wait that ends sooner (a busy peer's
        // answer) pays no clock read.
        let mut spin_end = None;
        let mut checks = SpinCheck::default();
        let mut i = 0u32;
        loop {
            // Looks at the word about once per line transfer where its writer makes several
            // stores (`look_pause`: a waiter that looks more often pulls the line from a writer
            // in the middle of them), as often as a hint allows where they go out as one burst
            // (`quick_look_pause`).
            look();
            if let Attempt::Ready(r) = attempt() {
                return r.map_err(Blocked::Failed);
            }
            i = i.wrapping_add(1);
            if i % 64 == 0 {
                let now = Instant::now();
                if now >= *spin_end.get_or_insert_with(|| spin_end_at(now, spin, deadline)) {
                    break;
                }
                if checks.due(now) {
                    check().map_err(Blocked::Failed)?;
                }
            }
        }
    }
    // Announced once for the whole wait and withdrawn when it ends: each later slice reads the
    // epoch again before its re-check (`Signal::epoch_again`) instead of announcing anew.
    let mut announced = false;
    let r = loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break match attempt() {
                Attempt::Ready(r) => r.map_err(Blocked::Failed),
                Attempt::Pending => Err(Blocked::Timeout),
            };
        }
        let slice_end = match deadline {
            Some(d) => d.min(now + SLICE),
            None => now + SLICE,
        };
        let epoch = if announced {
            signal.epoch_again()
        } else {
            announced = true;
            signal.prepare()
        };
        if let Attempt::Ready(r) = attempt() {
            break r.map_err(Blocked::Failed);
        }
        let woke = signal.sleep(epoch, slice_end);
        if let Attempt::Ready(r) = attempt() {
            break r.map_err(Blocked::Failed);
        }
        if woke == WaitResult::TimedOut {
            if let Err(e) = check() {
                break Err(Blocked::Failed(e));
            }
        }
    };
    if announced {
        signal.finish();
    }
    r
}
