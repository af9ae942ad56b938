//! `Semaphore` and `BoundedSemaphore`: Python's counting semaphores in shared memory.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::time::{Duration, Instant};

use ipc_core::{CreateError, OpenError, Placement};

use crate::error::ReleaseError;
use crate::object::{Object, Shared, shared_object};
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

    /// Takes a permit, waiting at most `timeout`; `false` if none came (Python's
    /// `acquire(timeout=...)`).
    #[doc(alias = "acquire")]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_deadline(crate::sys::deadline_after(timeout))
    }

    /// Takes a permit, waiting at most until `deadline`; `false` if none came.
    #[doc(alias = "acquire")]
    pub fn acquire_deadline(&self, deadline: Instant) -> bool {
        self.st().acquire(Some(deadline), &Os)
    }

    /// The async form of [`acquire`](Self::acquire): a future that takes a permit, for any
    /// executor. While it waits it is counted as a waiter, so `release` wakes it (through
    /// `ipc_core::raw::reactor`'s waiter thread). Dropping it before it is ready takes no
    /// permit and withdraws it from the waiters (and, if a release meant for it came, wakes
    /// another waiter in its place), so a runtime's timeout composes with it. As with
    /// `acquire`, a permit a dead holder took is not returned: use a timeout where holders may
    /// die.
    #[doc(alias = "acquire")]
    pub async fn acquire_async(&self) {
        // A permit there at once is taken without the future's set-up, as `acquire` does.
        if self.st().try_acquire() {
            return;
        }
        while !crate::future::AcquireFuture::new(self.st(), None).await {}
    }

    /// The async form of [`acquire_timeout`](Self::acquire_timeout): `false` if no permit came
    /// within `timeout` (counted from this call).
    #[doc(alias = "acquire")]
    pub fn acquire_timeout_async(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = bool> + Send + '_ {
        self.acquire_deadline_async(crate::sys::deadline_after(timeout))
    }

    /// The async form of [`acquire_deadline`](Self::acquire_deadline).
    #[doc(alias = "acquire")]
    pub async fn acquire_deadline_async(&self, deadline: Instant) -> bool {
        self.st().try_acquire()
            || crate::future::AcquireFuture::new(self.st(), Some(deadline)).await
    }

    /// Returns one permit, waking one waiter.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.release_n(1)
    }

    /// Returns `n` permits, waking up to `n` waiters. Refused (nothing changed) past the bound
    /// of a bounded semaphore or past `u32::MAX`.
    #[doc(alias = "release")]
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

shared_object!(Semaphore: SemaphoreState[u8] = KIND);

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

impl Object for BoundedSemaphore {
    type State = SemaphoreState;
    type Elem = u8;

    fn kind() -> Cow<'static, str> {
        Cow::Borrowed(KIND)
    }

    fn from_shared(shm: Shared<SemaphoreState, u8>) -> Result<Self, OpenError> {
        let sem = Semaphore::from_shared(shm)?;
        if sem.bound().is_none() {
            return Err(OpenError::Corrupted {
                what: "the semaphore is not bounded",
            });
        }
        Ok(Self { sem })
    }

    fn shared(&self) -> &Shared<SemaphoreState, u8> {
        &self.sem.shm
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore placed as asked.
    pub fn create(placement: &Placement, value: u32) -> Result<Self, CreateError> {
        Ok(Self {
            sem: Semaphore::create(placement, value, true)?,
        })
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.sem
    }
}

shared_object!(custom BoundedSemaphore; new(value: u32) "A bounded semaphore holding `value` (at least 1) permits, in a new anonymous segment.");
