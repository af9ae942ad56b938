//! The errors of every operation of this crate. Errors that refuse a value hand it back, and
//! their `Debug` does not require `T: Debug`.

use std::fmt;
use std::io;

use ipc_core::codec::{DecodeError, EncodeError};

/// Opening (attaching to) a queue, ring or pipe failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment could not be attached or its header is wrong (not ours, another type,
    /// another version, truncated...).
    Segment(ipc_core::OpenError),
    /// Every entry of the object's participant table is held by a process the kernel does not
    /// call dead. Create the object with a larger table (`participants(n)` on its builder).
    TooManyParticipants {
        /// The number of entries of the table.
        limit: usize,
    },
    /// This process's own identity (pid and start time, from `/proc/self/stat`) could not be
    /// read, so it cannot be recorded as a participant (out of descriptors, `/proc` missing).
    Identity(io::Error),
    /// The role asked for (a ring's producer or consumer) is held by another live handle, in
    /// this process or another (`pid`). A role is released when its handle drops, and taken
    /// over once the kernel says its holder's process is dead.
    RoleTaken {
        /// The process that holds it.
        pid: u32,
    },
    /// The role asked for has been handed over: its handle was serialised (to pass it to
    /// another process) and only the deserialiser of those bytes may take it.
    RoleInTransit,
    /// The object's layout is impossible (e.g. a capacity that does not match the segment).
    Corrupted {
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Segment(e) => write!(f, "cannot attach: {e}"),
            Self::TooManyParticipants { limit } => write!(
                f,
                "all {limit} participant entries of the object are held by live handles; \
                 create it with a larger participant table"
            ),
            Self::Identity(e) => write!(
                f,
                "cannot read this process's identity (pid and start time) to attach: {e}"
            ),
            Self::RoleTaken { pid } => write!(
                f,
                "the role is held by a live handle of process {pid}; it is freed when that \
                 handle drops or its process dies"
            ),
            Self::RoleInTransit => f.write_str(
                "the role was handed over in a serialised handle that has not been \
                 deserialised yet; only that deserialisation can take it",
            ),
            Self::Corrupted { what } => write!(f, "shared object corrupted: {what}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Segment(e) => Some(e),
            Self::Identity(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ipc_core::OpenError> for OpenError {
    fn from(e: ipc_core::OpenError) -> Self {
        Self::Segment(e)
    }
}

/// Creating a queue, ring or pipe failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// The segment could not be created.
    Segment(ipc_core::CreateError),
    /// The capacity is zero or too large.
    InvalidCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The participant table size is zero or above [`MAX_PARTICIPANTS`](crate::MAX_PARTICIPANTS).
    InvalidParticipants {
        /// The size asked for.
        participants: usize,
    },
    /// This process's own identity could not be read, so the creating handle cannot attach.
    Identity(io::Error),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Segment(e) => write!(f, "cannot create the shared segment: {e}"),
            Self::InvalidCapacity { capacity } => write!(
                f,
                "invalid capacity {capacity}: it must be at least 1 and fit in memory"
            ),
            Self::InvalidParticipants { participants } => write!(
                f,
                "invalid participant table size {participants}: it must be between 1 and {}",
                crate::participants::MAX_PARTICIPANTS
            ),
            Self::Identity(e) => write!(
                f,
                "cannot read this process's identity (pid and start time) to attach: {e}"
            ),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Segment(e) => Some(e),
            Self::Identity(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ipc_core::CreateError> for CreateError {
    fn from(e: ipc_core::CreateError) -> Self {
        Self::Segment(e)
    }
}

/// The errors of a put: the reason of its own first (`$first`), then the reasons every put
/// shares; each variant hands the value back.
macro_rules! put_error_enum {
    ($(#[$doc:meta])* $name:ident { $(#[$first_doc:meta])* $first:ident }) => {
        $(#[$doc])*
        #[non_exhaustive]
        pub enum $name<T> {
            $(#[$first_doc])*
            $first(T),
            /// Every handle that could receive has gone (dropped, or its process exited).
            Disconnected(T),
            /// The shared state holds an impossible value.
            Corrupted(T),
            /// The value could not be encoded.
            Encode(T, EncodeError),
            /// A message too large for a slot could not be placed in its own segment.
            Spill(T, ipc_core::CreateError),
            /// This handle cannot act in this process: it is a fork child's copy that could not
            /// claim a participant entry of its own (the table is full, or the child's identity
            /// could not be read). It never acts under its parent's id.
            NotAttached(T),
            /// This handle's role (a ring end) was handed over to another process by serialising
            /// the handle; this handle is inert.
            HandedOver(T),
            /// This handle puts no more: it was [`close`](crate::Queue::close)d, or opened as a
            /// consumer only (Python raises `ValueError` on `put` after `close`).
            Closed(T),
            /// The queue was [`shutdown`](crate::Queue::shutdown) (Python raises `ShutDown`).
            ShutDown(T),
        }
    };
}

put_error_enum! {
    /// `try_put` (`put_nowait`, `push`) refused a value; the value comes back.
    TryPutError {
        /// No free slot right now.
        Full
    }
}

put_error_enum! {
    /// `put` (`send`) failed; the value comes back.
    PutError {
        /// The deadline passed with the queue full.
        Timeout
    }
}

macro_rules! put_error_impls {
    ($name:ident, $first:ident, $first_msg:literal) => {
        impl<T> $name<T> {
            /// The value that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    Self::$first(v)
                    | Self::Disconnected(v)
                    | Self::Corrupted(v)
                    | Self::Encode(v, _)
                    | Self::Spill(v, _)
                    | Self::NotAttached(v)
                    | Self::HandedOver(v)
                    | Self::Closed(v)
                    | Self::ShutDown(v) => v,
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    Self::$first(_) => f.write_str(concat!(stringify!($first), "(..)")),
                    Self::Disconnected(_) => f.write_str("Disconnected(..)"),
                    Self::Corrupted(_) => f.write_str("Corrupted(..)"),
                    Self::Encode(_, e) => f.debug_tuple("Encode").field(&"..").field(e).finish(),
                    Self::Spill(_, e) => f.debug_tuple("Spill").field(&"..").field(e).finish(),
                    Self::NotAttached(_) => f.write_str("NotAttached(..)"),
                    Self::HandedOver(_) => f.write_str("HandedOver(..)"),
                    Self::Closed(_) => f.write_str("Closed(..)"),
                    Self::ShutDown(_) => f.write_str("ShutDown(..)"),
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    Self::$first(_) => f.write_str($first_msg),
                    Self::Disconnected(_) => f.write_str(
                        "every receiving handle has gone (dropped or its process exited)",
                    ),
                    Self::Corrupted(_) => f.write_str("the shared state is corrupted"),
                    Self::Encode(_, e) => write!(f, "{e}"),
                    Self::Spill(_, e) => write!(f, "cannot place a large message: {e}"),
                    Self::NotAttached(_) => f.write_str(NOT_ATTACHED),
                    Self::HandedOver(_) => f.write_str(HANDED_OVER),
                    Self::Closed(_) => f.write_str(PUT_CLOSED),
                    Self::ShutDown(_) => f.write_str(SHUT_DOWN),
                }
            }
        }

        impl<T> std::error::Error for $name<T> {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    Self::Encode(_, e) => Some(e),
                    Self::Spill(_, e) => Some(e),
                    _ => None,
                }
            }
        }
    };
}

const NOT_ATTACHED: &str = "this handle cannot act in this process: it is a fork child's copy \
    that could not claim a participant entry or role of its own (the table is full, the role is \
    held by a live process, or the identity is unreadable)";
const HANDED_OVER: &str = "this end was handed over to another process (its handle was \
    serialised); this handle is inert";
const PUT_CLOSED: &str = "this handle puts no more: it was closed, or opened to get only";
const GET_CLOSED: &str =
    "this handle gets no more: it was closed for receiving, or opened to put only";
const SHUT_DOWN: &str = "the queue was shut down";

put_error_impls!(TryPutError, Full, "the queue is full");
put_error_impls!(PutError, Timeout, "timed out waiting for a free slot");

/// `try_get` (`get_nowait`, `pop`) found nothing or failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TryGetError {
    /// No message right now.
    Empty,
    /// Empty, and every handle that could send has gone (dropped, or its process exited).
    Disconnected,
    /// The shared state holds an impossible value.
    Corrupted,
    /// A message could not be decoded as the expected type.
    Decode(DecodeError),
    /// A large message's own segment could not be opened.
    Spill(ipc_core::OpenError),
    /// This handle cannot act in this process (a fork child's copy without a participant entry
    /// of its own).
    NotAttached,
    /// This handle's role (a ring end) was handed over to another process by serialising the
    /// handle; this handle is inert.
    HandedOver,
    /// This handle gets no more: it was closed for receiving
    /// ([`close_receiving`](crate::Queue::close_receiving)), or opened as a producer only.
    Closed,
    /// The queue was [`shutdown`](crate::Queue::shutdown) and is empty, or was shut down
    /// immediately (Python raises `ShutDown`).
    ShutDown,
}

/// `get` (`recv`) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum GetError {
    /// The deadline passed with nothing to receive.
    Timeout,
    /// Empty, and every handle that could send has gone (Python raises `EOFError`).
    Disconnected,
    /// The shared state holds an impossible value.
    Corrupted,
    /// A message could not be decoded as the expected type.
    Decode(DecodeError),
    /// A large message's own segment could not be opened.
    Spill(ipc_core::OpenError),
    /// This handle cannot act in this process (a fork child's copy without a participant entry
    /// of its own).
    NotAttached,
    /// This handle's role (a ring end) was handed over to another process by serialising the
    /// handle; this handle is inert.
    HandedOver,
    /// This handle gets no more: it was closed for receiving
    /// ([`close_receiving`](crate::Queue::close_receiving)), or opened as a producer only.
    Closed,
    /// The queue was [`shutdown`](crate::Queue::shutdown) and is empty, or was shut down
    /// immediately (Python raises `ShutDown`).
    ShutDown,
}

macro_rules! get_error_impls {
    ($name:ident, $first:ident, $first_msg:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    Self::$first => f.write_str($first_msg),
                    Self::Disconnected => f.write_str(
                        "nothing to receive and every sending handle has gone (dropped or its process exited)",
                    ),
                    Self::Corrupted => f.write_str("the shared state is corrupted"),
                    Self::Decode(e) => write!(f, "{e}"),
                    Self::Spill(e) => write!(f, "cannot open a large message: {e}"),
                    Self::NotAttached => f.write_str(NOT_ATTACHED),
                    Self::HandedOver => f.write_str(HANDED_OVER),
                    Self::Closed => f.write_str(GET_CLOSED),
                    Self::ShutDown => f.write_str(SHUT_DOWN),
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    Self::Decode(e) => Some(e),
                    Self::Spill(e) => Some(e),
                    _ => None,
                }
            }
        }
    };
}

get_error_impls!(TryGetError, Empty, "nothing to receive");
get_error_impls!(GetError, Timeout, "timed out waiting for a message");

impl From<TryGetError> for GetError {
    fn from(e: TryGetError) -> Self {
        match e {
            TryGetError::Empty => Self::Timeout,
            TryGetError::Disconnected => Self::Disconnected,
            TryGetError::Corrupted => Self::Corrupted,
            TryGetError::Decode(e) => Self::Decode(e),
            TryGetError::Spill(e) => Self::Spill(e),
            TryGetError::NotAttached => Self::NotAttached,
            TryGetError::HandedOver => Self::HandedOver,
            TryGetError::Closed => Self::Closed,
            TryGetError::ShutDown => Self::ShutDown,
        }
    }
}

impl<T> From<TryPutError<T>> for PutError<T> {
    fn from(e: TryPutError<T>) -> Self {
        match e {
            TryPutError::Full(v) => Self::Timeout(v),
            TryPutError::Disconnected(v) => Self::Disconnected(v),
            TryPutError::Corrupted(v) => Self::Corrupted(v),
            TryPutError::Encode(v, e) => Self::Encode(v, e),
            TryPutError::Spill(v, e) => Self::Spill(v, e),
            TryPutError::NotAttached(v) => Self::NotAttached(v),
            TryPutError::HandedOver(v) => Self::HandedOver(v),
            TryPutError::Closed(v) => Self::Closed(v),
            TryPutError::ShutDown(v) => Self::ShutDown(v),
        }
    }
}
