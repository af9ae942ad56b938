//! `RawArray<T>`: a fixed-length array of `Pod` values in shared memory, Python's
//! `sharedctypes.RawArray` with a type instead of a typecode.

use std::fmt;
use std::marker::PhantomData;

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::error::{CreateError, OpenError};
use crate::header::TypeFingerprint;
use crate::pod::{self, AtomicInt};
use crate::raw::object::{ObjectHandle, ObjectSegment, Placement, segment_handle_methods};

const KIND: &str = "RawArray";

/// An index or range outside an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOutOfBounds {
    /// The first index asked for.
    pub index: usize,
    /// How many elements were asked for.
    pub count: usize,
    /// The array's length.
    pub len: usize,
}

impl fmt::Display for IndexOutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "elements {}..{} are out of bounds for an array of length {}",
            self.index,
            self.index.saturating_add(self.count),
            self.len
        )
    }
}

impl std::error::Error for IndexOutOfBounds {}

/// `len` values of type `T` in shared memory, without a lock.
///
/// Single elements of 1, 2, 4 or 8 bytes are read and written atomically; slices are copied
/// word by word with atomic loads and stores (see [`copy_from_shared`](crate::raw::pod::copy_from_shared)), so a concurrent
/// writer may tear a slice between words but never causes a data race. Integer elements add lock-free read-modify-write
/// operations.
///
/// ```
/// use ipc_core::RawArray;
///
/// let a = RawArray::from_slice(&[1i32, 2, 3])?;
/// a.fetch_add(0, 10)?;
/// a.set(2, 30)?;
/// assert_eq!(a.to_vec(), [11, 2, 30]);
/// assert_eq!(a.get(3), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawArray<T: Pod> {
    seg: ObjectSegment,
    _t: PhantomData<T>,
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len())
            .field("segment", self.seg.shared_memory())
            .finish()
    }
}

impl<T: Pod> RawArray<T> {
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::of::<T>(KIND)
    }

    /// `len` zeroed elements in a new anonymous segment.
    pub fn new(len: usize) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, len)
    }

    /// A copy of `values` in a new anonymous segment.
    pub fn from_slice(values: &[T]) -> Result<Self, CreateError> {
        Self::create_from(&Placement::Anonymous, values)
    }

    /// `len` zeroed elements in a new segment placed as asked.
    pub fn create(placement: &Placement, len: usize) -> Result<Self, CreateError> {
        let seg = ObjectSegment::create(placement, &Self::fingerprint(), len, |_| {})?;
        Ok(Self {
            seg,
            _t: PhantomData,
        })
    }

    /// A copy of `values` in a new segment placed as asked.
    pub fn create_from(placement: &Placement, values: &[T]) -> Result<Self, CreateError> {
        let seg = ObjectSegment::create(placement, &Self::fingerprint(), values.len(), |p| {
            // SAFETY: the payload has room for `values.len()` aligned elements and nobody else
            // sees it yet; `values` is private memory and cannot overlap it.
            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), p.cast::<T>(), values.len()) }
        })?;
        Ok(Self {
            seg,
            _t: PhantomData,
        })
    }

    /// Attaches to the array a handle names, validating its header and element type.
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        let seg = ObjectSegment::open(handle, &Self::fingerprint())?;
        Ok(Self {
            seg,
            _t: PhantomData,
        })
    }

    /// Opens a named array.
    pub fn open_named(name: &str) -> Result<Self, OpenError> {
        let seg = ObjectSegment::open_named(name, &Self::fingerprint())?;
        Ok(Self {
            seg,
            _t: PhantomData,
        })
    }

    segment_handle_methods! {
        /// A second handle of the same array (as `std::fs::File::try_clone`): pass one to a
        /// [`Process`](crate::Process), which consumes its argument, and keep the other.
        ///
        /// ```
        /// let a = ipc_core::RawArray::from_slice(&[1u8, 2])?;
        /// a.try_clone()?.set(0, 9)?;
        /// assert_eq!(a.to_vec(), [9, 2]);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.seg.capacity()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first element. The pointer is valid for `len()` elements while `self` lives; other
    /// processes may read and write them at any time.
    pub fn as_ptr(&self) -> *mut T {
        self.seg.payload_ptr().cast()
    }

    fn range(&self, index: usize, count: usize) -> Result<*mut T, IndexOutOfBounds> {
        match index.checked_add(count) {
            Some(end) if end <= self.len() => {
                // SAFETY: `index <= len`, so the pointer stays inside the validated payload.
                Ok(unsafe { self.as_ptr().add(index) })
            }
            _ => Err(IndexOutOfBounds {
                index,
                count,
                len: self.len(),
            }),
        }
    }

    /// Copies element `index` out, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<T> {
        let p = self.range(index, 1).ok()?;
        // SAFETY: `p` is an in-bounds element; elements of 1/2/4/8 bytes sit at multiples of
        // their size (the payload starts at a multiple of 256), as `pod::load` requires.
        Some(unsafe { pod::load(p) })
    }

    /// Stores element `index`.
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexOutOfBounds> {
        let p = self.range(index, 1)?;
        // SAFETY: as in `get`.
        unsafe { pod::store(p, value) };
        Ok(())
    }

    /// Copies `out.len()` elements starting at `start` into `out`.
    pub fn read(&self, start: usize, out: &mut [T]) -> Result<(), IndexOutOfBounds> {
        let p = self.range(start, out.len())?;
        // SAFETY: the range is in bounds; `out` is private memory and cannot overlap. Every
        // access to the array's bytes is atomic or a shared copy (no `&T` is ever lent).
        unsafe { pod::load_slice(p, out) };
        Ok(())
    }

    /// Copies `values` into the array starting at `start`.
    pub fn write(&self, start: usize, values: &[T]) -> Result<(), IndexOutOfBounds> {
        let p = self.range(start, values.len())?;
        // SAFETY: the range is in bounds; `values` is private memory and cannot overlap. No
        // safe API lends a reference to the array's bytes.
        unsafe { pod::store_slice(values, p) };
        Ok(())
    }

    /// Copies the whole array out.
    pub fn to_vec(&self) -> Vec<T> {
        let mut v = vec![T::zeroed(); self.len()];
        // `read` of the full length cannot be out of bounds.
        let _ = self.read(0, &mut v);
        v
    }
}

impl<T: AtomicInt> RawArray<T> {
    /// Atomically adds `v` to element `index` (wrapping); returns the previous value.
    pub fn fetch_add(&self, index: usize, v: T) -> Result<T, IndexOutOfBounds> {
        let p = self.range(index, 1)?;
        // SAFETY: in bounds, and aligned to its size (see `get`).
        Ok(unsafe { T::fetch_add(p, v) })
    }

    /// Atomically subtracts `v` from element `index`; returns the previous value.
    pub fn fetch_sub(&self, index: usize, v: T) -> Result<T, IndexOutOfBounds> {
        let p = self.range(index, 1)?;
        // SAFETY: in bounds, and aligned to its size (see `get`).
        Ok(unsafe { T::fetch_sub(p, v) })
    }

    /// Stores `new` into element `index` if it is `current`.
    pub fn compare_exchange(
        &self,
        index: usize,
        current: T,
        new: T,
    ) -> Result<Result<T, T>, IndexOutOfBounds> {
        let p = self.range(index, 1)?;
        // SAFETY: in bounds, and aligned to its size (see `get`).
        Ok(unsafe { T::compare_exchange(p, current, new) })
    }
}

impl<T: Pod> Serialize for RawArray<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle().serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = ObjectHandle::deserialize(d)?;
        Self::open(&handle).map_err(crate::codec::de_error)
    }
}
