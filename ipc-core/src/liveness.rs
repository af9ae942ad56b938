//! Who is alive: a process identified by its pid *and* its start time, so a recycled pid is not
//! mistaken for the process that used to hold it.

use serde::{Deserialize, Serialize};

use crate::platform;

/// A process identity that survives pid reuse: the pid plus the process's start time in clock
/// ticks since boot (`/proc/<pid>/stat`, field 22).
///
/// ```
/// let me = ipc_core::ProcessIdentity::current();
/// assert!(me.is_alive());
/// assert_eq!(me.pid(), std::process::id());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pid: u32,
    start_time: u64,
}

impl ProcessIdentity {
    /// The calling process. Read from `/proc` once per process and cached (a forked child,
    /// whose pid differs, reads its own).
    pub fn current() -> Self {
        use crate::primitive::{AtomicU64, Ordering};
        // The pid the cache belongs to, and that process's start time.
        static CACHED_PID: AtomicU64 = AtomicU64::new(0);
        static CACHED_START: AtomicU64 = AtomicU64::new(0);
        let pid = platform::getpid();
        // ORDERING: Acquire, pairs with the Release store of the pid below: the start time
        // stored before it is visible once the pid matches.
        if CACHED_PID.load(Ordering::Acquire) == u64::from(pid) {
            // ORDERING: Relaxed, ordered by the Acquire above.
            return Self {
                pid,
                start_time: CACHED_START.load(Ordering::Relaxed),
            };
        }
        // Our own /proc entry always exists while we run.
        let start_time = platform::process_start_time(pid).unwrap_or(0);
        // ORDERING: Relaxed, published by the Release store of the pid that follows. Two
        // threads racing here store the same values.
        CACHED_START.store(start_time, Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire above.
        CACHED_PID.store(u64::from(pid), Ordering::Release);
        Self { pid, start_time }
    }

    /// The running process `pid`, if it exists now.
    pub fn of_pid(pid: u32) -> Option<Self> {
        platform::process_start_time(pid).map(|start_time| Self { pid, start_time })
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

    /// Whether this very process is still running: the pid exists, is not a zombie, and started
    /// at the recorded time.
    pub fn is_alive(&self) -> bool {
        self.pid != 0 && platform::process_start_time(self.pid) == Some(self.start_time)
    }
}
