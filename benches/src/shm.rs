//! Shared memory between a benchmark's parent and its forked child.
//!
//! A [`SharedBlock`] is an anonymous [`ipc_core::SharedMemory`] (a memfd) created before
//! [`fork_child`](crate::harness::fork_child): the child inherits the mapping at the same address, so both
//! processes use the same pointers. The block hands out atomics and futexes at checked offsets
//! and raw pointers for bulk copies whose exclusivity the scenario's protocol guarantees.

use anyhow::{Context, bail};
use ipc_core::SharedMemory;
use ipc_core::raw::futex::Futex;

use crate::primitive::SharedU64;

/// The distance that keeps two words on different cache lines (two 64-byte lines, as
/// crossbeam's `CachePadded` uses on x86-64, because of the adjacent-line prefetcher).
pub const LINE: usize = 128;

/// An anonymous shared-memory block of zeroed bytes, page aligned.
///
/// ```
/// use benches::primitive::Ordering;
/// use benches::shm::SharedBlock;
///
/// let block = SharedBlock::new(4096)?;
/// let word = block.u64_at(128)?;
/// word.store(7, Ordering::Relaxed);
/// assert_eq!(block.u64_at(128)?.load(Ordering::Relaxed), 7);
/// assert!(block.u64_at(4095).is_err());
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedBlock {
    seg: SharedMemory,
}

impl SharedBlock {
    /// A block of `len` zeroed bytes.
    pub fn new(len: usize) -> anyhow::Result<Self> {
        let seg = SharedMemory::anonymous(len).context("creating the shared block")?;
        Ok(Self { seg })
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    /// Always false: blocks have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.seg.is_empty()
    }

    fn checked(&self, offset: usize, len: usize, align: usize) -> anyhow::Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() && offset % align == 0 => {}
            _ => bail!(
                "offset {offset} (+{len}, align {align}) outside the block of {}",
                self.len()
            ),
        }
        // SAFETY: `offset + len <= self.len()` was checked above, so the pointer stays inside
        // the mapping.
        Ok(unsafe { self.seg.as_ptr().add(offset) })
    }

    /// The `u64` at `offset` (a multiple of 8) as an atomic.
    pub fn u64_at(&self, offset: usize) -> anyhow::Result<&SharedU64> {
        let p = self.checked(offset, 8, 8)?;
        // SAFETY: `p` is in bounds and 8-aligned (the mapping is page aligned); the bytes started
        // zeroed and every bit pattern is a valid `SharedU64` (an `AtomicU64`); they stay mapped while `self`
        // lives, and every process touches them only through atomics.
        Ok(unsafe { &*p.cast::<SharedU64>() })
    }

    /// `n` consecutive `u64`s from `offset` (a multiple of 8) as atomics.
    pub fn u64_slice_at(&self, offset: usize, n: usize) -> anyhow::Result<&[SharedU64]> {
        let len = n.checked_mul(8).context("slice length overflows")?;
        let p = self.checked(offset, len, 8)?;
        // SAFETY: as in `u64_at`, for `n` consecutive in-bounds aligned words.
        Ok(unsafe { std::slice::from_raw_parts(p.cast::<SharedU64>(), n) })
    }

    /// The [`Futex`] (8 bytes) at `offset` (a multiple of 8).
    pub fn futex_at(&self, offset: usize) -> anyhow::Result<&Futex> {
        let p = self.checked(offset, std::mem::size_of::<Futex>(), 8)?;
        // SAFETY: `Futex` is `#[repr(C)]`, two `AtomicU32`s, valid for every bit pattern; `p` is
        // in bounds and aligned, mapped while `self` lives, and only accessed atomically.
        Ok(unsafe { &*p.cast::<Futex>() })
    }

    /// A raw pointer to `len` bytes at `offset`, for bulk copies. The caller's protocol must
    /// make sure no other process writes those bytes while it reads or writes them.
    pub fn bytes_at(&self, offset: usize, len: usize) -> anyhow::Result<*mut u8> {
        self.checked(offset, len, 1)
    }
}
