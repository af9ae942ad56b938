//! `Event`: Python's `multiprocessing.Event`, a flag processes wait on.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use ipc_core::raw::futex::Futex;
use ipc_core::raw::reactor::FutexWaiter;
use ipc_core::{CreateError, Placement};

use crate::object::{Shared, SharedState, shared_object};
use crate::primitive::Ordering;

const KIND: &str = "Event";
/// How many times `wait` polls the flag before it sleeps on the futex.
const SPIN_LIMIT: u32 = 200;

/// The shared state of an [`Event`]: a futex word (0 clear, anything else set) and its waiter
/// count (8 bytes, every bit pattern valid).
#[repr(C)]
#[derive(Debug)]
pub struct EventState {
    flag: Futex,
}

// SAFETY: `#[repr(C)]`, `Futex` is two atomics (`#[repr(C)]`).
unsafe impl SharedState for EventState {}

/// A flag in shared memory: `set` wakes every waiter, `clear` resets it, `wait` blocks until it
/// is set. `set` pays the wake syscall only when somebody waits.
///
/// ```
/// use ipc_sync::Event;
/// use std::time::Duration;
///
/// let e = Event::new()?;
/// assert!(!e.wait_timeout(Duration::from_millis(5)));
/// e.set();
/// assert!(e.is_set());
/// e.wait();
/// e.clear();
/// assert!(!e.is_set());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Event {
    shm: Shared<EventState, u8>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A clear event placed as asked.
    pub fn create(placement: &Placement) -> Result<Self, CreateError> {
        Ok(Self {
            shm: Shared::create(KIND, placement, 0, |_, _| {})?,
        })
    }

    fn flag(&self) -> &Futex {
        &self.shm.state().flag
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.flag().store_and_wake_all(1);
    }

    /// Clears the flag.
    pub fn clear(&self) {
        // ORDERING: Release, pairs with the Acquire load in `is_set`/`wait`: publishes what was
        // written before clearing.
        self.flag().word().store(0, Ordering::Release);
    }

    /// Whether the flag is set (Python's `is_set()`, formerly `isSet()`).
    #[doc(alias = "isSet")]
    pub fn is_set(&self) -> bool {
        self.flag().load() != 0
    }

    /// Spins briefly for a flag about to be set (a peer answering right away), so that a
    /// quick round trip costs no syscall; `true` if it was set.
    fn spin_for_set(&self) -> bool {
        for _ in 0..SPIN_LIMIT {
            if self.is_set() {
                return true;
            }
            std::hint::spin_loop();
        }
        self.is_set()
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        if self.spin_for_set() {
            return;
        }
        while self.flag().wait_while(|v| v == 0, None).is_err() {}
    }

    /// Blocks at most `timeout`; returns whether the flag is set (Python's `wait(timeout)`).
    #[doc(alias = "wait")]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(crate::sys::deadline_after(timeout))
    }

    /// Blocks at most until `deadline`; returns whether the flag is set.
    #[doc(alias = "wait")]
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        if self.spin_for_set() {
            return true;
        }
        self.flag().wait_while(|v| v == 0, Some(deadline)).is_ok()
    }

    /// The async form of [`wait`](Self::wait): a future that is ready once the flag is set,
    /// for any executor. It spins briefly on its first poll as `wait` does, then waits counted
    /// as a waiter, so `set` wakes it (through `ipc_core::raw::reactor`'s waiter thread).
    /// Dropping it before it is ready withdraws it; a runtime's timeout composes with it.
    ///
    /// ```
    /// use ipc_sync::Event;
    ///
    /// let e = Event::new()?;
    /// e.set();
    /// futures::executor::block_on(e.wait_async());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "wait")]
    pub async fn wait_async(&self) {
        while !self.wait_until_async(None).await {}
    }

    /// The async form of [`wait_timeout`](Self::wait_timeout): whether the flag is set, after
    /// at most `timeout` (counted from this call).
    #[doc(alias = "wait")]
    pub fn wait_timeout_async(&self, timeout: Duration) -> impl Future<Output = bool> + Send + '_ {
        self.wait_until_async(Some(crate::sys::deadline_after(timeout)))
    }

    /// The async form of [`wait_deadline`](Self::wait_deadline).
    #[doc(alias = "wait")]
    pub fn wait_deadline_async(&self, deadline: Instant) -> impl Future<Output = bool> + Send + '_ {
        self.wait_until_async(Some(deadline))
    }

    async fn wait_until_async(&self, deadline: Option<Instant>) -> bool {
        if self.spin_for_set() {
            return true;
        }
        let mut waiter = FutexWaiter::new(self.flag());
        std::future::poll_fn(|cx| waiter.poll_wait_while(|v| v == 0, deadline, cx))
            .await
            .is_ok()
    }

    /// Returns whether the flag is set, without blocking (the `try_*` form of `wait`).
    pub fn try_wait(&self) -> bool {
        self.is_set()
    }
}

shared_object!(Event: EventState[u8] = KIND; new() "A clear event in a new anonymous segment.");
