//! Exit statuses and the errors of starting and joining.

use std::fmt;
use std::io;

use crate::codec::{DecodeError, EncodeError};

/// How a child ended, decoded from its wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
    /// The fork server died before it could report the child's end.
    Lost,
}

impl Status {
    /// Decodes a raw `waitpid` status.
    pub(super) fn from_raw(raw: i32) -> Self {
        if libc::WIFSIGNALED(raw) {
            Status::Signaled(libc::WTERMSIG(raw))
        } else {
            Status::Exited(libc::WEXITSTATUS(raw))
        }
    }

    /// Python's `exitcode`: the code, or minus the signal.
    pub(super) fn exit_code(self) -> Option<i32> {
        match self {
            Status::Exited(c) => Some(c),
            Status::Signaled(s) => Some(-s),
            Status::Lost => None,
        }
    }
}

/// Starting a process failed.
///
/// ```no_run
/// use ipc_core::{Process, StartError};
///
/// fn idle(_: ()) {}
///
/// let p = Process::new(idle, ());
/// p.start()?;
/// assert!(matches!(p.start(), Err(StartError::AlreadyStarted)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// `start` was called before on this process (a process starts at most once, as in Python).
    AlreadyStarted,
    /// The argument could not be serialised.
    Encode(EncodeError),
    /// The `Fork` start method was asked for while this process runs several threads; a fork
    /// would copy only the calling thread, leaving any lock another thread held locked forever in
    /// the child. Use `Spawn` or `ForkServer`, or accept the risk with
    /// [`ProcessBuilder::accept_fork_with_threads`](super::ProcessBuilder::accept_fork_with_threads).
    ForkWithThreads {
        /// The number of threads counted.
        threads: usize,
    },
    /// The re-executed child refused to run: it runs another binary than its parent, or the
    /// function identity does not resolve to code of this binary.
    BadFunction {
        /// The child's explanation.
        message: String,
    },
    /// The re-executed child ended before it reported ready (for instance, because it never
    /// reached the role dispatcher).
    ChildDied {
        /// Its exit code in Python's convention (`-N` for signal N), if known.
        exit_code: Option<i32>,
    },
    /// The fork server could not be started or refused the request.
    ForkServer {
        /// What went wrong.
        message: String,
    },
    /// A system call failed.
    Io(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::AlreadyStarted => write!(f, "the process was started already"),
            StartError::Encode(e) => write!(f, "cannot serialise the argument: {e}"),
            StartError::ForkWithThreads { threads } => write!(
                f,
                "refusing to fork a process with {threads} threads (use Spawn or ForkServer, or \
                 accept the risk explicitly)"
            ),
            StartError::BadFunction { message } => {
                write!(f, "the child cannot run the target: {message}")
            }
            StartError::ChildDied { exit_code } => match exit_code {
                Some(c) => write!(f, "the child ended (exit code {c}) before reporting ready"),
                None => write!(f, "the child ended before reporting ready"),
            },
            StartError::ForkServer { message } => write!(f, "fork server: {message}"),
            StartError::Io(e) => write!(f, "cannot start the process: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Encode(e) => Some(e),
            StartError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// Joining a process did not give its result.
///
/// ```no_run
/// use ipc_core::{JoinError, Process};
///
/// fn quit(code: i32) {
///     std::process::exit(code)
/// }
///
/// let p = Process::new(quit, 3);
/// assert!(matches!(p.join(), Err(JoinError::NotStarted)));
/// p.start()?;
/// assert!(matches!(p.join(), Err(JoinError::Exited { code: 3 })));
/// assert_eq!(p.exit_code(), Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// The process was never started (or its start failed).
    NotStarted,
    /// `join_timeout` reached its timeout; the process keeps running.
    Timeout,
    /// The target panicked (exit code 1).
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The process exited with a non-zero code without a result (e.g. `std::process::exit(3)`).
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by a signal (exit code `-signal`).
    Signaled {
        /// The signal number (15 for SIGTERM, 9 for SIGKILL).
        signal: i32,
    },
    /// The child could not decode its argument (exit code 1).
    ArgumentDecode {
        /// The decoder's message.
        message: String,
    },
    /// The child could not encode its result (exit code 1).
    ResultEncode {
        /// The encoder's message.
        message: String,
    },
    /// The result bytes did not decode as the result type.
    ResultDecode(DecodeError),
    /// The process exited with code 0 but sent no result (it called `exit(0)` itself), or the
    /// result was taken by an earlier `join`.
    ResultMissing,
    /// The fork server died before reporting how the process ended.
    StatusLost,
    /// The child sent bytes that are not a valid message.
    Corrupted,
    /// A system call failed.
    Io(io::Error),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::NotStarted => write!(f, "the process was not started"),
            JoinError::Timeout => write!(f, "the process is still running at the timeout"),
            JoinError::Panicked { message } => write!(f, "the process panicked: {message}"),
            JoinError::Exited { code } => write!(f, "the process exited with code {code}"),
            JoinError::Signaled { signal } => {
                write!(f, "the process was killed by signal {signal}")
            }
            JoinError::ArgumentDecode { message } => {
                write!(f, "the process could not decode its argument: {message}")
            }
            JoinError::ResultEncode { message } => {
                write!(f, "the process could not encode its result: {message}")
            }
            JoinError::ResultDecode(e) => write!(f, "cannot decode the result: {e}"),
            JoinError::ResultMissing => write!(f, "the process ended without a result"),
            JoinError::StatusLost => {
                write!(
                    f,
                    "the fork server died before reporting how the process ended"
                )
            }
            JoinError::Corrupted => write!(f, "the process sent a malformed message"),
            JoinError::Io(e) => write!(f, "cannot wait for the process: {e}"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinError::ResultDecode(e) => Some(e),
            JoinError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for JoinError {
    fn from(e: io::Error) -> Self {
        JoinError::Io(e)
    }
}
