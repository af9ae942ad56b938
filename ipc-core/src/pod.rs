//! Access to `Pod` values that live in shared memory: atomic where the size allows, volatile
//! copies otherwise, and the [`AtomicInt`] operations for integer types.
//!
//! Values are always copied out, never lent as `&T`, because a peer may write the bytes at any
//! moment (ARCHITECTURE.md, principle 7).

use bytemuck::Pod;

use crate::primitive::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize, Ordering,
};

/// Loads a `T` from shared memory: one atomic load when `T` is 1, 2, 4 or 8 bytes (so never
/// torn), otherwise a volatile copy (which may be torn by a concurrent writer; every bit pattern
/// of a `Pod` type is valid, so a torn value is still a value).
///
/// # Safety
/// `ptr` must be valid for reads of `T` for the duration of the call and aligned to
/// `min(size_of::<T>(), 8)` when the size is 1, 2, 4 or 8, and to `align_of::<T>()` otherwise.
pub unsafe fn load<T: Pod>(ptr: *const T) -> T {
    macro_rules! atomic_load {
        ($a:ty, $u:ty) => {{
            // SAFETY: per the contract, `ptr` is valid and aligned for this atomic width.
            let bits = unsafe { <$a>::from_ptr(ptr.cast_mut().cast::<$u>()) }
                // ORDERING: Acquire, pairs with the Release in `store`: a value and what was
                // written before it arrive together.
                .load(Ordering::Acquire);
            bytemuck::pod_read_unaligned(&bits.to_ne_bytes())
        }};
    }
    match size_of::<T>() {
        1 => atomic_load!(AtomicU8, u8),
        2 => atomic_load!(AtomicU16, u16),
        4 => atomic_load!(AtomicU32, u32),
        8 => atomic_load!(AtomicU64, u64),
        // SAFETY: per the contract, `ptr` is valid and aligned for `T`.
        _ => unsafe { std::ptr::read_volatile(ptr) },
    }
}

/// Stores a `T` into shared memory, atomically when it is 1, 2, 4 or 8 bytes.
///
/// # Safety
/// As for [`load`], with writes.
pub unsafe fn store<T: Pod>(ptr: *mut T, value: T) {
    macro_rules! atomic_store {
        ($a:ty, $u:ty) => {{
            let bits: $u = bytemuck::pod_read_unaligned(bytemuck::bytes_of(&value));
            // SAFETY: per the contract, `ptr` is valid and aligned for this atomic width.
            unsafe { <$a>::from_ptr(ptr.cast::<$u>()) }
                // ORDERING: Release, pairs with the Acquire in `load`: publishes what the caller
                // wrote before this store.
                .store(bits, Ordering::Release);
        }};
    }
    match size_of::<T>() {
        1 => atomic_store!(AtomicU8, u8),
        2 => atomic_store!(AtomicU16, u16),
        4 => atomic_store!(AtomicU32, u32),
        8 => atomic_store!(AtomicU64, u64),
        // SAFETY: per the contract, `ptr` is valid and aligned for `T`.
        _ => unsafe { std::ptr::write_volatile(ptr, value) },
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Integer types with lock-free atomic read-modify-write operations in shared memory.
///
/// Implemented for every primitive integer type; sealed.
pub trait AtomicInt: Pod + Eq + sealed::Sealed {
    /// Adds (wrapping), returning the previous value.
    ///
    /// # Safety
    /// `ptr` must be valid and aligned to `size_of::<Self>()` for the duration of the call.
    unsafe fn fetch_add(ptr: *mut Self, v: Self) -> Self;
    /// Subtracts (wrapping), returning the previous value.
    ///
    /// # Safety
    /// As for [`fetch_add`](Self::fetch_add).
    unsafe fn fetch_sub(ptr: *mut Self, v: Self) -> Self;
    /// Replaces, returning the previous value.
    ///
    /// # Safety
    /// As for [`fetch_add`](Self::fetch_add).
    unsafe fn swap(ptr: *mut Self, v: Self) -> Self;
    /// Stores `new` if the value is `current`; returns the previous value either way.
    ///
    /// # Safety
    /// As for [`fetch_add`](Self::fetch_add).
    unsafe fn compare_exchange(ptr: *mut Self, current: Self, new: Self) -> Result<Self, Self>;
    /// Stores the maximum of the value and `v`, returning the previous value.
    ///
    /// # Safety
    /// As for [`fetch_add`](Self::fetch_add).
    unsafe fn fetch_max(ptr: *mut Self, v: Self) -> Self;
    /// Stores the minimum of the value and `v`, returning the previous value.
    ///
    /// # Safety
    /// As for [`fetch_add`](Self::fetch_add).
    unsafe fn fetch_min(ptr: *mut Self, v: Self) -> Self;
}

macro_rules! atomic_int {
    ($($t:ty => $a:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicInt for $t {
            unsafe fn fetch_add(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: per the trait contract, `ptr` is valid and aligned.
                let a = unsafe { <$a>::from_ptr(ptr) };
                // ORDERING: AcqRel, a read-modify-write that both observes and publishes.
                a.fetch_add(v, Ordering::AcqRel)
            }
            unsafe fn fetch_sub(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: per the trait contract, `ptr` is valid and aligned.
                let a = unsafe { <$a>::from_ptr(ptr) };
                // ORDERING: AcqRel, a read-modify-write that both observes and publishes.
                a.fetch_sub(v, Ordering::AcqRel)
            }
            unsafe fn swap(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: per the trait contract, `ptr` is valid and aligned.
                let a = unsafe { <$a>::from_ptr(ptr) };
                // ORDERING: AcqRel, a read-modify-write that both observes and publishes.
                a.swap(v, Ordering::AcqRel)
            }
            unsafe fn compare_exchange(ptr: *mut Self, current: Self, new: Self) -> Result<Self, Self> {
                // SAFETY: per the trait contract, `ptr` is valid and aligned.
                let a = unsafe { <$a>::from_ptr(ptr) };
                // ORDERING: AcqRel on success (observes and publishes), Acquire on failure
                // (observes the value that won).
                a.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            }
            unsafe fn fetch_max(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: per the trait contract, `ptr` is valid and aligned.
                let a = unsafe { <$a>::from_ptr(ptr) };
                // ORDERING: AcqRel, a read-modify-write that both observes and publishes.
                a.fetch_max(v, Ordering::AcqRel)
            }
            unsafe fn fetch_min(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: per the trait contract, `ptr` is valid and aligned.
                let a = unsafe { <$a>::from_ptr(ptr) };
                // ORDERING: AcqRel, a read-modify-write that both observes and publishes.
                a.fetch_min(v, Ordering::AcqRel)
            }
        }
    )*};
}

atomic_int!(
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize
);
