//! The codec's appending and element-by-element forms: `encode_into` appends what `encode`
//! writes; `decode_each` and `map_each` read and write exactly what `decode` and `encode` do for
//! a `Vec`, and fail cleanly (leaving the output as it was) on bytes that are not a sequence of
//! the type or on a result that cannot be encoded.

use ipc_core::codec::{self, MapEachError};
use proptest::prelude::*;
use serde::{Serialize, Serializer};

proptest! {
    /// `encode_into` appends small pieces (varints, short strings) byte by byte and larger ones
    /// in one copy: either way it appends exactly what `encode` writes.
    #[test]
    fn encode_into_appends_what_encode_writes(
        value: (u64, i32, String, Vec<u8>),
        prefix in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut buf = prefix.clone();
        codec::encode_into(&value, &mut buf).unwrap();
        let mut expected = prefix;
        expected.extend(codec::encode(&value).unwrap());
        prop_assert_eq!(buf, expected);
    }

    #[test]
    fn map_each_writes_what_encode_writes_for_the_vec(items: Vec<(u32, String)>) {
        let input = codec::encode(&items).unwrap();
        let f = |(n, s): (u32, String)| (s.len() as u64 + u64::from(n), s);
        let mut out = vec![7, 7];
        let n = codec::map_each(&input, &mut out, f).unwrap();
        prop_assert_eq!(n, items.len());
        let want: Vec<(u64, String)> = items.iter().cloned().map(f).collect();
        let mut expected = vec![7, 7];
        expected.extend(codec::encode(&want).unwrap());
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn decode_each_sees_what_decode_sees(items: Vec<Option<i64>>) {
        let bytes = codec::encode(&items).unwrap();
        let mut seen = Vec::new();
        prop_assert_eq!(codec::decode_each(&bytes, |x: Option<i64>| seen.push(x)).unwrap(), items.len());
        prop_assert_eq!(seen, items);
    }

    #[test]
    fn hostile_bytes_fail_and_leave_the_output_alone(bytes: Vec<u8>) {
        let mut out = vec![1, 2, 3];
        match codec::map_each(&bytes, &mut out, |s: String| s.len() as u32) {
            // Whatever the bytes decode as, the output is the encoding of that sequence.
            Ok(_) => {
                let strings: Vec<String> = codec::decode(&bytes).unwrap();
                let lens: Vec<u32> = strings.iter().map(|s| s.len() as u32).collect();
                let mut want = vec![1, 2, 3];
                want.extend(codec::encode(&lens).unwrap());
                prop_assert_eq!(out, want);
            }
            Err(MapEachError::Decode(_)) => {
                prop_assert!(codec::decode::<Vec<String>>(&bytes).is_err());
                prop_assert_eq!(out, vec![1, 2, 3]);
            }
            Err(MapEachError::Encode(e)) => prop_assert!(false, "encode error {e}"),
        }
    }
}

/// Elements of size zero: postcard cannot tell their number from the bytes left, so the length
/// goes in front once they are counted.
#[test]
fn a_sequence_of_units_is_counted_then_prefixed() {
    let input = codec::encode(&vec![(); 300]).unwrap();
    let mut out = vec![9];
    assert_eq!(codec::map_each(&input, &mut out, |()| 5u8).unwrap(), 300);
    assert_eq!(out[0], 9);
    assert_eq!(codec::decode::<Vec<u8>>(&out[1..]).unwrap(), vec![5u8; 300]);
    let mut units = 0;
    assert_eq!(codec::decode_each(&input, |()| units += 1).unwrap(), 300);
    assert_eq!(units, 300);
}

/// A value whose encoding fails.
struct Refused;

impl Serialize for Refused {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}

#[test]
fn a_result_that_cannot_be_encoded_is_an_encode_error_and_writes_nothing() {
    let input = codec::encode(&vec![1u8, 2, 3]).unwrap();
    let mut out = vec![4, 4];
    let mut calls = 0;
    let err = codec::map_each(&input, &mut out, |x: u8| {
        calls += 1;
        if x == 2 { Err(Refused) } else { Ok(x) }
    })
    .unwrap_err();
    assert!(matches!(err, MapEachError::Encode(_)), "{err}");
    assert!(err.to_string().starts_with("result: "), "{err}");
    assert_eq!(calls, 2, "stops at the first failure");
    assert_eq!(out, [4, 4]);
}

#[test]
fn a_truncated_sequence_is_a_decode_error() {
    let mut input = codec::encode(&vec![1000u32, 2000, 3000]).unwrap();
    input.truncate(input.len() - 1);
    let mut out = Vec::new();
    let err = codec::map_each(&input, &mut out, |x: u32| x).unwrap_err();
    assert!(matches!(err, MapEachError::Decode(_)), "{err}");
    assert!(err.to_string().starts_with("argument: "), "{err}");
    assert!(out.is_empty());
    assert!(codec::decode_each(&input, |_: u32| {}).is_err());
}
