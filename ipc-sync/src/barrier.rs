//! `Barrier`: Python's `multiprocessing.Barrier`, which breaks instead of hanging when a party
//! dies.
//!
//! ## State
//!
//! | field        | meaning                                                               |
//! |--------------|-----------------------------------------------------------------------|
//! | `lock`       | robust lock over the other fields                                     |
//! | `word`       | futex word: `generation << 1 | broken`                                 |
//! | `count`      | parties arrived in this generation; their identities are in the slots |
//! | `broken_gen` | `generation + 1` of the last generation `reset` broke (0: none)        |
//! | `timeout`    | the default timeout of `wait`, in nanoseconds plus one (0: none)      |
//! | slots        | per arrival index: the waiting party's identity word (`tag << 32 | pid`, as in the lock word) |
//!
//! | event                  | change                                                  | lock |
//! |------------------------|---------------------------------------------------------|------|
//! | a party arrives        | slot written, `count + 1`                               | yes  |
//! | last party arrives, with an action | its slot written, `count = parties`; runs the action | yes |
//! | last party arrives     | `count = 0`; generation + 1 by one CAS on `word`: every waiter passes | yes  |
//! | abort, timeout, death  | `broken` set by one CAS (or `fetch_or`) on `word`: every waiter and later arrival fails | no   |
//! | `reset`                | `broken_gen = generation + 1`, generation + 1, `count = 0`: waiters fail, the barrier is fresh | yes  |
//!
//! Breaking needs no lock, so a waiter whose deadline passed (or who found a dead party) breaks
//! the barrier at once even while the internal lock is held by a live process that does not run
//! (stopped, descheduled). The last arrival completes the generation by a CAS from the word it
//! read, so a concurrent break and the completion cannot both succeed: the generation either
//! passes or breaks. Only arriving and `reset` take the internal lock; a timed `wait` takes it
//! with its deadline.
//!
//! The action (Python's `Barrier(n, action)`) runs in the last party to arrive, holding the
//! internal lock, before the generation completes, so it runs exactly once per generation that
//! passes and before any party returns; the last party is in the slots (`count = parties`)
//! while it runs, so a waiter notices if it dies there. An action that panics breaks the
//! barrier, and the last party gets `ActionFailed`. A waiter whose deadline passes while the
//! action runs breaks the generation, as any timeout does.
//!
//! Waiters sleep on `word` in slices and, after each slice without a wake, check the recorded
//! identities of the waiting parties: one the kernel says is dead breaks the barrier. A party's
//! identity (pid and start-time tag) is one 64-bit word written by one atomic store, so a scan
//! never pairs one party's pid with another's start time; a party whose liveness the kernel
//! cannot report (`Unknown`), or that is stopped, is alive.

use std::any::TypeId;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ipc_core::raw::reactor::Registration;
use ipc_core::{CreateError, OpenError, Placement};

use crate::error::{BarrierResetError, BarrierWaitError};
use crate::lock;
use crate::object::{Shared, SharedState, shared_object};
use crate::os::{self, Os};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::raw_lock::{Acquired, LockState};
use crate::sys::{
    Liveness, Park, SLICE, deadline_after, passed, pid_of, renew_slice, slice_end, tag_of,
};

const KIND: &str = "Barrier";
const GEN_MASK: u32 = u32::MAX >> 1;
/// The largest number of parties.
pub const MAX_PARTIES: u32 = 1 << 16;

/// The shared state of a [`Barrier`] (40 bytes, atomics only, every bit pattern handled).
#[repr(C)]
#[derive(Debug)]
pub struct BarrierState {
    lock: LockState,
    word: AtomicU32,
    parties: AtomicU32,
    count: AtomicU32,
    broken_gen: AtomicU32,
    timeout: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<BarrierState>() == 40);

// SAFETY: `#[repr(C)]`, atomics only.
unsafe impl SharedState for BarrierState {}

/// What a [`Barrier`] runs when it trips (Python's `Barrier(n, action)`): `run` is called by
/// exactly one party — the last to arrive — once per generation, before any party returns.
///
/// The action is a type, not a closure, so that it travels with the barrier: a child process
/// that receives a `Barrier<MyAction>` runs the same `MyAction::run` if it is the last to arrive
/// (its type is part of the barrier's fingerprint, so a `Barrier` of another action, or of none,
/// does not open it). It runs holding the barrier's internal lock: it must not call `wait`,
/// `reset` or `reset_timeout` on the same barrier (`abort`, `n_waiting` and `is_broken` take no
/// lock). If it panics, the barrier breaks and the last party gets
/// [`BarrierWaitError::ActionFailed`].
///
/// ```
/// use ipc_sync::{Barrier, BarrierAction};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static TRIPS: AtomicU32 = AtomicU32::new(0);
/// struct CountTrips;
/// impl BarrierAction for CountTrips {
///     fn run() {
///         TRIPS.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let b = Barrier::builder(1).action::<CountTrips>().build()?;
/// b.wait()?;
/// b.wait()?;
/// assert_eq!(TRIPS.load(Ordering::Relaxed), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "action")]
pub trait BarrierAction: 'static {
    /// Runs once when the barrier trips, in the last party to arrive.
    fn run();
}

/// The action of a plain [`Barrier`]: none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAction {}

impl BarrierAction for NoAction {
    fn run() {}
}

/// A barrier for a fixed number of parties: each `wait` blocks until all have called it, then
/// all return, each with its arrival index (0 for the first, `parties - 1` for the last).
///
/// A party that dies while others wait, a `wait` that times out, or `abort` break the barrier:
/// waiters and later arrivals get [`BarrierWaitError`] until `reset`. An action (`A`, see
/// [`BarrierAction`]) and a default timeout for `wait` are set with [`builder`](Self::builder),
/// as Python's `Barrier(parties, action, timeout)`. A child receives the barrier, action type
/// included, by deserialising it (`fn child(b: Barrier<MyAction>)`); to attach a plain barrier
/// by its handle, write `<Barrier>::open(&handle)` (the angle brackets apply the default
/// `NoAction`), and `Barrier::<MyAction>::open(&handle)` for one with an action.
///
/// ```
/// use ipc_sync::{Barrier, BarrierWaitError};
/// use std::time::Duration;
///
/// let b = Barrier::new(1)?;
/// assert_eq!(b.wait(), Ok(0)); // one party: passes at once
///
/// let b = Barrier::new(2)?;
/// assert_eq!(b.wait_timeout(Duration::from_millis(10)), Err(BarrierWaitError::TimedOut));
/// assert!(b.is_broken());
/// b.reset();
/// assert!(!b.is_broken());
///
/// // Python: Barrier(2, timeout=0.01): `wait` uses the default timeout.
/// let b = Barrier::builder(2).timeout(Duration::from_millis(10)).build()?;
/// assert_eq!(b.wait(), Err(BarrierWaitError::TimedOut));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier<A: BarrierAction = NoAction> {
    shm: Shared<BarrierState, u64>,
    parties: u32,
    _action: PhantomData<fn() -> A>,
}

impl<A: BarrierAction> fmt::Debug for Barrier<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .field("action", &std::any::type_name::<A>())
            .finish()
    }
}

/// Builds a [`Barrier`] with a default timeout, an action, or a placement:
/// Python's `Barrier(parties, action=None, timeout=None)`.
///
/// ```
/// use ipc_sync::{Barrier, Placement};
/// use std::time::Duration;
///
/// let b = Barrier::builder(3)
///     .timeout(Duration::from_secs(5))
///     .placement(Placement::NamedRandom)
///     .build()?;
/// assert_eq!(b.timeout(), Some(Duration::from_secs(5)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Debug)]
pub struct BarrierBuilder<A: BarrierAction = NoAction> {
    parties: u32,
    timeout: Option<Duration>,
    placement: Placement,
    _action: PhantomData<fn() -> A>,
}

impl<A: BarrierAction> BarrierBuilder<A> {
    /// The default timeout of [`wait`](Barrier::wait) (Python's `timeout=`); without it,
    /// `wait` waits as long as no party dies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Where to create the barrier (anonymous by default).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// The action the last party to arrive runs (Python's `action=`).
    pub fn action<B: BarrierAction>(self) -> BarrierBuilder<B> {
        BarrierBuilder {
            parties: self.parties,
            timeout: self.timeout,
            placement: self.placement,
            _action: PhantomData,
        }
    }

    /// Creates the barrier: `InvalidSize` unless there are 1 to 65536 parties.
    pub fn build(self) -> Result<Barrier<A>, CreateError> {
        let parties = self.parties;
        if parties == 0 || parties > MAX_PARTIES {
            return Err(CreateError::InvalidSize {
                size: u64::from(parties),
            });
        }
        let timeout = self.timeout.map_or(0, |t| {
            u64::try_from(t.as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_add(1)
        });
        let kind = Barrier::<A>::kind_name();
        let shm = Shared::create(
            &kind,
            &self.placement,
            parties as usize,
            |st: &BarrierState, _| {
                // ORDERING: Relaxed, published by the segment header's Release store.
                st.parties.store(parties, Ordering::Relaxed);
                // ORDERING: Relaxed, as above.
                st.timeout.store(timeout, Ordering::Relaxed);
            },
        )?;
        Ok(Barrier {
            shm,
            parties,
            _action: PhantomData,
        })
    }
}

impl Barrier {
    /// A barrier for `parties` (1 to 65536) parties, with no action and no default timeout, in
    /// a new anonymous segment.
    pub fn new(parties: u32) -> Result<Self, CreateError> {
        Self::builder(parties).build()
    }

    /// A barrier with no action and no default timeout, placed as asked.
    pub fn create(placement: &Placement, parties: u32) -> Result<Self, CreateError> {
        Self::builder(parties).placement(placement.clone()).build()
    }

    /// A builder for a barrier of `parties` parties, to give it a default timeout, an action
    /// or a placement.
    pub fn builder(parties: u32) -> BarrierBuilder {
        BarrierBuilder {
            parties,
            timeout: None,
            placement: Placement::Anonymous,
            _action: PhantomData,
        }
    }
}

impl<A: BarrierAction> Barrier<A> {
    /// The fingerprint kind: the action's type is part of it.
    fn kind_name() -> String {
        if TypeId::of::<A>() == TypeId::of::<NoAction>() {
            KIND.to_owned()
        } else {
            format!("{KIND}<{}>", std::any::type_name::<A>())
        }
    }

    fn checked(shm: Shared<BarrierState, u64>) -> Result<Self, OpenError> {
        // ORDERING: Relaxed, written before the segment was published (header Acquire).
        let parties = shm.state().parties.load(Ordering::Relaxed);
        if parties == 0 || parties > MAX_PARTIES || shm.len() != parties as usize {
            return Err(OpenError::Corrupted {
                what: "barrier party count does not match its slots",
            });
        }
        Ok(Self {
            shm,
            parties,
            _action: PhantomData,
        })
    }

    /// The default timeout of [`wait`](Self::wait), if the barrier was built with one
    /// (Python's `timeout` argument).
    pub fn timeout(&self) -> Option<Duration> {
        // ORDERING: Relaxed, written before the segment was published (header Acquire).
        match self.st().timeout.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_nanos(t - 1)),
        }
    }

    fn st(&self) -> &BarrierState {
        self.shm.state()
    }

    /// The number of parties (Python's `parties`).
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Parties waiting now (0 when broken; a snapshot; Python's `n_waiting`).
    pub fn n_waiting(&self) -> u32 {
        if self.is_broken() {
            return 0;
        }
        // ORDERING: Relaxed, a snapshot.
        self.st().count.load(Ordering::Relaxed).min(self.parties)
    }

    /// Whether the barrier is broken.
    #[doc(alias = "broken")]
    pub fn is_broken(&self) -> bool {
        // ORDERING: Relaxed, a snapshot.
        self.st().word.load(Ordering::Relaxed) & 1 != 0
    }

    /// Runs `f` holding the internal lock, taken until `deadline` (`None`: no limit); `None` if
    /// the deadline passed first. A holder that died inside breaks the barrier, since the
    /// fields may be half updated.
    fn locked<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&BarrierState) -> R,
    ) -> Option<R> {
        let st = self.st();
        let a = match deadline {
            None => lock::acquire(&st.lock),
            Some(d) => lock::acquire_until(&st.lock, d)?,
        };
        if a == Acquired::OwnerDied {
            self.break_now();
            st.lock.make_consistent();
        }
        let r = f(st);
        lock::release(&st.lock);
        Some(r)
    }

    /// Sets `broken` on whatever generation is current and wakes every waiter. No lock.
    fn break_now(&self) {
        let st = self.st();
        // ORDERING: Release, pairs with the Acquire load of waiters: they see the barrier
        // broken. A read-modify-write, so it cannot be lost to the completing CAS (which then
        // fails) or lose one.
        st.word.fetch_or(1, Ordering::Release);
        Os.wake(&st.word, u32::MAX);
    }

    /// The identity slot of arrival `index` (clamped to the last party).
    fn slot(&self, index: u32) -> &AtomicU64 {
        let i = index.min(self.parties - 1) as usize;
        // SAFETY: `i < parties == len`, inside the validated payload; elements are u64s,
        // 8-aligned; the mapping lives as long as `self`; every access to the slots is atomic.
        unsafe { AtomicU64::from_ptr(self.shm.data().add(i)) }
    }

    /// Blocks until every party has arrived; returns this party's arrival index. If the
    /// barrier was built with a default [`timeout`](Self::timeout), it bounds the wait, as in
    /// [`wait_timeout`](Self::wait_timeout) (Python's `wait()` with the barrier's timeout).
    pub fn wait(&self) -> Result<u32, BarrierWaitError> {
        self.wait_inner(self.timeout().map(deadline_after))
    }

    /// As [`wait`](Self::wait), at most `timeout`; when it passes, the barrier breaks (as in
    /// Python) and this call returns [`BarrierWaitError::TimedOut`]. Every internal wait ends
    /// by then, including the one for the internal lock (held for a few instructions by each
    /// arriving party, but possibly by one that is stopped): a call that could not even arrive
    /// in time breaks the barrier all the same.
    #[doc(alias = "wait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierWaitError> {
        self.wait_inner(Some(deadline_after(timeout)))
    }

    /// As [`wait_timeout`](Self::wait_timeout), until `deadline`.
    #[doc(alias = "wait")]
    pub fn wait_deadline(&self, deadline: Instant) -> Result<u32, BarrierWaitError> {
        self.wait_inner(Some(deadline))
    }

    /// The async form of [`wait`](Self::wait): a future that is ready once every party has
    /// arrived, for any executor (with the barrier's default timeout, if it has one).
    ///
    /// A party that stops waiting breaks the barrier for the others, as a timeout does:
    /// dropping the future after it has arrived (a runtime's timeout, a `select!` that took
    /// another branch) breaks the current generation, so the other parties get
    /// [`BarrierWaitError::Broken`] instead of waiting for a party that left. Dropped before it
    /// arrived (while it waits for the internal lock), it changes nothing. A party that dies
    /// breaks the barrier within a slice, as for `wait`.
    ///
    /// ```
    /// use ipc_sync::Barrier;
    ///
    /// let b = Barrier::new(1)?;
    /// assert_eq!(futures::executor::block_on(b.wait_async()), Ok(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "wait")]
    pub fn wait_async(&self) -> impl Future<Output = Result<u32, BarrierWaitError>> + Send + '_ {
        self.wait_until_async(self.timeout().map(deadline_after))
    }

    /// The async form of [`wait_timeout`](Self::wait_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "wait")]
    pub fn wait_timeout_async(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<u32, BarrierWaitError>> + Send + '_ {
        self.wait_until_async(Some(deadline_after(timeout)))
    }

    /// The async form of [`wait_deadline`](Self::wait_deadline).
    #[doc(alias = "wait")]
    pub fn wait_deadline_async(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<u32, BarrierWaitError>> + Send + '_ {
        self.wait_until_async(Some(deadline))
    }

    async fn wait_until_async(&self, deadline: Option<Instant>) -> Result<u32, BarrierWaitError> {
        let Some(me) = crate::future::me_async(deadline).await else {
            self.break_now();
            return Err(BarrierWaitError::TimedOut);
        };
        let st = self.st();
        let Some(a) = crate::future::LockFuture::new(&st.lock, deadline).await else {
            // As in `wait`: a party that cannot even arrive by its deadline breaks the barrier.
            self.break_now();
            return Err(BarrierWaitError::TimedOut);
        };
        // From here to the generation wait there is no await: an arrival is never half made.
        if a == Acquired::OwnerDied {
            self.break_now();
            st.lock.make_consistent();
        }
        let arrival = self.arrive(st, me);
        lock::release(&st.lock);
        let (idx, generation) = arrival?;
        let Some(generation) = generation else {
            return Ok(idx);
        };
        GenerationWait {
            barrier: self,
            idx,
            generation,
            deadline,
            reg: Registration::new(),
            slice_end: None,
            done: false,
        }
        .await
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> Result<u32, BarrierWaitError> {
        // Without this process's identity it cannot be recorded as a party: wait for it until
        // the deadline, as for a lock (see `os.rs`).
        let Some(me) = lock::me_until(deadline) else {
            self.break_now();
            return Err(BarrierWaitError::TimedOut);
        };
        let arrived = self.locked(deadline, |st| self.arrive(st, me));
        let Some(arrival) = arrived else {
            // The internal lock was not free by the deadline (its holder is alive but does not
            // run): a timeout breaks the barrier, as it does for a waiting party.
            self.break_now();
            return Err(BarrierWaitError::TimedOut);
        };
        let (idx, generation) = arrival?;
        let Some(generation) = generation else {
            // The last arrival: the generation passed.
            return Ok(idx);
        };
        let st = self.st();
        loop {
            // ORDERING: Acquire, pairs with the Release stores that complete or break.
            let w = st.word.load(Ordering::Acquire);
            if w >> 1 != generation {
                // ORDERING: Relaxed, written before the generation changed (Release above).
                let reset = st.broken_gen.load(Ordering::Relaxed) == ((generation + 1) & GEN_MASK);
                return if reset {
                    Err(BarrierWaitError::Broken)
                } else {
                    Ok(idx)
                };
            }
            if w & 1 != 0 {
                return Err(BarrierWaitError::Broken);
            }
            if !Os.wait(&st.word, w, slice_end(deadline, SLICE)) {
                continue;
            }
            if passed(deadline) {
                if self.break_generation(generation) {
                    return Err(BarrierWaitError::TimedOut);
                }
                continue;
            }
            if let Some(pid) = self.dead_party() {
                if self.break_generation(generation) {
                    return Err(BarrierWaitError::PeerDied { pid });
                }
            }
        }
    }

    /// Arrives at the barrier, holding the internal lock: `(index, Some(generation))` to wait
    /// for that generation to pass, `(index, None)` for the last party (the generation passed).
    fn arrive(
        &self,
        st: &BarrierState,
        me: crate::sys::Me,
    ) -> Result<(u32, Option<u32>), BarrierWaitError> {
        let parties = self.parties;
        // ORDERING: Relaxed, under the lock.
        let w = st.word.load(Ordering::Relaxed);
        if w & 1 != 0 {
            return Err(BarrierWaitError::Broken);
        }
        let generation = w >> 1;
        // ORDERING: Relaxed, under the lock.
        let idx = st.count.load(Ordering::Relaxed);
        if idx >= parties {
            // Impossible unless a peer wrote it: break rather than trust it.
            self.break_now();
            return Err(BarrierWaitError::Broken);
        }
        if idx + 1 == parties {
            if TypeId::of::<A>() != TypeId::of::<NoAction>() && !self.run_action(idx, me) {
                return Err(BarrierWaitError::ActionFailed);
            }
            // ORDERING: Relaxed, under the lock.
            st.count.store(0, Ordering::Relaxed);
            let next = ((generation + 1) & GEN_MASK) << 1;
            // ORDERING: Release on success, pairs with the Acquire load of waiters: they
            // pass and see what every party wrote before arriving. Relaxed on failure: the
            // word changed since it was read under the lock, which only a break (no lock)
            // can do, so the generation is broken, not passed.
            if st
                .word
                .compare_exchange(w, next, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                return Err(BarrierWaitError::Broken);
            }
            Os.wake(&st.word, u32::MAX);
            return Ok((idx, None));
        }
        // ORDERING: Relaxed, one store of the whole identity; published by the Release
        // store of `count` below.
        self.slot(idx).store(me.word(), Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire load in the liveness scan: the slot
        // written above is visible with the count.
        st.count.store(idx + 1, Ordering::Release);
        Ok((idx, Some(generation)))
    }

    /// Runs the action in the last party to arrive (`idx`), holding the internal lock; `false`
    /// (and the barrier broken) if it panicked.
    fn run_action(&self, idx: u32, me: crate::sys::Me) -> bool {
        let st = self.st();
        // The last party is a waiter like the others while the action runs: in its slot, so a
        // waiter notices if it dies there.
        // ORDERING: Relaxed, one store of the whole identity; published by the Release store
        // of `count` below.
        self.slot(idx).store(me.word(), Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire load in the liveness scan.
        st.count.store(idx + 1, Ordering::Release);
        if std::panic::catch_unwind(A::run).is_ok() {
            return true;
        }
        // ORDERING: Relaxed, under the lock.
        st.count.store(0, Ordering::Relaxed);
        self.break_now();
        false
    }

    /// A waiting party the kernel says is dead, if any. Parties of this process are alive
    /// without asking (as a lock's own holder is), and each other identity is asked once per
    /// scan, so a scan costs one question per other process, not one per party.
    fn dead_party(&self) -> Option<u32> {
        let me = os::me();
        let mut alive = std::collections::HashSet::new();
        // ORDERING: Acquire, pairs with the Release store of `count` at arrival.
        let n = self.st().count.load(Ordering::Acquire).min(self.parties);
        (0..n).find_map(|i| {
            // ORDERING: Relaxed, ordered after the Acquire load of `count` above, which
            // publishes the slots below it. (A slot rewritten by a later generation meanwhile
            // is still one whole identity; `break_generation` ignores a generation that ended.)
            let w = self.slot(i).load(Ordering::Relaxed);
            if me.is_some_and(|me| me.is(w)) || alive.contains(&w) {
                return None;
            }
            if os::liveness(pid_of(w), tag_of(w)) == Liveness::Dead {
                return Some(pid_of(w));
            }
            alive.insert(w);
            None
        })
    }

    /// Breaks `generation` if it is still current (one CAS, no lock); `true` if it is broken
    /// now (by this call or before), `false` if it already ended (passed or was reset).
    fn break_generation(&self, generation: u32) -> bool {
        let st = self.st();
        // ORDERING: Relaxed, the CAS below re-checks the value it acts on.
        let mut w = st.word.load(Ordering::Relaxed);
        loop {
            if w >> 1 != generation {
                return false;
            }
            if w & 1 != 0 {
                return true;
            }
            // ORDERING: Release on success, pairs with the Acquire load of waiters: they see
            // the barrier broken. Relaxed on failure: `w` is reloaded and checked again.
            match st
                .word
                .compare_exchange(w, w | 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    Os.wake(&st.word, u32::MAX);
                    return true;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Breaks the barrier: current and later waiters fail until [`reset`](Self::reset). Takes
    /// no lock, so it never waits.
    pub fn abort(&self) {
        self.break_now();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting now fail with
    /// [`BarrierWaitError::Broken`].
    ///
    /// It takes the internal lock (held for a few instructions by each arriving party, and by
    /// the last one while the action runs) and, as Python's does, waits for it as long as its
    /// holder lives: a party stopped inside its arrival delays `reset` until it runs again.
    /// [`reset_timeout`](Self::reset_timeout) bounds that wait.
    pub fn reset(&self) {
        self.locked(None, Self::reset_locked);
    }

    /// As [`reset`](Self::reset), waiting at most `timeout` for the internal lock; on
    /// `Err(TimedOut)` nothing changed (the barrier is as it was: broken or not).
    #[doc(alias = "reset")]
    pub fn reset_timeout(&self, timeout: Duration) -> Result<(), BarrierResetError> {
        self.reset_deadline(deadline_after(timeout))
    }

    /// As [`reset_timeout`](Self::reset_timeout), until `deadline`.
    pub fn reset_deadline(&self, deadline: Instant) -> Result<(), BarrierResetError> {
        // Without this process's identity the lock cannot be taken: wait for it until the
        // deadline too (see `os.rs`).
        self.locked(Some(deadline), Self::reset_locked)
            .ok_or(BarrierResetError::TimedOut)
    }

    fn reset_locked(st: &BarrierState) {
        // ORDERING: Relaxed, under the lock.
        let w = st.word.load(Ordering::Relaxed);
        let next = ((w >> 1) + 1) & GEN_MASK;
        // ORDERING: Relaxed, published by the Release store of `word` below.
        st.broken_gen.store(next, Ordering::Relaxed);
        // ORDERING: Relaxed, under the lock.
        st.count.store(0, Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire load of waiters.
        st.word.store(next << 1, Ordering::Release);
        Os.wake(&st.word, u32::MAX);
    }
}

/// An arrived party's async wait for its generation to pass (the second half of
/// `Barrier::wait_async`). Dropped before that, it breaks the generation.
struct GenerationWait<'a, A: BarrierAction> {
    barrier: &'a Barrier<A>,
    idx: u32,
    generation: u32,
    deadline: Option<Instant>,
    reg: Registration,
    slice_end: Option<Instant>,
    done: bool,
}

impl<A: BarrierAction> GenerationWait<'_, A> {
    fn finish(&mut self, r: Result<u32, BarrierWaitError>) -> Poll<Result<u32, BarrierWaitError>> {
        self.done = true;
        self.reg.disarm();
        Poll::Ready(r)
    }
}

impl<A: BarrierAction> Future for GenerationWait<'_, A> {
    type Output = Result<u32, BarrierWaitError>;

    /// The steps of `wait_inner`'s loop, returning `Pending` where it sleeps. Every change of
    /// the word is woken unconditionally (no waiter count), so arming on the word as read is
    /// the whole protocol.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(BarrierWaitError::Broken));
        }
        let b = this.barrier;
        let st = b.st();
        let generation = this.generation;
        loop {
            // ORDERING: Acquire, pairs with the Release stores that complete or break.
            let w = st.word.load(Ordering::Acquire);
            if w >> 1 != generation {
                // ORDERING: Relaxed, written before the generation changed (Release above).
                let reset = st.broken_gen.load(Ordering::Relaxed) == ((generation + 1) & GEN_MASK);
                let r = if reset {
                    Err(BarrierWaitError::Broken)
                } else {
                    Ok(this.idx)
                };
                return this.finish(r);
            }
            if w & 1 != 0 {
                return this.finish(Err(BarrierWaitError::Broken));
            }
            if passed(this.deadline) {
                if b.break_generation(generation) {
                    return this.finish(Err(BarrierWaitError::TimedOut));
                }
                continue;
            }
            let (_, whole_slice) = renew_slice(&mut this.slice_end, SLICE);
            if whole_slice {
                if let Some(pid) = b.dead_party() {
                    if b.break_generation(generation) {
                        return this.finish(Err(BarrierWaitError::PeerDied { pid }));
                    }
                    continue;
                }
            }
            this.reg
                .arm_sliced(&st.word, w, this.deadline, SLICE, cx.waker());
            return Poll::Pending;
        }
    }
}

impl<A: BarrierAction> Drop for GenerationWait<'_, A> {
    fn drop(&mut self) {
        if !self.done {
            self.reg.disarm();
            // A party that leaves breaks the generation, as a timeout does.
            self.barrier.break_generation(self.generation);
        }
    }
}

shared_object!(Barrier<A: BarrierAction>: BarrierState[u64] = Self::kind_name(), Self::checked);
