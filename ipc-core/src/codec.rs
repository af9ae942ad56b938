//! The wire codec for values that are not `Pod`: serde with `postcard`'s compact binary format.
//!
//! Every crate of the workspace encodes through these two functions, so a value encoded by one
//! process decodes in another built from the same source.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

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
    /// Whether `LAST_CUSTOM` may hold a message: read before it is cleared, so that a decode
    /// that finds nothing to clear writes nothing (in a forked child, the first write to the
    /// thread-local page is a copy-on-write fault).
    static HAS_CUSTOM: Cell<bool> = const { Cell::new(false) };
}

/// Forgets the message of an earlier [`de_error`] on this thread, writing only if there is one.
#[inline]
fn clear_custom() {
    if HAS_CUSTOM.with(Cell::get) {
        HAS_CUSTOM.with(|h| h.set(false));
        LAST_CUSTOM.with(|c| c.borrow_mut().take());
    }
}

/// Takes the message of the last [`de_error`] on this thread.
fn take_custom() -> Option<String> {
    HAS_CUSTOM.with(|h| h.set(false));
    LAST_CUSTOM.with(|c| c.borrow_mut().take())
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
    HAS_CUSTOM.with(|h| h.set(true));
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

/// Encodes `value` into `small` while it fits there; when it does not, what was written moves to
/// the end of `big` and the encoding goes on there (one pass: a value is serialised once, so a
/// `Serialize` with side effects has them once). Returns the length written to `small`, or
/// `None` when the encoding was appended to `big`. On failure `big` is as it was.
///
/// A forked child encodes its result so: into its stack, whose page it has written already,
/// rather than into a heap page it would have to copy first. Inlined into that child's
/// trampoline, for the same reason as [`decode_inline`].
#[inline(always)]
pub(crate) fn encode_spilling<T: Serialize + ?Sized>(
    value: &T,
    small: &mut [MaybeUninit<u8>],
    big: &mut Vec<u8>,
) -> Result<Option<usize>, EncodeError> {
    let start = big.len();
    let spill = Spill {
        small,
        len: 0,
        big,
        spilled: false,
    };
    // `postcard::serialize_with_flavor`, written out so that it is inlined too (postcard's own
    // stays a call).
    let mut serializer = postcard::Serializer { output: spill };
    let encoded = value.serialize(&mut serializer);
    match encoded.map(|()| postcard::ser_flavors::Flavor::finalize(serializer.output)) {
        Ok(Ok(len)) => Ok(len),
        Ok(Err(e)) | Err(e) => {
            big.truncate(start);
            Err(EncodeError(e))
        }
    }
}

/// Postcard's output into a borrowed slice, then, once that is full, appended to a borrowed
/// buffer (see [`encode_spilling`]).
struct Spill<'a> {
    small: &'a mut [MaybeUninit<u8>],
    /// How many bytes of `small` are written (all initialised).
    len: usize,
    big: &'a mut Vec<u8>,
    /// Whether the output has moved to `big`.
    spilled: bool,
}

impl Spill<'_> {
    /// Moves what `small` holds to `big`, where the rest of the output goes.
    fn spill(&mut self) {
        // SAFETY: the first `len` bytes of `small` were written by `try_push`/`try_extend`.
        let written =
            unsafe { std::slice::from_raw_parts(self.small.as_ptr().cast::<u8>(), self.len) };
        self.big.extend_from_slice(written);
        self.spilled = true;
    }
}

impl postcard::ser_flavors::Flavor for Spill<'_> {
    type Output = Option<usize>;

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= SMALL_EXTEND {
            // Byte by byte, as `Append` does (a copy of a length known only at run time is a
            // call to `memcpy`, whose code a forked child would fault in).
            for &b in data {
                self.try_push(b)?;
            }
            return Ok(());
        }
        if !self.spilled {
            if let Some(room) = self.small.get_mut(self.len..self.len + data.len()) {
                for (to, &b) in room.iter_mut().zip(data) {
                    to.write(b);
                }
                self.len += data.len();
                return Ok(());
            }
            self.spill();
        }
        self.big.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if !self.spilled {
            if let Some(to) = self.small.get_mut(self.len) {
                to.write(data);
                self.len += 1;
                return Ok(());
            }
            self.spill();
        }
        self.big.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Option<usize>> {
        Ok((!self.spilled).then_some(self.len))
    }
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
    decode_inline(bytes)
}

/// [`decode`], inlined into its caller: a forked child's trampoline, which then runs its
/// decoding from the code window it is in rather than take a page fault for another.
#[inline(always)]
pub(crate) fn decode_inline<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    clear_custom();
    postcard::from_bytes(bytes).map_err(decode_error)
}

/// The error of [`decode`] for `error`, with the message of the [`de_error`] that caused it.
fn decode_error(error: postcard::Error) -> DecodeError {
    DecodeError {
        message: match error {
            postcard::Error::SerdeDeCustom => take_custom(),
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

    clear_custom();
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

    clear_custom();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Counts how many times it is serialised.
    struct Counted<'a>(&'a Cell<u32>, Vec<u8>);

    impl Serialize for Counted<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.set(self.0.get() + 1);
            self.1.serialize(s)
        }
    }

    #[test]
    fn encode_spilling_fills_the_slice_then_moves_to_the_buffer_in_one_pass() {
        for room in [0, 1, 16, 40] {
            for len in 0..60 {
                let value: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
                let expected = encode(&value).unwrap();
                let times = Cell::new(0);
                let mut small = vec![MaybeUninit::<u8>::uninit(); room];
                let mut big = b"kept".to_vec();
                let got = encode_spilling(&Counted(&times, value), &mut small, &mut big).unwrap();
                assert_eq!(times.get(), 1, "serialised more than once");
                match got {
                    Some(n) => {
                        assert!(
                            expected.len() <= room,
                            "{len} bytes did not spill from {room}"
                        );
                        assert_eq!(n, expected.len());
                        // SAFETY: `encode_spilling` wrote the first `n` bytes.
                        let written =
                            unsafe { std::slice::from_raw_parts(small.as_ptr().cast::<u8>(), n) };
                        assert_eq!(written, &expected[..]);
                        assert_eq!(big, b"kept");
                    }
                    None => {
                        assert!(expected.len() > room, "{len} bytes spilled from {room}");
                        assert_eq!(&big[..4], b"kept");
                        assert_eq!(&big[4..], &expected[..]);
                    }
                }
            }
        }
    }

    struct Fails;

    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeTuple};
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&[7u8; 30])?;
            Err(S::Error::custom("no"))
        }
    }

    #[test]
    fn encode_spilling_leaves_the_buffer_as_it_was_on_failure() {
        let mut small = [MaybeUninit::<u8>::uninit(); 8];
        let mut big = b"kept".to_vec();
        assert!(encode_spilling(&Fails, &mut small, &mut big).is_err());
        assert_eq!(big, b"kept");
    }
}
