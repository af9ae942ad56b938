//! One import for the whole toolkit, as a Python program imports `multiprocessing`:
//! `use ipc_pool::prelude::*;` brings processes, queues and pipes, locks and shared values,
//! pools and managers.
//!
//! ```no_run
//! use ipc_pool::prelude::*;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     init();
//!     let pool = Pool::new(2)?;
//!     let total = Value::new(0u64)?;
//!     for y in pool.map(square, 1..=4)? {
//!         total.fetch_add(y);
//!     }
//!     assert_eq!(total.get(), 30);
//!     let q = Queue::<u64>::new(8)?;
//!     let p = Process::new(square, 7);
//!     p.start()?;
//!     assert_eq!(p.join()?, 49);
//!     drop(q);
//!     Ok(())
//! }
//! ```
//!
//! The crates stay usable on their own (`ipc_queue::Queue` between two services needs nothing
//! else); the prelude is for programs that use the toolkit as a whole. It lives in the crate at
//! the top of the dependency chain, the only one that sees every other.

pub use ipc_core::{
    Process, RawArray, RawValue, SharedMemory, StartMethod, active_children, cpu_count,
    current_process, get_start_method, init, parent_process, set_start_method,
};
pub use ipc_queue::{
    Connection, JoinableQueue, Queue, RingBuffer, SimpleQueue, pipe, pipe_simplex, wait,
};
pub use ipc_sync::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, RLock, Semaphore, Value,
};

pub use crate::{AsyncResult, Executor, Manager, Pool, SharedSlice};
