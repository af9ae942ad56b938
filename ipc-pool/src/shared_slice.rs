//! `SharedSlice<T>`: a slice of `Pod` values in shared memory that one owner holds exclusively,
//! so that it can be used as a plain `&mut [T]` — by its owner, and by pool workers for the
//! chunks [`Pool::map_chunks_mut`](crate::Pool::map_chunks_mut) lends them.
//!
//! ## Why a type of its own
//!
//! A `RawArray` can be opened by any number of handles, in any process, and each may `set` or
//! `write` elements at any moment: lending `&mut [T]` over one would let a safe call of another
//! handle write under that reference. A `SharedSlice` has no public handle: it cannot be
//! serialised, opened or cloned, its segment has its own type fingerprint (so
//! `RawArray::open` refuses it), a plain `SharedMemory` attached to it refuses to copy over it,
//! and the mapping is excluded from forked children (`MADV_DONTFORK`), so a forked copy of the
//! owner cannot reach it either. Rust's borrow rules then do the rest: the owner derefs to
//! `&[T]`/`&mut [T]`; a map borrows it `&mut` and workers get disjoint chunks until the map
//! returns.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use ipc_core::{CreateError, ObjectHandle, ObjectSegment, Placement, TypeFingerprint};

/// The kind name in the segment's type fingerprint.
pub(crate) const KIND: &str = "SharedSlice";

/// `len` values of type `T` in an anonymous shared segment, owned exclusively: it derefs to
/// `[T]`, and [`Pool::map_chunks_mut`](crate::Pool::map_chunks_mut) hands its chunks to worker
/// processes in place, with nothing copied.
///
/// ```
/// use ipc_pool::SharedSlice;
///
/// let mut data = SharedSlice::from_slice(&[1.0f64, 2.0, 3.0])?;
/// data[0] = 0.5;
/// data.iter_mut().for_each(|x| *x *= 2.0);
/// assert_eq!(&data[..], [1.0, 4.0, 6.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It cannot be sent to another process (it has no handle); share data that others read and
/// write concurrently through `ipc_core::RawArray` or `ipc_sync::Array` instead.
///
/// ```compile_fail
/// fn needs_serialize<T: serde::Serialize>(_: &T) {}
/// let data = ipc_pool::SharedSlice::<u8>::new(4).unwrap();
/// needs_serialize(&data);
/// ```
pub struct SharedSlice<T: Pod> {
    seg: ObjectSegment,
    len: usize,
    _t: PhantomData<T>,
}

// SAFETY: the mapping is owned by `self` alone (no handle exists outside the pool's internal
// use while a map borrows `self` mutably), and `T: Pod` values are plain bytes: moving the owner
// to another thread moves sole access with it, as for `Vec<T>`.
unsafe impl<T: Pod> Send for SharedSlice<T> {}
// SAFETY: `&SharedSlice` gives only `&[T]` (shared reads); writes need `&mut`, as for `Vec<T>`.
unsafe impl<T: Pod> Sync for SharedSlice<T> {}

impl<T: Pod> fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSlice")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .finish()
    }
}

pub(crate) fn fingerprint<T>() -> TypeFingerprint {
    TypeFingerprint::of::<T>(KIND)
}

impl<T: Pod> SharedSlice<T> {
    /// `len` zeroed elements.
    pub fn new(len: usize) -> Result<Self, CreateError> {
        Self::create(len, |_| {})
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[T]) -> Result<Self, CreateError> {
        Self::create(values.len(), |p| {
            // SAFETY: the fresh payload has room for `values.len()` aligned elements; nobody
            // else can reach it (no handle has left this function).
            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), p.cast::<T>(), values.len()) }
        })
    }

    fn create(len: usize, init: impl FnOnce(*mut u8)) -> Result<Self, CreateError> {
        let seg = ObjectSegment::create(&Placement::Anonymous, &fingerprint::<T>(), len, init)?;
        seg.shared_memory()
            .exclude_from_fork()
            .map_err(CreateError::Io)?;
        Ok(Self {
            seg,
            len,
            _t: PhantomData,
        })
    }

    /// The handle pool workers open the slice with (never public: see the module docs).
    pub(crate) fn worker_handle(&self) -> ObjectHandle {
        self.seg.handle()
    }
}

impl<T: Pod> Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the payload holds `len` aligned `T`s for as long as `self` lives (validated
        // at creation); `T: Pod`, so its bytes are valid values. Only this owner reaches the
        // bytes outside a map, and a map borrows `self` mutably, so no worker writes them while
        // this shared borrow lives.
        unsafe { std::slice::from_raw_parts(self.seg.payload_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod> DerefMut for SharedSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference to the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.seg.payload_ptr().cast::<T>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::{AccessError, RawArray, SharedMemory};

    #[test]
    fn no_other_handle_can_write_it() {
        let data = SharedSlice::<u64>::from_slice(&[1, 2, 3]).unwrap();
        let handle = data.worker_handle();
        // Another type fingerprint: it does not open as a RawArray.
        assert!(RawArray::<u64>::open(&handle).is_err());
        // A plain segment attached to it refuses to copy over it.
        let plain = SharedMemory::open(&handle.segment).unwrap();
        assert_eq!(plain.write(0, &[0; 8]), Err(AccessError::HoldsObject));
        assert_eq!(&data[..], [1, 2, 3]);
    }

    /// Whether `addr` lies in a mapping of the calling process.
    fn is_mapped(addr: usize) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        maps.lines().any(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let mut it = range.split('-');
            let lo = usize::from_str_radix(it.next().unwrap_or("0"), 16).unwrap_or(0);
            let hi = usize::from_str_radix(it.next().unwrap_or("0"), 16).unwrap_or(0);
            (lo..hi).contains(&addr)
        })
    }

    #[test]
    fn a_forked_child_does_not_inherit_the_mapping() {
        let data = SharedSlice::<u64>::from_slice(&[7; 512]).unwrap();
        let addr = data.as_ptr() as usize;
        assert!(is_mapped(addr));
        // A fork child (the test harness runs other threads: the child only reads a file and
        // reports through the process's result pipe).
        let child = ipc_core::Process::builder()
            .start_method(ipc_core::StartMethod::Fork)
            .accept_fork_with_threads(true)
            .target(is_mapped, addr);
        child.start().unwrap();
        assert!(!child.join().unwrap(), "the child saw the mapping");
    }
}
