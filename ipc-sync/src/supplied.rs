//! Objects built on a lock the caller supplies: Python's `Value(typecode, v, lock=l)` and
//! `Condition(l)`.
//!
//! A [`Value`](crate::Value) or a [`Condition`](crate::Condition) normally has its own robust
//! lock at the start of its segment. Built `with_lock`, it keeps a second handle of the
//! caller's [`Lock`] or [`ReentrantLock`] (a `try_clone`) and takes that lock instead: the same
//! lock word, in the lock's own segment. So whoever holds the lock — through the lock itself or
//! through any object built on it — excludes all the others, and everything the robust lock
//! does carries over unchanged: a holder that dies is taken over with `OwnerDied` by the next
//! acquirer, whichever object it acquires through, and the poisoned flag is the lock's own.
//! The object's own lock state stays unused (zero).
//!
//! | created with           | fingerprint kind           | serialised as                     |
//! |------------------------|----------------------------|-----------------------------------|
//! | `new` / `create`       | `Value`, `Condition`       | its handle, no lock               |
//! | `with_lock(&Lock)`     | `Value+Lock`, `Condition+Lock` | its handle and the lock's handle |
//! | `with_lock(&RLock)`    | `Value+RLock`, `Condition+RLock` | its handle and the lock's handle |
//!
//! The kind in the fingerprint says which kind of lock the object was built on, so a plain
//! `open` of such an object is refused (it would take the unused lock and exclude nobody), and
//! so is `open_with_lock` with the other kind of lock. Passing the object to a child (serde)
//! carries both handles, so the child attaches both. `open_with_lock` cannot tell one lock of the
//! right kind from another: the caller passes the lock the object was built on (a wrong one
//! only loses mutual exclusion between the two groups of users, never memory safety: values are
//! copied in and out word-wise atomically, and condition slots are atomics).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use ipc_core::{CreateError, ObjectHandle, OpenError};

use crate::error::{LockTimeoutError, OwnerDied, TryLockError};
use crate::lock::{Acquire, Lock, LockGuard};
use crate::object::Object;
use crate::raw_lock::LockState;
use crate::rlock::{ReentrantLock, ReentrantLockGuard};

/// A lock to build a [`Value`](crate::Value) or a [`Condition`](crate::Condition) on: a
/// `&Lock` or a `&ReentrantLock` (`RLock`), converted at the call (`Value::with_lock(5, &lock)`).
///
/// ```
/// use ipc_sync::{Condition, RLock, Value};
///
/// let lock = RLock::new()?;
/// let value = Value::with_lock(0u32, &lock)?;
/// let cond = Condition::with_lock(&lock)?;
/// let g = cond.lock().unwrap();
/// value.set(1); // the same thread re-enters the RLock it holds through `cond`
/// assert!(lock.is_locked());
/// drop(g);
/// assert!(!lock.is_locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SuppliedLock<'a>(Borrowed<'a>);

#[derive(Debug, Clone, Copy)]
enum Borrowed<'a> {
    Lock(&'a Lock),
    RLock(&'a ReentrantLock),
}

impl<'a> From<&'a Lock> for SuppliedLock<'a> {
    fn from(lock: &'a Lock) -> Self {
        Self(Borrowed::Lock(lock))
    }
}

impl<'a> From<&'a ReentrantLock> for SuppliedLock<'a> {
    fn from(lock: &'a ReentrantLock) -> Self {
        Self(Borrowed::RLock(lock))
    }
}

impl SuppliedLock<'_> {
    /// A handle of its own of the lock.
    pub(crate) fn clone_lock(self) -> Result<ExternalLock, OpenError> {
        Ok(match self.0 {
            Borrowed::Lock(l) => ExternalLock::Lock(l.try_clone()?),
            Borrowed::RLock(l) => ExternalLock::RLock(l.try_clone()?),
        })
    }

    /// As [`clone_lock`](Self::clone_lock), for constructors, which report [`CreateError`].
    pub(crate) fn clone_lock_for_create(self) -> Result<ExternalLock, CreateError> {
        self.clone_lock().map_err(|e| match e {
            OpenError::Io(e) => CreateError::Io(e),
            other => CreateError::Io(std::io::Error::other(other)),
        })
    }
}

/// An object's handle of the lock it was built on.
#[derive(Debug)]
pub(crate) enum ExternalLock {
    Lock(Lock),
    RLock(ReentrantLock),
}

/// What travels for an external lock: which kind, and its handle.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ExternalHandle {
    Lock(ObjectHandle),
    RLock(ObjectHandle),
}

impl ExternalLock {
    /// A second handle of the same lock.
    pub(crate) fn try_clone(&self) -> Result<Self, OpenError> {
        Ok(match self {
            Self::Lock(l) => Self::Lock(l.try_clone()?),
            Self::RLock(l) => Self::RLock(l.try_clone()?),
        })
    }

    fn handle(&self) -> ExternalHandle {
        match self {
            Self::Lock(l) => ExternalHandle::Lock(l.handle()),
            Self::RLock(l) => ExternalHandle::RLock(l.handle()),
        }
    }

    fn open(handle: &ExternalHandle) -> Result<Self, OpenError> {
        Ok(match handle {
            ExternalHandle::Lock(h) => Self::Lock(Lock::open(h)?),
            ExternalHandle::RLock(h) => Self::RLock(ReentrantLock::open(h)?),
        })
    }
}

/// The fingerprint kind of an object of kind `base` built on `lock` (see the module docs).
pub(crate) fn kind_on(base: &str, lock: Option<&ExternalLock>) -> String {
    match lock {
        None => base.to_owned(),
        Some(ExternalLock::Lock(_)) => format!("{base}+Lock"),
        Some(ExternalLock::RLock(_)) => format!("{base}+RLock"),
    }
}

/// The serialised form of an object that may be built on a supplied lock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    object: ObjectHandle,
    lock: Option<ExternalHandle>,
}

/// An object that may be built on a supplied lock: `shared_object!(Ty; supplied)` derives its
/// `try_clone` and serde from this.
pub(crate) trait OnSuppliedLock: Object {
    /// The base fingerprint kind (`Value`, `Condition`).
    const BASE: &'static str;

    /// The lock it was built on, if not its own.
    fn supplied(&self) -> Option<&ExternalLock>;

    /// Its own lock (unused when it was built on a supplied one).
    fn own_lock(&self) -> &LockState;

    /// The lock it takes.
    fn lock_ref(&self) -> LockRef<'_> {
        match self.supplied() {
            None => LockRef::Own(self.own_lock()),
            Some(l) => LockRef::External(l),
        }
    }

    /// Wraps a validated segment and its lock.
    fn assemble(
        shm: crate::object::Shared<Self::State, Self::Elem>,
        lock: Option<ExternalLock>,
    ) -> Result<Self, OpenError>;

    /// Wraps a validated segment of an object with a lock of its own.
    fn plain(shm: crate::object::Shared<Self::State, Self::Elem>) -> Result<Self, OpenError> {
        Self::assemble(shm, None)
    }

    /// Opens the object `handle` names, built on `lock` (`None`: its own lock).
    fn open_on(handle: &ObjectHandle, lock: Option<ExternalLock>) -> Result<Self, OpenError> {
        let kind = kind_on(Self::BASE, lock.as_ref());
        Self::assemble(crate::object::Shared::open(&kind, handle)?, lock)
    }

    /// Its serialised form.
    fn wire(&self) -> Wire {
        Wire {
            object: self.shared().handle(),
            lock: self.supplied().map(ExternalLock::handle),
        }
    }

    /// Attaches what [`wire`](Self::wire) describes: the lock first, then the object.
    fn from_wire(wire: &Wire) -> Result<Self, OpenError> {
        let lock = wire.lock.as_ref().map(ExternalLock::open).transpose()?;
        Self::open_on(&wire.object, lock)
    }
}

/// The lock an object takes: its own, or a supplied one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockRef<'a> {
    Own(&'a LockState),
    External(&'a ExternalLock),
}

/// The guard of a [`LockRef`].
pub(crate) enum AnyGuard<'a> {
    Plain(LockGuard<'a>),
    Reentrant(ReentrantLockGuard<'a>),
}

impl AnyGuard<'_> {
    /// Marks the protected state consistent again.
    pub(crate) fn make_consistent(&self) {
        match self {
            Self::Plain(g) => g.make_consistent(),
            Self::Reentrant(g) => g.make_consistent(),
        }
    }
}

impl<'a> LockRef<'a> {
    /// The lock word it comes down to: a plain robust lock (its own, or a supplied `Lock`'s),
    /// or a supplied `ReentrantLock`.
    fn target(self) -> Result<&'a LockState, &'a ReentrantLock> {
        match self {
            Self::Own(s) => Ok(s),
            Self::External(ExternalLock::Lock(l)) => Ok(l.lock_state()),
            Self::External(ExternalLock::RLock(l)) => Err(l),
        }
    }
}

/// Runs `$plain` on a plain lock word or `$reentrant` on a reentrant lock, and wraps the guard
/// (and the guard inside an error) in [`AnyGuard`].
macro_rules! on_target {
    ($r:expr, $s:ident => $plain:expr, $l:ident => $reentrant:expr) => {
        match $r.target() {
            Ok($s) => $plain
                .map(AnyGuard::Plain)
                .map_err(|e| e.map(AnyGuard::Plain)),
            Err($l) => $reentrant
                .map(AnyGuard::Reentrant)
                .map_err(|e| e.map(AnyGuard::Reentrant)),
        }
    };
}

impl<'a> Acquire<'a> for LockRef<'a> {
    type Guard = AnyGuard<'a>;

    fn lock(self) -> Result<AnyGuard<'a>, OwnerDied<AnyGuard<'a>>> {
        on_target!(self, s => Acquire::lock(s), l => l.lock())
    }

    fn try_lock(self) -> Result<AnyGuard<'a>, TryLockError<AnyGuard<'a>>> {
        on_target!(self, s => Acquire::try_lock(s), l => l.try_lock())
    }

    fn lock_deadline(
        self,
        deadline: Instant,
    ) -> Result<AnyGuard<'a>, LockTimeoutError<AnyGuard<'a>>> {
        on_target!(self, s => Acquire::lock_deadline(s, deadline), l => l.lock_deadline(deadline))
    }

    fn is_locked(self) -> bool {
        self.target()
            .map_or_else(ReentrantLock::is_locked, LockState::is_locked)
    }

    fn is_poisoned(self) -> bool {
        self.target()
            .map_or_else(ReentrantLock::is_poisoned, LockState::is_poisoned)
    }

    async fn lock_until_async(
        self,
        deadline: Option<Instant>,
    ) -> Result<AnyGuard<'a>, LockTimeoutError<AnyGuard<'a>>> {
        match self.target() {
            Ok(s) => Acquire::lock_until_async(s, deadline)
                .await
                .map(AnyGuard::Plain)
                .map_err(|e| e.map(AnyGuard::Plain)),
            Err(l) => l
                .lock_until_async(deadline)
                .await
                .map(AnyGuard::Reentrant)
                .map_err(|e| e.map(AnyGuard::Reentrant)),
        }
    }
}
