//! The wire codec for values that are not `Pod`: serde with `postcard`'s compact binary format.
//!
//! Every crate of the workspace encodes through these two functions, so a value encoded by one
//! process decodes in another built from the same source.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{DeserializeOwned, Error as _, SeqAccess, Visitor};

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

/// Encodes `value`, appending to `buf` (which keeps its capacity between calls). On failure
/// `buf` is as it was.
///
/// ```
/// let mut buf = Vec::new();
/// ipc_core::codec::encode_into(&7u64, &mut buf)?;
/// assert_eq!(ipc_core::codec::decode::<u64>(&buf)?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = buf.len();
    postcard::serialize_with_flavor(value, Append(buf)).map_err(|e| {
        buf.truncate(start);
        EncodeError(e)
    })
}

/// Pieces of postcard's output up to this many bytes are appended byte by byte (see
/// `Append::try_extend`); a varint is at most 10.
const SMALL_EXTEND: usize = 16;

/// Postcard's output appended to a borrowed buffer.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    // Inlined into postcard's serializer, as `try_push`: a call per varint was a tenth of a
    // serde `u64`'s send and receive through a `Connection` in a profile.
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= SMALL_EXTEND {
            // A varint or a small field: pushed byte by byte, cheaper than the call to
            // `memcpy` that a copy of a length known only at run time is.
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a `T` from `bytes`. Any byte pattern gives `Ok` or `Err`, never a panic.
///
/// ```
/// assert!(ipc_core::codec::decode::<String>(&[0xff, 0xff]).is_err());
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    LAST_CUSTOM.with(|c| c.borrow_mut().take());
    postcard::from_bytes(bytes).map_err(decode_error)
}

/// The error of [`decode`] for `error`, with the message of the [`de_error`] that caused it.
fn decode_error(error: postcard::Error) -> DecodeError {
    DecodeError {
        message: match error {
            postcard::Error::SerdeDeCustom => LAST_CUSTOM.with(|c| c.borrow_mut().take()),
            _ => None,
        },
        error,
    }
}

/// Decodes `bytes` as a sequence (a `Vec<A>` or a slice, as [`encode`] writes it) and hands each
/// element to `each`, in order, as it is read: no `Vec` is built. Returns how many there were.
///
/// ```
/// let bytes = ipc_core::codec::encode(&vec![1u32, 2, 3])?;
/// let mut sum = 0;
/// assert_eq!(ipc_core::codec::decode_each(&bytes, |x: u32| sum += x)?, 3);
/// assert_eq!(sum, 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_each<A: DeserializeOwned>(
    bytes: &[u8],
    each: impl FnMut(A),
) -> Result<usize, DecodeError> {
    struct Each<A, F>(F, PhantomData<fn(A)>);

    impl<'de, A: DeserializeOwned, F: FnMut(A)> Visitor<'de> for Each<A, F> {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<usize, S::Error> {
            let mut n = 0;
            while let Some(a) = seq.next_element::<A>()? {
                (self.0)(a);
                n += 1;
            }
            Ok(n)
        }
    }

    LAST_CUSTOM.with(|c| c.borrow_mut().take());
    let mut de = postcard::Deserializer::from_bytes(bytes);
    serde::Deserializer::deserialize_seq(&mut de, Each(each, PhantomData)).map_err(decode_error)
}

/// Why [`map_each`] failed.
#[derive(Debug)]
pub enum MapEachError {
    /// The input is not a sequence of the argument type.
    Decode(DecodeError),
    /// A result could not be encoded.
    Encode(EncodeError),
}

impl fmt::Display for MapEachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "argument: {e}"),
            Self::Encode(e) => write!(f, "result: {e}"),
        }
    }
}

impl std::error::Error for MapEachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            Self::Encode(e) => Some(e),
        }
    }
}

/// `f` over an encoded sequence, element by element: decodes `input` as [`decode_each`] does and
/// appends to `out` the encoding of the sequence of `f`'s results (what [`encode`] writes for
/// the `Vec<R>`), without building either `Vec`. Returns how many elements there were. On
/// failure `out` is as it was.
///
/// ```
/// let input = ipc_core::codec::encode(&vec![1u32, 2, 3])?;
/// let mut out = Vec::new();
/// ipc_core::codec::map_each(&input, &mut out, |x: u32| u64::from(x) * 10)?;
/// assert_eq!(ipc_core::codec::decode::<Vec<u64>>(&out)?, [10, 20, 30]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn map_each<A: DeserializeOwned, R: Serialize>(
    input: &[u8],
    out: &mut Vec<u8>,
    f: impl FnMut(A) -> R,
) -> Result<usize, MapEachError> {
    struct Map<'a, A, F> {
        f: F,
        out: &'a mut Vec<u8>,
        failed: &'a mut Option<EncodeError>,
        marker: PhantomData<fn(A)>,
    }

    impl<'de, A: DeserializeOwned, R: Serialize, F: FnMut(A) -> R> Visitor<'de> for Map<'_, A, F> {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<usize, S::Error> {
            let start = self.out.len();
            // The sequence's length comes first. Postcard knows it before the elements, unless
            // they claim more than the bytes left (elements of size zero, `()`): then it goes
            // in front once they are counted.
            let hint = seq.size_hint();
            let mut fail = |e: EncodeError| {
                *self.failed = Some(e);
                S::Error::custom("cannot encode a result")
            };
            if let Some(n) = hint {
                encode_into(&n, self.out).map_err(&mut fail)?;
            }
            let mut n = 0;
            while let Some(a) = seq.next_element::<A>()? {
                encode_into(&(self.f)(a), self.out).map_err(&mut fail)?;
                n += 1;
            }
            if hint.is_none() {
                let len = encode(&n).map_err(&mut fail)?;
                self.out.splice(start..start, len);
            }
            Ok(n)
        }
    }

    LAST_CUSTOM.with(|c| c.borrow_mut().take());
    let start = out.len();
    let mut failed = None;
    let visitor = Map {
        f,
        out: &mut *out,
        failed: &mut failed,
        marker: PhantomData,
    };
    let mut de = postcard::Deserializer::from_bytes(input);
    serde::Deserializer::deserialize_seq(&mut de, visitor).map_err(|e| {
        out.truncate(start);
        match failed {
            Some(encode) => MapEachError::Encode(encode),
            None => MapEachError::Decode(decode_error(e)),
        }
    })
}
