//! Errors of creating and opening shared segments, shared by every crate of the workspace.

use std::fmt;
use std::io;

use crate::header::TypeFingerprint;

/// Creating a segment failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// A segment of this name exists already (creation uses `O_EXCL`). Pick another name, or
    /// open the existing one.
    AlreadyExists {
        /// The name asked for.
        name: String,
    },
    /// The name is not usable as a POSIX shared-memory name.
    InvalidName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The requested size is zero or too large for this platform.
    InvalidSize {
        /// The size asked for, in bytes.
        size: u64,
    },
    /// The operating system refused (out of memory, too many open files, no `/dev/shm`...).
    Io(io::Error),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyExists { name } => write!(
                f,
                "shared-memory segment `{name}` already exists; open it, or choose another name"
            ),
            Self::InvalidName { name, reason } => {
                write!(f, "`{name}` is not a valid shared-memory name: {reason}")
            }
            Self::InvalidSize { size } => write!(
                f,
                "invalid segment size {size} bytes: it must be at least 1 and fit in memory"
            ),
            Self::Io(e) => write!(f, "cannot create shared-memory segment: {e}"),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Opening (attaching to) a segment failed. Each way a segment can be wrong has its own variant.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// No segment of this name exists (never created, or unlinked).
    NotFound {
        /// The name looked for.
        name: String,
    },
    /// The process that created this anonymous segment has exited, and this process holds no
    /// descriptor of it, so it cannot be reached any more.
    PeerDied {
        /// The creator's pid.
        pid: u32,
    },
    /// The process a handle of this anonymous segment came from still runs, but no longer holds
    /// the descriptor the handle names: the handle it was sent from was dropped before this
    /// process opened it.
    HandleClosed {
        /// The sending process's pid.
        pid: u32,
        /// The descriptor the handle named there.
        fd: i32,
    },
    /// The segment does not start with this workspace's magic number: it is not one of ours
    /// (or it is a raw segment, to be opened with `SharedMemory`).
    NotOurs,
    /// The segment was laid out by a different version of this library.
    VersionMismatch {
        /// The layout version found in the segment.
        found: u32,
        /// The layout version this library writes.
        expected: u32,
    },
    /// The segment holds a different type or kind of object than the one asked for (for
    /// example a `RawValue<u64>` opened as a `RawValue<u32>`).
    IncompatibleLayout {
        /// What the caller asked for.
        expected: TypeFingerprint,
        /// What the segment says it holds.
        found: TypeFingerprint,
    },
    /// The segment is shorter than its header says it must be.
    Truncated {
        /// Bytes the header requires.
        needed: u64,
        /// Bytes actually mapped.
        actual: u64,
    },
    /// A header field holds an impossible value.
    Corrupted {
        /// Which field, and what is wrong with it.
        what: &'static str,
    },
    /// The creator had not finished initialising the segment by the deadline (it may have
    /// died while doing so).
    InitTimeout,
    /// The operating system refused (permissions, too many open files...).
    Io(io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { name } => write!(
                f,
                "no shared-memory segment named `{name}` (never created, or already unlinked)"
            ),
            Self::PeerDied { pid } => write!(
                f,
                "the creator of this anonymous segment (pid {pid}) has exited and no descriptor \
                 of it is left in this process"
            ),
            Self::HandleClosed { pid, fd } => write!(
                f,
                "the handle of this anonymous segment was dropped by the process it came from \
                 (pid {pid}, descriptor {fd}) before this process opened it: the sender must \
                 keep it until the receiver has opened its own"
            ),
            Self::NotOurs => f.write_str(
                "the segment does not carry this library's header (bad magic): not one of ours",
            ),
            Self::VersionMismatch { found, expected } => write!(
                f,
                "segment layout version {found}, but this library reads version {expected}: \
                 rebuild both sides from the same version"
            ),
            Self::IncompatibleLayout { expected, found } => {
                write!(f, "segment holds {found}, but {expected} was asked for")
            }
            Self::Truncated { needed, actual } => write!(
                f,
                "segment truncated: its header needs {needed} bytes, but only {actual} are mapped"
            ),
            Self::Corrupted { what } => write!(f, "segment header corrupted: {what}"),
            Self::InitTimeout => f.write_str(
                "segment still initialising past the timeout (its creator may have died)",
            ),
            Self::Io(e) => write!(f, "cannot open shared-memory segment: {e}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}
