//! `Queue<T>`: Python's `multiprocessing.Queue` as a bounded lock-free MPMC ring in shared
//! memory. `Pod` values travel by placement ([`Plain`], the default); any other serde value
//! travels through the codec ([`Serde`]), any size: a message too large for a slot is placed in
//! its own segment, which the receiver unlinks.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use ipc_core::{ObjectHandle, Placement, SharedMemory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CreateError, GetError, OpenError, PutError, TryGetError, TryPutError};

#[cfg(not(loom))]
mod asynch;
use crate::joinable_queue::JoinableQueue;
use crate::participants::{BOTH, CONSUMER, PRODUCER};
use crate::raw_queue::{QueueShape, RawQueue, SlotPayload, WaitEnd};
use crate::reaper;
use crate::spill::{self, KIND_INLINE, KIND_SPILLED, RECORD_HEADER};
#[cfg(not(loom))]
pub use asynch::{Iter, QueueStream};

/// `Pod` values are copied into the slot as they are (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

/// Values are encoded with `ipc_core::codec` (serde + postcard), any size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serde;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl Sealed for super::Serde {}
}

/// How a queue carries its values: [`Plain`] or [`Serde`].
pub trait Encoding: sealed::Sealed {
    #[doc(hidden)]
    const NAME: &'static str;
}

impl Encoding for Plain {
    const NAME: &'static str = "plain";
}

impl Encoding for Serde {
    const NAME: &'static str = "serde";
}

/// The default slot size of a [`Serde`] queue, in bytes of encoded message (larger messages go
/// to a segment of their own).
pub const DEFAULT_SLOT_SIZE: usize = 120;
const MIN_SERDE_SLOT: usize = 64;
/// A bounded multi-producer multi-consumer queue in shared memory, like Python's
/// `multiprocessing.Queue`.
///
/// Every handle is a participant: a producer, a consumer, or both (the default). A blocking
/// [`get`](Queue::get) returns [`GetError::Disconnected`] once the queue is empty and no live
/// handle can put any more (every producer dropped, [`close`](Queue::close)d or killed); a
/// blocking [`put`](Queue::put) returns [`PutError::Disconnected`] when no live handle can get.
/// A process killed in the middle of a `put` or a `get` loses at most that one message; every
/// message whose `put` returned is received exactly once.
///
/// ```
/// use ipc_queue::Queue;
///
/// let mut q = Queue::<u64>::new(8)?;
/// q.put(5 * 5)?;
/// assert_eq!(q.get()?, 25);
/// assert!(q.try_get().is_err()); // empty
///
/// // Any serde value, any size, with the `Serde` encoding:
/// use ipc_queue::Serde;
/// let mut s = Queue::<Vec<String>, Serde>::new(4)?;
/// s.put(vec!["a".into(), "b".into()])?;
/// assert_eq!(s.get()?, ["a", "b"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Another process attaches with [`Queue::open`] on the [`handle`](Queue::handle).
pub struct Queue<T, E: Encoding = Plain> {
    raw: RawQueue,
    buf: Vec<u8>,
    _t: PhantomData<Marker<T, E>>,
}

impl<T, E: Encoding> fmt::Debug for Queue<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("type", &std::any::type_name::<T>())
            .field("encoding", &E::NAME)
            .field("capacity", &self.raw.capacity())
            .field("len", &self.raw.len())
            .finish()
    }
}

/// `Send + Sync` whatever `T` is: values are only ever copied in and out.
type Marker<T, E> = (fn(T) -> T, E);

fn kind<T, E: Encoding>(joinable: bool) -> String {
    let name = if joinable { "JoinableQueue" } else { "Queue" };
    format!("{name}<{},{}>", std::any::type_name::<T>(), E::NAME)
}

fn put_error<T>(e: WaitEnd, value: T) -> PutError<T> {
    match e {
        WaitEnd::Timeout => PutError::Timeout(value),
        WaitEnd::Disconnected => PutError::Disconnected(value),
        WaitEnd::Corrupted => PutError::Corrupted(value),
        WaitEnd::NotAttached => PutError::NotAttached(value),
        WaitEnd::Closed => PutError::Closed(value),
        WaitEnd::ShutDown => PutError::ShutDown(value),
    }
}

fn try_put_error<T>(e: WaitEnd, value: T) -> TryPutError<T> {
    match e {
        WaitEnd::NotAttached => TryPutError::NotAttached(value),
        WaitEnd::Disconnected => TryPutError::Disconnected(value),
        WaitEnd::Closed => TryPutError::Closed(value),
        WaitEnd::ShutDown => TryPutError::ShutDown(value),
        WaitEnd::Timeout | WaitEnd::Corrupted => TryPutError::Corrupted(value),
    }
}

fn get_error(e: WaitEnd) -> GetError {
    match e {
        WaitEnd::Timeout => GetError::Timeout,
        WaitEnd::Disconnected => GetError::Disconnected,
        WaitEnd::Corrupted => GetError::Corrupted,
        WaitEnd::NotAttached => GetError::NotAttached,
        WaitEnd::Closed => GetError::Closed,
        WaitEnd::ShutDown => GetError::ShutDown,
    }
}

fn try_get_error(e: WaitEnd) -> TryGetError {
    match e {
        WaitEnd::NotAttached => TryGetError::NotAttached,
        WaitEnd::Disconnected => TryGetError::Disconnected,
        WaitEnd::Closed => TryGetError::Closed,
        WaitEnd::ShutDown => TryGetError::ShutDown,
        WaitEnd::Timeout | WaitEnd::Corrupted => TryGetError::Corrupted,
    }
}

/// How to make a new [`Queue`] (or [`JoinableQueue`]): `Queue::<T>::builder(capacity)`, then
/// the options, then `create()`.
///
/// ```
/// use ipc_queue::{Queue, Serde};
///
/// // Room for 4,096 attached handles (the default is 1,024).
/// let mut q = Queue::<u64>::builder(64).participants(4096).create()?;
/// q.put(1)?;
/// let mut s = Queue::<String, Serde>::builder(16).slot_size(256).create()?;
/// s.put("hello".into())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `create()`"]
pub struct QueueBuilder<T, E: Encoding = Plain> {
    placement: Placement,
    capacity: usize,
    slot_size: Option<usize>,
    participants: usize,
    _t: PhantomData<Marker<T, E>>,
}

impl<T, E: Encoding> fmt::Debug for QueueBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("placement", &self.placement)
            .field("capacity", &self.capacity)
            .field("slot_size", &self.slot_size)
            .field("participants", &self.participants)
            .finish()
    }
}

impl<T, E: Encoding> QueueBuilder<T, E> {
    /// Where the queue's segment goes (default: anonymous).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// How many handles may be attached at once, across all processes (default
    /// [`DEFAULT_PARTICIPANTS`](crate::DEFAULT_PARTICIPANTS), at most
    /// [`MAX_PARTICIPANTS`](crate::MAX_PARTICIPANTS)). Each entry takes 24 bytes of the
    /// segment; an open beyond the limit fails with `OpenError::TooManyParticipants`.
    pub fn participants(mut self, participants: usize) -> Self {
        self.participants = participants;
        self
    }

    fn shape(&self, slot_payload: usize) -> QueueShape {
        QueueShape {
            participants: self.participants,
            ..QueueShape::new(self.capacity, slot_payload)
        }
    }
}

impl<T: Pod> QueueBuilder<T, Plain> {
    /// Creates the queue.
    pub fn create(self) -> Result<Queue<T, Plain>, CreateError> {
        Queue::<T, Plain>::create_shape(&self.placement, &self.shape(size_of::<T>()), false)
    }

    /// Creates a joinable queue.
    pub fn create_joinable(self) -> Result<JoinableQueue<T, Plain>, CreateError> {
        let q =
            Queue::<T, Plain>::create_shape(&self.placement, &self.shape(size_of::<T>()), true)?;
        Ok(JoinableQueue::from_queue(q))
    }
}

impl<T: Serialize + DeserializeOwned> QueueBuilder<T, Serde> {
    /// Bytes of each slot (default [`DEFAULT_SLOT_SIZE`], at least 64): encoded messages up to
    /// `slot_size - 8` bytes travel in the slot, larger ones in a segment of their own.
    pub fn slot_size(mut self, slot_size: usize) -> Self {
        self.slot_size = Some(slot_size);
        self
    }

    fn serde_shape(&self) -> QueueShape {
        let slot = self
            .slot_size
            .unwrap_or(DEFAULT_SLOT_SIZE)
            .max(MIN_SERDE_SLOT)
            .next_multiple_of(8);
        self.shape(slot)
    }

    /// Creates the queue.
    pub fn create(self) -> Result<Queue<T, Serde>, CreateError> {
        Queue::<T, Serde>::create_shape(&self.placement, &self.serde_shape(), false)
    }

    /// Creates a joinable queue.
    pub fn create_joinable(self) -> Result<JoinableQueue<T, Serde>, CreateError> {
        let q = Queue::<T, Serde>::create_shape(&self.placement, &self.serde_shape(), true)?;
        Ok(JoinableQueue::from_queue(q))
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Some(Instant::now() + timeout)
}

impl<T, E: Encoding> Queue<T, E> {
    /// A builder for a queue of `capacity` slots (see [`QueueBuilder`]).
    pub fn builder(capacity: usize) -> QueueBuilder<T, E> {
        QueueBuilder {
            placement: Placement::Anonymous,
            capacity,
            slot_size: None,
            participants: crate::participants::DEFAULT_PARTICIPANTS,
            _t: PhantomData,
        }
    }

    pub(crate) fn raw(&self) -> &RawQueue {
        &self.raw
    }

    pub(crate) fn raw_mut(&mut self) -> &mut RawQueue {
        &mut self.raw
    }

    /// The roles this handle holds (for its serialised form).
    pub(crate) fn role(&self) -> u32 {
        self.raw.role()
    }

    fn from_raw(raw: RawQueue) -> Self {
        Self {
            raw,
            buf: Vec::new(),
            _t: PhantomData,
        }
    }

    /// The handle another process attaches with.
    pub fn handle(&self) -> ObjectHandle {
        self.raw.handle()
    }

    /// Another handle of the same queue, with the same roles (as `std::fs::File::try_clone`):
    /// pass one to a [`Process`](ipc_core::Process), which takes its argument, and keep the
    /// other, as Python's `Process(args=(q,))` leaves the caller its `q`. Both share this
    /// process's mapping; each is a participant of its own (so it fails only when the
    /// participant table is full).
    ///
    /// ```no_run
    /// use ipc_core::Process;
    /// use ipc_queue::Queue;
    ///
    /// fn square(mut q: Queue<u64>) {
    ///     let x = q.get().unwrap();
    ///     q.put(x * x).unwrap();
    /// }
    ///
    /// let mut q = Queue::<u64>::new(4)?;
    /// q.put(7)?;
    /// let p = Process::new(square, q.try_clone()?);
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(q.get()?, 49);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        let raw = self.raw.try_clone()?;
        if E::NAME == Serde::NAME {
            reaper::opened(raw.id());
        }
        Ok(Self::from_raw(raw))
    }

    /// The most messages the queue holds: the capacity it was created with (Python's
    /// `maxsize`). A queue of one is full after one put, as Python's `Queue(1)` is.
    #[doc(alias = "maxsize")]
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// The number of messages, approximately (like Python's `qsize`).
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.raw.len().unwrap_or(0)
    }

    /// Whether the queue is (approximately) empty.
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is (approximately) full.
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Declares that this handle will put no more messages (Python's `close`): its later puts
    /// fail with `Closed` (Python raises `ValueError`), and once every handle that could put has
    /// closed, dropped or died, a blocking `get` on an empty queue returns `Disconnected`
    /// instead of waiting. Getting still works.
    ///
    /// ```
    /// use ipc_queue::{PutError, Queue};
    ///
    /// let mut q = Queue::<u32>::new(4)?;
    /// q.put(1)?;
    /// q.close();
    /// assert!(matches!(q.put(2), Err(PutError::Closed(2))));
    /// assert_eq!(q.get()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self) {
        self.raw.set_role(self.raw.role() & !PRODUCER);
    }

    /// Declares that this handle will get no more messages: its later gets fail with `Closed`,
    /// and once every handle that could get has done so, dropped or died, a blocking `put` on a
    /// full queue returns `Disconnected`.
    pub fn close_receiving(&mut self) {
        self.raw.set_role(self.raw.role() & !CONSUMER);
    }

    /// Shuts the queue down for every handle, in every process (Python 3.13's
    /// `Queue.shutdown(immediate)`): puts fail with `ShutDown` from now on; gets return what is
    /// in the queue and then fail with `ShutDown`, or fail at once if `immediate`, in which case
    /// this call discards what is there (a [`JoinableQueue`] counts each discarded message as
    /// done). Every blocked `put`, `get` and `join` wakes. A shutdown cannot be undone.
    ///
    /// A put that was already writing when the shutdown came still lands, as if it had come
    /// just before (and is discarded if the shutdown is immediate).
    ///
    /// ```
    /// use ipc_queue::{GetError, PutError, Queue};
    ///
    /// let mut q = Queue::<u32>::new(4)?;
    /// q.put(1)?;
    /// q.shutdown(false);
    /// assert!(matches!(q.put(2), Err(PutError::ShutDown(2))));
    /// assert_eq!(q.get()?, 1); // drained first
    /// assert!(matches!(q.get(), Err(GetError::ShutDown)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&mut self, immediate: bool) {
        self.raw.shutdown(immediate);
    }

    /// Whether the queue was shut down (by any handle, in any process; Python's
    /// `is_shutdown`).
    #[doc(alias = "is_shutdown")]
    pub fn is_shut_down(&self) -> bool {
        self.raw.shutdown_state() != crate::raw_queue::OPEN
    }

    /// How long blocking calls spin before they sleep (default 20 µs; zero: sleep at once). A
    /// call's timeout ends its spin, and a spin longer than 20 ms checks the peers every 20 ms
    /// as a sleeping wait does, so even `Duration::MAX` (spin until ready) ends on a dead peer.
    pub fn set_spin(&mut self, spin: Duration) {
        self.raw.set_spin(spin);
    }
}

/// The ways to attach to an existing queue, the same for every encoding: each goes through the
/// impl's own `open_flavor`, which checks the slots against the encoding.
macro_rules! open_forms {
    () => {
        /// Attaches to the queue a handle names, as producer and consumer.
        pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
            Self::open_as(handle, BOTH)
        }

        /// Attaches as a producer only (its death or drop can disconnect consumers).
        pub fn open_producer(handle: &ObjectHandle) -> Result<Self, OpenError> {
            Self::open_as(handle, PRODUCER)
        }

        /// Attaches as a consumer only.
        pub fn open_consumer(handle: &ObjectHandle) -> Result<Self, OpenError> {
            Self::open_as(handle, CONSUMER)
        }

        fn open_as(handle: &ObjectHandle, role: u32) -> Result<Self, OpenError> {
            Self::open_flavor(handle, role, false)
        }
    };
}

impl<T: Pod> Queue<T, Plain> {
    /// A queue that holds up to `capacity` messages (at least 1), in a new anonymous segment.
    pub fn new(capacity: usize) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, capacity)
    }

    /// A queue placed as asked.
    pub fn create(placement: &Placement, capacity: usize) -> Result<Self, CreateError> {
        Self::builder(capacity)
            .placement(placement.clone())
            .create()
    }

    pub(crate) fn create_shape(
        placement: &Placement,
        shape: &QueueShape,
        joinable: bool,
    ) -> Result<Self, CreateError> {
        let mut raw = RawQueue::create(placement, &kind::<T, Plain>(joinable), shape, BOTH)?;
        raw.set_joinable(joinable);
        Ok(Self::from_raw(raw))
    }

    open_forms!();

    pub(crate) fn open_flavor(
        handle: &ObjectHandle,
        role: u32,
        joinable: bool,
    ) -> Result<Self, OpenError> {
        let mut raw = RawQueue::open(handle, &kind::<T, Plain>(joinable), role)?;
        raw.set_joinable(joinable);
        if raw.payload_size() < size_of::<T>() {
            return Err(OpenError::Corrupted {
                what: "slot smaller than the element type",
            });
        }
        Ok(Self::from_raw(raw))
    }

    fn write(&mut self, pos: u64, slot: SlotPayload, value: T) -> bool {
        debug_assert!(slot.len >= size_of::<T>());
        // SAFETY: the slot is ours per the protocol (claimed) and `len >= size_of::<T>()`
        // (checked at open); atomic stores (one for a 4- or 8-byte value), so a hostile peer can
        // only tear it.
        unsafe { ipc_core::raw::pod::store_one(slot.ptr.cast::<T>(), value) };
        self.raw.commit_put(pos)
    }

    fn read(&mut self, pos: u64, slot: SlotPayload) -> T {
        // SAFETY: the slot is ours per the protocol (claimed for reading) and holds
        // `size_of::<T>()` bytes; `T: Pod` accepts whatever bytes a peer left there.
        let v = unsafe { ipc_core::raw::pod::load_one(slot.ptr.cast::<T>()) };
        self.raw.finish_get(pos);
        v
    }

    /// Puts a value, waiting for a free slot as long as a consumer is alive.
    pub fn put(&mut self, value: T) -> Result<(), PutError<T>> {
        self.put_until(value, None)
    }

    /// Puts a value, waiting at most `timeout` for a free slot.
    pub fn put_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(value, deadline(timeout))
    }

    fn put_until(&mut self, value: T, deadline: Option<Instant>) -> Result<(), PutError<T>> {
        match self.raw.claim_put(deadline) {
            Ok((pos, slot)) => self.commit(pos, slot, value).map_err(PutError::from),
            Err(e) => Err(put_error(e, value)),
        }
    }

    fn commit(&mut self, pos: u64, slot: SlotPayload, value: T) -> Result<(), TryPutError<T>> {
        if self.write(pos, slot, value) {
            Ok(())
        } else {
            Err(TryPutError::Corrupted(value))
        }
    }

    /// Puts a value if a slot is free now.
    #[doc(alias = "put_nowait")]
    pub fn try_put(&mut self, value: T) -> Result<(), TryPutError<T>> {
        match self.raw.try_claim_put() {
            Ok(Some((pos, slot))) => self.commit(pos, slot, value),
            Ok(None) => Err(TryPutError::Full(value)),
            Err(e) => Err(try_put_error(e, value)),
        }
    }

    /// Gets the next value, waiting while a producer is alive.
    pub fn get(&mut self) -> Result<T, GetError> {
        let (pos, slot) = self.raw.claim_get(None).map_err(get_error)?;
        Ok(self.read(pos, slot))
    }

    /// Gets the next value, waiting at most `timeout`.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<T, GetError> {
        let (pos, slot) = self.raw.claim_get(deadline(timeout)).map_err(get_error)?;
        Ok(self.read(pos, slot))
    }

    /// Gets the next value if there is one now.
    #[doc(alias = "get_nowait")]
    pub fn try_get(&mut self) -> Result<T, TryGetError> {
        match self.raw.try_claim_get() {
            Ok(Some((pos, slot))) => Ok(self.read(pos, slot)),
            Ok(None) => Err(TryGetError::Empty),
            Err(e) => Err(try_get_error(e)),
        }
    }
}

impl<T: Pod> Queue<T, Plain> {
    /// Puts a copy of `*value` (one copy, straight into the slot: for large `T`, this avoids
    /// moving the value through the stack).
    pub fn put_from(&mut self, value: &T) -> Result<(), PutError<()>> {
        let (pos, slot) = self.raw.claim_put(None).map_err(|e| put_error(e, ()))?;
        // SAFETY: the slot is ours (claimed) and holds `size_of::<T>()` bytes (checked at open);
        // `value` is private memory.
        unsafe { ipc_core::raw::pod::copy_to_shared(bytemuck::bytes_of(value), slot.ptr) };
        if self.raw.commit_put(pos) {
            Ok(())
        } else {
            Err(PutError::Corrupted(()))
        }
    }

    /// Gets the next value into `*out` (one copy, straight from the slot).
    pub fn get_into(&mut self, out: &mut T) -> Result<(), GetError> {
        let (pos, slot) = self.raw.claim_get(None).map_err(get_error)?;
        // SAFETY: the slot is ours (claimed for reading) and holds `size_of::<T>()` bytes;
        // `out` is private memory and `T: Pod` accepts any bytes.
        unsafe { ipc_core::raw::pod::copy_from_shared(slot.ptr, bytemuck::bytes_of_mut(out)) };
        self.raw.finish_get(pos);
        Ok(())
    }

    /// Loans a free slot to write a message in place, waiting while a consumer is alive.
    /// [`Loan::commit`] publishes it; dropping the loan skips the slot (nothing is delivered).
    ///
    /// ```
    /// let mut q = ipc_queue::Queue::<[u8; 4096]>::new(2)?;
    /// let mut loan = q.loan()?;
    /// loan.as_bytes_mut()[..5].copy_from_slice(b"hello");
    /// loan.commit();
    /// let sample = q.get_sample()?;
    /// assert_eq!(&sample.as_bytes()[..5], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn loan(&mut self) -> Result<Loan<'_, T>, PutError<()>> {
        let (pos, slot) = self.raw.claim_put(None).map_err(|e| put_error(e, ()))?;
        Ok(Loan {
            q: &mut self.raw,
            pos,
            ptr: slot.ptr,
            done: false,
            _t: PhantomData,
        })
    }

    /// Receives the next message in place, waiting while a producer is alive; the slot is
    /// released when the sample drops.
    pub fn get_sample(&mut self) -> Result<Sample<'_, T>, GetError> {
        let (pos, slot) = self.raw.claim_get(None).map_err(get_error)?;
        Ok(Sample {
            q: &mut self.raw,
            pos,
            ptr: slot.ptr,
            _t: PhantomData,
        })
    }
}

/// A slot of a [`Queue`] loaned for writing in place. The slot is claimed by this process
/// alone until `commit` (or drop), so handing out `&mut` to its bytes is sound: no other
/// process reads them before the commit publishes them.
///
/// Dropping a loan without [`commit`](Loan::commit) gives the slot up (nothing is delivered), so
/// an unused loan is a mistake the compiler points out:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let mut q = ipc_queue::Queue::<u64>::new(2).unwrap();
/// q.loan().unwrap(); // dropped at once: the slot is skipped
/// ```
#[must_use = "a loan that is dropped without `commit` delivers nothing"]
pub struct Loan<'a, T: Pod> {
    q: &'a mut RawQueue,
    pos: u64,
    ptr: *mut u8,
    done: bool,
    _t: PhantomData<T>,
}

impl<T: Pod> fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan").field("position", &self.pos).finish()
    }
}

impl<T: Pod> Loan<'_, T> {
    /// The slot's bytes (`size_of::<T>()`), to write in place.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the slot is claimed by us (Writing) and holds `size_of::<T>()` bytes; no
        // other process touches it until we commit or give it up, and `&mut self` makes the
        // slice unique in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, size_of::<T>()) }
    }

    /// Writes a whole value.
    pub fn write(&mut self, value: &T) {
        self.as_bytes_mut()
            .copy_from_slice(bytemuck::bytes_of(value));
    }

    /// Publishes the message.
    pub fn commit(mut self) {
        self.done = true;
        self.q.commit_put(self.pos);
    }
}

impl<T: Pod> Drop for Loan<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.q.abandon_put(self.pos);
        }
    }
}

/// A received message, read in place; its slot is released on drop.
#[must_use = "a sample that is dropped at once throws its message away unread"]
pub struct Sample<'a, T: Pod> {
    q: &'a mut RawQueue,
    pos: u64,
    ptr: *mut u8,
    _t: PhantomData<T>,
}

impl<T: Pod> fmt::Debug for Sample<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("position", &self.pos)
            .finish()
    }
}

impl<T: Pod> Sample<'_, T> {
    /// The message's bytes. The slot is claimed by this process (Reading) until the sample
    /// drops: per the protocol no other process writes it meanwhile.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the slot is claimed by us for reading and holds `size_of::<T>()` bytes;
        // writers only reuse it after we release it in `drop`.
        unsafe { std::slice::from_raw_parts(self.ptr, size_of::<T>()) }
    }

    /// A copy of the value.
    pub fn read(&self) -> T {
        bytemuck::pod_read_unaligned(self.as_bytes())
    }
}

impl<T: Pod> Drop for Sample<'_, T> {
    fn drop(&mut self) {
        self.q.finish_get(self.pos);
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T, Serde> {
    /// A queue of `capacity` slots of [`DEFAULT_SLOT_SIZE`] bytes in a new anonymous segment.
    pub fn new(capacity: usize) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, capacity, DEFAULT_SLOT_SIZE)
    }

    /// A queue placed as asked, with slots of `slot_size` bytes (at least 64): encoded messages
    /// up to `slot_size - 8` bytes travel in the slot, larger ones in a segment of their own.
    pub fn create(
        placement: &Placement,
        capacity: usize,
        slot_size: usize,
    ) -> Result<Self, CreateError> {
        Self::builder(capacity)
            .placement(placement.clone())
            .slot_size(slot_size)
            .create()
    }

    pub(crate) fn create_shape(
        placement: &Placement,
        shape: &QueueShape,
        joinable: bool,
    ) -> Result<Self, CreateError> {
        let mut raw = RawQueue::create(placement, &kind::<T, Serde>(joinable), shape, BOTH)?;
        raw.set_joinable(joinable);
        raw.set_serde(true);
        reaper::opened(raw.id());
        Ok(Self::from_raw(raw))
    }

    open_forms!();

    pub(crate) fn open_flavor(
        handle: &ObjectHandle,
        role: u32,
        joinable: bool,
    ) -> Result<Self, OpenError> {
        let mut raw = RawQueue::open(handle, &kind::<T, Serde>(joinable), role)?;
        raw.set_joinable(joinable);
        raw.set_serde(true);
        if raw.payload_size() < MIN_SERDE_SLOT {
            return Err(OpenError::Corrupted {
                what: "slot too small",
            });
        }
        reaper::opened(raw.id());
        Ok(Self::from_raw(raw))
    }

    /// Encodes `value` into `self.buf` and, if too large for a slot, into a spill segment of
    /// its own (whose name then goes into `self.buf`), returned still owned by this process's
    /// cleanup tracker until the record is committed (see `spill.rs`).
    fn encode(&mut self, value: &T) -> Result<Option<SharedMemory>, EncodeFailure> {
        self.buf.clear();
        ipc_core::codec::encode_into(value, &mut self.buf).map_err(EncodeFailure::Encode)?;
        if self.buf.len() <= self.raw.payload_size() - RECORD_HEADER {
            return Ok(None);
        }
        let seg = spill::create(self.raw.id(), &self.buf).map_err(EncodeFailure::Spill)?;
        self.buf.clear();
        self.buf
            .extend_from_slice(seg.name().unwrap_or_default().as_bytes());
        Ok(Some(seg))
    }

    /// Writes the record in `self.buf` into the claimed slot and commits it; a spill is handed
    /// from this process's tracker to the queue once committed (and removed if the commit
    /// failed, when dropped while still owned).
    fn write_record(&mut self, pos: u64, slot: SlotPayload, spilled: Option<SharedMemory>) -> bool {
        let len = self.buf.len();
        debug_assert!(len + RECORD_HEADER <= slot.len);
        let kind = if spilled.is_some() {
            KIND_SPILLED
        } else {
            KIND_INLINE
        };
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        header[4..].copy_from_slice(&kind.to_ne_bytes());
        // SAFETY: the slot is ours (claimed) and holds `slot.len >= len + 8` bytes; word-wise
        // atomic copies.
        unsafe { ipc_core::raw::pod::copy_to_shared(&header, slot.ptr) };
        // SAFETY: as above, for the bytes after the header.
        unsafe { ipc_core::raw::pod::copy_to_shared(&self.buf, slot.ptr.add(RECORD_HEADER)) };
        let ok = self.raw.commit_put(pos);
        if ok {
            if let Some(seg) = spilled {
                spill::committed(seg);
            }
        }
        ok
    }

    /// Copies the record out of a claimed slot; for a spilled message, opens its segment and
    /// unlinks the name while the slot is still ours (so that a consumer killed at any moment
    /// leaves no name that neither a slot nor a tracker records), then frees the slot and
    /// decodes.
    fn read(&mut self, pos: u64, slot: SlotPayload) -> Result<T, TryGetError> {
        // SAFETY: the slot is ours (claimed for reading) and holds at least 8 bytes.
        let Some((len, kind)) = (unsafe { spill::header(&slot) }) else {
            self.raw.finish_get(pos);
            return Err(TryGetError::Corrupted);
        };
        self.buf.clear();
        self.buf.resize(len, 0);
        // SAFETY: `len <= slot.len - 8` (checked by `header`); the slot is ours.
        unsafe { spill::body(&slot, &mut self.buf) };
        if kind == KIND_SPILLED {
            let opened = spill::open(self.raw.id(), &self.buf).map(|(mut seg, len)| {
                let _ = seg.unlink();
                (seg, len)
            });
            self.raw.finish_get(pos);
            let (seg, len) = opened?;
            self.buf.clear();
            self.buf.resize(len, 0);
            seg.read(spill::SPILL_HEADER, &mut self.buf)
                .map_err(|_| TryGetError::Corrupted)?;
        } else {
            self.raw.finish_get(pos);
        }
        ipc_core::codec::decode(&self.buf).map_err(TryGetError::Decode)
    }

    /// Puts a value, waiting for a free slot as long as a consumer is alive.
    pub fn put(&mut self, value: T) -> Result<(), PutError<T>> {
        self.put_until(value, None)
    }

    /// Puts a value, waiting at most `timeout` for a free slot.
    pub fn put_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(value, deadline(timeout))
    }

    fn put_until(&mut self, value: T, deadline: Option<Instant>) -> Result<(), PutError<T>> {
        if let Err(e) = self.raw.may_put() {
            return Err(put_error(e, value));
        }
        let spilled = match self.encode(&value) {
            Ok(s) => s,
            Err(e) => return Err(e.put(value)),
        };
        // On failure `spilled` drops while still owned: its name goes.
        match self.raw.claim_put(deadline) {
            Ok((pos, slot)) => {
                if self.write_record(pos, slot, spilled) {
                    Ok(())
                } else {
                    Err(PutError::Corrupted(value))
                }
            }
            Err(e) => Err(put_error(e, value)),
        }
    }

    /// Puts a value if a slot is free now.
    #[doc(alias = "put_nowait")]
    pub fn try_put(&mut self, value: T) -> Result<(), TryPutError<T>> {
        if let Err(e) = self.raw.may_put() {
            return Err(try_put_error(e, value));
        }
        let spilled = match self.encode(&value) {
            Ok(s) => s,
            Err(e) => return Err(e.try_put(value)),
        };
        match self.raw.try_claim_put() {
            Ok(Some((pos, slot))) => {
                if self.write_record(pos, slot, spilled) {
                    Ok(())
                } else {
                    Err(TryPutError::Corrupted(value))
                }
            }
            Ok(None) => Err(TryPutError::Full(value)),
            Err(e) => Err(try_put_error(e, value)),
        }
    }

    /// Gets the next value, waiting while a producer is alive.
    pub fn get(&mut self) -> Result<T, GetError> {
        let (pos, slot) = self.raw.claim_get(None).map_err(get_error)?;
        self.read(pos, slot).map_err(GetError::from)
    }

    /// Gets the next value, waiting at most `timeout`.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<T, GetError> {
        let (pos, slot) = self.raw.claim_get(deadline(timeout)).map_err(get_error)?;
        self.read(pos, slot).map_err(GetError::from)
    }

    /// Gets the next value if there is one now.
    #[doc(alias = "get_nowait")]
    pub fn try_get(&mut self) -> Result<T, TryGetError> {
        match self.raw.try_claim_get() {
            Ok(Some((pos, slot))) => self.read(pos, slot),
            Ok(None) => Err(TryGetError::Empty),
            Err(e) => Err(try_get_error(e)),
        }
    }
}

impl<T, E: Encoding> Drop for Queue<T, E> {
    fn drop(&mut self) {
        // A serde queue's spill segments must not outlive it (see `spill.rs` and `reaper.rs`):
        // the last handle removes those of the messages nobody got; a handle that is the last of
        // this process while other processes still hold the queue leaves a watch to the reaper,
        // which drains the queue once they are gone, killed or not. (The raw queue then
        // releases this handle's entry.)
        if E::NAME == Serde::NAME && reaper::closing(self.raw.id()) {
            if !self.raw.others_alive() {
                self.raw.discard_all();
            } else if let Ok(watcher) = self.raw.try_clone() {
                reaper::watch(watcher);
            }
        }
    }
}

enum EncodeFailure {
    Encode(ipc_core::codec::EncodeError),
    Spill(ipc_core::CreateError),
}

impl EncodeFailure {
    fn put<T>(self, value: T) -> PutError<T> {
        match self {
            Self::Encode(e) => PutError::Encode(value, e),
            Self::Spill(e) => PutError::Spill(value, e),
        }
    }

    fn try_put<T>(self, value: T) -> TryPutError<T> {
        match self {
            Self::Encode(e) => TryPutError::Encode(value, e),
            Self::Spill(e) => TryPutError::Spill(value, e),
        }
    }
}

/// A queue serialises as its handle and its roles, so it can be passed to a child process as an
/// argument (as Python pickles a `Queue` into `Process(args=(q,))`); deserialising attaches with
/// the same roles, so a handle opened with [`Queue::open_consumer`] stays a consumer in the child
/// (and the queue can tell when every producer is gone).
impl<T, E: Encoding> Serialize for Queue<T, E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.handle(), self.raw.role()).serialize(s)
    }
}

/// The roles a deserialised handle takes: those it was sent with, or both if none is named.
pub(crate) fn wire_role(role: u32) -> u32 {
    match role & BOTH {
        0 => BOTH,
        r => r,
    }
}

impl<'de, T: Pod> serde::Deserialize<'de> for Queue<T, Plain> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (handle, role) = <(ObjectHandle, u32)>::deserialize(d)?;
        Self::open_as(&handle, wire_role(role)).map_err(ipc_core::codec::de_error)
    }
}

impl<'de, T: Serialize + DeserializeOwned> serde::Deserialize<'de> for Queue<T, Serde> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (handle, role) = <(ObjectHandle, u32)>::deserialize(d)?;
        Self::open_as(&handle, wire_role(role)).map_err(ipc_core::codec::de_error)
    }
}
