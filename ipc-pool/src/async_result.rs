//! `AsyncResult<T>`: the result of a task submitted to a pool, Python's `AsyncResult` and a
//! `std::future::Future` in one.
//!
//! It is generic over the error a task fails with (`E`, [`TaskError`] by default) so that other
//! pools built on this crate (`ipc-cluster`'s, whose errors name a host) hand out the same type:
//! a [`ResultSlot`] is the producing side, fulfilled once by whoever collects the result.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::TaskError;

/// A callback run with the value of a task that succeeded.
pub type SuccessCallback<T> = Box<dyn FnOnce(&T) + Send>;
/// A callback run with the error of a task that failed.
pub type ErrorCallback<E = TaskError> = Box<dyn FnOnce(&E) + Send>;

/// What a task's error type gives an [`AsyncResult`]: the error of a result already taken out.
pub trait TaskFailure {
    /// The result was already taken out (by `.await` or an earlier `get`).
    fn result_taken() -> Self;
}

struct SlotState<T, E> {
    outcome: Option<Result<T, E>>,
    waker: Option<Waker>,
    on_success: Option<SuccessCallback<T>>,
    on_error: Option<ErrorCallback<E>>,
}

/// The producing side of an [`AsyncResult`]: fulfilled once, by whoever collects the task's
/// outcome (a pool's result thread), which runs the matching callback and wakes every waiter.
pub struct ResultSlot<T, E = TaskError> {
    state: Mutex<SlotState<T, E>>,
    ready: Condvar,
}

impl<T, E> fmt::Debug for ResultSlot<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultSlot")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl<T, E> ResultSlot<T, E> {
    /// An empty slot, with the callbacks `fulfil` runs (Python's `callback` and
    /// `error_callback`).
    pub fn new(
        on_success: Option<SuccessCallback<T>>,
        on_error: Option<ErrorCallback<E>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState {
                outcome: None,
                waker: None,
                on_success,
                on_error,
            }),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<T, E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers the outcome once (later deliveries are ignored), runs the matching callback in
    /// the calling (result-handling) thread, and wakes every waiter. A callback that panics
    /// does not keep the outcome from its waiters: it is delivered, then the panic resumes.
    pub fn fulfil(&self, outcome: Result<T, E>) {
        let mut st = self.lock();
        if st.outcome.is_some() {
            return;
        }
        let (ok_cb, err_cb) = (st.on_success.take(), st.on_error.take());
        let called = match &outcome {
            Ok(v) => ok_cb.map(|cb| std::panic::catch_unwind(AssertUnwindSafe(|| cb(v)))),
            Err(e) => err_cb.map(|cb| std::panic::catch_unwind(AssertUnwindSafe(|| cb(e)))),
        };
        st.outcome = Some(outcome);
        let waker = st.waker.take();
        drop(st);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(Err(panic)) = called {
            std::panic::resume_unwind(panic);
        }
    }

    /// Whether the slot was fulfilled.
    pub fn is_ready(&self) -> bool {
        self.lock().outcome.is_some()
    }
}

/// The pending result of a task submitted with `apply_async`, `map_async` or `submit`.
///
/// Block with [`get`](Self::get) or [`get_timeout`](Self::get_timeout), poll with
/// [`ready`](Self::ready), or `.await` it: `AsyncResult` implements [`Future`].
///
/// ```no_run
/// use ipc_pool::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::builder().processes(2).build()?;
/// let r = pool.apply_async(square, 7)?;
/// assert_eq!(r.get()?, 49);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "an AsyncResult is how the task's result (or failure) comes back"]
#[doc(alias = "Future")]
pub struct AsyncResult<T, E = TaskError> {
    slot: Arc<ResultSlot<T, E>>,
}

impl<T, E> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

/// `get_timeout` ended at its timeout: the result is handed back, to wait on again.
pub struct Timeout<T, E = TaskError>(pub AsyncResult<T, E>);

impl<T, E> fmt::Debug for Timeout<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Timeout(..)")
    }
}

impl<T, E> fmt::Display for Timeout<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task's result was not ready before the timeout")
    }
}

impl<T, E> std::error::Error for Timeout<T, E> {}

/// Why [`AsyncResult::get_timeout`] returned no value.
#[non_exhaustive]
pub enum GetTimeoutError<T, E = TaskError> {
    /// Not ready yet; the result is handed back.
    Timeout(Timeout<T, E>),
    /// The task failed.
    Failed(E),
}

impl<T, E: fmt::Debug> fmt::Debug for GetTimeoutError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => t.fmt(f),
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<T, E: fmt::Display> fmt::Display for GetTimeoutError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => t.fmt(f),
            Self::Failed(e) => e.fmt(f),
        }
    }
}

impl<T, E: std::error::Error + 'static> std::error::Error for GetTimeoutError<T, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout(_) => None,
            Self::Failed(e) => Some(e),
        }
    }
}

impl<T, E> AsyncResult<T, E> {
    /// The result `slot` will be fulfilled with.
    pub fn from_slot(slot: Arc<ResultSlot<T, E>>) -> Self {
        Self { slot }
    }

    /// Whether the task has finished (successfully or not). Python's `ready()`.
    pub fn ready(&self) -> bool {
        self.slot.is_ready()
    }

    /// `Some(true)` if the task finished successfully, `Some(false)` if it failed, `None` while
    /// it runs. Python's `successful()` (which raises while the task runs).
    pub fn successful(&self) -> Option<bool> {
        self.slot.lock().outcome.as_ref().map(|o| o.is_ok())
    }

    /// Blocks until the task finishes.
    pub fn wait(&self) {
        let mut st = self.slot.lock();
        while st.outcome.is_none() {
            st = self.slot.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until the task finishes or `timeout` passes; returns whether it finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.slot.lock();
        while st.outcome.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            st = self
                .slot
                .ready
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl<T, E: TaskFailure> AsyncResult<T, E> {
    /// Blocks until the task finishes and returns its value, or why it failed.
    pub fn get(self) -> Result<T, E> {
        self.wait();
        self.take()
    }

    /// Like [`get`](Self::get), but gives up at `timeout`, handing the result back.
    pub fn get_timeout(self, timeout: Duration) -> Result<T, GetTimeoutError<T, E>> {
        if self.wait_timeout(timeout) {
            self.take().map_err(GetTimeoutError::Failed)
        } else {
            Err(GetTimeoutError::Timeout(Timeout(self)))
        }
    }

    fn take(&self) -> Result<T, E> {
        self.slot
            .lock()
            .outcome
            .take()
            .unwrap_or_else(|| Err(E::result_taken()))
    }
}

impl<T, E> Future for AsyncResult<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.slot.lock();
        match st.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitive::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[test]
    fn get_after_fulfil() {
        let slot = ResultSlot::<u32>::new(None, None);
        let r = AsyncResult::from_slot(Arc::clone(&slot));
        assert!(!r.ready());
        assert_eq!(r.successful(), None);
        slot.fulfil(Ok(5));
        slot.fulfil(Ok(6));
        assert!(r.ready());
        assert_eq!(r.successful(), Some(true));
        assert_eq!(r.get().unwrap(), 5);
    }

    #[test]
    fn timeout_hands_the_result_back() {
        let slot = ResultSlot::<u32>::new(None, None);
        let r = AsyncResult::from_slot(Arc::clone(&slot));
        let Err(GetTimeoutError::Timeout(Timeout(r))) = r.get_timeout(Duration::from_millis(5))
        else {
            panic!("expected a timeout");
        };
        slot.fulfil(Err(TaskError::Panicked {
            message: "boom".into(),
            pid: 1,
            location: None,
        }));
        assert!(matches!(
            r.get_timeout(Duration::from_secs(5)),
            Err(GetTimeoutError::Failed(_))
        ));
    }

    #[test]
    fn callbacks_run_once() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        let slot = ResultSlot::<u32>::new(
            Some(Box::new(move |v| {
                h.fetch_add(*v as usize, Ordering::SeqCst);
            })),
            None,
        );
        slot.fulfil(Ok(3));
        slot.fulfil(Ok(100));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn future_wakes_when_fulfilled() {
        let slot = ResultSlot::<u32>::new(None, None);
        let mut r = AsyncResult::from_slot(Arc::clone(&slot));
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut r).poll(&mut cx).is_pending());
        slot.fulfil(Ok(9));
        assert_eq!(flag.0.load(Ordering::SeqCst), 1);
        assert!(matches!(Pin::new(&mut r).poll(&mut cx), Poll::Ready(Ok(9))));
    }
}
