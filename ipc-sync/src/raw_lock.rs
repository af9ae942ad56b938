//! The robust lock state machine shared by `Lock`, `Mutex<T>`, `ReentrantLock`, `Value<T>`,
//! `Array<T>`, `Condition` and `Barrier`.
//!
//! The algorithm is Drepper's three-state futex mutex ("Futexes Are Tricky", 2011, mutex #2)
//! with the holder's identity in place of the "locked" state, as Linux robust futexes store the
//! TID, plus a recovery path when the kernel says the holder is dead.
//!
//! ## The state word (64 bits)
//!
//! | bits   | meaning                                                              |
//! |--------|----------------------------------------------------------------------|
//! | 0..30  | pid of the holding process; 0 = free                                 |
//! | 30     | `WAITERS`: somebody may sleep on the word; unlock must wake          |
//! | 31     | never written by us; tolerated (a stray bit of a bad peer)           |
//! | 32..64 | the holder's start-time tag (`ProcessIdentity::start_tag`); meaningless while free |
//!
//! The holder's whole identity (pid and start time) is published by the one compare-and-swap
//! that acquires and withdrawn by the one compare-and-swap that releases, so no observer ever
//! sees a pid without its start time. Waiters sleep on the low half (`futex::wait_low`): the
//! pid and `WAITERS` bits, which change whenever the lock changes hands.
//!
//! `poisoned` is non-zero while the state is marked inconsistent after an owner died.
//!
//! | from                      | to                       | by                                 |
//! |---------------------------|--------------------------|------------------------------------|
//! | pid 0 (any other bits)    | me (keeps `WAITERS`)     | `lock`, one CAS                    |
//! | held, no `WAITERS`        | held + `WAITERS`         | a waiter about to sleep, one CAS   |
//! | me (pid and tag), any bits| 0                        | `unlock`, one CAS from the word it read; wakes one if `WAITERS` was set |
//! | anybody else              | unchanged                | `unlock` refuses: "not the owner"  |
//! | held by a dead process    | me + `WAITERS`           | a waiter whose slice ended (or `try_lock`), one CAS from the word it judged; sets `poisoned` |
//!
//! A holder is dead only when the kernel says so ([`Liveness::Dead`]: no such pid, a zombie,
//! or the pid runs under another start time). A liveness question the kernel could not answer
//! ([`Liveness::Unknown`]) counts as alive: taking a live holder's lock would hand out two
//! guards at once, while waiting on a dead one only costs time. A word naming the caller's own
//! process is alive without asking. Every value of the word is a legal state: a word whose pid
//! does not run, or runs under another start time, is a dead holder, so a corrupted word is
//! recovered with an owner-died signal, never a hang; a forged word naming a live process with
//! its exact tag is a live holder, so waiters time out.

use std::task::Poll;
use std::time::Instant;

use crate::primitive::{AtomicU32, AtomicU64, Ordering, spin_hint};
use crate::sys::{Arm, Liveness, Me, Park, passed, pid_of, renew_slice, slice_end, tag_of};

/// Some waiter may sleep (in the low half of the word, beside the pid).
pub(crate) const WAITERS: u64 = 1 << 30;
/// How many times the slow path spins before it sleeps.
#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 100;
/// Under the model, one spin: the sleeping paths are what needs checking.
#[cfg(loom)]
const SPIN_LIMIT: u32 = 1;

/// The shared state of a robust lock (16 bytes, `#[repr(C)]`, every bit pattern valid).
#[repr(C)]
#[derive(Debug)]
pub struct LockState {
    word: AtomicU64,
    poisoned: AtomicU32,
    _reserved: AtomicU32,
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

/// What an async acquisition carries from one poll to the next.
#[derive(Debug, Default)]
pub(crate) struct LockWait {
    /// The first poll spun already: later polls go straight to waiting.
    spun: bool,
    /// This waiter has set `WAITERS` (it takes the lock with `WAITERS`, so that its unlock
    /// wakes the others, and hands a consumed wake-up on if it is cancelled).
    slept: bool,
    /// When the current slice ends: the holder's liveness is checked once it has passed.
    slice_end: Option<Instant>,
}

/// The low half of a word, as the futex sees it.
#[inline]
fn low(w: u64) -> u32 {
    w as u32
}

impl Default for LockState {
    fn default() -> Self {
        Self::new()
    }
}

impl LockState {
    /// A free, consistent lock (for the heap: tests and the loom model).
    pub fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            poisoned: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        }
    }

    /// The pid currently recorded as holder, 0 if free.
    pub(crate) fn holder(&self) -> u32 {
        // ORDERING: Relaxed, a snapshot used as a hint; nothing is read through it.
        pid_of(self.word.load(Ordering::Relaxed))
    }

    /// Whether the word names `me` (pid and tag) right now.
    pub(crate) fn is_held_by(&self, me: Me) -> bool {
        // ORDERING: Relaxed: if `me` holds the lock, `me` wrote the word itself (program order);
        // if not, no value of the word names it (its unlock withdrew its identity).
        me.is(self.word.load(Ordering::Relaxed))
    }

    fn acquired(&self) -> Acquired {
        // ORDERING: Relaxed, written only by holders; the acquiring CAS (Acquire) and the
        // releasing CAS (Release) order it between holders.
        if self.poisoned.load(Ordering::Relaxed) != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
    }

    fn recovered(&self) -> Acquired {
        // ORDERING: Relaxed, written by the holder only, published by the releasing CAS.
        self.poisoned.store(1, Ordering::Relaxed);
        Acquired::OwnerDied
    }

    /// Whether the holder named by `w` may still run: `false` only when the kernel says it is
    /// dead. Our own identity is alive without asking.
    fn holder_alive(w: u64, me: Me, park: &impl Park) -> bool {
        me.is(w) || park.liveness(pid_of(w), tag_of(w)) != Liveness::Dead
    }

    /// One CAS when free; no syscall.
    #[inline]
    pub(crate) fn try_lock_fast(&self, me: Me) -> Option<Acquired> {
        // ORDERING: Acquire on success, pairs with the Release CAS in `unlock`: the previous
        // holder's writes are visible. Relaxed on failure: nothing was acquired.
        match self
            .word
            .compare_exchange(0, me.word(), Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(self.acquired()),
            Err(_) => None,
        }
    }

    /// Tries once, without sleeping; takes the lock over from a holder the kernel says is dead.
    pub(crate) fn try_lock(&self, me: Me, park: &impl Park) -> Option<Acquired> {
        if let Some(a) = self.try_lock_fast(me) {
            return Some(a);
        }
        for _ in 0..2 {
            // ORDERING: Relaxed, the CAS below carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            let free = pid_of(w) == 0;
            if !free && Self::holder_alive(w, me, park) {
                return None;
            }
            // ORDERING: Acquire on success, pairs with the Release CAS in `unlock` (free) or
            // takes over from the dead holder judged in `w` (the CAS fails if the word moved
            // on). Relaxed on failure: nothing was acquired.
            if self
                .word
                .compare_exchange(
                    w,
                    me.word() | (w & WAITERS),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Some(if free {
                    self.acquired()
                } else {
                    self.recovered()
                });
            }
        }
        None
    }

    /// Acquires, sleeping in slices of `park.slice()` until `deadline` (`None`: no limit), and
    /// re-checking the holder's liveness after every slice that ended without a wake.
    #[inline]
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
        loop {
            // ORDERING: Relaxed, the CAS that acquires carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            if pid_of(w) == 0 {
                // Once slept, take it as contended so that our unlock wakes the others.
                let bits = if slept { WAITERS } else { w & WAITERS };
                // ORDERING: Acquire on success, pairs with the Release CAS in `unlock`.
                // Relaxed on failure: the loop reads the word again.
                if self
                    .word
                    .compare_exchange(w, me.word() | bits, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.acquired());
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
            // ORDERING: Relaxed, announces a sleeper; the futex re-checks the word in the
            // kernel, and the unlock that must wake us reads `WAITERS` with its CAS (a
            // read-modify-write of the same word, so it sees this one or fails).
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
            if !park.wait_low(&self.word, low(sleeping), end) {
                continue;
            }
            if passed(deadline) {
                // One last look, in case it was released as the deadline passed.
                return self.try_lock_fast(me).ok_or(Busy);
            }
            // A whole slice without a wake: is the holder still there?
            // ORDERING: Relaxed, the CAS below carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            if pid_of(w) == 0 || Self::holder_alive(w, me, park) {
                continue;
            }
            // ORDERING: Acquire on success: takes over from the holder the kernel said is
            // dead, and only from it (the CAS fails if the word moved on since `w` was read).
            // Relaxed on failure: the loop reads the word again.
            if self
                .word
                .compare_exchange(w, me.word() | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(self.recovered());
            }
        }
    }

    /// One poll of an async acquisition (the steps of [`lock`](Self::lock), returning
    /// `Pending` where it would sleep): spins on the first poll as `lock` does, then sets
    /// `WAITERS` (the announcement unlock reads) and arms `arm` on the low half of the word as
    /// set, the value its last check read. After a whole slice without the lock, the holder's
    /// liveness is asked once, and a holder the kernel says is dead is taken over as `lock`
    /// does. `Ready(Err(Busy))` once `deadline` has passed.
    pub(crate) fn poll_lock(
        &self,
        me: Me,
        deadline: Option<Instant>,
        wait: &mut LockWait,
        park: &impl Park,
        arm: &mut impl Arm,
    ) -> Poll<Result<Acquired, Busy>> {
        let mut spins = if wait.spun { SPIN_LIMIT } else { 0 };
        let mut checked = false;
        loop {
            // ORDERING: Relaxed, the CAS that acquires carries the Acquire.
            let w = self.word.load(Ordering::Relaxed);
            if pid_of(w) == 0 {
                // Once it has waited, it takes the lock as contended, as `lock_slow` does.
                let bits = if wait.slept { WAITERS } else { w & WAITERS };
                // ORDERING: Acquire on success, pairs with the Release CAS in `unlock`.
                // Relaxed on failure: the loop reads the word again.
                if self
                    .word
                    .compare_exchange(w, me.word() | bits, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Poll::Ready(Ok(self.acquired()));
                }
                continue;
            }
            if spins < SPIN_LIMIT {
                spins += 1;
                spin_hint();
                continue;
            }
            wait.spun = true;
            if passed(deadline) {
                return Poll::Ready(Err(Busy));
            }
            if !checked {
                checked = true;
                let (_, whole_slice) = renew_slice(&mut wait.slice_end, park.slice());
                if whole_slice && !Self::holder_alive(w, me, park) {
                    // ORDERING: Acquire on success: takes over from the holder the kernel said
                    // is dead, and only from it. Relaxed on failure: the loop reads again.
                    if self
                        .word
                        .compare_exchange(
                            w,
                            me.word() | WAITERS,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Poll::Ready(Ok(self.recovered()));
                    }
                    continue;
                }
            }
            let sleeping = w | WAITERS;
            // ORDERING: Relaxed, announces a sleeper, as in `lock_slow`: the kernel compares the
            // word before the waiter thread sleeps, and the unlock that must wake reads
            // `WAITERS` with its CAS (a read-modify-write of the same word).
            if w & WAITERS == 0
                && self
                    .word
                    .compare_exchange(w, sleeping, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            wait.slept = true;
            arm.arm_low(&self.word, low(sleeping), deadline, park.slice());
            return Poll::Pending;
        }
    }

    /// An async acquisition given up (its future dropped): if it had announced itself and the
    /// lock is free now, the unlock's single wake may have gone to this waiter (through the
    /// waiter thread): hand it on to one more sleeper.
    pub(crate) fn cancel_wait(&self, wait: &LockWait, park: &impl Park) {
        if !wait.slept {
            return;
        }
        // ORDERING: Relaxed, a hint: a stray wake costs a sleeper one more look at the word.
        if pid_of(self.word.load(Ordering::Relaxed)) == 0 {
            park.wake_low(&self.word, 1);
        }
    }

    /// Releases, if the word names `me`; wakes one sleeper if one announced itself. Returns
    /// `false` and changes nothing if the word names somebody else (a peer overwrote it, or
    /// the caller is a fork child with a guard of its parent's): an unlock never releases a
    /// lock it does not hold.
    #[inline]
    pub(crate) fn unlock(&self, me: Me, park: &impl Park) -> bool {
        // The common case: our word, nobody waiting.
        // ORDERING: Release on success, pairs with the Acquire CAS of the next holder:
        // publishes every write made under the lock. Relaxed on failure: the slow path reads
        // the word again.
        if self
            .word
            .compare_exchange(me.word(), 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        self.unlock_slow(me, park)
    }

    #[cold]
    fn unlock_slow(&self, me: Me, park: &impl Park) -> bool {
        // ORDERING: Relaxed, the CAS below carries the Release.
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if !me.is(w) {
                return false;
            }
            // ORDERING: Release on success, as in `unlock`. Relaxed on failure: `w` is reloaded
            // and checked again (a waiter may have set `WAITERS` meanwhile).
            match self
                .word
                .compare_exchange(w, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if w & WAITERS != 0 {
                        park.wake_low(&self.word, 1);
                    }
                    return true;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Marks the protected state consistent again after an owner died. Call while holding.
    pub(crate) fn make_consistent(&self) {
        // ORDERING: Relaxed, written by the holder only, published by the releasing CAS.
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
    use crate::sys::PID_MASK;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn threads_exclude_each_other() {
        let lock = Arc::new(LockState::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let me = os::me().unwrap();
                    // A watchdog: no iteration may block for a minute.
                    let watchdog = || Some(Instant::now() + Duration::from_secs(60));
                    for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
                        assert!(lock.lock(me, watchdog(), &Os).is_ok());
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
        let me = os::me().unwrap();
        // A holder pid above the kernel's pid limit never runs.
        let ghost = Me {
            pid: PID_MASK,
            tag: 1,
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
        assert_eq!(lock.try_lock(me, &Os), None);
        assert!(lock.unlock(me, &Os));
    }

    #[test]
    fn unlock_only_releases_its_own_word() {
        let lock = LockState::new();
        let me = os::me().unwrap();
        // Our pid under another start time is somebody else (a process that had our pid).
        let namesake = Me {
            pid: me.pid,
            tag: me.tag ^ 1,
        };
        assert_eq!(lock.try_lock_fast(namesake), Some(Acquired::Clean));
        assert!(!lock.unlock(me, &Os));
        assert!(lock.is_locked());
        assert!(!lock.is_held_by(me));
        // And the kernel says that namesake is dead: taken over.
        assert_eq!(lock.try_lock(me, &Os), Some(Acquired::OwnerDied));
        assert!(lock.is_held_by(me));
        lock.make_consistent();
        assert!(lock.unlock(me, &Os));
        assert!(!lock.is_locked());
    }
}
