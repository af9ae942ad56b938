//! What the state machines need from the operating system, behind the [`Park`] trait so that the
//! loom model can replace it: futex wait/wake and the liveness of a process. The real
//! implementation is in `os.rs`.

use std::time::{Duration, Instant};

use crate::primitive::{AtomicU32, AtomicU64};

/// How long one sleep of a blocking call lasts at most before it re-checks its peers' liveness.
pub(crate) const SLICE: Duration = Duration::from_millis(25);

/// The pid bits of an identity word (Linux pids stay below 2^22).
pub(crate) const PID_MASK: u32 = 0x3fff_ffff;

/// The caller's process identity, as written into lock words and barrier slots: one 64-bit
/// word, the pid in the low half and the start-time tag in the high half, so that both are
/// published and cleared by one atomic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Me {
    /// The process id, non-zero and within [`PID_MASK`].
    pub(crate) pid: u32,
    /// The low 32 bits of the process start time (`ipc_core::ProcessIdentity::start_tag`).
    pub(crate) tag: u32,
}

impl Me {
    /// The identity word: `tag << 32 | pid`.
    #[inline]
    pub(crate) fn word(self) -> u64 {
        (u64::from(self.tag) << 32) | u64::from(self.pid)
    }

    /// Whether the identity word `w` names this process (bits outside the pid and the tag,
    /// such as a lock's `WAITERS`, are ignored).
    #[inline]
    pub(crate) fn is(self, w: u64) -> bool {
        pid_of(w) == self.pid && tag_of(w) == self.tag
    }
}

/// The pid recorded in an identity word (0: nobody).
#[inline]
pub(crate) fn pid_of(w: u64) -> u32 {
    (w as u32) & PID_MASK
}

/// The start-time tag recorded in an identity word.
#[inline]
pub(crate) fn tag_of(w: u64) -> u32 {
    (w >> 32) as u32
}

/// What the kernel says about a recorded process (`ipc_core::Liveness`, repeated here so that
/// the state machines build without ipc-core under loom).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The process runs (or is stopped) and its start time matches the tag.
    Alive,
    /// The kernel says it is gone: no such pid, a zombie, or the pid runs under another start
    /// time (it was recycled). The only answer on which anything is taken from it.
    Dead,
    /// The kernel could not be asked (out of descriptors, no permission, `/proc` hidden):
    /// treated exactly as `Alive`.
    Unknown,
}

/// Blocking and liveness, as the state machines see them.
pub(crate) trait Park {
    /// Sleeps while `*word == expected`, until `deadline`; returns `true` if the deadline passed.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Instant) -> bool;
    /// Wakes up to `n` sleepers on `word`.
    fn wake(&self, word: &AtomicU32, n: u32);
    /// Sleeps while the low 32 bits of `*word` equal `expected`, until `deadline`; returns
    /// `true` if the deadline passed.
    fn wait_low(&self, word: &AtomicU64, expected: u32, deadline: Instant) -> bool;
    /// Wakes up to `n` sleepers of [`wait_low`](Self::wait_low) on `word`.
    fn wake_low(&self, word: &AtomicU64, n: u32);
    /// What the kernel says of the process `pid` whose start time has the low bits `tag`.
    fn liveness(&self, pid: u32, tag: u32) -> Liveness;
    /// The longest single sleep.
    fn slice(&self) -> Duration {
        SLICE
    }
}

/// Where an async form asks to be woken, as the state machines see it: the real one registers
/// the task's waker with `ipc_core::raw::reactor` (`os.rs`); the loom model records the request
/// and sleeps on the model futex in its place.
///
/// A poll step arms at most once before it returns `Pending`, with the value it read from the
/// word before its last check of the condition (after announcing itself to the wakers). Every
/// arm is *sliced*: besides a change of the word and the `deadline`, the task (or, of many tasks
/// on one word, the oldest) is woken once per `slice`, to re-check its peers.
pub(crate) trait Arm {
    /// Wake the task when `*word != expected` (or the word is woken), at `deadline`, or at the
    /// word's next slice.
    fn arm(&mut self, word: &AtomicU32, expected: u32, deadline: Option<Instant>, slice: Duration);
    /// As `arm`, when the low 32 bits of `*word` differ from `expected`.
    fn arm_low(
        &mut self,
        word: &AtomicU64,
        expected: u32,
        deadline: Option<Instant>,
        slice: Duration,
    );
}

/// The end of the current slice of an async wait: kept across polls (so that spurious wake-ups
/// do not postpone a liveness check), renewed once it has passed. Returns it and whether the
/// previous one had passed (a whole slice went by: time to check the peers).
pub(crate) fn renew_slice(slice_end: &mut Option<Instant>, slice: Duration) -> (Instant, bool) {
    let now = Instant::now();
    match *slice_end {
        Some(e) if e > now => (e, false),
        Some(_) => {
            let e = now + slice;
            *slice_end = Some(e);
            (e, true)
        }
        None => {
            let e = now + slice;
            *slice_end = Some(e);
            (e, false)
        }
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

/// The deadline `timeout` from now; a timeout too long for the clock (`Duration::MAX`) is about
/// 34 years, never a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 30)))
        .unwrap_or(now)
}
