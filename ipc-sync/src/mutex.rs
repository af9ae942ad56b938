//! `Mutex<T>`: a robust lock and the `Pod` value it guards, in one segment.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use ipc_core::{CreateError, OpenError, Placement};

use crate::lock::{LockGuard, lock_methods};
use crate::object::{Shared, shared_object};
use crate::raw_lock::LockState;

const KIND: &str = "Mutex";

/// A robust lock guarding a `T: Pod` in shared memory (the lock and the value share a segment).
///
/// The guard dereferences to `&T` / `&mut T` while the lock is held. When a holder dies, the
/// next `lock` returns [`OwnerDied`](crate::OwnerDied) with the guard: the value is whatever the
/// dead holder left (any bit pattern is a valid `T`), to be checked and repaired.
///
/// ```
/// use ipc_sync::Mutex;
///
/// let m = Mutex::new([0u64; 4])?;
/// {
///     let mut g = m.lock().unwrap();
///     g[0] += 1;
///     g[3] = 7;
/// }
/// assert_eq!(*m.lock().unwrap(), [1, 0, 0, 7]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mutex<T: Pod> {
    shm: Shared<LockState, T>,
}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("type", &std::any::type_name::<T>())
            .field("holder", &self.lock_ref().holder())
            .finish()
    }
}

impl<T: Pod> Mutex<T> {
    fn checked(shm: Shared<LockState, T>) -> Result<Self, OpenError> {
        if shm.len() != 1 {
            return Err(OpenError::Corrupted {
                what: "a Mutex holds exactly one value",
            });
        }
        Ok(Self { shm })
    }

    /// A mutex holding `value`, placed as asked.
    pub fn create(placement: &Placement, value: T) -> Result<Self, CreateError> {
        let shm = Shared::create(KIND, placement, 1, |_, data: *mut T| {
            // SAFETY: `data` points at one element slot, aligned for `T`, not yet shared.
            unsafe { data.write(value) }
        })?;
        Ok(Self { shm })
    }

    fn lock_ref(&self) -> &LockState {
        self.shm.state()
    }

    fn make_guard<'a>(&'a self, lock: LockGuard<'a>) -> MutexGuard<'a, T> {
        MutexGuard {
            lock,
            data: self.shm.data(),
            _t: PhantomData,
        }
    }

    lock_methods!(MutexGuard<'_, T>);
}

shared_object!(Mutex<T: Pod>: LockState[T] = KIND, Self::checked; new(value: T) "A mutex holding `value`, in a new anonymous segment.");

/// Holds a [`Mutex`]; dereferences to the value (a `Mutex` has no lock-free operations, so the
/// lock is the only way to its bytes).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Pod> {
    lock: LockGuard<'a>,
    data: *mut T,
    _t: PhantomData<&'a mut T>,
}

impl<T: Pod> MutexGuard<'_, T> {
    /// Marks the value consistent again after [`OwnerDied`](crate::OwnerDied).
    pub fn make_consistent(&self) {
        self.lock.make_consistent();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Pod> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held for the guard's life, so no process following the protocol
        // writes the value; it is aligned and in bounds (validated segment); any bytes are a
        // valid `T: Pod`.
        unsafe { &*self.data }
    }
}

impl<T: Pod> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference in this process.
        unsafe { &mut *self.data }
    }
}
