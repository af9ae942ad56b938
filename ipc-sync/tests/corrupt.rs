//! Hostile bytes in every object kind of this crate: random and mutated state words and
//! headers. Every operation returns (a value, an error or a timeout); none panics, hangs past
//! its timeout, or reads out of bounds.

mod common;

use std::time::Duration;

use common::poke;
use ipc_sync::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Lock, LockTimeoutError, Mutex, RLock,
    Semaphore, TryLockError, Value,
};
use proptest::prelude::*;

/// This process's identity as a lock word names it (`tag << 32 | pid`).
fn my_word() -> u64 {
    let me = ipc_core::ProcessIdentity::current().unwrap();
    u64::from(me.pid()) | (u64::from(me.start_tag()) << 32)
}

/// Whether the lock word `w` names this process (its pid and start-time tag; other bits aside).
fn names_me(w: u64) -> bool {
    w & 0xffff_ffff_3fff_ffff == my_word()
}

/// Lock words a hostile peer might write: anything; our pid under a random tag (a dead
/// namesake) or our exact identity, with stray bits; a live pid under a random tag.
fn word() -> impl Strategy<Value = u64> {
    let me = my_word();
    let pid = me & 0x3fff_ffff;
    prop_oneof![
        any::<u64>(),
        (0u64..4, any::<u32>())
            .prop_map(move |(bits, t)| pid | (bits << 30) | (u64::from(t) << 32)),
        (0u64..4).prop_map(move |bits| me | (bits << 30)),
        (0u64..4, any::<u32>()).prop_map(|(bits, t)| 1 | (bits << 30) | (u64::from(t) << 32)),
        Just(0x4000_0000),
        Just(u64::MAX),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) {
            4
        } else {
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(48)
        },
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lock_state_any_bytes(w in word(), poisoned in any::<u32>(), reserved in any::<u32>()) {
        let lock = Lock::new().unwrap();
        let h = lock.handle();
        poke(&h, 0, &w.to_ne_bytes());
        poke(&h, 8, &poisoned.to_ne_bytes());
        poke(&h, 12, &reserved.to_ne_bytes());
        let free = w & 0x3fff_ffff == 0;
        match lock.lock_timeout(Duration::from_millis(100)) {
            Ok(g) => {
                prop_assert!(free && poisoned == 0);
                drop(g);
            }
            Err(LockTimeoutError::OwnerDied(e)) => {
                // Free but poisoned, or a holder the kernel says is dead: never ourselves.
                prop_assert!(!names_me(w));
                prop_assert!(!free || poisoned != 0);
                e.into_inner().make_consistent();
            }
            Err(LockTimeoutError::TimedOut) => prop_assert!(!free),
            Err(_) => {}
        }
        if names_me(w) {
            // A word naming this live process is a live holder: never taken over.
            prop_assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
        }
        match lock.try_lock() {
            Ok(_) | Err(TryLockError::WouldBlock) | Err(TryLockError::OwnerDied(_)) => {}
            Err(_) => {}
        }
        let _ = lock.is_locked();
    }

    #[test]
    fn rlock_state_any_bytes(w in word(), tid in any::<u32>(), depth in any::<u32>()) {
        let rl = RLock::new().unwrap();
        let h = rl.handle();
        poke(&h, 0, &w.to_ne_bytes());
        poke(&h, 16, &tid.to_ne_bytes());
        poke(&h, 20, &depth.to_ne_bytes());
        let _ = rl.depth();
        let g = match rl.lock_timeout(Duration::from_millis(100)) {
            Ok(g) => Some(g),
            Err(LockTimeoutError::OwnerDied(e)) => Some(e.into_inner()),
            Err(_) => None,
        };
        if let Some(g) = g {
            let _ = rl.depth();
            let _ = g.unlock();
        }
    }

    #[test]
    fn semaphore_state_any_bytes(count in any::<u32>(), waiters in any::<u32>(), bound in any::<u32>()) {
        let s = Semaphore::new(1).unwrap();
        let h = s.handle();
        poke(&h, 0, &count.to_ne_bytes());
        poke(&h, 4, &waiters.to_ne_bytes());
        poke(&h, 8, &bound.to_ne_bytes());
        let got = s.acquire_timeout(Duration::from_millis(5));
        prop_assert_eq!(got, count > 0);
        let _ = s.release();
        let _ = s.release_n(u32::MAX);
        let _ = s.value();
        let b = BoundedSemaphore::open(&h);
        prop_assert_eq!(b.is_ok(), bound != 0);
    }

    #[test]
    fn event_state_any_bytes(flag in any::<u32>(), waiters in any::<u32>()) {
        let e = Event::new().unwrap();
        let h = e.handle();
        poke(&h, 0, &flag.to_ne_bytes());
        poke(&h, 4, &waiters.to_ne_bytes());
        prop_assert_eq!(e.wait_timeout(Duration::from_millis(2)), flag != 0);
        e.set();
        e.clear();
    }

    #[test]
    fn condition_state_any_bytes(
        w in word(),
        counters in any::<[u32; 4]>(),
        slots in proptest::collection::vec((0usize..1024, any::<u64>(), any::<u32>()), 0..8),
        n in any::<u32>(),
    ) {
        // The lock word, the waiter queue's counters (next, head, overflow, seq) and some
        // slots (identity word, state word; the slots start at offset 64).
        let c = Condition::new().unwrap();
        let h = c.handle();
        poke(&h, 0, &w.to_ne_bytes());
        for (i, v) in counters.iter().enumerate() {
            poke(&h, 16 + 4 * i, &v.to_ne_bytes());
        }
        for (slot, ident, state) in slots {
            poke(&h, 64 + 16 * slot, &ident.to_ne_bytes());
            poke(&h, 64 + 16 * slot + 8, &state.to_ne_bytes());
        }
        let g = match c.lock_timeout(Duration::from_millis(100)) {
            Ok(g) => Some(g),
            Err(LockTimeoutError::OwnerDied(e)) => Some(e.into_inner()),
            Err(_) => None,
        };
        if let Some(g) = g {
            g.notify_n(n);
            if let Ok((g, _)) = g.wait_timeout(Duration::from_millis(2)) {
                g.notify_all();
            }
        }
    }

    #[test]
    fn barrier_state_any_bytes(
        w in word(),
        bw in any::<u32>(),
        count in any::<u32>(),
        broken_gen in any::<u32>(),
        slot in any::<u64>(),
        timeout in any::<u64>(),
    ) {
        // A word naming this live process is a live holder of the internal lock: `reset`
        // would wait for it as long as it lives, as Python's does (`reset_timeout` is used
        // below too). Name a dead namesake (our pid under another start time) instead.
        let w = if names_me(w) { w ^ (1 << 32) } else { w };
        let b = Barrier::new(3).unwrap();
        let h = b.handle();
        poke(&h, 0, &w.to_ne_bytes());
        poke(&h, 16, &bw.to_ne_bytes());
        poke(&h, 24, &count.to_ne_bytes());
        poke(&h, 28, &broken_gen.to_ne_bytes());
        poke(&h, 64, bytemuck::bytes_of(&slot));
        poke(&h, 72, &w.to_ne_bytes());
        let _ = b.n_waiting();
        let _ = b.wait_timeout(Duration::from_millis(40));
        let _ = b.reset_timeout(Duration::from_millis(40));
        // The default timeout (offset 32): any value is a duration (or none), never a panic.
        poke(&h, 32, &timeout.to_ne_bytes());
        let _ = b.timeout();
        if b.timeout().is_some_and(|t| t <= Duration::from_millis(40)) {
            let _ = b.wait();
        }
        b.reset();
        b.abort();
        prop_assert!(b.is_broken());
    }

    #[test]
    fn barrier_party_count_is_validated(parties in any::<u32>()) {
        let b = Barrier::new(2).unwrap();
        poke(&b.handle(), 20, &parties.to_ne_bytes());
        prop_assert_eq!(<Barrier>::open(&b.handle()).is_ok(), parties == 2);
    }

    #[test]
    fn random_header_is_refused(bytes in proptest::collection::vec(any::<u8>(), 256)) {
        let lock = Lock::new().unwrap();
        let shm = ipc_core::SharedMemory::attach(&lock.handle().segment).unwrap();
        // SAFETY: nothing holds the lock, so no reference into the segment exists.
        unsafe { shm.write_unguarded(0, &bytes) }.unwrap();
        prop_assert!(Lock::open(&lock.handle()).is_err());
    }

    #[test]
    fn mutated_header_is_refused_or_works(at in 0usize..256, xor in 1u8..=255) {
        let objects = (
            Lock::new().unwrap(),
            Semaphore::new(1).unwrap(),
            Event::new().unwrap(),
            Barrier::new(2).unwrap(),
            Value::new(1u32).unwrap(),
            Array::from_slice(&[1u16, 2]).unwrap(),
            Mutex::new(1u64).unwrap(),
        );
        let handles = [
            objects.0.handle(),
            objects.1.handle(),
            objects.2.handle(),
            objects.3.handle(),
            objects.4.handle(),
            objects.5.handle(),
            objects.6.handle(),
        ];
        for h in &handles {
            let shm = ipc_core::SharedMemory::attach(&h.segment).unwrap();
            let mut byte = [0u8];
            // SAFETY: no guard of these objects is held, so no reference into them exists.
            unsafe { shm.read_unguarded(at, &mut byte) }.unwrap();
            // SAFETY: as above.
            unsafe { shm.write_unguarded(at, &[byte[0] ^ xor]) }.unwrap();
        }
        // Every kind opens cleanly or reports an error; a header that still validates (a
        // reserved byte was flipped) gives a working object.
        if let Ok(l) = Lock::open(&handles[0]) { drop(l.lock()); }
        if let Ok(s) = Semaphore::open(&handles[1]) { prop_assert!(s.try_acquire()); }
        if let Ok(e) = Event::open(&handles[2]) { e.set(); }
        if let Ok(b) = <Barrier>::open(&handles[3]) { prop_assert_eq!(b.parties(), 2); }
        if let Ok(v) = Value::<u32>::open(&handles[4]) { prop_assert_eq!(v.get(), 1); }
        if let Ok(a) = Array::<u16>::open(&handles[5]) { prop_assert_eq!(a.to_vec(), vec![1, 2]); }
        if let Ok(m) = Mutex::<u64>::open(&handles[6]) { prop_assert_eq!(*m.lock().unwrap(), 1); }
    }

    #[test]
    fn kinds_do_not_open_as_each_other(pick in 0usize..4) {
        let objects = (
            Lock::new().unwrap(),
            Semaphore::new(1).unwrap(),
            Event::new().unwrap(),
            Value::new(1u32).unwrap(),
        );
        let handles = [
            objects.0.handle(),
            objects.1.handle(),
            objects.2.handle(),
            objects.3.handle(),
        ];
        let h = &handles[pick];
        prop_assert_eq!(Lock::open(h).is_ok(), pick == 0);
        prop_assert_eq!(Semaphore::open(h).is_ok(), pick == 1);
        prop_assert_eq!(Event::open(h).is_ok(), pick == 2);
        prop_assert_eq!(Value::<u32>::open(h).is_ok(), pick == 3);
        prop_assert!(Value::<i32>::open(h).is_err());
    }
}
