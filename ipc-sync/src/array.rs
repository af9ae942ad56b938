//! `Array<T>`: Python's synchronised `multiprocessing.Array`, a lock plus `Pod` elements.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};

use bytemuck::Pod;
use ipc_core::raw::pod::{self, AtomicInt};
use ipc_core::{CreateError, IndexOutOfBounds, Placement};

use crate::lock::{LockGuard, lock_methods};
use crate::object::{Shared, shared_object};
use crate::raw_lock::LockState;

const KIND: &str = "Array";

/// The indices `range` names in an array of `len` elements (Python's `arr[a:b]`), checked.
fn checked_range(
    range: impl RangeBounds<usize>,
    len: usize,
) -> Result<Range<usize>, IndexOutOfBounds> {
    let start = match range.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    match (start, end) {
        (Some(start), Some(end)) if start <= end && end <= len => Ok(start..end),
        (start, end) => {
            let index = start.unwrap_or(usize::MAX);
            Err(IndexOutOfBounds {
                index,
                count: end.unwrap_or(usize::MAX).saturating_sub(index),
                len,
            })
        }
    }
}

/// The indices `start..start + count` in an array of `len` elements, checked.
fn checked_span(start: usize, count: usize, len: usize) -> Result<Range<usize>, IndexOutOfBounds> {
    match start.checked_add(count) {
        Some(end) if end <= len => Ok(start..end),
        _ => Err(IndexOutOfBounds {
            index: start,
            count,
            len,
        }),
    }
}

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

    /// Copies element `index` out under the lock; `None` past the end (Python's `arr[i]`).
    #[doc(alias = "__getitem__")]
    pub fn get(&self, index: usize) -> Option<T> {
        self.guard().get(index)
    }

    /// Stores element `index` under the lock (Python's `arr[i] = v`).
    #[doc(alias = "__setitem__")]
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexOutOfBounds> {
        self.guard().set(index, value)
    }

    /// Copies every element out under the lock (Python's `arr[:]`).
    #[doc(alias = "get_obj")]
    pub fn to_vec(&self) -> Vec<T> {
        self.guard().to_vec()
    }

    /// Copies the elements of `range` out under the lock (Python's `arr[2:7]`); an error, and
    /// nothing copied, if the range does not lie within the array.
    ///
    /// ```
    /// let a = ipc_sync::Array::from_slice(&[0u8, 1, 2, 3, 4, 5, 6, 7, 8])?;
    /// assert_eq!(a.read_range(2..7)?, [2, 3, 4, 5, 6]);
    /// assert_eq!(a.read_range(7..)?, [7, 8]);
    /// assert!(a.read_range(5..10).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "__getitem__")]
    pub fn read_range(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>, IndexOutOfBounds> {
        self.guard().read_range(range)
    }

    /// Stores `values` at `start..start + values.len()` under the lock, as one update that no
    /// other locked access sees half done (Python's `arr[4:8] = values`); an error, and nothing
    /// written, if they do not fit.
    ///
    /// ```
    /// let a = ipc_sync::Array::<i32>::new(10)?;
    /// a.write_range(4, &[1, 2, 3, 4])?;
    /// assert_eq!(a.read_range(3..9)?, [0, 1, 2, 3, 4, 0]);
    /// assert!(a.write_range(8, &[1, 2, 3]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "__setitem__")]
    pub fn write_range(&self, start: usize, values: &[T]) -> Result<(), IndexOutOfBounds> {
        self.guard().write_range(start, values)
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

    /// Stores element `index` atomically, without the lock.
    pub fn store(&self, index: usize, value: T) -> Result<(), IndexOutOfBounds> {
        // SAFETY: as in `load`.
        self.slot(index).map(|p| unsafe { pod::store(p, value) })
    }

    /// Loads the elements of `range` without the lock, each one atomically: no element is
    /// torn, but the range as a whole is not a snapshot (a concurrent writer may have changed
    /// some elements and not yet others). [`read_range`](Array::read_range) takes the lock.
    ///
    /// ```
    /// let a = ipc_sync::Array::from_slice(&[1u64, 2, 3, 4])?;
    /// a.fetch_add(2, 10)?;
    /// assert_eq!(a.load_range(1..3)?, [2, 13]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_range(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>, IndexOutOfBounds> {
        let r = checked_range(range, self.len())?;
        let data = self.shm.data();
        // SAFETY: every index of `r` is below `len`: an aligned integer of at most 8 bytes in
        // the validated payload, loaded atomically.
        Ok(r.map(|i| unsafe { pod::load(data.add(i)) }).collect())
    }

    /// Stores `values` at `start..start + values.len()` without the lock, each element
    /// atomically (other processes may see some stored and not yet others);
    /// [`write_range`](Array::write_range) takes the lock. An error, and nothing written, if
    /// they do not fit.
    pub fn store_range(&self, start: usize, values: &[T]) -> Result<(), IndexOutOfBounds> {
        let r = checked_span(start, values.len(), self.len())?;
        let data = self.shm.data();
        for (i, &v) in r.zip(values) {
            // SAFETY: `i < len` (checked above): an aligned integer in the validated payload,
            // stored atomically.
            unsafe { pod::store(data.add(i), v) };
        }
        Ok(())
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

    /// Copies the elements of `range` out (Python's `arr[2:7]`); an error if the range does not
    /// lie within the array.
    pub fn read_range(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>, IndexOutOfBounds> {
        let r = checked_range(range, self.len)?;
        Ok(r.filter_map(|i| self.get(i)).collect())
    }

    /// Stores `values` at `start..start + values.len()` (Python's `arr[4:8] = values`); an
    /// error, and nothing written, if they do not fit.
    pub fn write_range(&mut self, start: usize, values: &[T]) -> Result<(), IndexOutOfBounds> {
        let r = checked_span(start, values.len(), self.len)?;
        for (i, &v) in r.zip(values) {
            // SAFETY: `i < len` (checked above): an aligned element of the validated payload,
            // mapped while the guard lives; `pod::store` is atomic for sizes 1-8, the only
            // sizes lock-free writers exist for.
            unsafe { pod::store(self.data.add(i), v) };
        }
        Ok(())
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
