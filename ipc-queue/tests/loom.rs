//! loom models of the index protocols. The protocol files are compiled here against loom's
//! atomics (this file's `primitive` module stands in for the crate's), so every interleaving of
//! a small run is explored. `LOOM_MAX_PREEMPTIONS=2` or `3` keeps the runs short.
#![allow(dead_code, unreachable_pub, clippy::disallowed_types)]

mod primitive {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

    #[derive(Debug, Default)]
    #[repr(C, align(128))]
    pub(crate) struct CachePadded<T>(pub(crate) T);

    impl<T> core::ops::Deref for CachePadded<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }
}

#[path = "../src/spsc_index.rs"]
mod spsc_index;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use primitive::{AtomicU64, CachePadded};
use spsc_index::{ConsumerIndex, ProducerIndex, SpscIndices};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

#[test]
fn spsc_delivers_in_order_without_races() {
    model(|| {
        const CAP: u64 = 2;
        const N: u64 = 3;
        let idx = Arc::new(SpscIndices {
            head: CachePadded(AtomicU64::new(0)),
            tail: CachePadded(AtomicU64::new(0)),
        });
        let slots: Arc<Vec<UnsafeCell<u64>>> =
            Arc::new((0..CAP).map(|_| UnsafeCell::new(0)).collect());
        let (pi, ps) = (idx.clone(), slots.clone());
        let producer = loom::thread::spawn(move || {
            let mut p = ProducerIndex::new(&pi, CAP).unwrap();
            for v in 1..=N {
                while p.free(&pi, 1).unwrap() == 0 {
                    loom::thread::yield_now();
                }
                // The slot is ours per the protocol: loom checks that no read overlaps.
                ps[(p.tail % CAP) as usize].with_mut(|s| unsafe { *s = v });
                p.commit(&pi, 1);
            }
        });
        let mut c = ConsumerIndex::new(&idx, CAP).unwrap();
        for v in 1..=N {
            while c.available(&idx, 1).unwrap() == 0 {
                loom::thread::yield_now();
            }
            let got = slots[(c.head % CAP) as usize].with(|s| unsafe { *s });
            assert_eq!(got, v);
            c.release(&idx, 1);
        }
        producer.join().unwrap();
    });
}
