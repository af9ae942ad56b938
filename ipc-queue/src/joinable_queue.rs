//! `JoinableQueue`: a [`Queue`] that counts unfinished tasks, like Python's
//! `multiprocessing.JoinableQueue`: every `put` adds one, every `task_done` removes one, and
//! `join` waits until the count reaches zero.
//!
//! ## Joining, when consumers die
//!
//! Python's `join` waits for ever once a consumer dies holding a task it never marked done. Ours
//! does not wait on the dead: it returns [`JoinError::TasksLost`] with the number of tasks that
//! can never be done. Each participant entry counts the tasks its handle got and has not marked
//! done (`taken`, written only by that handle); the shared `unfinished` count is Python's.
//!
//! | step      | by          | what                                                              |
//! |-----------|-------------|-------------------------------------------------------------------|
//! | put       | producer    | claims a slot, `unfinished += 1` (Release), commits               |
//! | get       | consumer    | `taken += 1`, claims the slot (back to `taken - 1` if nothing was there), reads, releases the slot (Release) |
//! | task_done | consumer    | `unfinished -= 1` (AcqRel), then `taken -= 1` (Release) if above 0 |
//!
//! Between slices of its wait, `join` checks, in this order: `unfinished` (Acquire); every slot
//! (Acquire): one claimed by a live handle means wait, one holding a committed message means a
//! consumer may still take it; every live entry's `taken` (Acquire): above zero means wait;
//! `unfinished` again: changed means look again later. If nothing is being put, read or held by
//! anyone alive and no message waits, every unfinished task was taken by a handle that is gone
//! (killed, or dropped without `task_done`) or lost with a claimer that died: `TasksLost`.
//! Messages that wait with no live handle able to get them give [`JoinError::Disconnected`].
//!
//! Why the order is enough: a consumer raises its count before its claim and releases the slot
//! with Release after it, so a joiner whose Acquire load sees the slot released also sees the
//! count; a `task_done` lowers the shared count before its own, so a joiner that sees the
//! lowered `taken` sees `unfinished` changed; a put raises `unfinished` with Release after its
//! claim, so a joiner that counts the task sees its slot claimed.
//!
//! The count is per handle: call `task_done` on the handle that got the task, as Python's
//! consumers do. A `task_done` on another handle is counted in `unfinished` all the same, but
//! the getter's `taken` stays raised, so `join` then waits for that handle (as Python's would)
//! rather than report its task lost.

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
use crate::raw_queue::{JoinCheck, QueueState, RawQueue};
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

/// `join` (or `join_timeout`) ended without every task done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The deadline of `join_timeout` passed.
    Timeout {
        /// Tasks still unfinished at the deadline.
        unfinished: u64,
    },
    /// These tasks can never be done: each was got by a handle that has gone without marking it
    /// done (its process killed, or the handle dropped), or lost with a getter that died while
    /// reading it. Nothing else was left to wait for. Python's `join` would wait for ever. To go
    /// on using the queue, call `task_done` once per lost task (or shut it down).
    TasksLost {
        /// The tasks lost.
        lost: u64,
    },
    /// Tasks wait in the queue and no handle that could get them is alive (every consumer has
    /// dropped, closed for receiving, or died).
    Disconnected {
        /// Tasks still unfinished.
        unfinished: u64,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { unfinished } => {
                write!(f, "timed out with {unfinished} tasks unfinished")
            }
            Self::TasksLost { lost } => write!(
                f,
                "{lost} unfinished tasks can never be done: their getters have gone without \
                 task_done"
            ),
            Self::Disconnected { unfinished } => write!(
                f,
                "{unfinished} tasks unfinished and no handle that could get them is alive"
            ),
        }
    }
}

impl std::error::Error for JoinError {}

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

    /// Marks one task (got earlier, on this handle) as done.
    pub fn task_done(&mut self) -> Result<(), TaskDoneError> {
        if self.q.raw_mut().task_done() {
            Ok(())
        } else {
            Err(TaskDoneError)
        }
    }

    /// Waits until every task put has been marked done; returns an error instead of waiting for
    /// ever once tasks can never be done (their getters are gone) or cannot be got (no consumer
    /// is alive). See [`JoinError`].
    ///
    /// ```
    /// use ipc_queue::{JoinError, JoinableQueue};
    ///
    /// let mut q = JoinableQueue::<u32>::new(4)?;
    /// let mut getter = q.try_clone()?;
    /// q.put(1)?;
    /// getter.get()?;
    /// drop(getter); // gone without task_done
    /// assert_eq!(q.join(), Err(JoinError::TasksLost { lost: 1 }));
    /// q.task_done()?; // written off
    /// q.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(&mut self) -> Result<(), JoinError> {
        self.join_until(None)
    }

    /// Waits at most `timeout` for every task to be done (see [`join`](Self::join)).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<(), JoinError> {
        self.join_until(Some(Instant::now() + timeout))
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<(), JoinError> {
        let raw = self.q.raw();
        let spin = raw.spin();
        let state = raw.state();
        let check = || join_check(raw);
        // Before any wait, so that a join with nothing left to wait for returns at once.
        check()?;
        let r = signal::block_on(
            &state.all_done,
            deadline,
            spin,
            ipc_core::raw::sync::look_pause,
            || all_done(state),
            check,
        );
        match r {
            Ok(()) => Ok(()),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(JoinError::Timeout {
                unfinished: self.unfinished_tasks(),
            }),
        }
    }

    /// The async form of [`join`](Self::join): a future that waits until every task put has
    /// been marked done, for any executor, with the same errors as `join` (tasks whose getters
    /// are gone give [`JoinError::TasksLost`], tasks nobody alive can get give
    /// [`JoinError::Disconnected`], each found within a slice of the loss). Dropped before it is
    /// ready, it leaves nothing behind (it takes nothing; its waiter announcement is withdrawn).
    ///
    /// ```
    /// use ipc_queue::JoinableQueue;
    ///
    /// let mut q = JoinableQueue::<u32>::new(4)?;
    /// let mut worker = q.try_clone()?;
    /// q.put(1)?;
    /// std::thread::spawn(move || {
    ///     worker.get().unwrap();
    ///     worker.task_done().unwrap();
    /// });
    /// futures::executor::block_on(q.join_async())?;
    /// assert_eq!(q.unfinished_tasks(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    #[doc(alias = "join")]
    pub async fn join_async(&mut self) -> Result<(), JoinError> {
        self.join_until_async(None).await
    }

    /// The async form of [`join_timeout`](Self::join_timeout) (the timeout counts from this
    /// call).
    #[cfg(not(loom))]
    #[doc(alias = "join_timeout")]
    pub fn join_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), JoinError>> + '_ {
        self.join_until_async(Instant::now().checked_add(timeout))
    }

    /// `join_until` with its wait done by a [`SignalWait`](crate::awaiting::SignalWait).
    #[cfg(not(loom))]
    async fn join_until_async(&mut self, deadline: Option<Instant>) -> Result<(), JoinError> {
        let raw = self.q.raw();
        let spin = raw.spin();
        let state = raw.state();
        let check = || join_check(raw);
        // Before any wait, as in `join_until`.
        check()?;
        let mut wait = crate::awaiting::SignalWait::new();
        let r = std::future::poll_fn(|cx| {
            wait.poll(
                &state.all_done,
                deadline,
                spin,
                cx,
                || all_done(state),
                check,
            )
        })
        .await;
        match r {
            Ok(()) => Ok(()),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(JoinError::Timeout {
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
            .map_err(ipc_core::codec::de_error)?;
        Ok(Self { q })
    }
}

impl<'de, T: Serialize + DeserializeOwned> serde::Deserialize<'de> for JoinableQueue<T, Serde> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (handle, role) = <(ObjectHandle, u32)>::deserialize(d)?;
        let q = Queue::<T, Serde>::open_flavor(&handle, wire_role(role), true)
            .map_err(ipc_core::codec::de_error)?;
        Ok(Self { q })
    }
}

/// One attempt of a join's wait (blocking or async): ready once no task is unfinished.
#[inline]
fn all_done(state: &QueueState) -> Attempt<(), JoinError> {
    // ORDERING: Acquire, pairs with the AcqRel decrement in `task_done`: the tasks' work happens
    // before the join returns.
    if state.unfinished.load(Ordering::Acquire) == 0 {
        Attempt::Ready(Ok(()))
    } else {
        Attempt::Pending
    }
}

/// The check of a join before it waits and at the end of each slice (blocking or async): the
/// tasks lost with a dead consumer, or no consumer left to do the unfinished ones.
fn join_check(raw: &RawQueue) -> Result<(), JoinError> {
    match raw.join_check() {
        JoinCheck::Done | JoinCheck::Wait => Ok(()),
        JoinCheck::Lost(lost) => Err(JoinError::TasksLost { lost }),
        JoinCheck::NoConsumer(unfinished) => Err(JoinError::Disconnected { unfinished }),
    }
}
