//! Errors of pools and their tasks.

use std::fmt;

/// Why a task produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked; the worker survived.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The worker running the task died (killed by a signal, exited, out of memory). A
    /// replacement worker was started; other tasks are unaffected.
    WorkerDied {
        /// The dead worker's pid.
        pid: u32,
        /// How it ended, e.g. `killed by signal 9 (SIGKILL)` or `exited with code 3`.
        cause: String,
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
            Self::Panicked { message } => write!(f, "the task panicked: {message}"),
            Self::WorkerDied { pid, cause } => {
                write!(f, "the worker running the task (pid {pid}) died: {cause}")
            }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    /// The index of the first input item of the failed task (with a chunksize above 1, the
    /// failing item is one of the `chunksize` items from here).
    pub index: usize,
    /// Why it failed.
    pub error: TaskError,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}: {}", self.index, self.error)
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Building a pool failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A shared channel could not be created.
    Channel(String),
    /// A worker process could not be started.
    Start(ipc_core::StartError),
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
            Self::Channel(m) => write!(f, "cannot create the pool's channels: {m}"),
            Self::Start(e) => write!(f, "cannot start a worker process: {e}"),
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
            Self::Start(e) => Some(e),
            _ => None,
        }
    }
}

/// Submitting to a pool failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// The pool was closed or terminated: it accepts no new tasks.
    Closed,
    /// The argument could not be encoded.
    Encode(String),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the pool is closed: it accepts no new tasks"),
            Self::Encode(m) => write!(f, "cannot encode the task's argument: {m}"),
        }
    }
}

impl std::error::Error for SubmitError {}

impl From<SubmitError> for TaskError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Closed => TaskError::Terminated,
            SubmitError::Encode(message) => TaskError::Codec { message },
        }
    }
}
