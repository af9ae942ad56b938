//! Object segments: a [`SharedMemory`] that starts with a validated header and holds a typed
//! payload. Every shared object of the workspace (values, arrays, locks, queues) lives in one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CreateError, OpenError};
use crate::header::{self, HeaderInfo, TypeFingerprint};
use crate::segment::{SegmentHandle, SharedMemory};

/// Where to create an object: anonymous (for children) or under a name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Placement {
    /// An anonymous memfd: cannot leak, reachable by children through its handle.
    #[default]
    Anonymous,
    /// A named POSIX segment with a fresh random name.
    NamedRandom,
    /// A named POSIX segment with this name (creation fails if it exists).
    Named(String),
}

/// A segment whose header has been written by us or validated by us.
///
/// ```
/// use ipc_core::Placement;
/// use ipc_core::raw::{ObjectSegment, TypeFingerprint};
///
/// let fp = TypeFingerprint::of::<u32>("MyTable");
/// let seg = ObjectSegment::create(&Placement::Anonymous, &fp, 16, |_payload| {})?;
/// let again = ObjectSegment::open(&seg.handle(), &fp)?;
/// assert_eq!(again.capacity(), 16);
/// // The wrong type is refused.
/// let wrong = TypeFingerprint::of::<u64>("MyTable");
/// assert!(ObjectSegment::open(&seg.handle(), &wrong).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ObjectSegment {
    shm: SharedMemory,
    info: HeaderInfo,
}

/// The serialisable handle of an object segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHandle {
    /// The segment to attach to.
    pub segment: SegmentHandle,
}

impl ObjectSegment {
    /// Creates a segment for `capacity` elements described by `fp`, lets `init` fill the payload
    /// (zeroed before the call, given as a raw pointer to `capacity * fp.size` bytes), then
    /// publishes the header.
    pub fn create(
        placement: &Placement,
        fp: &TypeFingerprint,
        capacity: usize,
        init: impl FnOnce(*mut u8),
    ) -> Result<Self, CreateError> {
        let total = header::required_size(fp, capacity)
            .ok_or(CreateError::InvalidSize { size: u64::MAX })?;
        // Named segments get the magic before they have a size, so a plain opener that races
        // the creation sees an object (and refuses to copy over it).
        let magic = &header::MAGIC;
        let mut shm = match placement {
            Placement::Anonymous => SharedMemory::anonymous(total)?,
            Placement::NamedRandom => loop {
                match SharedMemory::builder(&crate::segment::random_name())
                    .size(total)
                    .create_with_prefix(magic)
                {
                    Err(CreateError::AlreadyExists { .. }) => continue,
                    other => break other?,
                }
            },
            Placement::Named(name) => SharedMemory::builder(name)
                .size(total)
                .create_with_prefix(magic)?,
        };
        shm.mark_object();
        let base = shm.as_ptr();
        // SAFETY: `base` starts a fresh, page-aligned, writable mapping of `total` bytes from
        // `required_size`; nobody can have seen it as ready.
        unsafe { header::write(base, fp, capacity, total) };
        let offset = header::payload_offset(fp.align as usize);
        // SAFETY: `offset <= total` by `required_size`, so the pointer stays inside the mapping.
        init(unsafe { base.add(offset) });
        // SAFETY: `write` ran on this mapping above.
        unsafe { header::publish(base) };
        let info = HeaderInfo {
            total_size: total,
            payload_offset: offset,
            capacity,
            creator: crate::liveness::current_for_display(),
        };
        Ok(Self { shm, info })
    }

    /// Attaches to the segment `handle` names and validates its header against `fp`.
    pub fn open(handle: &ObjectHandle, fp: &TypeFingerprint) -> Result<Self, OpenError> {
        Self::open_segment(&handle.segment, fp)
    }

    /// Attaches to a raw segment handle and validates it against `fp`.
    pub fn open_segment(handle: &SegmentHandle, fp: &TypeFingerprint) -> Result<Self, OpenError> {
        let shm = SharedMemory::open(handle)?;
        Self::from_shared_memory(shm, fp, header::DEFAULT_INIT_TIMEOUT)
    }

    /// Opens the named object segment `name`.
    pub fn open_named(name: &str, fp: &TypeFingerprint) -> Result<Self, OpenError> {
        let shm = SharedMemory::builder(name).open()?;
        Self::from_shared_memory(shm, fp, header::DEFAULT_INIT_TIMEOUT)
    }

    /// Validates the header of an already mapped segment.
    pub fn from_shared_memory(
        mut shm: SharedMemory,
        fp: &TypeFingerprint,
        init_timeout: Duration,
    ) -> Result<Self, OpenError> {
        // SAFETY: `shm` is a live mapping of `shm.len()` bytes starting at a page boundary.
        let info = unsafe { header::validate(shm.as_ptr(), shm.len(), fp, init_timeout) }?;
        shm.mark_object();
        Ok(Self { shm, info })
    }

    /// The handle another process attaches with.
    pub fn handle(&self) -> ObjectHandle {
        ObjectHandle {
            segment: self.shm.handle(),
        }
    }

    /// The number of elements the payload holds.
    pub fn capacity(&self) -> usize {
        self.info.capacity
    }

    /// The validated header facts.
    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// The start of the payload: `capacity * size` bytes, aligned for the element type, inside
    /// the mapping for as long as `self` lives.
    pub fn payload_ptr(&self) -> *mut u8 {
        // SAFETY: `payload_offset <= total_size <= len` was established by `create` or
        // `validate`, so the pointer stays inside the mapping.
        unsafe { self.shm.as_ptr().add(self.info.payload_offset) }
    }

    /// The underlying segment.
    pub fn shared_memory(&self) -> &SharedMemory {
        &self.shm
    }

    /// The segment's name, if it is named.
    pub fn name(&self) -> Option<&str> {
        self.shm.name()
    }
}

/// The handle methods of every typed view of an [`ObjectSegment`] held in a `seg` field (with an
/// `open(&ObjectHandle)` of its own): a second handle, the handle another process attaches with,
/// and the segment's name. The docs of `try_clone` (with an example of the type) are given.
macro_rules! segment_handle_methods {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn try_clone(&self) -> Result<Self, OpenError> {
            Self::open(&self.handle())
        }

        /// The handle another process attaches with.
        pub fn handle(&self) -> ObjectHandle {
            self.seg.handle()
        }

        /// The segment's name, if it is named.
        pub fn name(&self) -> Option<&str> {
            self.seg.name()
        }
    };
}

pub(crate) use segment_handle_methods;
