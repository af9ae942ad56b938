//! Hostile bytes in object segments: every header a peer could write gives `Err` or a valid
//! open, never a panic, a hang or an out-of-bounds access.

use std::fs::OpenOptions;
use std::time::Duration;

use ipc_core::raw::header::{HEADER_SIZE, LAYOUT_VERSION};
use ipc_core::raw::{ObjectSegment, TypeFingerprint};
use ipc_core::{OpenError, Placement, RawArray, SharedMemory};
use proptest::prelude::*;

const SHORT: Duration = Duration::from_millis(1);

fn fp() -> TypeFingerprint {
    TypeFingerprint::of::<u64>("RawArray")
}

/// A valid RawArray<u64> segment image of 8 elements.
fn valid_image() -> Vec<u8> {
    let a = RawArray::<u64>::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let shm = SharedMemory::open(&a.handle().segment).unwrap();
    let mut img = vec![0u8; shm.len()];
    // SAFETY: nothing holds a reference into the array (RawArray never lends one).
    unsafe { shm.read_unguarded(0, &mut img) }.unwrap();
    img
}

/// Opens `image` as written into a fresh anonymous segment of `len` bytes.
fn open_image(image: &[u8], len: usize) -> Result<ObjectSegment, OpenError> {
    let shm = SharedMemory::anonymous(len.max(1)).unwrap();
    shm.write(0, &image[..image.len().min(len)]).unwrap();
    ObjectSegment::from_shared_memory(shm, &fp(), SHORT)
}

fn check_valid(seg: &ObjectSegment) {
    let info = seg.info();
    assert!(info.total_size <= seg.shared_memory().len());
    assert!(info.payload_offset + info.capacity * 8 <= info.total_size);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let len = bytes.len().max(1);
        if let Ok(seg) = open_image(&bytes, len) {
            check_valid(&seg);
        }
    }

    #[test]
    fn mutated_headers_never_panic(
        flips in proptest::collection::vec((0usize..HEADER_SIZE, any::<u8>()), 1..6),
        cut in 0usize..400,
    ) {
        let mut img = valid_image();
        for (at, byte) in flips {
            img[at] = byte;
        }
        let len = if cut < 50 { cut.max(1) } else { img.len() };
        if let Ok(seg) = open_image(&img, len) {
            check_valid(&seg);
        }
    }
}

#[test]
fn valid_image_opens() {
    let img = valid_image();
    let seg = open_image(&img, img.len()).unwrap();
    assert_eq!(seg.capacity(), 8);
}

#[test]
fn foreign_bytes_are_not_ours() {
    let img = vec![0xAB; 4096];
    assert!(matches!(
        open_image(&img, img.len()),
        Err(OpenError::NotOurs)
    ));
}

#[test]
fn zeroed_segment_times_out_as_initialising() {
    let img = vec![0u8; 4096];
    assert!(matches!(
        open_image(&img, img.len()),
        Err(OpenError::InitTimeout)
    ));
}

#[test]
fn wrong_version_is_reported() {
    let mut img = valid_image();
    img[8..12].copy_from_slice(&(LAYOUT_VERSION + 1).to_ne_bytes());
    match open_image(&img, img.len()) {
        Err(OpenError::VersionMismatch { found, expected }) => {
            assert_eq!((found, expected), (LAYOUT_VERSION + 1, LAYOUT_VERSION));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
}

#[test]
fn changed_capacity_is_corrupted() {
    let mut img = valid_image();
    img[48..56].copy_from_slice(&u64::MAX.to_ne_bytes());
    assert!(matches!(
        open_image(&img, img.len()),
        Err(OpenError::Corrupted { .. })
    ));
}

#[test]
fn unknown_init_state_is_corrupted() {
    let mut img = valid_image();
    img[56..60].copy_from_slice(&7u32.to_ne_bytes());
    assert!(matches!(
        open_image(&img, img.len()),
        Err(OpenError::Corrupted { .. })
    ));
}

#[test]
fn short_mapping_is_truncated() {
    let img = valid_image();
    assert!(matches!(
        open_image(&img, 100),
        Err(OpenError::Truncated { .. })
    ));
    assert!(matches!(
        open_image(&img, img.len() - 8),
        Err(OpenError::Truncated { .. })
    ));
}

#[test]
fn named_segment_truncated_on_disk() {
    let a = RawArray::<u64>::create(&Placement::NamedRandom, 1000).unwrap();
    let path = format!("/dev/shm/{}", a.name().unwrap());
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(HEADER_SIZE as u64 + 16)
        .unwrap();
    match RawArray::<u64>::open_named(a.name().unwrap()) {
        Err(OpenError::Truncated { needed, actual }) => {
            assert_eq!(actual, HEADER_SIZE as u64 + 16);
            assert!(needed > actual);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn raw_python_style_segment_is_not_ours() {
    let shm = SharedMemory::create_named(4096).unwrap();
    shm.write(0, b"not a header at all").unwrap();
    assert!(matches!(
        RawArray::<u64>::open_named(shm.name().unwrap()),
        Err(OpenError::NotOurs)
    ));
}
