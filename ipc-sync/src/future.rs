//! The futures under the async forms (`lock_async`, `acquire_async`, ...): each drives one
//! state machine's poll step with the task's waker registered in `ipc_core::raw::reactor` (see
//! its docs for the protocol and the naming), and gives back in `Drop` whatever it announced,
//! so that dropping a pending future cancels it cleanly: nothing taken, no waiter count left
//! raised, a consumed wake-up handed on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use ipc_core::raw::reactor::Registration;

use crate::os::{self, Armer, Os};
use crate::raw_lock::{Acquired, LockState, LockWait};
use crate::raw_semaphore::{AcquireWait, SemaphoreState};
use crate::sys::{Me, SLICE, passed, slice_end};

/// This process's identity; without it (a fork child at its descriptor limit, see `os.rs`),
/// asks again once per slice until `deadline`, as `lock::me_until` does. `Ready(None)` once the
/// deadline passed without it.
fn poll_me(
    deadline: Option<Instant>,
    reg: &mut Registration,
    cx: &mut Context<'_>,
) -> Poll<Option<Me>> {
    if let Some(me) = os::me() {
        return Poll::Ready(Some(me));
    }
    if passed(deadline) {
        reg.disarm();
        return Poll::Ready(None);
    }
    reg.arm_timer(slice_end(deadline, SLICE), cx.waker());
    Poll::Pending
}

/// This process's identity, waiting for it until `deadline` (the async `lock::me_until`).
pub(crate) async fn me_async(deadline: Option<Instant>) -> Option<Me> {
    let mut reg = Registration::new();
    std::future::poll_fn(|cx| poll_me(deadline, &mut reg, cx)).await
}

/// Acquires a robust lock: `Some` (how) once acquired, `None` once `deadline` passed.
/// Dropped while pending, it holds nothing and hands on a wake-up it may have consumed.
#[derive(Debug)]
pub(crate) struct LockFuture<'a> {
    state: &'a LockState,
    deadline: Option<Instant>,
    wait: LockWait,
    reg: Registration,
    done: bool,
}

impl<'a> LockFuture<'a> {
    pub(crate) fn new(state: &'a LockState, deadline: Option<Instant>) -> Self {
        Self {
            state,
            deadline,
            wait: LockWait::default(),
            reg: Registration::new(),
            done: false,
        }
    }
}

impl Future for LockFuture<'_> {
    type Output = Option<Acquired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Acquired>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let me = match poll_me(this.deadline, &mut this.reg, cx) {
            Poll::Ready(Some(me)) => me,
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => return Poll::Pending,
        };
        let mut arm = Armer {
            reg: &mut this.reg,
            waker: cx.waker(),
        };
        match this
            .state
            .poll_lock(me, this.deadline, &mut this.wait, &Os, &mut arm)
        {
            Poll::Ready(r) => {
                this.done = true;
                this.reg.disarm();
                Poll::Ready(r.ok())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for LockFuture<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.reg.disarm();
            self.state.cancel_wait(&self.wait, &Os);
        }
    }
}

/// Takes a semaphore permit: `true` once taken, `false` once `deadline` passed. Dropped while
/// pending, it holds no permit, is no longer counted as a waiter, and hands on a wake-up it
/// may have consumed.
#[derive(Debug)]
pub(crate) struct AcquireFuture<'a> {
    state: &'a SemaphoreState,
    deadline: Option<Instant>,
    wait: AcquireWait,
    reg: Registration,
    done: bool,
}

impl<'a> AcquireFuture<'a> {
    pub(crate) fn new(state: &'a SemaphoreState, deadline: Option<Instant>) -> Self {
        Self {
            state,
            deadline,
            wait: AcquireWait::default(),
            reg: Registration::new(),
            done: false,
        }
    }
}

impl Future for AcquireFuture<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(false);
        }
        let mut arm = Armer {
            reg: &mut this.reg,
            waker: cx.waker(),
        };
        match this
            .state
            .poll_acquire(this.deadline, &mut this.wait, &Os, &mut arm)
        {
            Poll::Ready(r) => {
                this.done = true;
                this.reg.disarm();
                Poll::Ready(r)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AcquireFuture<'_> {
    fn drop(&mut self) {
        self.reg.disarm();
        if self.done {
            self.state.withdraw(&mut self.wait);
        } else {
            self.state.cancel_wait(&mut self.wait, &Os);
        }
    }
}
