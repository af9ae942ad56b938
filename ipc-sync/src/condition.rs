//! `Condition`: Python's `multiprocessing.Condition`, a condition variable over a robust lock.

use std::fmt;
use std::time::{Duration, Instant};

use ipc_core::raw::futex::Futex;
use ipc_core::{CreateError, OpenError, Placement};

use crate::error::{LockTimeoutError, OwnerDied};
use crate::lock::{self, LockGuard};
use crate::object::{Shared, SharedState, shared_handle};
use crate::primitive::Ordering;
use crate::raw_lock::LockState;

const KIND: &str = "Condition";

/// The shared state of a [`Condition`]: its robust lock and a notification sequence number
/// that waiters sleep on (24 bytes, every bit pattern valid).
#[repr(C)]
#[derive(Debug)]
pub struct ConditionState {
    lock: LockState,
    seq: Futex,
}

// SAFETY: `#[repr(C)]`, atomics only.
unsafe impl SharedState for ConditionState {}

/// A condition variable with its own robust lock. `lock` returns a [`ConditionGuard`] that
/// carries Python's verbs: `wait`, `wait_for`, `notify`, `notify_all` — so they can only be
/// called holding the lock, as Python requires.
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
    shm: Shared<ConditionState, u8>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("holder", &self.lock_state().holder())
            .finish()
    }
}

impl Condition {
    /// A condition in a new anonymous segment.
    pub fn new() -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous)
    }

    /// A condition placed as asked.
    pub fn create(placement: &Placement) -> Result<Self, CreateError> {
        Ok(Self {
            shm: Shared::create(KIND, placement, 0, |_, _| {})?,
        })
    }

    /// Attaches through a handle, validating the segment.
    pub fn open(handle: &ipc_core::ObjectHandle) -> Result<Self, OpenError> {
        Ok(Self {
            shm: Shared::open(KIND, handle)?,
        })
    }

    /// Opens a condition created under `name`.
    pub fn open_named(name: &str) -> Result<Self, OpenError> {
        Ok(Self {
            shm: Shared::open_named(KIND, name)?,
        })
    }

    fn lock_state(&self) -> &LockState {
        &self.shm.state().lock
    }

    fn seq(&self) -> &Futex {
        &self.shm.state().seq
    }

    fn make_guard(&self) -> ConditionGuard<'_> {
        ConditionGuard {
            guard: LockGuard {
                state: self.lock_state(),
            },
            cond: self,
        }
    }

    lock::lock_methods!(ConditionGuard<'_>);
}

shared_handle!(Condition);

/// Holds a [`Condition`]'s lock; waits and notifies.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    guard: LockGuard<'a>,
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
        let (cond, _) = self.release_and_sleep(None);
        cond.lock()
    }

    /// As [`wait`](Self::wait), for at most `timeout` in all; the flag is `false` if the
    /// timeout passed without a notification.
    ///
    /// Every internal wait ends by the deadline, taking the lock back included: if its holder
    /// keeps it past the deadline (a process stopped while holding it, say), this returns
    /// `Err(LockTimeoutError::TimedOut)` and the lock is **not** held.
    pub fn wait_timeout(self, timeout: Duration) -> Result<(Self, bool), LockTimeoutError<Self>> {
        self.wait_deadline(Instant::now() + timeout)
    }

    /// As [`wait_timeout`](Self::wait_timeout), until `deadline`.
    pub fn wait_deadline(self, deadline: Instant) -> Result<(Self, bool), LockTimeoutError<Self>> {
        let (cond, notified) = self.release_and_sleep(Some(deadline));
        cond.lock_deadline(deadline).map(|g| (g, notified))
    }

    /// Releases the lock and sleeps until notified or until `deadline`; `true` if notified.
    fn release_and_sleep(self, deadline: Option<Instant>) -> (&'a Condition, bool) {
        let cond = self.cond;
        let seen = cond.seq().load();
        drop(self);
        let notified = loop {
            match cond.seq().wait_while(|v| v == seen, deadline) {
                Ok(_) => break true,
                Err(_) if deadline.is_some() => break false,
                Err(_) => {}
            }
        };
        (cond, notified)
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
        let deadline = timeout.map(|t| Instant::now() + t);
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

    /// Wakes one waiter.
    pub fn notify(&self) {
        self.notify_n(1);
    }

    /// Wakes up to `n` waiters.
    pub fn notify_n(&self, n: u32) {
        // ORDERING: Release, pairs with the Acquire load in `wait`: publishes the state change
        // made under the lock.
        self.cond.seq().word().fetch_add(1, Ordering::Release);
        if n == u32::MAX {
            self.cond.seq().wake_all();
        } else {
            for _ in 0..n {
                if self.cond.seq().wake_one() == 0 {
                    break;
                }
            }
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify_n(u32::MAX);
    }

    /// Marks the protected state consistent again after [`OwnerDied`].
    pub fn make_consistent(&self) {
        self.guard.make_consistent();
    }
}
