//! `ReentrantLock` (Python's `RLock`): a robust lock the owning thread may take again.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use ipc_core::{CreateError, Placement};

use crate::error::{LockTimeoutError, NotOwner, OwnerDied, TryLockError};
use crate::lock;
use crate::object::{Shared, SharedState, shared_object};
use crate::os;
use crate::primitive::{AtomicU32, Ordering};
use crate::raw_lock::{Acquired, LockState};

const KIND: &str = "RLock";

/// The shared state of a [`ReentrantLock`]: the robust lock, the owning thread's id and the
/// recursion depth (24 bytes, atomics only). The owning process is the lock word's pid.
#[repr(C)]
#[derive(Debug)]
pub struct ReentrantLockState {
    lock: LockState,
    owner_tid: AtomicU32,
    depth: AtomicU32,
}

// SAFETY: `#[repr(C)]`, atomics only.
unsafe impl SharedState for ReentrantLockState {}

/// A robust re-entrant lock: the thread that holds it may lock it again (each guard releases
/// one level); other threads and processes wait. Owner death is handled as for
/// [`Lock`](crate::Lock).
///
/// The guard is neither `Send` nor `Sync`, so it is released by the thread that took it; an
/// explicit [`unlock`](ReentrantLockGuard::unlock) also checks the shared record and returns
/// [`NotOwner`] if it names someone else.
///
/// ```
/// use ipc_sync::ReentrantLock;
///
/// let rl = ReentrantLock::new()?;
/// let outer = rl.lock().unwrap();
/// let inner = rl.lock().unwrap();          // same thread: no deadlock
/// assert_eq!(rl.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(!rl.is_locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let rl = ipc_sync::ReentrantLock::new().unwrap();
/// send(rl.lock().unwrap()); // a guard cannot move to another thread
/// ```
#[doc(alias = "RLock")]
pub struct ReentrantLock {
    shm: Shared<ReentrantLockState, u8>,
}

/// Python's name for [`ReentrantLock`].
pub type RLock = ReentrantLock;

impl fmt::Debug for ReentrantLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantLock")
            .field("holder", &self.st().lock.holder())
            .field("depth", &self.depth())
            .finish()
    }
}

impl ReentrantLock {
    /// A free lock placed as asked.
    pub fn create(placement: &Placement) -> Result<Self, CreateError> {
        Ok(Self {
            shm: Shared::create(KIND, placement, 0, |_, _| {})?,
        })
    }

    fn st(&self) -> &ReentrantLockState {
        self.shm.state()
    }

    fn guard(&self) -> ReentrantLockGuard<'_> {
        ReentrantLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    fn owned_by_me(&self) -> bool {
        let st = self.st();
        os::me().is_some_and(|me| st.lock.is_held_by(me))
            // ORDERING: Relaxed: if this thread holds the lock it wrote both fields itself; if
            // it does not, no value it can read names it (it cleared `owner_tid` before
            // releasing).
            && st.owner_tid.load(Ordering::Relaxed) == os::tid()
    }

    /// Takes one more level if this thread holds the lock.
    fn reenter(&self) -> bool {
        if !self.owned_by_me() {
            return false;
        }
        let st = self.st();
        // ORDERING: Relaxed, only the owning thread writes `depth` while it holds the lock.
        let d = st.depth.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        st.depth
            .store(d.saturating_add(1).max(2), Ordering::Relaxed);
        true
    }

    fn entered(
        &self,
        a: Acquired,
    ) -> Result<ReentrantLockGuard<'_>, OwnerDied<ReentrantLockGuard<'_>>> {
        let st = self.st();
        // ORDERING: Relaxed, written under the lock by its holder; the lock's Acquire/Release
        // order it for the next holder.
        st.owner_tid.store(os::tid(), Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        st.depth.store(1, Ordering::Relaxed);
        lock::wrap(a, self.guard())
    }

    /// Acquires (or re-enters) the lock, blocking while another thread or process holds it.
    #[doc(alias = "acquire")]
    pub fn lock(&self) -> Result<ReentrantLockGuard<'_>, OwnerDied<ReentrantLockGuard<'_>>> {
        if self.reenter() {
            return Ok(self.guard());
        }
        let a = lock::acquire(&self.st().lock);
        self.entered(a)
    }

    /// Acquires (or re-enters) the lock if possible now; never blocks.
    #[doc(alias = "acquire")]
    pub fn try_lock(&self) -> Result<ReentrantLockGuard<'_>, TryLockError<ReentrantLockGuard<'_>>> {
        if self.reenter() {
            return Ok(self.guard());
        }
        match lock::acquire_now(&self.st().lock) {
            Some(a) => Ok(self.entered(a)?),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Acquires (or re-enters) the lock, blocking at most `timeout`.
    #[doc(alias = "acquire")]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ReentrantLockGuard<'_>, LockTimeoutError<ReentrantLockGuard<'_>>> {
        self.lock_deadline(crate::sys::deadline_after(timeout))
    }

    /// Acquires (or re-enters) the lock, blocking at most until `deadline`.
    #[doc(alias = "acquire")]
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<ReentrantLockGuard<'_>, LockTimeoutError<ReentrantLockGuard<'_>>> {
        if self.reenter() {
            return Ok(self.guard());
        }
        match lock::acquire_until(&self.st().lock, deadline) {
            Some(a) => Ok(self.entered(a)?),
            None => Err(LockTimeoutError::TimedOut),
        }
    }

    /// The async form of [`lock`](Self::lock): acquires (or re-enters) the lock from a future.
    ///
    /// The owner of a `ReentrantLock` is a *thread*, in an async program as in a threaded one:
    /// the thread that polls the future when it completes becomes the owner, and the future
    /// re-enters at once if the thread that polls it first already holds the lock. The guard
    /// is not `Send`, so it cannot be held across an `.await` of a task that moves between
    /// threads (a multi-threaded runtime's `spawn`); on a current-thread runtime or a local
    /// task set it can, and then every task of that thread re-enters the lock: use a `Lock`
    /// where tasks must exclude each other. A holder that dies ends the await with
    /// `Err(OwnerDied)`; dropping the future before it is ready takes nothing.
    #[doc(alias = "acquire")]
    pub async fn lock_async(
        &self,
    ) -> Result<ReentrantLockGuard<'_>, OwnerDied<ReentrantLockGuard<'_>>> {
        loop {
            match self.lock_until_async(None).await {
                Ok(g) => return Ok(g),
                Err(LockTimeoutError::OwnerDied(e)) => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// The async form of [`lock_timeout`](Self::lock_timeout) (the timeout counts from this
    /// call).
    #[doc(alias = "acquire")]
    pub fn lock_timeout_async(
        &self,
        timeout: Duration,
    ) -> impl Future<
        Output = Result<ReentrantLockGuard<'_>, LockTimeoutError<ReentrantLockGuard<'_>>>,
    > + Send
    + '_ {
        self.lock_until_async(Some(crate::sys::deadline_after(timeout)))
    }

    /// The async form of [`lock_deadline`](Self::lock_deadline).
    #[doc(alias = "acquire")]
    pub fn lock_deadline_async(
        &self,
        deadline: Instant,
    ) -> impl Future<
        Output = Result<ReentrantLockGuard<'_>, LockTimeoutError<ReentrantLockGuard<'_>>>,
    > + Send
    + '_ {
        self.lock_until_async(Some(deadline))
    }

    pub(crate) async fn lock_until_async(
        &self,
        deadline: Option<Instant>,
    ) -> Result<ReentrantLockGuard<'_>, LockTimeoutError<ReentrantLockGuard<'_>>> {
        if self.reenter() {
            return Ok(self.guard());
        }
        match crate::future::LockFuture::new(&self.st().lock, deadline).await {
            Some(a) => Ok(self.entered(a)?),
            None => Err(LockTimeoutError::TimedOut),
        }
    }

    /// The recursion depth recorded in shared memory (0 when free; a snapshot).
    pub fn depth(&self) -> u32 {
        if !self.is_locked() {
            return 0;
        }
        // ORDERING: Relaxed, a snapshot.
        self.st().depth.load(Ordering::Relaxed)
    }

    /// Whether some thread holds the lock (a snapshot; Python's `locked()`).
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.st().lock.is_locked()
    }

    /// Whether the lock is marked inconsistent after an owner died.
    pub fn is_poisoned(&self) -> bool {
        self.st().lock.is_poisoned()
    }

    fn release(&self) -> Result<(), NotOwner> {
        if !self.owned_by_me() {
            return Err(NotOwner);
        }
        let st = self.st();
        // ORDERING: Relaxed, only the owning thread writes `depth` while it holds the lock.
        let d = st.depth.load(Ordering::Relaxed);
        if d > 1 {
            // ORDERING: Relaxed, as above.
            st.depth.store(d - 1, Ordering::Relaxed);
            return Ok(());
        }
        // ORDERING: Relaxed, published by the Release swap of the unlock below.
        st.owner_tid.store(0, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        st.depth.store(0, Ordering::Relaxed);
        lock::release(&st.lock);
        Ok(())
    }
}

shared_object!(ReentrantLock: ReentrantLockState[u8] = KIND; new() "A free lock in a new anonymous segment.");

/// One level of a held [`ReentrantLock`]; dropping it releases that level (Python's
/// `release()`).
#[doc(alias = "release")]
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct ReentrantLockGuard<'a> {
    lock: &'a ReentrantLock,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ReentrantLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReentrantLockGuard { .. }")
    }
}

impl ReentrantLockGuard<'_> {
    /// Releases this level now, checking that the shared record still names this thread of
    /// this process: `Err(NotOwner)` (and nothing changed) if a peer overwrote it.
    #[doc(alias = "release")]
    pub fn unlock(self) -> Result<(), NotOwner> {
        let me = std::mem::ManuallyDrop::new(self);
        me.lock.release()
    }

    /// Marks the protected state consistent again after [`OwnerDied`].
    pub fn make_consistent(&self) {
        self.lock.st().lock.make_consistent();
    }
}

impl ReentrantLockGuard<'_> {
    /// Releases every level this thread holds (Python's `_release_save`, for a condition's
    /// wait) and returns the depth to give back to [`restore_depth`](Self::restore_depth) once
    /// the lock is taken again. The other guards of this thread stay valid: each releases one
    /// level after the depth is restored.
    pub(crate) fn release_all(self) -> u32 {
        let me = std::mem::ManuallyDrop::new(self);
        let lock = me.lock;
        if !lock.owned_by_me() {
            return 1;
        }
        let st = lock.st();
        // ORDERING: Relaxed, only the owning thread writes `depth` while it holds the lock.
        let depth = st.depth.load(Ordering::Relaxed).max(1);
        // ORDERING: Relaxed, as above; then one release of the last level.
        st.depth.store(1, Ordering::Relaxed);
        let _ = lock.release();
        depth
    }

    /// Sets the depth of a lock just taken (at depth 1) by this guard back to `depth`
    /// (Python's `_acquire_restore`).
    pub(crate) fn restore_depth(&self, depth: u32) {
        if self.lock.owned_by_me() {
            // ORDERING: Relaxed, only the owning thread writes `depth` while it holds the lock.
            self.lock.st().depth.store(depth.max(1), Ordering::Relaxed);
        }
    }
}

impl Drop for ReentrantLockGuard<'_> {
    fn drop(&mut self) {
        // A guard whose record was overwritten by a peer releases nothing: the lock is no
        // longer ours to release.
        let _ = self.lock.release();
    }
}
