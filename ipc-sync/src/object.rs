//! The segment every object of this crate lives in: the ipc-core header, then a `#[repr(C)]`
//! state of atomics `S`, then `len` elements of `T` (none for plain locks and events).

use std::fmt;
use std::marker::PhantomData;

use bytemuck::Pod;
use ipc_core::raw::header::fnv1a;
use ipc_core::raw::{ObjectSegment, TypeFingerprint};
use ipc_core::{CreateError, ObjectHandle, OpenError, Placement};

/// A shared state type: `#[repr(C)]`, made of atomics only, valid for every bit pattern and
/// for all zeroes.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs whose fields are atomics (or such structs), with
/// alignment at most 64, so that any bytes of shared memory may be viewed as `&Self`.
pub(crate) unsafe trait SharedState: Sized {}

// SAFETY: `#[repr(C)]`, atomics only.
unsafe impl SharedState for crate::raw_lock::LockState {}
// SAFETY: `#[repr(C)]`, atomics only.
unsafe impl SharedState for crate::raw_semaphore::SemaphoreState {}

/// Where the elements start inside the payload.
const fn data_offset<S, T>() -> usize {
    let align = if align_of::<T>() > 64 {
        align_of::<T>()
    } else {
        64
    };
    size_of::<S>().next_multiple_of(align)
}

/// The segment fingerprint of kind `kind` over elements `T`: the payload is counted in bytes, so
/// size and alignment of `T` go into the hashed descriptor.
fn fingerprint<S, T>(kind: &str) -> TypeFingerprint {
    let of = TypeFingerprint::of::<T>(kind);
    let name = format!("{}[{}/{}/{}]", of.name, of.size, of.align, size_of::<S>());
    let align = align_of::<S>().max(align_of::<T>()).max(64);
    TypeFingerprint {
        size: 1,
        align: align as u64,
        hash: fnv1a(name.as_bytes()),
        name,
    }
}

/// An attached object segment.
pub(crate) struct Shared<S, T> {
    seg: ObjectSegment,
    len: usize,
    _p: PhantomData<(*const S, T)>,
}

// SAFETY: the segment is shared memory accessed through atomics (`S`) and raw pointers to `T`
// that the owning types guard; the mapping itself can move between threads.
unsafe impl<S: SharedState, T: Pod> Send for Shared<S, T> {}
// SAFETY: as above; `&Shared` only gives `&S` (atomics) and raw pointers.
unsafe impl<S: SharedState, T: Pod> Sync for Shared<S, T> {}

impl<S, T> fmt::Debug for Shared<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("len", &self.len)
            .field("segment", self.seg.shared_memory())
            .finish()
    }
}

impl<S: SharedState, T: Pod> Shared<S, T> {
    /// Creates the segment; `init` writes the initial state (zeroed before) and elements.
    pub(crate) fn create(
        kind: &str,
        placement: &Placement,
        len: usize,
        init: impl FnOnce(&S, *mut T),
    ) -> Result<Self, CreateError> {
        const {
            assert!(
                size_of::<T>() > 0,
                "zero-sized element types are not supported"
            )
        };
        let bytes = len
            .checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(data_offset::<S, T>()))
            .ok_or(CreateError::InvalidSize { size: u64::MAX })?;
        let fp = fingerprint::<S, T>(kind);
        let seg = ObjectSegment::create(placement, &fp, bytes, |p| {
            // SAFETY: the payload is `bytes` zeroed bytes aligned to at least 64 (the fingerprint
            // alignment), so it holds an `S` (valid for all zeroes) at its start and `len`
            // elements at `data_offset`; nobody else sees it before publication.
            let state = unsafe { &*p.cast::<S>() };
            // SAFETY: `data_offset + len * size_of::<T>() == bytes`, inside the payload.
            let data = unsafe { p.add(data_offset::<S, T>()) }.cast::<T>();
            init(state, data);
        })?;
        Ok(Self {
            seg,
            len,
            _p: PhantomData,
        })
    }

    fn checked(seg: ObjectSegment) -> Result<Self, OpenError> {
        let bytes = seg.capacity();
        let Some(rest) = bytes.checked_sub(data_offset::<S, T>()) else {
            return Err(OpenError::Corrupted {
                what: "payload too small for the object's state",
            });
        };
        if rest % size_of::<T>() != 0 {
            return Err(OpenError::Corrupted {
                what: "payload is not a whole number of elements",
            });
        }
        Ok(Self {
            seg,
            len: rest / size_of::<T>(),
            _p: PhantomData,
        })
    }

    /// Attaches through a handle and validates the header.
    pub(crate) fn open(kind: &str, handle: &ObjectHandle) -> Result<Self, OpenError> {
        Self::checked(ObjectSegment::open(handle, &fingerprint::<S, T>(kind))?)
    }

    /// Opens a named object and validates the header.
    pub(crate) fn open_named(kind: &str, name: &str) -> Result<Self, OpenError> {
        Self::checked(ObjectSegment::open_named(name, &fingerprint::<S, T>(kind))?)
    }

    /// The shared state.
    pub(crate) fn state(&self) -> &S {
        // SAFETY: the validated payload starts with at least `size_of::<S>()` bytes aligned to
        // 64, mapped while `self` lives; `S` is atomics only, valid for any bytes
        // (`SharedState`).
        unsafe { &*self.seg.payload_ptr().cast::<S>() }
    }

    /// The first element; `len` elements follow, aligned for `T`.
    pub(crate) fn data(&self) -> *mut T {
        // SAFETY: `data_offset + len * size_of::<T>()` is within the validated payload.
        unsafe { self.seg.payload_ptr().add(data_offset::<S, T>()) }.cast::<T>()
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The handle another process attaches with.
    pub(crate) fn handle(&self) -> ObjectHandle {
        self.seg.handle()
    }

    /// The segment's name, if named.
    pub(crate) fn name(&self) -> Option<&str> {
        self.seg.name()
    }
}

/// Implements `handle`, `name`, `Serialize` and `Deserialize` for a handle type whose field
/// `shm` is a `Shared` and which has an `open(&ObjectHandle)` constructor.
macro_rules! shared_handle {
    ($ty:ident $(<$t:ident>)?) => {
        impl$(<$t: bytemuck::Pod>)? $ty$(<$t>)? {
            /// The handle another process attaches with (through [`open`](Self::open), or by
            /// deserialising this object, which is what passing it to a child does).
            pub fn handle(&self) -> ipc_core::ObjectHandle {
                self.shm.handle()
            }

            /// The segment's name, if this object was created by name.
            pub fn name(&self) -> Option<&str> {
                self.shm.name()
            }
        }

        impl$(<$t: bytemuck::Pod>)? serde::Serialize for $ty$(<$t>)? {
            fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
                serde::Serialize::serialize(&self.shm.handle(), s)
            }
        }

        impl<'de $(, $t: bytemuck::Pod)?> serde::Deserialize<'de> for $ty$(<$t>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let handle = <ipc_core::ObjectHandle as serde::Deserialize>::deserialize(d)?;
                Self::open(&handle).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use shared_handle;
