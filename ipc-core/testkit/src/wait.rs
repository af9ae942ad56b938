//! Bounded waits: no test hangs, and none asserts a maximum run time (every limit here is a
//! watchdog, far above any expected run time).

use std::fmt::Debug;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest a test waits for anything, unless it names a limit of its own.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Polls `cond` every 2 ms until it holds or `limit` passes; the time it took, or `None`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Polls `cond` every 2 ms until it holds; panics (naming `what`) after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `left` every 20 ms until it returns nothing; panics with `what` and what is still left
/// after `limit` (for cleanups that finish asynchronously, such as a dead creator's segments).
pub fn wait_until_none_left<T: Debug>(
    limit: Duration,
    what: &str,
    mut left: impl FnMut() -> Vec<T>,
) {
    let deadline = Instant::now() + limit;
    loop {
        let now_left = left();
        if now_left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {now_left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` on a thread and returns its result, or fails the test after `limit`.
pub fn watchdog<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("watchdog: the operation did not finish")
}

/// Aborts the whole test binary if the test is still running after `limit` (for tests whose
/// hang cannot be bounded from the outside, such as a blocked network call; the children see
/// their parent go and end). Disarmed when dropped.
#[derive(Debug)]
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    /// Arms a watchdog naming `what`.
    pub fn arm(limit: Duration, what: &'static str) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}
