//! The one place in this package that names the atomic types (the workspace's clippy rules keep
//! them out of every other file). Benchmarks run on real memory only, so these are std's.
#![allow(clippy::disallowed_types)]

use core::sync::atomic::AtomicU64;

pub use core::sync::atomic::{Ordering, compiler_fence, fence};

/// A `u64` that two processes share, accessed only atomically: `AtomicU64` with the layout of
/// a `u64` (`#[repr(transparent)]`), so it can be placed on zeroed shared memory.
///
/// ```
/// use benches::primitive::{Ordering, SharedU64};
/// let w = SharedU64::new(1);
/// w.store(2, Ordering::Relaxed);
/// assert_eq!(w.load(Ordering::Relaxed), 2);
/// ```
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct SharedU64(AtomicU64);

const _: () = assert!(std::mem::size_of::<SharedU64>() == 8);
const _: () = assert!(std::mem::align_of::<SharedU64>() == 8);

impl SharedU64 {
    /// A word holding `v` (for use outside shared memory, e.g. in tests).
    pub const fn new(v: u64) -> Self {
        Self(AtomicU64::new(v))
    }

    /// `AtomicU64::load`.
    #[inline(always)]
    pub fn load(&self, order: Ordering) -> u64 {
        // ORDERING: the caller's, documented at each call site.
        self.0.load(order)
    }

    /// `AtomicU64::store`.
    #[inline(always)]
    pub fn store(&self, v: u64, order: Ordering) {
        // ORDERING: the caller's, documented at each call site.
        self.0.store(v, order)
    }

    /// `AtomicU64::fetch_add`.
    #[inline(always)]
    pub fn fetch_add(&self, v: u64, order: Ordering) -> u64 {
        // ORDERING: the caller's, documented at each call site.
        self.0.fetch_add(v, order)
    }

    /// `AtomicU64::compare_exchange`.
    #[inline(always)]
    pub fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        // ORDERING: the caller's, documented at each call site.
        self.0.compare_exchange(current, new, success, failure)
    }

    /// `AtomicU64::compare_exchange_weak`.
    #[inline(always)]
    pub fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        // ORDERING: the caller's, documented at each call site.
        self.0.compare_exchange_weak(current, new, success, failure)
    }
}
