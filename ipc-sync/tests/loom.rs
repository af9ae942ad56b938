//! Model checks of the lock and semaphore state machines with loom.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipc-sync --release --test loom`
//!
//! The state machines are compiled from the crate's own source files against loom's atomics;
//! the futex is modelled by a park that yields (a sleeper is a spinner that lets others run),
//! and liveness by a table of dead pids.
#![cfg(loom)]
#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../src/primitive.rs"]
mod primitive;
#[path = "../src/raw_lock.rs"]
mod raw_lock;
#[path = "../src/raw_semaphore.rs"]
mod raw_semaphore;
#[path = "../src/sys.rs"]
mod sys;

use std::time::Instant;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;

use raw_lock::{Acquired, LockState};
use raw_semaphore::SemaphoreState;
use sys::{Liveness, Me, Park};

/// A park for the model: waits yield; pids in `dead` are dead; `slices_end` makes every wait
/// report a passed slice so that the liveness path runs.
struct ModelPark {
    dead: &'static [u32],
    slices_end: bool,
}

impl Park for ModelPark {
    fn wait(&self, _word: &primitive::AtomicU32, _expected: u32, _deadline: Instant) -> bool {
        thread::yield_now();
        self.slices_end
    }

    fn wake(&self, _word: &primitive::AtomicU32, _n: u32) {}

    fn liveness(&self, pid: u32, _start: u64) -> Liveness {
        if self.dead.contains(&pid) {
            Liveness::Dead
        } else {
            Liveness::Alive
        }
    }
}

const LIVE: ModelPark = ModelPark {
    dead: &[],
    slices_end: false,
};

/// A futex model that really blocks: `wait` checks the word and sleeps on a condition variable
/// under one mutex, `wake` notifies under the same mutex (the kernel's hash-bucket lock). A lost
/// wake-up in the protocol then shows up as a deadlock that loom reports.
#[derive(Clone)]
struct BlockingPark {
    inner: Arc<(loom::sync::Mutex<()>, loom::sync::Condvar)>,
}

impl BlockingPark {
    fn new() -> Self {
        Self {
            inner: Arc::new((loom::sync::Mutex::new(()), loom::sync::Condvar::new())),
        }
    }
}

impl Park for BlockingPark {
    fn wait(&self, word: &primitive::AtomicU32, expected: u32, _deadline: Instant) -> bool {
        let (m, cv) = &*self.inner;
        let g = m.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(cv.wait(g).unwrap());
        }
        false
    }

    fn wake(&self, _word: &primitive::AtomicU32, n: u32) {
        let (m, cv) = &*self.inner;
        let _g = m.lock().unwrap();
        if n == 1 {
            cv.notify_one();
        } else {
            cv.notify_all();
        }
    }

    fn liveness(&self, _pid: u32, _start: u64) -> Liveness {
        Liveness::Alive
    }
}

fn me(pid: u32) -> Me {
    Me {
        pid,
        start: u64::from(pid) * 1000,
    }
}

#[test]
fn lock_excludes() {
    loom::model(|| {
        let lock = Arc::new(LockState::new());
        let inside = Arc::new(AtomicU32::new(0));
        let park = BlockingPark::new();
        let handles: Vec<_> = (1..=2)
            .map(|pid| {
                let lock = Arc::clone(&lock);
                let inside = Arc::clone(&inside);
                let park = park.clone();
                thread::spawn(move || {
                    let a = lock.lock(me(pid), None, &park);
                    assert_eq!(a, Ok(Acquired::Clean));
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert!(lock.unlock(me(pid), &park));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(!lock.is_locked());
    });
}

/// Three contenders: the wake chain (unlock clears `WAITERS`, the woken waiter re-acquires with
/// `WAITERS` so that its unlock wakes the next) loses nobody.
#[test]
fn lock_wake_chain_loses_nobody() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let lock = Arc::new(LockState::new());
        let park = BlockingPark::new();
        let handles: Vec<_> = (1..=3)
            .map(|pid| {
                let lock = Arc::clone(&lock);
                let park = park.clone();
                thread::spawn(move || {
                    assert!(lock.lock(me(pid), None, &park).is_ok());
                    assert!(lock.unlock(me(pid), &park));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(!lock.is_locked());
    });
}

#[test]
fn try_lock_excludes() {
    loom::model(|| {
        let lock = Arc::new(LockState::new());
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || {
            let got = l2.try_lock(me(2), &LIVE).is_some();
            if got {
                l2.unlock(me(2), &LIVE);
            }
            got
        });
        let got = lock.try_lock(me(1), &LIVE).is_some();
        if got {
            lock.unlock(me(1), &LIVE);
        }
        let other = t.join().unwrap();
        assert!(got || other);
        assert!(!lock.is_locked());
    });
}

#[test]
fn dead_holder_is_taken_over() {
    loom::model(|| {
        // pid 7 takes the lock and "dies" (returns without unlocking); pid 8 must get the lock,
        // with OwnerDied if 7 had it.
        let park = ModelPark {
            dead: &[7],
            slices_end: true,
        };
        let lock = Arc::new(LockState::new());
        let l2 = Arc::clone(&lock);
        let dying = thread::spawn(move || l2.try_lock_fast(me(7)).is_some());
        let a = lock.lock(me(8), None, &park);
        let seven_had_it = dying.join().unwrap();
        match a {
            Ok(Acquired::OwnerDied) => assert!(seven_had_it),
            Ok(Acquired::Clean) => {
                // 8 went first; 7 failed its try.
                assert!(!seven_had_it);
            }
            Err(_) => panic!("lock without deadline failed"),
        }
        assert!(lock.unlock(me(8), &park));
    });
}

#[test]
fn corrupted_word_is_recovered() {
    loom::model(|| {
        // A hostile word: a dead pid with the stray bit 31 and the waiters bit set.
        let park = ModelPark {
            dead: &[0x1234],
            slices_end: true,
        };
        let lock = LockState::new();
        assert_eq!(lock.lock(me(3), None, &park), Ok(Acquired::Clean));
        lock.unlock(me(3), &park);
        let lock = LockState::new();
        // Take it as pid 0x1234 and mark the stray bits: the next acquirer must recover it.
        assert!(lock.try_lock_fast(me(0x1234)).is_some());
        assert_eq!(lock.lock(me(3), None, &park), Ok(Acquired::OwnerDied));
        assert!(lock.is_poisoned());
        lock.make_consistent();
        lock.unlock(me(3), &park);
        assert_eq!(lock.lock(me(4), None, &park), Ok(Acquired::Clean));
    });
}

#[test]
fn semaphore_counts() {
    loom::model(|| {
        let sem = Arc::new(SemaphoreState::new(1, 1));
        let inside = Arc::new(AtomicU32::new(0));
        let park = BlockingPark::new();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let sem = Arc::clone(&sem);
                let inside = Arc::clone(&inside);
                let park = park.clone();
                thread::spawn(move || {
                    assert!(sem.acquire(None, &park));
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release(1, &park).unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(sem.value(), 1);
        assert!(sem.release(1, &LIVE).is_err());
    });
}

/// Three contenders for one permit: every release reaches a sleeper.
#[test]
fn semaphore_wake_chain_loses_nobody() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let sem = Arc::new(SemaphoreState::new(1, 0));
        let park = BlockingPark::new();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let sem = Arc::clone(&sem);
                let park = park.clone();
                thread::spawn(move || {
                    assert!(sem.acquire(None, &park));
                    sem.release(1, &park).unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(sem.value(), 1);
    });
}

#[test]
fn semaphore_release_reaches_waiter() {
    loom::model(|| {
        let sem = Arc::new(SemaphoreState::new(0, 0));
        let s2 = Arc::clone(&sem);
        let park = BlockingPark::new();
        let p2 = park.clone();
        let t = thread::spawn(move || s2.release(1, &p2).unwrap());
        assert!(sem.acquire(None, &park));
        t.join().unwrap();
        assert_eq!(sem.value(), 0);
    });
}

/// The harness itself finds a lost update (so the passing models above mean something).
#[test]
#[should_panic]
fn harness_finds_a_race_without_the_lock() {
    loom::model(|| {
        let n = Arc::new(AtomicU32::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let n = Arc::clone(&n);
                thread::spawn(move || {
                    let v = n.load(Ordering::Relaxed);
                    n.store(v + 1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(n.load(Ordering::Relaxed), 2);
    });
}
