//! `Executor`: Python's `concurrent.futures.ProcessPoolExecutor` on the same machinery as
//! [`Pool`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::async_result::AsyncResult;
use crate::error::{BuildError, SubmitError};
use crate::pool::{Imap, Pool};

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
#[doc(alias = "ProcessPoolExecutor")]
#[must_use = "dropping an executor shuts it down"]
pub struct Executor {
    pool: Pool,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("max_workers", &self.pool.processes())
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

    /// An executor over a pool built as you like (initializer, start method...).
    pub fn from_pool(pool: Pool) -> Self {
        Self { pool }
    }

    /// Schedules `f(arg)`; the returned future resolves to its result.
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.pool.apply_async(f, arg)
    }

    /// `f` over the items, results in order, lazily (Python's `Executor.map`).
    pub fn map<'e, A, R, I>(&'e self, f: fn(A) -> R, items: I) -> Imap<'e, A, R>
    where
        A: Serialize + DeserializeOwned + 'e,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'e,
    {
        self.pool.imap(f, items)
    }

    /// Stops the executor. With `wait`, running and queued tasks finish first; with
    /// `cancel_futures`, queued tasks that have not started are cancelled (their futures fail
    /// with `TaskError::Terminated`).
    pub fn shutdown(mut self, wait: bool, cancel_futures: bool) {
        if cancel_futures || !wait {
            self.pool.cancel_pending();
        }
        self.pool.close();
        if wait {
            self.pool.join();
        } else {
            self.pool.terminate();
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}
