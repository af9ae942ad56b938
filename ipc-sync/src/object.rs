//! The segment every object of this crate lives in: the ipc-core header, then a `#[repr(C)]`
//! state of atomics `S`, then `len` elements of `T` (none for plain locks and events).

use std::borrow::Cow;
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

/// One kind of object of this crate: a handle type over one segment of state `State` and
/// elements `Elem`. [`shared_object!`] derives the rest of its public surface from this.
pub(crate) trait Object: Sized {
    /// The shared state at the start of the payload.
    type State: SharedState;
    /// The elements after it.
    type Elem: Pod;
    /// The fingerprint kind a plain [`open`](Shared::open) checks.
    fn kind() -> Cow<'static, str>;
    /// Checks what the header cannot (counts, bounds recorded in the state) and wraps the
    /// segment.
    fn from_shared(shm: Shared<Self::State, Self::Elem>) -> Result<Self, OpenError>;
    /// The segment.
    fn shared(&self) -> &Shared<Self::State, Self::Elem>;
}

/// Implements [`Object`] for a handle type and derives from it the surface every object of
/// this crate shares: `open`, `open_named`, `handle`, `name`, `try_clone`, `Serialize` and
/// `Deserialize`, and optionally `new` (`create` in an anonymous segment).
///
/// ```text
/// shared_object!(Ty<T: Bound>: State[Elem] = kind, from_shared; new(args) "doc");
/// shared_object!(supplied Ty<T: Bound>: State[Elem] = kind; new(args) "doc");
/// ```
///
/// `from_shared` (a `fn(Shared<State, Elem>) -> Result<Self, OpenError>` that checks what the
/// header cannot) defaults to wrapping the segment in the field `shm`. The `supplied` form is
/// for objects that may be built on a supplied lock (see `supplied.rs`): its `try_clone` clones
/// the lock too, it serialises the lock's handle with its own, and it adds `open_with_lock`.
macro_rules! shared_object {
    ($ty:ident $(<$t:ident: $bound:path>)?: $state:ty [$elem:ty] = $kind:expr
        $(, $from:expr)? $(; new($($arg:ident: $argty:ty),*) $doc:literal)?) => {
        $crate::object::shared_object!(@object $ty $(<$t: $bound>)?: $state [$elem] = $kind
            $(, $from)?);
        $crate::object::shared_object!(@common $ty $(<$t: $bound>)? $(; new($($arg: $argty),*) $doc)?);

        $crate::object::shared_object!(@plain $ty $(<$t: $bound>)?);
    };
    (custom $ty:ident $(; new($($arg:ident: $argty:ty),*) $doc:literal)?) => {
        $crate::object::shared_object!(@common $ty $(; new($($arg: $argty),*) $doc)?);
        $crate::object::shared_object!(@plain $ty);
    };
    (supplied $ty:ident $(<$t:ident: $bound:path>)?: $state:ty [$elem:ty] = $kind:expr
        $(; new($($arg:ident: $argty:ty),*) $doc:literal)?) => {
        $crate::object::shared_object!(@object $ty $(<$t: $bound>)?: $state [$elem] = $kind,
            <Self as $crate::supplied::OnSuppliedLock>::plain);
        $crate::object::shared_object!(@common $ty $(<$t: $bound>)? $(; new($($arg: $argty),*) $doc)?);

        impl$(<$t: $bound>)? $ty$(<$t>)? {
            /// Attaches to an object built on a supplied lock (`with_lock`), with a handle of
            /// that same lock (Python's `lock=` argument): a plain [`open`](Self::open) refuses
            /// such an object (it would take the object's unused lock of its own), and this
            /// refuses one built on the other kind of lock.
            pub fn open_with_lock<'l>(
                handle: &ipc_core::ObjectHandle,
                lock: impl Into<$crate::SuppliedLock<'l>>,
            ) -> Result<Self, ipc_core::OpenError> {
                <Self as $crate::supplied::OnSuppliedLock>::open_on(
                    handle,
                    Some(lock.into().clone_lock()?),
                )
            }

            /// A second handle of the same object (as `std::fs::File::try_clone`), with a second
            /// handle of its supplied lock, if it has one: so that one can be given away (to a
            /// [`Process`](ipc_core::Process), which consumes its argument) and the other kept.
            /// The clone of a named object does not own its name.
            pub fn try_clone(&self) -> Result<Self, ipc_core::OpenError> {
                use $crate::supplied::OnSuppliedLock;
                let lock = self.supplied().map(|l| l.try_clone()).transpose()?;
                Self::open_on(&self.handle(), lock)
            }
        }

        impl$(<$t: $bound>)? serde::Serialize for $ty$(<$t>)? {
            fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
                use $crate::supplied::OnSuppliedLock;
                serde::Serialize::serialize(&self.wire(), s)
            }
        }

        impl<'de $(, $t: $bound)?> serde::Deserialize<'de> for $ty$(<$t>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use $crate::supplied::OnSuppliedLock;
                let wire = <$crate::supplied::Wire as serde::Deserialize>::deserialize(d)?;
                Self::from_wire(&wire).map_err(ipc_core::codec::de_error)
            }
        }
    };
    (@object $ty:ident $(<$t:ident: $bound:path>)?: $state:ty [$elem:ty] = $kind:expr
        $(, $from:expr)?) => {
        impl$(<$t: $bound>)? $crate::object::Object for $ty$(<$t>)? {
            type State = $state;
            type Elem = $elem;

            fn kind() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::from($kind)
            }

            fn from_shared(
                shm: $crate::object::Shared<$state, $elem>,
            ) -> Result<Self, ipc_core::OpenError> {
                $crate::object::shared_object!(@from shm $($from)?)
            }

            fn shared(&self) -> &$crate::object::Shared<$state, $elem> {
                &self.shm
            }
        }
    };
    (@plain $ty:ident $(<$t:ident: $bound:path>)?) => {
        impl$(<$t: $bound>)? $ty$(<$t>)? {
            /// A second handle of the same object (as `std::fs::File::try_clone`): its own
            /// mapping of the same segment, so that one handle can be given away (to a
            /// [`Process`](ipc_core::Process), which consumes its argument) and the other kept.
            /// The clone of a named object does not own its name.
            pub fn try_clone(&self) -> Result<Self, ipc_core::OpenError> {
                Self::open(&self.handle())
            }
        }

        impl$(<$t: $bound>)? serde::Serialize for $ty$(<$t>)? {
            fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
                serde::Serialize::serialize(&self.handle(), s)
            }
        }

        impl<'de $(, $t: $bound)?> serde::Deserialize<'de> for $ty$(<$t>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let handle = <ipc_core::ObjectHandle as serde::Deserialize>::deserialize(d)?;
                Self::open(&handle).map_err(ipc_core::codec::de_error)
            }
        }
    };
    (@from $shm:ident) => { Ok(Self { shm: $shm }) };
    (@from $shm:ident $from:expr) => { ($from)($shm) };
    (@common $ty:ident $(<$t:ident: $bound:path>)? $(; new($($arg:ident: $argty:ty),*) $doc:literal)?) => {
        impl$(<$t: $bound>)? $ty$(<$t>)? {
            $(
                #[doc = $doc]
                #[doc = ""]
                #[doc = "The same as [`create`](Self::create) with `Placement::Anonymous`."]
                pub fn new($($arg: $argty),*) -> Result<Self, ipc_core::CreateError> {
                    Self::create(&ipc_core::Placement::Anonymous $(, $arg)*)
                }
            )?

            /// Attaches to the object `handle` names (made by [`handle`](Self::handle) in this
            /// or another process), validating the segment: its header, its kind and element
            /// type, and what its state records.
            pub fn open(handle: &ipc_core::ObjectHandle) -> Result<Self, ipc_core::OpenError> {
                let kind = <Self as $crate::object::Object>::kind();
                <Self as $crate::object::Object>::from_shared($crate::object::Shared::open(
                    &kind, handle,
                )?)
            }

            /// Opens the object created under `name` (`Placement::Named`), validating it as
            /// [`open`](Self::open) does.
            pub fn open_named(name: &str) -> Result<Self, ipc_core::OpenError> {
                let kind = <Self as $crate::object::Object>::kind();
                <Self as $crate::object::Object>::from_shared(
                    $crate::object::Shared::open_named(&kind, name)?,
                )
            }

            /// The handle another process attaches with (through [`open`](Self::open), or by
            /// deserialising this object, which is what passing it to a child does).
            pub fn handle(&self) -> ipc_core::ObjectHandle {
                <Self as $crate::object::Object>::shared(self).handle()
            }

            /// The segment's name, if this object was created by name.
            pub fn name(&self) -> Option<&str> {
                <Self as $crate::object::Object>::shared(self).name()
            }
        }
    };
}
pub(crate) use shared_object;
