//! `Semaphore` and `BoundedSemaphore`: Python's counting semaphores in shared memory.

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use ipc_core::{CreateError, OpenError, Placement};

use crate::error::ReleaseError;
use crate::object::{Shared, shared_handle};
use crate::os::Os;
use crate::raw_semaphore::{ReleaseRefused, SemaphoreState};

const KIND: &str = "Semaphore";

/// A counting semaphore shared between processes: `acquire` takes a permit (waiting while none
/// is left), `release` returns one.
///
/// **Permits are not owned**, as in Python and POSIX: any process may release, and a process
/// that dies between `acquire` and `release` takes its permit with it — the count stays one
/// lower until somebody calls `release` for it. Blocking calls never outlast the caller's own
/// timeout, but an `acquire` without one waits for a release that a dead holder will not make.
/// Use [`acquire_timeout`](Self::acquire_timeout) where holders may die, or a
/// [`Lock`](crate::Lock) (which is robust) where a permit must be handed back on death.
///
/// ```
/// use ipc_sync::Semaphore;
/// use std::time::Duration;
///
/// let s = Semaphore::new(2)?;
/// s.acquire();
/// assert!(s.try_acquire());
/// assert!(!s.acquire_timeout(Duration::from_millis(5)));
/// s.release()?;
/// assert_eq!(s.value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Semaphore {
    shm: Shared<SemaphoreState, u8>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("bound", &self.bound())
            .finish()
    }
}

impl Semaphore {
    /// An unbounded semaphore holding `value` permits, in a new anonymous segment.
    pub fn new(value: u32) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, value, false)
    }

    /// A semaphore placed as asked; if `bounded`, releasing past `value` is an error.
    pub fn create(placement: &Placement, value: u32, bounded: bool) -> Result<Self, CreateError> {
        if bounded && value == 0 {
            return Err(CreateError::InvalidSize { size: 0 });
        }
        let bound = if bounded { value } else { 0 };
        Ok(Self {
            shm: Shared::create(KIND, placement, 0, |st: &SemaphoreState, _| {
                st.init(value, bound)
            })?,
        })
    }

    /// Attaches through a handle, validating the segment.
    pub fn open(handle: &ipc_core::ObjectHandle) -> Result<Self, OpenError> {
        Ok(Self {
            shm: Shared::open(KIND, handle)?,
        })
    }

    /// Opens a semaphore created under `name`.
    pub fn open_named(name: &str) -> Result<Self, OpenError> {
        Ok(Self {
            shm: Shared::open_named(KIND, name)?,
        })
    }

    fn st(&self) -> &SemaphoreState {
        self.shm.state()
    }

    /// Takes a permit, waiting as long as none is available.
    pub fn acquire(&self) {
        while !self.st().acquire(None, &Os) {}
    }

    /// Takes a permit if one is available now.
    #[doc(alias = "acquire")]
    pub fn try_acquire(&self) -> bool {
        self.st().try_acquire()
    }

    /// Takes a permit, waiting at most `timeout`; `false` if none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_deadline(Instant::now() + timeout)
    }

    /// Takes a permit, waiting at most until `deadline`; `false` if none came.
    pub fn acquire_deadline(&self, deadline: Instant) -> bool {
        self.st().acquire(Some(deadline), &Os)
    }

    /// Returns one permit, waking one waiter.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.release_n(1)
    }

    /// Returns `n` permits, waking up to `n` waiters. Refused (nothing changed) past the bound
    /// of a bounded semaphore or past `u32::MAX`.
    pub fn release_n(&self, n: u32) -> Result<(), ReleaseError> {
        self.st().release(n, &Os).map_err(|e| match e {
            ReleaseRefused::PastBound => ReleaseError::PastBound {
                bound: self.st().bound(),
            },
            ReleaseRefused::Overflow => ReleaseError::Overflow,
        })
    }

    /// The permits available now (a snapshot; Python's `get_value()`).
    #[doc(alias = "get_value")]
    pub fn value(&self) -> u32 {
        self.st().value()
    }

    /// The bound of a bounded semaphore.
    pub fn bound(&self) -> Option<u32> {
        match self.st().bound() {
            0 => None,
            b => Some(b),
        }
    }
}

shared_handle!(Semaphore);

/// Python's `BoundedSemaphore`: a [`Semaphore`] whose `release` past its initial value is an
/// error ([`ReleaseError::PastBound`]). Dereferences to `Semaphore` for every operation.
///
/// ```
/// use ipc_sync::{BoundedSemaphore, ReleaseError};
///
/// let s = BoundedSemaphore::new(1)?;
/// assert_eq!(s.release(), Err(ReleaseError::PastBound { bound: 1 }));
/// s.acquire();
/// s.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BoundedSemaphore {
    sem: Semaphore,
}

impl BoundedSemaphore {
    /// A bounded semaphore holding `value` (at least 1) permits, in a new anonymous segment.
    pub fn new(value: u32) -> Result<Self, CreateError> {
        Self::create(&Placement::Anonymous, value)
    }

    /// A bounded semaphore placed as asked.
    pub fn create(placement: &Placement, value: u32) -> Result<Self, CreateError> {
        Ok(Self {
            sem: Semaphore::create(placement, value, true)?,
        })
    }

    /// Attaches through a handle; refuses an unbounded semaphore.
    pub fn open(handle: &ipc_core::ObjectHandle) -> Result<Self, OpenError> {
        Self::checked(Semaphore::open(handle)?)
    }

    /// Opens a bounded semaphore created under `name`.
    pub fn open_named(name: &str) -> Result<Self, OpenError> {
        Self::checked(Semaphore::open_named(name)?)
    }

    fn checked(sem: Semaphore) -> Result<Self, OpenError> {
        if sem.bound().is_none() {
            return Err(OpenError::Corrupted {
                what: "the semaphore is not bounded",
            });
        }
        Ok(Self { sem })
    }

    /// The handle another process attaches with.
    pub fn handle(&self) -> ipc_core::ObjectHandle {
        self.sem.handle()
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.sem
    }
}

impl serde::Serialize for BoundedSemaphore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sem.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for BoundedSemaphore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let handle = <ipc_core::ObjectHandle as serde::Deserialize>::deserialize(d)?;
        Self::open(&handle).map_err(serde::de::Error::custom)
    }
}
