//! The wire codec for values that are not `Pod`: serde with `postcard`'s compact binary format.
//!
//! Every crate of the workspace encodes through these two functions, so a value encoded by one
//! process decodes in another built from the same source.

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

/// Bytes could not be decoded as the requested type (wrong type, truncated or corrupted).
#[derive(Debug)]
pub struct DecodeError(postcard::Error);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode value: {}", self.0)
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
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
    postcard::from_bytes(bytes).map_err(DecodeError)
}
