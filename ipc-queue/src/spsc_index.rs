//! The SPSC index protocol on its own, so that `tests/loom.rs` can model-check it with loom
//! atomics (it names only `crate::primitive`).

use crate::primitive::{AtomicU64, CachePadded, Ordering};

/// The two positions of an SPSC ring, each on its own cache line (`#[repr(C)]`).
#[repr(C)]
pub(crate) struct SpscIndices {
    /// Next position to read; written by the consumer only.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Next position to write; written by the producer only.
    pub(crate) tail: CachePadded<AtomicU64>,
}

/// The largest position either side accepts from shared memory: positions count elements
/// forever and never come near it, and below it every sum of a position and a capacity stays
/// far from overflow.
pub(crate) const MAX_POSITION: u64 = 1 << 62;

/// An index read from shared memory was impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// The producer's view of the index protocol (loom-checked in `tests/loom.rs`).
#[derive(Debug)]
pub(crate) struct ProducerIndex {
    pub(crate) tail: u64,
    pub(crate) head_cache: u64,
    pub(crate) capacity: u64,
}

impl ProducerIndex {
    /// Starts from the shared indices (a producer may attach to a ring in use).
    pub(crate) fn new(state: &SpscIndices, capacity: u64) -> Result<Self, Corrupt> {
        // ORDERING: Acquire, pairs with the Release stores of the previous producer and of the
        // consumer: we continue from what they published.
        let tail = state.tail.load(Ordering::Acquire);
        // ORDERING: Acquire, as above.
        let head = state.head.load(Ordering::Acquire);
        if head > tail || tail - head > capacity || tail > MAX_POSITION {
            return Err(Corrupt);
        }
        Ok(Self {
            tail,
            head_cache: head,
            capacity,
        })
    }

    /// How many slots are free (at least `want` if possible), refreshing the cached head only
    /// when the cached view has fewer than `want`.
    #[inline]
    pub(crate) fn free(&mut self, state: &SpscIndices, want: u64) -> Result<u64, Corrupt> {
        let free = self.capacity - (self.tail - self.head_cache);
        if free >= want {
            return Ok(free);
        }
        // ORDERING: Acquire, pairs with the Release store in `ConsumerIndex::release`: the
        // consumer's reads of the slots it released happen before we overwrite them.
        let head = state.head.load(Ordering::Acquire);
        if head < self.head_cache || head > self.tail {
            return Err(Corrupt);
        }
        self.head_cache = head;
        Ok(self.capacity - (self.tail - head))
    }

    /// Publishes `n` written slots.
    #[inline]
    pub(crate) fn commit(&mut self, state: &SpscIndices, n: u64) {
        self.tail += n;
        // ORDERING: Release, pairs with the Acquire in `ConsumerIndex::available`: publishes
        // the slot writes.
        state.tail.store(self.tail, Ordering::Release);
    }
}

/// The consumer's view of the index protocol.
#[derive(Debug)]
pub(crate) struct ConsumerIndex {
    pub(crate) head: u64,
    pub(crate) tail_cache: u64,
    pub(crate) capacity: u64,
}

impl ConsumerIndex {
    pub(crate) fn new(state: &SpscIndices, capacity: u64) -> Result<Self, Corrupt> {
        // ORDERING: Acquire, pairs with the Release stores of the previous consumer and of the
        // producer.
        let head = state.head.load(Ordering::Acquire);
        // ORDERING: Acquire, as above.
        let tail = state.tail.load(Ordering::Acquire);
        if head > tail || tail - head > capacity || tail > MAX_POSITION {
            return Err(Corrupt);
        }
        Ok(Self {
            head,
            tail_cache: tail,
            capacity,
        })
    }

    /// How many slots are readable (refreshing the cached tail when fewer than `want`).
    #[inline]
    pub(crate) fn available(&mut self, state: &SpscIndices, want: u64) -> Result<u64, Corrupt> {
        let ready = self.tail_cache - self.head;
        if ready >= want {
            return Ok(ready);
        }
        // ORDERING: Acquire, pairs with the Release store in `ProducerIndex::commit`: the slot
        // writes happen before our reads.
        let tail = state.tail.load(Ordering::Acquire);
        if tail < self.tail_cache || tail - self.head > self.capacity {
            return Err(Corrupt);
        }
        self.tail_cache = tail;
        Ok(tail - self.head)
    }

    /// Releases `n` read slots to the producer.
    #[inline]
    pub(crate) fn release(&mut self, state: &SpscIndices, n: u64) {
        self.head += n;
        // ORDERING: Release, pairs with the Acquire in `ProducerIndex::free`: our slot reads
        // happen before the producer reuses the slots.
        state.head.store(self.head, Ordering::Release);
    }
}
