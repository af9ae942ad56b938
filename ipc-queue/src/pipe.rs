//! `pipe()`: Python's `multiprocessing.Pipe` on two SPSC byte rings in one segment, one per
//! direction. A message is a record: a 4-byte little-endian length, then the bytes, wrapping
//! around the ring as needed. A message larger than the ring streams through it: the sender
//! writes as the receiver frees space, so any size works.
//!
//! Record lengths come from shared memory: a length above [`MAX_MESSAGE`] is `Corrupted`, and a
//! receiver never allocates more than the bytes that actually arrived plus one ring's worth.

use std::fmt;
use std::time::{Duration, Instant};

use ipc_core::codec::{DecodeError, EncodeError};
use ipc_core::{ObjectHandle, ObjectSegment, Placement};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{CreateError, OpenError};
use crate::layout;
use crate::membership::Membership;
use crate::participants::{CONSUMER, PRODUCER};
use crate::ring::{RingParts, STATE_BYTES, SpscState, peer_gone};
use crate::signal::{self, Attempt, Blocked};
use crate::spsc_index::{ConsumerIndex, ProducerIndex};

/// The largest message a connection accepts (1 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;
/// The default bytes of each direction's ring.
pub const DEFAULT_PIPE_CAPACITY: usize = 1 << 20;
const KIND: &str = "Pipe";
const HEADER: usize = 4;

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
    /// The value could not be encoded.
    Encode(EncodeError),
}

/// Receiving on a [`Connection`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing left to receive and the other end has gone (Python raises `EOFError`).
    Disconnected,
    /// The ring's indices or a record header are impossible.
    Corrupted,
    /// The message does not fit the caller's buffer (`recv_bytes_into`); it stays unread.
    BufferTooSmall {
        /// The size of the message.
        needed: usize,
    },
    /// This end was opened for sending only.
    NotReadable,
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
            Self::Encode(e) => write!(f, "{e}"),
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

struct PipeSegment {
    seg: ObjectSegment,
    rings: [RingParts<u8>; 2],
}

// SAFETY: the ring parts point into `seg`'s mapping, which `PipeSegment` owns; all shared
// accesses go through atomics or through bytes owned per the SPSC protocol.
unsafe impl Send for PipeSegment {}
// SAFETY: as above; `PipeSegment` has no interior state of its own besides the mapping.
unsafe impl Sync for PipeSegment {}

fn ring_span(capacity: usize) -> Option<usize> {
    Some(layout::padded(STATE_BYTES.checked_add(capacity)?))
}

impl PipeSegment {
    fn create(placement: &Placement, capacity: usize) -> Result<Self, CreateError> {
        let invalid = CreateError::InvalidCapacity { capacity };
        if capacity == 0 {
            return Err(invalid);
        }
        let capacity = layout::padded(capacity);
        let span = ring_span(capacity).ok_or(CreateError::InvalidCapacity { capacity })?;
        let bytes = span.checked_mul(2).ok_or(invalid)?;
        let seg = layout::create(placement, KIND, bytes, |_| {})?;
        Self::from_segment(seg).map_err(|_| CreateError::InvalidCapacity { capacity })
    }

    fn from_segment(seg: ObjectSegment) -> Result<Self, OpenError> {
        let bytes = seg.capacity();
        let span = bytes / 2;
        if bytes % 2 != 0 || span % layout::ALIGN != 0 || span <= STATE_BYTES {
            return Err(OpenError::Corrupted { what: "pipe size" });
        }
        let capacity = span - STATE_BYTES;
        let base = seg.payload_ptr();
        // SAFETY: the payload is 128-aligned and `2 * span` bytes; each ring occupies one span
        // (state plus `capacity` bytes) and lives as long as `seg`, owned by `Self`.
        let rings = unsafe {
            [
                RingParts::at(base, capacity as u64),
                RingParts::at(base.add(span), capacity as u64),
            ]
        };
        Ok(Self { seg, rings })
    }
}

/// The sending side of one connection: producer of its ring.
struct Tx {
    ring: RingParts<u8>,
    index: ProducerIndex,
    member: Membership,
}

/// The receiving side: consumer of the other ring.
struct Rx {
    ring: RingParts<u8>,
    index: ConsumerIndex,
    member: Membership,
    /// Bytes of a message given up by a timed-out receive, skipped before the next one.
    discard: usize,
}

/// One end of a pipe: `send`/`recv` serde values, or raw bytes.
///
/// Each direction is a single-producer single-consumer ring: one process (one thread) at a
/// time may use a given end. Pass an end to a child by its [`handle`](Connection::handle) (or
/// by serialising it) and let the parent drop its copy once the child has attached.
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
pub struct Connection {
    // Dropped last: the rings point into it.
    tx: Option<Tx>,
    rx: Option<Rx>,
    end: u8,
    spin: Duration,
    buf: Vec<u8>,
    seg: std::sync::Arc<PipeSegment>,
}

// SAFETY: every pointer in a connection points into its own segment mapping, which moves with
// it; shared bytes are only touched through atomics or per the SPSC protocol, and the
// connection's private indices move with it. (It is not `Sync`: one thread uses an end at a
// time.)
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
    pipe_with_capacity(&Placement::Anonymous, DEFAULT_PIPE_CAPACITY, true)
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
pub fn pipe_simplex() -> Result<(Connection, Connection), CreateError> {
    pipe_with_capacity(&Placement::Anonymous, DEFAULT_PIPE_CAPACITY, false)
}

/// A pipe placed as asked, with `capacity` bytes per direction (rounded up to 128).
pub fn pipe_with_capacity(
    placement: &Placement,
    capacity: usize,
    duplex: bool,
) -> Result<(Connection, Connection), CreateError> {
    // Both ends share one mapping (and descriptor), so either end's handle stays valid while
    // the other end lives.
    let a_seg = std::sync::Arc::new(PipeSegment::create(placement, capacity)?);
    let b_seg = a_seg.clone();
    let fail = |_: OpenError| CreateError::InvalidCapacity { capacity };
    // End 0 sends on ring 0 and receives on ring 1; end 1 the reverse. Simplex: end 0 reads
    // (ring 1), end 1 writes (ring 1).
    let a = Connection::attach(a_seg, 0, duplex, true).map_err(fail)?;
    let b = Connection::attach(b_seg, 1, true, duplex).map_err(fail)?;
    Ok((a, b))
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
            let ring = seg.rings[e];
            let index = ProducerIndex::new(&ring.state().idx, ring.capacity).map_err(|_| {
                OpenError::Corrupted {
                    what: "pipe indices",
                }
            })?;
            let member = Membership::attach(&ring.state().participants.place().table(), PRODUCER)?;
            Some(Tx {
                ring,
                index,
                member,
            })
        } else {
            None
        };
        let rx = if recv {
            let ring = seg.rings[1 - e];
            let index = ConsumerIndex::new(&ring.state().idx, ring.capacity).map_err(|_| {
                OpenError::Corrupted {
                    what: "pipe indices",
                }
            })?;
            let member = Membership::attach(&ring.state().participants.place().table(), CONSUMER)?;
            Some(Rx {
                ring,
                index,
                member,
                discard: 0,
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

    /// Attaches to the end of a pipe a handle names (typically in a child process).
    pub fn open(handle: &ConnectionHandle) -> Result<Self, OpenError> {
        let seg = ObjectSegment::open(&handle.object, &layout::fingerprint(KIND))?;
        Self::attach(
            std::sync::Arc::new(PipeSegment::from_segment(seg)?),
            handle.end,
            handle.send,
            handle.recv,
        )
    }

    /// How long blocking calls spin before they sleep (default 20 µs; zero: sleep at once).
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

    /// Receives a serde value (waits while the other end lives).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.recv_into_vec(&mut buf, None);
        let r = r.and_then(|()| ipc_core::codec::decode(&buf).map_err(RecvError::Decode));
        self.buf = buf;
        r
    }

    /// Receives a serde value, waiting at most `timeout`. A message that was only partly
    /// received by then is given up (skipped by the next receive).
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.recv_into_vec(&mut buf, Some(Instant::now() + timeout));
        let r = r.and_then(|()| ipc_core::codec::decode(&buf).map_err(RecvError::Decode));
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
    /// streams through it). Waits for space while the other end lives.
    pub fn send_bytes(&mut self, data: &[u8]) -> Result<(), SendError> {
        if data.len() > MAX_MESSAGE {
            return Err(SendError::TooLarge { len: data.len() });
        }
        let spin = self.spin;
        let tx = self.tx.as_mut().ok_or(SendError::NotWritable)?;
        let header = (data.len() as u32).to_le_bytes();
        let state = tx.ring.state();
        let _ = tx.member.id(&state.participants.place().table());
        // The common case: the whole record fits now, published by one index store.
        let want = (HEADER + data.len()) as u64;
        if tx
            .index
            .free(&state.idx, want)
            .map_err(|_| SendError::Corrupted)?
            >= want
        {
            // SAFETY: `want` bytes from the tail are free per the protocol.
            unsafe {
                tx.ring.write(tx.index.tail, &header);
                tx.ring.write(tx.index.tail + HEADER as u64, data);
            }
            tx.index.commit(&state.idx, want);
            state.items.notify();
            return Ok(());
        }
        write_all(tx, &header, spin)?;
        write_all(tx, data, spin)
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
        let spin = self.spin;
        let rx = self.rx.as_mut().ok_or(RecvError::NotReadable)?;
        let len = peek_header(rx, spin, None)?;
        if len > buf.len() {
            return Err(RecvError::BufferTooSmall { needed: len });
        }
        skip_header(rx);
        read_exact(rx, &mut buf[..len], spin, None)?;
        Ok(len)
    }

    fn recv_into_vec(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<(), RecvError> {
        let spin = self.spin;
        let rx = self.rx.as_mut().ok_or(RecvError::NotReadable)?;
        let len = peek_header(rx, spin, deadline)?;
        skip_header(rx);
        out.clear();
        // Grow with what arrives: a hostile length cannot make us allocate much ahead.
        let step = (rx.ring.capacity as usize).max(4096);
        while out.len() < len {
            let start = out.len();
            let n = (len - start).min(step);
            out.resize(start + n, 0);
            if let Err(e) = read_exact(rx, &mut out[start..], spin, deadline) {
                rx.discard += len - out.len();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether a message is ready to receive now.
    pub fn poll(&mut self) -> Result<bool, RecvError> {
        let rx = self.rx.as_mut().ok_or(RecvError::NotReadable)?;
        let state = rx.ring.state();
        Ok(rx
            .index
            .available(&state.idx, 1)
            .map_err(|_| RecvError::Corrupted)?
            > 0)
    }

    /// Waits up to `timeout` for a message; `Ok(false)` if none came. `Disconnected` once the
    /// other end has gone and nothing is left.
    pub fn poll_timeout(&mut self, timeout: Duration) -> Result<bool, RecvError> {
        let spin = self.spin;
        let rx = self.rx.as_mut().ok_or(RecvError::NotReadable)?;
        match wait_readable(rx, 1, spin, Some(Instant::now() + timeout)) {
            Ok(()) => Ok(true),
            Err(RecvError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Closes this end (as dropping it does).
    pub fn close(self) {}

    pub(crate) fn recv_gone(&self) -> bool {
        self.rx
            .as_ref()
            .is_some_and(|rx| peer_gone(rx.ring.state(), PRODUCER))
    }

    pub(crate) fn recv_signal(&self) -> Option<&crate::signal::Signal> {
        self.rx.as_ref().map(|rx| &*rx.ring.state().items)
    }
}

fn write_all(tx: &mut Tx, mut data: &[u8], spin: Duration) -> Result<(), SendError> {
    let state: &SpscState = tx.ring.state();
    while !data.is_empty() {
        let free = tx
            .index
            .free(&state.idx, data.len() as u64)
            .map_err(|_| SendError::Corrupted)?;
        if free == 0 {
            let index = &mut tx.index;
            let r = signal::block_on(
                &state.space,
                None,
                spin,
                || match index.free(&state.idx, 1) {
                    Ok(0) => Attempt::Pending,
                    Ok(_) => Attempt::Ready(Ok(())),
                    Err(_) => Attempt::Ready(Err(SendError::Corrupted)),
                },
                || {
                    if peer_gone(state, CONSUMER) {
                        Err(SendError::Disconnected)
                    } else {
                        Ok(())
                    }
                },
            );
            match r {
                Ok(()) => continue,
                Err(Blocked::Failed(e)) => return Err(e),
                Err(Blocked::Timeout) => return Err(SendError::Disconnected),
            }
        }
        let n = (free as usize).min(data.len());
        // SAFETY: `n` bytes from the tail are free per the protocol.
        unsafe { tx.ring.write(tx.index.tail, &data[..n]) };
        tx.index.commit(&state.idx, n as u64);
        state.items.notify();
        data = &data[n..];
    }
    Ok(())
}

fn wait_readable(
    rx: &mut Rx,
    want: u64,
    spin: Duration,
    deadline: Option<Instant>,
) -> Result<(), RecvError> {
    let state: &SpscState = rx.ring.state();
    let _ = rx.member.id(&state.participants.place().table());
    let index = &mut rx.index;
    let gone = std::cell::Cell::new(false);
    let r = signal::block_on(
        &state.items,
        deadline,
        spin,
        || match index.available(&state.idx, want) {
            Ok(n) if n >= want => Attempt::Ready(Ok(())),
            Ok(_) if gone.get() => Attempt::Ready(Err(RecvError::Disconnected)),
            Ok(_) => Attempt::Pending,
            Err(_) => Attempt::Ready(Err(RecvError::Corrupted)),
        },
        || {
            gone.set(peer_gone(state, PRODUCER));
            Ok(())
        },
    );
    match r {
        Ok(()) => Ok(()),
        Err(Blocked::Failed(e)) => Err(e),
        Err(Blocked::Timeout) => Err(RecvError::Timeout),
    }
}

/// Waits for a record header and returns its length, without consuming it.
fn peek_header(rx: &mut Rx, spin: Duration, deadline: Option<Instant>) -> Result<usize, RecvError> {
    skip_discarded(rx, spin, deadline)?;
    wait_readable(rx, HEADER as u64, spin, deadline)?;
    let mut header = [0u8; HEADER];
    // SAFETY: HEADER bytes from the head are readable per the protocol (waited for above).
    unsafe { rx.ring.read(rx.index.head, &mut header) };
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(RecvError::Corrupted);
    }
    Ok(len)
}

fn skip_header(rx: &mut Rx) {
    let state = rx.ring.state();
    rx.index.release(&state.idx, HEADER as u64);
    state.space.notify();
}

fn read_exact(
    rx: &mut Rx,
    mut out: &mut [u8],
    spin: Duration,
    deadline: Option<Instant>,
) -> Result<(), RecvError> {
    while !out.is_empty() {
        let state = rx.ring.state();
        let ready = rx
            .index
            .available(&state.idx, out.len() as u64)
            .map_err(|_| RecvError::Corrupted)?;
        if ready == 0 {
            if let Err(e) = wait_readable(rx, 1, spin, deadline) {
                // The rest of this message is skipped by the next receive.
                rx.discard = out.len();
                return Err(e);
            }
            continue;
        }
        let n = (ready as usize).min(out.len());
        let (now, rest) = out.split_at_mut(n);
        // SAFETY: `n` bytes from the head are readable per the protocol.
        unsafe { rx.ring.read(rx.index.head, now) };
        rx.index.release(&state.idx, n as u64);
        state.space.notify();
        out = rest;
    }
    Ok(())
}

/// Skips what is left of a message a timed-out receive gave up.
fn skip_discarded(rx: &mut Rx, spin: Duration, deadline: Option<Instant>) -> Result<(), RecvError> {
    while rx.discard > 0 {
        wait_readable(rx, 1, spin, deadline)?;
        let state = rx.ring.state();
        let ready = rx
            .index
            .available(&state.idx, rx.discard as u64)
            .map_err(|_| RecvError::Corrupted)?;
        let n = (ready as usize).min(rx.discard);
        rx.index.release(&state.idx, n as u64);
        state.space.notify();
        rx.discard -= n;
    }
    Ok(())
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(tx) = &self.tx {
            let state = tx.ring.state();
            tx.member.release(&state.participants.place().table());
            state.items.notify();
        }
        if let Some(rx) = &self.rx {
            let state = rx.ring.state();
            rx.member.release(&state.participants.place().table());
            state.space.notify();
        }
    }
}

/// A connection serialises as its handle (to pass it to a child process); deserialising
/// attaches to the same end.
impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = ConnectionHandle::deserialize(d)?;
        Self::open(&handle).map_err(serde::de::Error::custom)
    }
}
