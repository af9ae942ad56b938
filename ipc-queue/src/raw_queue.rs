//! The engine under `Queue`, `JoinableQueue` and `SimpleQueue`: an MPMC ring of fixed-size byte
//! slots in one segment (protocol in `mpmc_index.rs`), with blocking, liveness and recovery.

use std::time::{Duration, Instant};

use ipc_core::{ObjectHandle, ObjectSegment, Placement};

use crate::error::{CreateError, OpenError};
use crate::layout;
use crate::mpmc_index::{self, GetClaim, MpmcIndices, PutClaim, SlotWords, Stuck};
use crate::participants::{CONSUMER, Membership, PRODUCER, ParticipantTable};
use crate::primitive::{AtomicU64, CachePadded, Ordering};
use crate::signal::{self, Attempt, Blocked, Signal};

/// The shared state of a queue (`#[repr(C)]`; the plain fields are written once at creation and
/// validated by every opener).
#[repr(C)]
pub(crate) struct QueueState {
    pub(crate) idx: MpmcIndices,
    /// Bumped when a message is committed (getters wait on it).
    pub(crate) not_empty: CachePadded<Signal>,
    /// Bumped when a slot frees up (putters wait on it).
    pub(crate) not_full: CachePadded<Signal>,
    /// Messages put but not yet marked done (`JoinableQueue`).
    pub(crate) unfinished: CachePadded<AtomicU64>,
    /// Bumped when `unfinished` reaches zero (`join` waits on it).
    pub(crate) all_done: Signal,
    pub(crate) participants: ParticipantTable,
    /// Number of slots (written at creation).
    capacity: u64,
    /// Bytes of payload per slot, a multiple of 8 (written at creation).
    slot_payload: u64,
}

const STATE_BYTES: usize = layout::padded(size_of::<QueueState>());
/// The least number of slots (the slot protocol needs two to tell laps apart).
pub(crate) const MIN_SLOTS: usize = 2;

fn slot_stride(payload: usize) -> Option<usize> {
    payload.checked_next_multiple_of(8)?.checked_add(8)
}

/// Where a queue's slots are.
#[derive(Clone, Copy)]
struct Slots {
    base: *mut u8,
    capacity: u64,
    stride: usize,
}

impl SlotWords for Slots {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        let index = index % self.capacity as usize;
        // SAFETY: `index < capacity`, and the segment holds `capacity` slots of `stride` bytes
        // from `base` (validated in `RawQueue::from_segment`); each slot starts with an 8-aligned
        // u64 (stride and base are multiples of 8). AtomicU64 accepts every bit pattern.
        unsafe { &*self.base.add(index * self.stride).cast::<AtomicU64>() }
    }
}

/// A payload region of one slot, owned by the caller per the slot protocol.
pub(crate) struct SlotPayload {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

pub(crate) struct RawQueue {
    seg: ObjectSegment,
    state: *const QueueState,
    slots: Slots,
    payload: usize,
    member: Membership,
    spin: Duration,
    /// Count puts in `unfinished` (`JoinableQueue`).
    joinable: bool,
}

// SAFETY: the pointers point into `seg`'s mapping, owned by `RawQueue`; every shared access
// goes through atomics or through slots owned per the protocol.
unsafe impl Send for RawQueue {}
// SAFETY: as above; the only per-handle mutable state (`member`, `spin`) needs `&mut self`.
unsafe impl Sync for RawQueue {}

/// How a blocked wait ended.
pub(crate) enum WaitEnd {
    Timeout,
    Disconnected,
    Corrupted,
}

impl RawQueue {
    pub(crate) fn create(
        placement: &Placement,
        kind: &str,
        capacity: usize,
        slot_payload: usize,
        role: u32,
    ) -> Result<Self, CreateError> {
        let invalid = CreateError::InvalidCapacity { capacity };
        if capacity == 0 {
            return Err(invalid);
        }
        let slots = capacity.max(MIN_SLOTS);
        let payload = slot_payload
            .checked_next_multiple_of(8)
            .ok_or(CreateError::InvalidCapacity { capacity })?;
        let stride = slot_stride(payload).ok_or(CreateError::InvalidCapacity { capacity })?;
        let bytes = slots
            .checked_mul(stride)
            .and_then(|b| b.checked_add(STATE_BYTES))
            .ok_or(invalid)?;
        let seg = layout::create(placement, kind, bytes, |base| {
            // SAFETY: the payload is fresh, zeroed, 128-aligned and `bytes` long, so it holds
            // the state; nobody else sees it before the header is published.
            let state = unsafe { &mut *base.cast::<QueueState>() };
            state.capacity = slots as u64;
            state.slot_payload = payload as u64;
            for i in 0..slots {
                // SAFETY: slot `i` lies inside the payload (`STATE_BYTES + i * stride < bytes`).
                let word = unsafe { &*base.add(STATE_BYTES + i * stride).cast::<AtomicU64>() };
                // ORDERING: Relaxed, published by the header's Release publish.
                word.store(mpmc_index::pack(i as u64, 0), Ordering::Relaxed);
            }
        })?;
        Self::from_segment(seg, role).map_err(|_| CreateError::InvalidCapacity { capacity })
    }

    pub(crate) fn open(handle: &ObjectHandle, kind: &str, role: u32) -> Result<Self, OpenError> {
        Self::from_segment(layout::open(handle, kind)?, role)
    }

    fn from_segment(seg: ObjectSegment, role: u32) -> Result<Self, OpenError> {
        let bytes = seg.capacity();
        if bytes < STATE_BYTES {
            return Err(OpenError::Corrupted {
                what: "queue smaller than its state",
            });
        }
        let base = seg.payload_ptr();
        // SAFETY: the payload is 128-aligned and at least STATE_BYTES long (checked above); we
        // copy two plain words out and validate them before use.
        let (capacity, payload) = unsafe {
            let s = base.cast::<QueueState>();
            (
                std::ptr::read_volatile(&raw const (*s).capacity),
                std::ptr::read_volatile(&raw const (*s).slot_payload),
            )
        };
        let bad = OpenError::Corrupted {
            what: "queue capacity or slot size does not match its segment",
        };
        let capacity_us =
            usize::try_from(capacity).map_err(|_| OpenError::Corrupted { what: "capacity" })?;
        let payload_us =
            usize::try_from(payload).map_err(|_| OpenError::Corrupted { what: "slot size" })?;
        if capacity_us < MIN_SLOTS || payload_us % 8 != 0 {
            return Err(bad);
        }
        let stride = slot_stride(payload_us).ok_or(OpenError::Corrupted { what: "slot size" })?;
        match capacity_us
            .checked_mul(stride)
            .and_then(|b| b.checked_add(STATE_BYTES))
        {
            Some(need) if need == bytes => {}
            _ => return Err(bad),
        }
        // SAFETY: STATE_BYTES <= bytes, inside the payload.
        let slots_base = unsafe { base.add(STATE_BYTES) };
        let state = base.cast::<QueueState>().cast_const();
        // SAFETY: validated above: the state is mapped for as long as `seg` lives.
        let table = unsafe { &(*state).participants };
        let member = Membership::attach(table, role).ok_or(OpenError::TooManyParticipants)?;
        Ok(Self {
            seg,
            state,
            slots: Slots {
                base: slots_base,
                capacity,
                stride,
            },
            payload: payload_us,
            member,
            spin: signal::DEFAULT_SPIN,
            joinable: false,
        })
    }

    pub(crate) fn state(&self) -> &QueueState {
        // SAFETY: the state is mapped while `self.seg` lives, made of atomics and plain words
        // valid for every bit pattern.
        unsafe { &*self.state }
    }

    pub(crate) fn handle(&self) -> ObjectHandle {
        self.seg.handle()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity as usize
    }

    pub(crate) fn payload_size(&self) -> usize {
        self.payload
    }

    pub(crate) fn set_joinable(&mut self, joinable: bool) {
        self.joinable = joinable;
    }

    pub(crate) fn spin(&self) -> Duration {
        self.spin
    }

    pub(crate) fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The roles this handle holds (producer, consumer or both).
    pub(crate) fn role(&self) -> u32 {
        self.member.role()
    }

    pub(crate) fn set_role(&mut self, role: u32) {
        let state = self.state;
        // SAFETY: as in `state()`; a raw read to avoid borrowing `self` twice.
        let table = unsafe { &(*state).participants };
        self.member.set_role(table, role);
    }

    pub(crate) fn len(&self) -> Option<usize> {
        mpmc_index::len(&self.state().idx, self.slots.capacity).map(|n| n as usize)
    }

    fn me(&mut self) -> u32 {
        let state = self.state;
        // SAFETY: as in `state()`.
        let table = unsafe { &(*state).participants };
        self.member.id(table)
    }

    fn payload_at(&self, pos: u64) -> SlotPayload {
        let index = (pos % self.slots.capacity) as usize;
        // SAFETY: slot `index` is inside the segment; its payload follows its 8-byte word.
        let ptr = unsafe { self.slots.base.add(index * self.slots.stride + 8) };
        SlotPayload {
            ptr,
            len: self.payload,
        }
    }

    /// Recovers a stuck slot if its claimer is dead; `true` if it did.
    fn recover(&self, stuck: Stuck) -> bool {
        let (_, owner) = mpmc_index::unpack(stuck.word);
        if self.state().participants.is_alive(owner) {
            return false;
        }
        mpmc_index::recover(&self.slots, stuck)
    }

    /// One attempt to claim a slot for writing.
    fn attempt_put(&mut self, recover: bool) -> Result<Option<u64>, WaitEnd> {
        let me = self.me();
        loop {
            return match mpmc_index::claim_put(&self.state().idx, &self.slots, me) {
                PutClaim::Claimed(pos) => Ok(Some(pos)),
                PutClaim::Full => Ok(None),
                PutClaim::Stuck(stuck) => {
                    if recover && self.recover(stuck) {
                        continue;
                    }
                    Ok(None)
                }
                PutClaim::Corrupt => Err(WaitEnd::Corrupted),
            };
        }
    }

    /// Claims a slot for writing without waiting: `Ok(None)` when full.
    pub(crate) fn try_claim_put(&mut self) -> Result<Option<(u64, SlotPayload)>, WaitEnd> {
        Ok(self
            .attempt_put(true)?
            .map(|pos| (pos, self.payload_at(pos))))
    }

    /// Claims a slot for writing, waiting until `deadline`.
    pub(crate) fn claim_put(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        let state = self.state;
        // SAFETY: as in `state()`; a raw read so the closures can borrow `self` mutably.
        let st = unsafe { &*state };
        let spin = self.spin;
        let recover_next = std::cell::Cell::new(false);
        let r = signal::block_on(
            &st.not_full,
            deadline,
            spin,
            || match self.attempt_put(recover_next.take()) {
                Ok(Some(pos)) => Attempt::Ready(Ok(pos)),
                Ok(None) => Attempt::Pending,
                Err(e) => Attempt::Ready(Err(e)),
            },
            || {
                // A slice passed: let the next attempt check stuck claimers, and give up if no
                // consumer is left.
                recover_next.set(true);
                if st.participants.ever(CONSUMER) && !st.participants.any_alive(CONSUMER, 0) {
                    Err(WaitEnd::Disconnected)
                } else {
                    Ok(())
                }
            },
        );
        match r {
            Ok(pos) => Ok((pos, self.payload_at(pos))),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(WaitEnd::Timeout),
        }
    }

    /// Publishes the slot claimed at `pos`. `false` if the message was lost (the slot was taken
    /// from us).
    pub(crate) fn commit_put(&mut self, pos: u64) -> bool {
        let me = self.me();
        if self.joinable {
            // Counted before the message is visible, so a `task_done` never sees it uncounted.
            // ORDERING: Relaxed, the commit's Release store below publishes it with the message.
            self.state().unfinished.fetch_add(1, Ordering::Relaxed);
        }
        let ok = mpmc_index::commit_put(&self.slots, pos, me);
        if !ok && self.joinable {
            // ORDERING: Relaxed, undoes our own uncommitted count.
            self.state().unfinished.fetch_sub(1, Ordering::Relaxed);
        }
        self.state().not_empty.notify();
        ok
    }

    fn attempt_get(&mut self, recover: bool) -> Result<Option<u64>, WaitEnd> {
        let me = self.me();
        loop {
            return match mpmc_index::claim_get(&self.state().idx, &self.slots, me) {
                GetClaim::Claimed(pos) => Ok(Some(pos)),
                GetClaim::Empty => Ok(None),
                GetClaim::Stuck(stuck) => {
                    if recover && self.recover(stuck) {
                        continue;
                    }
                    Ok(None)
                }
                GetClaim::Corrupt => Err(WaitEnd::Corrupted),
            };
        }
    }

    /// Gives up a slot claimed for writing without publishing anything: it is skipped.
    pub(crate) fn abandon_put(&mut self, pos: u64) {
        let me = self.me();
        let stuck = Stuck {
            slot: (pos % self.slots.capacity) as usize,
            word: mpmc_index::pack(pos, me),
            reading: false,
        };
        mpmc_index::recover(&self.slots, stuck);
        self.state().not_empty.notify();
    }

    /// Claims the next message without waiting: `Ok(None)` when empty (or when the next message
    /// is still being written by a live producer).
    pub(crate) fn try_claim_get(&mut self) -> Result<Option<(u64, SlotPayload)>, WaitEnd> {
        // A message being written by a live producer is published within moments: spin a
        // little before reporting empty, and check for a dead writer after that.
        for _ in 0..64 {
            match self.attempt_get(false)? {
                Some(pos) => return Ok(Some((pos, self.payload_at(pos)))),
                None => {
                    if !self.head_in_progress() {
                        return Ok(None);
                    }
                    std::hint::spin_loop();
                }
            }
        }
        Ok(self
            .attempt_get(true)?
            .map(|pos| (pos, self.payload_at(pos))))
    }

    fn head_in_progress(&self) -> bool {
        // ORDERING: Relaxed, a hint only: decides whether to spin once more.
        let pos = self.state().idx.head.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        let word = self
            .slots
            .word((pos % self.slots.capacity) as usize)
            .load(Ordering::Relaxed);
        let (seq, owner) = mpmc_index::unpack(word);
        owner != 0 && seq == pos & ((1 << 48) - 1)
    }

    /// Claims the next message, waiting until `deadline`; `Disconnected` once the queue is
    /// empty and no producer is alive.
    pub(crate) fn claim_get(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        let state = self.state;
        // SAFETY: as in `state()`; a raw read so the closures can borrow `self` mutably.
        let st = unsafe { &*state };
        let spin = self.spin;
        let recover_next = std::cell::Cell::new(false);
        let gone = std::cell::Cell::new(false);
        let r = signal::block_on(
            &st.not_empty,
            deadline,
            spin,
            || match self.attempt_get(recover_next.take()) {
                Ok(Some(pos)) => Attempt::Ready(Ok(pos)),
                Ok(None) if gone.get() => Attempt::Ready(Err(WaitEnd::Disconnected)),
                Ok(None) => Attempt::Pending,
                Err(e) => Attempt::Ready(Err(e)),
            },
            || {
                recover_next.set(true);
                // Disconnected only after one more attempt (with recovery) finds nothing.
                gone.set(st.participants.ever(PRODUCER) && !st.participants.any_alive(PRODUCER, 0));
                Ok(())
            },
        );
        match r {
            Ok(pos) => Ok((pos, self.payload_at(pos))),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(WaitEnd::Timeout),
        }
    }

    /// Frees the slot of a message read at `pos`.
    pub(crate) fn finish_get(&mut self, pos: u64) {
        let me = self.me();
        let _ = mpmc_index::finish_get(&self.slots, pos, me);
        self.state().not_full.notify();
    }

    /// Detached handles of each role that are alive.
    pub(crate) fn table(&self) -> &ParticipantTable {
        &self.state().participants
    }
}

impl Drop for RawQueue {
    fn drop(&mut self) {
        let state = self.state;
        // SAFETY: as in `state()`.
        let st = unsafe { &*state };
        self.member.release(&st.participants);
        // Wake sleepers so that they notice who is gone.
        st.not_empty.notify();
        st.not_full.notify();
    }
}
