//! loom models of the index protocols. The protocol files are compiled here against loom's
//! atomics (this file's `primitive` module stands in for the crate's), so every interleaving of
//! a small run is explored. `LOOM_MAX_PREEMPTIONS=2` or `3` keeps the runs short.
#![allow(dead_code, unreachable_pub, clippy::disallowed_types)]

mod primitive {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

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
                ps[(p.tail % CAP) as usize].with_mut(|s| {
                    // SAFETY: the slot is ours per the protocol; loom checks no read overlaps.
                    unsafe { *s = v }
                });
                p.commit(&pi, 1);
            }
        });
        let mut c = ConsumerIndex::new(&idx, CAP).unwrap();
        for v in 1..=N {
            while c.available(&idx, 1).unwrap() == 0 {
                loom::thread::yield_now();
            }
            let got = slots[(c.head % CAP) as usize].with(|s| {
                // SAFETY: the slot is ours per the protocol; loom checks no write overlaps.
                unsafe { *s }
            });
            assert_eq!(got, v);
            c.release(&idx, 1);
        }
        producer.join().unwrap();
    });
}

#[path = "../src/mpmc_index.rs"]
mod mpmc_index;

use mpmc_index::{GetClaim, MpmcIndices, PutClaim, SlotWords};

struct Ring {
    idx: MpmcIndices,
    words: Vec<AtomicU64>,
    data: Vec<UnsafeCell<u64>>,
}

impl SlotWords for Ring {
    fn capacity(&self) -> u64 {
        self.words.len() as u64
    }
    fn word(&self, index: usize) -> &AtomicU64 {
        &self.words[index]
    }
}

fn ring(cap: u64) -> Arc<Ring> {
    Arc::new(Ring {
        idx: MpmcIndices {
            head: CachePadded(AtomicU64::new(0)),
            tail: CachePadded(AtomicU64::new(0)),
        },
        words: (0..cap)
            .map(|i| AtomicU64::new(mpmc_index::pack(i, 0)))
            .collect(),
        data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
    })
}

fn put(r: &Ring, me: u32, v: u64) {
    loop {
        match mpmc_index::claim_put(&r.idx, r, me) {
            PutClaim::Claimed(pos) => {
                r.data[(pos % r.capacity()) as usize].with_mut(|p| {
                    // SAFETY: the slot is ours per the protocol; loom checks no access overlaps.
                    unsafe { *p = v }
                });
                assert!(mpmc_index::commit_put(r, pos, me));
                return;
            }
            PutClaim::Corrupt => panic!("corrupt"),
            _ => loom::thread::yield_now(),
        }
    }
}

fn get(r: &Ring, me: u32) -> Option<u64> {
    match mpmc_index::claim_get(&r.idx, r, me) {
        GetClaim::Claimed(pos) => {
            let v = r.data[(pos % r.capacity()) as usize].with(|p| {
                // SAFETY: the slot is ours per the protocol.
                unsafe { *p }
            });
            assert!(mpmc_index::finish_get(r, pos, me));
            Some(v)
        }
        GetClaim::Corrupt => panic!("corrupt"),
        _ => None,
    }
}

#[test]
fn mpmc_two_producers_two_consumers_exactly_once() {
    model(|| {
        let r = ring(2);
        let producers: Vec<_> = (1..=2u32)
            .map(|me| {
                let r = r.clone();
                loom::thread::spawn(move || put(&r, me, u64::from(me) * 10))
            })
            .collect();
        let r2 = r.clone();
        let other = loom::thread::spawn(move || get(&r2, 4));
        let mut got = Vec::new();
        if let Some(v) = get(&r, 3) {
            got.push(v);
        }
        for p in producers {
            p.join().unwrap();
        }
        if let Some(v) = other.join().unwrap() {
            got.push(v);
        }
        while let Some(v) = get(&r, 3) {
            got.push(v);
        }
        got.sort();
        assert_eq!(got, [10, 20]);
    });
}

#[test]
fn mpmc_dead_writer_is_skipped_and_nothing_committed_is_lost() {
    model(|| {
        let r = ring(2);
        // Participant 1 claims a slot and dies before committing.
        let PutClaim::Claimed(_) = mpmc_index::claim_put(&r.idx, &*r, 1) else {
            panic!("claim");
        };
        let r2 = r.clone();
        let producer = loom::thread::spawn(move || put(&r2, 2, 7));
        // A consumer finds the dead claim, recovers it, and then gets the live message.
        let mut got = None;
        while got.is_none() {
            match mpmc_index::claim_get(&r.idx, &*r, 3) {
                GetClaim::Stuck(s) => {
                    let (_, owner) = mpmc_index::unpack(s.word);
                    if owner == 1 {
                        mpmc_index::recover(&*r, s);
                    }
                    loom::thread::yield_now();
                }
                GetClaim::Claimed(pos) => {
                    got = Some(r.data[(pos % 2) as usize].with(|p| {
                        // SAFETY: the slot is ours per the protocol.
                        unsafe { *p }
                    }));
                    assert!(mpmc_index::finish_get(&*r, pos, 3));
                }
                GetClaim::Empty => loom::thread::yield_now(),
                GetClaim::Corrupt => panic!("corrupt"),
            }
        }
        assert_eq!(got, Some(7));
        producer.join().unwrap();
    });
}
