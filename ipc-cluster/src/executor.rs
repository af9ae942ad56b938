//! `ClusterExecutor`: Python's `concurrent.futures` interface (as `mpi4py.futures`'s
//! `MPIPoolExecutor` gives it) on a [`ClusterPool`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AsyncResult;
use crate::error::SubmitError;
use crate::master::{ClusterPool, Imap};

/// A cluster pool with the `concurrent.futures` interface: [`submit`](Self::submit) returns a
/// future ([`AsyncResult`] implements [`std::future::Future`]).
///
/// Unlike `mpi4py.futures`, a host killed mid-task fails only the futures it was running; the
/// others run on the remaining hosts.
///
/// ```no_run
/// # #[cfg(feature = "zenoh")] {
/// use ipc_cluster::{ClusterExecutor, ClusterPool, Node};
///
/// fn cube(x: i64) -> i64 {
///     x * x * x
/// }
///
/// let node = Node::builder().listen("tcp/0.0.0.0:7447").open()?;
/// let ex = ClusterExecutor::from_pool(ClusterPool::builder().min_hosts(1).build(&node)?);
/// let fut = ex.submit(cube, 3)?;
/// assert_eq!(fut.get()?, 27);
/// let all: Result<Vec<i64>, _> = ex.map(cube, 1..=3).collect();
/// assert_eq!(all?, [1, 8, 27]);
/// ex.shutdown(true, false);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "MPIPoolExecutor")]
#[doc(alias = "ProcessPoolExecutor")]
#[must_use = "dropping an executor shuts it down"]
pub struct ClusterExecutor {
    pool: ClusterPool,
}

impl fmt::Debug for ClusterExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterExecutor")
            .field("pool", &self.pool)
            .finish()
    }
}

impl ClusterExecutor {
    /// An executor over a cluster pool built as you like.
    pub fn from_pool(pool: ClusterPool) -> Self {
        Self { pool }
    }

    /// Schedules `f(arg)` on some host; the returned future resolves to its result.
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

    /// Stops the executor and tells the hosts to stop. With `wait`, tasks on hosts finish
    /// first; with `cancel_futures`, tasks no host has taken yet fail with
    /// [`TaskError::Terminated`](crate::TaskError::Terminated); without `wait`, every
    /// unfinished task does.
    pub fn shutdown(mut self, wait: bool, cancel_futures: bool) {
        self.pool.close();
        if cancel_futures {
            self.pool.core().cancel_pending();
        }
        if wait {
            self.pool.join();
        } else {
            self.pool.terminate();
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &ClusterPool {
        &self.pool
    }
}
