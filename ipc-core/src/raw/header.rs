//! The header at the start of every object segment, and its validation.
//!
//! ## Layout (256 bytes, `#[repr(C)]`, native endianness)
//!
//! | offset | field            | meaning                                              |
//! |--------|------------------|------------------------------------------------------|
//! | 0      | `magic`          | `b"IPCRSSEG"`: one of ours                           |
//! | 8      | `layout_version` | [`LAYOUT_VERSION`]                                   |
//! | 12     | `header_size`    | 256                                                  |
//! | 16     | `total_size`     | bytes the object needs, header included              |
//! | 24     | `type_size`      | `size_of` the element type                           |
//! | 32     | `type_align`     | `align_of` the element type                          |
//! | 40     | `type_hash`      | FNV-1a of the object's descriptor, e.g. `RawValue<u64>` |
//! | 48     | `capacity`       | number of elements in the payload                    |
//! | 56     | `init_state`     | 0 empty, 1 initialising, 2 ready (atomic)            |
//! | 60     | `payload_offset` | where the payload starts, a multiple of its alignment |
//! | 64     | `creator_pid`    | pid of the creator                                   |
//! | 72     | `creator_start`  | start time of the creator (see `ProcessIdentity`)    |
//! | 80     | `checksum`       | FNV-1a of bytes 0..56 and 60..80                     |
//! | 88     | `name_len`       | length of `name`                                     |
//! | 96     | `name`           | the descriptor, truncated to 96 bytes, for messages  |
//! | 192    | reserved         | zero                                                 |
//!
//! ## `init_state` transitions
//!
//! | from | to | by      | when                                                          |
//! |------|----|---------|---------------------------------------------------------------|
//! | 0    | 1  | creator | first store, before any other field                           |
//! | 1    | 2  | creator | Release store after every header field and the payload are written |
//!
//! An opener that finds 0 or 1 waits up to its timeout, then reports `InitTimeout`. Any other
//! value is `Corrupted`.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::OpenError;
use crate::liveness::ProcessIdentity;
use crate::primitive::{AtomicU32, Ordering};

/// The magic number at offset 0.
pub const MAGIC: [u8; 8] = *b"IPCRSSEG";
/// The version of the header layout (and of every payload layout built on it). Bump it with any
/// layout change.
pub const LAYOUT_VERSION: u32 = 2;
/// The header's size in bytes.
pub const HEADER_SIZE: usize = 256;

const INIT_EMPTY: u32 = 0;
const INIT_BUSY: u32 = 1;
const INIT_READY: u32 = 2;

const OFF_VERSION: usize = 8;
const OFF_HEADER_SIZE: usize = 12;
const OFF_TOTAL: usize = 16;
const OFF_TSIZE: usize = 24;
const OFF_TALIGN: usize = 32;
const OFF_THASH: usize = 40;
const OFF_CAPACITY: usize = 48;
const OFF_INIT: usize = 56;
const OFF_PAYLOAD: usize = 60;
const OFF_PID: usize = 64;
const OFF_START: usize = 72;
const OFF_CHECKSUM: usize = 80;
const OFF_NAME_LEN: usize = 88;
const OFF_NAME: usize = 96;
const NAME_MAX: usize = 96;

const _: () = assert!(OFF_NAME + NAME_MAX <= HEADER_SIZE);
const _: () = assert!(OFF_INIT % 4 == 0);

/// What an object segment holds: the element type's size and alignment and a stable hash of
/// the object's descriptor (kind and type name, e.g. `RawValue<u64>`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeFingerprint {
    /// `size_of` the element type.
    pub size: u64,
    /// `align_of` the element type.
    pub align: u64,
    /// FNV-1a hash of the descriptor.
    pub hash: u64,
    /// The descriptor itself (truncated to 96 bytes), for messages.
    pub name: String,
}

impl fmt::Debug for TypeFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TypeFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (size {}, align {}, hash {:016x})",
            self.name, self.size, self.align, self.hash
        )
    }
}

/// FNV-1a, 64 bits: stable across builds, platforms and processes.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl TypeFingerprint {
    /// The fingerprint of an object of kind `kind` (e.g. `"RawValue"`) over elements of type `T`.
    ///
    /// ```
    /// use ipc_core::raw::TypeFingerprint;
    /// let a = TypeFingerprint::of::<u64>("RawValue");
    /// let b = TypeFingerprint::of::<u32>("RawValue");
    /// assert_ne!(a, b);
    /// assert_eq!(a.name, "RawValue<u64>");
    /// ```
    pub fn of<T>(kind: &str) -> Self {
        let mut name = format!("{kind}<{}>", std::any::type_name::<T>());
        let hash = fnv1a(name.as_bytes());
        truncate_utf8(&mut name, NAME_MAX);
        Self {
            size: std::mem::size_of::<T>() as u64,
            align: std::mem::align_of::<T>() as u64,
            hash,
            name,
        }
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The validated facts of a header, read once from shared memory into private memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Bytes the object occupies, header included (never more than the mapping).
    pub total_size: usize,
    /// Where the payload starts (aligned for the element type).
    pub payload_offset: usize,
    /// Number of elements in the payload; `payload_offset + capacity * size <= total_size`.
    pub capacity: usize,
    /// The creator of the object.
    pub creator: ProcessIdentity,
}

/// The payload offset for elements of alignment `align`.
pub fn payload_offset(align: usize) -> usize {
    HEADER_SIZE.next_multiple_of(align.max(1))
}

/// Bytes needed for a header plus `capacity` elements described by `fp`.
pub fn required_size(fp: &TypeFingerprint, capacity: usize) -> Option<usize> {
    let align = usize::try_from(fp.align).ok()?;
    if !align.is_power_of_two() || align > 4096 {
        return None;
    }
    let elems = usize::try_from(fp.size).ok()?.checked_mul(capacity)?;
    let total = payload_offset(align).checked_add(elems)?;
    (total <= isize::MAX as usize).then_some(total)
}

/// # Safety
/// `base` must be the page-aligned start of a mapping of at least HEADER_SIZE bytes that stays
/// mapped for `'a`.
unsafe fn init_word<'a>(base: *mut u8) -> &'a AtomicU32 {
    // SAFETY: per the contract, offset 56 is inside the mapping and 4-aligned; AtomicU32 has the
    // layout of u32 and every bit pattern is valid.
    unsafe { &*base.add(OFF_INIT).cast::<AtomicU32>() }
}

fn put(buf: &mut [u8; HEADER_SIZE], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

fn checksum(buf: &[u8; HEADER_SIZE]) -> u64 {
    let mut bytes = [0u8; OFF_CHECKSUM - 4];
    bytes[..OFF_INIT].copy_from_slice(&buf[..OFF_INIT]);
    bytes[OFF_INIT..].copy_from_slice(&buf[OFF_PAYLOAD..OFF_CHECKSUM]);
    fnv1a(&bytes)
}

/// Writes a header at `base`, leaving `init_state` at "initialising". Call [`publish()`] once the
/// payload is initialised too.
///
/// # Safety
/// `base` must be the page-aligned start of a writable mapping of at least `total_size` bytes
/// that no other process reads as ready yet, and `total_size` must come from [`required_size`].
pub unsafe fn write(base: *mut u8, fp: &TypeFingerprint, capacity: usize, total_size: usize) {
    // SAFETY: the caller guarantees a live mapping of at least HEADER_SIZE bytes.
    let word = unsafe { init_word(base) };
    // ORDERING: Relaxed, the segment is not published yet; the Release in `publish` orders it.
    word.store(INIT_BUSY, Ordering::Relaxed);
    let me = crate::liveness::current_for_display();
    let mut buf = [0u8; HEADER_SIZE];
    put(&mut buf, 0, &MAGIC);
    put(&mut buf, OFF_VERSION, &LAYOUT_VERSION.to_ne_bytes());
    put(
        &mut buf,
        OFF_HEADER_SIZE,
        &(HEADER_SIZE as u32).to_ne_bytes(),
    );
    put(&mut buf, OFF_TOTAL, &(total_size as u64).to_ne_bytes());
    put(&mut buf, OFF_TSIZE, &fp.size.to_ne_bytes());
    put(&mut buf, OFF_TALIGN, &fp.align.to_ne_bytes());
    put(&mut buf, OFF_THASH, &fp.hash.to_ne_bytes());
    put(&mut buf, OFF_CAPACITY, &(capacity as u64).to_ne_bytes());
    let off = payload_offset(fp.align as usize) as u32;
    put(&mut buf, OFF_PAYLOAD, &off.to_ne_bytes());
    put(&mut buf, OFF_PID, &me.pid().to_ne_bytes());
    put(&mut buf, OFF_START, &me.start_time().to_ne_bytes());
    let name = fp.name.as_bytes();
    let n = name.len().min(NAME_MAX);
    put(&mut buf, OFF_NAME_LEN, &(n as u32).to_ne_bytes());
    put(&mut buf, OFF_NAME, &name[..n]);
    let sum = checksum(&buf);
    put(&mut buf, OFF_CHECKSUM, &sum.to_ne_bytes());
    // SAFETY: the caller guarantees HEADER_SIZE writable bytes at `base`. The init word (56..60)
    // is skipped so that the atomic is only ever written through atomics.
    // Shared copies: an opener of a named segment may already read these bytes.
    unsafe { crate::pod::copy_to_shared(&buf[..OFF_INIT], base) };
    // SAFETY: as above, for the bytes after the init word.
    unsafe { crate::pod::copy_to_shared(&buf[OFF_PAYLOAD..], base.add(OFF_PAYLOAD)) };
}

/// Marks a header written by [`write()`] as ready.
///
/// # Safety
/// `base` must be a mapping on which [`write()`] was called.
pub unsafe fn publish(base: *mut u8) {
    // SAFETY: the caller guarantees a mapping on which `write` ran, so HEADER_SIZE bytes.
    let word = unsafe { init_word(base) };
    // ORDERING: Release, pairs with the Acquire in `validate`: publishes the header and payload.
    word.store(INIT_READY, Ordering::Release);
}

/// The default time an opener waits for a creator still initialising.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(2);

fn get_u32(buf: &[u8; HEADER_SIZE], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_ne_bytes(b)
}

fn get_u64(buf: &[u8; HEADER_SIZE], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_ne_bytes(b)
}

/// Reads and validates the header of a mapping of `mapped_len` bytes at `base` against the
/// expected fingerprint. Every byte of the header may be hostile: the result is a clear error or
/// facts that are safe to use (payload in bounds, sizes consistent).
///
/// # Safety
/// `base` must be the page-aligned start of a live mapping of `mapped_len` bytes.
pub unsafe fn validate(
    base: *const u8,
    mapped_len: usize,
    expected: &TypeFingerprint,
    timeout: Duration,
) -> Result<HeaderInfo, OpenError> {
    if mapped_len < HEADER_SIZE {
        if mapped_len >= MAGIC.len() {
            let mut magic = [0u8; 8];
            // SAFETY: at least 8 bytes are mapped.
            unsafe { crate::pod::copy_from_shared(base, &mut magic) };
            if magic != MAGIC && magic != [0; 8] {
                return Err(OpenError::NotOurs);
            }
        }
        return Err(OpenError::Truncated {
            needed: HEADER_SIZE as u64,
            actual: mapped_len as u64,
        });
    }
    let deadline = Instant::now() + timeout;
    // SAFETY: at least HEADER_SIZE bytes are mapped (checked above) for the whole call.
    let word = unsafe { init_word(base.cast_mut()) };
    loop {
        // ORDERING: Acquire, pairs with the Release in `publish`: makes the header and payload
        // the creator wrote visible before we read them.
        let state = word.load(Ordering::Acquire);
        match state {
            INIT_READY => break,
            INIT_EMPTY | INIT_BUSY => {
                let mut magic = [0u8; 8];
                // SAFETY: at least HEADER_SIZE bytes are mapped.
                unsafe { crate::pod::copy_from_shared(base, &mut magic) };
                if magic != MAGIC && magic != [0; 8] {
                    return Err(OpenError::NotOurs);
                }
                if Instant::now() >= deadline {
                    return Err(OpenError::InitTimeout);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            _ => {
                let mut magic = [0u8; 8];
                // SAFETY: at least HEADER_SIZE bytes are mapped.
                unsafe { crate::pod::copy_from_shared(base, &mut magic) };
                if magic != MAGIC {
                    return Err(OpenError::NotOurs);
                }
                return Err(OpenError::Corrupted {
                    what: "init_state holds an unknown value",
                });
            }
        }
    }
    let mut buf = [0u8; HEADER_SIZE];
    // SAFETY: HEADER_SIZE bytes are mapped at `base`; `buf` is private. A peer may be writing
    // concurrently: we only parse the private copy from here on.
    unsafe { crate::pod::copy_from_shared(base, &mut buf) };
    if buf[..8] != MAGIC {
        return Err(OpenError::NotOurs);
    }
    let version = get_u32(&buf, OFF_VERSION);
    if version != LAYOUT_VERSION {
        return Err(OpenError::VersionMismatch {
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    if get_u32(&buf, OFF_HEADER_SIZE) as usize != HEADER_SIZE {
        return Err(OpenError::Corrupted {
            what: "header_size is not 256",
        });
    }
    if checksum(&buf) != get_u64(&buf, OFF_CHECKSUM) {
        return Err(OpenError::Corrupted {
            what: "header checksum mismatch",
        });
    }
    let name_len = (get_u32(&buf, OFF_NAME_LEN) as usize).min(NAME_MAX);
    let found = TypeFingerprint {
        size: get_u64(&buf, OFF_TSIZE),
        align: get_u64(&buf, OFF_TALIGN),
        hash: get_u64(&buf, OFF_THASH),
        name: String::from_utf8_lossy(&buf[OFF_NAME..OFF_NAME + name_len]).into_owned(),
    };
    if found.size != expected.size || found.align != expected.align || found.hash != expected.hash {
        return Err(OpenError::IncompatibleLayout {
            expected: expected.clone(),
            found,
        });
    }
    let total = get_u64(&buf, OFF_TOTAL);
    if total > mapped_len as u64 {
        return Err(OpenError::Truncated {
            needed: total,
            actual: mapped_len as u64,
        });
    }
    let total_size = total as usize;
    let capacity =
        usize::try_from(get_u64(&buf, OFF_CAPACITY)).map_err(|_| OpenError::Corrupted {
            what: "capacity does not fit in usize",
        })?;
    let payload = get_u32(&buf, OFF_PAYLOAD) as usize;
    if payload != payload_offset(expected.align as usize) {
        return Err(OpenError::Corrupted {
            what: "payload_offset does not match the type",
        });
    }
    match required_size(&found, capacity) {
        Some(need) if need <= total_size => {}
        _ => {
            return Err(OpenError::Corrupted {
                what: "capacity does not fit in total_size",
            });
        }
    }
    let creator = ProcessIdentity::from_parts(get_u32(&buf, OFF_PID), get_u64(&buf, OFF_START));
    Ok(HeaderInfo {
        total_size,
        payload_offset: payload,
        capacity,
        creator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_distinguishes_kind_and_type() {
        assert_ne!(
            TypeFingerprint::of::<u64>("RawValue"),
            TypeFingerprint::of::<u64>("RawArray")
        );
        assert_ne!(
            TypeFingerprint::of::<u64>("RawValue"),
            TypeFingerprint::of::<i64>("RawValue")
        );
    }

    #[test]
    fn required_size_rejects_overflow() {
        let fp = TypeFingerprint::of::<u64>("RawArray");
        assert!(required_size(&fp, usize::MAX / 4).is_none());
        assert_eq!(required_size(&fp, 2), Some(HEADER_SIZE + 16));
    }
}
