//! `MpiExecutor`: `mpi4py.futures`'s `MPIPoolExecutor` interface on an [`MpiPool`]:
//! `ipc_pool`'s [`Executor`] over it, plus `from_world`.

use std::fmt;
use std::ops::Deref;

use ipc_pool::Executor;
use ipc_pool::raw::ExecutorPool;

use super::{MpiError, MpiPool};
use crate::master::ClusterPool;

/// `concurrent.futures` over MPI ranks: `ipc_pool`'s [`Executor`] over an [`MpiPool`], to which
/// it dereferences for [`submit`](Executor::submit) (a future: [`AsyncResult`](crate::AsyncResult)
/// implements [`std::future::Future`]), `map` and `pool`.
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
pub struct MpiExecutor(Executor<MpiPool>);

impl fmt::Debug for MpiExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiExecutor")
            .field("pool", self.0.pool())
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
        Self(Executor::from_pool(pool))
    }

    /// Stops the executor and the other ranks, then finalises MPI. With `wait`, submitted
    /// tasks finish first; with `cancel_futures`, tasks no rank has taken yet fail with
    /// [`TaskError::Terminated`](crate::TaskError::Terminated); without `wait`, every
    /// unfinished task does.
    pub fn shutdown(self, wait: bool, cancel_futures: bool) {
        self.0.shutdown(wait, cancel_futures);
    }
}

impl Deref for MpiExecutor {
    type Target = Executor<MpiPool>;

    fn deref(&self) -> &Executor<MpiPool> {
        &self.0
    }
}

impl ExecutorPool for MpiPool {
    type Chunks = ClusterPool;

    fn chunks(&self) -> &ClusterPool {
        self.cluster()
    }

    fn cancel_pending(&self) {
        self.cluster().cancel_pending();
    }

    fn close(&self) {
        MpiPool::close(self);
    }

    fn join(&mut self) {
        MpiPool::join(self);
    }

    fn terminate(&mut self) {
        MpiPool::terminate(self);
    }
}
