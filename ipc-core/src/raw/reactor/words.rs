//! The futex side of the reactor: registrations of (word, expected value, deadline, waker),
//! deduplicated per (word, value), spread over shards of at most 127 words, each slept on by one
//! waiter thread with `futex_waitv` beside the shard's doorbell.
//!
//! ## The shard's doorbell
//!
//! | who        | under the table lock                                   | after it                     |
//! |------------|--------------------------------------------------------|------------------------------|
//! | the thread | fires what expired, rebuilds if `dirty`, sets `sleeping`, reads the bell `b` | `futex_waitv(bell == b, words...)` |
//! | a registrant | adds its key (`dirty`) or an earlier deadline; if `sleeping`: clears it, must ring | `bell += 1`; `FUTEX_WAKE(bell)` |
//!
//! The registrant takes the lock after the thread read `b` under it, so its increment comes
//! later: either the thread's kernel check sees `bell != b` (the call returns at once) or the
//! thread is asleep and the wake reaches it. A registrant that finds the thread awake (not
//! `sleeping`) rings nothing: the thread takes the lock again before it sleeps, and sees `dirty`.
//! After waking tasks the thread stays awake (lingers) for up to [`LINGER`], until a new key is
//! added: the task it just woke usually waits again at once, and so needs no ring.
//!
//! ## Timers
//!
//! A registration may have a deadline of its own (a timeout: its waker is woken then), and an
//! entry has at most one *slice* timer, shared by its sliced registrations: when it passes, the
//! oldest sliced registration is woken (to check its peers' liveness) and the timer restarts.
//! One task per word and slice is enough to notice a dead peer, since whatever it does about
//! it (a takeover, a break) changes the word and so wakes all the others; and an idle process
//! whose thousand tasks await one word then wakes once per slice, not a thousand times. The
//! slice timers of different words fall on one grid of half a slice, common to the process (a
//! timer fires at the first grid point a whole slice after it starts, so a slice lasts one to
//! one and a half slices): an idle process that awaits many words wakes at most twice per
//! slice, not once per word.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicPtr;
use std::sync::{Mutex, MutexGuard, Once};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::platform::{self, REACTOR_WAITV_MAX, ReactorTimeout, ReactorWaitv, ReactorWaitvEntry};
use crate::primitive::{AtomicU32, Ordering};

/// The words one shard sleeps on besides its doorbell.
pub(super) const SHARD_WORDS: usize = REACTOR_WAITV_MAX - 1;

/// How long a shard's thread stays awake after waking tasks, for the registration that usually
/// follows at once (it then needs no ring).
const LINGER: Duration = Duration::from_micros(20);

/// How long a shard naps between probes where the kernel has no `futex_waitv`.
const NAP: Duration = Duration::from_millis(1);

/// A futex word (by address) and the value a registrant saw in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) addr: usize,
    pub(super) expected: u32,
}

#[derive(Debug)]
struct Waiter {
    waker: Waker,
    /// Its own deadline, if any.
    deadline: Option<Instant>,
    /// It wants a wake-up per slice (shared with the entry's other sliced registrations).
    sliced: bool,
}

/// Every registration of one key: one kernel entry however many tasks wait on it.
#[derive(Debug)]
struct Entry {
    shard: usize,
    /// By id, so the oldest first.
    waiters: BTreeMap<u64, Waiter>,
    /// The shortest slice its sliced registrations asked for.
    slice: Option<Duration>,
    /// When the slice timer fires, and its timer id.
    slice_due: Option<(Instant, u64)>,
}

/// What a shard's timer is for.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Registration `id`'s own deadline.
    Waiter(Key),
    /// The entry's slice.
    Slice(Key),
}

#[derive(Debug)]
struct Shard {
    /// The keys this shard's thread sleeps on (at most [`SHARD_WORDS`]).
    keys: Vec<Key>,
    /// Every timer (registrations' deadlines, entries' slices), earliest first.
    deadlines: BTreeMap<(Instant, u64), Due>,
    /// `keys` changed since the thread last copied them.
    dirty: bool,
    /// The thread is (about to be) asleep: a change it must see needs a ring.
    sleeping: bool,
    /// When the sleeping thread's call times out (`None`: never).
    sleep_until: Option<Instant>,
    doorbell: &'static AtomicU32,
    /// Counts the keys added, for a thread that lingers awake after waking tasks.
    added: &'static AtomicU32,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    shards: Vec<Shard>,
    next_id: u64,
}

/// One process's futex reactor.
#[derive(Debug)]
pub(super) struct Words {
    table: Mutex<Table>,
}

/// This process's reactor; null until first used, and again in a fork child (whose copy of the
/// parent's has no threads).
static CURRENT: AtomicPtr<Words> = AtomicPtr::new(std::ptr::null_mut());
static AT_FORK: Once = Once::new();

extern "C" fn forget_in_child() {
    // ORDERING: Relaxed, the child is single-threaded right after fork. The parent's reactor is
    // leaked in the child: its lock may have been held by a thread that does not exist here.
    CURRENT.store(std::ptr::null_mut(), Ordering::Relaxed);
}

/// This process's reactor, created on first use.
pub(super) fn current() -> &'static Words {
    AT_FORK.call_once(|| platform::at_fork_child(forget_in_child));
    // ORDERING: Acquire, pairs with the Release CAS below: the reactor is fully built.
    let p = CURRENT.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a non-null `CURRENT` was leaked from a `Box` below and is never freed.
        return unsafe { &*p };
    }
    let fresh = Box::into_raw(Box::new(Words {
        table: Mutex::new(Table::default()),
    }));
    // ORDERING: Release on success, publishes the reactor built above; Acquire on failure,
    // pairs with the winner's Release.
    match CURRENT.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::Release,
        Ordering::Acquire,
    ) {
        // SAFETY: `fresh` was just leaked and is never freed.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` was never published; this is its only owner.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as for `p` above.
            unsafe { &*winner }
        }
    }
}

/// Whether `words` is still this process's reactor (not the parent's, in a fork child).
pub(super) fn is_current(words: &'static Words) -> bool {
    // ORDERING: Relaxed, compares pointers only.
    std::ptr::eq(CURRENT.load(Ordering::Relaxed), words)
}

/// Wakes `waker` once the lock is released: wakers can run arbitrary code.
type Wakes = Vec<Waker>;

impl Words {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `waker` for `key`, with its own `deadline` and a share of the entry's `slice`
    /// timer (see the module docs); returns its id, or `None` if no waiter thread could be
    /// started (the waker has been woken: the caller polls again).
    pub(super) fn insert(
        &'static self,
        key: Key,
        deadline: Option<Instant>,
        slice: Option<Duration>,
        waker: &Waker,
    ) -> Option<u64> {
        let mut t = self.lock();
        let id = t.fresh_id();
        let (shard, new_key) = match t.entries.get(&key) {
            Some(e) => (e.shard, false),
            None => match t.shard_with_room(self) {
                Some(s) => (s, true),
                None => {
                    drop(t);
                    waker.wake_by_ref();
                    return None;
                }
            },
        };
        t.entries.entry(key).or_insert_with(|| Entry {
            shard,
            waiters: BTreeMap::new(),
            slice: None,
            slice_due: None,
        });
        let waiter = Waiter {
            waker: waker.clone(),
            deadline,
            sliced: slice.is_some(),
        };
        let mut earliest = t.add_waiter(key, id, waiter);
        if let Some(s) = slice {
            earliest = min_due(earliest, t.share_slice(key, s));
        }
        let sh = &mut t.shards[shard];
        if new_key {
            sh.keys.push(key);
            sh.dirty = true;
            // ORDERING: Relaxed, a hint for a lingering thread (see `linger`).
            sh.added.fetch_add(1, Ordering::Relaxed);
        }
        let ring = sh.must_ring(new_key, earliest);
        drop(t);
        if let Some(bell) = ring {
            ring_bell(bell);
        }
        Some(id)
    }

    /// Updates the waker, deadline and slice of registration `id` of `key`; `false` if it is
    /// gone (fired or never made).
    pub(super) fn update(
        &self,
        key: Key,
        id: u64,
        deadline: Option<Instant>,
        slice: Option<Duration>,
        waker: &Waker,
    ) -> bool {
        let mut t = self.lock();
        let Some(entry) = t.entries.get_mut(&key) else {
            return false;
        };
        let shard = entry.shard;
        let Some(w) = entry.waiters.get_mut(&id) else {
            return false;
        };
        if !w.waker.will_wake(waker) {
            w.waker.clone_from(waker);
        }
        w.sliced = slice.is_some();
        let old = std::mem::replace(&mut w.deadline, deadline);
        let mut earliest = None;
        if old != deadline {
            let sh = &mut t.shards[shard];
            if let Some(o) = old {
                sh.deadlines.remove(&(o, id));
            }
            if let Some(d) = deadline {
                sh.deadlines.insert((d, id), Due::Waiter(key));
                earliest = Some(d);
            }
        }
        if let Some(s) = slice {
            earliest = min_due(earliest, t.share_slice(key, s));
        }
        let ring = t.shards[shard].must_ring(false, earliest);
        drop(t);
        if let Some(bell) = ring {
            ring_bell(bell);
        }
        true
    }

    /// Withdraws registration `id` of `key`, if it has not fired.
    pub(super) fn remove(&self, key: Key, id: u64) {
        let mut t = self.lock();
        let w = t.take_waiter(key, id);
        drop(t);
        // Dropped outside the lock: a waker's drop can run arbitrary code.
        drop(w);
    }

    /// The body of shard `s`'s waiter thread.
    fn run(&'static self, s: usize) {
        let (bell, added) = {
            let t = self.lock();
            (t.shards[s].doorbell, t.shards[s].added)
        };
        let mut snapshot: Vec<Key> = Vec::new();
        let mut kernel: Vec<ReactorWaitvEntry> =
            vec![ReactorWaitvEntry::new(bell.as_ptr() as usize, 0)];
        let mut wakes: Wakes = Vec::new();
        let mut fired: Vec<usize> = Vec::new();
        let mut no_waitv = false;
        loop {
            self.lock().fire_expired(s, Instant::now(), &mut wakes);
            if !wakes.is_empty() {
                // A task just woken usually waits again at once, on a new value of the same
                // word: while the thread lingers awake (not `sleeping`), that registration
                // needs no ring, and the thread takes it into account below. Counted from
                // before the wakes, so a task that registers at once ends the linger at once.
                // ORDERING: Relaxed, a hint: the table lock orders the registration itself.
                let seen = added.load(Ordering::Relaxed);
                for w in wakes.drain(..) {
                    w.wake();
                }
                linger(added, seen);
            }
            let until = {
                let mut t = self.lock();
                let sh = &mut t.shards[s];
                if sh.dirty {
                    snapshot.clone_from(&sh.keys);
                    kernel.truncate(1);
                    kernel.extend(
                        snapshot
                            .iter()
                            .map(|k| ReactorWaitvEntry::new(k.addr, k.expected)),
                    );
                    sh.dirty = false;
                }
                let until = sh.deadlines.first_key_value().map(|(&(d, _), _)| d);
                sh.sleeping = true;
                sh.sleep_until = until;
                // ORDERING: Acquire, pairs with the Release increment in `ring_bell`; read
                // under the lock, so a registrant that rings later (it takes the lock after
                // us) increments past this value.
                kernel[0].set_expected(bell.load(Ordering::Acquire));
                until
            };
            fired.clear();
            if no_waitv {
                // No futex_waitv: nap, then probe every word (one FUTEX_WAIT each).
                let nap = until.map_or(NAP, |u| {
                    u.saturating_duration_since(Instant::now()).min(NAP)
                });
                std::thread::sleep(nap);
                platform::reactor_probe(&kernel[1..], 0, &mut fired);
            } else {
                let timeout = until.map_or(ReactorTimeout::Never, ReactorTimeout::At);
                match platform::reactor_waitv(&kernel, timeout) {
                    ReactorWaitv::Woken(0) | ReactorWaitv::TimedOut | ReactorWaitv::Interrupted => {
                    }
                    ReactorWaitv::Woken(i) => fired.push(i - 1),
                    // Some word differs (or a ring raced the call): find which, in the kernel.
                    ReactorWaitv::ValueChanged | ReactorWaitv::Fault => {
                        platform::reactor_probe(&kernel[1..], 0, &mut fired);
                    }
                    ReactorWaitv::Unsupported => no_waitv = true,
                }
            }
            let mut t = self.lock();
            t.shards[s].sleeping = false;
            for &i in &fired {
                if let Some(&k) = snapshot.get(i) {
                    t.fire_key(k, &mut wakes);
                }
            }
        }
    }
}

/// Stays awake for at most [`LINGER`] after waking tasks, until a registration adds a key to
/// the shard (`added` no longer `seen`), yielding the CPU between looks.
fn linger(added: &AtomicU32, seen: u32) {
    let start = Instant::now();
    // ORDERING: Relaxed, as where `seen` was read.
    while added.load(Ordering::Relaxed) == seen && start.elapsed() < LINGER {
        std::thread::yield_now();
    }
}

#[cfg(test)]
impl Words {
    /// Registrations of every key on the word at `addr` (tests).
    pub(super) fn waiters_on(&self, addr: usize) -> usize {
        let t = self.lock();
        t.entries
            .iter()
            .filter(|(k, _)| k.addr == addr)
            .map(|(_, e)| e.waiters.len())
            .sum()
    }

    /// Registrations of `key` (tests).
    pub(super) fn waiters_of(&self, key: Key) -> usize {
        self.lock().entries.get(&key).map_or(0, |e| e.waiters.len())
    }

    /// Shards started (tests).
    pub(super) fn shard_count(&self) -> usize {
        self.lock().shards.len()
    }
}

impl Shard {
    /// Whether a registration just made (a new key, or this deadline) must interrupt the
    /// sleeping thread; clears `sleeping` if so, and returns the bell to ring after the lock.
    fn must_ring(&mut self, new_key: bool, due: Option<Instant>) -> Option<&'static AtomicU32> {
        let sooner = due.is_some_and(|d| self.sleep_until.is_none_or(|u| d < u));
        if self.sleeping && (new_key || sooner) {
            self.sleeping = false;
            Some(self.doorbell)
        } else {
            None
        }
    }

    fn forget(&mut self, key: Key) {
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            self.keys.swap_remove(i);
            self.dirty = true;
        }
    }
}

impl Table {
    /// A shard with room for one more key, starting a new one (and its thread) if all are full.
    fn shard_with_room(&mut self, words: &'static Words) -> Option<usize> {
        if let Some(s) = self.shards.iter().position(|s| s.keys.len() < SHARD_WORDS) {
            return Some(s);
        }
        let s = self.shards.len();
        let doorbell: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        std::thread::Builder::new()
            .name(format!("ipc-waiter-{s}"))
            .spawn(move || words.run(s))
            .ok()?;
        let added: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        self.shards.push(Shard {
            added,
            keys: Vec::new(),
            deadlines: BTreeMap::new(),
            dirty: false,
            sleeping: false,
            sleep_until: None,
            doorbell,
        });
        Some(s)
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Adds a waiter to the (existing) entry of `key`, with its deadline timer; returns that
    /// deadline.
    fn add_waiter(&mut self, key: Key, id: u64, waiter: Waiter) -> Option<Instant> {
        let deadline = waiter.deadline;
        let entry = self.entries.get_mut(&key)?;
        let shard = entry.shard;
        entry.waiters.insert(id, waiter);
        if let Some(d) = deadline {
            self.shards[shard]
                .deadlines
                .insert((d, id), Due::Waiter(key));
        }
        deadline
    }

    /// Makes sure the entry of `key` has a slice timer no longer than `slice`; returns when it
    /// fires if that is new or sooner than before.
    fn share_slice(&mut self, key: Key, slice: Duration) -> Option<Instant> {
        let due = on_grid(Instant::now() + slice, slice / 2);
        let timer = self.fresh_id();
        let entry = self.entries.get_mut(&key)?;
        entry.slice = Some(entry.slice.map_or(slice, |s| s.min(slice)));
        let shard = entry.shard;
        match entry.slice_due {
            Some((d, _)) if d <= due => None,
            old => {
                entry.slice_due = Some((due, timer));
                let sh = &mut self.shards[shard];
                if let Some(o) = old {
                    sh.deadlines.remove(&o);
                }
                sh.deadlines.insert((due, timer), Due::Slice(key));
                Some(due)
            }
        }
    }

    /// Removes registration `id` of `key` (and its timer, and the entry if it was the last);
    /// returns it.
    fn take_waiter(&mut self, key: Key, id: u64) -> Option<Waiter> {
        let entry = self.entries.get_mut(&key)?;
        let w = entry.waiters.remove(&id)?;
        let shard = entry.shard;
        let empty = entry.waiters.is_empty();
        if let Some(d) = w.deadline {
            self.shards[shard].deadlines.remove(&(d, id));
        }
        if empty {
            self.drop_entry(key);
        }
        Some(w)
    }

    /// Removes the entry of `key` with its slice timer; its shard's thread may sleep on the
    /// word a little longer (a wake for it then finds no entry). Returns its waiters.
    fn drop_entry(&mut self, key: Key) -> BTreeMap<u64, Waiter> {
        let Some(entry) = self.entries.remove(&key) else {
            return BTreeMap::new();
        };
        let sh = &mut self.shards[entry.shard];
        if let Some(due) = entry.slice_due {
            sh.deadlines.remove(&due);
        }
        sh.forget(key);
        entry.waiters
    }

    /// Fires every registration of `key`: its word changed or was woken.
    fn fire_key(&mut self, key: Key, wakes: &mut Wakes) {
        let Some(shard) = self.entries.get(&key).map(|e| e.shard) else {
            return;
        };
        for (id, w) in self.drop_entry(key) {
            if let Some(d) = w.deadline {
                self.shards[shard].deadlines.remove(&(d, id));
            }
            wakes.push(w.waker);
        }
    }

    /// Fires the timers of shard `s` that have passed: a registration's deadline wakes it; an
    /// entry's slice wakes its oldest sliced registration and starts again.
    fn fire_expired(&mut self, s: usize, now: Instant, wakes: &mut Wakes) {
        while let Some(timer) = self.shards[s].deadlines.first_entry() {
            let &(due, id) = timer.key();
            if due > now {
                break;
            }
            match timer.remove() {
                Due::Waiter(key) => {
                    if let Some(w) = self.take_waiter(key, id) {
                        wakes.push(w.waker);
                    }
                }
                Due::Slice(key) => {
                    let Some(entry) = self.entries.get_mut(&key) else {
                        continue;
                    };
                    entry.slice_due = None;
                    let oldest = entry
                        .waiters
                        .iter()
                        .find(|(_, w)| w.sliced)
                        .map(|(&id, _)| id);
                    let slice = entry.slice;
                    if let Some(w) = oldest.and_then(|oldest| self.take_waiter(key, oldest)) {
                        wakes.push(w.waker);
                    }
                    let still_sliced = self
                        .entries
                        .get(&key)
                        .is_some_and(|e| e.waiters.values().any(|w| w.sliced));
                    match slice {
                        Some(slice) if still_sliced => {
                            self.share_slice(key, slice);
                        }
                        _ => {
                            if let Some(e) = self.entries.get_mut(&key) {
                                e.slice = None;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The first point of a grid of `step`, common to the whole process, at or after `at` (`at`
/// itself for a zero step): the slice timers of different words started within one step of
/// each other fire together.
fn on_grid(at: Instant, step: Duration) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let step_ns = step.as_nanos();
    if step_ns == 0 {
        return at;
    }
    let steps = at
        .saturating_duration_since(origin)
        .as_nanos()
        .div_ceil(step_ns);
    // At most `at + step`, so within `Instant`'s range wherever `at` is.
    match u64::try_from(steps.saturating_mul(step_ns)) {
        Ok(ns) => origin + Duration::from_nanos(ns),
        Err(_) => at,
    }
}

/// The earlier of two optional instants.
fn min_due(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Interrupts a shard's thread (see the module docs).
fn ring_bell(bell: &AtomicU32) {
    // ORDERING: Release, pairs with the Acquire load of the thread; the change itself was made
    // under the table lock, which the thread takes before it reads anything of it.
    bell.fetch_add(1, Ordering::Release);
    platform::futex_wake(bell, 1);
}
