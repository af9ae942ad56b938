//! The engine under `Queue`, `JoinableQueue` and `SimpleQueue`: an MPMC ring of fixed-size byte
//! slots in one segment (protocol in `mpmc_index.rs`), with blocking, liveness and recovery.
//!
//! ## Layout of the payload
//!
//! | offset                         | what                                              |
//! |--------------------------------|---------------------------------------------------|
//! | 0                              | [`QueueState`] (padded to 128)                     |
//! | `STATE_BYTES`                  | the participant table: `participants` entries of 24 bytes (padded to 128) |
//! | `STATE_BYTES + table`          | `capacity` slots of `8 + slot_payload` bytes: the slot word, then the payload |

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::raw::ObjectSegment;
use ipc_core::{ObjectHandle, Placement};

use crate::error::{CreateError, OpenError};
use crate::layout;
use crate::membership::{Kernel, Membership, NotAttached, TablePlace};
use crate::mpmc_index::{self, GetClaim, MpmcIndices, PutClaim, SlotWords, Stuck};
use crate::participants::{
    CONSUMER, DEFAULT_PARTICIPANTS, ENTRY_BYTES, Entry, MAX_PARTICIPANTS, PRODUCER, Table,
};
use crate::primitive::{AtomicU32, AtomicU64, CachePadded, Ordering};
use crate::signal::{self, Attempt, Blocked, Signal};
use crate::spill;

/// The shared state of a queue (`#[repr(C)]`, atomics only: any process may write any of it,
/// so no process holds a plain reference to a field that another can change). The sizes are
/// written once at creation and validated by every opener.
#[repr(C)]
pub(crate) struct QueueState {
    pub(crate) idx: MpmcIndices,
    /// Bumped when a message is committed (getters wait on it).
    pub(crate) not_empty: CachePadded<Signal>,
    /// Bumped when a slot frees up (putters wait on it).
    pub(crate) not_full: CachePadded<Signal>,
    /// Messages put but not yet marked done (`JoinableQueue`); see "Joining" in
    /// `joinable_queue.rs`.
    pub(crate) unfinished: CachePadded<AtomicU64>,
    /// Bumped when `unfinished` reaches zero (`join` waits on it).
    pub(crate) all_done: Signal,
    /// [`OPEN`], [`SHUT_DOWN`] or [`SHUT_DOWN_NOW`]: Python's `shutdown(immediate)`. Only ever
    /// goes up (set by a CAS-free `fetch_max`).
    shutdown: AtomicU32,
    /// The roles ever attached (participant table).
    ever: AtomicU32,
    /// Entries of the participant table (written at creation).
    participants: AtomicU32,
    /// Number of slots (written at creation).
    capacity: AtomicU64,
    /// The most messages the queue holds, the capacity its creator asked for: the slot count,
    /// or 1 on the two slots a queue of one needs (written at creation; see `mpmc_index.rs`).
    limit: AtomicU64,
    /// Bytes of payload per slot, a multiple of 8 (written at creation).
    slot_payload: AtomicU64,
    /// A random 128-bit id (written at creation): the spill segments of large serde messages
    /// carry it, so a receiver unlinks only segments of this queue.
    id: [AtomicU64; 2],
}

const STATE_BYTES: usize = layout::padded(size_of::<QueueState>());

/// The queue takes puts and gets.
pub(crate) const OPEN: u32 = 0;
/// Shut down: puts fail, gets drain what is there and then fail.
pub(crate) const SHUT_DOWN: u32 = 1;
/// Shut down immediately: puts and gets fail, and what was there is discarded.
pub(crate) const SHUT_DOWN_NOW: u32 = 2;
/// The most [`look_pause`](ipc_core::raw::sync::look_pause)s between two looks of a put that
/// waits for room in a full queue (about 4 µs; see [`RawQueue::spin_full`]).
const FULL_LOOKS: u64 = 64;
/// Looks of a spinning wait between two reads of the clock (as in `signal::block_on`).
const CLOCK_LOOKS: u64 = 64;

/// How many [`look_pause`](ipc_core::raw::sync::look_pause)s a put waiting for room in a full
/// queue of `limit` messages leaves between two looks: one per 64 messages, between 1 and
/// [`FULL_LOOKS`]. A look takes about as long as the consumer takes for one message or two, so
/// the consumer still has most of the queue in hand when the put looks again.
fn full_looks(limit: u64) -> u64 {
    (limit / 64).clamp(1, FULL_LOOKS)
}

/// The least number of slots (the slot protocol needs two to tell laps apart; a queue of one
/// has two slots and a limit of one).
pub(crate) const MIN_SLOTS: usize = 2;

fn slot_stride(payload: usize) -> Option<usize> {
    payload.checked_next_multiple_of(8)?.checked_add(8)
}

/// Bytes of a participant table of `n` entries, padded to the payload alignment.
pub(crate) fn table_bytes(n: usize) -> Option<usize> {
    n.checked_mul(ENTRY_BYTES)?
        .checked_next_multiple_of(layout::ALIGN)
}

/// Bytes of a whole queue: state, table and slots.
fn queue_bytes(slots: usize, stride: usize, participants: usize) -> Option<usize> {
    slots
        .checked_mul(stride)?
        .checked_add(STATE_BYTES)?
        .checked_add(table_bytes(participants)?)
}

/// Where a queue's slots are.
#[derive(Clone, Copy)]
struct Slots {
    base: *mut u8,
    capacity: u64,
    limit: u64,
    stride: usize,
}

impl SlotWords for Slots {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn limit(&self) -> u64 {
        self.limit
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        let index = mpmc_index::slot_of(index as u64, self.capacity);
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

/// How a queue is made.
#[derive(Debug, Clone)]
pub(crate) struct QueueShape {
    pub(crate) capacity: usize,
    pub(crate) slot_payload: usize,
    pub(crate) participants: usize,
}

impl QueueShape {
    pub(crate) fn new(capacity: usize, slot_payload: usize) -> Self {
        Self {
            capacity,
            slot_payload,
            participants: DEFAULT_PARTICIPANTS,
        }
    }
}

pub(crate) struct RawQueue {
    /// The mapping, shared by the handles made with `try_clone`.
    seg: Arc<ObjectSegment>,
    state: *const QueueState,
    table: TablePlace,
    slots: Slots,
    payload: usize,
    /// The queue's id, read once at open.
    id: u128,
    member: Membership,
    spin: Duration,
    /// Count puts in `unfinished` (`JoinableQueue`).
    joinable: bool,
    /// Slots hold serde records (`spill.rs`): draining a slot removes the spill it names.
    serde: bool,
}

// SAFETY: the pointers point into `seg`'s mapping, kept alive by `RawQueue`; every shared access
// goes through atomics or through slots owned per the protocol.
unsafe impl Send for RawQueue {}
// SAFETY: as above; the only per-handle mutable state (`member`, `spin`) needs `&mut self`.
unsafe impl Sync for RawQueue {}

/// Whether a slot whose word shows no claimer is empty (its message, if any, was read) rather
/// than holding a committed message. Its sequence tells: Empty(p) holds `p`, Full(p) holds
/// `p + 1`, for a position `p` of the slot's own index; the 32-bit sequence is placed on the lap
/// nearest the (possibly stale) head. Anything else counts as not empty.
fn slot_is_empty(seq: u32, index: usize, head: u64, cap: u64) -> bool {
    let d = i64::from(seq.wrapping_sub(head as u32) as i32);
    let pos = head.wrapping_add_signed(d);
    (pos % cap) as usize == index
}

/// What `join_check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinCheck {
    /// Every task is done.
    Done,
    /// Someone alive may still get or finish a task.
    Wait,
    /// These unfinished tasks can never be done: every one was taken by a handle that is gone
    /// (dead, or dropped without `task_done`), or lost with its claimer.
    Lost(u64),
    /// Tasks wait in the queue and no handle that could get them is alive.
    NoConsumer(u64),
}

/// What one attempt to get found.
enum Got {
    /// The message at this position is ours to read.
    Claimed(u64),
    /// Nothing to read.
    Empty,
    /// The next message is being written (or read, a lap back) by a claimer that may be alive.
    Busy,
}

/// What the end-of-slice checks of a waiting claim decided, for its next attempts (an async
/// claim carries it from one poll to the next).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClaimFlags {
    /// The next attempt checks stuck claimers.
    recover: bool,
    /// No producer was alive at the last check.
    gone: bool,
}

/// Which side of the queue a claim takes: a free slot to write (put) or a message to read (get).
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Put,
    Get,
}

impl Side {
    /// The signal a claim of this side sleeps on.
    fn signal(self, st: &QueueState) -> &Signal {
        match self {
            Side::Put => &st.not_full,
            Side::Get => &st.not_empty,
        }
    }
}

/// The end-of-slice check of a waiting claim of `side`: the next attempt recovers stuck
/// claimers; a put gives up at once when no consumer is left, a get only after one more
/// attempt (with recovery) finds nothing once no producer is left.
fn claim_check(
    place: TablePlace,
    side: Side,
    flags: &std::cell::Cell<ClaimFlags>,
) -> Result<(), WaitEnd> {
    let mut f = flags.get();
    f.recover = true;
    let table = place.table();
    let peer = match side {
        Side::Put => CONSUMER,
        Side::Get => PRODUCER,
    };
    let none_left = table.ever(peer) && !table.any_alive(peer, 0);
    let r = match side {
        Side::Put if none_left => Err(WaitEnd::Disconnected),
        Side::Put => Ok(()),
        Side::Get => {
            f.gone = none_left;
            Ok(())
        }
    };
    flags.set(f);
    r
}

/// How a blocked wait ended.
pub(crate) enum WaitEnd {
    Timeout,
    Disconnected,
    Corrupted,
    /// A fork child's copy of a handle without a participant entry of its own.
    NotAttached,
    /// This handle does not hold the role (closed for it, or opened without it).
    Closed,
    /// The queue was shut down (and, for a get, is empty or was shut down immediately).
    ShutDown,
}

impl From<NotAttached> for WaitEnd {
    fn from(_: NotAttached) -> Self {
        WaitEnd::NotAttached
    }
}

impl RawQueue {
    pub(crate) fn create(
        placement: &Placement,
        kind: &str,
        shape: &QueueShape,
        role: u32,
    ) -> Result<Self, CreateError> {
        let capacity = shape.capacity;
        let invalid = CreateError::InvalidCapacity { capacity };
        if capacity == 0 || capacity as u64 > mpmc_index::MAX_CAPACITY {
            return Err(invalid);
        }
        let participants = shape.participants;
        if participants == 0 || participants > MAX_PARTICIPANTS {
            return Err(CreateError::InvalidParticipants { participants });
        }
        let slots = capacity.max(MIN_SLOTS);
        let payload = shape
            .slot_payload
            .checked_next_multiple_of(8)
            .ok_or(CreateError::InvalidCapacity { capacity })?;
        let stride = slot_stride(payload).ok_or(CreateError::InvalidCapacity { capacity })?;
        let bytes = queue_bytes(slots, stride, participants).ok_or(invalid)?;
        let table = table_bytes(participants).ok_or(CreateError::InvalidCapacity { capacity })?;
        let seg = layout::create(placement, kind, bytes, |base| {
            // SAFETY: the payload is fresh, zeroed, 128-aligned and `bytes` long, so it holds
            // the state; it is atomics only, valid zeroed.
            let state = unsafe { &*base.cast::<QueueState>() };
            // ORDERING: Relaxed (all four), published by the header's Release publish.
            state.capacity.store(slots as u64, Ordering::Relaxed);
            state.limit.store(capacity as u64, Ordering::Relaxed);
            state.slot_payload.store(payload as u64, Ordering::Relaxed);
            state
                .participants
                .store(participants as u32, Ordering::Relaxed);
            let id = ipc_core::random_u128();
            state.id[0].store(id as u64, Ordering::Relaxed);
            state.id[1].store((id >> 64) as u64, Ordering::Relaxed);
            for i in 0..slots {
                // SAFETY: slot `i` lies inside the payload
                // (`STATE_BYTES + table + i * stride < bytes`), 8-aligned.
                let word = unsafe {
                    &*base
                        .add(STATE_BYTES + table + i * stride)
                        .cast::<AtomicU64>()
                };
                // ORDERING: Relaxed, published by the header's Release publish.
                word.store(mpmc_index::pack(i as u64, 0), Ordering::Relaxed);
            }
        })?;
        Self::from_segment(Arc::new(seg), role).map_err(|e| match e {
            OpenError::Identity(e) => CreateError::Identity(e),
            _ => CreateError::InvalidCapacity { capacity },
        })
    }

    pub(crate) fn open(handle: &ObjectHandle, kind: &str, role: u32) -> Result<Self, OpenError> {
        Self::from_segment(Arc::new(layout::open(handle, kind)?), role)
    }

    /// Another handle of the same queue in this process, on the same mapping, with the same
    /// roles and options and a participant entry of its own.
    pub(crate) fn try_clone(&self) -> Result<Self, OpenError> {
        let member = Membership::attach(&self.table.table(), self.member.role())?;
        Ok(Self {
            seg: Arc::clone(&self.seg),
            state: self.state,
            table: self.table,
            slots: self.slots,
            payload: self.payload,
            id: self.id,
            member,
            spin: self.spin,
            joinable: self.joinable,
            serde: self.serde,
        })
    }

    fn from_segment(seg: Arc<ObjectSegment>, role: u32) -> Result<Self, OpenError> {
        let bytes = seg.capacity();
        if bytes < STATE_BYTES {
            return Err(OpenError::Corrupted {
                what: "queue smaller than its state",
            });
        }
        let base = seg.payload_ptr();
        // SAFETY: the payload is 128-aligned and at least STATE_BYTES long (checked above), and
        // the state is atomics only: every bit pattern is a valid state.
        let st = unsafe { &*base.cast::<QueueState>() };
        // ORDERING: Relaxed (all four), ordered after the header's publish by the Acquire in
        // its validation; each is loaded once and validated before use.
        let capacity = st.capacity.load(Ordering::Relaxed);
        let limit = st.limit.load(Ordering::Relaxed);
        let payload = st.slot_payload.load(Ordering::Relaxed);
        let participants = st.participants.load(Ordering::Relaxed) as usize;
        let bad = OpenError::Corrupted {
            what: "queue capacity, slot size or participant table does not match its segment",
        };
        let capacity_us =
            usize::try_from(capacity).map_err(|_| OpenError::Corrupted { what: "capacity" })?;
        let payload_us =
            usize::try_from(payload).map_err(|_| OpenError::Corrupted { what: "slot size" })?;
        if capacity_us < MIN_SLOTS
            || capacity > mpmc_index::MAX_CAPACITY
            || limit == 0
            || capacity != limit.max(MIN_SLOTS as u64)
            || payload_us % 8 != 0
            || participants == 0
            || participants > MAX_PARTICIPANTS
        {
            return Err(bad);
        }
        let stride = slot_stride(payload_us).ok_or(OpenError::Corrupted { what: "slot size" })?;
        match queue_bytes(capacity_us, stride, participants) {
            Some(need) if need == bytes => {}
            _ => return Err(bad),
        }
        let table_len = table_bytes(participants).ok_or(OpenError::Corrupted {
            what: "participant table",
        })?;
        // SAFETY: STATE_BYTES + table_len <= bytes (checked above), inside the payload.
        let slots_base = unsafe { base.add(STATE_BYTES + table_len) };
        // SAFETY: the table follows the state, 128-aligned, `participants` entries inside the
        // payload (checked above); entries and `ever` are atomics only and live as long as `seg`.
        let table = unsafe {
            TablePlace::new(
                &raw const st.ever,
                base.add(STATE_BYTES).cast::<Entry>(),
                participants,
            )
        };
        let member = Membership::attach(&table.table(), role)?;
        // ORDERING: Relaxed (both), written before the header's publish, like the sizes.
        let id = u128::from(st.id[0].load(Ordering::Relaxed))
            | (u128::from(st.id[1].load(Ordering::Relaxed)) << 64);
        Ok(Self {
            id,
            state: base.cast::<QueueState>().cast_const(),
            seg,
            table,
            slots: Slots {
                base: slots_base,
                capacity,
                limit,
                stride,
            },
            payload: payload_us,
            member,
            spin: signal::DEFAULT_SPIN,
            joinable: false,
            serde: false,
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

    /// The most messages the queue holds (the capacity asked for at creation).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.limit as usize
    }

    pub(crate) fn payload_size(&self) -> usize {
        self.payload
    }

    /// The queue's random id (as read at open).
    pub(crate) fn id(&self) -> u128 {
        self.id
    }

    pub(crate) fn set_joinable(&mut self, joinable: bool) {
        self.joinable = joinable;
    }

    pub(crate) fn set_serde(&mut self, serde: bool) {
        self.serde = serde;
    }

    /// [`OPEN`], [`SHUT_DOWN`] or [`SHUT_DOWN_NOW`].
    #[inline]
    pub(crate) fn shutdown_state(&self) -> u32 {
        // ORDERING: Acquire, pairs with the Release `fetch_max` in `shutdown`; publishes nothing
        // else (whatever was put before stays in the slots, published by their own words).
        let s = self.state().shutdown.load(Ordering::Acquire);
        s.min(SHUT_DOWN_NOW)
    }

    /// Python's `shutdown(immediate)`: from now on puts fail; gets fail once the queue is empty
    /// (at once if `immediate`, and what is there is discarded by this call). Every blocked
    /// caller wakes.
    pub(crate) fn shutdown(&mut self, immediate: bool) {
        let to = if immediate { SHUT_DOWN_NOW } else { SHUT_DOWN };
        // ORDERING: Release, pairs with the Acquire in `shutdown_state`; the RMW keeps the
        // state monotonic whatever order two shutdowns come in.
        self.state().shutdown.fetch_max(to, Ordering::Release);
        if immediate {
            self.discard_all();
        }
        let st = self.state();
        st.not_empty.notify();
        st.not_full.notify();
        st.all_done.notify();
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
        let place = self.table;
        self.member.set_role(&place.table(), role);
    }

    pub(crate) fn len(&self) -> Option<usize> {
        mpmc_index::len(&self.state().idx, self.slots.capacity)
            .map(|n| n.min(self.slots.limit) as usize)
    }

    #[inline]
    fn me(&mut self) -> Result<u32, NotAttached> {
        let place = self.table;
        self.member.id(&place.table())
    }

    #[inline]
    fn payload_at(&self, pos: u64) -> SlotPayload {
        let index = mpmc_index::slot_of(pos, self.slots.capacity);
        // SAFETY: slot `index` is inside the segment; its payload follows its 8-byte word.
        let ptr = unsafe { self.slots.base.add(index * self.slots.stride + 8) };
        SlotPayload {
            ptr,
            len: self.payload,
        }
    }

    /// Recovers a stuck slot if its claimer is gone (its entry changed hands or was released,
    /// or the kernel says its process is dead); `true` if the slot has moved on.
    ///
    /// A serde queue's slot left in Reading by a dead consumer may name a spill segment that
    /// consumer had not unlinked yet: the recoverer copies the record first (nobody writes a
    /// slot in Reading) and, if its CAS is the one that moves the slot on, removes that spill.
    fn recover(&self, stuck: Stuck) -> bool {
        let (_, owner) = mpmc_index::unpack(stuck.word);
        if self.table().is_alive(owner) {
            return false;
        }
        let spill_name = (self.serde && stuck.reading)
            .then(|| {
                let slot = self.payload_at(stuck.slot as u64);
                // SAFETY: the slot lies inside the mapping; the copies are word-wise atomic, so a
                // racing writer (none while the slot is in Reading) could only tear them.
                match unsafe { spill::header(&slot) } {
                    Some((len, spill::KIND_SPILLED)) => {
                        let mut name = vec![0u8; len];
                        // SAFETY: `len <= slot.len - 8`, checked by `header`.
                        unsafe { spill::body(&slot, &mut name) };
                        Some(name)
                    }
                    _ => None,
                }
            })
            .flatten();
        if mpmc_index::recover(&self.slots, stuck) {
            if let Some(name) = spill_name {
                spill::remove(self.id, &name);
            }
        }
        true
    }

    /// Whether this handle may put now: it holds the producer role and the queue is not shut
    /// down (checked again at every attempt; a caller checks first to refuse before encoding).
    #[inline]
    pub(crate) fn may_put(&self) -> Result<(), WaitEnd> {
        if self.member.role() & PRODUCER == 0 {
            return Err(WaitEnd::Closed);
        }
        if self.shutdown_state() != OPEN {
            return Err(WaitEnd::ShutDown);
        }
        Ok(())
    }

    /// One attempt to claim a slot for writing.
    #[inline]
    fn attempt_put(&mut self, recover: bool) -> Result<Option<u64>, WaitEnd> {
        self.may_put()?;
        let me = self.me()?;
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

    /// Claims a slot for writing, waiting until `deadline`; `Disconnected` at the end of a
    /// slice once no consumer is left.
    pub(crate) fn claim_put(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        self.claim(Side::Put, deadline)
    }

    /// Publishes the slot claimed at `pos`. `false` if the message was lost (the slot was taken
    /// from us).
    pub(crate) fn commit_put(&mut self, pos: u64) -> bool {
        // A claim was made under our id, so we have one.
        let Ok(me) = self.me() else { return false };
        if self.joinable {
            // Counted before the message is visible, so a `task_done` never sees it uncounted.
            // ORDERING: Release, pairs with the Acquire loads of `join_check`: a joiner that
            // counts this task also sees our claim of its slot. (The commit's Release below
            // publishes the count with the message to getters.)
            self.state().unfinished.fetch_add(1, Ordering::Release);
        }
        let ok = mpmc_index::commit_put(&self.slots, pos, me);
        if ok {
            // The commit was a SeqCst CAS of the slot word a getter re-checks.
            self.state().not_empty.notify_after_seqcst_change();
        } else {
            if self.joinable {
                // ORDERING: Relaxed, undoes our own uncommitted count.
                self.state().unfinished.fetch_sub(1, Ordering::Relaxed);
            }
            self.state().not_empty.notify();
        }
        if ok && self.shutdown_state() == SHUT_DOWN_NOW {
            // An immediate shutdown came while we were writing: its drain may have passed our
            // slot already, so discard what is left ourselves (our message too, as if it had
            // come just before the shutdown).
            self.discard_all();
        }
        ok
    }

    /// Takes every message out of the queue and discards it, whatever this handle's roles:
    /// for the last handle's drop, an immediate shutdown, and the reaper. A serde queue's
    /// spill segments go with their messages; a joinable queue counts each as done. Returns how
    /// many were discarded. Stops early at a message a live producer is still writing (that
    /// producer then finds the shutdown and discards it, or the queue's next drain does).
    pub(crate) fn discard_all(&mut self) -> u64 {
        let mut n = 0;
        loop {
            let mut claimed = None;
            for _ in 0..64 {
                match self.attempt_get_any(true) {
                    Ok(Got::Claimed(pos)) => {
                        claimed = Some(pos);
                        break;
                    }
                    Ok(Got::Busy) => std::hint::spin_loop(),
                    _ => break,
                }
            }
            let Some(pos) = claimed else { return n };
            if self.serde {
                let slot = self.payload_at(pos);
                // SAFETY: the slot is ours (claimed for reading) and lies inside the mapping.
                unsafe { spill::remove_named_in(&slot, self.id) };
            }
            self.finish_get(pos);
            if self.joinable {
                self.done_one();
            }
            n += 1;
        }
    }

    /// Adds `delta` to this handle's `taken` count (`JoinableQueue`); `false` if this handle has
    /// no entry in this process (a fork child that could not claim one).
    fn add_taken(&mut self, delta: i64) -> bool {
        let Ok(me) = self.me() else { return false };
        let table = self.table.table();
        let Some(taken) = table.taken(me) else {
            return false;
        };
        // ORDERING: Relaxed, our own entry's count: only this handle writes it.
        let n = taken.load(Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire load in `any_live_taken`: a joiner that sees
        // a lowered count (by `task_done`) also sees the unfinished count lowered before it. A
        // raised count needs no ordering of its own: it comes before our claim, which a joiner
        // sees through the slot's word (see "Joining" in `joinable_queue.rs`).
        taken.store(n.saturating_add_signed(delta), Ordering::Release);
        true
    }

    /// Python's `task_done` (`JoinableQueue`): one unfinished task less, and one less in this
    /// handle's `taken` count if it has any. `false` if no task was unfinished.
    pub(crate) fn task_done(&mut self) -> bool {
        // The unfinished count first: a joiner that sees our `taken` count lowered sees this.
        if !self.done_one() {
            return false;
        }
        let me = self.me().ok();
        let table = self.table.table();
        if let Some(taken) = me.and_then(|me| table.taken(me)) {
            // ORDERING: Relaxed, our own entry's count.
            if taken.load(Ordering::Relaxed) > 0 {
                self.add_taken(-1);
            }
        }
        true
    }

    /// Whether `join` can end, and how (see "Joining" in `joinable_queue.rs`).
    pub(crate) fn join_check(&self) -> JoinCheck {
        let st = self.state();
        // ORDERING: Acquire, pairs with the Release increment of `commit_put` (a counted task's
        // slot claim is visible to the scan below) and with `task_done`'s AcqRel decrement.
        let before = st.unfinished.load(Ordering::Acquire);
        if before == 0 {
            return JoinCheck::Done;
        }
        let table = self.table();
        // ORDERING: Relaxed, only tells the slots' laps apart (see `slot_is_empty`).
        let head = st.idx.head.load(Ordering::Relaxed);
        let mut waiting = false;
        for index in 0..self.slots.capacity as usize {
            // ORDERING: Acquire, pairs with the Release CASes of `finish_get` and `commit_put`:
            // a slot a consumer has released shows its `taken` count raised (it was raised
            // before the claim).
            let word = self.slots.word(index).load(Ordering::Acquire);
            let (seq, owner) = mpmc_index::unpack(word);
            if owner != 0 {
                if table.is_alive(owner) {
                    // Being written or read by a live handle.
                    return JoinCheck::Wait;
                }
                // A dead claimer's message is lost (or skipped): it can never be done.
                continue;
            }
            if !slot_is_empty(seq, index, head, self.slots.capacity) {
                waiting = true;
            }
        }
        if table.any_live_taken() {
            return JoinCheck::Wait;
        }
        // ORDERING: Acquire, as above.
        if st.unfinished.load(Ordering::Acquire) != before {
            return JoinCheck::Wait;
        }
        if !waiting {
            return JoinCheck::Lost(before);
        }
        if table.ever(CONSUMER) && !table.any_alive(CONSUMER, 0) {
            JoinCheck::NoConsumer(before)
        } else {
            JoinCheck::Wait
        }
    }

    /// Counts one task as done (`JoinableQueue`): `false` if none was unfinished.
    pub(crate) fn done_one(&self) -> bool {
        let state = self.state();
        // ORDERING: AcqRel, the decrement publishes the task's work to `join` (Release) and
        // orders after earlier decrements (Acquire); Relaxed for the failed read.
        let r = state
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
        match r {
            Ok(1) => {
                state.all_done.notify();
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    #[inline]
    fn attempt_get(&mut self, recover: bool) -> Result<Option<u64>, WaitEnd> {
        if self.member.role() & CONSUMER == 0 {
            return Err(WaitEnd::Closed);
        }
        let shut = self.shutdown_state();
        if shut == SHUT_DOWN_NOW {
            return Err(WaitEnd::ShutDown);
        }
        // A joinable queue counts the take in our entry before the claim (see "Joining" in
        // `joinable_queue.rs`), and takes the count back if nothing was claimed.
        let reserved = self.joinable && self.add_taken(1);
        let got = self.attempt_get_any(recover);
        if reserved && !matches!(got, Ok(Got::Claimed(_))) {
            self.add_taken(-1);
        }
        match got? {
            Got::Claimed(pos) => Ok(Some(pos)),
            // Shut down and empty: nothing more will come. A message still being written by a
            // live producer (Busy) is waited for.
            Got::Empty if shut == SHUT_DOWN => Err(WaitEnd::ShutDown),
            Got::Empty | Got::Busy => Ok(None),
        }
    }

    /// One attempt to claim the next message, whatever this handle's roles and the queue's
    /// shutdown state.
    #[inline]
    fn attempt_get_any(&mut self, recover: bool) -> Result<Got, WaitEnd> {
        let me = self.me()?;
        loop {
            return match mpmc_index::claim_get(&self.state().idx, &self.slots, me) {
                GetClaim::Claimed(pos) => Ok(Got::Claimed(pos)),
                GetClaim::Empty => Ok(Got::Empty),
                GetClaim::Stuck(stuck) => {
                    if recover && self.recover(stuck) {
                        continue;
                    }
                    Ok(Got::Busy)
                }
                GetClaim::Corrupt => Err(WaitEnd::Corrupted),
            };
        }
    }

    /// Gives up a slot claimed for writing without publishing anything: it is skipped.
    pub(crate) fn abandon_put(&mut self, pos: u64) {
        let Ok(me) = self.me() else { return };
        let stuck = Stuck {
            slot: mpmc_index::slot_of(pos, self.slots.capacity),
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
            .word(mpmc_index::slot_of(pos, self.slots.capacity))
            .load(Ordering::Relaxed);
        let (seq, owner) = mpmc_index::unpack(word);
        owner != 0 && mpmc_index::seq_is(seq, pos)
    }

    /// Claims the next message, waiting until `deadline`; `Disconnected` once the queue is
    /// empty and no producer is alive.
    pub(crate) fn claim_get(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        self.claim(Side::Get, deadline)
    }

    /// A blocking claim of `side`: [`claim_attempt`](Self::claim_attempt) until it is ready,
    /// [`claim_check`](Self::claim_check) at the end of each slice.
    fn claim(
        &mut self,
        side: Side,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        match self.claim_at_once(side) {
            Ok(Some(claimed)) => Ok(claimed),
            Err(e) => Err(e),
            Ok(None) => self.claim_waiting(side, deadline),
        }
    }

    /// The common case of a claim of `side`, blocking or awaited, first: a slot ready at once,
    /// without the wait's set-up (the same attempt as the wait's first; it recovers nothing, as
    /// that one does not). `Ok(None)`: the claim has to wait.
    #[inline]
    pub(crate) fn claim_at_once(
        &mut self,
        side: Side,
    ) -> Result<Option<(u64, SlotPayload)>, WaitEnd> {
        let first = match side {
            Side::Put => self.attempt_put(false),
            Side::Get => self.attempt_get(false),
        };
        Ok(first?.map(|pos| (pos, self.payload_at(pos))))
    }

    /// [`claim`](Self::claim) once its first attempt found nothing.
    #[inline(never)]
    fn claim_waiting(
        &mut self,
        side: Side,
        deadline: Option<Instant>,
    ) -> Result<(u64, SlotPayload), WaitEnd> {
        let state = self.state;
        // SAFETY: as in `state()`; a raw read so the closures can borrow `self` mutably.
        let st = unsafe { &*state };
        let mut spin = self.spin;
        let place = self.table;
        let flags = std::cell::Cell::new(ClaimFlags::default());
        let looks = full_looks(self.slots.limit);
        if matches!(side, Side::Put) && looks > 1 && !spin.is_zero() {
            match self.spin_full(deadline, spin, looks, &flags) {
                Some(r) => return r.map(|pos| (pos, self.payload_at(pos))),
                // The spin is spent: what is left of the wait sleeps.
                None => spin = Duration::ZERO,
            }
        }
        let r = signal::block_on(
            side.signal(st),
            deadline,
            spin,
            ipc_core::raw::sync::look_pause,
            || self.claim_attempt(side, &flags),
            || claim_check(place, side, &flags),
        );
        match r {
            Ok(pos) => Ok((pos, self.payload_at(pos))),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(WaitEnd::Timeout),
        }
    }

    /// The spinning part of a put's wait when the queue is full, if it looks less often than
    /// other waits: the consumer is the slower side and has the queue's `limit` messages in
    /// hand, and every look at the slot the put waits for pulls away the line the consumer is
    /// reading (in a full queue the producer waits at the very slot the consumer is at). So the
    /// put looks in proportion to what the consumer has in hand: [`full_looks`]
    /// [`look_pause`](ipc_core::raw::sync::look_pause)s between two looks, about 4 µs at most,
    /// while the consumer reads far more than that. The clock is read about as often as in
    /// [`signal::block_on`]'s spin, and the consumers are checked once per slice of a long
    /// spin, as there. `None` once `spin` (or the deadline) has passed without a slot: the rest
    /// of the wait sleeps.
    fn spin_full(
        &mut self,
        deadline: Option<Instant>,
        spin: Duration,
        looks: u64,
        flags: &std::cell::Cell<ClaimFlags>,
    ) -> Option<Result<u64, WaitEnd>> {
        let mut end = None;
        let mut checks = signal::SpinCheck::default();
        let mut since_clock = 0;
        loop {
            for _ in 0..looks {
                ipc_core::raw::sync::look_pause();
            }
            if let Attempt::Ready(r) = self.claim_attempt(Side::Put, flags) {
                return Some(r);
            }
            since_clock += looks;
            if since_clock >= CLOCK_LOOKS {
                since_clock = 0;
                let now = Instant::now();
                if now >= *end.get_or_insert_with(|| signal::spin_end_at(now, spin, deadline)) {
                    return None;
                }
                if checks.due(now) {
                    if let Err(e) = claim_check(self.table, Side::Put, flags) {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// One attempt of a waiting claim of `side`, with recovery of stuck claimers when the last
    /// check asked for it; `Disconnected` when the last check found no peer left and this
    /// attempt found nothing either.
    #[inline]
    fn claim_attempt(
        &mut self,
        side: Side,
        flags: &std::cell::Cell<ClaimFlags>,
    ) -> Attempt<u64, WaitEnd> {
        let mut f = flags.get();
        let recover = std::mem::take(&mut f.recover);
        flags.set(f);
        let attempt = match side {
            Side::Put => self.attempt_put(recover),
            Side::Get => self.attempt_get(recover),
        };
        match attempt {
            Ok(Some(pos)) => Attempt::Ready(Ok(pos)),
            Ok(None) if f.gone => Attempt::Ready(Err(WaitEnd::Disconnected)),
            Ok(None) => Attempt::Pending,
            Err(e) => Attempt::Ready(Err(e)),
        }
    }

    /// One poll of an async claim of `side`, with the attempts and checks of the blocking
    /// claims ([`claim_put`](Self::claim_put), [`claim_get`](Self::claim_get)), the waiting
    /// done by `wait` (see `awaiting.rs`); `flags` carries what the checks decided from one
    /// poll to the next.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn poll_claim(
        &mut self,
        side: Side,
        deadline: Option<Instant>,
        wait: &mut crate::awaiting::SignalWait,
        flags: &mut ClaimFlags,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(u64, SlotPayload), WaitEnd>> {
        let state = self.state;
        // SAFETY: as in `state()`; a raw read so the closures can borrow `self` mutably.
        let st = unsafe { &*state };
        let spin = self.spin;
        let place = self.table;
        let cell = std::cell::Cell::new(*flags);
        let r = wait.poll(
            side.signal(st),
            deadline,
            spin,
            cx,
            || self.claim_attempt(side, &cell),
            || claim_check(place, side, &cell),
        );
        *flags = cell.get();
        r.map(|r| match r {
            Ok(pos) => Ok((pos, self.payload_at(pos))),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(WaitEnd::Timeout),
        })
    }

    /// Frees the slot of a message read at `pos`.
    pub(crate) fn finish_get(&mut self, pos: u64) {
        if let Ok(me) = self.me() {
            if mpmc_index::finish_get(&self.slots, pos, me) {
                // The release was a SeqCst CAS of the slot word a putter re-checks.
                self.state().not_full.notify_after_seqcst_change();
                return;
            }
        }
        self.state().not_full.notify();
    }

    /// Whether any other handle (of any process) may still be attached.
    pub(crate) fn others_alive(&mut self) -> bool {
        match self.me() {
            Ok(me) => self.table().any_alive(crate::participants::BOTH, me),
            // A fork child's copy without an entry: the parent (at least) is attached.
            Err(NotAttached) => true,
        }
    }

    /// The participant table.
    pub(crate) fn table(&self) -> Table<'_, Kernel> {
        self.table.table()
    }
}

impl Drop for RawQueue {
    fn drop(&mut self) {
        self.member.release(&self.table.table());
        let st = self.state();
        // Wake sleepers so that they notice who is gone.
        st.not_empty.notify();
        st.not_full.notify();
    }
}
