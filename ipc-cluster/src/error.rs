//! Errors of the cluster pool and its tasks: one enum per operation, causes through `source()`.
//! (The zenoh backend's own errors, for nodes, serving and queues, are in its module.)

use std::fmt;
use std::time::Duration;

use ipc_core::codec::EncodeError;
use ipc_pool::raw::{PoolFailure, TaskFailure};

/// How a worker process or a whole host ended, as the master learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeathCause {
    /// The host's liveliness token vanished: the host was killed or crashed (noticed at once,
    /// its TCP connection closes), or it was cut off and its lease expired.
    HostLost,
    /// A worker process inside the host died, as the host's pool reported it.
    Process {
        /// Python's exit code: `-N` for signal N, the code it exited with; `None` if unknown.
        exit_code: Option<i32>,
        /// How it ended, in words (from the host), e.g. `killed by signal 9 (SIGKILL)`.
        description: String,
    },
}

impl fmt::Display for DeathCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostLost => f.write_str(
                "the host was lost (its liveliness token vanished: killed, crashed, or cut off)",
            ),
            Self::Process { description, .. } => f.write_str(description),
        }
    }
}

/// Why a task (a chunk of a map, or one `apply`) produced no value. Every failure that
/// happened on a host names it.
///
/// ```no_run
/// # #[cfg(feature = "zenoh")] {
/// use ipc_cluster::{ClusterPool, Node, TaskError};
///
/// fn check(x: u32) -> u32 {
///     assert!(x < 3, "too big: {x}");
///     x
/// }
///
/// let node = Node::builder().listen("tcp/0.0.0.0:7447").open()?;
/// let pool = ClusterPool::builder().min_hosts(1).build(&node)?;
/// match pool.apply(check, 5) {
///     Err(TaskError::Panicked { host, message, .. }) => println!("{host}: {message}"),
///     other => println!("{other:?}"),
/// }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The function panicked in a worker process of `host`; the process lives on.
    Panicked {
        /// The host's name.
        host: String,
        /// The worker process's pid on that host.
        pid: u32,
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, when known.
        location: Option<String>,
    },
    /// What ran the task died: a worker process inside `host` (the host's pool replaced it),
    /// or the whole host. The host's other queued chunks went to other hosts.
    WorkerDied {
        /// The host's name.
        host: String,
        /// The dead worker process's pid, or the host's pid when the whole host was lost.
        pid: u32,
        /// How it ended.
        cause: DeathCause,
    },
    /// The argument or result could not be encoded or decoded (on `host`, if named).
    Codec {
        /// Where, if on a host.
        host: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// The host refused the function reference (its tag did not check out under the host's
    /// key); with one build everywhere this means corrupted or forged traffic.
    Refused {
        /// The host's name.
        host: String,
    },
    /// The pool of `host` gave up: its worker processes kept dying before finishing any task,
    /// or none could be restarted. The host serves nothing more; mend the cause (`reason`) and
    /// start it again.
    PoolBroken {
        /// The host's name.
        host: String,
        /// Why, in words, with the last worker's end.
        reason: String,
    },
    /// The pool was terminated (or dropped) before the task finished.
    Terminated,
    /// The result was already taken out (by `.await` or an earlier `get`).
    ResultTaken,
    /// No host was alive for the pool's `no_host_timeout`, so the task could not run.
    NoHosts {
        /// How long the pool had been without a live host.
        waited: Duration,
    },
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked {
                host,
                pid,
                message,
                location,
            } => {
                write!(f, "the task panicked on host {host} in worker {pid}")?;
                if let Some(l) = location {
                    write!(f, " at {l}")?;
                }
                write!(f, ": {message}")
            }
            Self::WorkerDied {
                host,
                pid,
                cause: DeathCause::HostLost,
            } => write!(
                f,
                "host {host} (pid {pid}) running the task was lost: its liveliness token vanished"
            ),
            Self::WorkerDied { host, pid, cause } => write!(
                f,
                "the worker running the task on host {host} (pid {pid}) died: {cause}"
            ),
            Self::Codec {
                host: Some(host),
                message,
            } => write!(
                f,
                "the task's data could not be transferred on host {host}: {message}"
            ),
            Self::Codec {
                host: None,
                message,
            } => write!(f, "the task's data could not be transferred: {message}"),
            Self::Refused { host } => write!(
                f,
                "host {host} refused the task's function reference (its tag did not check out)"
            ),
            Self::PoolBroken { host, reason } => {
                write!(f, "the pool of host {host} gave up: {reason}")
            }
            Self::Terminated => f.write_str("the pool was terminated before the task finished"),
            Self::ResultTaken => f.write_str("the result was already taken"),
            Self::NoHosts { waited } => write!(
                f,
                "no host was alive for {:.1} s, so the task could not run",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for TaskError {}

/// A task of `map` (or `starmap`, `imap`) failed: `ipc_pool`'s [`MapError`](ipc_pool::MapError)
/// (`index`, the first input item of the failed chunk, and `error`), with this crate's
/// [`TaskError`].
pub type MapError = ipc_pool::MapError<TaskError>;

/// Submitting to a cluster pool failed: `ipc_pool`'s [`SubmitError`](ipc_pool::SubmitError)
/// (`Closed`, or `Encode` with the argument's encoding error), for this crate's [`TaskError`].
pub type SubmitError = ipc_pool::SubmitError<TaskError>;

impl From<SubmitError> for TaskError {
    fn from(e: SubmitError) -> Self {
        Self::from_submit(e)
    }
}

/// Waiting for hosts to join ended without enough of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitHostsError {
    /// Fewer than the wanted number of hosts were alive at the timeout.
    Timeout {
        /// How many were wanted.
        wanted: usize,
        /// How many were alive.
        alive: usize,
    },
    /// The pool was closed or terminated meanwhile.
    Closed,
}

impl fmt::Display for WaitHostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { wanted, alive } => write!(
                f,
                "only {alive} of the {wanted} hosts wanted had joined at the timeout"
            ),
            Self::Closed => f.write_str("the cluster pool was closed while waiting for hosts"),
        }
    }
}

impl std::error::Error for WaitHostsError {}

/// Building a cluster pool failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// This program's build id could not be computed (reading the executable failed).
    BuildId(std::io::Error),
    /// The initializer's argument could not be encoded.
    InitializerArgument(EncodeError),
    /// A thread of the pool could not be started.
    Thread(std::io::Error),
    /// The transport refused to declare the pool's endpoints.
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// `min_hosts` hosts did not join within the timeout.
    Hosts(WaitHostsError),
    /// An argument is out of range.
    InvalidArgument {
        /// Which, and why.
        what: &'static str,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuildId(e) => write!(f, "cannot compute this program's build id: {e}"),
            Self::InitializerArgument(e) => {
                write!(f, "cannot encode the initializer's argument: {e}")
            }
            Self::Thread(e) => write!(f, "cannot start a thread of the cluster pool: {e}"),
            Self::Transport(e) => write!(f, "cannot declare the cluster pool's endpoints: {e}"),
            Self::Hosts(e) => write!(f, "the cluster pool's hosts did not join: {e}"),
            Self::InvalidArgument { what } => write!(f, "invalid cluster pool argument: {what}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BuildId(e) | Self::Thread(e) => Some(e),
            Self::InitializerArgument(e) => Some(e),
            Self::Transport(e) => Some(&**e),
            Self::Hosts(e) => Some(e),
            Self::InvalidArgument { .. } => None,
        }
    }
}

impl TaskFailure for TaskError {
    fn result_taken() -> Self {
        TaskError::ResultTaken
    }
}

impl PoolFailure for TaskError {
    const POOL: &'static str = "cluster pool";

    fn terminated() -> Self {
        TaskError::Terminated
    }

    fn codec(message: String) -> Self {
        TaskError::Codec {
            host: None,
            message,
        }
    }
}
