//! Atomic types for shared memory.
//!
//! `#[repr(transparent)]` wrappers around std's atomics: the same layout (so they sit in
//! `#[repr(C)]` state structs in shared memory), all of std's methods through `Deref`, plus
//! [`from_ptr`](AtomicU32::from_ptr) to view a word of a mapping as an atomic. They are the only
//! atomics the workspace names (`clippy.toml` disallows the std types elsewhere), so that every
//! crate's `primitive.rs` can swap them for loom's in model-checking builds.
#![allow(clippy::disallowed_types)]

use core::sync::atomic as std_atomic;

pub use core::sync::atomic::{Ordering, fence};

macro_rules! wrap {
    ($($name:ident($int:ty)),* $(,)?) => {$(
        #[doc = concat!("`std::sync::atomic::", stringify!($name), "` with the same layout.")]
        #[repr(transparent)]
        #[derive(Debug, Default)]
        pub struct $name(std_atomic::$name);

        impl $name {
            /// A new atomic holding `v`.
            pub const fn new(v: $int) -> Self {
                Self(std_atomic::$name::new(v))
            }

            /// Views the value at `ptr` as an atomic.
            ///
            /// # Safety
            /// `ptr` must be aligned to the size of the type and valid for reads and writes for
            /// `'a`, and every access to it during `'a` must be atomic.
            pub unsafe fn from_ptr<'a>(ptr: *mut $int) -> &'a Self {
                // SAFETY: `Self` is `repr(transparent)` over the std atomic, which has the
                // layout of the integer; the caller guarantees alignment, validity and atomic
                // access.
                unsafe { &*ptr.cast::<Self>() }
            }
        }

        impl core::ops::Deref for $name {
            type Target = std_atomic::$name;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    )*};
}

wrap!(
    AtomicBool(bool),
    AtomicU8(u8),
    AtomicU16(u16),
    AtomicU32(u32),
    AtomicU64(u64),
    AtomicUsize(usize),
    AtomicI8(i8),
    AtomicI16(i16),
    AtomicI32(i32),
    AtomicI64(i64),
    AtomicIsize(isize),
);
