//! Errors of pools and their tasks: one enum per operation, causes through `source()`.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::marker::PhantomData;

use ipc_core::codec::EncodeError;

use crate::async_result::TaskFailure;

/// Why a task produced no value. Like Python's `RemoteTraceback`, a failure in a worker says
/// where it happened: the worker's pid, and for a panic its message and location.
///
/// ```no_run
/// use ipc_pool::{Pool, TaskError};
///
/// fn check(x: u32) -> u32 {
///     assert!(x < 3, "too big: {x}");
///     x
/// }
///
/// let pool = Pool::new(1)?;
/// match pool.apply(check, 5) {
///     Err(TaskError::Panicked { message, pid, location }) => {
///         assert_eq!(message, "too big: 5");
///         assert_ne!(pid, std::process::id());
///         assert!(location.is_some());
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked; the worker survived.
    Panicked {
        /// The panic message.
        message: String,
        /// The pid of the worker it ran in.
        pid: u32,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
    },
    /// The worker running the task died (killed by a signal, exited, out of memory). A
    /// replacement worker was started; other tasks are unaffected.
    WorkerDied {
        /// The dead worker's pid.
        pid: u32,
        /// Python's exit code: `-N` for signal N, the code it exited with; `None` if unknown.
        exit_code: Option<i32>,
        /// How it ended, in words, e.g. `killed by signal 9 (SIGKILL)`.
        cause: String,
    },
    /// The pool gave up: its workers kept dying before finishing any task, or no replacement
    /// could be started while none was left. Every unfinished task, and every task submitted
    /// after, fails with this; start a new pool once the cause (in `reason`) is mended.
    PoolBroken {
        /// Why, in words, with the last worker's end.
        reason: String,
    },
    /// The argument could not be encoded, or the result could not be encoded or decoded.
    Codec {
        /// What went wrong.
        message: String,
    },
    /// The pool was terminated (or dropped) before the task finished.
    Terminated,
    /// The result was already taken out (by `.await` or an earlier `get`).
    ResultTaken,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked {
                message,
                pid,
                location,
            } => {
                write!(f, "the task panicked in worker {pid}")?;
                if let Some(l) = location {
                    write!(f, " at {l}")?;
                }
                write!(f, ": {message}")
            }
            Self::WorkerDied { pid, cause, .. } => {
                write!(f, "the worker running the task (pid {pid}) died: {cause}")
            }
            Self::PoolBroken { reason } => write!(f, "the pool gave up: {reason}"),
            Self::Codec { message } => {
                write!(f, "the task's data could not be transferred: {message}")
            }
            Self::Terminated => f.write_str("the pool was terminated before the task finished"),
            Self::ResultTaken => f.write_str("the result was already taken"),
        }
    }
}

impl std::error::Error for TaskError {}

/// A task of `map` (or `starmap`, `imap`) failed.
///
/// Generic over the error a task fails with (`E`, [`TaskError`] by default), as
/// [`AsyncResult`](crate::AsyncResult) is, so that pools built on this crate (`ipc-cluster`'s)
/// report their own task errors through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError<E = TaskError> {
    /// The index of the first input item of the failed task (with a chunksize above 1, the
    /// failing item is one of the `chunksize` items from here).
    pub index: usize,
    /// Why it failed.
    pub error: E,
}

impl<E: fmt::Display> fmt::Display for MapError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}: {}", self.index, self.error)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for MapError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Building a pool failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A task or result queue could not be created.
    Queue(ipc_queue::CreateError),
    /// The result queue failed while the initializers ran.
    Results(ipc_queue::GetError),
    /// The shared board through which workers answer blocking `apply` calls could not be
    /// created.
    Segment(ipc_core::CreateError),
    /// A worker process could not be started.
    Start(ipc_core::StartError),
    /// A worker could not be watched (its pidfd).
    Watch(io::Error),
    /// A thread of the pool could not be started.
    Thread(io::Error),
    /// The initializer's argument could not be encoded.
    InitializerArgument(EncodeError),
    /// The initializer failed (panicked, or its worker died) in a fresh worker: the pool is not
    /// started, rather than respawning failing workers forever.
    Initializer {
        /// What happened.
        message: String,
    },
    /// The workers were to be started with [`StartMethod::Fork`](ipc_core::StartMethod::Fork)
    /// (asked of the builder, or set as the process-wide default). A pool runs threads of its
    /// own (result collection, worker supervision) from the moment it starts, and replaces dead
    /// workers later, so every fork after the first would copy a multi-threaded process, whose
    /// other threads' locks stay locked forever in the child. Use the fork server (the default)
    /// or `Spawn`.
    ForkStartMethod,
    /// An argument is out of range (Python raises `ValueError`).
    InvalidArgument {
        /// Which argument, and its range.
        what: &'static str,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(e) => write!(f, "cannot create the pool's queues: {e}"),
            Self::Results(e) => write!(f, "the pool's result queue failed: {e}"),
            Self::Segment(e) => write!(f, "cannot create the pool's reply board: {e}"),
            Self::Start(e) => write!(f, "cannot start a worker process: {e}"),
            Self::Watch(e) => write!(f, "cannot watch a worker process: {e}"),
            Self::Thread(e) => write!(f, "cannot start a thread of the pool: {e}"),
            Self::InitializerArgument(e) => {
                write!(f, "cannot encode the initializer's argument: {e}")
            }
            Self::Initializer { message } => write!(f, "the worker initializer failed: {message}"),
            Self::InvalidArgument { what } => write!(f, "invalid pool argument: {what}"),
            Self::ForkStartMethod => f.write_str(
                "a pool cannot start its workers with the Fork start method (it runs threads of \
                 its own and replaces workers later, and forking a multi-threaded process is \
                 unsafe): use StartMethod::ForkServer (the default) or StartMethod::Spawn",
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Queue(e) => Some(e),
            Self::Results(e) => Some(e),
            Self::Segment(e) => Some(e),
            Self::Start(e) => Some(e),
            Self::Watch(e) | Self::Thread(e) => Some(e),
            Self::InitializerArgument(e) => Some(e),
            _ => None,
        }
    }
}

/// Submitting to a pool failed.
///
/// Generic over the error a task of the pool fails with (`E`, [`TaskError`] by default), which
/// says what the pool is called in the message and what a refused task becomes
/// ([`PoolFailure::from_submit`]).
#[non_exhaustive]
pub enum SubmitError<E = TaskError> {
    /// The pool was closed or terminated: it accepts no new tasks.
    Closed,
    /// The argument could not be encoded.
    Encode(EncodeError),
    /// Never built (its first field has no value): it ties the error to its task error type.
    #[doc(hidden)]
    Never(Infallible, PhantomData<fn() -> E>),
}

impl<E> fmt::Debug for SubmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("Closed"),
            Self::Encode(e) => f.debug_tuple("Encode").field(e).finish(),
            Self::Never(never, _) => match *never {},
        }
    }
}

impl<E: PoolFailure> fmt::Display for SubmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => write!(f, "the {} is closed: it accepts no new tasks", E::POOL),
            Self::Encode(e) => write!(f, "cannot encode the task's argument: {e}"),
            Self::Never(never, _) => match *never {},
        }
    }
}

impl<E: PoolFailure> std::error::Error for SubmitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(e) => Some(e),
            Self::Closed => None,
            Self::Never(never, _) => match *never {},
        }
    }
}

/// What the machinery of [`crate::raw`] needs of a task's error, beyond [`TaskFailure`]: what a
/// refused or cancelled task becomes, what a task whose data did not travel becomes, and what the
/// pool is called in messages.
pub trait PoolFailure: TaskFailure + Sized {
    /// The pool's name in messages (`"pool"`: "the pool is closed").
    const POOL: &'static str;

    /// The pool was terminated, or closed, before the task ran.
    fn terminated() -> Self;

    /// The task's argument or result could not be encoded or decoded (in this process).
    fn codec(message: String) -> Self;

    /// What a task refused at submission becomes: `Closed` fails as terminated, an argument
    /// that did not encode as a codec failure.
    fn from_submit(e: SubmitError<Self>) -> Self {
        match e {
            SubmitError::Closed => Self::terminated(),
            SubmitError::Encode(e) => Self::codec(e.to_string()),
            SubmitError::Never(never, _) => match never {},
        }
    }
}

impl From<SubmitError> for TaskError {
    fn from(e: SubmitError) -> Self {
        Self::from_submit(e)
    }
}

impl TaskFailure for TaskError {
    fn result_taken() -> Self {
        TaskError::ResultTaken
    }
}

impl PoolFailure for TaskError {
    const POOL: &'static str = "pool";

    fn terminated() -> Self {
        TaskError::Terminated
    }

    fn codec(message: String) -> Self {
        TaskError::Codec { message }
    }
}
