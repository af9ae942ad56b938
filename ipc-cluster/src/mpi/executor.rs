//! `MpiExecutor`: `mpi4py.futures`'s `MPIPoolExecutor` interface on an [`MpiPool`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{MpiError, MpiPool};
use crate::AsyncResult;
use crate::error::SubmitError;
use crate::master::Imap;

/// `concurrent.futures` over MPI ranks: [`submit`](Self::submit) returns a future
/// ([`AsyncResult`] implements [`std::future::Future`]).
///
/// ```no_run
/// use ipc_cluster::MpiExecutor;
///
/// fn cube(x: i64) -> i64 {
///     x * x * x
/// }
///
/// ipc_cluster::init();
/// if let Some(ex) = MpiExecutor::from_world()? {
///     assert_eq!(ex.submit(cube, 3)?.get()?, 27);
///     let all: Result<Vec<i64>, _> = ex.map(cube, 1..=3).collect();
///     assert_eq!(all?, [1, 8, 27]);
///     ex.shutdown(true, false);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "MPIPoolExecutor")]
#[must_use = "dropping an executor shuts it down"]
pub struct MpiExecutor {
    pool: MpiPool,
}

impl fmt::Debug for MpiExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiExecutor")
            .field("pool", &self.pool)
            .finish()
    }
}

impl MpiExecutor {
    /// `Some(executor)` on rank 0; every other rank serves and gets `None` once it is shut
    /// down (as `MpiPool::from_world`).
    pub fn from_world() -> Result<Option<Self>, MpiError> {
        Ok(MpiPool::from_world()?.map(Self::from_pool))
    }

    /// An executor over a pool built as you like.
    pub fn from_pool(pool: MpiPool) -> Self {
        Self { pool }
    }

    /// Schedules `f(arg)` on some rank; the returned future resolves to its result.
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

    /// Stops the executor and the other ranks, then finalises MPI. With `wait`, submitted
    /// tasks finish first; with `cancel_futures`, tasks no rank has taken yet fail with
    /// [`TaskError::Terminated`](crate::TaskError::Terminated); without `wait`, every
    /// unfinished task does.
    pub fn shutdown(mut self, wait: bool, cancel_futures: bool) {
        self.pool.close();
        if cancel_futures {
            self.pool.cluster().core().cancel_pending();
        }
        if wait {
            self.pool.join();
        } else {
            self.pool.terminate();
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &MpiPool {
        &self.pool
    }
}
