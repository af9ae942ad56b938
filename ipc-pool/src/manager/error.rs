//! `ManagerError`: what a manager call can meet.

use std::fmt;

use ipc_core::codec::{DecodeError, EncodeError};

use super::wire::WireError;

/// A manager call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManagerError {
    /// The manager process has exited (shut down, or killed).
    ManagerGone,
    /// The manager process could not be started.
    Start(ipc_core::StartError),
    /// A request or response queue could not be created.
    Queue(ipc_queue::CreateError),
    /// The manager is alive but could not take this connection (for instance, it is out of
    /// file descriptors); what it said.
    Refused(String),
    /// The object's code panicked inside the manager; the manager lives on.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// A value could not be encoded here.
    Encode(EncodeError),
    /// A reply could not be decoded here (a value of another type was stored).
    Decode(DecodeError),
    /// The manager could not decode or encode a value (the message it sent).
    Codec(String),
    /// The request names no such object, or an index/key outside it.
    NotFound(String),
    /// The manager answered something impossible.
    Protocol(&'static str),
    /// The manager's initializer failed; the manager did not start.
    Initializer(String),
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManagerGone => f.write_str("the manager process is gone (shut down or killed)"),
            Self::Start(e) => write!(f, "cannot start the manager process: {e}"),
            Self::Queue(e) => write!(f, "cannot create a manager queue: {e}"),
            Self::Refused(m) => write!(f, "the manager refused the connection: {m}"),
            Self::Panicked { message } => write!(f, "the call panicked in the manager: {message}"),
            Self::Encode(e) => write!(f, "cannot encode the value: {e}"),
            Self::Decode(e) => write!(f, "cannot decode the manager's reply: {e}"),
            Self::Codec(m) => write!(f, "the manager cannot transfer the value: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::Protocol(m) => write!(f, "unexpected reply from the manager: {m}"),
            Self::Initializer(m) => write!(f, "the manager did not start: {m}"),
        }
    }
}

impl std::error::Error for ManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Start(e) => Some(e),
            Self::Queue(e) => Some(e),
            Self::Encode(e) => Some(e),
            Self::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<WireError> for ManagerError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Panicked(message) => Self::Panicked { message },
            WireError::Codec(m) => Self::Codec(m),
            WireError::NotFound(m) => Self::NotFound(m),
            WireError::Refused(m) => Self::Refused(m),
        }
    }
}
