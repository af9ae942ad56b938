//! Byte strings on the wire: encoded as one length and the raw bytes (serde's `bytes`), not as
//! a sequence of numbers, so a 16 MiB payload is one copy, not sixteen million visits.
//!
//! [`Bytes`] owns (what a receiver decodes), [`BytesRef`] borrows (what a sender encodes from a
//! buffer it keeps, such as a chunk's input held for re-dispatch). Both encode identically.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An owned byte string that travels as serde `bytes`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

/// A borrowed byte string that travels as serde `bytes` (encoding only).
#[derive(Clone, Copy)]
pub(crate) struct BytesRef<'a>(pub(crate) &'a [u8]);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        // Self-describing formats may present bytes as a sequence; never trust its size hint
        // beyond a small preallocation.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Bytes(v))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::codec;

    #[test]
    fn owned_and_borrowed_encode_alike_and_round_trip() {
        let data: Vec<u8> = (0..=255).collect();
        let a = codec::encode(&Bytes(data.clone())).unwrap();
        let b = codec::encode(&BytesRef(&data)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), data.len() + 2);
        assert_eq!(codec::decode::<Bytes>(&a).unwrap().0, data);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        assert!(codec::decode::<Bytes>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(codec::decode::<Bytes>(&[5, 1, 2]).is_err());
    }
}
