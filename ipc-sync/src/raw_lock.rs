//! The robust lock state machine shared by `Lock`, `Mutex<T>`, `ReentrantLock`, `Value<T>`,
//! `Array<T>`, `Condition` and `Barrier`.
//!
//! The algorithm is Drepper's three-state futex mutex ("Futexes Are Tricky", 2011, mutex #2)
//! with the holder's pid in place of the "locked" state, as Linux robust futexes store the TID,
//! plus a recovery path when the holder is found dead.
//!
//! ## The state word
//!
//! | bits  | meaning                                                      |
//! |-------|--------------------------------------------------------------|
//! | 0..30 | pid of the holding process; 0 = free                         |
//! | 30    | `WAITERS`: somebody may sleep on the word; unlock must wake  |
//! | 31    | never written by us; tolerated (a stray bit of a bad peer)   |
//!
//! `owner_start` holds the holder's start time (written right after the acquiring CAS, cleared
//! right before the releasing swap); `poisoned` is non-zero while the state is marked
//! inconsistent after an owner died.
//!
//! | from                  | to                     | by                          |
//! |-----------------------|------------------------|-----------------------------|
//! | pid 0 (any bits)      | me (keeps `WAITERS`)   | `lock`, one CAS             |
//! | held, no `WAITERS`    | held + `WAITERS`       | a waiter about to sleep     |
//! | held by me            | 0                      | `unlock`, one swap; wakes one if `WAITERS` was set |
//! | held by a dead pid    | me + `WAITERS`         | a waiter whose slice ended, one CAS; sets `poisoned` |
//!
//! Every value of the word is a legal state: a pid that is not running (or runs with another
//! start time for longer than [`SUSPECT_GRACE`]) is treated as a dead holder, so a corrupted
//! word is recovered with an owner-died signal, never a hang.

use std::time::{Duration, Instant};

use crate::primitive::{AtomicU32, AtomicU64, Ordering, spin_hint};
use crate::sys::{Liveness, Me, Park, passed, slice_end};

/// Holder pid bits.
pub(crate) const PID_MASK: u32 = 0x3fff_ffff;
/// Some waiter may sleep.
pub(crate) const WAITERS: u32 = 1 << 30;
/// How many times the slow path spins before it sleeps.
#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 100;
/// Under the model, one spin: the sleeping paths are what needs checking.
#[cfg(loom)]
const SPIN_LIMIT: u32 = 1;
/// How long a holder pid that runs under another start time must stay unchanged before it is
/// taken for a recycled pid (and not for a live holder between its CAS and its start-time store).
pub(crate) const SUSPECT_GRACE: Duration = Duration::from_millis(200);
/// How long a running pid with *no* recorded start time must hold the lock unchanged before it
/// counts as a dead holder whose pid was reused (see `lock`).
pub(crate) const UNRECORDED_GRACE: Duration = Duration::from_secs(1);

/// The shared state of a robust lock (16 bytes, `#[repr(C)]`, every bit pattern valid).
#[repr(C)]
#[derive(Debug)]
pub struct LockState {
    word: AtomicU32,
    poisoned: AtomicU32,
    owner_start: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<LockState>() == 16);

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The state is consistent.
    Clean,
    /// A holder died holding it (now or earlier, without `make_consistent` since).
    OwnerDied,
}

/// The lock was not acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

impl Default for LockState {
    fn default() -> Self {
        Self::new()
    }
}

impl LockState {
    /// A free, consistent lock (for the heap: tests and the loom model).
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
            owner_start: AtomicU64::new(0),
        }
    }

    /// The pid currently recorded as holder, 0 if free.
    pub(crate) fn holder(&self) -> u32 {
        // ORDERING: Relaxed, a snapshot used as a hint; nothing is read through it.
        self.word.load(Ordering::Relaxed) & PID_MASK
    }

    fn acquired(&self, me: Me) -> Acquired {
        // ORDERING: Relaxed, a hint for liveness checks, ordered by the acquiring CAS before it.
        self.owner_start.store(me.start, Ordering::Relaxed);
        // ORDERING: Relaxed, written only by holders; the acquiring CAS (Acquire) and the
        // releasing swap (Release) order it between holders.
        if self.poisoned.load(Ordering::Relaxed) != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
    }

    fn recovered(&self, me: Me) -> Acquired {
        // ORDERING: Relaxed, as in `acquired`.
        self.owner_start.store(me.start, Ordering::Relaxed);
        // ORDERING: Relaxed, written by the holder only, published by the releasing swap.
        self.poisoned.store(1, Ordering::Relaxed);
        Acquired::OwnerDied
    }

    /// One CAS when free; no syscall.
    #[inline]
    pub(crate) fn try_lock_fast(&self, me: Me) -> Option<Acquired> {
        // ORDERING: Acquire on success, pairs with the Release swap in `unlock`: the previous
        // holder's writes are visible. Relaxed on failure: nothing was acquired.
        match self
            .word
            .compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(self.acquired(me)),
            Err(_) => None,
        }
    }

    /// Tries once, without sleeping; takes the lock over from a holder that no longer runs.
    pub(crate) fn try_lock(&self, me: Me, park: &impl Park) -> Option<Acquired> {
        if let Some(a) = self.try_lock_fast(me) {
            return Some(a);
        }
        for _ in 0..2 {
            // ORDERING: Relaxed, the CAS below carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            let holder = w & PID_MASK;
            if holder == 0 {
                // ORDERING: Acquire on success, as in `try_lock_fast`.
                if self
                    .word
                    .compare_exchange(
                        w,
                        me.pid | (w & WAITERS),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Some(self.acquired(me));
                }
                continue;
            }
            // ORDERING: Relaxed, a liveness hint.
            let start = self.owner_start.load(Ordering::Relaxed);
            if park.liveness(holder, start) == Liveness::Dead {
                // ORDERING: Acquire on success: takes over from the dead holder.
                if self
                    .word
                    .compare_exchange(
                        w,
                        me.pid | (w & WAITERS),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Some(self.recovered(me));
                }
                continue;
            }
            return None;
        }
        None
    }

    /// Acquires, sleeping in slices of `park.slice()` until `deadline` (`None`: no limit), and
    /// re-checking the holder's liveness after every slice that ended without a wake.
    pub(crate) fn lock(
        &self,
        me: Me,
        deadline: Option<Instant>,
        park: &impl Park,
    ) -> Result<Acquired, Busy> {
        if let Some(a) = self.try_lock_fast(me) {
            return Ok(a);
        }
        self.lock_slow(me, deadline, park)
    }

    #[cold]
    fn lock_slow(
        &self,
        me: Me,
        deadline: Option<Instant>,
        park: &impl Park,
    ) -> Result<Acquired, Busy> {
        let mut spins = 0;
        let mut slept = false;
        // A holder seen running under another start time: (word, start, first seen).
        let mut suspect: Option<(u32, u64, Instant)> = None;
        loop {
            // ORDERING: Relaxed, the CAS that acquires carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            let holder = w & PID_MASK;
            if holder == 0 {
                // Once slept, take it as contended so that our unlock wakes the others.
                let bits = if slept { WAITERS } else { w & WAITERS };
                // ORDERING: Acquire on success, pairs with the Release swap in `unlock`.
                if self
                    .word
                    .compare_exchange(w, me.pid | bits, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.acquired(me));
                }
                continue;
            }
            if spins < SPIN_LIMIT {
                spins += 1;
                spin_hint();
                continue;
            }
            if passed(deadline) {
                return Err(Busy);
            }
            let sleeping = w | WAITERS;
            // ORDERING: Relaxed, announces a sleeper; the futex re-checks the word in the kernel.
            if w & WAITERS == 0
                && self
                    .word
                    .compare_exchange(w, sleeping, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            slept = true;
            let end = slice_end(deadline, park.slice());
            if !park.wait(&self.word, sleeping, end) {
                continue;
            }
            if passed(deadline) {
                // One last look, in case it was released as the deadline passed.
                return self.try_lock_fast(me).ok_or(Busy);
            }
            // A whole slice without a wake: is the holder still there?
            // ORDERING: Relaxed, the CAS below carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            let holder = w & PID_MASK;
            if holder == 0 {
                continue;
            }
            // ORDERING: Relaxed, a liveness hint.
            let start = self.owner_start.load(Ordering::Relaxed);
            let dead = match park.liveness(holder, start) {
                Liveness::Alive => {
                    suspect = None;
                    false
                }
                Liveness::Dead => true,
                Liveness::Mismatch => match suspect {
                    // A recorded start time that differs from the running pid's: the holder
                    // died and its pid was reused. No recorded time (0): a live holder may sit
                    // between its CAS and its store of the time (preempted, stopped), so only a
                    // much longer wait counts it dead.
                    Some((sw, ss, since)) if sw == w && ss == start => {
                        let grace = if start == 0 {
                            UNRECORDED_GRACE
                        } else {
                            SUSPECT_GRACE
                        };
                        since.elapsed() >= grace
                    }
                    _ => {
                        suspect = Some((w, start, Instant::now()));
                        false
                    }
                },
            };
            // ORDERING: Acquire on success: takes over from the dead holder; its writes (if
            // any reached memory) are visible.
            if dead
                && self
                    .word
                    .compare_exchange(w, me.pid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(self.recovered(me));
            }
        }
    }

    /// Releases; wakes one sleeper if one announced itself. Returns `false` if the word did not
    /// name `me` (a peer overwrote it): the lock is released all the same.
    pub(crate) fn unlock(&self, me: Me, park: &impl Park) -> bool {
        // ORDERING: Relaxed, a hint, cleared before the releasing swap below.
        self.owner_start.store(0, Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire CAS of the next holder: publishes every
        // write made under the lock.
        let old = self.word.swap(0, Ordering::Release);
        if old & WAITERS != 0 {
            park.wake(&self.word, 1);
        }
        old & PID_MASK == me.pid
    }

    /// Marks the protected state consistent again after an owner died. Call while holding.
    pub(crate) fn make_consistent(&self) {
        // ORDERING: Relaxed, written by the holder only, published by the releasing swap.
        self.poisoned.store(0, Ordering::Relaxed);
    }

    /// Whether the state is marked inconsistent (an owner died and nobody repaired it).
    pub(crate) fn is_poisoned(&self) -> bool {
        // ORDERING: Relaxed, a snapshot.
        self.poisoned.load(Ordering::Relaxed) != 0
    }

    /// Whether somebody holds the lock right now (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.holder() != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::os::{self, Os};
    use std::sync::Arc;

    #[test]
    fn threads_exclude_each_other() {
        let lock = Arc::new(LockState::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let me = os::me();
                    for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
                        assert!(lock.lock(me, None, &Os).is_ok());
                        // ORDERING: Relaxed, a non-atomic-style read-modify-write that only
                        // the lock keeps exact.
                        let v = counter.load(Ordering::Relaxed);
                        // ORDERING: Relaxed, as above.
                        counter.store(v + 1, Ordering::Relaxed);
                        assert!(lock.unlock(me, &Os));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // ORDERING: Relaxed, the threads were joined.
        let total = counter.load(Ordering::Relaxed);
        assert_eq!(total, if cfg!(miri) { 40 } else { 40_000 });
    }

    #[test]
    fn timeout_while_held_then_dead_holder_taken_over() {
        let lock = LockState::new();
        let me = os::me();
        // A holder pid above the kernel's pid limit never runs.
        let ghost = Me {
            pid: PID_MASK,
            start: 1,
        };
        assert_eq!(lock.try_lock_fast(ghost), Some(Acquired::Clean));
        assert_eq!(lock.try_lock(me, &Os), Some(Acquired::OwnerDied));
        assert!(lock.is_poisoned());
        assert!(lock.unlock(me, &Os));
        assert_eq!(lock.try_lock_fast(me), Some(Acquired::OwnerDied));
        lock.make_consistent();
        assert!(lock.unlock(me, &Os));
        assert_eq!(lock.lock(me, None, &Os), Ok(Acquired::Clean));
        let deadline = Instant::now() + Duration::from_millis(30);
        // Held by ourselves (a live process): the deadline ends the wait.
        assert_eq!(lock.lock(me, Some(deadline), &Os), Err(Busy));
        assert!(lock.unlock(me, &Os));
    }
}
