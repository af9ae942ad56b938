//! Async tests: executors, single polls, and counting tasks that went pending.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ipc_core::raw::atomic::AtomicU32;

use crate::wait::{WATCHDOG, watchdog};

/// Polls a future to completion on this thread, parking between polls (for `.await`ing a
/// future from a plain test).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A multi-thread tokio runtime of two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A current-thread tokio runtime.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs the future `make()` builds on each executor in turn (`futures::executor`, a
/// current-thread and a multi-thread tokio runtime; a fresh one each time, the future spawned as
/// a task on the last), each under a watchdog of `limit`.
pub fn on_every_executor<F, Fut>(limit: Duration, make: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let make = Arc::new(make);
    let m = Arc::clone(&make);
    watchdog(limit, move || futures::executor::block_on(m()));
    let m = Arc::clone(&make);
    watchdog(limit, move || current_thread().block_on(m()));
    watchdog(limit, move || {
        runtime().block_on(async move { tokio::spawn(make()).await.expect("the task") })
    });
}

/// Runs `f`'s future on `futures::executor` and on a current-thread tokio runtime (executors that
/// poll a task on one thread), under [`WATCHDOG`].
pub fn on_one_thread_executors<Fut: Future<Output = ()>>(f: impl Fn() -> Fut + Send + 'static) {
    watchdog(WATCHDOG, move || {
        futures::executor::block_on(f());
        current_thread().block_on(f());
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

/// Awaits `fut`, adding one to `polls` at every poll: the measure of an idle test (a task
/// polled without news is busy polling).
pub async fn counting_polls<F: Future>(fut: F, polls: &AtomicU32) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        // ORDERING: Relaxed, a counter the test thread reads; it publishes nothing.
        polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        fut.as_mut().poll(cx)
    })
    .await
}

/// The slice of the workspace's waits: an awaited word's slice timer wakes one of its tasks
/// once per slice (or up to half a slice later) to check its peers.
const SLICE: Duration = Duration::from_millis(20);

/// Checks a window of `wall` in which a process's awaiting tasks had no news: they were polled
/// `polls` times, awaiting `words` distinct words, and the process used `cpu` of CPU time.
///
/// Each awaited word's slice timer wakes one task per slice, so an idle process polls its tasks
/// about `words` times a slice, however many tasks await each word; twice that, plus two
/// slices, is allowed (a wake-up that races a slice's end). A task polled more often is busy
/// polling, on any machine, loaded or not. The CPU time is checked too, against half a CPU, for
/// a thread that spins without polling any task (a spinning thread uses about a whole CPU; the
/// idle work itself a few percent of one, more on a loaded machine, which the bound leaves
/// room for: the poll count is the precise measure).
pub fn assert_idle(what: &str, polls: u32, words: u32, cpu: Duration, wall: Duration) {
    let slices = (wall.as_nanos() / SLICE.as_nanos()) as u32;
    let allowed = 2 * words * (slices + 2);
    let ratio = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "{what}: {polls} polls in {wall:?} ({allowed} allowed for {words} words), \
         {cpu:?} of CPU ({ratio:.4})"
    );
    assert!(
        polls <= allowed,
        "busy polling: {polls} polls of the idle tasks in {wall:?} ({allowed} allowed)"
    );
    assert!(
        ratio < 0.5,
        "busy waiting: {cpu:?} of CPU in {wall:?} while the tasks were idle"
    );
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

/// CPU time (user + system) of this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for the call.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
