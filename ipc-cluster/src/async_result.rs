//! `AsyncResult<T>`: the result of a task submitted to a cluster pool, Python's `AsyncResult` and a
//! `std::future::Future` in one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::TaskError;

type SuccessCallback<T> = Box<dyn FnOnce(&T) + Send>;
type ErrorCallback = Box<dyn FnOnce(&TaskError) + Send>;

struct SlotState<T> {
    outcome: Option<Result<T, TaskError>>,
    waker: Option<Waker>,
    on_success: Option<SuccessCallback<T>>,
    on_error: Option<ErrorCallback>,
}

pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new(
        on_success: Option<SuccessCallback<T>>,
        on_error: Option<ErrorCallback>,
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

    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers the outcome once (later deliveries are ignored), runs the matching callback in
    /// the calling (result-handling) thread, and wakes every waiter.
    pub(crate) fn fulfil(&self, outcome: Result<T, TaskError>) {
        let mut st = self.lock();
        if st.outcome.is_some() {
            return;
        }
        let (ok_cb, err_cb) = (st.on_success.take(), st.on_error.take());
        match &outcome {
            Ok(v) => {
                if let Some(cb) = ok_cb {
                    cb(v);
                }
            }
            Err(e) => {
                if let Some(cb) = err_cb {
                    cb(e);
                }
            }
        }
        st.outcome = Some(outcome);
        let waker = st.waker.take();
        drop(st);
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.lock().outcome.is_some()
    }
}

/// The pending result of a task submitted with `apply_async` or `submit` to a cluster pool.
///
/// Block with [`get`](Self::get) or [`get_timeout`](Self::get_timeout), poll with
/// [`ready`](Self::ready), or `.await` it: `AsyncResult` implements [`Future`].
///
/// ```no_run
/// # #[cfg(feature = "zenoh")] {
/// use ipc_cluster::{ClusterPool, Node};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let node = Node::builder().listen("tcp/0.0.0.0:7447").open()?;
/// let pool = ClusterPool::builder().min_hosts(1).build(&node)?;
/// let r = pool.apply_async(square, 7)?;
/// assert_eq!(r.get()?, 49);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "an AsyncResult is how the task's result (or failure) comes back"]
#[doc(alias = "Future")]
pub struct AsyncResult<T> {
    slot: Arc<Slot<T>>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

/// `get_timeout` ended at its timeout: the result is handed back, to wait on again.
pub struct Timeout<T>(pub AsyncResult<T>);

impl<T> fmt::Debug for Timeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Timeout(..)")
    }
}

impl<T> fmt::Display for Timeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task's result was not ready before the timeout")
    }
}

impl<T> std::error::Error for Timeout<T> {}

/// Why [`AsyncResult::get_timeout`] returned no value.
#[non_exhaustive]
pub enum GetTimeoutError<T> {
    /// Not ready yet; the result is handed back.
    Timeout(Timeout<T>),
    /// The task failed.
    Failed(TaskError),
}

impl<T> fmt::Debug for GetTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => t.fmt(f),
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for GetTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => t.fmt(f),
            Self::Failed(e) => e.fmt(f),
        }
    }
}

impl<T> std::error::Error for GetTimeoutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout(_) => None,
            Self::Failed(e) => Some(e),
        }
    }
}

impl<T> AsyncResult<T> {
    pub(crate) fn from_slot(slot: Arc<Slot<T>>) -> Self {
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

    /// Blocks until the task finishes and returns its value, or why it failed.
    pub fn get(self) -> Result<T, TaskError> {
        self.wait();
        self.take()
    }

    /// Like [`get`](Self::get), but gives up at `timeout`, handing the result back.
    pub fn get_timeout(self, timeout: Duration) -> Result<T, GetTimeoutError<T>> {
        if self.wait_timeout(timeout) {
            self.take().map_err(GetTimeoutError::Failed)
        } else {
            Err(GetTimeoutError::Timeout(Timeout(self)))
        }
    }

    fn take(&self) -> Result<T, TaskError> {
        self.slot
            .lock()
            .outcome
            .take()
            .unwrap_or(Err(TaskError::ResultTaken))
    }
}

impl<T> Future for AsyncResult<T> {
    type Output = Result<T, TaskError>;

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
        let slot = Slot::new(None, None);
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
        let slot = Slot::<u32>::new(None, None);
        let r = AsyncResult::from_slot(Arc::clone(&slot));
        let Err(GetTimeoutError::Timeout(Timeout(r))) = r.get_timeout(Duration::from_millis(5))
        else {
            panic!("expected a timeout");
        };
        slot.fulfil(Err(TaskError::Panicked {
            host: "h".into(),
            pid: 1,
            message: "boom".into(),
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
        let slot = Slot::<u32>::new(
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
        let slot = Slot::<u32>::new(None, None);
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
