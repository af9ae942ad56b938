//! Cross-process blocking: futex wait/wake on a `u32` in shared memory.
//!
//! The futex is the shared kind (no `FUTEX_PRIVATE_FLAG`), so a waiter in one process is woken by
//! a waker in another, whatever address each has the page mapped at. Timeouts are measured on
//! the monotonic clock. [`Futex`] pairs the word with a waiter count so that a waker pays the wake
//! syscall only when somebody announced that it sleeps. [`wait_any`] sleeps on several words
//! at once (`futex_waitv`), and on descriptors beside them (a process's pidfd), as
//! `multiprocessing.connection.wait` needs.
//!
//! ## The waiter-count protocol
//!
//! | side   | steps                                                                   |
//! |--------|-------------------------------------------------------------------------|
//! | waiter | `waiters += 1` (SeqCst); kernel re-checks `value == expected`; sleep; `waiters -= 1` |
//! | waker  | change `value`; `fence(SeqCst)`; if `waiters > 0` then `FUTEX_WAKE`          |
//!
//! Either the waker sees the waiter's increment and wakes it, or the waiter's kernel check sees
//! the new value and does not sleep (the classic store-buffer pair, ordered by the two SeqCst
//! operations). A waiter killed while asleep leaves the count one too high: wakers then make a
//! syscall that finds nobody, which costs time but never correctness.

use std::fmt;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::platform::{self, FutexWait, FutexWaitv};
use crate::primitive::{AtomicU32, AtomicU64, Ordering, fence};

/// The longest single sleep of [`Futex::wait_while`]: a missed wake-up costs at most this.
pub const SLICE: Duration = Duration::from_millis(50);

/// Why one wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitResult {
    /// Woken (or spuriously returned): re-check the condition.
    Woken,
    /// The word no longer held the expected value, so the wait did not sleep.
    ValueChanged,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, at most until `deadline` (`None`: no limit). Returns at once
/// with [`WaitResult::ValueChanged`] if the word already differs.
///
/// Spurious returns happen: callers loop on their own condition.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    let timeout = match deadline {
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => return WaitResult::TimedOut,
        },
        None => None,
    };
    match platform::futex_wait(word, expected, timeout) {
        FutexWait::Woken => WaitResult::Woken,
        FutexWait::ValueChanged => WaitResult::ValueChanged,
        FutexWait::TimedOut => WaitResult::TimedOut,
    }
}

/// Wakes up to `count` processes or threads sleeping on `word`; returns how many woke.
pub fn wake(word: &AtomicU32, count: u32) -> usize {
    platform::futex_wake(word, count)
}

/// The address of the half of a 64-bit word that holds its low 32 bits.
pub(crate) fn low_half(word: &AtomicU64) -> *const u32 {
    let base = word.as_ptr().cast::<u32>().cast_const();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// Like [`wait`], on the low 32 bits of a 64-bit word: sleeps while `word as u32 == expected`.
///
/// For state words that keep a futex value in their low half and more state beside it (a lock
/// holder's pid with its start-time tag, updated together by one 64-bit compare-and-swap).
/// Changes of the high half alone do not end the sleep: callers sleep in bounded slices.
pub fn wait_low(word: &AtomicU64, expected: u32, deadline: Option<Instant>) -> WaitResult {
    let timeout = match deadline {
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => return WaitResult::TimedOut,
        },
        None => None,
    };
    match platform::futex_wait_at(low_half(word), expected, timeout) {
        FutexWait::Woken => WaitResult::Woken,
        FutexWait::ValueChanged => WaitResult::ValueChanged,
        FutexWait::TimedOut => WaitResult::TimedOut,
    }
}

/// Wakes up to `count` sleepers of [`wait_low`] on `word`; returns how many woke.
pub fn wake_low(word: &AtomicU64, count: u32) -> usize {
    platform::futex_wake_at(low_half(word), count)
}

/// The longest nap of [`wait_any`] on a kernel without `futex_waitv` (before Linux 5.16): it then
/// sleeps in naps of this length and returns, so that its caller re-checks.
pub const NAP: Duration = Duration::from_millis(1);

/// Sleeps until one of `words` is woken or no longer holds its expected value, one of `fds`
/// becomes readable (or hangs up), or `deadline` passes (`None`: no limit). Returns at once with
/// [`WaitResult::Woken`] if a descriptor is readable already.
///
/// This is what Python's `multiprocessing.connection.wait` needs: shared-memory objects announce
/// news on futex words, processes announce their end on descriptors (a pidfd, `Process::sentinel`).
/// The words are shared futexes, as in [`wait`], slept on together with `futex_waitv` (Linux
/// 5.16+). When descriptors come with words, a helper thread polls the descriptors for the
/// length of the call and wakes the sleeper through a word of its own, so both kinds wake it at
/// once; the helper is gone when the call returns. On a kernel without `futex_waitv` (or with more
/// than 128 words) it naps at most [`NAP`] and returns `Woken`.
///
/// Spurious returns happen: callers loop on their own condition.
///
/// ```
/// use ipc_core::raw::futex::{WaitResult, wait_any};
/// use ipc_core::raw::sync::AtomicU32;
/// use std::time::{Duration, Instant};
///
/// let (a, b) = (AtomicU32::new(0), AtomicU32::new(7));
/// // `b` does not hold 6: no sleep.
/// assert_eq!(wait_any(&[(&a, 0), (&b, 6)], &[], None), WaitResult::ValueChanged);
/// let soon = Some(Instant::now() + Duration::from_millis(5));
/// assert_ne!(wait_any(&[(&a, 0), (&b, 7)], &[], soon), WaitResult::ValueChanged);
/// ```
pub fn wait_any(
    words: &[(&AtomicU32, u32)],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> WaitResult {
    let timeout = match deadline {
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => return WaitResult::TimedOut,
        },
        None => None,
    };
    let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    if !raw.is_empty() && platform::poll_readable(&raw, Some(Duration::ZERO)) {
        return WaitResult::Woken;
    }
    if raw.is_empty() {
        return sleep_words(words, timeout);
    }
    if words.is_empty() {
        return if platform::poll_readable(&raw, timeout) {
            WaitResult::Woken
        } else {
            WaitResult::TimedOut
        };
    }
    // Both kinds: a helper thread polls the descriptors (and a pipe that cancels it) and wakes
    // us through `woken`, which we sleep on beside the caller's words.
    let Ok((cancel_rx, mut cancel_tx)) = platform::pipe() else {
        return nap(timeout);
    };
    let woken = AtomicU32::new(0);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("ipc-wait-any".into())
            .spawn_scoped(scope, || {
                let mut set = raw.clone();
                set.push(cancel_rx.as_raw_fd());
                platform::poll_readable(&set, timeout);
                // ORDERING: Release, pairs with the kernel's read of the word in `futex_waitv`
                // (which sees it or is woken below); publishes nothing else.
                woken.store(1, Ordering::Release);
                platform::futex_wake(&woken, 1);
            });
        if helper.is_err() {
            return nap(timeout);
        }
        let mut all: Vec<(&AtomicU32, u32)> = words.to_vec();
        all.push((&woken, 0));
        let r = sleep_words(&all, timeout);
        // Ends the helper's poll; the scope joins it.
        let _ = cancel_tx.write_all(&[1]);
        r
    })
}

/// Whether `fd` is readable (or hung up) right now, without waiting: a pidfd once its process
/// has ended, a pipe or socket with data or a closed writer.
///
/// ```
/// use std::os::fd::AsFd;
///
/// let file = std::fs::File::open("/dev/null")?;
/// assert!(ipc_core::raw::futex::is_readable(file.as_fd()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn is_readable(fd: BorrowedFd<'_>) -> bool {
    platform::poll_readable(&[fd.as_raw_fd()], Some(Duration::ZERO))
}

/// Sleeps on `words` (at least one) with `futex_waitv`, or naps without it.
fn sleep_words(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> WaitResult {
    match platform::futex_waitv(words, timeout) {
        FutexWaitv::Woken => WaitResult::Woken,
        FutexWaitv::ValueChanged => WaitResult::ValueChanged,
        FutexWaitv::TimedOut => WaitResult::TimedOut,
        FutexWaitv::Unsupported => match words {
            [] => nap(timeout),
            [(word, expected)] => match platform::futex_wait(word, *expected, timeout) {
                FutexWait::Woken => WaitResult::Woken,
                FutexWait::ValueChanged => WaitResult::ValueChanged,
                FutexWait::TimedOut => WaitResult::TimedOut,
            },
            _ => {
                // ORDERING: Relaxed, a quick look before napping; the caller re-checks with
                // its own orderings.
                if words.iter().any(|(w, v)| w.load(Ordering::Relaxed) != *v) {
                    return WaitResult::ValueChanged;
                }
                nap(timeout)
            }
        },
    }
}

fn nap(timeout: Option<Duration>) -> WaitResult {
    std::thread::sleep(timeout.map_or(NAP, |t| t.min(NAP)));
    WaitResult::Woken
}

/// A futex word with a waiter count, laid out for shared memory (`#[repr(C)]`, 8 bytes, all
/// bit patterns valid).
///
/// ```
/// use ipc_core::raw::futex::Futex;
/// use std::time::{Duration, Instant};
///
/// let f = Futex::new(0);
/// // Nobody will change the word: the wait ends at its deadline.
/// let r = f.wait_while(|v| v == 0, Some(Instant::now() + Duration::from_millis(5)));
/// assert!(r.is_err());
/// f.store_and_wake_all(1);
/// assert_eq!(f.wait_while(|v| v == 0, None), Ok(1));
/// ```
#[repr(C)]
pub struct Futex {
    pub(crate) value: AtomicU32,
    pub(crate) waiters: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Futex>() == 8);

/// A deadline passed before the condition became false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

impl fmt::Debug for Futex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Futex")
            // ORDERING: Relaxed, a diagnostic snapshot that publishes nothing.
            .field("value", &self.value.load(Ordering::Relaxed))
            // ORDERING: Relaxed, a diagnostic snapshot that publishes nothing.
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

impl Futex {
    /// A futex word holding `value` with no waiters.
    pub const fn new(value: u32) -> Self {
        Self {
            value: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
        }
    }

    /// The word itself, for compare-and-swap protocols built on top.
    pub fn word(&self) -> &AtomicU32 {
        &self.value
    }

    /// Loads the word with `Acquire`.
    pub fn load(&self) -> u32 {
        // ORDERING: Acquire, pairs with the Release (or SeqCst) store of whoever changed the word,
        // so the caller sees what was written before it.
        self.value.load(Ordering::Acquire)
    }

    /// Sleeps once while the word equals `expected`, announcing itself in the waiter count.
    pub fn wait(&self, expected: u32, deadline: Option<Instant>) -> WaitResult {
        // ORDERING: SeqCst, pairs with the SeqCst fence in `wake_*`: either the waker sees this
        // increment or the kernel's check below sees the waker's new value.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let r = wait(&self.value, expected, deadline);
        // ORDERING: Relaxed, only a hint for wakers; a stale count costs one syscall.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        r
    }

    /// Sleeps in bounded slices while `blocked(current value)` holds, until `deadline`. Returns
    /// the first value for which `blocked` is false.
    ///
    /// Each sleep lasts at most [`SLICE`] and the word is re-read after it, so even a wake that
    /// never comes (a waker that skipped the syscall because a peer corrupted the waiter count)
    /// delays the caller by one slice, never forever.
    pub fn wait_while(
        &self,
        mut blocked: impl FnMut(u32) -> bool,
        deadline: Option<Instant>,
    ) -> Result<u32, TimedOut> {
        loop {
            let v = self.load();
            if !blocked(v) {
                return Ok(v);
            }
            let slice_end = Instant::now() + SLICE;
            let this = match deadline {
                Some(d) if d <= slice_end => Some(d),
                _ => Some(slice_end),
            };
            if self.wait(v, this) == WaitResult::TimedOut
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                let v = self.load();
                return if blocked(v) { Err(TimedOut) } else { Ok(v) };
            }
        }
    }

    /// Like [`wait_while`](Self::wait_while), but sleeps at most `slice` at a time and calls
    /// `check` between slices; `check` returning `Err` ends the wait with that error. Use it to
    /// re-check a peer's liveness so that no wait outlasts a dead peer.
    pub fn wait_while_checked<E>(
        &self,
        mut blocked: impl FnMut(u32) -> bool,
        deadline: Option<Instant>,
        slice: Duration,
        mut check: impl FnMut() -> Result<(), E>,
    ) -> Result<Result<u32, TimedOut>, E> {
        loop {
            let now = Instant::now();
            let slice_end = now + slice;
            let this_deadline = match deadline {
                Some(d) if d <= slice_end => Some(d),
                _ => Some(slice_end),
            };
            match self.wait_while(&mut blocked, this_deadline) {
                Ok(v) => return Ok(Ok(v)),
                Err(TimedOut) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(Err(TimedOut));
                    }
                    check()?;
                }
            }
        }
    }

    /// Stores `value` with `Release` and wakes every waiter (if any announced itself).
    pub fn store_and_wake_all(&self, value: u32) {
        // ORDERING: Release, pairs with the Acquire in `load`: publishes what the caller wrote
        // before this store.
        self.value.store(value, Ordering::Release);
        self.wake_all();
    }

    /// Wakes one waiter, if any announced itself. Call after changing the word.
    pub fn wake_one(&self) -> usize {
        if self.has_waiters() {
            wake(&self.value, 1)
        } else {
            0
        }
    }

    /// Wakes every waiter, if any announced itself. Call after changing the word.
    pub fn wake_all(&self) -> usize {
        if self.has_waiters() {
            wake(&self.value, i32::MAX as u32)
        } else {
            0
        }
    }

    fn has_waiters(&self) -> bool {
        // ORDERING: SeqCst fence, pairs with the SeqCst increment in `wait`: orders the caller's
        // change of the word before the waiter-count load (store-buffer pattern).
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        self.waiters.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_times_out_on_unchanged_word() {
        let f = Futex::new(3);
        let start = Instant::now();
        let r = f.wait_while(|v| v == 3, Some(start + Duration::from_millis(20)));
        assert_eq!(r, Err(TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wait_returns_at_once_when_value_differs() {
        let f = Futex::new(1);
        assert_eq!(f.wait(0, None), WaitResult::ValueChanged);
    }

    #[test]
    fn wake_skips_syscall_without_waiters() {
        let f = Futex::new(0);
        assert_eq!(f.wake_all(), 0);
    }

    #[test]
    fn thread_is_woken() {
        let f = Arc::new(Futex::new(0));
        let g = Arc::clone(&f);
        let t = std::thread::spawn(move || g.wait_while(|v| v == 0, None));
        std::thread::sleep(Duration::from_millis(20));
        f.store_and_wake_all(7);
        assert_eq!(t.join().unwrap(), Ok(7));
    }

    #[test]
    fn a_64_bit_word_sleeps_on_its_low_half() {
        let w = Arc::new(AtomicU64::new(7 | (9 << 32)));
        // The low half differs from `expected`: no sleep.
        assert_eq!(wait_low(&w, 8, None), WaitResult::ValueChanged);
        let v = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            // ORDERING: Relaxed, the test only needs the value to change.
            while v.load(Ordering::Relaxed) as u32 == 7 {
                wait_low(&v, 7, Some(Instant::now() + Duration::from_secs(5)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        // ORDERING: Relaxed, as above.
        w.store(8, Ordering::Relaxed);
        wake_low(&w, 1);
        t.join().unwrap();
    }

    #[test]
    fn wait_any_wakes_on_any_word() {
        let words = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let w = Arc::clone(&words);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            // ORDERING: Relaxed, the test only needs the value to change.
            w.1.store(1, Ordering::Relaxed);
            wake(&w.1, 1);
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        // ORDERING: Relaxed, as above.
        while words.1.load(Ordering::Relaxed) == 0 {
            let r = wait_any(&[(&words.0, 0), (&words.1, 0)], &[], Some(deadline));
            assert_ne!(r, WaitResult::TimedOut);
        }
        t.join().unwrap();
    }

    #[test]
    fn wait_any_wakes_on_a_readable_descriptor_beside_words() {
        use std::os::fd::AsFd;
        let word = AtomicU32::new(0);
        let (rx, mut tx) = platform::pipe().unwrap();
        assert!(!is_readable(rx.as_fd()));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.write_all(b"x").unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_readable(rx.as_fd()) {
            let r = wait_any(&[(&word, 0)], &[rx.as_fd()], Some(deadline));
            assert_ne!(r, WaitResult::TimedOut);
        }
        t.join().unwrap();
        // Readable already: no sleep at all, with or without words.
        assert_eq!(
            wait_any(&[(&word, 0)], &[rx.as_fd()], None),
            WaitResult::Woken
        );
        assert_eq!(wait_any(&[], &[rx.as_fd()], None), WaitResult::Woken);
    }

    #[test]
    fn checked_wait_stops_on_check_error() {
        let f = Futex::new(0);
        let mut calls = 0;
        let r = f.wait_while_checked(
            |v| v == 0,
            None,
            Duration::from_millis(2),
            || {
                calls += 1;
                if calls == 3 { Err("peer died") } else { Ok(()) }
            },
        );
        assert_eq!(r, Err("peer died"));
    }
}
