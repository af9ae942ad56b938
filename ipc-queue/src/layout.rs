//! How this crate's objects sit in an `ipc_core::raw::ObjectSegment`: the header's element type is a
//! byte aligned to 128 (so the payload starts on a cache-line boundary), its capacity is the
//! payload's size in bytes, and its descriptor names the object kind and layout version, e.g.
//! `ipc_queue::Queue<u64>/1`. Each object validates the rest of its layout against that size.

use ipc_core::raw::header::fnv1a;
use ipc_core::raw::{ObjectSegment, TypeFingerprint};
use ipc_core::{ObjectHandle, Placement};

use crate::error::{CreateError, OpenError};

/// The version of every payload layout of this crate. Bump it with any layout change, and with
/// any change of what a shared word means, so that processes built from two versions refuse
/// each other's objects instead of misreading them (4: a pipe end's waiters no longer set a
/// `WAITING` bit in its claim word, and its holder frees the word only if it reads exactly its
/// own identity there, so a waiter of version 3 would keep the end held for ever).
pub(crate) const LAYOUT_VERSION: u32 = 4;

/// Payload alignment.
pub(crate) const ALIGN: usize = 128;

pub(crate) fn fingerprint(kind: &str) -> TypeFingerprint {
    let name = format!("ipc_queue::{kind}/{LAYOUT_VERSION}");
    TypeFingerprint {
        size: 1,
        align: ALIGN as u64,
        hash: fnv1a(name.as_bytes()),
        name,
    }
}

pub(crate) fn create(
    placement: &Placement,
    kind: &str,
    payload_bytes: usize,
    init: impl FnOnce(*mut u8),
) -> Result<ObjectSegment, CreateError> {
    Ok(ObjectSegment::create(
        placement,
        &fingerprint(kind),
        payload_bytes,
        init,
    )?)
}

pub(crate) fn open(handle: &ObjectHandle, kind: &str) -> Result<ObjectSegment, OpenError> {
    Ok(ObjectSegment::open(handle, &fingerprint(kind))?)
}

/// `size` rounded up to the payload alignment.
pub(crate) const fn padded(size: usize) -> usize {
    size.next_multiple_of(ALIGN)
}
