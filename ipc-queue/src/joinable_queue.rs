//! `JoinableQueue`: a [`Queue`] that counts unfinished tasks, like Python's
//! `multiprocessing.JoinableQueue`: every `put` adds one, every `task_done` removes one, and
//! `join` waits until the count reaches zero.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;
use ipc_core::ObjectHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CreateError, OpenError};
use crate::participants::BOTH;
use crate::primitive::Ordering;
use crate::queue::{Encoding, Plain, Queue, Serde, wire_role};
use crate::signal::{self, Attempt, Blocked};

/// `task_done` was called more times than there were items (Python raises `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than there were items put")
    }
}

impl std::error::Error for TaskDoneError {}

/// `join_timeout` ran out of time with tasks still unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JoinTimeout {
    /// Tasks still unfinished at the deadline.
    pub unfinished: u64,
}

impl fmt::Display for JoinTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out with {} tasks unfinished", self.unfinished)
    }
}

impl std::error::Error for JoinTimeout {}

/// A [`Queue`] with `task_done` and `join`. It dereferences to the queue for `put`, `get` and
/// the rest.
///
/// ```
/// use ipc_queue::JoinableQueue;
///
/// let mut q = JoinableQueue::<u32>::new(8)?;
/// q.put(1)?;
/// q.put(2)?;
/// assert_eq!(q.unfinished_tasks(), 2);
/// q.get()?;
/// q.task_done()?;
/// q.get()?;
/// q.task_done()?;
/// q.join(); // returns at once: every task is done
/// assert!(q.task_done().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T, E: Encoding = Plain> {
    q: Queue<T, E>,
}

impl<T, E: Encoding> fmt::Debug for JoinableQueue<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.q)
            .field("unfinished", &self.unfinished_tasks())
            .finish()
    }
}

impl<T, E: Encoding> Deref for JoinableQueue<T, E> {
    type Target = Queue<T, E>;
    fn deref(&self) -> &Queue<T, E> {
        &self.q
    }
}

impl<T, E: Encoding> DerefMut for JoinableQueue<T, E> {
    fn deref_mut(&mut self) -> &mut Queue<T, E> {
        &mut self.q
    }
}

impl<T, E: Encoding> JoinableQueue<T, E> {
    pub(crate) fn from_queue(q: Queue<T, E>) -> Self {
        Self { q }
    }
}

impl<T: Pod> JoinableQueue<T, Plain> {
    /// A joinable queue of `capacity` slots in a new anonymous segment (more options:
    /// [`Queue::builder`] then `create_joinable`).
    pub fn new(capacity: usize) -> Result<Self, CreateError> {
        Queue::<T, Plain>::builder(capacity).create_joinable()
    }

    /// Attaches to the joinable queue a handle names.
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Ok(Self {
            q: Queue::<T, Plain>::open_flavor(handle, BOTH, true)?,
        })
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T, Serde> {
    /// A joinable queue of serde values in a new anonymous segment.
    pub fn new(capacity: usize) -> Result<Self, CreateError> {
        Queue::<T, Serde>::builder(capacity).create_joinable()
    }

    /// Attaches to the joinable queue a handle names.
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Ok(Self {
            q: Queue::<T, Serde>::open_flavor(handle, BOTH, true)?,
        })
    }
}

impl<T, E: Encoding> JoinableQueue<T, E> {
    /// Tasks put and not yet marked done.
    pub fn unfinished_tasks(&self) -> u64 {
        // ORDERING: Acquire, pairs with the Release decrement in `task_done`.
        self.q.raw().state().unfinished.load(Ordering::Acquire)
    }

    /// Marks one task (got earlier) as done.
    pub fn task_done(&mut self) -> Result<(), TaskDoneError> {
        let state = self.q.raw().state();
        // ORDERING: AcqRel, the decrement publishes the task's work to `join` (Release) and
        // orders after earlier decrements (Acquire); Relaxed for the failed read.
        let r = state
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
        match r {
            Ok(1) => {
                state.all_done.notify();
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(_) => Err(TaskDoneError),
        }
    }

    /// Waits until every task put has been marked done.
    pub fn join(&mut self) {
        let _ = self.join_until(None);
    }

    /// Waits at most `timeout` for every task to be done.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<(), JoinTimeout> {
        self.join_until(Some(Instant::now() + timeout))
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<(), JoinTimeout> {
        let spin = self.q.raw().spin();
        let state = self.q.raw().state();
        let r = signal::block_on::<(), ()>(
            &state.all_done,
            deadline,
            spin,
            || {
                // ORDERING: Acquire, pairs with the Release decrement in `task_done`.
                if state.unfinished.load(Ordering::Acquire) == 0 {
                    Attempt::Ready(Ok(()))
                } else {
                    Attempt::Pending
                }
            },
            || Ok(()),
        );
        match r {
            Ok(()) => Ok(()),
            Err(Blocked::Timeout | Blocked::Failed(())) => Err(JoinTimeout {
                unfinished: self.unfinished_tasks(),
            }),
        }
    }

    /// The handle another process attaches with.
    pub fn handle(&self) -> ObjectHandle {
        self.q.handle()
    }

    /// Another handle of the same joinable queue (see [`Queue::try_clone`]).
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        Ok(Self {
            q: self.q.try_clone()?,
        })
    }
}

/// A joinable queue serialises as its handle and its roles, as a [`Queue`] does, so it can be
/// passed to a child process (Python pickles a `JoinableQueue` into `Process(args=(q,))`).
impl<T, E: Encoding> Serialize for JoinableQueue<T, E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.handle(), self.q.role()).serialize(s)
    }
}

impl<'de, T: Pod> serde::Deserialize<'de> for JoinableQueue<T, Plain> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (handle, role) = <(ObjectHandle, u32)>::deserialize(d)?;
        let q = Queue::<T, Plain>::open_flavor(&handle, wire_role(role), true)
            .map_err(serde::de::Error::custom)?;
        Ok(Self { q })
    }
}

impl<'de, T: Serialize + DeserializeOwned> serde::Deserialize<'de> for JoinableQueue<T, Serde> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (handle, role) = <(ObjectHandle, u32)>::deserialize(d)?;
        let q = Queue::<T, Serde>::open_flavor(&handle, wire_role(role), true)
            .map_err(serde::de::Error::custom)?;
        Ok(Self { q })
    }
}
