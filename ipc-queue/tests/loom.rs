//! loom models of the index, role and wake-up protocols. The protocol files are compiled here
//! from the crate's own sources, against the crate's `primitive.rs` (the workspace's one atomic
//! facade, which gives loom's atomics under `--cfg loom`), so every interleaving of a small run
//! is explored.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipc-queue --release --test loom`
#![cfg(loom)]
#![allow(dead_code, unreachable_pub, clippy::disallowed_types)]

#[path = "../src/primitive.rs"]
mod primitive;

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
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
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
    limit: u64,
}

impl SlotWords for Ring {
    fn capacity(&self) -> u64 {
        self.words.len() as u64
    }
    fn limit(&self) -> u64 {
        self.limit
    }
    fn word(&self, index: usize) -> &AtomicU64 {
        &self.words[index]
    }
}

fn ring(cap: u64) -> Arc<Ring> {
    ring_limited(cap, cap)
}

fn ring_limited(cap: u64, limit: u64) -> Arc<Ring> {
    Arc::new(Ring {
        limit,
        idx: MpmcIndices {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
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

/// A queue of one (two slots, limit one): whatever the interleaving of a producer's two puts
/// (the second on the other slot, gated by the first) and a consumer's gets, the ring never
/// holds two messages, and both arrive once, in order.
#[test]
fn mpmc_a_queue_of_one_never_holds_two() {
    model(|| {
        let r = ring_limited(2, 1);
        let r2 = r.clone();
        let producer = loom::thread::spawn(move || {
            put(&r2, 1, 10);
            put(&r2, 1, 20);
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            // Never two committed messages at once: at most one slot is Full.
            let full = (0..2u64)
                .filter(|&i| {
                    // ORDERING: Relaxed, a look at the words; the model explores every order.
                    let word = r.words[i as usize].load(Ordering::Relaxed);
                    let (seq, owner) = mpmc_index::unpack(word);
                    owner == 0 && u64::from(seq) % 2 != i
                })
                .count();
            assert!(full <= 1, "a queue of one held two messages");
            match get(&r, 3) {
                Some(v) => got.push(v),
                None => loom::thread::yield_now(),
            }
        }
        producer.join().unwrap();
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

/// A producer dies holding the slot at the head (Writing), the ring fills behind it, and a live
/// producer recovers that slot a lap later and refills it before any consumer has moved the head
/// past the dead position: the consumers at the head then find the slot a lap and one ahead of
/// them (Full of the next lap), which says the position was skipped. Every committed message
/// arrives once, in order, and nobody reports the state corrupt: whether the consumer leaves
/// the recovery to the producer or races it.
#[test]
fn mpmc_a_dead_writers_slot_refilled_a_lap_later_is_skipped_by_the_readers() {
    refilled_a_lap_later(false);
    refilled_a_lap_later(true);
}

fn refilled_a_lap_later(consumer_recovers: bool) {
    model(move || {
        let r = ring(2);
        // Participant 1 claims position 0 and dies before committing.
        let PutClaim::Claimed(0) = mpmc_index::claim_put(&r.idx, &*r, 1) else {
            panic!("claim");
        };
        let r2 = r.clone();
        // A live producer fills position 1, then finds the dead claim a lap later (at tail 2),
        // recovers it and writes position 2.
        let producer = loom::thread::spawn(move || {
            for v in [7, 8] {
                loop {
                    match mpmc_index::claim_put(&r2.idx, &*r2, 2) {
                        PutClaim::Claimed(pos) => {
                            r2.data[(pos % 2) as usize].with_mut(|p| {
                                // SAFETY: the slot is ours per the protocol.
                                unsafe { *p = v }
                            });
                            assert!(mpmc_index::commit_put(&*r2, pos, 2));
                            break;
                        }
                        PutClaim::Stuck(s) => {
                            assert_eq!(mpmc_index::unpack(s.word).1, 1, "only 1 is dead");
                            mpmc_index::recover(&*r2, s);
                        }
                        PutClaim::Full => loom::thread::yield_now(),
                        PutClaim::Corrupt => panic!("the producer found the state corrupt"),
                    }
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            match mpmc_index::claim_get(&r.idx, &*r, 3) {
                GetClaim::Claimed(pos) => {
                    got.push(r.data[(pos % 2) as usize].with(|p| {
                        // SAFETY: the slot is ours per the protocol.
                        unsafe { *p }
                    }));
                    assert!(mpmc_index::finish_get(&*r, pos, 3));
                }
                GetClaim::Stuck(s) => {
                    // Participant 2 is alive: only its writing is waited for.
                    if consumer_recovers && mpmc_index::unpack(s.word).1 == 1 {
                        mpmc_index::recover(&*r, s);
                    }
                    loom::thread::yield_now();
                }
                GetClaim::Empty => loom::thread::yield_now(),
                GetClaim::Corrupt => panic!("the consumer found the state corrupt"),
            }
        }
        assert_eq!(got, [7, 8]);
        producer.join().unwrap();
    });
}

#[path = "../src/participants.rs"]
mod participants;

use ipc_core::Liveness;
use participants::{Entry, Identity, Oracle, Table};
use primitive::{AtomicU32, Ordering};

/// The kernel in a model: one word per identity (index `pid - 1`): 0 alive, 1 dead, 2 cannot
/// be asked (`Unknown`).
#[derive(Clone)]
struct ModelKernel(Arc<Vec<loom::sync::atomic::AtomicU8>>);

const ALIVE: u8 = 0;
const DEAD: u8 = 1;
const UNKNOWN: u8 = 2;

impl ModelKernel {
    fn new(processes: usize) -> Self {
        Self(Arc::new(
            (0..processes)
                .map(|_| loom::sync::atomic::AtomicU8::new(ALIVE))
                .collect(),
        ))
    }

    fn set(&self, pid: u32, state: u8) {
        self.0[pid as usize - 1].store(state, Ordering::SeqCst);
    }
}

impl Oracle for ModelKernel {
    fn liveness(&self, who: Identity) -> Liveness {
        let pid = (who >> 32) as usize;
        match self
            .0
            .get(pid.wrapping_sub(1))
            .map(|s| s.load(Ordering::SeqCst))
        {
            Some(ALIVE) => Liveness::Alive,
            Some(UNKNOWN) => Liveness::Unknown,
            _ => Liveness::Dead,
        }
    }
}

fn who(pid: u32) -> Identity {
    participants::identity(pid, 7)
}

struct Shared {
    ring: Arc<Ring>,
    ever: AtomicU32,
    entries: Vec<Entry>,
}

fn shared(cap: u64, entries: usize) -> Arc<Shared> {
    Arc::new(Shared {
        ring: ring(cap),
        ever: AtomicU32::new(0),
        entries: (0..entries).map(|_| Entry::new()).collect(),
    })
}

impl Shared {
    fn table(&self, k: &ModelKernel) -> Table<'_, ModelKernel> {
        Table::new(&self.ever, &self.entries, k.clone())
    }
}

/// A consumer that waits for one message, recovering a stuck slot only when the table (and the
/// kernel behind it) says its claimer is gone.
fn get_waiting(s: &Shared, k: &ModelKernel, me: u32) -> u64 {
    let r = &*s.ring;
    loop {
        match mpmc_index::claim_get(&r.idx, r, me) {
            GetClaim::Claimed(pos) => {
                let v = r.data[(pos % r.capacity()) as usize].with(|p| {
                    // SAFETY: the slot is ours per the protocol; loom checks no write overlaps.
                    unsafe { *p }
                });
                assert!(mpmc_index::finish_get(r, pos, me));
                return v;
            }
            GetClaim::Stuck(stuck) => {
                let table = s.table(k);
                mpmc_index::recover_if_dead(r, stuck, |id| table.is_alive(id));
                loom::thread::yield_now();
            }
            GetClaim::Empty => loom::thread::yield_now(),
            GetClaim::Corrupt => panic!("corrupt"),
        }
    }
}

#[test]
fn mpmc_a_live_writer_the_kernel_cannot_vouch_for_is_not_judged_dead() {
    model(|| {
        let k = ModelKernel::new(2);
        // The writer's process cannot be asked about (hidepid, EMFILE...): Unknown.
        k.set(1, UNKNOWN);
        let s = shared(2, 2);
        let w = s.table(&k).attach(who(1), participants::PRODUCER).unwrap();
        let c = s.table(&k).attach(who(2), participants::CONSUMER).unwrap();
        let (s2, k2) = (s.clone(), k.clone());
        let writer = loom::thread::spawn(move || {
            let r = &*s2.ring;
            let PutClaim::Claimed(pos) = mpmc_index::claim_put(&r.idx, r, w) else {
                panic!("claim");
            };
            r.data[(pos % 2) as usize].with_mut(|p| {
                // SAFETY: the slot is ours; loom reports any overlapping access by a recoverer.
                unsafe { *p = 42 }
            });
            assert!(
                mpmc_index::commit_put(r, pos, w),
                "a live writer lost its slot"
            );
            drop(k2);
        });
        assert_eq!(get_waiting(&s, &k, c), 42);
        writer.join().unwrap();
    });
}

#[test]
fn mpmc_a_dead_writers_slot_is_recovered_while_a_reader_waits() {
    model(|| {
        let k = ModelKernel::new(3);
        let s = shared(2, 3);
        let dead = s.table(&k).attach(who(1), participants::PRODUCER).unwrap();
        let p = s.table(&k).attach(who(2), participants::PRODUCER).unwrap();
        let c = s.table(&k).attach(who(3), participants::CONSUMER).unwrap();
        let (s2, k2) = (s.clone(), k.clone());
        // Process 1 claims the slot at the tail and is killed before it commits.
        let victim = loom::thread::spawn(move || {
            let r = &*s2.ring;
            let PutClaim::Claimed(_) = mpmc_index::claim_put(&r.idx, r, dead) else {
                panic!("claim");
            };
            k2.set(1, DEAD);
        });
        let (s3, k3) = (s.clone(), k.clone());
        let producer = loom::thread::spawn(move || {
            let r = &*s3.ring;
            loop {
                match mpmc_index::claim_put(&r.idx, r, p) {
                    PutClaim::Claimed(pos) => {
                        r.data[(pos % 2) as usize].with_mut(|d| {
                            // SAFETY: the slot is ours per the protocol.
                            unsafe { *d = 7 }
                        });
                        assert!(mpmc_index::commit_put(r, pos, p));
                        return;
                    }
                    PutClaim::Stuck(stuck) => {
                        let table = s3.table(&k3);
                        mpmc_index::recover_if_dead(r, stuck, |id| table.is_alive(id));
                        loom::thread::yield_now();
                    }
                    PutClaim::Full => loom::thread::yield_now(),
                    PutClaim::Corrupt => panic!("corrupt"),
                }
            }
        });
        // The reader waits behind the dead claim, recovers it, and gets the live message.
        assert_eq!(get_waiting(&s, &k, c), 7);
        victim.join().unwrap();
        producer.join().unwrap();
    });
}

#[test]
fn mpmc_a_commit_and_a_recovery_of_the_same_slot_never_both_succeed() {
    model(|| {
        let r = ring(2);
        let PutClaim::Claimed(pos) = mpmc_index::claim_put(&r.idx, &*r, 1) else {
            panic!("claim");
        };
        let stuck = mpmc_index::Stuck {
            slot: (pos % 2) as usize,
            word: mpmc_index::pack(pos, 1),
            reading: false,
        };
        let r2 = r.clone();
        // A peer that believes participant 1 gone (its entry was released) moves the slot on
        // while participant 1 commits.
        let recoverer = loom::thread::spawn(move || mpmc_index::recover(&*r2, stuck));
        let committed = mpmc_index::commit_put(&*r, pos, 1);
        let recovered = recoverer.join().unwrap();
        assert!(
            committed != recovered,
            "commit {committed}, recovery {recovered}: exactly one must win"
        );
        let (seq, owner) = mpmc_index::unpack(r.words[(pos % 2) as usize].load(Ordering::SeqCst));
        assert_eq!(owner, 0);
        assert!(mpmc_index::seq_is(
            seq,
            if committed { pos + 1 } else { pos + 2 }
        ));
    });
}

#[test]
fn participants_claim_and_release_never_share_an_entry_or_kill_a_live_id() {
    model(|| {
        let k = ModelKernel::new(3);
        let s = shared(2, 2);
        // Entry 0 belongs to process 1, which the kernel says is dead; entry 1 is free.
        let old = s.table(&k).attach(who(1), participants::BOTH).unwrap();
        k.set(1, DEAD);
        let threads: Vec<_> = [2u32, 3]
            .into_iter()
            .map(|pid| {
                let (s, k) = (s.clone(), k.clone());
                loom::thread::spawn(move || {
                    let table = s.table(&k);
                    let id = table.attach(who(pid), participants::PRODUCER).unwrap();
                    // (The dead holder's id may still look alive here, for as long as the
                    // taker of its entry has not stored the new generation: the safe side.)
                    assert!(table.is_alive(id), "a live holder was judged dead");
                    id
                })
            })
            .collect();
        let ids: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_ne!(
            ids[0] & 0xffff,
            ids[1] & 0xffff,
            "two live holders share an entry"
        );
        let table = s.table(&k);
        assert!(table.is_alive(ids[0]) && table.is_alive(ids[1]));
        assert!(!table.is_alive(old), "a dead holder's id came back");
        // A release frees the entry for the next claim, under a new generation.
        table.release(ids[0], who(2));
        assert!(!table.is_alive(ids[0]));
        let again = table.attach(who(3), participants::CONSUMER).unwrap();
        assert_eq!(again & 0xffff, ids[0] & 0xffff);
        assert_ne!(again, ids[0]);
        assert!(!table.is_alive(ids[0]));
    });
}

#[test]
fn participants_a_release_racing_an_is_alive_check_never_reports_the_next_holder_dead() {
    model(|| {
        let k = ModelKernel::new(2);
        let s = shared(2, 1);
        let first = s.table(&k).attach(who(1), participants::BOTH).unwrap();
        let (s2, k2) = (s.clone(), k.clone());
        let churn = loom::thread::spawn(move || {
            let table = s2.table(&k2);
            table.release(first, who(1));
            table.attach(who(2), participants::BOTH).unwrap()
        });
        // Whatever the interleaving, the first id is alive or not, but a checker never panics.
        let _ = s.table(&k).is_alive(first);
        let second = churn.join().unwrap();
        assert!(s.table(&k).is_alive(second));
        assert!(!s.table(&k).is_alive(first));
    });
}

#[path = "../src/claim.rs"]
mod claim;

#[test]
fn role_hand_over_goes_to_its_token_and_never_to_two_holders() {
    model(|| {
        let k = ModelKernel::new(3);
        let word = Arc::new(primitive::AtomicU64::new(0));
        claim::claim(&word, who(1), &k).unwrap();
        let (w2, k2) = (word.clone(), k.clone());
        // Process 2 opens the role by handle while process 1 hands it over.
        let opener = loom::thread::spawn(move || claim::claim(&w2, who(2), &k2).is_ok());
        let (w3, k3) = (word.clone(), k.clone());
        // Process 3 deserialises the hand-over (possibly before it is made: then it falls back
        // to an ordinary claim, which fails while process 1 holds the role).
        let deserialiser = loom::thread::spawn(move || {
            claim::take_over(&w3, 5, who(3)) || claim::claim(&w3, who(3), &k3).is_ok()
        });
        let handed = claim::hand_over(&word, who(1), 5);
        assert!(handed, "the holder could not hand over");
        let opened = opener.join().unwrap();
        let taken = deserialiser.join().unwrap();
        assert!(!opened, "an opener took a held or in-transit role");
        let now = claim::holder(word.load(Ordering::SeqCst));
        if taken {
            assert_eq!(now, claim::Holder::Held(who(3)));
        } else {
            assert_eq!(now, claim::Holder::HandOff(5));
        }
    });
}

#[test]
fn a_dead_holders_role_goes_to_exactly_one_of_two_openers() {
    model(|| {
        let k = ModelKernel::new(3);
        let word = Arc::new(primitive::AtomicU64::new(0));
        claim::claim(&word, who(1), &k).unwrap();
        k.set(1, DEAD);
        let openers: Vec<_> = [2u32, 3]
            .into_iter()
            .map(|pid| {
                let (w, k) = (word.clone(), k.clone());
                loom::thread::spawn(move || claim::claim(&w, who(pid), &k).is_ok())
            })
            .collect();
        let won: Vec<bool> = openers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(won.iter().filter(|&&w| w).count(), 1, "{won:?}");
        let winner = if won[0] { who(2) } else { who(3) };
        assert_eq!(
            claim::holder(word.load(Ordering::SeqCst)),
            claim::Holder::Held(winner)
        );
    });
}

#[path = "../src/signal.rs"]
mod signal;

/// A waiter that blocks on `signal` until `flag` is set, as a blocking pop waits for a push.
fn wait_for_flag(signal: &signal::Signal, flag: &primitive::AtomicU64) {
    let r: Result<(), signal::Blocked<()>> = signal::block_on(
        signal,
        None,
        std::time::Duration::ZERO,
        ipc_core::raw::sync::look_pause,
        // ORDERING: Acquire, pairs with the setter's Release store.
        || match flag.load(Ordering::Acquire) {
            0 => signal::Attempt::Pending,
            _ => signal::Attempt::Ready(Ok(())),
        },
        || Ok(()),
    );
    assert!(r.is_ok());
}

/// The model futex blocks for real: if the waker's barrier and its load of the waiter count
/// could both miss the waiter, the waiter would sleep forever and loom would report it.
fn one_waiter(asymmetric: bool) {
    model(move || {
        let s = Arc::new((signal::Signal::new(), primitive::AtomicU64::new(0)));
        if asymmetric {
            s.0.make_asymmetric();
        }
        let s2 = s.clone();
        let waiter = loom::thread::spawn(move || wait_for_flag(&s2.0, &s2.1));
        // ORDERING: Release, publishes the change the waiter checks.
        s.1.store(1, Ordering::Release);
        s.0.notify();
        waiter.join().unwrap();
    });
}

fn two_waiters(asymmetric: bool) {
    model(move || {
        let s = Arc::new((
            signal::Signal::new(),
            primitive::AtomicU64::new(0),
            primitive::AtomicU64::new(0),
        ));
        if asymmetric {
            s.0.make_asymmetric();
        }
        let (a, b) = (s.clone(), s.clone());
        let first = loom::thread::spawn(move || wait_for_flag(&a.0, &a.1));
        let second = loom::thread::spawn(move || wait_for_flag(&b.0, &b.2));
        // ORDERING: Release, as above.
        s.1.store(1, Ordering::Release);
        s.0.notify();
        // ORDERING: Release, as above.
        s.2.store(1, Ordering::Release);
        s.0.notify();
        first.join().unwrap();
        second.join().unwrap();
    });
}

#[test]
fn signal_a_change_followed_by_notify_always_wakes_the_waiter() {
    one_waiter(false);
}

#[test]
fn signal_asymmetric_a_change_followed_by_notify_always_wakes_the_waiter() {
    one_waiter(true);
}

#[test]
fn signal_two_waiters_and_two_changes_each_wake_what_they_must() {
    two_waiters(false);
}

#[test]
fn signal_asymmetric_two_waiters_and_two_changes_each_wake_what_they_must() {
    two_waiters(true);
}

/// The form a queue's commit and release use: the change is a SeqCst CAS of the word the waiter
/// re-checks, and the waker's check is `notify_after_seqcst_change` (a load, no read-modify-write
/// of its own). loom treats SeqCst loads and read-modify-writes as AcqRel, so the model's form
/// of that check stands a SeqCst fence in for the C++ total order it relies on (see the
/// method's docs).
#[test]
fn signal_a_seqcst_change_followed_by_its_notify_always_wakes_the_waiter() {
    model(|| {
        let s = Arc::new((signal::Signal::new(), primitive::AtomicU64::new(0)));
        let s2 = s.clone();
        let waiter = loom::thread::spawn(move || wait_for_flag(&s2.0, &s2.1));
        // ORDERING: SeqCst, the change as `commit_put` makes it.
        let changed =
            s.1.compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok();
        assert!(changed);
        s.0.notify_after_seqcst_change();
        waiter.join().unwrap();
    });
}
