//! Model checks of the lock and semaphore state machines with loom.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ipc-sync --release --test loom`
//!
//! The state machines are compiled from the crate's own source files against loom's atomics.
//! The data a lock protects is a `loom::cell::UnsafeCell` written under the lock, so an ordering
//! too weak to publish it (an unlock without Release, an acquire without Acquire) is reported as
//! a data race, not merely as a wrong count. The futex is modelled either by a park that really
//! blocks (a lost wake-up is a deadlock loom reports) or by one that yields and ends every slice
//! (so the liveness path runs). The kernel's liveness answers come from an oracle: a pid that
//! "dies" is reported `Dead` only after its last write (its death flag is stored with Release
//! and read with Acquire, as the kernel reports an exit only after the process's last
//! instruction); a pid under a tag other than its own is `Dead` (a recycled pid); pids listed as
//! unknown get `Unknown`, as a process at its descriptor limit would.
#![cfg(loom)]
#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../src/primitive.rs"]
mod primitive;
#[path = "../src/raw_condition.rs"]
mod raw_condition;
#[path = "../src/raw_lock.rs"]
mod raw_lock;
#[path = "../src/raw_semaphore.rs"]
mod raw_semaphore;
#[path = "../src/sys.rs"]
mod sys;

use std::task::Poll;
use std::time::{Duration, Instant};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::thread;

use raw_condition::{Slot, Ticket, WaitQueue, WaitQueueState};
use raw_lock::{Acquired, LockState, LockWait};
use raw_semaphore::{AcquireWait, SemaphoreState};
use sys::{Arm, Liveness, Me, Park};

/// The identity of model process `pid`: its tag is derived from the pid, so a word naming a pid
/// under any other tag names a process the pid no longer belongs to.
fn me(pid: u32) -> Me {
    Me {
        pid,
        tag: pid.wrapping_mul(1000) ^ 0x5a5a_0000,
    }
}

/// The kernel's liveness answers for the model.
#[derive(Clone, Default)]
struct Oracle {
    /// Pids that die, each when its flag is set.
    dying: Vec<(u32, Arc<AtomicBool>)>,
    /// Pids whose liveness cannot be asked.
    unknown: Vec<u32>,
}

impl Oracle {
    fn liveness(&self, pid: u32, tag: u32) -> Liveness {
        if pid == 0 || tag != me(pid).tag {
            return Liveness::Dead;
        }
        for (p, died) in &self.dying {
            // The model's kernel reports the exit after the process's last write.
            if *p == pid && died.load(Ordering::Acquire) {
                return Liveness::Dead;
            }
        }
        if self.unknown.contains(&pid) {
            Liveness::Unknown
        } else {
            Liveness::Alive
        }
    }
}

/// A park for the model: waits yield and report a passed slice (so the liveness path runs);
/// wakes do nothing.
#[derive(Clone, Default)]
struct SpinPark {
    oracle: Oracle,
}

impl Park for SpinPark {
    fn wait(&self, _word: &primitive::AtomicU32, _expected: u32, _deadline: Instant) -> bool {
        thread::yield_now();
        true
    }

    fn wake(&self, _word: &primitive::AtomicU32, _n: u32) {}

    fn wait_low(&self, _word: &primitive::AtomicU64, _expected: u32, _deadline: Instant) -> bool {
        thread::yield_now();
        true
    }

    fn wake_low(&self, _word: &primitive::AtomicU64, _n: u32) {}

    fn liveness(&self, pid: u32, tag: u32) -> Liveness {
        self.oracle.liveness(pid, tag)
    }
}

/// A futex model that really blocks: `wait` checks the word and sleeps on a condition variable
/// under one mutex, `wake` notifies under the same mutex (the kernel's hash-bucket lock). A lost
/// wake-up in the protocol then shows up as a deadlock that loom reports. Everybody is alive.
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

    fn block_while(&self, same: impl FnOnce() -> bool) {
        let (m, cv) = &*self.inner;
        let g = m.lock().unwrap();
        if same() {
            drop(cv.wait(g).unwrap());
        }
    }

    fn notify(&self, n: u32) {
        let (m, cv) = &*self.inner;
        let _g = m.lock().unwrap();
        if n == 1 {
            cv.notify_one();
        } else {
            cv.notify_all();
        }
    }
}

impl Park for BlockingPark {
    fn wait(&self, word: &primitive::AtomicU32, expected: u32, _deadline: Instant) -> bool {
        self.block_while(|| word.load(Ordering::SeqCst) == expected);
        false
    }

    fn wake(&self, _word: &primitive::AtomicU32, n: u32) {
        self.notify(n);
    }

    fn wait_low(&self, word: &primitive::AtomicU64, expected: u32, _deadline: Instant) -> bool {
        self.block_while(|| word.load(Ordering::SeqCst) as u32 == expected);
        false
    }

    fn wake_low(&self, _word: &primitive::AtomicU64, n: u32) {
        self.notify(n);
    }

    fn liveness(&self, pid: u32, tag: u32) -> Liveness {
        Oracle::default().liveness(pid, tag)
    }
}

/// The model's reactor for the async forms: a poll step's arm sleeps on the model futex in the
/// waiter thread's place (the word compared with the value the step read, under the bucket
/// lock), then the step returns `Pending` and the task polls again, as it would once woken. The
/// kernel's comparison here comes no later than the real waiter thread's (which sleeps after
/// the task returned), so a protocol that loses a wake-up here deadlocks, and loom reports it.
struct ModelArm {
    park: BlockingPark,
}

impl Arm for ModelArm {
    fn arm(
        &mut self,
        word: &primitive::AtomicU32,
        expected: u32,
        _d: Option<Instant>,
        _s: Duration,
    ) {
        self.park.wait(word, expected, Instant::now());
    }

    fn arm_low(
        &mut self,
        word: &primitive::AtomicU64,
        expected: u32,
        _d: Option<Instant>,
        _s: Duration,
    ) {
        self.park.wait_low(word, expected, Instant::now());
    }
}

/// A lock and the data it protects: a plain (non-atomic) cell, so that a missing
/// happens-before between two holders is a data race loom reports.
struct Guarded {
    lock: LockState,
    data: UnsafeCell<u32>,
}

impl Guarded {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lock: LockState::new(),
            data: UnsafeCell::new(0),
        })
    }

    /// A non-atomic read-modify-write: only the lock makes it exact and race-free.
    fn increment(&self) {
        // SAFETY: called only while holding `lock` (loom checks the claim: a holder without a
        // happens-before edge to the previous one is reported as a data race).
        self.data.with_mut(|p| unsafe { *p += 1 });
    }

    fn set(&self, v: u32) {
        // SAFETY: as in `increment`.
        self.data.with_mut(|p| unsafe { *p = v });
    }

    fn get(&self) -> u32 {
        // SAFETY: as in `increment`.
        self.data.with(|p| unsafe { *p })
    }
}

#[test]
fn lock_protects_its_data() {
    loom::model(|| {
        let g = Guarded::new();
        let park = BlockingPark::new();
        let handles: Vec<_> = (1..=2)
            .map(|pid| {
                let g = Arc::clone(&g);
                let park = park.clone();
                thread::spawn(move || {
                    assert_eq!(g.lock.lock(me(pid), None, &park), Ok(Acquired::Clean));
                    g.increment();
                    assert!(g.lock.unlock(me(pid), &park));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(!g.lock.is_locked());
        assert_eq!(g.get(), 2);
    });
}

/// Two threads of one process carry the same identity word: the lock still excludes them.
#[test]
fn threads_of_one_process_exclude_each_other() {
    loom::model(|| {
        let g = Guarded::new();
        let park = BlockingPark::new();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let g = Arc::clone(&g);
                let park = park.clone();
                thread::spawn(move || {
                    assert_eq!(g.lock.lock(me(1), None, &park), Ok(Acquired::Clean));
                    g.increment();
                    assert!(g.lock.unlock(me(1), &park));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(g.get(), 2);
    });
}

/// Three contenders: the wake chain (unlock clears `WAITERS`, the woken waiter re-acquires with
/// `WAITERS` so that its unlock wakes the next) loses nobody.
#[test]
fn lock_wake_chain_loses_nobody() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let g = Guarded::new();
        let park = BlockingPark::new();
        let handles: Vec<_> = (1..=3)
            .map(|pid| {
                let g = Arc::clone(&g);
                let park = park.clone();
                thread::spawn(move || {
                    assert!(g.lock.lock(me(pid), None, &park).is_ok());
                    g.increment();
                    assert!(g.lock.unlock(me(pid), &park));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(!g.lock.is_locked());
        assert_eq!(g.get(), 3);
    });
}

#[test]
fn try_lock_excludes() {
    loom::model(|| {
        let g = Guarded::new();
        let g2 = Arc::clone(&g);
        let park = SpinPark::default();
        let p2 = park.clone();
        let t = thread::spawn(move || {
            let got = g2.lock.try_lock(me(2), &p2);
            if got.is_some() {
                assert_eq!(got, Some(Acquired::Clean));
                g2.increment();
                assert!(g2.lock.unlock(me(2), &p2));
            }
            got.is_some()
        });
        let got = g.lock.try_lock(me(1), &park);
        if got.is_some() {
            assert_eq!(got, Some(Acquired::Clean));
            g.increment();
            assert!(g.lock.unlock(me(1), &park));
        }
        let other = t.join().unwrap();
        assert!(got.is_some() || other);
        assert!(!g.lock.is_locked());
    });
}

/// Pid 7 takes the lock, writes the data and dies without unlocking; pid 8 must get the lock
/// (with `OwnerDied` if 7 had it) and see 7's write.
#[test]
fn a_dead_holder_is_taken_over() {
    loom::model(|| {
        let died = Arc::new(AtomicBool::new(false));
        let park = SpinPark {
            oracle: Oracle {
                dying: vec![(7, Arc::clone(&died))],
                unknown: vec![],
            },
        };
        let g = Guarded::new();
        let g2 = Arc::clone(&g);
        let dying = thread::spawn(move || {
            let had_it = g2.lock.try_lock_fast(me(7)).is_some();
            if had_it {
                g2.set(7);
            }
            // The process ends holding the lock.
            died.store(true, Ordering::Release);
            had_it
        });
        let a = g.lock.lock(me(8), None, &park);
        let value = g.get();
        g.set(8);
        let seven_had_it = dying.join().unwrap();
        match a {
            Ok(Acquired::OwnerDied) => {
                assert!(seven_had_it);
                assert_eq!(value, 7);
            }
            Ok(Acquired::Clean) => {
                // 8 went first; 7 failed its try.
                assert!(!seven_had_it);
                assert_eq!(value, 0);
            }
            Err(_) => panic!("lock without deadline failed"),
        }
        assert_eq!(g.lock.is_poisoned(), a == Ok(Acquired::OwnerDied));
        assert!(g.lock.unlock(me(8), &park));
    });
}

/// The kernel cannot say whether pid 7 lives (`Unknown`): 7 is alive, holds the lock while it
/// writes, then unlocks. A waiter that checks 7's liveness after every slice, and a `try_lock`,
/// must never take the lock from it (a takeover would also race with 7's writes).
#[test]
fn an_unknown_holder_is_never_taken_over() {
    loom::model(|| {
        let park = SpinPark {
            oracle: Oracle {
                dying: vec![],
                unknown: vec![7],
            },
        };
        let g = Guarded::new();
        let g2 = Arc::clone(&g);
        let p2 = park.clone();
        let holder = thread::spawn(move || {
            assert_eq!(g2.lock.lock(me(7), None, &p2), Ok(Acquired::Clean));
            g2.set(7);
            thread::yield_now();
            g2.increment();
            assert!(g2.lock.unlock(me(7), &p2));
        });
        if let Some(a) = g.lock.try_lock(me(8), &park) {
            assert_eq!(a, Acquired::Clean);
            g.set(1);
            assert!(g.lock.unlock(me(8), &park));
        }
        assert_eq!(g.lock.lock(me(8), None, &park), Ok(Acquired::Clean));
        let v = g.get();
        assert!(
            v == 1 || v == 8,
            "saw {v}: 7's critical section was cut in two"
        );
        assert!(!g.lock.is_poisoned());
        assert!(g.lock.unlock(me(8), &park));
        holder.join().unwrap();
    });
}

/// A word naming a pid under a tag that is not its own (a recycled pid, or a corrupted word with
/// stray bits): the kernel says that holder is dead, so it is taken over.
#[test]
fn a_recycled_pid_or_corrupted_word_is_recovered() {
    loom::model(|| {
        let park = SpinPark::default();
        let lock = LockState::new();
        assert_eq!(lock.lock(me(3), None, &park), Ok(Acquired::Clean));
        assert!(lock.unlock(me(3), &park));
        // Pid 0x1234 under another tag holds it: dead.
        let namesake = Me {
            pid: 0x1234,
            tag: me(0x1234).tag ^ 1,
        };
        assert!(lock.try_lock_fast(namesake).is_some());
        assert!(!lock.unlock(me(0x1234), &park), "not 0x1234's word");
        assert_eq!(lock.lock(me(3), None, &park), Ok(Acquired::OwnerDied));
        assert!(lock.is_poisoned());
        lock.make_consistent();
        assert!(lock.unlock(me(3), &park));
        assert_eq!(lock.lock(me(4), None, &park), Ok(Acquired::Clean));
        assert!(
            !lock.unlock(me(3), &park),
            "an unlock only releases its own word"
        );
        assert!(lock.unlock(me(4), &park));
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
        assert!(sem.release(1, &SpinPark::default()).is_err());
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

/// A condition's waiter queue in the heap: its counters and `K` slots. The model's callers take
/// `lock` where the condition's lock is held (registering, notifying).
struct Queue {
    lock: loom::sync::Mutex<()>,
    state: WaitQueueState,
    slots: Vec<Slot>,
}

impl Queue {
    fn new(k: usize) -> Arc<Self> {
        Arc::new(Self {
            lock: loom::sync::Mutex::new(()),
            state: WaitQueueState::new(),
            slots: (0..k).map(|_| Slot::new()).collect(),
        })
    }

    fn queue(&self) -> WaitQueue<'_> {
        WaitQueue {
            state: &self.state,
            slots: &self.slots,
        }
    }

    fn register(&self, pid: u32, park: &impl Park) -> Ticket {
        let _g = self.lock.lock().unwrap();
        self.queue().register(me(pid), park)
    }

    fn notify(&self, n: u32, park: &impl Park) -> u32 {
        let _g = self.lock.lock().unwrap();
        self.queue().notify(n, Some(me(1)), park)
    }
}

/// A waiter whose deadline has passed leaves by one CAS while a `notify` hands out by another:
/// either it was notified (and the notify counted it) or it left (and the notify went on to the
/// next waiter). Never both, never neither: `notify(1)` hands out exactly one notification.
#[test]
fn condition_notify_counts_exactly_what_it_hands_out() {
    loom::model(|| {
        let q = Queue::new(2);
        let park = BlockingPark::new();
        let first = q.register(7, &park);
        let second = q.register(8, &park);
        assert_eq!((first, second), (Ticket::Slot(0), Ticket::Slot(1)));
        let past = Some(Instant::now() - std::time::Duration::from_millis(1));
        let (q1, p1) = (Arc::clone(&q), park.clone());
        let timing_out = thread::spawn(move || q1.queue().wait(first, past, &p1));
        let (q2, p2) = (Arc::clone(&q), park.clone());
        let waiting = thread::spawn(move || q2.queue().wait(second, None, &p2));
        assert_eq!(q.notify(1, &park), 1, "one waiter was left to notify");
        if timing_out.join().unwrap() {
            // The notification went to the first waiter: the second still waits.
            assert_eq!(q.notify(1, &park), 1);
        }
        assert!(waiting.join().unwrap());
        assert_eq!(q.notify(1, &park), 0, "nobody waits any more");
    });
}

/// A waiter the kernel says is dead is skipped: the notification reaches the live one behind it.
#[test]
fn condition_notify_skips_a_dead_waiter() {
    loom::model(|| {
        let died = Arc::new(AtomicBool::new(false));
        let park = SpinPark {
            oracle: Oracle {
                dying: vec![(7, Arc::clone(&died))],
                unknown: vec![],
            },
        };
        let q = Queue::new(2);
        let dead = q.register(7, &park);
        let live = q.register(8, &park);
        assert_eq!(dead, Ticket::Slot(0));
        died.store(true, Ordering::Release);
        let (q2, p2) = (Arc::clone(&q), park.clone());
        let waiter = thread::spawn(move || q2.queue().wait(live, None, &p2));
        assert_eq!(q.notify(1, &park), 1);
        assert!(waiter.join().unwrap());
    });
}

/// An async acquisition (the poll steps of `lock_async`) waiting on a held lock is woken by the
/// unlock: `WAITERS` set before the armed value was read, so the unlock wakes the word, or the
/// comparison sees the unlock. And it sees the holder's writes.
#[test]
fn async_lock_wait_is_woken_by_the_unlock() {
    loom::model(|| {
        let g = Guarded::new();
        let park = BlockingPark::new();
        assert_eq!(g.lock.try_lock_fast(me(1)), Some(Acquired::Clean));
        let (g2, p2) = (Arc::clone(&g), park.clone());
        let holder = thread::spawn(move || {
            g2.set(5);
            assert!(g2.lock.unlock(me(1), &p2));
        });
        let mut wait = LockWait::default();
        let mut arm = ModelArm { park: park.clone() };
        let r = loop {
            if let Poll::Ready(r) = g.lock.poll_lock(me(2), None, &mut wait, &park, &mut arm) {
                break r;
            }
        };
        assert_eq!(r, Ok(Acquired::Clean));
        assert_eq!(g.get(), 5);
        assert!(g.lock.unlock(me(2), &park));
        holder.join().unwrap();
    });
}

/// An async acquisition and a blocking one contend with a holder: the unlock's single wake and
/// the `WAITERS` each waiter takes the lock with reach both, whichever order they come in.
#[test]
fn async_and_blocking_lock_waiters_lose_nobody() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let g = Guarded::new();
        let park = BlockingPark::new();
        assert_eq!(g.lock.try_lock_fast(me(1)), Some(Acquired::Clean));
        let (g2, p2) = (Arc::clone(&g), park.clone());
        let blocking = thread::spawn(move || {
            assert!(g2.lock.lock(me(3), None, &p2).is_ok());
            g2.increment();
            assert!(g2.lock.unlock(me(3), &p2));
        });
        let (g3, p3) = (Arc::clone(&g), park.clone());
        let holder = thread::spawn(move || assert!(g3.lock.unlock(me(1), &p3)));
        let mut wait = LockWait::default();
        let mut arm = ModelArm { park: park.clone() };
        while g
            .lock
            .poll_lock(me(2), None, &mut wait, &park, &mut arm)
            .is_pending()
        {}
        g.increment();
        assert!(g.lock.unlock(me(2), &park));
        holder.join().unwrap();
        blocking.join().unwrap();
        assert_eq!(g.get(), 2);
    });
}

/// An async semaphore acquisition (the poll steps of `acquire_async`) announced in `waiters`
/// before its armed check is woken by a release: the store-buffer pair of the announcement and
/// the releaser's fence.
#[test]
fn async_semaphore_wait_is_woken_by_a_release() {
    loom::model(|| {
        let sem = Arc::new(SemaphoreState::new(0, 0));
        let park = BlockingPark::new();
        let (s2, p2) = (Arc::clone(&sem), park.clone());
        let releaser = thread::spawn(move || s2.release(1, &p2).unwrap());
        let mut wait = AcquireWait::default();
        let mut arm = ModelArm { park: park.clone() };
        while sem
            .poll_acquire(None, &mut wait, &park, &mut arm)
            .is_pending()
        {}
        sem.withdraw(&mut wait);
        releaser.join().unwrap();
        assert_eq!(sem.value(), 0);
    });
}

/// An async condition waiter dropped while a `notify` runs: its ticket leaves by the CAS
/// `WAITING -> FREE`, or it finds the notification and hands it on (`notify(1)` again, as the
/// future's drop does), so the waiter behind it is notified either way.
#[test]
fn a_cancelled_async_condition_wait_hands_its_notification_on() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let q = Queue::new(2);
        let park = BlockingPark::new();
        let first = q.register(7, &park);
        let second = q.register(8, &park);
        let (q1, p1) = (Arc::clone(&q), park.clone());
        let cancelling = thread::spawn(move || {
            if q1.queue().cancel(first) {
                q1.notify(1, &p1);
            }
        });
        let (q2, p2) = (Arc::clone(&q), park.clone());
        let waiting = thread::spawn(move || {
            let mut arm = ModelArm { park: p2.clone() };
            loop {
                if let Poll::Ready(n) = q2.queue().poll_wait(second, None, &p2, &mut arm) {
                    return n;
                }
            }
        });
        assert_eq!(q.notify(1, &park), 1);
        cancelling.join().unwrap();
        assert!(waiting.join().unwrap());
    });
}

/// The harness itself finds a data race on the protected cell without the lock (so the passing
/// models above mean something).
#[test]
#[should_panic]
fn harness_finds_a_race_without_the_lock() {
    loom::model(|| {
        let g = Guarded::new();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let g = Arc::clone(&g);
                thread::spawn(move || g.increment())
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}
