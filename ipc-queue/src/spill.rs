//! How a [`Serde`](crate::Serde) queue carries a message: a *record* in the slot, and, for a
//! message larger than a slot, a named *spill* segment of its own whose name the record holds.
//!
//! ## The record (in the slot's payload)
//!
//! | bytes  | field                                                      |
//! |--------|------------------------------------------------------------|
//! | 0..4   | length of what follows (u32, native endian), at most the payload minus 8 |
//! | 4..8   | kind: [`KIND_INLINE`] (the encoded message) or [`KIND_SPILLED`] (a segment name) |
//! | 8..    | the encoded message, or the spill segment's name            |
//!
//! ## The spill segment
//!
//! | bytes  | field                                     |
//! |--------|-------------------------------------------|
//! | 0..8   | [`SPILL_MAGIC`]                            |
//! | 8..24  | the id of the queue it was put on (u128, native endian) |
//! | 24..32 | the message's length (u64, native endian)  |
//! | 32..   | the encoded message                        |
//!
//! Whoever unlinks a named segment checks the magic and its own queue's id first, so a record
//! that names some other segment (another object, a plain segment, another queue's spill) is
//! `Corrupted` and nothing is unlinked. Object segments refuse plain reads altogether.
//!
//! ## Who removes a spill
//!
//! | moment                                              | the name is removed by                          |
//! |-----------------------------------------------------|-------------------------------------------------|
//! | created, not yet committed                          | its producer's cleanup tracker, if the producer dies (registered until the commit) |
//! | committed, waiting in the queue                     | the consumer that gets it; or whoever drains the queue: its last handle, an immediate shutdown, or the reaper of a process whose handle dropped while others lived (`reaper.rs`) |
//! | claimed by a consumer (Reading)                     | that consumer, before it frees the slot; or, if it dies first, whoever recovers the slot |
//!
//! A consumer opens the segment and unlinks its name before it frees the slot, so no moment
//! leaves a name that no slot records and no tracker covers, except the one between a producer's
//! commit and its tracker's unregistration: a producer killed right there has its tracker remove
//! the name of the message it was putting (whose `put` had not returned).

use ipc_core::{NAME_PREFIX, SharedMemory};

use crate::error::TryGetError;
use crate::raw_queue::SlotPayload;

/// Bytes of a record's header.
pub(crate) const RECORD_HEADER: usize = 8;
/// The record holds the encoded message.
pub(crate) const KIND_INLINE: u32 = 0;
/// The record holds the name of the message's spill segment.
pub(crate) const KIND_SPILLED: u32 = 1;
/// Bytes of a spill segment's header.
pub(crate) const SPILL_HEADER: usize = 32;
/// The first bytes of every spill segment.
pub(crate) const SPILL_MAGIC: [u8; 8] = *b"IPCQSPL1";

/// The header of a spill of `len` encoded bytes for queue `queue`.
pub(crate) fn spill_header(queue: u128, len: usize) -> [u8; SPILL_HEADER] {
    let mut h = [0u8; SPILL_HEADER];
    h[..8].copy_from_slice(&SPILL_MAGIC);
    h[8..24].copy_from_slice(&queue.to_ne_bytes());
    h[24..].copy_from_slice(&(len as u64).to_ne_bytes());
    h
}

/// A new spill segment holding `encoded` for queue `queue`. Its name stays registered with this
/// process's cleanup tracker (so that it goes if this process dies before the commit) until
/// [`committed`] is called.
pub(crate) fn create(queue: u128, encoded: &[u8]) -> Result<SharedMemory, ipc_core::CreateError> {
    let len = encoded.len();
    let too_large = ipc_core::CreateError::InvalidSize { size: len as u64 };
    let size = len.checked_add(SPILL_HEADER).ok_or(too_large)?;
    let seg = SharedMemory::create_named(size)?;
    let written = seg
        .write(0, &spill_header(queue, len))
        .and_then(|()| seg.write(SPILL_HEADER, encoded));
    // Dropping `seg` (its owner) unlinks the name.
    written.map_err(|_| ipc_core::CreateError::InvalidSize { size: len as u64 })?;
    Ok(seg)
}

/// The spill's record is committed: from now on a consumer, or whoever drains the queue, removes
/// the name, not this process's tracker.
pub(crate) fn committed(mut seg: SharedMemory) {
    seg.set_owner(false);
}

/// Opens the spill segment `name` if it is one of queue `queue`'s, without unlinking it;
/// returns it with the message's length.
pub(crate) fn open(queue: u128, name: &[u8]) -> Result<(SharedMemory, usize), TryGetError> {
    let name = std::str::from_utf8(name).map_err(|_| TryGetError::Corrupted)?;
    if !name.starts_with(NAME_PREFIX) {
        return Err(TryGetError::Corrupted);
    }
    let seg = SharedMemory::builder(name)
        .open()
        .map_err(TryGetError::Spill)?;
    let mut h = [0u8; SPILL_HEADER];
    // An object segment refuses the read: not a spill.
    seg.read(0, &mut h).map_err(|_| TryGetError::Corrupted)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[8..24]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[24..]);
    if h[..8] != SPILL_MAGIC || u128::from_ne_bytes(id) != queue {
        return Err(TryGetError::Corrupted);
    }
    let len = usize::try_from(u64::from_ne_bytes(len)).map_err(|_| TryGetError::Corrupted)?;
    if len > seg.len().saturating_sub(SPILL_HEADER) {
        return Err(TryGetError::Corrupted);
    }
    Ok((seg, len))
}

/// Unlinks the spill segment `name` if it is one of queue `queue`'s.
pub(crate) fn remove(queue: u128, name: &[u8]) {
    if let Ok((mut seg, _)) = open(queue, name) {
        let _ = seg.unlink();
    }
}

/// Reads the header of the record in `slot`: `(len, kind)`, bounded by the slot; `None` if it is
/// impossible.
///
/// # Safety
/// `slot` must describe `slot.len >= RECORD_HEADER` bytes of a live mapping. (Any bytes are
/// fine, and a racing writer can only tear the copy.)
pub(crate) unsafe fn header(slot: &SlotPayload) -> Option<(usize, u32)> {
    let mut h = [0u8; RECORD_HEADER];
    // SAFETY: per the contract, `slot.ptr` is valid for `slot.len >= 8` bytes; a word-wise
    // atomic copy.
    unsafe { ipc_core::raw::pod::copy_from_shared(slot.ptr, &mut h) };
    let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let kind = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
    (len <= slot.len - RECORD_HEADER && kind <= KIND_SPILLED).then_some((len, kind))
}

/// Copies the `out.len()` bytes after the record's header in `slot`.
///
/// # Safety
/// As for [`header`], and `out.len() <= slot.len - RECORD_HEADER`.
pub(crate) unsafe fn body(slot: &SlotPayload, out: &mut [u8]) {
    debug_assert!(out.len() <= slot.len - RECORD_HEADER);
    // SAFETY: per the contract, the bytes after the header are inside the slot.
    unsafe { ipc_core::raw::pod::copy_from_shared(slot.ptr.add(RECORD_HEADER), out) };
}

/// Removes the spill segment the record in `slot` names, if it names one of queue `queue`'s.
///
/// # Safety
/// As for [`header`].
pub(crate) unsafe fn remove_named_in(slot: &SlotPayload, queue: u128) {
    // SAFETY: forwarded contract.
    let Some((len, KIND_SPILLED)) = (unsafe { header(slot) }) else {
        return;
    };
    let mut name = vec![0u8; len];
    // SAFETY: `len <= slot.len - 8` (checked by `header`).
    unsafe { body(slot, &mut name) };
    remove(queue, &name);
}
