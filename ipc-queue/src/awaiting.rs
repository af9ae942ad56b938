//! The async forms' side of `signal.rs`: [`signal::block_on`](crate::signal::block_on) as a poll
//! step, for the `*_async` methods and the streams.
//!
//! [`SignalWait::poll`] runs the steps of `block_on` and returns `Pending` where `block_on` sleeps,
//! after registering the task's waker with `ipc_core::raw::reactor` on the signal's epoch word (the
//! protocol, and why no wake-up is lost, are in that module's docs): it attempts; spins on its
//! first poll for the handle's spin time, as `block_on` does; announces itself on the signal
//! (`prepare`, so that wakers pay the wake system call), attempts again, and registers the epoch it
//! read before that last attempt. It stays announced until the wait ends (ready, failed or timed
//! out) or the future is dropped, either of which withdraws it (`finish`): a future dropped while
//! pending leaves no waiter count raised. A later poll of the same wait on the same signal reads
//! the epoch again before its attempt instead of announcing itself anew (`Signal::epoch_again`: the
//! first announcement's barrier covers every later attempt), so an idle await pays no `membarrier`
//! per slice. A signal's `notify` wakes every waiter, so a dropped waiter consumes no wake-up
//! another one needed. Once per slice without news (the word's slice timer, shared by every task
//! that awaits it) the `check` runs, as after a slice of `block_on`: a dead peer ends the await
//! with `Disconnected` exactly as it ends a blocking call.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ipc_core::raw::reactor::Registration;

use crate::signal::{Attempt, Blocked, SLICE, Signal, SpinCheck};

/// One async wait on a [`Signal`], carried from poll to poll (and, for a stream, from item to
/// item).
///
/// It holds the address of the signal it announced itself on, to withdraw in `Drop`. Every
/// owner borrows the object whose mapping holds that signal for as long as it owns this, so
/// the signal is mapped whenever the address is used.
#[derive(Debug, Default)]
pub(crate) struct SignalWait {
    reg: Registration,
    announced: Option<SignalPtr>,
    spun: bool,
    slice_end: Option<Instant>,
}

/// The address of a signal in a mapping the owner of the [`SignalWait`] borrows.
#[derive(Debug, Clone, Copy)]
struct SignalPtr(*const Signal);

// SAFETY: a `Signal` is two atomics in shared memory, used from any thread; the pointer is only
// dereferenced while the mapping is borrowed by the owner (see `SignalWait`).
unsafe impl Send for SignalPtr {}
// SAFETY: as above; `&SignalPtr` gives no access to the signal at all.
unsafe impl Sync for SignalPtr {}

impl SignalWait {
    /// A wait that has not started.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether no wait is under way (none started, or the last one ended): the next poll is a
    /// wait's first.
    pub(crate) fn is_idle(&self) -> bool {
        self.slice_end.is_none()
    }

    /// Withdraws the announcement of this wait, if any.
    fn withdraw(&mut self) {
        if let Some(SignalPtr(p)) = self.announced.take() {
            // SAFETY: `p` was a `&Signal` in a mapping the owner of `self` still borrows (see the
            // type's docs), so it is valid for this shared reference.
            unsafe { &*p }.finish();
        }
    }

    /// Ends the wait (ready, or given up): withdraws and resets, so that the next wait (a
    /// stream's next item) starts afresh, spin included.
    fn done(&mut self) {
        self.withdraw();
        self.reg.disarm();
        self.spun = false;
        self.slice_end = None;
    }

    /// One poll of `block_on(signal, deadline, spin, attempt, check)`.
    pub(crate) fn poll<R, E>(
        &mut self,
        signal: &Signal,
        deadline: Option<Instant>,
        spin: Duration,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut() -> Attempt<R, E>,
        mut check: impl FnMut() -> Result<(), E>,
    ) -> Poll<Result<R, Blocked<E>>> {
        // The wait's first poll: the common case, ready at once, is tried before the clock is
        // read (a read of the clock costs about as much as a whole claim).
        let fresh = self.slice_end.is_none();
        if fresh {
            if let Attempt::Ready(r) = attempt() {
                self.done();
                return Poll::Ready(r.map_err(Blocked::Failed));
            }
        }
        let now = Instant::now();
        let whole_slice = match self.slice_end {
            Some(e) if e <= now => {
                self.slice_end = Some(now + SLICE);
                true
            }
            Some(_) => false,
            None => {
                self.slice_end = Some(now + SLICE);
                false
            }
        };
        if whole_slice {
            // A slice without news: the peers' liveness, as after a slice of `block_on` (the
            // attempt below then sees what the check decided).
            if let Err(e) = check() {
                self.done();
                return Poll::Ready(Err(Blocked::Failed(e)));
            }
        }
        if !fresh {
            if let Attempt::Ready(r) = attempt() {
                self.done();
                return Poll::Ready(r.map_err(Blocked::Failed));
            }
        }
        if !self.spun {
            self.spun = true;
            if !spin.is_zero() {
                let spin_end = crate::signal::spin_end_at(now, spin, deadline);
                let mut checks = SpinCheck::default();
                let mut i = 0u32;
                loop {
                    std::hint::spin_loop();
                    if let Attempt::Ready(r) = attempt() {
                        self.done();
                        return Poll::Ready(r.map_err(Blocked::Failed));
                    }
                    i = i.wrapping_add(1);
                    if i % 64 == 0 {
                        let now = Instant::now();
                        if now >= spin_end {
                            break;
                        }
                        if checks.due(now) {
                            if let Err(e) = check() {
                                self.done();
                                return Poll::Ready(Err(Blocked::Failed(e)));
                            }
                        }
                    }
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            self.done();
            return Poll::Ready(Err(Blocked::Timeout));
        }
        // Announced once per wait on a signal: a later poll of the same wait (a slice's end, a
        // wake-up that found nothing) reads the epoch again instead (`Signal::epoch_again`).
        let epoch = match self.announced {
            Some(SignalPtr(p)) if std::ptr::eq(p, signal) => signal.epoch_again(),
            _ => {
                self.withdraw();
                let epoch = signal.prepare();
                self.announced = Some(SignalPtr(signal));
                epoch
            }
        };
        if let Attempt::Ready(r) = attempt() {
            self.done();
            return Poll::Ready(r.map_err(Blocked::Failed));
        }
        self.reg
            .arm_sliced(signal.epoch_word(), epoch, deadline, SLICE, cx.waker());
        Poll::Pending
    }
}

impl Drop for SignalWait {
    fn drop(&mut self) {
        self.reg.disarm();
        self.withdraw();
    }
}
