//! Raw shared-memory segments: anonymous (memfd) or named (POSIX `shm_open`), one API.
//!
//! A [`SharedMemory`] is a run of bytes mapped into this process, like Python's
//! `multiprocessing.shared_memory.SharedMemory`, and named segments are the same objects Python
//! sees: a segment created here opens in Python with `SharedMemory(name=...)`, and the reverse.
//! Typed objects (values, arrays, locks, queues) put a validated header in front of their data;
//! see [`ObjectSegment`](crate::ObjectSegment).
//!
//! The bytes are shared with other processes at any moment, so this type hands out no `&[u8]`
//! in safe code: copy in and out with [`read`](SharedMemory::read) and
//! [`write`](SharedMemory::write) (word-wise atomic copies, so a racing peer tears a copy but
//! never causes a data race), or build atomics and guarded views on
//! [`as_ptr`](SharedMemory::as_ptr).
//!
//! A segment that holds one of the workspace's typed objects (a lock, a queue, a value: it starts
//! with the object header) refuses `read` and `write` with [`AccessError::HoldsObject`]: its
//! bytes belong to the object's own protocol, which may have lent them out as `&mut T` under a
//! lock. [`write_unguarded`](SharedMemory::write_unguarded) is the `unsafe` way around, for
//! tools that play a hostile peer.
//!
//! ## Truncation
//!
//! Anonymous segments are sealed (`F_SEAL_SHRINK`): nobody can shrink them. A *named* segment can
//! be truncated by any process of the same user (`ftruncate` on `/dev/shm/<name>`), and every
//! process that then touches the lost pages gets `SIGBUS`, as with any shared file mapping (POSIX
//! offers no seal for `shm_open` objects; Python's `shared_memory` has the same exposure). Use
//! anonymous placement unless another program must find the segment by name.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use serde::{Deserialize, Serialize};

use crate::error::{CreateError, OpenError};
use crate::liveness::ProcessIdentity;
use crate::{platform, tracker};

/// The prefix of the names this library generates (`ipc-` followed by 26 random hex digits).
pub const NAME_PREFIX: &str = "ipc-";

/// How long `open` waits for a named segment whose creator has not yet sized it.
const SIZE_WAIT: Duration = Duration::from_secs(2);

/// A shared-memory segment mapped into this process.
///
/// ```
/// use ipc_core::SharedMemory;
///
/// // Anonymous: freed by the kernel when the last process holding it exits.
/// let seg = SharedMemory::anonymous(4096)?;
/// seg.write(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// seg.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
///
/// // Named: any process of the same user can open it by name, Python included.
/// let named = SharedMemory::create_named(4096)?;
/// let other = SharedMemory::builder(named.name().unwrap()).open()?;
/// other.write(0, b"hi")?;
/// named.read(0, &mut buf[..2])?;
/// assert_eq!(&buf[..2], b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedMemory {
    map: MmapRaw,
    file: File,
    kind: Kind,
    /// The segment holds a typed object: `read` and `write` refuse.
    object: bool,
}

enum Kind {
    Anonymous { dev: u64, ino: u64 },
    Named { name: String, owner: bool },
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SharedMemory");
        match &self.kind {
            Kind::Anonymous { .. } => d.field("kind", &"anonymous"),
            Kind::Named { name, owner } => d.field("name", name).field("owner", owner),
        };
        d.field("len", &self.len()).finish()
    }
}

/// A copy went outside the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// The requested start.
    pub offset: usize,
    /// The requested length.
    pub len: usize,
    /// The segment's length.
    pub size: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "range {}..{}+{} is outside the segment of {} bytes",
            self.offset, self.offset, self.len, self.size
        )
    }
}

impl std::error::Error for OutOfBounds {}

/// Why [`SharedMemory::read`] or [`SharedMemory::write`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// The range is outside the segment.
    OutOfBounds(OutOfBounds),
    /// The segment holds a typed object of this workspace (its header is at offset 0): its bytes
    /// are reached through that object's API (its lock, its slots), never copied over blindly.
    HoldsObject,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::OutOfBounds(e) => e.fmt(f),
            AccessError::HoldsObject => f.write_str(
                "the segment holds a typed object (a lock, queue, value or array): open it as \
                 that type instead of copying its bytes",
            ),
        }
    }
}

impl std::error::Error for AccessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AccessError::OutOfBounds(e) => Some(e),
            AccessError::HoldsObject => None,
        }
    }
}

impl From<OutOfBounds> for AccessError {
    fn from(e: OutOfBounds) -> Self {
        AccessError::OutOfBounds(e)
    }
}

/// Whether a mapping starts with the object header's magic (read with atomic loads).
fn starts_with_object_magic(map: &MmapRaw) -> bool {
    if map.len() < crate::header::MAGIC.len() {
        return false;
    }
    let mut magic = [0u8; 8];
    // SAFETY: at least 8 bytes are mapped; a shared copy tolerates a concurrent writer.
    unsafe { crate::pod::copy_from_shared(map.as_ptr(), &mut magic) };
    magic == crate::header::MAGIC
}
/// What another process needs to attach to a segment; it serialises with serde.
///
/// Anonymous segments are reached through the descriptor this process inherited (fork), or by
/// reopening `/proc/<holder>/fd/<n>` while the holder lives (spawn, forkserver). Named segments
/// are reached by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHandle {
    kind: HandleKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum HandleKind {
    Anonymous {
        holder: ProcessIdentity,
        fd: i32,
        dev: u64,
        ino: u64,
    },
    Named {
        name: String,
    },
}

impl SegmentHandle {
    /// The name of a named segment; `None` for an anonymous one.
    pub fn name(&self) -> Option<&str> {
        match &self.kind {
            HandleKind::Named { name } => Some(name),
            HandleKind::Anonymous { .. } => None,
        }
    }
}

/// Builder for named segments: `SharedMemory::builder(name).size(n).create()`.
#[derive(Debug, Clone)]
pub struct SharedMemoryBuilder {
    name: String,
    size: usize,
}

fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 250 {
        return Err("it is longer than 250 bytes");
    }
    if name.contains('/') || name.contains('\0') {
        return Err("it contains '/' or NUL");
    }
    if name == "." || name == ".." {
        return Err("it is a directory name");
    }
    Ok(())
}

impl SharedMemoryBuilder {
    /// The size in bytes for `create` (ignored by `open`, which maps the whole segment).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Creates the segment (`O_EXCL`, mode 0600) and becomes its owner: it is unlinked when this
    /// handle drops, or when this process dies however it dies.
    pub fn create(self) -> Result<SharedMemory, CreateError> {
        self.create_with_prefix(&[])
    }

    /// Creates the segment with `prefix` written at offset 0 before it has a size, so that an
    /// opener that sees a non-zero size also sees the prefix (the object header's magic: a
    /// plain opener then knows the segment holds an object).
    pub(crate) fn create_with_prefix(self, prefix: &[u8]) -> Result<SharedMemory, CreateError> {
        validate_name(&self.name).map_err(|reason| CreateError::InvalidName {
            name: self.name.clone(),
            reason,
        })?;
        if self.size == 0 || self.size > isize::MAX as usize {
            return Err(CreateError::InvalidSize {
                size: self.size as u64,
            });
        }
        // The tracker must exist before the name does: a death between the two would leak it.
        tracker::ensure_started();
        let file = platform::shm_create(&self.name).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                CreateError::AlreadyExists {
                    name: self.name.clone(),
                }
            } else {
                CreateError::Io(e)
            }
        })?;
        // Register before sizing, so that a death from here on still removes the name.
        tracker::register(&self.name);
        let prefixed = if prefix.is_empty() || prefix.len() > self.size {
            Ok(())
        } else {
            use std::os::unix::fs::FileExt;
            file.write_all_at(prefix, 0)
        };
        let mapped = prefixed
            .and_then(|()| file.set_len(self.size as u64))
            .and_then(|()| map(&file, self.size));
        match mapped {
            Ok(map) => Ok(SharedMemory {
                map,
                file,
                kind: Kind::Named {
                    name: self.name,
                    owner: true,
                },
                object: !prefix.is_empty(),
            }),
            Err(e) => {
                let _ = platform::shm_unlink(&self.name);
                tracker::unregister(&self.name);
                Err(CreateError::Io(e))
            }
        }
    }

    /// Opens an existing segment by name, mapping all of it. This handle does not own it.
    pub fn open(self) -> Result<SharedMemory, OpenError> {
        validate_name(&self.name).map_err(|_| OpenError::NotFound {
            name: self.name.clone(),
        })?;
        let file = platform::shm_open(&self.name).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                OpenError::NotFound {
                    name: self.name.clone(),
                }
            } else {
                OpenError::Io(e)
            }
        })?;
        // A creator sizes the segment right after creating it: wait briefly for that.
        let deadline = Instant::now() + SIZE_WAIT;
        let len = loop {
            let len = platform::file_len(&file).map_err(OpenError::Io)?;
            if len > 0 {
                break len;
            }
            if Instant::now() >= deadline {
                return Err(OpenError::InitTimeout);
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let len = usize::try_from(len).map_err(|_| OpenError::Corrupted { what: "size" })?;
        let map = map(&file, len).map_err(OpenError::Io)?;
        let object = starts_with_object_magic(&map);
        Ok(SharedMemory {
            map,
            file,
            kind: Kind::Named {
                name: self.name,
                owner: false,
            },
            object,
        })
    }

    /// Opens the segment if it exists, otherwise creates it (and then owns it).
    pub fn open_or_create(self) -> Result<SharedMemory, CreateError> {
        loop {
            match self.clone().create() {
                Err(CreateError::AlreadyExists { .. }) => {}
                other => return other,
            }
            match self.clone().open() {
                Ok(seg) => return Ok(seg),
                // Unlinked between our two calls: try creating again.
                Err(OpenError::NotFound { .. }) => continue,
                Err(OpenError::Io(e)) => return Err(CreateError::Io(e)),
                Err(e) => return Err(CreateError::Io(io::Error::other(e.to_string()))),
            }
        }
    }
}

fn map(file: &File, len: usize) -> io::Result<MmapRaw> {
    MmapOptions::new().len(len).map_raw(file)
}

impl SharedMemory {
    /// An anonymous segment of `size` zeroed bytes (a memfd). It has no name, so nothing can
    /// leak: the kernel frees it when the last descriptor and mapping are gone.
    pub fn anonymous(size: usize) -> Result<Self, CreateError> {
        if size == 0 || size > isize::MAX as usize {
            return Err(CreateError::InvalidSize { size: size as u64 });
        }
        let file = platform::memfd_create("ipc-anon", size as u64).map_err(CreateError::Io)?;
        let (dev, ino) = platform::file_identity(&file).map_err(CreateError::Io)?;
        let map = map(&file, size).map_err(CreateError::Io)?;
        Ok(Self {
            map,
            file,
            kind: Kind::Anonymous { dev, ino },
            object: false,
        })
    }

    /// A named segment of `size` zeroed bytes under a fresh random name (`ipc-…`), owned by
    /// this handle.
    pub fn create_named(size: usize) -> Result<Self, CreateError> {
        loop {
            match Self::builder(&random_name()).size(size).create() {
                Err(CreateError::AlreadyExists { .. }) => continue,
                other => return other,
            }
        }
    }

    /// A builder for the named segment `name` (without a leading `/`).
    pub fn builder(name: &str) -> SharedMemoryBuilder {
        SharedMemoryBuilder {
            name: name.to_owned(),
            size: 0,
        }
    }

    /// Opens the segment a handle describes (what another process does with a handle it was
    /// sent), as every object of the workspace opens from its handle.
    ///
    /// ```
    /// use ipc_core::SharedMemory;
    ///
    /// let seg = SharedMemory::anonymous(64)?;
    /// let again = SharedMemory::open(&seg.handle())?;
    /// again.write(0, b"hi")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(handle: &SegmentHandle) -> Result<Self, OpenError> {
        match &handle.kind {
            HandleKind::Named { name } => Self::builder(name).open(),
            HandleKind::Anonymous {
                holder,
                fd,
                dev,
                ino,
            } => attach_anonymous(*holder, *fd, *dev, *ino),
        }
    }

    /// The earlier name of [`open`](Self::open).
    #[doc(hidden)]
    pub fn attach(handle: &SegmentHandle) -> Result<Self, OpenError> {
        Self::open(handle)
    }

    /// A second handle of the same segment (as `std::fs::File::try_clone`). The clone never
    /// owns the name: dropping it unlinks nothing.
    ///
    /// ```
    /// let a = ipc_core::SharedMemory::anonymous(16)?;
    /// a.try_clone()?.write(0, b"x")?;
    /// let mut b = [0u8];
    /// a.read(0, &mut b)?;
    /// assert_eq!(&b, b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        let mut clone = Self::open(&self.handle())?;
        if self.object {
            clone.mark_object();
        }
        Ok(clone)
    }

    /// The handle that lets another process attach.
    pub fn handle(&self) -> SegmentHandle {
        let kind = match &self.kind {
            Kind::Named { name, .. } => HandleKind::Named { name: name.clone() },
            Kind::Anonymous { dev, ino } => HandleKind::Anonymous {
                holder: crate::liveness::current_for_display(),
                fd: self.file.as_raw_fd(),
                dev: *dev,
                ino: *ino,
            },
        };
        SegmentHandle { kind }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: segments have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The name, for a named segment.
    pub fn name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Named { name, .. } => Some(name),
            Kind::Anonymous { .. } => None,
        }
    }

    /// Whether dropping this handle unlinks the name.
    pub fn is_owner(&self) -> bool {
        matches!(self.kind, Kind::Named { owner: true, .. })
    }

    /// Gives up (or takes) ownership of a named segment's name. A segment nobody owns stays in
    /// `/dev/shm` until [`unlink`](Self::unlink) is called, like Python's `track=False`.
    pub fn set_owner(&mut self, own: bool) {
        if let Kind::Named { name, owner } = &mut self.kind {
            if own && !*owner {
                tracker::register(name);
            } else if !own && *owner {
                tracker::unregister(name);
            }
            *owner = own;
        }
    }

    /// Removes the name now (the mapping stays valid); no-op for anonymous segments.
    pub fn unlink(&mut self) -> io::Result<()> {
        if let Kind::Named { name, owner } = &mut self.kind {
            if *owner {
                tracker::unregister(name);
                *owner = false;
            }
            platform::shm_unlink(name)?;
        }
        Ok(())
    }

    /// The start of the mapping. The bytes may be written by other processes at any time: use
    /// atomics, or copies that tolerate tearing.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                len,
                size: self.len(),
            }),
        }
    }

    /// Keeps this mapping out of children forked from now on (`MADV_DONTFORK`): a forked child
    /// does not inherit it, though it can still attach through a handle. For memory this
    /// process lends out as `&mut`, which a forked copy of the process must not reach.
    pub fn exclude_from_fork(&self) -> io::Result<()> {
        platform::dont_fork(self.as_ptr(), self.len())
    }

    /// Whether the segment holds a typed object of this workspace (see [`AccessError`]).
    pub fn holds_object(&self) -> bool {
        self.object
    }

    /// Marks the segment as holding a typed object (its creator or validator does this).
    pub(crate) fn mark_object(&mut self) {
        self.object = true;
    }

    /// Copies `buf.len()` bytes out of the segment, starting at `offset`.
    ///
    /// The copy is word-wise atomic: bytes a peer writes meanwhile may arrive as a mix of old
    /// and new words, never as a data race. A segment that holds a typed object refuses
    /// ([`AccessError::HoldsObject`]).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        if self.object {
            return Err(AccessError::HoldsObject);
        }
        self.check(offset, buf.len())?;
        // SAFETY: the range was bounds-checked against the mapping above; `buf` is a distinct
        // private buffer; no safe API lends a reference into a plain segment.
        unsafe { crate::pod::copy_from_shared(self.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// Copies `data` into the segment, starting at `offset` (word-wise atomic, as
    /// [`read`](Self::read)). A segment that holds a typed object refuses.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        if self.object {
            return Err(AccessError::HoldsObject);
        }
        self.check(offset, data.len())?;
        // SAFETY: the range was bounds-checked against the mapping above; `data` is a private
        // buffer that cannot overlap the mapping; no safe API lends a reference into a plain
        // segment.
        unsafe { crate::pod::copy_to_shared(data, self.as_ptr().add(offset)) };
        Ok(())
    }

    /// Copies `data` into the segment even if it holds a typed object: what a hostile or buggy
    /// peer can do, for tests and tools that play one.
    ///
    /// # Safety
    /// No process may hold a reference (`&T`, `&mut T`, as a locked `Mutex<T>` guard lends) to
    /// the bytes written, for the duration of the call.
    pub unsafe fn write_unguarded(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, data.len())?;
        // SAFETY: bounds-checked above; the caller guarantees that nobody holds a reference to
        // the range, and the copy is atomic word by word.
        unsafe { crate::pod::copy_to_shared(data, self.as_ptr().add(offset)) };
        Ok(())
    }

    /// Copies bytes out even if the segment holds a typed object.
    ///
    /// # Safety
    /// No process may hold a `&mut T` to the bytes read, for the duration of the call.
    pub unsafe fn read_unguarded(&self, offset: usize, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, buf.len())?;
        // SAFETY: bounds-checked above; the caller guarantees that nobody holds a `&mut` to the
        // range, and the copy is atomic word by word.
        unsafe { crate::pod::copy_from_shared(self.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// The whole segment as a byte slice.
    ///
    /// # Safety
    /// No process (this one included) may write the segment while the slice lives.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is valid for `len` bytes while `self` lives; the caller promises
        // no concurrent writer.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }
}

fn attach_anonymous(
    holder: ProcessIdentity,
    fd: i32,
    dev: u64,
    ino: u64,
) -> Result<SharedMemory, OpenError> {
    let same = |file: &File| platform::file_identity(file).is_ok_and(|id| id == (dev, ino));
    // First, a descriptor this process already has (inherited through fork, or our own).
    let local = platform::dup_fd(fd).ok().filter(same);
    // Which error, when the descriptor is not there: the holder's end, or only its handle's
    // (the kernel's word on the holder decides; either way the segment cannot be reached).
    let gone = || {
        if holder.liveness() == crate::Liveness::Alive {
            OpenError::HandleClosed {
                pid: holder.pid(),
                fd,
            }
        } else {
            OpenError::PeerDied { pid: holder.pid() }
        }
    };
    let file = match local {
        Some(f) => f,
        None => {
            // The descriptor itself decides: a holder that is gone has no /proc entry, and a
            // recycled pid's descriptor `fd` is not this memfd (device and inode differ).
            let path = format!("/proc/{}/fd/{fd}", holder.pid());
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => gone(),
                    _ => OpenError::Io(e),
                })?;
            if !same(&f) {
                return Err(gone());
            }
            f
        }
    };
    let len = platform::file_len(&file).map_err(OpenError::Io)?;
    let len = usize::try_from(len).map_err(|_| OpenError::Corrupted { what: "size" })?;
    if len == 0 {
        return Err(OpenError::Truncated {
            needed: 1,
            actual: 0,
        });
    }
    let map = map(&file, len).map_err(OpenError::Io)?;
    let object = starts_with_object_magic(&map);
    Ok(SharedMemory {
        map,
        file,
        kind: Kind::Anonymous { dev, ino },
        object,
    })
}

/// A fresh name: the prefix and 26 hex digits, 104 bits drawn from the kernel's random source
/// (`getrandom`) for every name, so that seeing one name tells nothing about the next.
pub fn random_name() -> String {
    let bits = platform::random_u128() >> 24;
    format!("{NAME_PREFIX}{bits:026x}")
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        if let Kind::Named { name, owner: true } = &self.kind {
            let _ = platform::shm_unlink(name);
            tracker::unregister(name);
        }
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.handle().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = SegmentHandle::deserialize(d)?;
        Self::open(&handle).map_err(crate::codec::de_error)
    }
}
