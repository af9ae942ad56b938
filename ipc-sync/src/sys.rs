//! What the state machines need from the operating system, behind the [`Park`] trait so that the
//! loom model can replace it: futex wait/wake and the liveness of a process. The real
//! implementation is in `os.rs`.

use std::time::{Duration, Instant};

use crate::primitive::AtomicU32;

/// How long one sleep of a blocking call lasts at most before it re-checks its peers' liveness.
pub(crate) const SLICE: Duration = Duration::from_millis(25);

/// The caller's process identity, as written into lock state words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Me {
    /// The process id (always below 2^22 on Linux).
    pub(crate) pid: u32,
    /// The process start time (see `ipc_core::ProcessIdentity`).
    pub(crate) start: u64,
}

/// What a liveness check found for a recorded holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// A process with this pid runs and started at the recorded time.
    Alive,
    /// No process with this pid runs: the holder is gone.
    Dead,
    /// A process with this pid runs but started at another time: either the pid was recycled
    /// (the holder is gone) or the holder has not written its start time yet.
    Mismatch,
}

/// Blocking and liveness, as the state machines see them.
pub(crate) trait Park {
    /// Sleeps while `*word == expected`, until `deadline`; returns `true` if the deadline passed.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Instant) -> bool;
    /// Wakes up to `n` sleepers on `word`.
    fn wake(&self, word: &AtomicU32, n: u32);
    /// Whether the process `pid` that started at `start` still runs.
    fn liveness(&self, pid: u32, start: u64) -> Liveness;
    /// The longest single sleep.
    fn slice(&self) -> Duration {
        SLICE
    }
}

/// The earlier of a deadline and the end of the next slice.
pub(crate) fn slice_end(deadline: Option<Instant>, slice: Duration) -> Instant {
    let end = Instant::now() + slice;
    match deadline {
        Some(d) if d < end => d,
        _ => end,
    }
}

/// Whether a deadline has passed.
pub(crate) fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}
