//! `Value<T>`: Python's synchronised `multiprocessing.Value`, a lock plus one `Pod` value.

use std::fmt;

use bytemuck::Pod;
use ipc_core::raw::pod::{self, AtomicInt};
use ipc_core::{CreateError, OpenError, Placement};

use crate::lock::lock_methods;
use crate::object::{Shared, shared_object};
use crate::raw_lock::LockState;
use crate::supplied::{AnyGuard, ExternalLock, OnSuppliedLock, SuppliedLock};

const KIND: &str = "Value";

/// One `T: Pod` in shared memory with its own robust lock: Python's `Value('i', 5)`.
///
/// `get` and `set` take the lock for one copy; [`lock`](Self::lock) (Python's `get_lock()`)
/// holds it across a read-modify-write ([`ValueGuard::update`]). Integer types add lock-free
/// atomic operations (`load`, `store`, `fetch_add`, `compare_exchange`) that do not take the
/// lock, so a counter needs none. Because those may run while another process holds the lock,
/// the guard lends no reference to the value: it copies in and out.
///
/// ```
/// use ipc_sync::Value;
///
/// let v = Value::new(5i32)?;
/// v.lock().unwrap().update(|x| *x += 10); // Python: with v.get_lock(): v.value += 10
/// assert_eq!(v.get(), 15);
/// v.fetch_add(1);                  // lock-free
/// assert_eq!(v.load(), 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T: Pod> {
    shm: Shared<LockState, T>,
    lock: Option<ExternalLock>,
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            // SAFETY: the payload holds one aligned `T`.
            .field("value", &unsafe { pod::load(self.shm.data()) })
            .finish()
    }
}

impl<T: Pod> OnSuppliedLock for Value<T> {
    const BASE: &'static str = KIND;

    fn supplied(&self) -> Option<&ExternalLock> {
        self.lock.as_ref()
    }

    fn own_lock(&self) -> &LockState {
        self.shm.state()
    }

    fn assemble(shm: Shared<LockState, T>, lock: Option<ExternalLock>) -> Result<Self, OpenError> {
        if shm.len() != 1 {
            return Err(OpenError::Corrupted {
                what: "a Value holds exactly one element",
            });
        }
        Ok(Self { shm, lock })
    }
}

impl<T: Pod> Value<T> {
    /// A value with its own lock, placed as asked.
    pub fn create(placement: &Placement, value: T) -> Result<Self, CreateError> {
        Self::create_on(placement, value, None)
    }

    /// A value guarded by the caller's [`Lock`](crate::Lock) or
    /// [`ReentrantLock`](crate::RLock) instead of a lock of its own (Python's
    /// `Value(typecode, v, lock=l)`), in a new anonymous segment: `get`, `set` and `lock` take
    /// that lock, so one lock can guard several values (and a condition). It keeps a handle of
    /// its own of the lock, and passing it to a child passes the lock too; a holder's death is
    /// reported as the lock reports it (`OwnerDied`), through whichever object it is seen.
    ///
    /// ```
    /// use ipc_sync::{Lock, Value};
    ///
    /// let lock = Lock::new()?;
    /// let a = Value::with_lock(1u32, &lock)?;
    /// let b = Value::with_lock(2u32, &lock)?;
    /// {
    ///     let _held = lock.lock().unwrap();
    ///     assert!(a.try_lock().is_err()); // the same lock
    ///     assert!(b.try_lock().is_err());
    /// }
    /// a.lock().unwrap().update(|x| *x += b.load());
    /// assert_eq!(a.get(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_lock<'l>(value: T, lock: impl Into<SuppliedLock<'l>>) -> Result<Self, CreateError> {
        Self::create_with_lock(&Placement::Anonymous, value, lock)
    }

    /// As [`with_lock`](Self::with_lock), placed as asked.
    pub fn create_with_lock<'l>(
        placement: &Placement,
        value: T,
        lock: impl Into<SuppliedLock<'l>>,
    ) -> Result<Self, CreateError> {
        Self::create_on(placement, value, Some(lock.into().clone_lock_for_create()?))
    }

    fn create_on(
        placement: &Placement,
        value: T,
        lock: Option<ExternalLock>,
    ) -> Result<Self, CreateError> {
        let kind = crate::supplied::kind_on(KIND, lock.as_ref());
        let shm = Shared::create(&kind, placement, 1, |_, data: *mut T| {
            // SAFETY: one aligned element slot (64-byte aligned), not yet shared.
            unsafe { pod::store(data, value) }
        })?;
        Ok(Self { shm, lock })
    }

    fn make_guard<'a>(&'a self, lock: AnyGuard<'a>) -> ValueGuard<'a, T> {
        ValueGuard {
            _lock: lock,
            data: self.shm.data(),
        }
    }

    lock_methods!(ValueGuard<'_, T>);

    /// Python's `get_lock()`: the same as [`lock`](Self::lock).
    pub fn get_lock(&self) -> Result<ValueGuard<'_, T>, crate::OwnerDied<ValueGuard<'_, T>>> {
        self.lock()
    }

    /// Copies the value out under the lock. A dead previous holder is taken over silently (the
    /// value is what it left); use [`lock`](Self::lock) to see [`OwnerDied`](crate::OwnerDied).
    #[doc(alias = "value")]
    pub fn get(&self) -> T {
        self.lock()
            .unwrap_or_else(crate::OwnerDied::into_inner)
            .get()
    }

    /// Stores a value under the lock (a dead previous holder is taken over as in `get`).
    #[doc(alias = "value")]
    pub fn set(&self, value: T) {
        self.lock()
            .unwrap_or_else(crate::OwnerDied::into_inner)
            .set(value);
    }
}

/// Holds a [`Value`]'s lock. It copies the value in and out instead of lending a reference,
/// because the lock-free operations of integer values may write it meanwhile.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    _lock: AnyGuard<'a>,
    data: *mut T,
}

impl<T: Pod> ValueGuard<'_, T> {
    /// Copies the value out.
    pub fn get(&self) -> T {
        // SAFETY: one `T`, aligned to 64 bytes, in the validated payload, mapped while the
        // guard (which borrows the `Value`) lives; `pod::load` is atomic for sizes 1-8, the only
        // sizes lock-free writers exist for.
        unsafe { pod::load(self.data) }
    }

    /// Stores a new value.
    pub fn set(&mut self, value: T) {
        // SAFETY: as in `get`.
        unsafe { pod::store(self.data, value) }
    }

    /// Read-modify-write under the lock: `f` edits a copy, which is then stored.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = self.get();
        let r = f(&mut v);
        self.set(v);
        r
    }

    /// Marks the value consistent again after [`OwnerDied`](crate::OwnerDied).
    pub fn make_consistent(&self) {
        self._lock.make_consistent();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&self.get()).finish()
    }
}

impl<T: AtomicInt> Value<T> {
    /// Loads the value atomically, without the lock.
    pub fn load(&self) -> T {
        // SAFETY: one `T` aligned to 64 bytes in the validated payload.
        unsafe { pod::load(self.shm.data()) }
    }

    /// Stores atomically, without the lock.
    pub fn store(&self, value: T) {
        // SAFETY: as in `load`.
        unsafe { pod::store(self.shm.data(), value) }
    }

    /// Adds atomically (wrapping), without the lock; returns the previous value.
    pub fn fetch_add(&self, v: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::fetch_add(self.shm.data(), v) }
    }

    /// Subtracts atomically (wrapping), without the lock; returns the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::fetch_sub(self.shm.data(), v) }
    }

    /// Stores `new` if the value is `current`, without the lock. `Ok(previous)` or
    /// `Err(actual)`.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // SAFETY: as in `load`.
        unsafe { T::compare_exchange(self.shm.data(), current, new) }
    }
}

shared_object!(supplied Value<T: Pod>: LockState[T] = KIND; new(value: T) "A value with its own lock, in a new anonymous segment.");
