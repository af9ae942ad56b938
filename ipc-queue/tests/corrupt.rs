//! Hostile bytes: random and mutated images of every segment kind of this crate (SPSC ring,
//! MPMC queue in both encodings, pipe framing). Every operation must give `Ok` or `Err` —
//! never a panic, a hang or an out-of-bounds access. `PROPTEST_CASES` raises the case count.

use std::time::Duration;

use ipc_core::{ObjectHandle, SharedMemory};
use ipc_queue::{Consumer, Queue, RingBuffer, Serde, pipe_with_capacity};
use proptest::prelude::*;

const PAYLOAD: usize = 256;
const SHORT: Duration = Duration::from_millis(1);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

/// One change to a segment image: a word at an offset of the payload (8-aligned), or a run of
/// random bytes.
#[derive(Debug, Clone)]
enum Edit {
    Word { at: usize, value: u64 },
    Bytes { at: usize, bytes: Vec<u8> },
}

fn edit() -> impl Strategy<Value = Edit> {
    let value = prop_oneof![
        any::<u64>(),
        0..70u64,
        (0..70u64).prop_map(|v| v << 16),
        Just(u64::MAX)
    ];
    prop_oneof![
        3 => (0..4096usize, value).prop_map(|(at, value)| Edit::Word { at: at * 8, value }),
        1 => (0..32768usize, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Edit::Bytes { at, bytes }),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..12)
}

/// Applies edits to the payload of the segment `handle` names (offsets wrap into it).
fn apply(handle: &ObjectHandle, edits: &[Edit]) {
    let seg = SharedMemory::attach(&handle.segment).unwrap();
    let len = seg.len() - PAYLOAD;
    for e in edits {
        match e {
            Edit::Word { at, value } => {
                let at = (at % len) & !7;
                if at + 8 <= len {
                    // SAFETY: no handle holds a loan or sample of this queue while it is edited.
                    unsafe { seg.write_unguarded(PAYLOAD + at, &value.to_ne_bytes()) }.unwrap();
                }
            }
            Edit::Bytes { at, bytes } => {
                let at = at % len;
                let n = bytes.len().min(len - at);
                // SAFETY: as above.
                unsafe { seg.write_unguarded(PAYLOAD + at, &bytes[..n]) }.unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn spsc_ring_survives_hostile_images(pushed in 0..12u64, popped in 0..6u64, e in edits()) {
        let (mut tx, mut rx) = RingBuffer::<u64>::new(8).unwrap();
        for i in 0..pushed {
            let _ = tx.push(i);
        }
        for _ in 0..popped {
            let _ = rx.pop();
        }
        apply(&tx.handle(), &e);
        let _ = Consumer::<u64>::open(&tx.handle());
        let mut buf = [0u64; 16];
        for i in 0..20 {
            let _ = rx.pop();
            let _ = rx.pop_slice(&mut buf);
            let _ = tx.push(i);
            let _ = tx.push_slice(&buf[..5]);
            let _ = rx.len();
        }
        let _ = rx.pop_timeout(SHORT);
        let _ = tx.push_timeout(1, SHORT);
    }

    #[test]
    fn mpmc_queue_survives_hostile_images(put in 0..10u64, got in 0..6u64, e in edits()) {
        let mut q = Queue::<u64>::new(4).unwrap();
        for i in 0..put {
            let _ = q.try_put(i);
        }
        for _ in 0..got {
            let _ = q.try_get();
        }
        apply(&q.handle(), &e);
        if let Ok(mut other) = Queue::<u64>::open(&q.handle()) {
            let _ = other.try_put(7);
            let _ = other.try_get();
        }
        for i in 0..12 {
            let _ = q.try_get();
            let _ = q.try_put(i);
            let _ = (q.len(), q.is_empty(), q.is_full());
        }
        let _ = q.get_timeout(SHORT);
        let _ = q.put_timeout(1, SHORT);
    }

    #[test]
    fn serde_queue_survives_hostile_images(put in 0..6usize, e in edits()) {
        let mut q = Queue::<Vec<String>, Serde>::new(4).unwrap();
        for i in 0..put {
            let _ = q.try_put(vec!["x".repeat(i * 10); i]);
        }
        apply(&q.handle(), &e);
        for _ in 0..8 {
            let _ = q.try_get();
            let _ = q.try_put(vec!["y".into()]);
        }
        let _ = q.get_timeout(SHORT);
    }

    #[test]
    fn pipe_framing_survives_hostile_images(sent in proptest::collection::vec(0..300usize, 0..5), e in edits()) {
        let (mut a, mut b) = pipe_with_capacity(&ipc_core::Placement::Anonymous, 256, true).unwrap();
        let mut used = 0;
        for n in &sent {
            // Only what fits without waiting: the reader does not read until after the edits (a
            // chunk takes a 16-byte header and its payload padded to 8, and the sender keeps 8
            // bytes free after it).
            let chunk = 16 + n.next_multiple_of(8);
            if used + chunk + 8 <= 256 {
                a.send_bytes(&vec![0xab; *n]).unwrap();
                used += chunk;
            }
        }
        apply(b.handle().segment(), &e);
        for _ in 0..4 {
            let _ = b.poll();
            let _ = b.poll_timeout(SHORT);
            let _ = b.recv_bytes_timeout(SHORT);
            let _ = b.recv_timeout::<Vec<u32>>(SHORT);
            if let Ok(true) = b.poll() {
                // A complete small record may be waiting: this must not block for long either
                // (the header length decides; a long one times out in `recv_bytes_timeout`).
                let _ = b.recv_bytes_timeout(SHORT);
            }
        }
    }
}

#[test]
fn a_random_payload_never_opens_into_a_panic() {
    // Whole random payloads, not just edits: open gives `Err` or a usable handle.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases() / 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 4096), |bytes| {
            let q = Queue::<u64>::new(4).unwrap();
            let seg = SharedMemory::attach(&q.handle().segment).unwrap();
            let n = bytes.len().min(seg.len() - PAYLOAD);
            // SAFETY: nobody holds a loan or sample of this fresh queue.
            unsafe { seg.write_unguarded(PAYLOAD, &bytes[..n]) }.unwrap();
            if let Ok(mut other) = Queue::<u64>::open(&q.handle()) {
                for i in 0..8 {
                    let _ = other.try_put(i);
                    let _ = other.try_get();
                }
            }
            Ok(())
        })
        .unwrap();
}
