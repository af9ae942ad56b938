//! The single-producer single-consumer ring of `Pod` values in shared memory: the fastest path of
//! the crate.
//!
//! The design follows `rtrb` (Matthias Geier) and the classic Lamport ring: a head index only
//! the consumer writes and a tail index only the producer writes, each on its own cache line,
//! each side keeping a private cached copy of the other's index so that it touches the shared
//! line only when its cached view says full (producer) or empty (consumer). Indices count
//! positions forever (u64, no wrap in practice); a slot is `position % capacity`.
//!
//! ## Index protocol
//!
//! | step              | who      | operation                                           |
//! |-------------------|----------|-----------------------------------------------------|
//! | write slots `tail..tail+n` | producer | after `tail + n - head <= capacity` (head read Acquire) |
//! | publish           | producer | `tail = tail + n` (Release)                         |
//! | read slots `head..head+n`  | consumer | after `head + n <= tail` (tail read Acquire)     |
//! | release           | consumer | `head = head + n` (Release)                         |
//!
//! A peer may write anything into the indices: every loaded index is checked
//! (`head <= tail <= head + capacity` from the reader's side) and an impossible value gives
//! `Corrupted`. Slot numbers are always reduced modulo the capacity, so no value can reach
//! outside the ring.

//! ## Who may push and pop: roles claimed in shared memory
//!
//! A ring has one producer and one consumer, and the index protocol above is only sound with
//! exactly one of each, so each role is a one-holder word in the ring's state (`claim.rs`):
//! `0` free, `pid << 32 | start_tag` held, `1 << 63 | token` handed over. A second opener of a
//! held role gets [`OpenError::RoleTaken`]; a role whose holder the kernel says is dead is
//! taken over by the next opener; a dropped handle frees its role.
//!
//! Passing an end to another process is a hand-over: serialising a [`Producer`] or
//! [`Consumer`] moves its role word to `HandOff(token)` with a fresh random token that the
//! serialised bytes carry, and the original handle becomes inert (its operations return
//! `HandedOver`). The first deserialiser presenting the token takes the role; a second
//! deserialisation of the same bytes is refused (`RoleTaken`). While a hand-over is in flight, the
//! other end counts its peer as present as long as the inert original handle lives (as a pipe
//! reader gets EOF only once the writer's last descriptor closes); once that handle drops (or its
//! process dies), a hand-over nobody took counts as gone. A fork child holding a copy of an
//! end may act only once it has claimed the role itself (its parent dropped the end or died);
//! until then its operations return `NotAttached`.
//!
//! | role word     | `open` / `open(handle)`           | deserialise with token `t`     | holder's drop | holder serialises |
//! |---------------|-----------------------------------|--------------------------------|---------------|-------------------|
//! | Free          | Held(me)                          | Held(me)                       | —             | —                 |
//! | Held(x), x live or Unknown | `RoleTaken { pid }`  | `RoleTaken { pid }`            | Free          | HandOff(t'), inert |
//! | Held(x), x dead | Held(me)                        | Held(me)                       | —             | —                 |
//! | HandOff(t)    | `RoleInTransit`                   | Held(me) if the token is `t`, else `RoleInTransit` | — | —        |

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use ipc_core::raw::ObjectSegment;
use ipc_core::{ObjectHandle, Placement};
use serde::{Deserialize, Serialize};

use crate::claim::{self, Taken};
use crate::error::{CreateError, GetError, OpenError, PutError, TryGetError, TryPutError};
use crate::layout;
use crate::membership::{Kernel, current_identity};
use crate::participants::{Identity, Oracle, split_identity};
use crate::primitive::{AtomicU64, CachePadded, Ordering};
use crate::signal::{self, Attempt, Blocked, Signal};
use crate::spsc_index::{ConsumerIndex, Corrupt, ProducerIndex, SpscIndices};

#[cfg(not(loom))]
mod asynch;
#[cfg(not(loom))]
pub use asynch::RingStream;

/// The shared part of one SPSC ring (`#[repr(C)]`, all bit patterns valid).
#[repr(C)]
pub(crate) struct SpscState {
    /// The head and tail positions.
    pub(crate) idx: SpscIndices,
    /// Bumped when items arrive (the consumer waits on it).
    pub(crate) items: CachePadded<Signal>,
    /// Bumped when space frees up (the producer waits on it).
    pub(crate) space: CachePadded<Signal>,
    /// The producer and consumer role words (see the module docs).
    pub(crate) roles: CachePadded<Roles>,
}

/// The two role words of a ring, and for each the identity of the process whose handle made the
/// hand-over in flight (`#[repr(C)]`, atomics only).
#[repr(C)]
pub(crate) struct Roles {
    producer: AtomicU64,
    consumer: AtomicU64,
    /// While the producer word is a hand-over: the process whose (now inert) handle made it, or
    /// 0 once that handle has dropped.
    producer_by: AtomicU64,
    /// The same for the consumer.
    consumer_by: AtomicU64,
}

/// Which end of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Producer,
    Consumer,
}

impl SpscState {
    fn role(&self, end: End) -> &AtomicU64 {
        match end {
            End::Producer => &self.roles.producer,
            End::Consumer => &self.roles.consumer,
        }
    }

    fn handed_by(&self, end: End) -> &AtomicU64 {
        match end {
            End::Producer => &self.roles.producer_by,
            End::Consumer => &self.roles.consumer_by,
        }
    }
}

/// The shared parts of a ring inside a segment.
pub(crate) struct RingParts<T> {
    pub(crate) state: *const SpscState,
    pub(crate) slots: *mut T,
    pub(crate) capacity: u64,
}

impl<T> Clone for RingParts<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for RingParts<T> {}

pub(crate) const STATE_BYTES: usize = layout::padded(size_of::<SpscState>());

/// Bytes one ring of `capacity` elements of `T` needs, its state included.
pub(crate) fn ring_bytes<T>(capacity: usize) -> Option<usize> {
    let data = capacity.checked_mul(size_of::<T>())?;
    STATE_BYTES.checked_add(data)
}

impl<T: Pod> RingParts<T> {
    /// The parts of a ring of `capacity` elements starting at `base`.
    ///
    /// # Safety
    /// `base` must be 128-aligned and valid for `ring_bytes::<T>(capacity)` bytes for as long as
    /// the parts are used.
    pub(crate) unsafe fn at(base: *mut u8, capacity: u64) -> Self {
        Self {
            state: base.cast::<SpscState>(),
            // SAFETY: STATE_BYTES is inside the region per the contract.
            slots: unsafe { base.add(STATE_BYTES) }.cast::<T>(),
            capacity,
        }
    }

    pub(crate) fn state(&self) -> &SpscState {
        // SAFETY: `at`'s contract keeps the state mapped and aligned while the parts are used;
        // it is made of atomics only, valid for every bit pattern.
        unsafe { &*self.state }
    }

    /// The slot of position `pos` (the queue's helper: a mask for a power-of-two capacity).
    #[inline]
    fn slot(&self, pos: u64) -> usize {
        crate::mpmc_index::slot_of(pos, self.capacity)
    }

    /// Copies `src` into the ring starting at position `pos` (wrapping), with word-wise atomic
    /// stores (`ipc_core::raw::pod`): a hostile or confused peer racing the copy can only tear it.
    ///
    /// # Safety
    /// The slots `pos..pos + src.len()` must be owned by the caller (free per the protocol) and
    /// `src.len() <= capacity`.
    #[inline]
    pub(crate) unsafe fn write(&self, pos: u64, src: &[T]) {
        let cap = self.capacity as usize;
        let start = self.slot(pos);
        let first = src.len().min(cap - start);
        let (a, b) = src.split_at(first);
        // SAFETY: `start + first <= cap`: inside the slot array; the caller owns these slots and
        // no process holds a reference into them (the ring lends none).
        unsafe { ipc_core::raw::pod::store_slice(a, self.slots.add(start)) };
        if !b.is_empty() {
            // SAFETY: the remainder wraps to the start of the array, `b.len() <= start`.
            unsafe { ipc_core::raw::pod::store_slice(b, self.slots) };
        }
    }

    /// Writes one value into the slot of `pos` (kept in registers for a 4- or 8-byte `T`).
    ///
    /// # Safety
    /// As for [`write`](Self::write), for one slot.
    #[inline(always)]
    pub(crate) unsafe fn write_one(&self, pos: u64, value: T) {
        // SAFETY: `slot(pos) < capacity`: inside the slot array; the caller owns the slot.
        unsafe { ipc_core::raw::pod::store_one(self.slots.add(self.slot(pos)), value) }
    }

    /// Reads the value in the slot of `pos`.
    ///
    /// # Safety
    /// As for [`read`](Self::read), for one slot.
    #[inline(always)]
    pub(crate) unsafe fn read_one(&self, pos: u64) -> T {
        // SAFETY: `slot(pos) < capacity`: inside the slot array; `T: Pod`, so any bytes a
        // hostile peer left there are a valid `T`.
        unsafe { ipc_core::raw::pod::load_one(self.slots.add(self.slot(pos))) }
    }

    /// Copies slots starting at `pos` (wrapping) into `dst`, with word-wise atomic loads.
    ///
    /// # Safety
    /// The slots `pos..pos + dst.len()` must be readable by the caller per the protocol and
    /// `dst.len() <= capacity`.
    #[inline]
    pub(crate) unsafe fn read(&self, pos: u64, dst: &mut [T]) {
        let cap = self.capacity as usize;
        let start = self.slot(pos);
        let first = dst.len().min(cap - start);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: `start + first <= cap`: inside the slot array. `T: Pod`, so any bytes a
        // hostile peer left there are a valid `T`.
        unsafe { ipc_core::raw::pod::load_slice(self.slots.add(start), a) };
        if !b.is_empty() {
            // SAFETY: the remainder wraps to the start of the array, `b.len() <= start`.
            unsafe { ipc_core::raw::pod::load_slice(self.slots, b) };
        }
    }
}

const KIND: &str = "RingBuffer";

fn kind<T>() -> String {
    format!("{KIND}<{}>", std::any::type_name::<T>())
}

/// A single-producer single-consumer ring of `T: Pod` values in shared memory, created in two
/// halves: a [`Producer`] and a [`Consumer`], either of which can be passed to another process
/// by its handle.
///
/// ```
/// use ipc_queue::RingBuffer;
///
/// let (mut tx, mut rx) = RingBuffer::<u64>::new(4)?;
/// tx.push(1)?;
/// assert_eq!(tx.push_slice(&[2, 3, 4, 5])?, 3); // only 3 free slots
/// assert_eq!(rx.pop()?, 1);
/// let mut buf = [0; 8];
/// assert_eq!(rx.pop_slice(&mut buf)?, 3);
/// assert_eq!(&buf[..3], &[2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RingBuffer<T> {
    _t: PhantomData<T>,
}

impl<T: Pod> RingBuffer<T> {
    /// A ring of `capacity` slots in a new anonymous segment.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(capacity: usize) -> Result<(Producer<T>, Consumer<T>), CreateError> {
        Self::create(&Placement::Anonymous, capacity)
    }

    /// A ring of `capacity` slots placed as asked.
    pub fn create(
        placement: &Placement,
        capacity: usize,
    ) -> Result<(Producer<T>, Consumer<T>), CreateError> {
        let bytes = match ring_bytes::<T>(capacity) {
            Some(b) if capacity > 0 && size_of::<T>() > 0 => b,
            _ => return Err(CreateError::InvalidCapacity { capacity }),
        };
        let seg = layout::create(placement, &kind::<T>(), bytes, |base| {
            // SAFETY: the fresh, zeroed, 128-aligned payload starts with the ring's state, made
            // of atomics only.
            let st = unsafe { &*base.cast::<SpscState>() };
            // A ring has one waiter per signal at most: its wake-ups take the asymmetric
            // barrier (see `signal.rs`).
            st.items.make_asymmetric();
            st.space.make_asymmetric();
        })?;
        let shared = Shared::<T>::from_segment(seg)
            .map_err(|_| CreateError::InvalidCapacity { capacity })?;
        let shared = std::sync::Arc::new(shared);
        let fail = |e: OpenError| match e {
            OpenError::Identity(e) => CreateError::Identity(e),
            _ => CreateError::InvalidCapacity { capacity },
        };
        let p = Producer::attach(shared.clone(), None).map_err(fail)?;
        let c = Consumer::attach(shared, None).map_err(fail)?;
        Ok((p, c))
    }
}

struct Shared<T> {
    seg: ObjectSegment,
    parts: RingParts<T>,
}

// SAFETY: the parts point into `seg`'s mapping, which lives as long as `Shared`; all shared
// accesses go through atomics or through slots owned per the index protocol.
unsafe impl<T: Pod> Send for Shared<T> {}
// SAFETY: as above; `Shared` itself has no interior state besides the mapping.
unsafe impl<T: Pod> Sync for Shared<T> {}

impl<T: Pod> Shared<T> {
    fn from_segment(seg: ObjectSegment) -> Result<Self, OpenError> {
        let bytes = seg.capacity();
        let elem = size_of::<T>();
        let data = bytes.checked_sub(STATE_BYTES).ok_or(OpenError::Corrupted {
            what: "ring smaller than its state",
        })?;
        if elem == 0 {
            return Err(OpenError::Corrupted {
                what: "zero-sized element",
            });
        }
        let capacity = data / elem;
        if capacity == 0 || data % elem != 0 {
            return Err(OpenError::Corrupted {
                what: "ring size does not match its element type",
            });
        }
        // SAFETY: the payload is 128-aligned (layout::ALIGN) and `bytes` long, which is
        // `ring_bytes(capacity)`; it lives as long as `seg`, which `Shared` owns.
        let parts = unsafe { RingParts::at(seg.payload_ptr(), capacity as u64) };
        Ok(Self { seg, parts })
    }

    fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Self::from_segment(layout::open(handle, &kind::<T>())?)
    }

    fn role(&self, end: End) -> &AtomicU64 {
        self.parts.state().role(end)
    }

    fn handed_by(&self, end: End) -> &AtomicU64 {
        self.parts.state().handed_by(end)
    }
}

fn taken(t: Taken) -> OpenError {
    match t {
        Taken::By(who) => OpenError::RoleTaken {
            pid: split_identity(who).0,
        },
        Taken::InTransit => OpenError::RoleInTransit,
    }
}

/// Why a handle may not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// It handed its role over (it was serialised).
    HandedOver,
    /// It is a fork child's copy and could not claim the role.
    NotAttached,
}

/// A handle's hold on its role word.
struct RoleHold {
    end: End,
    /// The holder's identity as written in the word.
    me: Identity,
    /// The fork generation the role was claimed in (see `fork::generation`).
    generation: u64,
    /// 0 while this handle holds the role; the token of its hand-over once serialised. An
    /// atomic because serialising takes `&self`; it is private to this handle (not shared
    /// memory).
    handed: AtomicU64,
}

impl RoleHold {
    /// Claims the role `end` of `shared`: by hand-over when `token` is that of the word's
    /// hand-over, else if it is free or its holder is dead.
    fn claim<T: Pod>(shared: &Shared<T>, end: End, token: Option<u64>) -> Result<Self, OpenError> {
        let generation = crate::fork::generation();
        let me = current_identity().map_err(OpenError::Identity)?;
        let word = shared.role(end);
        let by_token = token.is_some_and(|t| claim::take_over(word, t, me));
        if !by_token {
            claim::claim(word, me, &Kernel).map_err(taken)?;
        }
        Ok(Self {
            end,
            me,
            generation,
            handed: AtomicU64::new(0),
        })
    }

    /// Whether this handle holds its role as it did at the last call, with nothing to reload:
    /// the fast paths' check (two loads of this process's memory).
    #[inline(always)]
    fn steady(&self) -> bool {
        // ORDERING: Relaxed, as in `check`.
        self.generation == crate::fork::generation() && self.handed.load(Ordering::Relaxed) == 0
    }

    /// Whether this handle may act; `Ok(true)` when it has just claimed the role in a fork child
    /// (the caller then reloads its private index from shared memory).
    #[inline]
    fn check<T: Pod>(&mut self, shared: &Shared<T>) -> Result<bool, Lost> {
        if self.generation != crate::fork::generation() {
            return self.claim_in_child(shared);
        }
        // ORDERING: Relaxed, a private flag of this handle, set by `hand_over` through `&self`
        // in this same thread (serialising needs no concurrent `&mut`).
        if self.handed.load(Ordering::Relaxed) != 0 {
            return Err(Lost::HandedOver);
        }
        Ok(false)
    }

    #[cold]
    fn claim_in_child<T: Pod>(&mut self, shared: &Shared<T>) -> Result<bool, Lost> {
        // ORDERING: Relaxed, as in `check`.
        if self.handed.load(Ordering::Relaxed) != 0 {
            return Err(Lost::HandedOver);
        }
        let me = current_identity().map_err(|_| Lost::NotAttached)?;
        claim::claim(shared.role(self.end), me, &Kernel).map_err(|_| Lost::NotAttached)?;
        self.me = me;
        self.generation = crate::fork::generation();
        Ok(true)
    }

    /// Hands the role over (serialisation): returns the token the serialised handle carries.
    /// Serialising the same handle again returns the same token.
    fn hand_over<T: Pod>(&self, shared: &Shared<T>) -> Result<u64, &'static str> {
        if self.generation != crate::fork::generation() {
            return Err(
                "this ring end does not hold its role in this process (a fork child's copy)",
            );
        }
        let token = claim::new_token(ipc_core::random_u128());
        // ORDERING: AcqRel on success (Relaxed would do: a private word; AcqRel orders the two
        // serialisers of one `&Producer` on other threads), Acquire on failure to read the
        // winner's token.
        match self
            .handed
            .compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // ORDERING: Relaxed, published by the Release CAS of the hand-over below (its
                // readers load the role word with Acquire first).
                shared.handed_by(self.end).store(self.me, Ordering::Relaxed);
                if claim::hand_over(shared.role(self.end), self.me, token) {
                    Ok(token)
                } else {
                    Err("this ring end's role word no longer names this handle (corrupted)")
                }
            }
            Err(earlier) => Ok(earlier),
        }
    }

    /// Frees the role if this handle holds it in this process. An inert handle whose
    /// hand-over is still in flight records that it has gone, so that the other end stops
    /// counting on it (as a reader gets EOF once the writer's last descriptor closes): the
    /// hand-over can still be taken by its token.
    fn release<T: Pod>(&self, shared: &Shared<T>) {
        if self.generation != crate::fork::generation() {
            return;
        }
        // ORDERING: Relaxed, as in `check`.
        let token = self.handed.load(Ordering::Relaxed);
        if token == 0 {
            claim::release(shared.role(self.end), self.me);
        } else if claim::holder(
            // ORDERING: Acquire, pairs with the Release CAS of `claim::hand_over`: only a
            // hand-over still ours (not yet taken) is marked.
            shared.role(self.end).load(Ordering::Acquire),
        ) == claim::Holder::HandOff(token)
        {
            // ORDERING: Release, pairs with the Acquire in `end_gone`. Relaxed on failure: a
            // later hand-over (someone else's) owns the word now.
            let _ = shared.handed_by(self.end).compare_exchange(
                self.me,
                0,
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}

/// Whether the other end's role is gone: free, held by a process the kernel says is dead, or
/// handed over with nobody having taken it and the handle that made the hand-over gone too.
fn end_gone(state: &SpscState, end: End) -> bool {
    if claim::gone(state.role(end), &Kernel) {
        return true;
    }
    // ORDERING: Acquire, pairs with the Release of the hand-over CAS (whose `handed_by` store
    // comes before it).
    if let claim::Holder::HandOff(_) = claim::holder(state.role(end).load(Ordering::Acquire)) {
        // ORDERING: Acquire, pairs with the Release CAS in `RoleHold::release`.
        let by = state.handed_by(end).load(Ordering::Acquire);
        return by == 0 || Kernel.liveness(by) == ipc_core::Liveness::Dead;
    }
    false
}

/// The writing half of a [`RingBuffer`]: the ring's one producer. Opening a second producer of
/// the same ring while this one lives (in any process) fails with [`OpenError::RoleTaken`].
/// Serialising it (to pass it to a child process) hands the role over to whoever deserialises
/// it, and this handle goes inert.
///
/// A ring end has no `try_clone`, unlike the queues and pipe ends: it is the ring's one
/// producer, a single role, and a second handle would be a second producer (the index protocol
/// is sound only with one). Pass it on (serialise it, or give it to a `Process`), or use a
/// [`Queue`](crate::Queue) when several processes put.
pub struct Producer<T: Pod> {
    shared: std::sync::Arc<Shared<T>>,
    index: ProducerIndex,
    hold: RoleHold,
    spin: Duration,
}

/// The reading half of a [`RingBuffer`]: the ring's one consumer (claimed like the producer).
///
/// It has no `try_clone` for the same reason as [`Producer`]: one consumer is a single role.
pub struct Consumer<T: Pod> {
    shared: std::sync::Arc<Shared<T>>,
    index: ConsumerIndex,
    hold: RoleHold,
    spin: Duration,
}

impl<T: Pod> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("index", &self.index)
            .finish()
    }
}

impl<T: Pod> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("index", &self.index)
            .finish()
    }
}

fn corrupt_indices(_: Corrupt) -> OpenError {
    OpenError::Corrupted {
        what: "ring indices",
    }
}

/// What both ends of a ring do alike, each with its own role and index: attaching (claiming the
/// role, then reading the shared index the claim made visible), its handle, capacity and spin,
/// and the check before an operation (which reloads the index after a claim in a fork child).
macro_rules! end_common {
    ($ty:ident, $end:expr, $index:ident) => {
        impl<T: Pod> $ty<T> {
            fn attach(
                shared: std::sync::Arc<Shared<T>>,
                token: Option<u64>,
            ) -> Result<Self, OpenError> {
                let hold = RoleHold::claim(&shared, $end, token)?;
                let parts = shared.parts;
                // Read after the claim, whose Acquire makes the previous holder's last index
                // visible.
                let index = match $index::new(&parts.state().idx, parts.capacity) {
                    Ok(index) => index,
                    Err(e) => {
                        hold.release(&shared);
                        return Err(corrupt_indices(e));
                    }
                };
                Ok(Self {
                    shared,
                    index,
                    hold,
                    spin: signal::DEFAULT_SPIN,
                })
            }

            /// The handle another process attaches with (as producer or consumer).
            pub fn handle(&self) -> ObjectHandle {
                self.shared.seg.handle()
            }

            /// How many slots the ring has.
            pub fn capacity(&self) -> usize {
                self.index.capacity as usize
            }

            /// How long blocking calls spin before they sleep (default 20 µs; zero: sleep at
            /// once). A call's timeout ends its spin, and a spin longer than 20 ms checks the
            /// peer every 20 ms as a sleeping wait does, so even `Duration::MAX` (spin until
            /// ready) ends once the peer is gone.
            pub fn set_spin(&mut self, spin: Duration) {
                self.spin = spin;
            }

            fn parts(&self) -> RingParts<T> {
                self.shared.parts
            }

            /// Whether this handle may act; reloads the private index after a claim in a fork
            /// child.
            #[inline]
            fn ready(&mut self) -> Result<(), Lost> {
                if self.hold.check(&self.shared)? {
                    let parts = self.parts();
                    self.index = $index::new(&parts.state().idx, parts.capacity)
                        .map_err(|_| Lost::NotAttached)?;
                }
                Ok(())
            }
        }
    };
}

end_common!(Producer, End::Producer, ProducerIndex);
end_common!(Consumer, End::Consumer, ConsumerIndex);

impl<T: Pod> Producer<T> {
    /// Attaches as the producer of the ring a handle names. Fails with
    /// [`OpenError::RoleTaken`] while another live handle is the producer.
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Self::attach(std::sync::Arc::new(Shared::open(handle)?), None)
    }

    /// Pushes one value if a slot is free.
    #[inline(always)]
    pub fn push(&mut self, value: T) -> Result<(), TryPutError<T>> {
        if self.fast() {
            self.write_one(value);
            return Ok(());
        }
        self.push_checked(value)
    }

    /// The per-message path's test, small enough to inline into the caller's loop: a handle
    /// that holds its role and a cached view with a free slot.
    #[inline(always)]
    fn fast(&self) -> bool {
        self.hold.steady() && self.index.tail - self.index.head_cache < self.index.capacity
    }

    /// Writes and publishes one value into the free slot at `tail`, and wakes a sleeping
    /// consumer if there is one.
    #[inline(always)]
    fn write_one(&mut self, value: T) {
        let parts = self.parts();
        // SAFETY: the slot at `tail` is free per the protocol (the caller checked) and we hold
        // the producer role.
        unsafe { parts.write_one(self.index.tail, value) };
        self.index.commit(&parts.state().idx, 1);
        parts.state().items.notify();
    }

    /// [`push`](Self::push) when the fast path could not decide: a role to check or reclaim,
    /// or a cached head to refresh.
    #[inline(never)]
    fn push_checked(&mut self, value: T) -> Result<(), TryPutError<T>> {
        if let Err(lost) = self.ready() {
            return Err(lost_put(lost, value));
        }
        let parts = self.parts();
        match self.index.free(&parts.state().idx, 1) {
            Ok(0) => Err(TryPutError::Full(value)),
            Ok(_) => {
                self.write_one(value);
                Ok(())
            }
            Err(Corrupt) => Err(TryPutError::Corrupted(value)),
        }
    }

    /// Pushes as many values of `values` as there are free slots; returns how many.
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, TryPutError<()>> {
        self.ready().map_err(|lost| lost_put(lost, ()))?;
        let parts = self.parts();
        let free = self
            .index
            .free(&parts.state().idx, values.len() as u64)
            .map_err(|_| TryPutError::Corrupted(()))?;
        let n = (free as usize).min(values.len());
        if n > 0 {
            // SAFETY: `n` slots from `tail` are free per the protocol and we hold the producer
            // role; n <= capacity.
            unsafe { parts.write(self.index.tail, &values[..n]) };
            self.index.commit(&parts.state().idx, n as u64);
            parts.state().items.notify();
        }
        Ok(n)
    }

    /// Pushes one value, waiting for a free slot as long as a consumer is alive.
    #[inline]
    pub fn push_blocking(&mut self, value: T) -> Result<(), PutError<T>> {
        // The common case, a free slot, inline; everything else (a wait, an error) out of line.
        if self.fast() {
            self.write_one(value);
            return Ok(());
        }
        self.push_blocking_checked(value)
    }

    #[inline(never)]
    fn push_blocking_checked(&mut self, value: T) -> Result<(), PutError<T>> {
        match self.push_checked(value) {
            Ok(()) => Ok(()),
            Err(TryPutError::Full(value)) => self.push_until(value, None),
            Err(e) => Err(PutError::from(e)),
        }
    }

    /// Pushes one value, waiting at most `timeout` for a free slot.
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.push_until(value, Some(Instant::now() + timeout))
    }

    #[inline(never)]
    fn push_until(&mut self, value: T, deadline: Option<Instant>) -> Result<(), PutError<T>> {
        let parts = self.parts();
        let spin = self.spin;
        let r = signal::block_on(
            &parts.state().space,
            deadline,
            spin,
            ipc_core::raw::sync::look_pause,
            || self.push_attempt(value),
            || consumer_present(parts.state(), value),
        );
        match r {
            Ok(()) => Ok(()),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(PutError::Timeout(value)),
        }
    }
}

fn lost_put<T>(lost: Lost, value: T) -> TryPutError<T> {
    match lost {
        Lost::HandedOver => TryPutError::HandedOver(value),
        Lost::NotAttached => TryPutError::NotAttached(value),
    }
}

fn lost_get(lost: Lost) -> TryGetError {
    match lost {
        Lost::HandedOver => TryGetError::HandedOver,
        Lost::NotAttached => TryGetError::NotAttached,
    }
}

impl<T: Pod> Producer<T> {
    /// One attempt of a waiting push, blocking or async.
    #[inline]
    pub(crate) fn push_attempt(&mut self, value: T) -> Attempt<(), PutError<T>> {
        match self.push(value) {
            Ok(()) => Attempt::Ready(Ok(())),
            Err(TryPutError::Full(_)) => Attempt::Pending,
            Err(e) => Attempt::Ready(Err(PutError::from(e))),
        }
    }
}

impl<T: Pod> Consumer<T> {
    /// One attempt of a waiting pop, blocking or async.
    #[inline]
    pub(crate) fn pop_attempt(&mut self) -> Attempt<T, GetError> {
        match self.pop() {
            Ok(v) => Attempt::Ready(Ok(v)),
            Err(TryGetError::Empty) => Attempt::Pending,
            Err(e) => Attempt::Ready(Err(GetError::from(e))),
        }
    }
}

/// The liveness check of a waiting push: `Disconnected` once the consumer is gone.
pub(crate) fn consumer_present<T>(state: &SpscState, value: T) -> Result<(), PutError<T>> {
    if end_gone(state, End::Consumer) {
        Err(PutError::Disconnected(value))
    } else {
        Ok(())
    }
}

/// The liveness check of a waiting pop: `Disconnected` once the producer is gone.
pub(crate) fn producer_present(state: &SpscState) -> Result<(), GetError> {
    if end_gone(state, End::Producer) {
        Err(GetError::Disconnected)
    } else {
        Ok(())
    }
}

impl<T: Pod> Drop for Producer<T> {
    fn drop(&mut self) {
        let parts = self.parts();
        self.hold.release(&self.shared);
        // Wake a consumer asleep on an empty ring, so it notices the producer is gone.
        parts.state().items.notify();
    }
}

impl<T: Pod> Consumer<T> {
    /// Attaches as the consumer of the ring a handle names. Fails with
    /// [`OpenError::RoleTaken`] while another live handle is the consumer.
    ///
    /// ```
    /// use ipc_queue::{Consumer, RingBuffer};
    ///
    /// let (mut tx, rx) = RingBuffer::<u32>::new(8)?;
    /// let handle = tx.handle();
    /// assert!(Consumer::<u32>::open(&handle).is_err()); // `rx` is the consumer
    /// drop(rx);
    /// let mut rx = Consumer::<u32>::open(&handle)?; // in another process, typically
    /// tx.push(7)?;
    /// assert_eq!(rx.pop()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Self::attach(std::sync::Arc::new(Shared::open(handle)?), None)
    }

    /// How many values are ready to pop (0 for a handle that cannot pop).
    pub fn len(&mut self) -> usize {
        if self.ready().is_err() {
            return 0;
        }
        let parts = self.parts();
        self.index
            .available(&parts.state().idx, u64::MAX)
            .unwrap_or(0) as usize
    }

    /// Whether no value is ready.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    pub(crate) fn producer_gone(&self) -> bool {
        end_gone(self.shared.parts.state(), End::Producer)
    }

    pub(crate) fn items_signal(&self) -> &Signal {
        &self.shared.parts.state().items
    }

    /// Pops one value if one is ready.
    #[inline(always)]
    pub fn pop(&mut self) -> Result<T, TryGetError> {
        if self.fast() {
            return Ok(self.read_one());
        }
        self.pop_checked()
    }

    /// The per-message path's test, small enough to inline into the caller's loop: a handle
    /// that holds its role and a cached view with a value in it.
    #[inline(always)]
    fn fast(&self) -> bool {
        self.hold.steady() && self.index.tail_cache != self.index.head
    }

    /// Reads and releases the value at `head`, and wakes a sleeping producer if there is one.
    #[inline(always)]
    fn read_one(&mut self) -> T {
        let parts = self.parts();
        // SAFETY: the slot at `head` is readable per the protocol (the caller checked) and we
        // hold the consumer role.
        let v = unsafe { parts.read_one(self.index.head) };
        self.index.release(&parts.state().idx, 1);
        parts.state().space.notify();
        v
    }

    /// [`pop`](Self::pop) when the fast path could not decide: a role to check or reclaim, or
    /// a cached tail to refresh.
    #[inline(never)]
    fn pop_checked(&mut self) -> Result<T, TryGetError> {
        self.ready().map_err(lost_get)?;
        let parts = self.parts();
        match self.index.available(&parts.state().idx, 1) {
            Ok(0) => Err(TryGetError::Empty),
            Ok(_) => Ok(self.read_one()),
            Err(Corrupt) => Err(TryGetError::Corrupted),
        }
    }

    /// Pops as many values as are ready, up to `out.len()`; returns how many.
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, TryGetError> {
        self.ready().map_err(lost_get)?;
        let parts = self.parts();
        let ready = self
            .index
            .available(&parts.state().idx, out.len() as u64)
            .map_err(|_| TryGetError::Corrupted)?;
        let n = (ready as usize).min(out.len());
        if n > 0 {
            // SAFETY: `n` slots from `head` are readable per the protocol and we hold the
            // consumer role; n <= capacity.
            unsafe { parts.read(self.index.head, &mut out[..n]) };
            self.index.release(&parts.state().idx, n as u64);
            parts.state().space.notify();
        }
        Ok(n)
    }

    /// Pops one value, waiting as long as a producer is alive; `Disconnected` once the ring is
    /// empty and the producer has gone (dropped, or its process died) without handing its role
    /// over.
    #[inline]
    pub fn pop_blocking(&mut self) -> Result<T, GetError> {
        // The common case, a ready value, inline; everything else (a wait, an error) out of
        // line.
        if self.fast() {
            return Ok(self.read_one());
        }
        self.pop_blocking_checked()
    }

    #[inline(never)]
    fn pop_blocking_checked(&mut self) -> Result<T, GetError> {
        match self.pop_checked() {
            Ok(v) => Ok(v),
            Err(TryGetError::Empty) => self.pop_until(None),
            Err(e) => Err(GetError::from(e)),
        }
    }

    /// Pops one value, waiting at most `timeout`.
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T, GetError> {
        self.pop_until(Some(Instant::now() + timeout))
    }

    #[inline(never)]
    fn pop_until(&mut self, deadline: Option<Instant>) -> Result<T, GetError> {
        let parts = self.parts();
        let spin = self.spin;
        let r = signal::block_on(
            &parts.state().items,
            deadline,
            spin,
            ipc_core::raw::sync::look_pause,
            || self.pop_attempt(),
            || producer_present(parts.state()),
        );
        match r {
            Ok(v) => Ok(v),
            Err(Blocked::Failed(GetError::Disconnected)) => {
                // A last value may have landed between the final attempt and the check.
                self.pop().map_err(|e| match e {
                    TryGetError::Empty => GetError::Disconnected,
                    e => GetError::from(e),
                })
            }
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(GetError::Timeout),
        }
    }
}

impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        let parts = self.parts();
        self.hold.release(&self.shared);
        // Wake a producer asleep on a full ring, so it notices the consumer is gone.
        parts.state().space.notify();
    }
}

/// What a serialised ring end carries: the ring's handle and the hand-over token.
#[derive(Serialize, Deserialize)]
struct WireEnd {
    handle: ObjectHandle,
    token: u64,
}

/// Serialising an end hands its role over; deserialising takes it with the token.
macro_rules! end_serde {
    ($ty:ident, $doc:expr) => {
        #[doc = $doc]
        impl<T: Pod> Serialize for $ty<T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let token = self
                    .hold
                    .hand_over(&self.shared)
                    .map_err(serde::ser::Error::custom)?;
                WireEnd {
                    handle: self.handle(),
                    token,
                }
                .serialize(s)
            }
        }

        impl<'de, T: Pod> Deserialize<'de> for $ty<T> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let wire = WireEnd::deserialize(d)?;
                let shared = Shared::open(&wire.handle).map_err(ipc_core::codec::de_error)?;
                Self::attach(std::sync::Arc::new(shared), Some(wire.token))
                    .map_err(ipc_core::codec::de_error)
            }
        }
    };
}

end_serde!(
    Producer,
    "Serialising a producer hands its role over (see the module docs): the bytes carry a \
     one-time token, the first deserialiser becomes the producer, and this handle goes inert."
);
end_serde!(
    Consumer,
    "Serialising a consumer hands its role over, as for [`Producer`]."
);
