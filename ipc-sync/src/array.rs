//! `Array<T>`: Python's synchronised `multiprocessing.Array`, a lock plus `Pod` elements.

use std::fmt;
use std::marker::PhantomData;

use bytemuck::Pod;
use ipc_core::raw::pod::{self, AtomicInt};
use ipc_core::{CreateError, IndexOutOfBounds, Placement};

use crate::lock::{LockGuard, lock_methods};
use crate::object::{Shared, shared_object};
use crate::raw_lock::LockState;

const KIND: &str = "Array";

/// A fixed-length array of `T: Pod` in shared memory with its own robust lock: Python's
/// `Array('i', [1, 2, 3])`.
///
/// [`lock`](Self::lock) (Python's `get_lock()`) gives a guard that copies elements in and out
/// ([`ArrayGuard::update`] for a read-modify-write of the whole array); `get`, `set` and
/// `to_vec` take the lock for one operation; integer types add lock-free per-element atomics.
///
/// ```
/// use ipc_sync::Array;
///
/// let a = Array::from_slice(&[1i32, 2, 3])?;
/// a.lock().unwrap().update(|xs| xs.iter_mut().for_each(|x| *x += 1));
/// assert_eq!(a.to_vec(), [2, 3, 4]);
/// assert_eq!(a.get(5), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: Pod> {
    shm: Shared<LockState, T>,
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("len", &self.len()).finish()
    }
}

impl<T: Pod> Array<T> {
    /// `len` zeroed elements in a new anonymous segment.
    pub fn new(len: usize) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, &vec![T::zeroed(); len])
    }

    /// A copy of `values` in a new anonymous segment.
    pub fn from_slice(values: &[T]) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, values)
    }

    /// A copy of `values`, placed as asked.
    pub fn create(placement: &Placement, values: &[T]) -> Result<Self, CreateError> {
        let shm = Shared::create(KIND, placement, values.len(), |_, data: *mut T| {
            // SAFETY: `data` has room for `values.len()` aligned elements, not yet shared.
            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), data, values.len()) }
        })?;
        Ok(Self { shm })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shm.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock_ref(&self) -> &LockState {
        self.shm.state()
    }

    fn make_guard<'a>(&'a self, lock: LockGuard<'a>) -> ArrayGuard<'a, T> {
        ArrayGuard {
            _lock: lock,
            data: self.shm.data(),
            len: self.len(),
            _t: PhantomData,
        }
    }

    lock_methods!(ArrayGuard<'_, T>);

    /// Python's `get_lock()`: the same as [`lock`](Self::lock).
    pub fn get_lock(&self) -> Result<ArrayGuard<'_, T>, crate::OwnerDied<ArrayGuard<'_, T>>> {
        self.lock()
    }

    fn guard(&self) -> ArrayGuard<'_, T> {
        self.lock().unwrap_or_else(crate::OwnerDied::into_inner)
    }

    /// Copies element `index` out under the lock; `None` past the end.
    pub fn get(&self, index: usize) -> Option<T> {
        self.guard().get(index)
    }

    /// Stores element `index` under the lock.
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexOutOfBounds> {
        self.guard().set(index, value)
    }

    /// Copies every element out under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        self.guard().to_vec()
    }
}

impl<T: AtomicInt> Array<T> {
    fn slot(&self, index: usize) -> Result<*mut T, IndexOutOfBounds> {
        if index < self.len() {
            // SAFETY: `index < len`, inside the validated payload.
            Ok(unsafe { self.shm.data().add(index) })
        } else {
            Err(IndexOutOfBounds {
                index,
                count: 1,
                len: self.len(),
            })
        }
    }

    /// Loads element `index` atomically, without the lock.
    pub fn load(&self, index: usize) -> Result<T, IndexOutOfBounds> {
        // SAFETY: `slot` is in bounds and aligned for `T` (an integer, at most 8 bytes).
        self.slot(index).map(|p| unsafe { pod::load(p) })
    }

    /// Adds atomically to element `index`, without the lock; returns the previous value.
    pub fn fetch_add(&self, index: usize, v: T) -> Result<T, IndexOutOfBounds> {
        // SAFETY: as in `load`.
        self.slot(index).map(|p| unsafe { T::fetch_add(p, v) })
    }

    /// Compare-and-swap on element `index`, without the lock.
    pub fn compare_exchange(
        &self,
        index: usize,
        current: T,
        new: T,
    ) -> Result<Result<T, T>, IndexOutOfBounds> {
        // SAFETY: as in `load`.
        self.slot(index)
            .map(|p| unsafe { T::compare_exchange(p, current, new) })
    }
}

shared_object!(Array<T: Pod>: LockState[T] = KIND);

/// Holds an [`Array`]'s lock. It copies elements in and out instead of lending references,
/// because the lock-free operations of integer arrays may write them meanwhile.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    _lock: LockGuard<'a>,
    data: *mut T,
    len: usize,
    _t: PhantomData<&'a mut [T]>,
}

impl<T: Pod> ArrayGuard<'_, T> {
    /// Marks the elements consistent again after [`OwnerDied`](crate::OwnerDied).
    pub fn make_consistent(&self) {
        self._lock.make_consistent();
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies element `index` out; `None` past the end.
    pub fn get(&self, index: usize) -> Option<T> {
        // SAFETY: `index < len`: an aligned element of the validated payload, mapped while the
        // guard lives; `pod::load` is atomic for sizes 1-8, the only sizes lock-free writers
        // exist for.
        (index < self.len).then(|| unsafe { pod::load(self.data.add(index)) })
    }

    /// Stores element `index`.
    pub fn set(&mut self, index: usize, value: T) -> Result<(), IndexOutOfBounds> {
        if index >= self.len {
            return Err(IndexOutOfBounds {
                index,
                count: 1,
                len: self.len,
            });
        }
        // SAFETY: as in `get`.
        unsafe { pod::store(self.data.add(index), value) };
        Ok(())
    }

    /// Copies every element out.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len).filter_map(|i| self.get(i)).collect()
    }

    /// Read-modify-write of the whole array under the lock: `f` edits a copy, which is then
    /// stored element by element.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut [T]) -> R) -> R {
        let mut v = self.to_vec();
        let r = f(&mut v);
        for (i, x) in v.into_iter().enumerate() {
            let _ = self.set(i, x);
        }
        r
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_vec(), f)
    }
}
