//! `ClusterExecutor`: Python's `concurrent.futures` interface (as `mpi4py.futures`'s
//! `MPIPoolExecutor` gives it) on a [`ClusterPool`]: `ipc_pool`'s [`Executor`] over it.

use ipc_pool::Executor;
use ipc_pool::raw::ExecutorPool;

use crate::master::ClusterPool;

/// A cluster pool with the `concurrent.futures` interface: [`submit`](Executor::submit)
/// returns a future ([`AsyncResult`](crate::AsyncResult) implements
/// [`std::future::Future`]); `map` is lazy, `shutdown(wait, cancel_futures)` stops the executor
/// and tells the hosts to stop. With `cancel_futures`, tasks no host has taken yet fail with
/// [`TaskError::Terminated`](crate::TaskError::Terminated); without `wait`, every unfinished
/// task does.
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
pub type ClusterExecutor = Executor<ClusterPool>;

impl ExecutorPool for ClusterPool {
    type Chunks = Self;

    fn chunks(&self) -> &Self {
        self
    }

    fn cancel_pending(&self) {
        self.core().cancel_pending();
    }

    fn close(&self) {
        ClusterPool::close(self);
    }

    fn join(&mut self) {
        ClusterPool::join(self);
    }

    fn terminate(&mut self) {
        ClusterPool::terminate(self);
    }
}
