//! `pipe()`: Python's `multiprocessing.Pipe` on two byte rings in one segment, one per
//! direction. Each end of a pipe may be shared by any number of handles in any number of
//! processes (as Python lets several processes use one `Connection` under a lock): every `send`
//! and every `recv` claims its end of the direction for exactly one message.
//!
//! ## Layout
//!
//! The payload holds two directions of the same shape, each `span` bytes (a multiple of 128):
//!
//! | offset in a direction         | what                                                  |
//! |-------------------------------|-------------------------------------------------------|
//! | 0                             | [`Direction`]: head, tail, signals, the two end claims, sizes |
//! | `DIRECTION_BYTES`             | the participant table (`participants` entries of 24 bytes) |
//! | `DIRECTION_BYTES + table`     | the ring: `capacity` bytes                            |
//!
//! End 0 sends on direction 0 and receives on direction 1; end 1 the reverse (simplex: end 1
//! writes direction 1, end 0 reads it).
//!
//! ## Records and chunks
//!
//! Positions `head` (next byte to read) and `tail` (where the next chunk goes) count bytes
//! forever (u64, multiples of 8, taken modulo the capacity); both live in shared memory, because
//! the handle that writes next may be another process's. A message travels as one or more
//! *chunks*; each starts at a multiple of 8 and takes its header, its payload and padding to 8:
//!
//! | bytes   | field                                                                   |
//! |---------|-------------------------------------------------------------------------|
//! | 0..8    | the tag, u64: `position + 1` once the chunk is published (stored last, Release) |
//! | 8..12   | chunk payload length, u32 LE (at most `capacity - 24`)                  |
//! | 12..16  | u32 LE: bit 31 `FIRST`; for a first chunk, bits 30..0 hold the message's total length (at most [`MAX_MESSAGE`]); 0 for the chunks that continue it |
//! | 16..    | the payload, then padding to a multiple of 8                            |
//!
//! A receiver waits on the tag word at `head`, which the sender writes in the same store that
//! publishes the chunk: one cache line moves from sender to receiver per message, as in a bare
//! ping-pong. Only senders read `tail` (to know where to write), only the sender whose ring is
//! full reads `head`. No stale word can pass for a tag: before it publishes a chunk, a sender
//! zeroes the tag word where the next chunk will start (it keeps those 8 bytes free), so the
//! word at `tail` is 0 until a chunk is published there, whatever an earlier lap left in it.
//! A sender stores the tag, then `tail`.
//!
//! A message that fits is one chunk (one tag store). A larger one streams: the sender writes a
//! chunk whenever at least half the ring (or what is left of the message) is free, so any size
//! works with a receiver freeing space as it reads. `head` only moves past whole chunks.
//!
//! ## End claims: one record per claim
//!
//! Each direction has a send claim and a receive claim, each a one-holder word (`claim.rs`):
//! `0` free, or `pid << 32 | start_tag` of the process whose handle is writing (reading) one
//! message right now.
//!
//! | claim word | a `send`/`recv` finding it                                      | its holder, done |
//! |------------|------------------------------------------------------------------|------------------|
//! | Free       | takes it (CAS `0 -> me`), moves one whole message, frees it      | —                |
//! | Held(x), x live or Unknown | waits: spins looking at the word, then announces itself on the claim's signal and sleeps in slices | stores `0` (Release, no locked instruction: nobody else writes a word a live holder holds), then wakes the signal's waiters if any announced itself |
//! | Held(x), x dead | marks it orphaned (CAS `x -> 1`, [`claim::ORPHANED`]) after a slice, then takes it (a sender repairs the tail first) | —                |
//! | Orphaned   | takes it (CAS `1 -> me`), as a free one                          | —                |
//!
//! The claim's signal is asymmetric (see `signal.rs`), like the direction's data and room
//! signals: a holder's release is a plain store, a compiler fence and a load of the waiter
//! count, and a waiter about to sleep pays the `membarrier` that makes that enough. A claim is
//! taken with one CAS and freed with none.
//!
//! So concurrent senders never interleave chunks (a message's chunks are contiguous) and
//! concurrent receivers each read whole messages. A dead claimer costs at most its one message:
//!
//! - a sender killed mid-message leaves a prefix of chunks. The receiver waiting for the rest
//!   sees, after a slice, that the send claim is free or held by a dead process with no new
//!   chunk published: it drops the prefix and waits for a new message. A new sender's `FIRST`
//!   chunk also ends the prefix.
//! - a receiver killed mid-message leaves `head` at a chunk boundary inside the message; the next
//!   receiver skips chunks without `FIRST` (the rest of that message), then reads on.
//!
//! A receive that times out mid-message (or a receive future dropped mid-message) keeps the
//! receive claim and the bytes read so far in its handle: the next receive on that handle
//! continues the message, so nothing is lost (other receivers of the end wait meanwhile, as
//! for a slow receiver); dropping the handle gives the rest up, to be skipped as above. A send
//! that times out has sent nothing: its deadline bounds only the waits before its first chunk.
//! A send future dropped mid-message frees the send claim with a prefix published, exactly as
//! a sender killed there: the receiver drops the prefix (see `pipe/asynch.rs`).
//!
//! A sender killed between its tag store and its `tail` store leaves a published chunk at
//! `tail`. Whoever frees a dead holder's claim marks it [`claim::ORPHANED`] instead of free,
//! and the sender that takes an orphaned send claim first moves `tail` past every chunk
//! published there, so it never overwrites one (a receive claim needs no repair: the receiver
//! stores `head` after reading, so the next one reads that chunk again).
//!
//! Cost: a send and a receive each pay one CAS to claim and one to free their end (a wake-up only
//! when someone waits); measured with `ipc-bench`'s `ours.pipe_rtt` (see the README).
//!
//! Lengths and positions come from shared memory: a chunk longer than the ring or than its
//! message, a total above [`MAX_MESSAGE`], a position above 2^62 or not a multiple of 8, or a
//! head past the tail once no sender is at work is `Corrupted`, and a receiver never allocates
//! more than the bytes that actually arrived.

use std::fmt;
use std::time::{Duration, Instant};

use ipc_core::codec::{DecodeError, EncodeError};
use ipc_core::raw::ObjectSegment;
use ipc_core::{ObjectHandle, Placement};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::claim;
use crate::error::{CreateError, OpenError};
use crate::layout;
use crate::membership::{Kernel, Membership, TablePlace};
use crate::participants::{
    CONSUMER, DEFAULT_PARTICIPANTS, Entry, Identity, MAX_PARTICIPANTS, PRODUCER, Table,
};
use crate::primitive::{AtomicU32, AtomicU64, CachePadded, Ordering};
use crate::raw_queue::table_bytes;
use crate::signal::{self, Attempt, Blocked, Signal};
use crate::spsc_index::MAX_POSITION;

#[cfg(not(loom))]
mod asynch;
#[cfg(not(loom))]
pub use asynch::{ConnectionIter, ConnectionStream};

/// The largest message a connection accepts (1 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;
/// The default bytes of each direction's ring.
pub const DEFAULT_PIPE_CAPACITY: usize = 1 << 20;
const KIND: &str = "Pipe";
/// Bytes of a chunk header: the tag word and the length word.
const CHUNK_HEADER: usize = 16;
/// Bytes a sender keeps free after each chunk, for the next chunk's zeroed tag word.
const TAG_BYTES: usize = 8;
/// Chunks start at multiples of this (their tag words are aligned atomics).
const CHUNK_ALIGN: u64 = 8;
/// Payloads up to this many bytes go out in one burst of stores (see `Tx::publish_chunk`).
const BURST_PAYLOAD: usize = 16;
/// The flag of a message's first chunk.
const FIRST: u32 = 1 << 31;
/// The least ring (so that half of it holds a header, a payload word and a tag word).
const MIN_CAPACITY: usize = layout::ALIGN;
/// The largest ring (positions and chunk lengths stay far from overflow).
const MAX_CAPACITY: usize = 1 << 40;

const NOT_ATTACHED: &str = "this handle cannot act in this process: it is a fork child's copy \
    that could not claim a participant entry of its own";

/// Sending on a [`Connection`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The other end has gone (dropped, or its process exited). Python raises `BrokenPipeError`.
    Disconnected,
    /// The ring's indices are impossible.
    Corrupted,
    /// The message is larger than [`MAX_MESSAGE`].
    TooLarge {
        /// Its size in bytes.
        len: usize,
    },
    /// This end was opened for receiving only.
    NotWritable,
    /// This handle cannot act in this process: it is a fork child's copy that could not claim a
    /// participant entry of its own.
    NotAttached,
    /// The value could not be encoded.
    Encode(EncodeError),
    /// The deadline passed before the first byte of the message was sent (the timeout forms):
    /// nothing was sent.
    Timeout,
}

/// Receiving on a [`Connection`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing left to receive and the other end has gone (Python raises `EOFError`).
    Disconnected,
    /// The ring's indices or a chunk header are impossible.
    Corrupted,
    /// The message does not fit the caller's buffer (`recv_bytes_into`); it stays unread.
    BufferTooSmall {
        /// The size of the message.
        needed: usize,
    },
    /// This end was opened for sending only.
    NotReadable,
    /// This handle cannot act in this process: it is a fork child's copy that could not claim a
    /// participant entry of its own.
    NotAttached,
    /// The deadline passed.
    Timeout,
    /// A message could not be decoded as the expected type.
    Decode(DecodeError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => f.write_str("the other end of the pipe has gone"),
            Self::Corrupted => f.write_str("the pipe's shared state is corrupted"),
            Self::TooLarge { len } => {
                write!(
                    f,
                    "message of {len} bytes is larger than the limit of {MAX_MESSAGE}"
                )
            }
            Self::NotWritable => f.write_str("this end of the pipe is read-only"),
            Self::NotAttached => f.write_str(NOT_ATTACHED),
            Self::Encode(e) => write!(f, "{e}"),
            Self::Timeout => f.write_str("timed out waiting to send"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => {
                f.write_str("nothing to receive and the other end of the pipe has gone")
            }
            Self::Corrupted => f.write_str("the pipe's shared state or a record is corrupted"),
            Self::BufferTooSmall { needed } => {
                write!(f, "the message of {needed} bytes does not fit the buffer")
            }
            Self::NotReadable => f.write_str("this end of the pipe is write-only"),
            Self::NotAttached => f.write_str(NOT_ATTACHED),
            Self::Timeout => f.write_str("timed out waiting for a message"),
            Self::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// What another process needs to attach to one end of a pipe; serialisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionHandle {
    object: ObjectHandle,
    end: u8,
    send: bool,
    recv: bool,
}

impl ConnectionHandle {
    /// The handle of the pipe's segment (both ends share it).
    pub fn segment(&self) -> &ObjectHandle {
        &self.object
    }
}

/// An end claim: the word and the signal its waiters sleep on (`#[repr(C)]`, atomics only).
#[repr(C)]
struct EndClaim {
    word: AtomicU64,
    free: Signal,
}

/// One direction's shared state (`#[repr(C)]`, atomics only; sizes written at creation and
/// validated by every opener).
#[repr(C)]
struct Direction {
    /// Next byte to read; written by the receive-claim holder.
    head: CachePadded<AtomicU64>,
    /// End of the published bytes; written by the send-claim holder.
    tail: CachePadded<AtomicU64>,
    /// Bumped when a chunk is published (receivers wait on it).
    items: CachePadded<Signal>,
    /// Bumped when bytes are freed (senders wait on it).
    space: CachePadded<Signal>,
    send: CachePadded<EndClaim>,
    recv: CachePadded<EndClaim>,
    /// The roles ever attached (participant table).
    ever: AtomicU32,
    /// Entries of the participant table.
    participants: AtomicU32,
    /// Bytes of the ring.
    capacity: AtomicU64,
}

const DIRECTION_BYTES: usize = layout::padded(size_of::<Direction>());

fn direction_span(capacity: usize, participants: usize) -> Option<usize> {
    DIRECTION_BYTES
        .checked_add(table_bytes(participants)?)?
        .checked_add(capacity)
}

/// Where one direction lives in the mapping.
#[derive(Clone, Copy)]
struct DirPlace {
    state: *const Direction,
    table: TablePlace,
    data: *mut u8,
    capacity: u64,
    /// `capacity - 1` when the capacity is a power of two (the default), else 0: a position's
    /// offset is then a mask, not a division (tens of cycles, several per message).
    mask: u64,
}

impl DirPlace {
    /// The offset in the ring of byte position `pos`.
    #[inline]
    fn offset(&self, pos: u64) -> usize {
        (if self.mask != 0 {
            pos & self.mask
        } else {
            pos % self.capacity
        }) as usize
    }

    fn state(&self) -> &Direction {
        // SAFETY: the state is mapped while the segment lives (the places are built from a
        // validated segment that every user keeps alive through an `Arc`); atomics only.
        unsafe { &*self.state }
    }

    fn table(&self) -> Table<'_, Kernel> {
        self.table.table()
    }

    /// The check at the end of each slice of a wait for room (blocking or async):
    /// `Disconnected` once no receiver is left.
    fn receivers_check(&self) -> Result<(), SendError> {
        if self.role_gone(CONSUMER) {
            Err(SendError::Disconnected)
        } else {
            Ok(())
        }
    }

    /// Whether every handle of `role` has gone: every sender (`PRODUCER`, a receive would
    /// return `Disconnected`) or every receiver (`CONSUMER`, a send would).
    fn role_gone(&self, role: u32) -> bool {
        let table = self.table();
        table.ever(role) && !table.any_alive(role, 0)
    }

    /// The ring's 8-byte word at position `pos` (a multiple of 8): a chunk's tag or length word.
    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        debug_assert!(pos % CHUNK_ALIGN == 0);
        let off = self.offset(pos) & !(CHUNK_ALIGN as usize - 1);
        // SAFETY: `off + 8 <= capacity` (a multiple of 8 below a capacity that is a multiple of
        // 128), inside the ring, which starts 128-aligned; the ring's bytes are only ever
        // accessed atomically (these words and the word-wise atomic copies), and live as long
        // as the segment.
        unsafe { &*self.data.add(off).cast::<AtomicU64>() }
    }

    /// Writes a chunk's payload at `pos` (a multiple of 8): whole words as they are, the last
    /// partial word padded with zeros into one store (the padding belongs to the chunk).
    ///
    /// # Safety
    /// As for [`write`](Self::write), for `src.len()` rounded up to 8 bytes.
    #[inline]
    unsafe fn write_payload(&self, pos: u64, src: &[u8]) {
        let whole = src.len() & !7;
        if whole > 0 {
            // SAFETY: the caller's contract.
            unsafe { self.write(pos, &src[..whole]) };
        }
        let rest = &src[whole..];
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // ORDERING: Relaxed, published by the caller's Release tag store.
            self.word(pos + whole as u64)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
    }

    /// Reads a chunk's payload from `pos` (a multiple of 8), the mirror of
    /// [`write_payload`](Self::write_payload).
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    #[inline]
    unsafe fn read_payload(&self, pos: u64, dst: &mut [u8]) {
        let whole = dst.len() & !7;
        if whole > 0 {
            // SAFETY: the caller's contract.
            unsafe { self.read(pos, &mut dst[..whole]) };
        }
        let rest = dst.len() - whole;
        if rest > 0 {
            // ORDERING: Relaxed, ordered after the caller's Acquire tag load.
            let w = self.word(pos + whole as u64).load(Ordering::Relaxed);
            dst[whole..].copy_from_slice(&w.to_ne_bytes()[..rest]);
        }
    }

    /// Copies `src` into the ring at position `pos` (wrapping), with word-wise atomic stores.
    ///
    /// # Safety
    /// The caller holds the send claim, and `pos..pos + src.len()` is free (not yet published),
    /// `src.len() <= capacity`.
    unsafe fn write(&self, pos: u64, src: &[u8]) {
        let cap = self.capacity as usize;
        let start = self.offset(pos);
        let first = src.len().min(cap - start);
        // SAFETY: `start + first <= cap`, inside the ring; nobody holds a reference into the
        // ring's bytes (they are only ever copied, atomically).
        unsafe { ipc_core::raw::pod::copy_to_shared(&src[..first], self.data.add(start)) };
        // SAFETY: the rest wraps to the start of the ring: `src.len() - first <= start`.
        unsafe { ipc_core::raw::pod::copy_to_shared(&src[first..], self.data) };
    }

    /// Copies ring bytes from position `pos` (wrapping) into `dst`, with word-wise atomic loads.
    ///
    /// # Safety
    /// `dst.len() <= capacity`. (Any bytes are fine: a racing writer can only tear the copy.)
    unsafe fn read(&self, pos: u64, dst: &mut [u8]) {
        let cap = self.capacity as usize;
        let start = self.offset(pos);
        let first = dst.len().min(cap - start);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: `start + first <= cap`, inside the ring; `a` is private memory.
        unsafe { ipc_core::raw::pod::copy_from_shared(self.data.add(start), a) };
        // SAFETY: the rest wraps to the start of the ring: `b.len() <= start`.
        unsafe { ipc_core::raw::pod::copy_from_shared(self.data, b) };
    }
}

struct PipeSegment {
    seg: ObjectSegment,
    dirs: [DirPlace; 2],
}

// SAFETY: the places point into `seg`'s mapping, which `PipeSegment` owns; all shared accesses
// go through atomics or word-wise atomic copies, under the end claims.
unsafe impl Send for PipeSegment {}
// SAFETY: as above; `PipeSegment` has no interior state of its own besides the mapping.
unsafe impl Sync for PipeSegment {}

impl PipeSegment {
    fn create(
        placement: &Placement,
        capacity: usize,
        participants: usize,
    ) -> Result<Self, CreateError> {
        let invalid = CreateError::InvalidCapacity { capacity };
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(invalid);
        }
        if participants == 0 || participants > MAX_PARTICIPANTS {
            return Err(CreateError::InvalidParticipants { participants });
        }
        let capacity = layout::padded(capacity).max(MIN_CAPACITY);
        let span = direction_span(capacity, participants)
            .ok_or(CreateError::InvalidCapacity { capacity })?;
        let bytes = span.checked_mul(2).ok_or(invalid)?;
        let seg = layout::create(placement, KIND, bytes, |base| {
            for d in 0..2 {
                // SAFETY: direction `d` starts at `d * span` inside the fresh, zeroed, 128-aligned
                // payload of `bytes = 2 * span`; its state is atomics only.
                let st = unsafe { &*base.add(d * span).cast::<Direction>() };
                // ORDERING: Relaxed (both), published by the header's Release publish.
                st.participants
                    .store(participants as u32, Ordering::Relaxed);
                st.capacity.store(capacity as u64, Ordering::Relaxed);
                // A direction's data and room signals take the asymmetric barrier (see
                // `signal.rs`): usually one process waits on each.
                st.items.make_asymmetric();
                st.space.make_asymmetric();
                // So do the end claims' signals: a release is then a plain store (see the
                // module docs).
                st.send.free.make_asymmetric();
                st.recv.free.make_asymmetric();
            }
        })?;
        Self::from_segment(seg).map_err(|_| CreateError::InvalidCapacity { capacity })
    }

    fn from_segment(seg: ObjectSegment) -> Result<Self, OpenError> {
        let bytes = seg.capacity();
        let bad = OpenError::Corrupted {
            what: "pipe size, ring capacity or participant table",
        };
        if bytes % (2 * layout::ALIGN) != 0 || bytes / 2 < DIRECTION_BYTES {
            return Err(bad);
        }
        let span = bytes / 2;
        let base = seg.payload_ptr();
        let mut dirs = Vec::with_capacity(2);
        for d in 0..2 {
            // SAFETY: `d * span + DIRECTION_BYTES <= bytes` (checked above), 128-aligned; the
            // state is atomics only, valid for every bit pattern.
            let st_ptr = unsafe { base.add(d * span) }.cast::<Direction>();
            // SAFETY: as above.
            let st = unsafe { &*st_ptr };
            // ORDERING: Relaxed (both), ordered after the header's publish by the Acquire of its
            // validation; loaded once and validated.
            let participants = st.participants.load(Ordering::Relaxed) as usize;
            let capacity = st.capacity.load(Ordering::Relaxed);
            let cap = usize::try_from(capacity).map_err(|_| OpenError::Corrupted {
                what: "pipe capacity",
            })?;
            if participants == 0
                || participants > MAX_PARTICIPANTS
                || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap)
                || cap % layout::ALIGN != 0
                || direction_span(cap, participants) != Some(span)
            {
                return Err(bad);
            }
            let table = table_bytes(participants).ok_or(OpenError::Corrupted {
                what: "participant table",
            })?;
            // SAFETY: the table follows the state and the ring follows the table, all inside
            // this direction's span (`direction_span(cap, participants) == span`, checked above); the
            // entries are atomics only and live as long as `seg`.
            let (entries, data) = unsafe {
                (
                    st_ptr.cast::<u8>().add(DIRECTION_BYTES).cast::<Entry>(),
                    st_ptr.cast::<u8>().add(DIRECTION_BYTES + table),
                )
            };
            // SAFETY: `ever` lives in the state and the entries right after it, aligned, mapped
            // for as long as `seg` lives (owned with the places by `PipeSegment`).
            let table = unsafe { TablePlace::new(&raw const st.ever, entries, participants) };
            dirs.push(DirPlace {
                state: st_ptr.cast_const(),
                table,
                data,
                capacity,
                mask: if capacity.is_power_of_two() {
                    capacity - 1
                } else {
                    0
                },
            });
        }
        Ok(Self {
            seg,
            dirs: [dirs[0], dirs[1]],
        })
    }
}

/// The sending side of one connection.
struct Tx {
    dir: DirPlace,
    member: Membership,
    /// A position at or below the shared head: free space is computed against it first.
    head_cache: u64,
}

/// The receiving side.
struct Rx {
    dir: DirPlace,
    member: Membership,
    /// A message this handle began to read and still holds the receive end for (a receive
    /// that timed out, or a receive future dropped, in the middle of it): its total length and
    /// the bytes read so far. The next receive on this handle continues it.
    partial: Option<(usize, Vec<u8>)>,
}

/// One end of a pipe: `send`/`recv` serde values, or raw bytes.
///
/// An end may be shared: open its [`handle`](Connection::handle) in as many processes (or
/// threads, one handle each) as needed, and each `send` writes one whole message, each `recv`
/// reads one whole message, whatever the others do at the same time. Pass an end to a child by
/// its handle or by serialising it.
///
/// ```
/// let (mut a, mut b) = ipc_queue::pipe()?;
/// a.send(&vec![1, 2, 3])?;
/// assert_eq!(b.recv::<Vec<i32>>()?, [1, 2, 3]);
/// b.send_bytes(b"pong")?;
/// assert!(a.poll()?);
/// assert_eq!(a.recv_bytes()?, b"pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every blocking call has an async form for any executor (`send_async`, `recv_async`,
/// `send_bytes_async`, `recv_bytes_async`, their `*_timeout_async` forms), and the received
/// messages come as a `futures_core::Stream` ([`stream`](Connection::stream)) or a blocking
/// iterator ([`iter`](Connection::iter)).
///
/// # Cancellation
///
/// A future dropped while it waits for the end (another handle is sending or receiving a
/// message) takes nothing. Past that point:
///
/// | dropped while                                   | what happens                             |
/// |-------------------------------------------------|------------------------------------------|
/// | a send waits for room for its first chunk        | the send end is freed; nothing was sent  |
/// | a send waits for room for a later chunk (a message larger than half the ring) | the send end is freed with a prefix published, as by a sender killed there: the receiver drops the prefix (at the next message's first chunk, or after a slice), so this message is not delivered and every other one is, whole |
/// | a receive waits for its first chunk              | the receive end is freed; nothing was read |
/// | a receive waits for a later chunk                | the handle keeps the receive end and the bytes read so far: its next receive (async or blocking) continues the message, so nothing is lost; dropping the handle gives the rest up (skipped by the next receiver) |
///
/// The timeout forms (blocking or async) end the same way at their deadline, except that a
/// send's deadline only bounds its waits before the first chunk (`SendError::Timeout` means
/// nothing was sent). A message of at most half the ring (with its 8-byte header) is written
/// or read within one poll, so none of this arises for it.
pub struct Connection {
    tx: Option<Tx>,
    rx: Option<Rx>,
    end: u8,
    spin: Duration,
    buf: Vec<u8>,
    // Dropped last: the places point into it.
    seg: std::sync::Arc<PipeSegment>,
}

// SAFETY: every pointer in a connection points into its own segment mapping, which moves with
// it; shared bytes are only touched through atomics or atomic copies under the end claims. (It
// is not `Sync`: one thread uses a handle at a time; open another handle per thread.)
unsafe impl Send for Connection {}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("end", &self.end)
            .field("readable", &self.rx.is_some())
            .field("writable", &self.tx.is_some())
            .finish()
    }
}

/// A duplex pipe: two connected ends, each of which can send and receive, with rings of
/// [`DEFAULT_PIPE_CAPACITY`] bytes per direction.
///
/// ```
/// let (mut parent, mut child) = ipc_queue::pipe()?;
/// child.send(&"hello")?;
/// assert_eq!(parent.recv::<String>()?, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "Pipe")]
pub fn pipe() -> Result<(Connection, Connection), CreateError> {
    PipeBuilder::new().create()
}

/// A one-way pipe, Python's `Pipe(duplex=False)`: returns `(reader, writer)`.
///
/// ```
/// let (mut r, mut w) = ipc_queue::pipe_simplex()?;
/// w.send_bytes(b"x")?;
/// assert_eq!(r.recv_bytes()?, b"x");
/// assert!(r.send_bytes(b"no").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "Pipe")]
pub fn pipe_simplex() -> Result<(Connection, Connection), CreateError> {
    PipeBuilder::new().duplex(false).create()
}

/// A pipe placed as asked, with `capacity` bytes per direction (rounded up to 128).
pub fn pipe_with_capacity(
    placement: &Placement,
    capacity: usize,
    duplex: bool,
) -> Result<(Connection, Connection), CreateError> {
    PipeBuilder::new()
        .placement(placement.clone())
        .capacity(capacity)
        .duplex(duplex)
        .create()
}

/// How to make a pipe: `PipeBuilder::new()`, the options, then `create()`.
///
/// ```
/// // Room for 4,096 attached handles per direction (the default is 1,024).
/// let (mut a, mut b) = ipc_queue::PipeBuilder::new().participants(4096).create()?;
/// a.send(&1u8)?;
/// assert_eq!(b.recv::<u8>()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `create()`"]
pub struct PipeBuilder {
    placement: Placement,
    capacity: usize,
    duplex: bool,
    participants: usize,
}

impl Default for PipeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Builder setters: each stores its argument in the field of the same name.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )*
    };
}

impl PipeBuilder {
    /// A duplex anonymous pipe of [`DEFAULT_PIPE_CAPACITY`] bytes per direction.
    pub fn new() -> Self {
        Self {
            placement: Placement::Anonymous,
            capacity: DEFAULT_PIPE_CAPACITY,
            duplex: true,
            participants: DEFAULT_PARTICIPANTS,
        }
    }

    setters! {
        /// Where the segment goes.
        placement: Placement;
        /// Bytes of each direction's ring (rounded up to 128).
        capacity: usize;
        /// Both ends send and receive (default), or end 0 only receives and end 1 only sends.
        duplex: bool;
        /// How many handles may be attached to each direction at once, across all processes
        /// (default [`DEFAULT_PARTICIPANTS`](crate::DEFAULT_PARTICIPANTS)).
        participants: usize;
    }

    /// Creates the pipe: `(end 0, end 1)`.
    pub fn create(self) -> Result<(Connection, Connection), CreateError> {
        let capacity = self.capacity;
        // Both ends share one mapping (and descriptor), so either end's handle stays valid
        // while the other end lives.
        let a_seg = std::sync::Arc::new(PipeSegment::create(
            &self.placement,
            capacity,
            self.participants,
        )?);
        let b_seg = a_seg.clone();
        let fail = |e: OpenError| match e {
            OpenError::Identity(e) => CreateError::Identity(e),
            _ => CreateError::InvalidCapacity { capacity },
        };
        // End 0 sends on direction 0 and receives on direction 1; end 1 the reverse. Simplex:
        // end 0 reads (direction 1), end 1 writes (direction 1).
        let a = Connection::attach(a_seg, 0, self.duplex, true).map_err(fail)?;
        let b = Connection::attach(b_seg, 1, true, self.duplex).map_err(fail)?;
        Ok((a, b))
    }
}

/// How waiting for an end claim ended without it.
enum ClaimWait {
    Timeout,
    Corrupted,
}

/// Claims `end` for `me`, waiting until `deadline`; a holder the kernel says is dead is cleared
/// after a slice (to [`claim::ORPHANED`]). A waiter that sleeps announces itself on the
/// claim's signal, which the holder's release checks.
/// `true`: the claim was orphaned, and a sender must repair the tail before it writes.
fn claim_end(
    end: &EndClaim,
    me: Identity,
    spin: Duration,
    deadline: Option<Instant>,
) -> Result<bool, ClaimWait> {
    if claim::try_claim_from(&end.word, 0, me) {
        return Ok(false);
    }
    let r = signal::block_on(
        &end.free,
        deadline,
        spin,
        ipc_core::raw::sync::look_pause,
        || claim_attempt(end, me),
        || claim::orphan_dead(&end.word, &Kernel).map_err(|_| ClaimWait::Corrupted),
    );
    match r {
        Ok(orphaned) => Ok(orphaned),
        Err(Blocked::Failed(e)) => Err(e),
        Err(Blocked::Timeout) => Err(ClaimWait::Timeout),
    }
}

/// Takes `end` for `me` if it is free now (`Some(orphaned)`, see [`claim_end`]), without
/// waiting.
fn try_take(end: &EndClaim, me: Identity) -> Option<bool> {
    if claim::try_claim_from(&end.word, 0, me) {
        return Some(false);
    }
    // ORDERING: Relaxed, only picks what to try; the CAS decides.
    let seen = end.word.load(Ordering::Relaxed);
    (seen == claim::ORPHANED && claim::try_claim_from(&end.word, seen, me)).then_some(true)
}

/// One attempt of a waiting claim of `end`: takes it if free (or orphaned).
fn claim_attempt(end: &EndClaim, me: Identity) -> Attempt<bool, ClaimWait> {
    // ORDERING: Relaxed, only picks what to try; the CAS decides.
    let seen = end.word.load(Ordering::Relaxed);
    if (seen == 0 || seen == claim::ORPHANED) && claim::try_claim_from(&end.word, seen, me) {
        return Attempt::Ready(Ok(seen == claim::ORPHANED));
    }
    Attempt::Pending
}

/// Frees `end` after one message and wakes its sleepers, if any announced itself.
///
/// A plain store, not a CAS: while `me` holds the word, nobody else writes it (a claimer CASes
/// only from free or orphaned, and a holder is orphaned only once the kernel says it is dead),
/// so the load that checks it is ours and the store cannot overwrite anyone's change. A word
/// that is not `me` (corrupted) is left alone. The signal is asymmetric (set at creation), so
/// `notify` after the store is a compiler fence and a load: either it sees a sleeper's
/// announcement, or the sleeper's re-check after its `membarrier` sees the word free.
fn release_end(end: &EndClaim, me: Identity) {
    // ORDERING: Relaxed, our own claim's word (see above).
    if end.word.load(Ordering::Relaxed) == me {
        // ORDERING: Release, pairs with the Acquire of the next claimer's CAS (and of
        // `claim::gone`): everything done under the claim happens before its accesses.
        end.word.store(0, Ordering::Release);
    }
    end.free.notify();
}

/// How far [`Tx::write_some`] got.
enum Wrote {
    /// The whole message is published.
    Done,
    /// The next chunk needs `want` bytes free after `tail`.
    Full { tail: u64, want: u64 },
}

/// A payload of at most [`BURST_PAYLOAD`] bytes as the two words that hold it, zero-padded
/// (`lo` holds bytes 0 to 7), read with loads of fixed sizes, two overlapping ones, and put
/// together in registers: a copy whose length is known only at run time is a call to `memcpy`,
/// which costs more than a few bytes do (a serde `u64` is a varint of one to ten bytes), and
/// a word loaded back from an array just written in smaller pieces waits for those stores.
#[inline]
fn small_words(payload: &[u8]) -> (u64, u64) {
    /// The little-endian value of `N` bytes of `p` from `at`.
    #[inline(always)]
    fn le<const N: usize>(p: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w[..N].copy_from_slice(&p[at..at + N]);
        u64::from_le_bytes(w)
    }
    let n = payload.len();
    debug_assert!(n <= BURST_PAYLOAD);
    // Little-endian values: byte `i` of the payload is bits `8 i ..` of the pair; each word is
    // turned into the native word whose bytes in memory are the payload's (`to_le`).
    let (lo, hi) = if n >= 8 {
        // The last eight bytes, shifted so that the ones past the first eight stay.
        let hi = if n > 8 {
            le::<8>(payload, n - 8) >> (8 * (16 - n))
        } else {
            0
        };
        (le::<8>(payload, 0), hi)
    } else if n >= 4 {
        (
            le::<4>(payload, 0) | le::<4>(payload, n - 4) << (8 * (n - 4)),
            0,
        )
    } else if n > 0 {
        let (a, b, c) = (payload[0], payload[n / 2], payload[n - 1]);
        let w = u64::from(a) | u64::from(b) << (8 * (n / 2)) | u64::from(c) << (8 * (n - 1));
        (w, 0)
    } else {
        (0, 0)
    };
    (lo.to_le(), hi.to_le())
}

/// The first `out.len()` (at most 8) bytes of `word`'s bytes into `out`, with moves of fixed
/// sizes (see [`small_words`]).
#[inline]
fn unpad_word(word: u64, out: &mut [u8]) {
    let bytes = word.to_ne_bytes();
    let n = out.len();
    debug_assert!(n <= 8);
    if n == 8 {
        out.copy_from_slice(&bytes);
    } else if n >= 4 {
        out[..4].copy_from_slice(&bytes[..4]);
        out[n - 4..n].copy_from_slice(&bytes[n - 4..n]);
    } else if n > 0 {
        out[0] = bytes[0];
        out[n / 2] = bytes[n / 2];
        out[n - 1] = bytes[n - 1];
    }
}

/// The length word of a chunk: its payload length and, for a first chunk, `FIRST` and the
/// message's total length.
fn chunk_header(len: usize, first: Option<usize>) -> u64 {
    // `len` and `total` are at most MAX_MESSAGE = 2^30.
    let word = first.map_or(0, |total| FIRST | total as u32);
    u64::from(len as u32) | u64::from(word) << 32
}

fn parse_header(h: u64) -> (usize, Option<usize>) {
    let len = (h as u32) as usize;
    let word = (h >> 32) as u32;
    let total = (word & FIRST != 0).then_some((word & !FIRST) as usize);
    (len, total)
}

/// The tag that says a chunk is published at `pos` (never 0, the zeroed word's value).
#[inline]
fn tag_of(pos: u64) -> u64 {
    pos + 1
}

/// Ring bytes of a chunk of `len` payload bytes: its header, the payload, padding to 8.
#[inline]
fn chunk_bytes(len: usize) -> usize {
    CHUNK_HEADER + len.next_multiple_of(CHUNK_ALIGN as usize)
}

/// The largest payload of one chunk in a ring of `capacity` bytes.
fn max_chunk(capacity: u64) -> u64 {
    capacity - (CHUNK_HEADER + TAG_BYTES) as u64
}

impl Tx {
    /// The shared head, validated against our tail.
    fn refresh_head(&mut self, tail: u64) -> Result<u64, SendError> {
        let st = self.dir.state();
        // ORDERING: Acquire, pairs with the Release head stores of receivers: their reads of
        // the bytes they freed happen before we overwrite them.
        let head = st.head.load(Ordering::Acquire);
        if head > tail || tail - head > self.dir.capacity || head % CHUNK_ALIGN != 0 {
            return Err(SendError::Corrupted);
        }
        self.head_cache = head;
        Ok(head)
    }

    /// The shared tail, validated; the caller holds the send claim.
    fn load_tail(&self) -> Result<u64, SendError> {
        // ORDERING: Acquire, pairs with the Release tail stores of the previous sender (of any
        // process): we continue right after its last chunk (or after our own).
        let tail = self.dir.state().tail.load(Ordering::Acquire);
        if tail > MAX_POSITION || tail % CHUNK_ALIGN != 0 {
            return Err(SendError::Corrupted);
        }
        Ok(tail)
    }

    /// Writes a chunk of `payload` at `tail` and publishes it (its tag); returns where the next
    /// chunk goes. Does not move the shared tail.
    ///
    /// # Safety
    /// The caller holds the send claim, and `chunk_bytes(payload.len()) + TAG_BYTES` bytes from
    /// `tail` are free (not published, not being read); `tail` is a multiple of 8.
    #[inline(always)]
    unsafe fn publish_chunk(&self, tail: u64, payload: &[u8], first: Option<usize>) -> u64 {
        let dir = self.dir;
        let next = tail + chunk_bytes(payload.len()) as u64;
        let off = dir.offset(tail);
        let span = (next - tail) as usize + TAG_BYTES;
        if payload.len() <= BURST_PAYLOAD && off + span <= dir.capacity as usize {
            // A small chunk that does not wrap: every word is ready before the first store, and
            // the stores go back to back, so that the line its receiver watches is held for as
            // short a time as possible (a receiver that looks meanwhile pulls the line away, and
            // each pull costs another trip of it before the next store).
            let (lo, hi) = small_words(payload);
            let header = chunk_header(payload.len(), first);
            let word = |i: usize| {
                // SAFETY: `off + span <= capacity`, so the chunk's words and the next chunk's
                // tag word (`i * 8 < span`) lie in the ring, 8-aligned (`tail` is a multiple of
                // 8, the ring starts 128-aligned); they are free (the caller's contract) and
                // only ever accessed atomically.
                unsafe { &*dir.data.add(off + 8 * i).cast::<AtomicU64>() }
            };
            let next_tag = (next - tail) as usize / 8;
            if !payload.is_empty() {
                // ORDERING: Relaxed (the payload, the length word and the next chunk's zeroed
                // tag word), published by the Release tag store after them.
                word(2).store(lo, Ordering::Relaxed);
            }
            if payload.len() > 8 {
                // ORDERING: Relaxed, as above.
                word(3).store(hi, Ordering::Relaxed);
            }
            // ORDERING: Relaxed, as above.
            word(1).store(header, Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            word(next_tag).store(0, Ordering::Relaxed);
            // ORDERING: Release, pairs with the Acquire tag loads of receivers.
            word(0).store(tag_of(tail), Ordering::Release);
            return next;
        }
        // SAFETY: the payload's bytes, padded, are free (the caller's contract) and below the
        // capacity; `tail + 16` is a multiple of 8.
        unsafe { dir.write_payload(tail + CHUNK_HEADER as u64, payload) };
        // ORDERING: Relaxed, published by the Release tag store below.
        dir.word(tail + TAG_BYTES as u64)
            .store(chunk_header(payload.len(), first), Ordering::Relaxed);
        // ORDERING: Relaxed, ordered before the tag store below by its Release: a receiver that
        // moves on to `next` finds 0 there, never a word an earlier lap left, until the next
        // chunk is published.
        dir.word(next).store(0, Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire tag loads of receivers: publishes the
        // chunk's header, payload and the zeroed tag word after it.
        dir.word(tail).store(tag_of(tail), Ordering::Release);
        next
    }

    /// After taking an orphaned send claim: moves the shared tail past every chunk published
    /// at it (a sender killed between its tag store and its tail store left it there).
    fn repair_tail(&mut self) -> Result<(), SendError> {
        let dir = self.dir;
        let mut tail = self.load_tail()?;
        let start = tail;
        // The head only moves on: every chunk the dead sender published fitted in front of it.
        let head = self.refresh_head(start)?;
        // ORDERING: Acquire, pairs with the dead sender's Release tag store: its chunk's
        // length word is visible.
        while dir.word(tail).load(Ordering::Acquire) == tag_of(tail) {
            // ORDERING: Relaxed, ordered after the Acquire above.
            let (len, _) = parse_header(dir.word(tail + TAG_BYTES as u64).load(Ordering::Relaxed));
            if len as u64 > max_chunk(dir.capacity) {
                return Err(SendError::Corrupted);
            }
            tail += chunk_bytes(len) as u64;
            if tail - head > dir.capacity - TAG_BYTES as u64 {
                return Err(SendError::Corrupted);
            }
        }
        if tail != start {
            // ORDERING: Release, as every tail store (for the next sender's Acquire).
            dir.state().tail.store(tail, Ordering::Release);
        }
        Ok(())
    }

    /// Publishes as many chunks of `data[*sent..]` as the free space allows; the caller holds
    /// the send claim. `*sent == 0`: nothing of the message is out yet (its first chunk carries
    /// `FIRST` and the total).
    fn write_some(&mut self, data: &[u8], sent: &mut usize) -> Result<Wrote, SendError> {
        let cap = self.dir.capacity;
        let mut tail = self.load_tail()?;
        if self.head_cache > tail || tail - self.head_cache > cap {
            self.refresh_head(tail)?;
        }
        let half = (cap / 2) as usize;
        loop {
            let remaining = data.len() - *sent;
            let want = (chunk_bytes(remaining) + TAG_BYTES).min(half) as u64;
            let mut free = cap - (tail - self.head_cache);
            if free < want {
                free = cap - (tail - self.refresh_head(tail)?);
            }
            if free < want {
                return Ok(Wrote::Full { tail, want });
            }
            // `free >= want >= 32`; the chunk, padded, and the next tag word fit in `free`.
            let room = (free as usize - CHUNK_HEADER - TAG_BYTES) & !(CHUNK_ALIGN as usize - 1);
            let n = remaining.min(room);
            let first = (*sent == 0).then_some(data.len());
            // SAFETY: we hold the send claim, `chunk_bytes(n) + 8 <= free` bytes from `tail`
            // are free (no receiver reads them before the tag store), and `tail` is a multiple
            // of 8 (checked by `load_tail`, kept by `chunk_bytes`).
            tail = unsafe { self.publish_chunk(tail, &data[*sent..*sent + n], first) };
            self.publish_tail(tail);
            *sent += n;
            if *sent == data.len() {
                return Ok(Wrote::Done);
            }
        }
    }

    /// Moves the shared tail to `tail`, past the chunks just published, and wakes receivers
    /// if any announced itself.
    #[inline]
    fn publish_tail(&self, tail: u64) {
        let st = self.dir.state();
        // ORDERING: Release, pairs with the Acquire tail load of the next sender (the claim's
        // Release and Acquire order it too; this also covers a repair).
        st.tail.store(tail, Ordering::Release);
        st.items.notify();
    }

    /// Publishes a message of at most [`BURST_PAYLOAD`] bytes as one chunk if the cached head
    /// shows room for it (and the next tag word), which is all a small message needs while the
    /// receiver keeps up: `Ok(false)` when it does not, and [`write_message`](Self::write_message)
    /// takes the message (it reads the shared head and waits). The caller holds the send claim,
    /// and the tail needs no repair.
    #[inline]
    fn write_small(&mut self, data: &[u8]) -> Result<bool, SendError> {
        debug_assert!(data.len() <= BURST_PAYLOAD);
        let tail = self.load_tail()?;
        let want = (chunk_bytes(data.len()) + TAG_BYTES) as u64;
        // `capacity >= MIN_CAPACITY > want`. A cached head above the tail makes the difference
        // wrap to more than that, so the long path, which checks the shared head, takes it.
        if tail.wrapping_sub(self.head_cache) > self.dir.capacity - want {
            return Ok(false);
        }
        // SAFETY: we hold the send claim; the cached head is at or below the shared head, so
        // at least `want = chunk_bytes(len) + 8` bytes from `tail` are free; `tail` is a multiple
        // of 8 (checked by `load_tail`).
        let next = unsafe { self.publish_chunk(tail, data, Some(data.len())) };
        self.publish_tail(next);
        Ok(true)
    }

    /// Writes one message as chunks; the caller holds the send claim. The deadline bounds only
    /// the wait for room for the first chunk: once part of the message is out, the rest
    /// follows while a receiver lives, so a `Timeout` has sent nothing.
    fn write_message(
        &mut self,
        data: &[u8],
        spin: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let mut sent = 0;
        loop {
            match self.write_some(data, &mut sent)? {
                Wrote::Done => return Ok(()),
                Wrote::Full { tail, want } => {
                    let deadline = if sent == 0 { deadline } else { None };
                    self.wait_space(tail, want, spin, deadline)?;
                }
            }
        }
    }

    /// One attempt of a wait for room (blocking or async): ready once `want` bytes are free
    /// after `tail`.
    #[inline]
    fn room_attempt(&mut self, tail: u64, want: u64) -> Attempt<(), SendError> {
        match self.has_room(tail, want) {
            Ok(true) => Attempt::Ready(Ok(())),
            Ok(false) => Attempt::Pending,
            Err(e) => Attempt::Ready(Err(e)),
        }
    }

    /// Whether `want` bytes are free after `tail` (the caller holds the send claim).
    fn has_room(&mut self, tail: u64, want: u64) -> Result<bool, SendError> {
        let head = self.refresh_head(tail)?;
        Ok(self.dir.capacity - (tail - head) >= want)
    }

    /// Waits until `want` bytes are free after `tail`, until `deadline`; `Disconnected` once
    /// no receiver is left.
    fn wait_space(
        &mut self,
        tail: u64,
        want: u64,
        spin: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let dir = self.dir;
        let r = signal::block_on(
            &dir.state().space,
            deadline,
            spin,
            // The head is one store of the receiver's.
            ipc_core::raw::sync::quick_look_pause,
            || self.room_attempt(tail, want),
            || dir.receivers_check(),
        );
        match r {
            Ok(()) => Ok(()),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(SendError::Timeout),
        }
    }
}

/// Where a received message goes.
enum Sink<'a> {
    Vec(&'a mut Vec<u8>),
    Slice(&'a mut [u8]),
}

impl Sink<'_> {
    /// Room for `n` more bytes after the first `got`.
    fn room(&mut self, got: usize, n: usize) -> &mut [u8] {
        match self {
            Sink::Vec(v) => {
                // Grows with what arrived: a hostile total cannot make us allocate ahead.
                v.resize(got + n, 0);
                &mut v[got..]
            }
            Sink::Slice(s) => &mut s[got..got + n],
        }
    }

    /// Puts the first `n` (at most [`BURST_PAYLOAD`]) bytes of the words `lo` and `hi` (a
    /// small chunk's payload, as loaded) after the first `got`, as [`room`](Self::room) and a
    /// copy into it would, without a call to `memcpy` (see [`small_words`]). Each word is moved
    /// as it is: a load that spans two recent stores would wait for both to retire.
    #[inline(always)]
    fn put_small(&mut self, got: usize, n: usize, lo: u64, hi: u64) {
        match self {
            Sink::Vec(v) => {
                debug_assert!(v.len() >= got);
                v.truncate(got);
                v.reserve(BURST_PAYLOAD);
                v.extend_from_slice(&lo.to_ne_bytes());
                v.extend_from_slice(&hi.to_ne_bytes());
                v.truncate(got + n);
            }
            Sink::Slice(s) => {
                let out = &mut s[got..got + n];
                if n > 8 {
                    let (first, rest) = out.split_at_mut(8);
                    first.copy_from_slice(&lo.to_ne_bytes());
                    unpad_word(hi, rest);
                } else {
                    unpad_word(lo, out);
                }
            }
        }
    }

    fn restart(&mut self) {
        if let Sink::Vec(v) = self {
            v.clear();
        }
    }

    /// The first `got` bytes written.
    fn filled(&self, got: usize) -> &[u8] {
        match self {
            Sink::Vec(v) => &v[..got.min(v.len())],
            Sink::Slice(s) => &s[..got.min(s.len())],
        }
    }
}

/// Why no chunk came.
enum ChunkWait {
    /// The message being read was abandoned by its sender (dead, or gone without finishing).
    Abandoned,
    /// Nothing left to receive and every sender has gone.
    Disconnected,
    Timeout,
    Corrupted,
}

impl Rx {
    /// Whether a chunk is published at `head` (its tag is there).
    #[inline]
    fn published(&self, head: u64) -> bool {
        // ORDERING: Acquire, pairs with the sender's Release tag store: the chunk's header and
        // payload are visible before we read them.
        self.dir.word(head).load(Ordering::Acquire) == tag_of(head)
    }

    /// After a slice with nothing published at `head`: `Corrupted` if `head` is past the tail
    /// while no sender is at work (the last sender stored the tail before it freed its claim).
    fn check_position(&self, head: u64) -> Result<(), ChunkWait> {
        let st = self.dir.state();
        // ORDERING: Acquire, pairs with the Release of `release_end`: a free claim's last
        // holder's tail store is visible to the load below.
        // (An orphaned claim is no such word: its dead holder may have stopped between its tag
        // store and its tail store.)
        let free = st.send.word.load(Ordering::Acquire) == 0;
        // ORDERING: Acquire, as every tail load.
        let tail = st.tail.load(Ordering::Acquire);
        if free && (head > tail || tail - head > self.dir.capacity) {
            return Err(ChunkWait::Corrupted);
        }
        Ok(())
    }

    /// One attempt of a wait for a chunk at `head` (blocking or async): ready once one is
    /// published, or once the last slice's check found the sender gone (`gone`): `Abandoned`
    /// while a message is being read (`reading`), `Disconnected` otherwise.
    #[inline]
    fn chunk_attempt(&self, head: u64, reading: bool, gone: bool) -> Attempt<(), ChunkWait> {
        if self.published(head) {
            Attempt::Ready(Ok(()))
        } else if gone && reading {
            Attempt::Ready(Err(ChunkWait::Abandoned))
        } else if gone {
            Attempt::Ready(Err(ChunkWait::Disconnected))
        } else {
            Attempt::Pending
        }
    }

    /// The check after a slice of a wait for a chunk at `head` passed with nothing new: whether
    /// the sender of the message being read (`reading`), or every sender, has gone. The next
    /// attempt looks at the tag again after this, so that a chunk published before the sender
    /// let go is still seen (the Acquire of `claim::gone` pairs with the Release of
    /// `release_end`).
    fn chunk_check(&self, head: u64, reading: bool) -> Result<bool, ChunkWait> {
        self.check_position(head)?;
        Ok(if reading {
            claim::gone(&self.dir.state().send.word, &Kernel)
        } else {
            self.dir.role_gone(PRODUCER)
        })
    }

    /// Waits until a chunk is published at `head`. While a message is being read (`reading`),
    /// a sender that has gone without finishing it gives `Abandoned`; otherwise every sender
    /// gone gives `Disconnected`.
    fn wait_chunk(
        &mut self,
        head: u64,
        reading: bool,
        spin: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), ChunkWait> {
        if self.published(head) {
            return Ok(());
        }
        let gone = std::cell::Cell::new(false);
        let r = signal::block_on(
            &self.dir.state().items,
            deadline,
            spin,
            // A small chunk is one burst of stores (see `Tx::publish_chunk`).
            ipc_core::raw::sync::quick_look_pause,
            || self.chunk_attempt(head, reading, gone.get()),
            || self.chunk_check(head, reading).map(|g| gone.set(g)),
        );
        match r {
            Ok(()) => Ok(()),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Err(ChunkWait::Timeout),
        }
    }

    /// Moves the shared head past a consumed chunk and frees its bytes for senders.
    #[inline]
    fn advance(&mut self, head: &mut u64, len: usize) {
        *head += chunk_bytes(len) as u64;
        let st = self.dir.state();
        // ORDERING: Release, pairs with the Acquire head loads of senders (our reads of the
        // chunk happen before they overwrite it) and of the next receiver.
        st.head.store(*head, Ordering::Release);
        st.space.notify();
    }

    /// Reads the header of the chunk published at `head` (the caller saw its tag) and checks
    /// it: its payload length and, for a first chunk, the message's total.
    #[inline]
    fn header_at(&self, head: u64) -> Result<(usize, Option<usize>), RecvError> {
        // ORDERING: Relaxed, ordered after the Acquire tag load of `published`.
        let word = self
            .dir
            .word(head + TAG_BYTES as u64)
            .load(Ordering::Relaxed);
        let (len, total) = parse_header(word);
        if len as u64 > max_chunk(self.dir.capacity)
            || total.is_some_and(|t| t > MAX_MESSAGE || len > t)
        {
            return Err(RecvError::Corrupted);
        }
        Ok((len, total))
    }

    /// Skips chunks that continue a message nobody is reading (abandoned by a receiver that
    /// died or timed out); `true` once a first chunk is at the head.
    fn skip_leftovers(&mut self, head: &mut u64) -> Result<bool, RecvError> {
        loop {
            if !self.published(*head) {
                return Ok(false);
            }
            match self.header_at(*head)? {
                (_, Some(_)) => return Ok(true),
                (len, None) => self.advance(head, len),
            }
        }
    }

    /// The shared head, validated; the caller holds the receive claim.
    fn load_head(&mut self) -> Result<u64, RecvError> {
        // ORDERING: Acquire, pairs with the Release head stores of the previous receiver: we
        // continue where it stopped.
        let head = self.dir.state().head.load(Ordering::Acquire);
        if head > MAX_POSITION || head % CHUNK_ALIGN != 0 {
            return Err(RecvError::Corrupted);
        }
        Ok(head)
    }

    /// Reads the chunks published from `head` into `sink`, continuing the message `current`
    /// (its total and the bytes read so far; `None`: none begun); the caller holds the receive
    /// claim. `Some(total)` once a whole message is read; `None` when it must wait for a chunk.
    fn read_published(
        &mut self,
        head: &mut u64,
        current: &mut Option<(usize, usize)>,
        sink: &mut Sink<'_>,
    ) -> Result<Option<usize>, RecvError> {
        let dir = self.dir;
        loop {
            if !self.published(*head) {
                return Ok(None);
            }
            let (len, first) = self.header_at(*head)?;
            let got = match (first, *current) {
                (Some(total), _) => {
                    // A new message (a prefix being read, if any, was abandoned by its sender).
                    *current = None;
                    if let Sink::Slice(buf) = sink {
                        if total > buf.len() {
                            // Left unread for a receive with a larger buffer.
                            return Err(RecvError::BufferTooSmall { needed: total });
                        }
                    }
                    sink.restart();
                    *current = Some((total, 0));
                    0
                }
                (None, None) => {
                    // The rest of a message nobody is reading.
                    self.advance(head, len);
                    continue;
                }
                (None, Some((total, got))) => {
                    if len > total - got {
                        return Err(RecvError::Corrupted);
                    }
                    got
                }
            };
            let at = *head + CHUNK_HEADER as u64;
            if len <= BURST_PAYLOAD {
                let (lo, hi) = self.small_payload(at, len);
                sink.put_small(got, len, lo, hi);
            } else {
                let room = sink.room(got, len);
                // SAFETY: the chunk's `len` bytes after its header are published (its tag was
                // loaded with Acquire) and `len <= capacity - 24` (checked by `header_at`).
                unsafe { dir.read_payload(at, &mut room[..len]) };
            }
            self.advance(head, len);
            let Some((total, _)) = *current else {
                return Err(RecvError::Corrupted);
            };
            let got = got + len;
            if got == total {
                *current = None;
                return Ok(Some(total));
            }
            *current = Some((total, got));
        }
    }

    /// The payload of `len` (at most [`BURST_PAYLOAD`]) bytes at `at` of a chunk whose tag was
    /// seen, as the two words that hold it (see [`small_words`]).
    #[inline(always)]
    fn small_payload(&self, at: u64, len: usize) -> (u64, u64) {
        // ORDERING: Relaxed (both), ordered after the Acquire tag load of `published`.
        let lo = self.dir.word(at).load(Ordering::Relaxed);
        let hi = if len > 8 {
            // ORDERING: Relaxed, as above.
            self.dir.word(at + 8).load(Ordering::Relaxed)
        } else {
            0
        };
        (lo, hi)
    }

    /// Reads a whole message of at most [`BURST_PAYLOAD`] bytes, one chunk, published at
    /// `head` into `sink` (which has room for it), with one comparison of its header for every
    /// check [`read_published`](Self::read_published) makes of it; `None` for anything else
    /// (nothing published yet, a larger message, the rest of one, a buffer too small, a header
    /// that fails the checks), which `read_published` then takes. The caller holds the receive
    /// claim and is not in the middle of a message.
    #[inline]
    fn read_small(&mut self, head: &mut u64, sink: &mut Sink<'_>) -> Option<usize> {
        if !self.published(*head) {
            return None;
        }
        let dir = self.dir;
        // ORDERING: Relaxed, ordered after the Acquire tag load of `published`.
        let header = dir.word(*head + TAG_BYTES as u64).load(Ordering::Relaxed);
        let len = (header as u32) as usize;
        // A first chunk whose total is its own length, at most `BURST_PAYLOAD` (far below
        // `max_chunk` and `MAX_MESSAGE`).
        if len > BURST_PAYLOAD || header != chunk_header(len, Some(len)) {
            return None;
        }
        if let Sink::Slice(buf) = sink {
            if len > buf.len() {
                return None;
            }
        }
        let (lo, hi) = self.small_payload(*head + CHUNK_HEADER as u64, len);
        sink.put_small(0, len, lo, hi);
        self.advance(head, len);
        Some(len)
    }

    /// Reads one whole message into `sink`, continuing `current` (see
    /// [`read_published`](Self::read_published)); the caller holds the receive claim. Returns
    /// its length; after an error, `current` is what was read of a message left unfinished.
    fn read_message(
        &mut self,
        sink: &mut Sink<'_>,
        current: &mut Option<(usize, usize)>,
        spin: Duration,
        deadline: Option<Instant>,
    ) -> Result<usize, RecvError> {
        let mut head = self.load_head()?;
        loop {
            if current.is_none() {
                if let Some(len) = self.read_small(&mut head, sink) {
                    return Ok(len);
                }
            }
            if let Some(total) = self.read_published(&mut head, current, sink)? {
                return Ok(total);
            }
            match self.wait_chunk(head, current.is_some(), spin, deadline) {
                Ok(()) => {}
                Err(ChunkWait::Abandoned) => {
                    // Its sender died (or gave up) mid-message: the prefix is lost.
                    *current = None;
                    sink.restart();
                }
                Err(ChunkWait::Disconnected) => return Err(RecvError::Disconnected),
                Err(ChunkWait::Timeout) => return Err(RecvError::Timeout),
                Err(ChunkWait::Corrupted) => return Err(RecvError::Corrupted),
            }
        }
    }

    /// The message this handle began to read, if it still holds the receive end for it (a fork
    /// child's copy of a handle does not: its copy is dropped).
    fn take_partial(&mut self, me: Identity) -> Option<(usize, Vec<u8>)> {
        let partial = self.partial.take()?;
        // ORDERING: Acquire, as the claim's other loads; only we can have stored `me` there.
        let word = self.dir.state().recv.word.load(Ordering::Acquire);
        (claim::holder(word) == claim::Holder::Held(me)).then_some(partial)
    }
}

impl Connection {
    fn attach(
        seg: std::sync::Arc<PipeSegment>,
        end: u8,
        send: bool,
        recv: bool,
    ) -> Result<Self, OpenError> {
        let e = usize::from(end & 1);
        let tx = if send {
            let dir = seg.dirs[e];
            let member = Membership::attach(&dir.table(), PRODUCER)?;
            Some(Tx {
                dir,
                member,
                head_cache: 0,
            })
        } else {
            None
        };
        let rx = if recv {
            let dir = seg.dirs[1 - e];
            let member = Membership::attach(&dir.table(), CONSUMER)?;
            Some(Rx {
                dir,
                member,
                partial: None,
            })
        } else {
            None
        };
        Ok(Self {
            tx,
            rx,
            end,
            spin: signal::DEFAULT_SPIN,
            buf: Vec::new(),
            seg,
        })
    }

    /// The handle another process attaches to this end with.
    pub fn handle(&self) -> ConnectionHandle {
        ConnectionHandle {
            object: self.seg.seg.handle(),
            end: self.end,
            send: self.tx.is_some(),
            recv: self.rx.is_some(),
        }
    }

    /// Another handle of the same end (as `std::fs::File::try_clone`), on the same mapping: pass
    /// one to a [`Process`](ipc_core::Process), which takes its argument, and keep the other.
    /// Drop the one you keep to let the reader see end-of-file once the child is done, as
    /// Python's "close the writer in the parent" does.
    ///
    /// ```
    /// let (mut r, w) = ipc_queue::pipe_simplex()?;
    /// let mut w2 = w.try_clone()?;
    /// drop(w);
    /// w2.send(&1u8)?;
    /// assert_eq!(r.recv::<u8>()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        let mut c = Self::attach(
            std::sync::Arc::clone(&self.seg),
            self.end,
            self.tx.is_some(),
            self.rx.is_some(),
        )?;
        c.spin = self.spin;
        Ok(c)
    }

    /// Attaches to the end of a pipe a handle names (typically in a child process). Any number
    /// of handles may be attached to the same end.
    pub fn open(handle: &ConnectionHandle) -> Result<Self, OpenError> {
        let seg = ObjectSegment::open(&handle.object, &layout::fingerprint(KIND))?;
        Self::attach(
            std::sync::Arc::new(PipeSegment::from_segment(seg)?),
            handle.end,
            handle.send,
            handle.recv,
        )
    }

    /// Whether this end can receive (Python's `Connection.readable`): false only for the
    /// writing end of a one-way pipe.
    ///
    /// ```
    /// let (r, w) = ipc_queue::pipe_simplex()?;
    /// assert!(r.readable() && !r.writable());
    /// assert!(w.writable() && !w.readable());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn readable(&self) -> bool {
        self.rx.is_some()
    }

    /// Whether this end can send (Python's `Connection.writable`): false only for the reading
    /// end of a one-way pipe.
    pub fn writable(&self) -> bool {
        self.tx.is_some()
    }

    /// How long blocking calls spin before they sleep (default 20 µs; zero: sleep at once). A
    /// call's timeout ends its spin, and a spin longer than 20 ms checks the peers every 20 ms
    /// as a sleeping wait does, so even `Duration::MAX` (spin until ready) ends on a dead peer.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Sends a serde value.
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SendError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = ipc_core::codec::encode_into(value, &mut buf)
            .map_err(SendError::Encode)
            .and_then(|()| self.send_bytes(&buf));
        self.buf = buf;
        r
    }

    /// Receives a serde value (waits while a sender may still send).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.recv_into_vec(&mut buf, None);
        let r = r.and_then(|_| ipc_core::codec::decode(&buf).map_err(RecvError::Decode));
        self.buf = buf;
        r
    }

    /// Receives a serde value, waiting at most `timeout`. A message larger than the ring that
    /// was only partly received by then stays with this handle, which keeps the receive end
    /// for it: the next receive on this handle continues it (dropping the handle gives its rest
    /// up, skipped by the next receiver).
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.recv_into_vec(&mut buf, Some(Instant::now() + timeout));
        let r = r.and_then(|_| ipc_core::codec::decode(&buf).map_err(RecvError::Decode));
        self.buf = buf;
        r
    }

    /// Receives one message of raw bytes, waiting at most `timeout` (see
    /// [`recv_timeout`](Self::recv_timeout)).
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        let mut out = Vec::new();
        self.recv_into_vec(&mut out, Some(Instant::now() + timeout))?;
        Ok(out)
    }

    /// Sends one message of raw bytes, any size up to [`MAX_MESSAGE`] (larger than the ring
    /// streams through it). Waits for the send end (held by another sender for one message at
    /// most) and for space while a receiver lives.
    pub fn send_bytes(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_bytes_until(data, None)
    }

    /// Sends one message of raw bytes, waiting at most `timeout` for the send end and for room
    /// for its first chunk: `Timeout` means nothing was sent. Once part of a message larger
    /// than the ring is out, the rest follows (waiting while a receiver lives), so a partly
    /// sent message is never left behind.
    pub fn send_bytes_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.send_bytes_until(data, Some(Instant::now() + timeout))
    }

    /// Sends a serde value, waiting at most `timeout` (see
    /// [`send_bytes_timeout`](Self::send_bytes_timeout)).
    pub fn send_timeout<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let deadline = Some(Instant::now() + timeout);
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = ipc_core::codec::encode_into(value, &mut buf)
            .map_err(SendError::Encode)
            .and_then(|()| self.send_bytes_until(&buf, deadline));
        self.buf = buf;
        r
    }

    fn send_bytes_until(
        &mut self,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        if data.len() > MAX_MESSAGE {
            return Err(SendError::TooLarge { len: data.len() });
        }
        let spin = self.spin;
        let tx = self.tx.as_mut().ok_or(SendError::NotWritable)?;
        let dir = tx.dir;
        let me = tx
            .member
            .identity(&dir.table())
            .map_err(|_| SendError::NotAttached)?;
        let end = &dir.state().send;
        let orphaned = claim_end(end, me, spin, deadline).map_err(|e| match e {
            ClaimWait::Timeout => SendError::Timeout,
            ClaimWait::Corrupted => SendError::Corrupted,
        })?;
        let r = if orphaned {
            tx.repair_tail()
                .and_then(|()| tx.write_message(data, spin, deadline))
        } else if data.len() <= BURST_PAYLOAD {
            match tx.write_small(data) {
                Ok(false) => tx.write_message(data, spin, deadline),
                r => r.map(drop),
            }
        } else {
            tx.write_message(data, spin, deadline)
        };
        release_end(end, me);
        r
    }

    /// Receives one message of raw bytes into a new vector.
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut out = Vec::new();
        self.recv_into_vec(&mut out, None)?;
        Ok(out)
    }

    /// Receives one message into the caller's buffer without allocating; returns its length.
    /// A message larger than the buffer gives `BufferTooSmall` and stays unread.
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.receive(&mut Sink::Slice(buf), None)
    }

    fn recv_into_vec(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<usize, RecvError> {
        out.clear();
        self.receive(&mut Sink::Vec(out), deadline)
    }

    /// Claims the receive end, reads one message, frees the end.
    fn receive(
        &mut self,
        sink: &mut Sink<'_>,
        deadline: Option<Instant>,
    ) -> Result<usize, RecvError> {
        let spin = self.spin;
        let rx = self.rx.as_mut().ok_or(RecvError::NotReadable)?;
        let dir = rx.dir;
        let me = rx
            .member
            .identity(&dir.table())
            .map_err(|_| RecvError::NotAttached)?;
        let end = &dir.state().recv;
        let mut current = None;
        match rx.take_partial(me) {
            Some((total, bytes)) => {
                // The rest of the message a receive of this handle began (and we hold the end).
                if let Sink::Slice(buf) = sink {
                    if total > buf.len() {
                        rx.partial = Some((total, bytes));
                        return Err(RecvError::BufferTooSmall { needed: total });
                    }
                }
                sink.restart();
                sink.room(0, bytes.len()).copy_from_slice(&bytes);
                current = Some((total, bytes.len()));
            }
            None => {
                // An orphaned receive claim needs no repair (see the module docs).
                claim_end(end, me, spin, deadline).map_err(|e| match e {
                    ClaimWait::Timeout => RecvError::Timeout,
                    ClaimWait::Corrupted => RecvError::Corrupted,
                })?;
            }
        }
        let r = rx.read_message(sink, &mut current, spin, deadline);
        match (&r, current) {
            // Timed out mid-message: this handle keeps the end and what it read, for its next
            // receive.
            (Err(RecvError::Timeout), Some((total, got))) => {
                rx.partial = Some((total, sink.filled(got).to_vec()));
            }
            _ => release_end(end, me),
        }
        r
    }

    /// Whether a message is ready to receive now.
    pub fn poll(&mut self) -> Result<bool, RecvError> {
        let rx = self.rx.as_mut().ok_or(RecvError::NotReadable)?;
        let dir = rx.dir;
        let me = rx
            .member
            .identity(&dir.table())
            .map_err(|_| RecvError::NotAttached)?;
        let st = dir.state();
        if try_take(&st.recv, me).is_none() {
            // Another receiver is at it: say what is published.
            // ORDERING: Acquire, pairs with the Release head stores of receivers.
            let head = st.head.load(Ordering::Acquire);
            if head > MAX_POSITION || head % CHUNK_ALIGN != 0 {
                return Err(RecvError::Corrupted);
            }
            return Ok(rx.published(head));
        }
        let r = rx
            .load_head()
            .and_then(|mut head| rx.skip_leftovers(&mut head));
        release_end(&st.recv, me);
        r
    }

    /// Waits up to `timeout` for a message; `Ok(false)` if none came. `Disconnected` once every
    /// sender has gone and nothing is left.
    pub fn poll_timeout(&mut self, timeout: Duration) -> Result<bool, RecvError> {
        let deadline = Instant::now() + timeout;
        let spin = self.spin;
        let dir = self.rx.as_ref().ok_or(RecvError::NotReadable)?.dir;
        let st = dir.state();
        let gone = std::cell::Cell::new(false);
        let r = signal::block_on(
            &st.items,
            Some(deadline),
            spin,
            ipc_core::raw::sync::quick_look_pause,
            || match self.poll() {
                Ok(true) => Attempt::Ready(Ok(true)),
                Ok(false) if gone.get() => Attempt::Ready(Err(RecvError::Disconnected)),
                Ok(false) => Attempt::Pending,
                Err(e) => Attempt::Ready(Err(e)),
            },
            || {
                let table = dir.table();
                gone.set(table.ever(PRODUCER) && !table.any_alive(PRODUCER, 0));
                Ok(())
            },
        );
        match r {
            Ok(ready) => Ok(ready),
            Err(Blocked::Failed(e)) => Err(e),
            Err(Blocked::Timeout) => Ok(false),
        }
    }

    /// Closes this end (as dropping it does).
    pub fn close(self) {}

    pub(crate) fn recv_gone(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| {
            let table = rx.dir.table();
            table.ever(PRODUCER) && !table.any_alive(PRODUCER, 0)
        })
    }

    pub(crate) fn recv_signal(&self) -> Option<&Signal> {
        self.rx.as_ref().map(|rx| &*rx.dir.state().items)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(tx) = &self.tx {
            tx.member.release(&tx.dir.table());
            // Wake receivers, so that they notice a sender is gone.
            tx.dir.state().items.notify();
        }
        if let Some(rx) = &mut self.rx {
            if let Some(me) = rx
                .partial
                .take()
                .and_then(|_| rx.member.identity(&rx.dir.table()).ok())
            {
                // The rest of a message this handle began is given up (skipped by the next
                // receiver, as a dead receiver's).
                release_end(&rx.dir.state().recv, me);
            }
            rx.member.release(&rx.dir.table());
            rx.dir.state().space.notify();
        }
    }
}

/// A connection serialises as its handle (to pass it to a child process); deserialising
/// attaches another handle to the same end (ends may be shared).
impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = ConnectionHandle::deserialize(d)?;
        Self::open(&handle).map_err(ipc_core::codec::de_error)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn small_pipe() -> (Connection, Connection) {
        pipe_with_capacity(&Placement::Anonymous, 256, true).unwrap()
    }

    /// The absolute position where the next chunk of `conn`'s sending direction goes.
    fn tail_of(conn: &Connection) -> u64 {
        conn.tx.as_ref().unwrap().load_tail().unwrap()
    }

    /// A sender killed between its tag store and its tail store left a chunk published past
    /// the tail, and whoever cleared its claim marked it orphaned: the next sender repairs the
    /// tail first, so the chunk is delivered and not overwritten.
    #[test]
    fn a_chunk_a_dead_sender_published_past_the_tail_is_delivered_not_overwritten() {
        dead_senders_chunk_is_delivered(false);
    }

    /// As above, with the next send awaited: it takes the orphaned end at once and repairs the
    /// tail as a blocking send does.
    #[test]
    fn an_awaited_send_after_a_dead_sender_delivers_its_chunk_too() {
        dead_senders_chunk_is_delivered(true);
    }

    fn dead_senders_chunk_is_delivered(awaited: bool) {
        let (mut a, mut b) = small_pipe();
        a.send_bytes(b"one").unwrap();
        let tx = a.tx.as_ref().unwrap();
        let tail = tail_of(&a);
        // SAFETY: nobody else sends on this pipe, and the ring has room after "one".
        unsafe { tx.publish_chunk(tail, b"two", Some(3)) };
        // ORDERING: Relaxed, this thread reads it back (what `claim::orphan_dead` leaves).
        tx.dir
            .state()
            .send
            .word
            .store(claim::ORPHANED, Ordering::Relaxed);
        assert_eq!(
            tail_of(&a),
            tail,
            "the dead sender's chunk is past the tail"
        );
        if awaited {
            futures::executor::block_on(a.send_bytes_async(b"three")).unwrap();
        } else {
            a.send_bytes(b"three").unwrap();
        }
        for want in [&b"one"[..], b"two", b"three"] {
            assert_eq!(b.recv_bytes_timeout(Duration::from_secs(10)).unwrap(), want);
        }
        assert!(!b.poll().unwrap());
    }

    /// Payload words of one lap hold exactly the tags that chunks of the next lap will carry
    /// at the same offsets; a receiver that has caught up must still find nothing published.
    #[test]
    fn no_word_an_earlier_lap_left_passes_for_a_tag() {
        let (mut a, mut b) = small_pipe();
        let cap = a.tx.as_ref().unwrap().dir.capacity;
        for i in 0..200usize {
            let tail = tail_of(&a);
            let words = 1 + i % 7;
            let payload: Vec<u8> = (0..words as u64)
                .flat_map(|j| {
                    let pos = tail + CHUNK_HEADER as u64 + 8 * j;
                    tag_of(pos + cap).to_le_bytes()
                })
                .collect();
            a.send_bytes(&payload).unwrap();
            assert_eq!(b.recv_bytes().unwrap(), payload, "message {i}");
            assert!(
                !b.poll().unwrap(),
                "a stale word read as a chunk after message {i}"
            );
        }
    }

    /// A chunk's header and payload wrap around the end of the ring at every offset.
    #[test]
    fn chunks_wrap_at_every_offset() {
        let (mut a, mut b) = small_pipe();
        for i in 0..400usize {
            let msg: Vec<u8> = (0..i % 61).map(|k| (k + i) as u8).collect();
            a.send_bytes(&msg).unwrap();
            assert_eq!(b.recv_bytes().unwrap(), msg, "message {i}");
        }
    }
}
