//! The async form of [`Futex::wait_while`]: the registration protocol for a [`Futex`] (a word
//! and its waiter count).

use std::task::{Context, Poll};
use std::time::Instant;

use super::Registration;
use crate::primitive::{Ordering, fence};
use crate::raw::futex::{Futex, SLICE, TimedOut};

/// Waits on a [`Futex`] from a future: [`poll_wait_while`](Self::poll_wait_while) is one step
/// of [`Futex::wait_while`], returning `Pending` (with the task's waker registered) where the
/// blocking form would sleep. While it waits it is counted in the futex's waiter count, as a
/// sleeping thread is, so that wakers make the wake system call; dropping it withdraws from the
/// count and the [`Registration`].
///
/// ```
/// use ipc_core::raw::futex::Futex;
/// use ipc_core::raw::reactor::FutexWaiter;
/// use std::future::poll_fn;
///
/// let flag = Futex::new(0);
/// let mut waiter = FutexWaiter::new(&flag);
/// let wait = poll_fn(|cx| waiter.poll_wait_while(|v| v == 0, None, cx));
/// flag.store_and_wake_all(1);
/// let r = futures::executor::block_on(wait);
/// assert_eq!(r, Ok(1));
/// ```
#[derive(Debug)]
pub struct FutexWaiter<'a> {
    futex: &'a Futex,
    reg: Registration,
    announced: bool,
}

impl<'a> FutexWaiter<'a> {
    /// A waiter on `futex`, not yet waiting.
    pub fn new(futex: &'a Futex) -> Self {
        Self {
            futex,
            reg: Registration::new(),
            announced: false,
        }
    }

    fn withdraw(&mut self) {
        if self.announced {
            self.announced = false;
            // ORDERING: Relaxed, only a hint for wakers; a stale count costs a syscall.
            self.futex.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// One step of waiting while `blocked(current value)` holds, until `deadline` (`None`: no
    /// limit): `Ready(Ok(v))` with the first value for which `blocked` is false,
    /// `Ready(Err(TimedOut))` once the deadline passed, else `Pending` with the task's waker
    /// registered for a change of the word (re-read at least once per [`SLICE`] by one of the
    /// word's waiters).
    pub fn poll_wait_while(
        &mut self,
        mut blocked: impl FnMut(u32) -> bool,
        deadline: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<u32, TimedOut>> {
        self.withdraw();
        let v = self.futex.load();
        if !blocked(v) {
            self.reg.disarm();
            return Poll::Ready(Ok(v));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            self.reg.disarm();
            return Poll::Ready(Err(TimedOut));
        }
        // ORDERING: SeqCst, pairs with the SeqCst fence of the waker (`Futex::wake_*`): either
        // the waker sees this increment and wakes the word, or the load below sees its change.
        self.futex.waiters.fetch_add(1, Ordering::SeqCst);
        self.announced = true;
        // ORDERING: SeqCst fence, orders the increment before the load below (the re-check).
        fence(Ordering::SeqCst);
        let v = self.futex.load();
        if !blocked(v) {
            self.withdraw();
            self.reg.disarm();
            return Poll::Ready(Ok(v));
        }
        // Sliced: the word is re-read at least once per slice by one of its waiters, so even a
        // wake a corrupted waiter count made a waker skip costs one slice.
        self.reg
            .arm_sliced(&self.futex.value, v, deadline, SLICE, cx.waker());
        Poll::Pending
    }
}

impl Drop for FutexWaiter<'_> {
    fn drop(&mut self) {
        self.reg.disarm();
        self.withdraw();
    }
}
