//! Who is alive: a process identified by its pid *and* its start time, so a recycled pid is not
//! mistaken for the process that used to hold it.
//!
//! ## Dead means the kernel says so
//!
//! | what the kernel answered                                   | [`Liveness`]  |
//! |------------------------------------------------------------|---------------|
//! | `kill(pid, 0)` or `/proc/<pid>/stat` gave `ESRCH`/`ENOENT` | `Dead`        |
//! | the process is a zombie (exited, not yet reaped)           | `Dead`        |
//! | it runs, and started at another time (the pid was reused)  | `Dead`        |
//! | it runs, and started at the recorded time                  | `Alive`       |
//! | anything else: `EMFILE`, `ENFILE`, `EACCES`, `ENOMEM`, hidepid, another pid namespace, an unreadable `stat` | `Unknown` |
//!
//! `Unknown` counts as alive everywhere in the workspace: judging a live process dead would hand
//! its lock or its slot to somebody else (undefined behaviour), while judging a dead one alive
//! for a moment only costs the time until the next check. Nothing is cached from a failed
//! lookup.

use std::io;

use serde::{Deserialize, Serialize};

use crate::platform::{self, PidState};
use crate::primitive::{AtomicU64, Ordering};

/// What the kernel says about a recorded process.
///
/// ```
/// use ipc_core::{Liveness, ProcessIdentity};
///
/// let me = ProcessIdentity::current()?;
/// assert_eq!(me.liveness(), Liveness::Alive);
/// // A pid above the kernel's limit never runs.
/// assert_eq!(ProcessIdentity::from_parts(0x3fff_ffff, 1).liveness(), Liveness::Dead);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Liveness {
    /// The process runs and started at the recorded time.
    Alive,
    /// The kernel says the process is gone: no such pid, a zombie, or a pid that now belongs to
    /// a process started at another time.
    Dead,
    /// The kernel could not be asked (out of descriptors, no permission, `/proc` hidden):
    /// treat as alive and ask again later.
    Unknown,
}

impl Liveness {
    /// Whether the kernel said the process is gone. `Unknown` is not dead.
    pub fn is_dead(self) -> bool {
        self == Liveness::Dead
    }
}

/// A process identity that survives pid reuse: the pid plus the process's start time in clock
/// ticks since boot (`/proc/<pid>/stat`, field 22).
///
/// ```
/// let me = ipc_core::ProcessIdentity::current()?;
/// assert!(me.is_alive());
/// assert_eq!(me.pid(), std::process::id());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pid: u32,
    start_time: u64,
}

/// The pid whose start time [`START`] holds (0: nothing cached).
static CACHED_PID: AtomicU64 = AtomicU64::new(0);
/// This process's start time, valid while [`CACHED_PID`] matches `getpid()`.
static START: AtomicU64 = AtomicU64::new(0);

impl ProcessIdentity {
    /// The calling process.
    ///
    /// Read from `/proc/self/stat` once per process (before `main`, by the dispatcher `init`
    /// keeps linked; again in each forked child) and cached. A lookup that fails (the process is
    /// out of descriptors, `/proc` is not mounted) is an error and is not cached: the next call
    /// asks again.
    pub fn current() -> io::Result<Self> {
        let pid = platform::getpid();
        // ORDERING: Acquire, pairs with the Release store of the pid in `cache`: the start time
        // stored before it is visible once the pid matches.
        if CACHED_PID.load(Ordering::Acquire) == u64::from(pid) {
            // ORDERING: Relaxed, ordered by the Acquire above.
            let start_time = START.load(Ordering::Relaxed);
            return Ok(Self { pid, start_time });
        }
        Self::read_current(pid)
    }

    #[cold]
    fn read_current(pid: u32) -> io::Result<Self> {
        match platform::process_start_time(pid)? {
            PidState::Running(start_time) => {
                cache(pid, start_time);
                Ok(Self { pid, start_time })
            }
            // Our own pid always exists while we run; a different answer means /proc is not
            // this process's (another pid namespace).
            PidState::Gone => Err(io::Error::other(
                "/proc does not show this process (is /proc from another pid namespace?)",
            )),
        }
    }

    /// The running process `pid`: `Ok(None)` if the kernel says there is none (or it is a
    /// zombie), an error if it could not be asked.
    pub fn of_pid(pid: u32) -> io::Result<Option<Self>> {
        Ok(match platform::process_start_time(pid)? {
            PidState::Running(start_time) => Some(Self { pid, start_time }),
            PidState::Gone => None,
        })
    }

    /// Rebuilds an identity from its two parts (as stored in shared memory).
    pub fn from_parts(pid: u32, start_time: u64) -> Self {
        Self { pid, start_time }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The start time in clock ticks since boot.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// The low 32 bits of the start time: what a one-word record of a holder keeps beside its
    /// pid (see [`liveness_of_tag`](Self::liveness_of_tag)). Two processes that share a pid and
    /// this tag started a multiple of 2^32 clock ticks apart (16 months at 100 Hz).
    pub fn start_tag(&self) -> u32 {
        self.start_time as u32
    }

    /// What the kernel says about this process now (see [`Liveness`]).
    pub fn liveness(&self) -> Liveness {
        check(self.pid, |start| start == self.start_time)
    }

    /// What the kernel says about the process `pid` whose start time has the low 32 bits `tag`.
    pub fn liveness_of_tag(pid: u32, tag: u32) -> Liveness {
        check(pid, |start| start as u32 == tag)
    }

    /// Whether this process may still run: `false` only when the kernel says it is gone
    /// ([`Liveness::Dead`]); an unanswerable question counts as alive.
    pub fn is_alive(&self) -> bool {
        !self.liveness().is_dead()
    }
}

fn check(pid: u32, matches: impl FnOnce(u64) -> bool) -> Liveness {
    if pid == 0 || libc::pid_t::try_from(pid).is_err() {
        // Not a process id at all: nothing can hold it.
        return Liveness::Dead;
    }
    match platform::process_start_time(pid) {
        Ok(PidState::Running(start)) if matches(start) => Liveness::Alive,
        Ok(PidState::Running(_)) | Ok(PidState::Gone) => Liveness::Dead,
        Err(_) => Liveness::Unknown,
    }
}

fn cache(pid: u32, start_time: u64) {
    // ORDERING: Relaxed, published by the Release store of the pid that follows. Two threads
    // racing here store the same values.
    START.store(start_time, Ordering::Relaxed);
    // ORDERING: Release, pairs with the Acquire load in `current`.
    CACHED_PID.store(u64::from(pid), Ordering::Release);
}

/// This process's identity for records that are only informational (a segment header's creator):
/// the start time is 0 when it cannot be read. Never use it for a record that others judge
/// liveness by.
pub(crate) fn current_for_display() -> ProcessIdentity {
    ProcessIdentity::current()
        .unwrap_or_else(|_| ProcessIdentity::from_parts(platform::getpid(), 0))
}

/// Reads and caches this process's identity ahead of need (before `main`, and in a forked
/// child right after `fork`). Async-signal-safe: no allocation, no lock; a failure leaves the
/// cache empty for the next [`ProcessIdentity::current`] to retry.
pub(crate) fn warm_cache(pid: u32) {
    if let Ok(PidState::Running(start)) = platform::process_start_time(pid) {
        cache(pid, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_dead_and_an_unreadable_one_is_not() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(me.liveness(), Liveness::Alive);
        let reused = ProcessIdentity::from_parts(me.pid(), me.start_time().wrapping_add(1));
        assert_eq!(reused.liveness(), Liveness::Dead);
        assert_eq!(
            ProcessIdentity::liveness_of_tag(me.pid(), me.start_tag()),
            Liveness::Alive
        );
        assert_eq!(
            ProcessIdentity::liveness_of_tag(me.pid(), me.start_tag() ^ 1),
            Liveness::Dead
        );
        assert_eq!(ProcessIdentity::from_parts(0, 0).liveness(), Liveness::Dead);
    }
}
