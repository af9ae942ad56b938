//! `RawValue<T>`: one `Pod` value in shared memory, Python's `sharedctypes.RawValue` with a type
//! instead of a typecode.

use std::fmt;
use std::marker::PhantomData;

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::error::{CreateError, OpenError};
use crate::header::TypeFingerprint;
use crate::pod::{self, AtomicInt};
use crate::raw::object::{ObjectHandle, ObjectSegment, Placement, segment_handle_methods};

const KIND: &str = "RawValue";

/// One value of type `T` in shared memory, without a lock.
///
/// Loads and stores of 1-, 2-, 4- and 8-byte types are single atomic operations; larger types are
/// copied and may be torn by a concurrent writer (use `ipc_sync::Value` for a locked value).
/// Integer types add lock-free read-modify-write operations.
///
/// ```
/// use ipc_core::RawValue;
///
/// let counter = RawValue::new(5u64)?;
/// counter.fetch_add(10);
/// assert_eq!(counter.get(), 15);
///
/// // Another process attaches through the handle (or by deserialising the value itself).
/// let same = RawValue::<u64>::open(&counter.handle())?;
/// same.set(1);
/// assert_eq!(counter.get(), 1);
///
/// // Opening as the wrong type is refused.
/// assert!(RawValue::<u32>::open(&counter.handle()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawValue<T: Pod> {
    seg: ObjectSegment,
    _t: PhantomData<T>,
}

impl<T: Pod> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("type", &std::any::type_name::<T>())
            .field("segment", self.seg.shared_memory())
            .finish()
    }
}

impl<T: Pod> RawValue<T> {
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::of::<T>(KIND)
    }

    /// A value in a new anonymous segment (reachable by child processes through its handle).
    pub fn new(value: T) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, value)
    }

    /// A value in a new segment placed as asked (anonymous or named).
    pub fn create(placement: &Placement, value: T) -> Result<Self, CreateError> {
        let seg = ObjectSegment::create(placement, &Self::fingerprint(), 1, |p| {
            // SAFETY: the payload holds one `T` and is aligned for it (and for atomics up to 8
            // bytes: the payload starts at a multiple of 256); nobody else sees it yet.
            unsafe { pod::store(p.cast::<T>(), value) }
        })?;
        Ok(Self {
            seg,
            _t: PhantomData,
        })
    }

    /// Attaches to the value a handle names, validating its header and type.
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Self::checked(ObjectSegment::open(handle, &Self::fingerprint())?)
    }

    /// Opens a named value.
    pub fn open_named(name: &str) -> Result<Self, OpenError> {
        Self::checked(ObjectSegment::open_named(name, &Self::fingerprint())?)
    }

    fn checked(seg: ObjectSegment) -> Result<Self, OpenError> {
        if seg.capacity() != 1 {
            return Err(OpenError::Corrupted {
                what: "a RawValue must hold exactly one element",
            });
        }
        Ok(Self {
            seg,
            _t: PhantomData,
        })
    }

    segment_handle_methods! {
        /// A second handle of the same value (as `std::fs::File::try_clone`): pass one to a
        /// [`Process`](crate::Process), which consumes its argument, and keep the other.
        ///
        /// ```
        /// let v = ipc_core::RawValue::new(1u32)?;
        /// let w = v.try_clone()?;
        /// w.set(2);
        /// assert_eq!(v.get(), 2);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
    }

    fn ptr(&self) -> *mut T {
        self.seg.payload_ptr().cast()
    }

    /// Copies the value out.
    pub fn get(&self) -> T {
        // SAFETY: the validated payload holds one `T`, aligned for it and for atomics.
        unsafe { pod::load(self.ptr()) }
    }

    /// Stores a new value.
    pub fn set(&self, value: T) {
        // SAFETY: the validated payload holds one `T`, aligned for it and for atomics.
        unsafe { pod::store(self.ptr(), value) }
    }
}

impl<T: AtomicInt> RawValue<T> {
    /// Atomically adds `v` (wrapping); returns the previous value.
    pub fn fetch_add(&self, v: T) -> T {
        // SAFETY: the payload holds one `T`, aligned to at least 256 bytes.
        unsafe { T::fetch_add(self.ptr(), v) }
    }

    /// Atomically subtracts `v` (wrapping); returns the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        // SAFETY: the payload holds one `T`, aligned to at least 256 bytes.
        unsafe { T::fetch_sub(self.ptr(), v) }
    }

    /// Atomically replaces the value; returns the previous one.
    pub fn swap(&self, v: T) -> T {
        // SAFETY: the payload holds one `T`, aligned to at least 256 bytes.
        unsafe { T::swap(self.ptr(), v) }
    }

    /// Stores `new` if the value is `current`. `Ok(previous)` on success, `Err(actual)` if not.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // SAFETY: the payload holds one `T`, aligned to at least 256 bytes.
        unsafe { T::compare_exchange(self.ptr(), current, new) }
    }

    /// Atomically stores the maximum; returns the previous value.
    pub fn fetch_max(&self, v: T) -> T {
        // SAFETY: the payload holds one `T`, aligned to at least 256 bytes.
        unsafe { T::fetch_max(self.ptr(), v) }
    }

    /// Atomically stores the minimum; returns the previous value.
    pub fn fetch_min(&self, v: T) -> T {
        // SAFETY: the payload holds one `T`, aligned to at least 256 bytes.
        unsafe { T::fetch_min(self.ptr(), v) }
    }
}

impl<T: Pod> Serialize for RawValue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle().serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = ObjectHandle::deserialize(d)?;
        Self::open(&handle).map_err(crate::codec::de_error)
    }
}
