//! Helpers of the async tests: every executor in turn, one poll with a no-op waker, counting
//! tasks that went pending, and bounded waits for a condition.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ipc_core::raw::atomic::AtomicU32;

/// A multi-thread tokio runtime of two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the future `make()` builds on each executor in turn (`futures::executor`, a
/// current-thread and a multi-thread tokio runtime; a fresh one each time), each under a
/// watchdog of `limit`.
pub fn on_every_executor<F, Fut>(limit: Duration, make: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let make = Arc::new(make);
    let m = Arc::clone(&make);
    super::watchdog(limit, move || futures::executor::block_on(m()));
    let m = Arc::clone(&make);
    super::watchdog(limit, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(m())
    });
    super::watchdog(limit, move || {
        runtime().block_on(async move { tokio::spawn(make()).await.unwrap() })
    });
}

/// Polls `fut` once with a waker that does nothing.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `fut` once with a waker that does nothing; `true` if it is still pending. Used to
/// bring a future to an await point before dropping it.
pub fn pending_after_one_poll<F: Future>(fut: Pin<&mut F>) -> bool {
    poll_once(fut).is_pending()
}

/// Awaits `fut`, adding one to `pending` the first time it returns `Pending`.
pub async fn counting_pending<F: Future>(fut: F, pending: &AtomicU32) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut counted = false;
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Pending => {
            if !counted {
                counted = true;
                // ORDERING: Relaxed, a counter the test thread polls; it publishes nothing.
                pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Poll::Pending
        }
        ready => ready,
    })
    .await
}

/// Waits (at most `limit`) until `counter` reaches `n`.
pub fn wait_for_count(limit: Duration, counter: &AtomicU32, n: u32) {
    let end = Instant::now() + limit;
    // ORDERING: Relaxed, as in `counting_pending`.
    while counter.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(Instant::now() < end, "the tasks never all waited");
        std::thread::yield_now();
    }
}

/// Polls `cond` until it holds, at most `limit` (a watchdog, not a timing assertion).
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
