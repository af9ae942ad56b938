//! The wire codec for values that are not `Pod`: serde with `postcard`'s compact binary format.
//!
//! Every crate of the workspace encodes through these two functions, so a value encoded by one
//! process decodes in another built from the same source.

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value could not be encoded.
#[derive(Debug)]
pub struct EncodeError(postcard::Error);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode value: {}", self.0)
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Bytes could not be decoded as the requested type (wrong type, truncated or corrupted), or
/// a value's `Deserialize` refused them (a handle that cannot be opened, say: then the message
/// says why, see [`de_error`]).
#[derive(Debug)]
pub struct DecodeError {
    error: postcard::Error,
    /// The message of the [`de_error`] that failed the decoding, if one did.
    message: Option<String>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "cannot decode value: {m}"),
            None => write!(f, "cannot decode value: {}", self.error),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

thread_local! {
    /// The message of this thread's last [`de_error`]: postcard's custom errors carry none.
    static LAST_CUSTOM: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A deserialisation error that keeps its message through [`decode`]: use it where a
/// `Deserialize` impl would call `serde::de::Error::custom` (postcard drops that message, so a
/// child whose argument names a queue it cannot open would learn only "Serde Deserialization
/// Error"). Every handle type of the workspace fails its decoding this way.
///
/// ```
/// use serde::{Deserialize, Deserializer};
///
/// struct Even(u32);
///
/// impl<'de> Deserialize<'de> for Even {
///     fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
///         let n = u32::deserialize(d)?;
///         if n % 2 == 0 { Ok(Even(n)) } else { Err(ipc_core::codec::de_error(format!("{n} is odd"))) }
///     }
/// }
///
/// let bytes = ipc_core::codec::encode(&3u32)?;
/// let err = ipc_core::codec::decode::<Even>(&bytes).err().unwrap();
/// assert_eq!(err.to_string(), "cannot decode value: 3 is odd");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn de_error<E: serde::de::Error>(msg: impl fmt::Display) -> E {
    let message = msg.to_string();
    let error = E::custom(&message);
    LAST_CUSTOM.with(|c| *c.borrow_mut() = Some(message));
    error
}

/// Encodes `value` into a new buffer.
///
/// ```
/// let bytes = ipc_core::codec::encode(&(1u32, "two".to_string()))?;
/// let back: (u32, String) = ipc_core::codec::decode(&bytes)?;
/// assert_eq!(back, (1, "two".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    postcard::to_stdvec(value).map_err(EncodeError)
}

/// Encodes `value`, appending to `buf` (which keeps its capacity between calls).
///
/// ```
/// let mut buf = Vec::new();
/// ipc_core::codec::encode_into(&7u64, &mut buf)?;
/// assert_eq!(ipc_core::codec::decode::<u64>(&buf)?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let taken = std::mem::take(buf);
    match postcard::to_extend(value, taken) {
        Ok(out) => {
            *buf = out;
            Ok(())
        }
        Err(e) => Err(EncodeError(e)),
    }
}

/// Decodes a `T` from `bytes`. Any byte pattern gives `Ok` or `Err`, never a panic.
///
/// ```
/// assert!(ipc_core::codec::decode::<String>(&[0xff, 0xff]).is_err());
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    LAST_CUSTOM.with(|c| c.borrow_mut().take());
    postcard::from_bytes(bytes).map_err(|error| DecodeError {
        message: match error {
            postcard::Error::SerdeDeCustom => LAST_CUSTOM.with(|c| c.borrow_mut().take()),
            _ => None,
        },
        error,
    })
}
