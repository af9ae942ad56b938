//! Access to `Pod` values that live in shared memory: atomic where the size allows, word-wise
//! atomic copies otherwise, and the [`AtomicInt`] operations for integer types.
//!
//! Values are always copied out, never lent as `&T`, because a peer may write the bytes at any
//! moment (ARCHITECTURE.md, principle 7).
//!
//! ## Copies that may race a writer
//!
//! [`copy_from_shared`] and [`copy_to_shared`] move bytes between private memory and a mapping
//! that another process may write at the same moment. They use Relaxed atomic loads and stores,
//! one aligned 8-byte word at a time (single bytes at the unaligned edges), as the
//! `atomic-memcpy` proposal (P1478) does: a racing reader may see a mix of old and new words,
//! which a `Pod` type tolerates, but no access is a data race in the language's sense, so the
//! copy is sound and ThreadSanitizer has nothing to report. A `memcpy` would be a data race,
//! which is undefined behaviour even for `u8`.

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
        _ => {
            let mut value = T::zeroed();
            // SAFETY: per the contract, `ptr` is valid for reads of `size_of::<T>()` bytes; the
            // destination is a private local.
            unsafe { copy_from_shared(ptr.cast::<u8>(), bytemuck::bytes_of_mut(&mut value)) };
            value
        }
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
        // SAFETY: per the contract, `ptr` is valid for writes of `size_of::<T>()` bytes.
        _ => unsafe { copy_to_shared(bytemuck::bytes_of(&value), ptr.cast::<u8>()) },
    }
}

/// Copies `dst.len()` bytes starting at `src` (shared memory) into `dst`, with Relaxed atomic
/// loads: aligned 8-byte words, single bytes at the edges. Bytes a peer writes meanwhile may
/// arrive as a mix of old and new words; nothing is a data race.
///
/// # Safety
/// `src` must be valid for reads of `dst.len()` bytes for the duration of the call, and every
/// access to those bytes by others must be atomic or through these copies (true of every shared
/// byte the workspace touches).
pub unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = src.align_offset(8).min(len);
    let out = dst.as_mut_ptr();
    let byte = |i: usize| {
        // SAFETY: callers pass `i < len`, inside the source range per the contract; a u8 is
        // always aligned.
        let a = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) };
        // ORDERING: Relaxed, a racy copy by design; callers order it with their own protocol.
        let v = a.load(Ordering::Relaxed);
        // SAFETY: `i < len`: inside `dst`.
        unsafe { out.add(i).write(v) };
    };
    for i in 0..head {
        byte(i);
    }
    let words = (len - head) / 8;
    for w in 0..words {
        let off = head + w * 8;
        // SAFETY: `src + off` is 8-aligned (`head` aligned it) and `off + 8 <= len`.
        let a = unsafe { AtomicU64::from_ptr(src.add(off).cast_mut().cast::<u64>()) };
        // ORDERING: Relaxed, as above.
        let v = a.load(Ordering::Relaxed);
        // SAFETY: `off + 8 <= len`: inside `dst`, which may be unaligned.
        unsafe { out.add(off).cast::<u64>().write_unaligned(v) };
    }
    for i in head + words * 8..len {
        byte(i);
    }
}

/// Copies `src` into shared memory starting at `dst`, with Relaxed atomic stores (the mirror of
/// [`copy_from_shared`]).
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes for the duration of the call, no process
/// may hold a reference (`&T`, `&mut T`) to those bytes, and every other access to them must be
/// atomic or through these copies.
pub unsafe fn copy_to_shared(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let head = dst.align_offset(8).min(len);
    let inp = src.as_ptr();
    for (i, &b) in src.iter().enumerate().take(head) {
        // SAFETY: `i < len`, inside the destination range per the contract.
        let a = unsafe { AtomicU8::from_ptr(dst.add(i)) };
        // ORDERING: Relaxed, a racy copy by design; callers publish with their own Release.
        a.store(b, Ordering::Relaxed);
    }
    let words = (len - head) / 8;
    for w in 0..words {
        let off = head + w * 8;
        // SAFETY: `off + 8 <= len`: inside `src`, which may be unaligned.
        let v = unsafe { inp.add(off).cast::<u64>().read_unaligned() };
        // SAFETY: `dst + off` is 8-aligned and `off + 8 <= len`.
        let a = unsafe { AtomicU64::from_ptr(dst.add(off).cast::<u64>()) };
        // ORDERING: Relaxed, as above.
        a.store(v, Ordering::Relaxed);
    }
    for (i, &b) in src.iter().enumerate().skip(head + words * 8) {
        // SAFETY: `i < len`, inside the destination range.
        let a = unsafe { AtomicU8::from_ptr(dst.add(i)) };
        // ORDERING: Relaxed, as above.
        a.store(b, Ordering::Relaxed);
    }
}

/// One Relaxed atomic load of a 4- or 8-byte `T` at an address aligned to its size; `None` for
/// any other size or an unaligned address.
///
/// # Safety
/// As for [`copy_from_shared`], for `size_of::<T>()` bytes at `src`.
#[inline(always)]
unsafe fn load_word<T: Pod>(src: *const T) -> Option<T> {
    macro_rules! one_word {
        ($a:ty, $u:ty) => {{
            if !src.cast::<$u>().is_aligned() {
                return None;
            }
            // SAFETY: the contract covers `size_of::<T>()` bytes at `src`, aligned for this
            // width (checked); every access by others is atomic.
            let a = unsafe { <$a>::from_ptr(src.cast::<$u>().cast_mut()) };
            // ORDERING: Relaxed, as in `copy_from_shared`.
            let bits = a.load(Ordering::Relaxed);
            Some(bytemuck::pod_read_unaligned(&bits.to_ne_bytes()))
        }};
    }
    match size_of::<T>() {
        4 => one_word!(AtomicU32, u32),
        8 => one_word!(AtomicU64, u64),
        _ => None,
    }
}

/// One Relaxed atomic store of a 4- or 8-byte `value` at an address aligned to its size;
/// `false` (nothing written) for any other size or an unaligned address.
///
/// # Safety
/// As for [`copy_to_shared`], for `size_of::<T>()` bytes at `dst`.
#[inline(always)]
unsafe fn store_word<T: Pod>(dst: *mut T, value: &T) -> bool {
    macro_rules! one_word {
        ($a:ty, $u:ty) => {{
            if !dst.cast::<$u>().is_aligned() {
                return false;
            }
            let bits: $u = bytemuck::pod_read_unaligned(bytemuck::bytes_of(value));
            // SAFETY: the contract covers `size_of::<T>()` bytes at `dst`, aligned for this
            // width (checked); every access by others is atomic.
            let a = unsafe { <$a>::from_ptr(dst.cast::<$u>()) };
            // ORDERING: Relaxed, as in `copy_to_shared`.
            a.store(bits, Ordering::Relaxed);
            true
        }};
    }
    match size_of::<T>() {
        4 => one_word!(AtomicU32, u32),
        8 => one_word!(AtomicU64, u64),
        _ => false,
    }
}

/// [`copy_from_shared`] for a slice of `Pod` values. One value of 4 or 8 bytes at an address
/// aligned to its size (a ring's `u64` slot) is one Relaxed atomic load.
///
/// # Safety
/// As for [`copy_from_shared`], for `dst.len()` elements at `src`.
#[inline]
pub unsafe fn load_slice<T: Pod>(src: *const T, dst: &mut [T]) {
    if let [out] = dst {
        // SAFETY: forwarded contract, for one element.
        if let Some(v) = unsafe { load_word(src) } {
            *out = v;
            return;
        }
    }
    // SAFETY: the caller's contract covers `size_of_val(dst)` bytes at `src`; `T: Pod`, so
    // any bytes make valid values.
    unsafe { copy_from_shared(src.cast::<u8>(), bytemuck::cast_slice_mut(dst)) }
}

/// [`copy_to_shared`] for a slice of `Pod` values. One value of 4 or 8 bytes at an address
/// aligned to its size is one Relaxed atomic store.
///
/// # Safety
/// As for [`copy_to_shared`], for `src.len()` elements at `dst`.
#[inline]
pub unsafe fn store_slice<T: Pod>(src: &[T], dst: *mut T) {
    if let [value] = src {
        // SAFETY: forwarded contract, for one element.
        if unsafe { store_word(dst, value) } {
            return;
        }
    }
    // SAFETY: the caller's contract covers `size_of_val(src)` bytes at `dst`.
    unsafe { copy_to_shared(bytemuck::cast_slice(src), dst.cast::<u8>()) }
}

/// Loads one `T` from shared memory with Relaxed ordering, for a caller whose own protocol
/// orders it (a ring's slot, read after its index's Acquire): one atomic load of a 4- or 8-byte
/// value at an aligned address, kept in registers, else [`copy_from_shared`]'s word-wise copy
/// out of line.
///
/// # Safety
/// As for [`copy_from_shared`], for `size_of::<T>()` bytes at `src`.
#[inline(always)]
pub unsafe fn load_one<T: Pod>(src: *const T) -> T {
    // SAFETY: forwarded contract.
    match unsafe { load_word(src) } {
        Some(v) => v,
        // SAFETY: forwarded contract.
        None => unsafe { load_one_copied(src) },
    }
}

/// [`load_one`]'s copy for other sizes, out of line.
///
/// # Safety
/// As for [`load_one`].
#[inline(never)]
unsafe fn load_one_copied<T: Pod>(src: *const T) -> T {
    let mut value = T::zeroed();
    // SAFETY: forwarded contract; the destination is a private local.
    unsafe { copy_from_shared(src.cast::<u8>(), bytemuck::bytes_of_mut(&mut value)) };
    value
}

/// Stores one `T` into shared memory with Relaxed ordering (the mirror of [`load_one`]; the
/// caller publishes it with its own Release).
///
/// # Safety
/// As for [`copy_to_shared`], for `size_of::<T>()` bytes at `dst`.
#[inline(always)]
pub unsafe fn store_one<T: Pod>(dst: *mut T, value: T) {
    // SAFETY: forwarded contract.
    if !unsafe { store_word(dst, &value) } {
        // SAFETY: forwarded contract.
        unsafe { store_one_copied(dst, value) }
    }
}

/// [`store_one`]'s copy for other sizes, out of line.
///
/// # Safety
/// As for [`store_one`].
#[inline(never)]
unsafe fn store_one_copied<T: Pod>(dst: *mut T, value: T) {
    // SAFETY: forwarded contract.
    unsafe { copy_to_shared(bytemuck::bytes_of(&value), dst.cast::<u8>()) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_copies_handle_every_alignment_and_length() {
        let mut shared = vec![0u64; 64];
        let base = shared.as_mut_ptr().cast::<u8>();
        for offset in 0..9 {
            for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 100, 300] {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + offset) as u8).collect();
                // SAFETY: `offset + len <= 512`, inside `shared`; nothing else touches it.
                unsafe { copy_to_shared(&src, base.add(offset)) };
                let mut back = vec![0u8; len];
                // SAFETY: as above.
                unsafe { copy_from_shared(base.add(offset), &mut back) };
                assert_eq!(back, src, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn one_value_round_trips_at_every_offset_and_size() {
        fn round_trip<T: Pod + PartialEq + std::fmt::Debug>(value: T) {
            let mut shared = [0u64; 8];
            let base = shared.as_mut_ptr().cast::<u8>();
            for offset in 0..9 {
                // `offset + size_of::<T>() <= 64`, inside `shared`; unaligned at most offsets.
                let p = base.wrapping_add(offset).cast::<T>();
                // SAFETY: inside `shared` (any alignment: `store_one` checks); nothing else
                // touches it.
                unsafe { store_one(p, value) };
                // SAFETY: as above.
                assert_eq!(unsafe { load_one(p) }, value, "offset {offset}");
            }
        }
        round_trip(0x0102_0304_0506_0708u64);
        round_trip(0x0102_0304u32);
        round_trip([1u8, 2, 3, 4, 5, 6, 7, 8]); // 8 bytes, aligned to 1: checked at run time
        round_trip([9u8, 8, 7, 6]);
        round_trip([1u16, 2, 3]); // 6 bytes: the copy
        round_trip([5u32, 6, 7]); // 12 bytes: the copy
        round_trip(7u8);
    }

    #[test]
    fn odd_sized_values_round_trip() {
        let mut cell = [0u64; 4];
        let p = cell.as_mut_ptr().cast::<[u8; 24]>();
        let v = [3u8; 24];
        // SAFETY: `cell` holds 32 bytes, aligned; nothing else touches it.
        unsafe { store(p, v) };
        // SAFETY: as above.
        assert_eq!(unsafe { load(p) }, v);
    }
}
