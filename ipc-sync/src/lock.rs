//! `Lock`: a robust cross-process mutual-exclusion lock, Python's `multiprocessing.Lock` that
//! survives the death of its holder.

use std::fmt;
use std::future::Future;
use std::time::Instant;

use ipc_core::{CreateError, Placement};

use crate::error::{LockTimeoutError, OwnerDied, TryLockError};
use crate::object::{Shared, shared_object};
use crate::os::{self, Os};
use crate::raw_lock::{Acquired, LockState};
use crate::sys::{Me, SLICE, passed, slice_end};

pub(crate) const KIND: &str = "Lock";

/// This process's identity, waiting for it in slices until `deadline` (`None`: no limit) if it
/// cannot be read now (a fork child at its descriptor limit; see `os.rs`). `None` once the
/// deadline passed without it.
pub(crate) fn me_until(deadline: Option<Instant>) -> Option<Me> {
    loop {
        if let Some(me) = os::me() {
            return Some(me);
        }
        if passed(deadline) {
            return None;
        }
        let end = slice_end(deadline, SLICE);
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
    }
}

/// Acquires `state` with no deadline.
pub(crate) fn acquire(state: &LockState) -> Acquired {
    loop {
        if let Some(a) = acquire_inner(state, None) {
            return a;
        }
    }
}

/// Acquires `state` until `deadline`.
pub(crate) fn acquire_until(state: &LockState, deadline: Instant) -> Option<Acquired> {
    acquire_inner(state, Some(deadline))
}

fn acquire_inner(state: &LockState, deadline: Option<Instant>) -> Option<Acquired> {
    state.lock(me_until(deadline)?, deadline, &Os).ok()
}

/// Tries to acquire `state` once; without this process's identity, reports it busy.
pub(crate) fn acquire_now(state: &LockState) -> Option<Acquired> {
    state.try_lock(os::me()?, &Os)
}

/// Releases `state`; `false` (and nothing changed) if the word names another holder, or this
/// process's identity cannot be read (then it cannot have locked it either).
pub(crate) fn release(state: &LockState) -> bool {
    os::me().is_some_and(|me| state.unlock(me, &Os))
}

/// Wraps a freshly made guard according to how the lock was acquired.
pub(crate) fn wrap<G>(a: Acquired, guard: G) -> Result<G, OwnerDied<G>> {
    match a {
        Acquired::Clean => Ok(guard),
        Acquired::OwnerDied => Err(OwnerDied::new(guard)),
    }
}

/// A lock as the generated lock methods see it: how to take it and what guard it gives. The
/// robust lock in a segment (`&LockState`) gives a [`LockGuard`]; a lock ref that may be a
/// supplied lock (`crate::supplied::LockRef`) gives whichever guard that lock gives.
pub(crate) trait Acquire<'a>: Copy {
    /// The guard that holds the lock.
    type Guard;
    /// Blocks until acquired (see the generated `lock`).
    fn lock(self) -> Result<Self::Guard, OwnerDied<Self::Guard>>;
    /// Never blocks.
    fn try_lock(self) -> Result<Self::Guard, TryLockError<Self::Guard>>;
    /// Blocks at most until `deadline`.
    fn lock_deadline(self, deadline: Instant)
    -> Result<Self::Guard, LockTimeoutError<Self::Guard>>;
    /// Whether somebody holds it (a snapshot).
    fn is_locked(self) -> bool;
    /// Whether it is marked inconsistent.
    fn is_poisoned(self) -> bool;
    /// Acquires from a future, until `deadline` (`None`: no limit; then it never returns
    /// `TimedOut`). Dropped while pending, it holds nothing.
    fn lock_until_async(
        self,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Self::Guard, LockTimeoutError<Self::Guard>>> + Send + 'a;
}

impl<'a> Acquire<'a> for &'a LockState {
    type Guard = LockGuard<'a>;

    #[inline]
    fn lock(self) -> Result<LockGuard<'a>, OwnerDied<LockGuard<'a>>> {
        wrap(acquire(self), LockGuard { state: self })
    }

    fn try_lock(self) -> Result<LockGuard<'a>, TryLockError<LockGuard<'a>>> {
        match acquire_now(self) {
            Some(a) => Ok(wrap(a, LockGuard { state: self })?),
            None => Err(TryLockError::WouldBlock),
        }
    }

    fn lock_deadline(
        self,
        deadline: Instant,
    ) -> Result<LockGuard<'a>, LockTimeoutError<LockGuard<'a>>> {
        match acquire_until(self, deadline) {
            Some(a) => Ok(wrap(a, LockGuard { state: self })?),
            None => Err(LockTimeoutError::TimedOut),
        }
    }

    fn is_locked(self) -> bool {
        LockState::is_locked(self)
    }

    fn is_poisoned(self) -> bool {
        LockState::is_poisoned(self)
    }

    async fn lock_until_async(
        self,
        deadline: Option<Instant>,
    ) -> Result<LockGuard<'a>, LockTimeoutError<LockGuard<'a>>> {
        // A free lock is taken without the future's set-up, as `lock` does.
        if let Some(a) = os::me().and_then(|me| self.try_lock_fast(me)) {
            return Ok(wrap(a, LockGuard { state: self })?);
        }
        match crate::future::LockFuture::new(self, deadline).await {
            Some(a) => Ok(wrap(a, LockGuard { state: self })?),
            None => Err(LockTimeoutError::TimedOut),
        }
    }
}

/// Generates `lock`, `try_lock`, `lock_timeout`, `lock_deadline`, `is_locked` and
/// `is_poisoned` for a type with `lock_ref(&self) -> impl Acquire` and
/// `make_guard(&self, <that lock's guard>) -> $guard`.
macro_rules! lock_methods {
    ($guard:ty) => {
        /// Acquires the lock, blocking as long as another process or thread holds it. A holder
        /// that dies (even by SIGKILL) is noticed within a few tens of milliseconds: the lock is
        /// then taken over and `Err(OwnerDied)` carries the guard. A holder that is alive —
        /// stopped, descheduled, or one whose liveness the kernel cannot report — keeps it.
        #[doc(alias = "acquire")]
        #[inline]
        pub fn lock(&self) -> Result<$guard, $crate::OwnerDied<$guard>> {
            match $crate::lock::Acquire::lock(self.lock_ref()) {
                Ok(g) => Ok(self.make_guard(g)),
                Err(e) => Err(e.map(|g| self.make_guard(g))),
            }
        }

        /// Acquires the lock if it is free (or the kernel says its holder is dead) now; never
        /// blocks. `WouldBlock` also when this process cannot read its own identity (its start
        /// time; only a fork child at its descriptor limit can fail to), since a lock is never
        /// taken under an invented one.
        #[doc(alias = "acquire")]
        pub fn try_lock(&self) -> Result<$guard, $crate::TryLockError<$guard>> {
            match $crate::lock::Acquire::try_lock(self.lock_ref()) {
                Ok(g) => Ok(self.make_guard(g)),
                Err(e) => Err(e.map(|g| self.make_guard(g))),
            }
        }

        /// Acquires the lock, blocking at most `timeout` (every internal wait, including one
        /// for this process's own identity, ends by then).
        #[doc(alias = "acquire")]
        pub fn lock_timeout(
            &self,
            timeout: std::time::Duration,
        ) -> Result<$guard, $crate::LockTimeoutError<$guard>> {
            self.lock_deadline($crate::sys::deadline_after(timeout))
        }

        /// Acquires the lock, blocking at most until `deadline`.
        #[doc(alias = "acquire")]
        pub fn lock_deadline(
            &self,
            deadline: std::time::Instant,
        ) -> Result<$guard, $crate::LockTimeoutError<$guard>> {
            match $crate::lock::Acquire::lock_deadline(self.lock_ref(), deadline) {
                Ok(g) => Ok(self.make_guard(g)),
                Err(e) => Err(e.map(|g| self.make_guard(g))),
            }
        }

        /// The async form of [`lock`](Self::lock): a future that acquires the lock, for any
        /// executor. Waiting costs no thread of the caller's: the task is woken by the unlock
        /// (through `ipc_core::raw::reactor`'s waiter thread), and every slice to check that
        /// the holder still runs, so a holder that dies ends the await with `Err(OwnerDied)`
        /// as it ends a blocking `lock`. It spins briefly on its first poll, as `lock` does.
        /// Dropping the future before it is ready takes nothing: a runtime's timeout
        /// (`tokio::time::timeout(d, lock.lock_async())`) cancels cleanly.
        #[doc(alias = "acquire")]
        pub fn lock_async(
            &self,
        ) -> impl std::future::Future<Output = Result<$guard, $crate::OwnerDied<$guard>>> + '_ {
            async move {
                loop {
                    match $crate::lock::Acquire::lock_until_async(self.lock_ref(), None).await {
                        Ok(g) => return Ok(self.make_guard(g)),
                        Err($crate::LockTimeoutError::OwnerDied(e)) => {
                            return Err(e.map(|g| self.make_guard(g)));
                        }
                        // Without a deadline the wait does not time out; should it ever
                        // return so, it is simply taken up again.
                        Err(_) => {}
                    }
                }
            }
        }

        /// The async form of [`lock_timeout`](Self::lock_timeout): `Err(TimedOut)` once
        /// `timeout` (counted from this call) has passed without the lock.
        #[doc(alias = "acquire")]
        pub fn lock_timeout_async(
            &self,
            timeout: std::time::Duration,
        ) -> impl std::future::Future<Output = Result<$guard, $crate::LockTimeoutError<$guard>>> + '_
        {
            self.lock_deadline_async($crate::sys::deadline_after(timeout))
        }

        /// The async form of [`lock_deadline`](Self::lock_deadline).
        #[doc(alias = "acquire")]
        pub fn lock_deadline_async(
            &self,
            deadline: std::time::Instant,
        ) -> impl std::future::Future<Output = Result<$guard, $crate::LockTimeoutError<$guard>>> + '_
        {
            async move {
                match $crate::lock::Acquire::lock_until_async(self.lock_ref(), Some(deadline)).await
                {
                    Ok(g) => Ok(self.make_guard(g)),
                    Err(e) => Err(e.map(|g| self.make_guard(g))),
                }
            }
        }

        /// Whether some holder has the lock right now (a snapshot, for diagnostics; Python's
        /// `locked()`).
        #[doc(alias = "locked")]
        pub fn is_locked(&self) -> bool {
            $crate::lock::Acquire::is_locked(self.lock_ref())
        }

        /// Whether the lock is marked inconsistent: a holder died and nobody has called
        /// `make_consistent` since.
        pub fn is_poisoned(&self) -> bool {
            $crate::lock::Acquire::is_poisoned(self.lock_ref())
        }
    };
}
pub(crate) use lock_methods;

/// A robust lock in shared memory, usable from every process that holds its handle.
///
/// Uncontended `lock` and unlock are one atomic instruction each, with no syscall. A waiter
/// sleeps on a shared futex and is woken by the unlock; it also wakes every 25 ms to check that
/// the holder still runs, so a holder killed by SIGKILL hands the lock on with
/// [`OwnerDied`](crate::OwnerDied) instead of hanging everybody.
///
/// ```
/// use ipc_sync::Lock;
/// use std::time::Duration;
///
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.lock().unwrap();
///     assert!(lock.try_lock().is_err());
///     assert!(lock.lock_timeout(Duration::from_millis(10)).is_err());
/// }
/// assert!(lock.try_lock().is_ok());
///
/// // A child process attaches through the handle (or by deserialising the lock).
/// let same = Lock::open(&lock.handle())?;
/// let _g = same.lock().unwrap();
/// assert!(lock.is_locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lock {
    shm: Shared<LockState, u8>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("holder", &self.lock_state().holder())
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

impl Lock {
    /// A free lock placed as asked (anonymous, or named for unrelated processes).
    pub fn create(placement: &Placement) -> Result<Self, CreateError> {
        let shm = Shared::create(KIND, placement, 0, |_, _| {})?;
        Ok(Self { shm })
    }

    pub(crate) fn lock_state(&self) -> &LockState {
        self.shm.state()
    }

    fn lock_ref(&self) -> &LockState {
        self.lock_state()
    }

    #[inline]
    fn make_guard<'a>(&'a self, g: LockGuard<'a>) -> LockGuard<'a> {
        g
    }

    lock_methods!(LockGuard<'_>);
}

shared_object!(Lock: LockState[u8] = KIND; new() "A free lock in a new anonymous segment.");

/// Holds a [`Lock`] (or the lock of a `Condition`); releases it when dropped (Python's
/// `release()`, or the end of a `with lock:` block).
#[doc(alias = "release")]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    pub(crate) state: &'a LockState,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard { .. }")
    }
}

impl LockGuard<'_> {
    /// Marks the protected state consistent again after [`OwnerDied`](crate::OwnerDied): later
    /// acquirers get a clean guard.
    pub fn make_consistent(&self) {
        self.state.make_consistent();
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        release(self.state);
    }
}
