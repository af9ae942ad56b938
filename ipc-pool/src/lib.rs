//! # ipc-pool
//!
//! Python's `multiprocessing.Pool` and `concurrent.futures.ProcessPoolExecutor`, composed from
//! ipc-core processes and ipc-queue queues — without their best-known failure: a worker killed
//! mid-task fails that one task (with the signal that killed it), a replacement starts, and
//! every other task completes (CPython's `Pool` hangs forever instead, gh-66587).
//!
//! | Python                                        | `ipc_pool`                                   |
//! |-----------------------------------------------|----------------------------------------------|
//! | `Pool(4)`                                     | [`Pool::new`]`(4)?` or [`Pool::builder`]`().processes(4).build()?` |
//! | `Pool(initializer=f, initargs=(a,), maxtasksperchild=n)` | `.initializer(f, a).max_tasks_per_child(n)` |
//! | `pool.map(f, xs)`, `pool.map(f, xs, chunksize)` | [`Pool::map`], [`Pool::map_chunksize`]     |
//! | `pool.imap(f, xs)`, `pool.imap_unordered(f, xs)` | [`Pool::imap`], [`Pool::imap_unordered`] |
//! | `pool.starmap(f, pairs)`                      | [`Pool::starmap`]                            |
//! | `pool.apply(f, (a,))`, `pool.apply_async(...)` | [`Pool::apply`], [`Pool::apply_async`] → [`AsyncResult`] |
//! | `apply_async(..., callback, error_callback)`  | [`Pool::apply_async_with`]                   |
//! | `res.get(timeout)`, `res.ready()`, `res.successful()` | [`AsyncResult::get_timeout`], `ready`, `successful`; or `.await` |
//! | `pool.close()`, `pool.join()`, `pool.terminate()` | same; dropping the pool terminates it    |
//! | `ProcessPoolExecutor(n).submit(f, a)`         | [`Executor::new`]`(n)?.submit(f, a)?`        |
//! | (none: zero-copy)                             | [`Pool::map_chunks_mut`] over a [`SharedSlice`] |
//!
//! Functions are non-capturing `fn`s, as for [`ipc_core::Process`].
//!
//! ```no_run
//! use ipc_pool::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let pool = Pool::new(3)?;
//! assert_eq!(pool.map(square, [1, 2, 3, 4, 5])?, [1, 4, 9, 16, 25]);
//! let r = pool.apply_async(square, 9)?;
//! assert_eq!(r.get()?, 81);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod async_result;
mod error;
mod executor;
mod manager;
mod pool;
pub mod prelude;
mod primitive;
pub mod raw;
mod shared_slice;
mod task;

pub use async_result::{AsyncResult, GetTimeoutError, Timeout};
pub use error::{BuildError, MapError, SubmitError, TaskError};
pub use executor::Executor;
pub use ipc_core::process::{ProcessExit, Supervisor};
pub use manager::{
    DictProxy, ListProxy, Managed, Manager, ManagerBuilder, ManagerError, NamespaceProxy, Proxy,
};
pub use pool::{CREDIT, Imap, Pool, PoolBuilder, default_chunksize};
pub use shared_slice::SharedSlice;
