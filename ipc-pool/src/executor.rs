//! `Executor`: Python's `concurrent.futures.ProcessPoolExecutor` on the same machinery as
//! [`Pool`], and on any other pool that implements [`ExecutorPool`] (`ipc-cluster`'s executors
//! are this type over their pools).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::async_result::{AsyncResult, ResultSlot};
use crate::error::{BuildError, SubmitError};
use crate::pool::Pool;
use crate::raw::{ChunkPool, Imap};

/// What an [`Executor`] drives: the pool its tasks go to, and how that pool stops.
pub trait ExecutorPool {
    /// The pool the tasks are submitted to (the pool itself, or the one it wraps).
    type Chunks: ChunkPool;

    /// The pool the tasks are submitted to.
    fn chunks(&self) -> &Self::Chunks;

    /// Fails every task no worker has taken yet with the pool's "terminated" error.
    fn cancel_pending(&self);

    /// Stops accepting tasks.
    fn close(&self);

    /// Waits until every submitted task has finished, then stops the workers.
    fn join(&mut self);

    /// Stops at once; unfinished tasks fail with the pool's "terminated" error.
    fn terminate(&mut self);
}

/// A process pool with the `concurrent.futures` interface: [`submit`](Self::submit) returns a
/// future ([`AsyncResult`] implements [`std::future::Future`]).
///
/// Unlike Python's `ProcessPoolExecutor`, a worker killed mid-task fails only that task's
/// future; the executor replaces the worker and stays usable.
///
/// ```no_run
/// use ipc_pool::Executor;
///
/// fn cube(x: i64) -> i64 {
///     x * x * x
/// }
///
/// let ex = Executor::new(2)?;
/// let fut = ex.submit(cube, 3)?;
/// assert_eq!(fut.get()?, 27);
/// let all: Result<Vec<i64>, _> = ex.map(cube, 1..=3).collect();
/// assert_eq!(all?, [1, 8, 27]);
/// ex.shutdown(true, false);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Generic over the pool it drives (a [`Pool`] by default): any [`ExecutorPool`].
#[doc(alias = "ProcessPoolExecutor")]
#[must_use = "dropping an executor shuts it down"]
pub struct Executor<P = Pool> {
    pool: P,
}

impl<P: fmt::Debug> fmt::Debug for Executor<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("pool", &self.pool)
            .finish()
    }
}

impl Executor {
    /// An executor with `max_workers` worker processes.
    pub fn new(max_workers: usize) -> Result<Self, BuildError> {
        Ok(Self {
            pool: Pool::new(max_workers)?,
        })
    }
}

impl<P: ExecutorPool> Executor<P> {
    /// An executor over a pool built as you like (initializer, start method...).
    pub fn from_pool(pool: P) -> Self {
        Self { pool }
    }

    /// Schedules `f(arg)`; the returned future resolves to its result.
    #[allow(
        clippy::type_complexity,
        reason = "the pool's AsyncResult and SubmitError, spelled out in full for the docs"
    )]
    pub fn submit<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<
        AsyncResult<R, <P::Chunks as ChunkPool>::TaskError>,
        SubmitError<<P::Chunks as ChunkPool>::TaskError>,
    >
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let pool = self.pool.chunks();
        pool.submit_apply(f, arg, ResultSlot::new(None, None))
    }

    /// `f` over the items, results in order, lazily (Python's `Executor.map`).
    pub fn map<'e, A, R, I>(&'e self, f: fn(A) -> R, items: I) -> Imap<'e, P::Chunks, A, R>
    where
        A: Serialize + DeserializeOwned + 'e,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'e,
    {
        Imap::ordered(self.pool.chunks(), f, items, 1)
    }

    /// Stops the executor. With `wait`, running and queued tasks finish first; with
    /// `cancel_futures`, queued tasks that have not started are cancelled (their futures fail
    /// with `TaskError::Terminated`); without `wait`, every unfinished task fails so.
    pub fn shutdown(mut self, wait: bool, cancel_futures: bool) {
        self.pool.close();
        if cancel_futures {
            self.pool.cancel_pending();
        }
        if wait {
            self.pool.join();
        } else {
            self.pool.terminate();
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &P {
        &self.pool
    }
}
