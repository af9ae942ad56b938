//! `Process::join_async`: the async form of `join`, for any executor.
//!
//! A child's end shows on descriptors, not on a futex word: its pidfd becomes readable (or,
//! for a fork-server child, the server's status pipe does), and its result arrives on the
//! result channel, which must be read while the child writes (a result larger than the socket
//! buffer would block the child otherwise). So the future registers those descriptors with the
//! reactor's descriptor watcher ([`Registration::arm_fd`]: one `poll` thread per process,
//! started on first use, beside the futex waiter threads), and on each wake-up does what one
//! turn of the blocking `join` does without blocking: read the channel, ask whether the child
//! ended. Without a pidfd (a kernel before 5.3) the end can only be polled, and the future asks
//! again every 10 ms, as the blocking `join` does.

use std::future::Future;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{JoinError, Process};
use crate::raw::reactor::Registration;

/// How long a wait on the descriptors lasts at most before the child is asked about directly.
const FD_SLICE: Duration = Duration::from_millis(100);
/// How often a child without a pidfd is asked whether it ended.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// The future of [`Process::join_async`].
struct Join<'a, R> {
    process: &'a Process<R>,
    deadline: Option<Instant>,
    channel: Registration,
    end: Registration,
}

/// A descriptor number the caller keeps open while the registration that uses it is armed.
fn borrowed(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the descriptors are the child's result channel and pidfd (or status pipe), owned
    // by the `Process` the future borrows, which keeps them open as long as it lives; a
    // registration only keeps the number (a number closed meanwhile costs a spurious wake-up).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

impl<R: DeserializeOwned> Future for Join<'_, R> {
    type Output = Result<R, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.process.inner.lock();
        let Some(running) = state.running.as_mut() else {
            return Poll::Ready(Err(JoinError::NotStarted));
        };
        if let Err(e) = running.refresh() {
            return Poll::Ready(Err(e.into()));
        }
        if running.ended() {
            this.channel.disarm();
            this.end.disarm();
            return Poll::Ready(this.process.collect(state));
        }
        let now = Instant::now();
        if this.deadline.is_some_and(|d| now >= d) {
            return Poll::Ready(Err(JoinError::Timeout));
        }
        let (channel, end) = running.watch_fds();
        drop(state);
        let slice = if end.is_some() { FD_SLICE } else { POLL_SLICE };
        let until = this.deadline.map_or(now + slice, |d| d.min(now + slice));
        match channel {
            Some(fd) => this.channel.arm_fd(borrowed(fd), until, cx.waker()),
            None => this.channel.disarm(),
        }
        match end {
            Some(fd) => this.end.arm_fd(borrowed(fd), until, cx.waker()),
            None => this.end.arm_timer(until, cx.waker()),
        }
        Poll::Pending
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// The async form of [`join`](Self::join): a future that waits for the child to end and
    /// returns its result, for any executor. It costs no thread of the caller's: the child's
    /// pidfd and result channel are watched by one thread per process (see
    /// [`raw::reactor`](crate::raw::reactor)), and the channel is read as the child writes, as
    /// `join` does. Dropping the future leaves the child running and joinable.
    ///
    /// ```no_run
    /// use ipc_core::Process;
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let p = Process::new(square, 7);
    /// p.start()?;
    /// assert_eq!(futures::executor::block_on(p.join_async())?, 49);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "join")]
    pub fn join_async(&self) -> impl Future<Output = Result<R, JoinError>> + Send + '_ {
        self.join_until_async(None)
    }

    /// The async form of [`join_timeout`](Self::join_timeout): [`JoinError::Timeout`] if the
    /// child still runs `timeout` after this call (it keeps running, and can still be joined).
    #[doc(alias = "join")]
    pub fn join_timeout_async(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, JoinError>> + Send + '_ {
        self.join_until_async(Some(Instant::now() + timeout))
    }

    fn join_until_async(
        &self,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<R, JoinError>> + Send + '_ {
        Join {
            process: self,
            deadline,
            channel: Registration::new(),
            end: Registration::new(),
        }
    }
}
