//! Errors of the blocking operations. Creating and opening use [`CreateError`](crate::CreateError)
//! and [`OpenError`](crate::OpenError), `ipc_core`'s, re-exported at the crate root.

use std::fmt;

/// The lock was acquired, but a previous holder died while holding it (glibc's `EOWNERDEAD`,
/// iceoryx2's `LockAcquiredButOwnerDied`, std's poisoning). The guard inside holds the lock: take
/// it with [`into_inner`](Self::into_inner), repair the protected data, then call the guard's
/// `make_consistent`; until then every later acquirer is told the same.
///
/// ```
/// let lock = ipc_sync::Lock::new()?;
/// let guard = match lock.lock() {
///     Ok(g) => g,
///     Err(died) => {
///         let g = died.into_inner();
///         // ... repair what the dead holder left half done ...
///         g.make_consistent();
///         g
///     }
/// };
/// drop(guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "EOWNERDEAD")]
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        Self { guard }
    }

    /// The same signal around another guard made from this one.
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> OwnerDied<H> {
        OwnerDied::new(f(self.guard))
    }

    /// The guard: the lock is held.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// The guard, borrowed.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// The guard, borrowed mutably.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied { .. }")
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "lock acquired, but a previous holder died while holding it: the protected state may \
             be inconsistent",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// `try_lock` did not return a clean guard.
#[non_exhaustive]
pub enum TryLockError<G> {
    /// Another holder has it.
    WouldBlock,
    /// Acquired, but a previous holder died holding it.
    OwnerDied(OwnerDied<G>),
}

impl<G> TryLockError<G> {
    /// The same error around another guard made from this one.
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> TryLockError<H> {
        match self {
            Self::WouldBlock => TryLockError::WouldBlock,
            Self::OwnerDied(e) => TryLockError::OwnerDied(e.map(f)),
        }
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("WouldBlock"),
            Self::OwnerDied(_) => f.write_str("OwnerDied(..)"),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("the lock is held by another holder"),
            Self::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        Self::OwnerDied(e)
    }
}

/// `lock_timeout` (or `lock_deadline`) did not return a clean guard.
#[non_exhaustive]
pub enum LockTimeoutError<G> {
    /// The deadline passed while another holder had it.
    TimedOut,
    /// Acquired, but a previous holder died holding it.
    OwnerDied(OwnerDied<G>),
}

impl<G> LockTimeoutError<G> {
    /// The same error around another guard made from this one.
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> LockTimeoutError<H> {
        match self {
            Self::TimedOut => LockTimeoutError::TimedOut,
            Self::OwnerDied(e) => LockTimeoutError::OwnerDied(e.map(f)),
        }
    }
}

impl<G> fmt::Debug for LockTimeoutError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("TimedOut"),
            Self::OwnerDied(_) => f.write_str("OwnerDied(..)"),
        }
    }
}

impl<G> fmt::Display for LockTimeoutError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("timed out waiting for the lock"),
            Self::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for LockTimeoutError<G> {}

impl<G> From<OwnerDied<G>> for LockTimeoutError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        Self::OwnerDied(e)
    }
}

/// `Semaphore::release` was refused; the count is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A `BoundedSemaphore` would pass its initial value (Python's `ValueError`).
    PastBound {
        /// The bound (the initial value).
        bound: u32,
    },
    /// The count would pass `u32::MAX`.
    Overflow,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PastBound { bound } => write!(
                f,
                "semaphore released too many times: the count would pass its bound {bound}"
            ),
            Self::Overflow => f.write_str("semaphore count would overflow u32"),
        }
    }
}

impl std::error::Error for ReleaseError {}

/// `ReentrantLock` guard released by a thread or process that is not the recorded owner (the
/// shared state was overwritten); nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

impl fmt::Display for NotOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("release of a reentrant lock by a thread that does not own it")
    }
}

impl std::error::Error for NotOwner {}

/// `Barrier::wait` did not pass.
#[doc(alias = "BrokenBarrierError")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierWaitError {
    /// The barrier is broken: aborted, reset while this party waited, timed out elsewhere, or a
    /// party died (Python's `BrokenBarrierError`). `reset` repairs it.
    Broken,
    /// A waiting party died; this call broke the barrier.
    PeerDied {
        /// The dead party's pid.
        pid: u32,
    },
    /// This call's deadline passed; as in Python, the barrier is now broken for the others.
    TimedOut,
    /// This party was the last to arrive and the barrier's action panicked: the barrier is
    /// broken (Python raises the action's exception in that party and breaks the barrier).
    ActionFailed,
}

impl fmt::Display for BarrierWaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broken => f.write_str("the barrier is broken"),
            Self::PeerDied { pid } => {
                write!(f, "party {pid} died while waiting: the barrier is broken")
            }
            Self::TimedOut => f.write_str("timed out at the barrier: the barrier is now broken"),
            Self::ActionFailed => {
                f.write_str("the barrier's action panicked: the barrier is now broken")
            }
        }
    }
}

impl std::error::Error for BarrierWaitError {}

/// `Barrier::reset_timeout` did not reset the barrier; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierResetError {
    /// The barrier's internal lock was held past the deadline (by a live party that does not
    /// run: stopped, or descheduled inside its arrival).
    TimedOut,
}

impl fmt::Display for BarrierResetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("timed out waiting for the barrier's internal lock"),
        }
    }
}

impl std::error::Error for BarrierResetError {}
