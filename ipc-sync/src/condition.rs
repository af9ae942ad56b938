//! `Condition`: Python's `multiprocessing.Condition`, a condition variable over a robust lock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ipc_core::raw::reactor::Registration;
use ipc_core::{CreateError, OpenError, Placement};

use crate::error::{LockTimeoutError, OwnerDied, TryLockError};
use crate::lock::{Acquire, lock_methods};
use crate::object::{Shared, SharedState, shared_object};
use crate::os::{self, Armer, Os};
use crate::raw_condition::{Slot, Ticket, WaitQueue, WaitQueueState};
use crate::raw_lock::LockState;
use crate::supplied::{AnyGuard, ExternalLock, OnSuppliedLock, SuppliedLock};

const KIND: &str = "Condition";
/// Waiters that `notify(n)` counts exactly; more wait too, woken by every notify (see
/// `raw_condition.rs`).
const SLOTS: usize = 1024;

/// The shared state of a [`Condition`]: its own robust lock (unused when it is built on a
/// supplied lock) and its waiter queue's counters (32 bytes, every bit pattern valid). The
/// waiters' slots follow as the segment's elements.
#[repr(C)]
#[derive(Debug)]
pub struct ConditionState {
    lock: LockState,
    queue: WaitQueueState,
}

// SAFETY: `#[repr(C)]`, atomics only.
unsafe impl SharedState for ConditionState {}

/// A condition variable over a robust lock: its own, or one the caller supplies
/// ([`with_lock`](Self::with_lock), Python's `Condition(lock)`). `lock` returns a
/// [`ConditionGuard`] that carries Python's verbs: `wait`, `wait_for`, `notify`, `notify_all`
/// — so they can only be called holding the lock, as Python requires.
///
/// `notify(n)` wakes exactly `n` of the waiters that wait when it is called (the oldest first),
/// or all of them if fewer wait; a waiter that died while waiting is skipped, so it swallows no
/// notification meant for a live one. (Past 1024 simultaneous waiters, the extra ones are woken
/// by every notification, as a spurious wake-up.)
///
/// ```
/// use ipc_sync::{Condition, Value};
/// use std::time::Duration;
///
/// let cond = Condition::new()?;
/// let items = Value::new(0u32)?;
/// let g = cond.lock().unwrap();
/// // Nobody adds an item: the wait ends at its timeout with the predicate still false.
/// let (g, ok) = g.wait_for(|| items.load() > 0, Some(Duration::from_millis(10))).unwrap();
/// assert!(!ok);
/// items.fetch_add(1);
/// g.notify_all();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Condition {
    shm: Shared<ConditionState, [u64; 2]>,
    lock: Option<ExternalLock>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.is_locked())
            .field("supplied_lock", &self.lock.is_some())
            .finish()
    }
}

impl OnSuppliedLock for Condition {
    const BASE: &'static str = KIND;

    fn supplied(&self) -> Option<&ExternalLock> {
        self.lock.as_ref()
    }

    fn own_lock(&self) -> &LockState {
        &self.shm.state().lock
    }

    fn assemble(
        shm: Shared<ConditionState, [u64; 2]>,
        lock: Option<ExternalLock>,
    ) -> Result<Self, OpenError> {
        if shm.len() == 0 || shm.len() > 1 << 16 {
            return Err(OpenError::Corrupted {
                what: "a condition's waiter slots",
            });
        }
        Ok(Self { shm, lock })
    }
}

impl Condition {
    /// A condition with its own lock, placed as asked.
    pub fn create(placement: &Placement) -> Result<Self, CreateError> {
        Self::create_on(placement, None)
    }

    /// A condition on the caller's [`Lock`](crate::Lock) or [`ReentrantLock`](crate::RLock)
    /// (Python's `Condition(lock)`), in a new anonymous segment: its guard holds that lock, so
    /// `lock.lock()` and `cond.lock()` exclude each other. It keeps a handle of its own of the
    /// lock, and passing it to a child passes the lock too. Built on a `ReentrantLock`, `wait`
    /// releases every level the thread holds and restores them after, as Python's does.
    #[doc(alias = "Condition")]
    pub fn with_lock<'l>(lock: impl Into<SuppliedLock<'l>>) -> Result<Self, CreateError> {
        Self::create_with_lock(&Placement::Anonymous, lock)
    }

    /// As [`with_lock`](Self::with_lock), placed as asked.
    pub fn create_with_lock<'l>(
        placement: &Placement,
        lock: impl Into<SuppliedLock<'l>>,
    ) -> Result<Self, CreateError> {
        Self::create_on(placement, Some(lock.into().clone_lock_for_create()?))
    }

    fn create_on(placement: &Placement, lock: Option<ExternalLock>) -> Result<Self, CreateError> {
        let kind = crate::supplied::kind_on(KIND, lock.as_ref());
        Ok(Self {
            shm: Shared::create(&kind, placement, SLOTS, |_, _| {})?,
            lock,
        })
    }

    fn queue(&self) -> WaitQueue<'_> {
        let slots = self.shm.data().cast::<Slot>();
        WaitQueue {
            state: &self.shm.state().queue,
            // SAFETY: the elements are `len` pairs of u64 (16 bytes, 8-aligned) in the
            // validated payload, mapped while `self` lives; a `Slot` is 16 bytes of atomics
            // (`#[repr(C)]`, align 8), valid for any bytes, and every access to the slots is
            // atomic.
            slots: unsafe { std::slice::from_raw_parts(slots, self.shm.len()) },
        }
    }

    fn make_guard<'a>(&'a self, guard: AnyGuard<'a>) -> ConditionGuard<'a> {
        ConditionGuard { guard, cond: self }
    }

    /// The guard of a lock taken back after a wait, with the reentrant depth it had.
    fn rewrap<'a>(&'a self, depth: u32, guard: AnyGuard<'a>) -> ConditionGuard<'a> {
        if let AnyGuard::Reentrant(g) = &guard {
            g.restore_depth(depth);
        }
        self.make_guard(guard)
    }

    lock_methods!(ConditionGuard<'_>);

    /// Hands a notification on to the next waiter (Python's `asyncio.Condition` does the
    /// same for a waiter cancelled after it was notified): `notify(1)` under the lock. The lock
    /// is taken at once if it is free; otherwise this waits for it at most one slice, since it
    /// runs in a future's `Drop` (a notification is lost only if the lock stays held that long,
    /// as by a holder that is stopped).
    fn hand_on_notification(&self) {
        let guard = match Acquire::try_lock(self.lock_ref()) {
            Ok(g) => g,
            Err(TryLockError::OwnerDied(e)) => e.into_inner(),
            Err(_) => match Acquire::lock_deadline(
                self.lock_ref(),
                crate::sys::deadline_after(crate::sys::SLICE),
            ) {
                Ok(g) => g,
                Err(LockTimeoutError::OwnerDied(e)) => e.into_inner(),
                Err(_) => return,
            },
        };
        self.queue().notify(1, os::me(), &Os);
        drop(guard);
    }
}

/// An async wait for a condition's ticket (the first half of `ConditionGuard::wait_async`):
/// ready with `true` once notified (or woken spuriously), `false` at its deadline. Dropped
/// before that, it gives the ticket back, and hands on a notification that had reached it.
struct TicketWait<'a> {
    cond: &'a Condition,
    ticket: Ticket,
    deadline: Option<Instant>,
    reg: Registration,
    done: bool,
}

impl Future for TicketWait<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(true);
        }
        let mut arm = Armer {
            reg: &mut this.reg,
            waker: cx.waker(),
        };
        match this
            .cond
            .queue()
            .poll_wait(this.ticket, this.deadline, &Os, &mut arm)
        {
            Poll::Ready(notified) => {
                this.done = true;
                this.reg.disarm();
                Poll::Ready(notified)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for TicketWait<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.reg.disarm();
        if self.cond.queue().cancel(self.ticket) {
            self.cond.hand_on_notification();
        }
    }
}

shared_object!(supplied Condition: ConditionState[[u64; 2]] = KIND; new() "A condition with its own lock, in a new anonymous segment.");

/// Holds a [`Condition`]'s lock; waits and notifies. Dropping it releases the lock (Python's
/// `release()`).
#[doc(alias = "release")]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    guard: AnyGuard<'a>,
    cond: &'a Condition,
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConditionGuard { .. }")
    }
}

impl<'a> ConditionGuard<'a> {
    /// Releases the lock, sleeps until notified, and takes the lock again. Spurious wake-ups
    /// happen: re-check the condition (or use [`wait_for`](Self::wait_for)).
    pub fn wait(self) -> Result<Self, OwnerDied<Self>> {
        let (cond, depth, _) = self.release_and_sleep(None);
        match Acquire::lock(cond.lock_ref()) {
            Ok(g) => Ok(cond.rewrap(depth, g)),
            Err(e) => Err(e.map(|g| cond.rewrap(depth, g))),
        }
    }

    /// As [`wait`](Self::wait), for at most `timeout` in all; the flag is `false` if the
    /// timeout passed without a notification.
    ///
    /// Every internal wait ends by the deadline, taking the lock back included: if its holder
    /// keeps it past the deadline (a process stopped while holding it, say), this returns
    /// `Err(LockTimeoutError::TimedOut)` and the lock is **not** held.
    #[doc(alias = "wait")]
    pub fn wait_timeout(self, timeout: Duration) -> Result<(Self, bool), LockTimeoutError<Self>> {
        self.wait_deadline(crate::sys::deadline_after(timeout))
    }

    /// As [`wait_timeout`](Self::wait_timeout), until `deadline`.
    #[doc(alias = "wait")]
    pub fn wait_deadline(self, deadline: Instant) -> Result<(Self, bool), LockTimeoutError<Self>> {
        let (cond, depth, notified) = self.release_and_sleep(Some(deadline));
        match Acquire::lock_deadline(cond.lock_ref(), deadline) {
            Ok(g) => Ok((cond.rewrap(depth, g), notified)),
            Err(e) => Err(e.map(|g| cond.rewrap(depth, g))),
        }
    }

    /// Takes a ticket, releases the lock (every level of a reentrant one) and sleeps until
    /// notified or until `deadline`. Returns the condition, the reentrant depth to restore and
    /// whether it was notified.
    fn release_and_sleep(self, deadline: Option<Instant>) -> (&'a Condition, u32, bool) {
        let (cond, depth, ticket) = self.take_ticket_and_release();
        let notified = cond.queue().wait(ticket, deadline, &Os);
        (cond, depth, notified)
    }

    /// Takes a ticket and releases the lock (every level of a reentrant one); returns the
    /// condition, the reentrant depth to restore and the ticket.
    fn take_ticket_and_release(self) -> (&'a Condition, u32, Ticket) {
        let cond = self.cond;
        let queue = cond.queue();
        // Registered under the lock, so a notify after this (it needs the lock) counts it.
        let ticket = match os::me() {
            Some(me) => queue.register(me, &Os),
            // No identity (a fork child at its descriptor limit): wait as an overflow waiter,
            // woken by any notification.
            None => queue.register_anonymous(),
        };
        let depth = match self.guard {
            AnyGuard::Plain(g) => {
                drop(g);
                1
            }
            AnyGuard::Reentrant(g) => g.release_all(),
        };
        (cond, depth, ticket)
    }

    /// The async form of [`wait`](Self::wait): releases the lock, waits until notified, and
    /// takes the lock back, for any executor.
    ///
    /// The ticket is taken and the lock released **at this call**, as `wait` does (so a
    /// `notify` made after it counts this waiter even before the future is first polled).
    /// Dropping the future before it is notified gives the ticket back (a notification that had
    /// reached it is handed on to the next waiter, as Python's `asyncio.Condition` does);
    /// dropping it while it takes the lock back takes nothing. A holder that died ends the
    /// await with `Err(OwnerDied)`, as for `wait`.
    ///
    /// ```
    /// use ipc_sync::Condition;
    /// use std::time::Duration;
    ///
    /// let cond = Condition::new()?;
    /// futures::executor::block_on(async {
    ///     let g = cond.lock_async().await.unwrap();
    ///     // Nobody notifies: the wait ends at its timeout, with the lock held again.
    ///     let (g, notified) = g.wait_timeout_async(Duration::from_millis(10)).await.unwrap();
    ///     assert!(!notified);
    ///     g.notify_all();
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "wait")]
    pub fn wait_async(self) -> impl Future<Output = Result<Self, OwnerDied<Self>>> + 'a {
        let (cond, depth, ticket) = self.take_ticket_and_release();
        let waiting = TicketWait {
            cond,
            ticket,
            deadline: None,
            reg: Registration::new(),
            done: false,
        };
        async move {
            waiting.await;
            loop {
                match Acquire::lock_until_async(cond.lock_ref(), None).await {
                    Ok(g) => return Ok(cond.rewrap(depth, g)),
                    Err(LockTimeoutError::OwnerDied(e)) => {
                        return Err(e.map(|g| cond.rewrap(depth, g)));
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// The async form of [`wait_timeout`](Self::wait_timeout) (the timeout counts from this
    /// call, which releases the lock as [`wait_async`](Self::wait_async) does).
    #[doc(alias = "wait")]
    pub fn wait_timeout_async(
        self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(Self, bool), LockTimeoutError<Self>>> + 'a {
        self.wait_deadline_async(crate::sys::deadline_after(timeout))
    }

    /// The async form of [`wait_deadline`](Self::wait_deadline).
    #[doc(alias = "wait")]
    pub fn wait_deadline_async(
        self,
        deadline: Instant,
    ) -> impl Future<Output = Result<(Self, bool), LockTimeoutError<Self>>> + 'a {
        let (cond, depth, ticket) = self.take_ticket_and_release();
        let waiting = TicketWait {
            cond,
            ticket,
            deadline: Some(deadline),
            reg: Registration::new(),
            done: false,
        };
        async move {
            let notified = waiting.await;
            match Acquire::lock_until_async(cond.lock_ref(), Some(deadline)).await {
                Ok(g) => Ok((cond.rewrap(depth, g), notified)),
                Err(e) => Err(e.map(|g| cond.rewrap(depth, g))),
            }
        }
    }

    /// The async form of [`wait_for`](Self::wait_for): waits until `pred()` holds (checked
    /// with the lock held), at most `timeout` in all.
    #[doc(alias = "wait_for")]
    pub async fn wait_for_async(
        mut self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(Self, bool), LockTimeoutError<Self>> {
        let deadline = timeout.map(crate::sys::deadline_after);
        loop {
            if pred() {
                return Ok((self, true));
            }
            self = match deadline {
                Some(d) if Instant::now() >= d => return Ok((self, false)),
                Some(d) => self.wait_deadline_async(d).await?.0,
                None => self.wait_async().await?,
            };
        }
    }

    /// Python's `wait_for(predicate, timeout)`: waits until `pred()` holds (checked with the
    /// lock held), at most `timeout` in all; returns the guard and the last value of `pred`.
    /// With a timeout, taking the lock back is bounded by it too, as in
    /// [`wait_timeout`](Self::wait_timeout).
    pub fn wait_for(
        mut self,
        mut pred: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(Self, bool), LockTimeoutError<Self>> {
        let deadline = timeout.map(crate::sys::deadline_after);
        loop {
            if pred() {
                return Ok((self, true));
            }
            self = match deadline {
                Some(d) if Instant::now() >= d => return Ok((self, false)),
                Some(d) => self.wait_deadline(d)?.0,
                None => self.wait()?,
            };
        }
    }

    /// Wakes one waiter (Python's `notify()`): the one that has waited longest, skipping any
    /// the kernel says died while waiting.
    pub fn notify(&self) {
        self.notify_n(1);
    }

    /// Wakes exactly `n` of the waiters that wait now (the oldest first), or every one of them
    /// if fewer wait (Python's `notify(n)`). A waiter that died while waiting does not count.
    #[doc(alias = "notify")]
    pub fn notify_n(&self, n: u32) {
        self.cond.queue().notify(n, os::me(), &Os);
    }

    /// Wakes every waiter.
    #[doc(alias = "notifyAll")]
    pub fn notify_all(&self) {
        self.notify_n(u32::MAX);
    }

    /// Marks the protected state consistent again after [`OwnerDied`].
    pub fn make_consistent(&self) {
        self.guard.make_consistent();
    }
}
