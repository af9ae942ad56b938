//! `Pool`: Python's `multiprocessing.Pool`, on shared-memory queues, that survives killed
//! workers.
//!
//! ## How it works
//!
//! Each worker is a daemon [`Process`](ipc_core::Process) with a task queue of its own; all
//! workers share one result queue (both [`ipc_queue::Queue`]s in shared memory). The parent
//! hands each task to the least loaded worker (at most [`CREDIT`] outstanding per worker) and
//! remembers, per worker, which tasks it handed over, in order. A supervisor thread watches
//! every worker's pidfd, so a death is noticed at once; it then puts a death notice on the
//! result queue, behind every result the dead worker had committed. The result thread, which
//! handles results and notices in queue order, fails the dead worker's oldest outstanding task
//! (the one it was running) with [`TaskError::WorkerDied`], hands the others back to be
//! dispatched again, and starts a replacement. A panicking task fails with its message and its
//! worker lives on.
//!
//! | file          | holds                                                              |
//! |---------------|--------------------------------------------------------------------|
//! | `mod.rs`      | `Pool`: submission, `close`, `join`, `terminate`                   |
//! | `builder.rs`  | `PoolBuilder` and `build`                                          |
//! | `wire.rs`     | the messages on the task and result queues                          |
//! | `worker.rs`   | the worker process's body                                          |
//! | `dispatch.rs` | the parent's state, credit-based dispatch, the result and notice threads |
//! | `death.rs`    | what a worker's death does to its tasks and to the pool            |
//! | `apply.rs`    | `apply`, `apply_async`                                             |
//! | `reply.rs`    | the reply slots through which workers answer `apply` directly      |
//! | `map.rs`      | `map`, `starmap`, their async forms, the zero-copy maps            |
//! | `imap.rs`     | the lazy `imap` verbs                                              |
//!
//! Chunked submission, `imap`'s reassembly and a map's gathering are shared with other pools
//! built on this crate: they are [`crate::raw`]'s, over the [`ChunkPool`] `Pool` implements.

mod apply;
mod builder;
mod death;
mod dispatch;
mod imap;
mod map;
mod reply;
mod wire;
mod worker;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_core::process::{FnKey, FnRef};
use ipc_core::{RawArray, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use builder::PoolBuilder;
use death::fail_all;
use dispatch::{Delivery, Shared, Sink, Worker};
pub use imap::Imap;
use wire::{Input, TaskMsg};

use crate::error::{BuildError, SubmitError, TaskError};
use crate::primitive::Ordering;
use crate::raw::{Chunk, ChunkPool, ExecutorPool, MapJob, PoolFailure};
use crate::task;

/// How many tasks each worker may have outstanding: enough to hide the round trip, few enough
/// that a dead worker's tasks are quickly handed to others.
pub const CREDIT: usize = 32;

/// Python's default chunksize for `map`: ceil(n / (4 × workers)).
///
/// ```
/// assert_eq!(ipc_pool::default_chunksize(100, 4), 7);
/// assert_eq!(ipc_pool::default_chunksize(0, 4), 1);
/// ```
pub fn default_chunksize(n: usize, workers: usize) -> usize {
    n.div_ceil(4 * workers.max(1)).max(1)
}

/// A pool of worker processes, like Python's `multiprocessing.Pool`.
///
/// ```no_run
/// use ipc_pool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::builder().processes(3).build()?;
/// assert_eq!(pool.map(square, [1, 2, 3, 4, 5])?, [1, 4, 9, 16, 25]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping a pool terminates it, as leaving Python's `with Pool(...)` block does.
#[must_use = "dropping a pool terminates its workers"]
pub struct Pool {
    shared: Arc<Shared>,
    /// The input and output arrays of the last plain `map`, kept for the next one.
    scratch: Mutex<Option<(RawArray<u8>, RawArray<u8>)>>,
    processes: usize,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .finish()
    }
}

impl Pool {
    /// A builder (number of processes, initializer, max tasks per child, start method).
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: None,
            max_tasks: None,
            init: None,
        }
    }

    /// A pool of `n` workers with the default settings (`n` = 0 is an error, as in Python).
    pub fn new(n: usize) -> Result<Self, BuildError> {
        Self::builder().processes(n).build()
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The pids of the current workers (they change as workers are replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .lock()
            .workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| w.pid)
            .collect()
    }

    /// `Err(Closed)` once the pool was closed or terminated: every call that submits work
    /// refuses at the call, as Python raises `ValueError("Pool not running")`.
    fn ensure_open(&self) -> Result<(), SubmitError> {
        let st = self.shared.lock();
        if st.closed || self.shared.stopping() {
            return Err(SubmitError::Closed);
        }
        Ok(())
    }

    /// Submits one task: `func` applied to the encoded `input`; `sink` receives the encoded
    /// output (in the result thread).
    pub(crate) fn submit_raw(
        &self,
        func: FnRef,
        input: Vec<u8>,
        sink: crate::raw::Sink<TaskError>,
    ) -> Result<(), SubmitError> {
        let items = 1;
        self.submit_encoded(func, vec![Chunk { input, items, sink }])
    }

    pub(crate) fn key(&self) -> &FnKey {
        &self.shared.key
    }

    /// Fails every task not yet handed to a worker with [`TaskError::Terminated`] (used by
    /// [`Executor::shutdown`](crate::Executor::shutdown) with `cancel_futures`).
    pub fn cancel_pending(&self) {
        let mut deliveries: Vec<Delivery> = Vec::new();
        {
            let mut st = self.shared.lock();
            let pending: Vec<TaskMsg> = st.pending.drain(..).collect();
            for t in pending {
                if let Some(d) = self
                    .shared
                    .finish(&mut st, t.id, Err(TaskError::Terminated))
                {
                    deliveries.push(d);
                }
            }
        }
        for d in deliveries {
            d.deliver();
        }
        self.shared.idle.notify_all();
    }

    /// Stops accepting tasks; the workers exit once the submitted ones are done (Python's
    /// `close`).
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// Waits until every submitted task has finished, then stops the workers (Python's `join`;
    /// call [`close`](Self::close) first, as in Python, or tasks submitted meanwhile keep it
    /// waiting).
    pub fn join(&mut self) {
        let mut st = self.shared.lock();
        st.joiners += 1;
        while !st.sinks.is_empty() {
            st = self
                .shared
                .idle
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.joiners -= 1;
        drop(st);
        self.shutdown(false);
    }

    /// Stops the workers at once; unfinished tasks fail with [`TaskError::Terminated`] (Python's
    /// `terminate`).
    pub fn terminate(&mut self) {
        self.shutdown(true);
    }

    fn shutdown(&mut self, kill: bool) {
        // ORDERING: AcqRel, pairs with the Acquire loads in `Shared::stopping`: the threads see
        // the stop and everything before it.
        if self.shared.stop.swap(true, Ordering::AcqRel) && self.threads.is_empty() {
            return;
        }
        let workers: Vec<Worker>;
        let mut deliveries = Vec::new();
        {
            let mut st = self.shared.lock();
            st.closed = true;
            fail_all(&self.shared, &mut st, &mut deliveries, || {
                TaskError::Terminated
            });
            workers = std::mem::take(&mut st.workers);
        }
        for d in deliveries {
            d.deliver();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for mut w in workers {
            if kill {
                let _ = w.process.kill();
            }
            // Closing the task queue tells a worker blocked in `get` to exit.
            w.queue.close();
            drop(w.queue);
            if w.process.join_timeout(Duration::from_secs(2)).is_err() {
                let _ = w.process.kill();
                let _ = w.process.join_timeout(Duration::from_secs(5));
            }
        }
        self.shared.idle.notify_all();
    }
}

impl ChunkPool for Pool {
    type Func = FnRef;
    type TaskError = TaskError;

    fn map_func<A: DeserializeOwned, R: Serialize>(&self, f: fn(A) -> R) -> FnRef {
        task::map(self.key(), f)
    }

    /// Submits every chunk under one lock, with one dispatch (which then hands them out in
    /// batches).
    fn submit_encoded(
        &self,
        func: FnRef,
        chunks: Vec<Chunk<TaskError>>,
    ) -> Result<(), SubmitError> {
        let mut st = self.shared.lock();
        if st.closed || self.shared.stopping() {
            return Err(SubmitError::Closed);
        }
        if let Some(reason) = st.broken.clone() {
            drop(st);
            for c in chunks {
                (c.sink)(Err(TaskError::PoolBroken {
                    reason: reason.clone(),
                }));
            }
            return Ok(());
        }
        for c in chunks {
            let id = st.next_id;
            st.next_id += 1;
            st.sinks.insert(id, Sink::Boxed(c.sink));
            st.pending.push_back(TaskMsg {
                id,
                reply: None,
                func,
                input: Input::shared(c.input),
            });
        }
        self.shared.dispatch(&mut st);
        Ok(())
    }

    fn imap_window(&self) -> usize {
        2 * CREDIT * self.processes
    }

    /// As the provided method, with every chunk's input encoded into one buffer that the tasks
    /// share (no allocation per chunk for its input), submitted under one lock with one
    /// dispatch.
    fn submit_map<T, R>(&self, func: FnRef, items: &[T], chunksize: usize) -> MapJob<R, TaskError>
    where
        T: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        let chunksize = chunksize.max(1);
        let job = MapJob::new(items.len().div_ceil(chunksize), chunksize);
        let mut buf = Vec::new();
        let mut scratch = Vec::new();
        let mut parts: Vec<(usize, std::ops::Range<usize>)> =
            Vec::with_capacity(items.len().div_ceil(chunksize));
        for (n, part) in items.chunks(chunksize).enumerate() {
            scratch.clear();
            match codec::encode_into(part, &mut scratch) {
                Ok(()) => {
                    let start = buf.len();
                    buf.extend_from_slice(&scratch);
                    parts.push((n, start..buf.len()));
                }
                Err(e) => job.deliver(n, Err(TaskError::codec(e.to_string()))),
            }
        }
        let buf: Arc<[u8]> = buf.into();
        let mut st = self.shared.lock();
        let refused = if st.closed || self.shared.stopping() {
            Some(TaskError::from_submit(SubmitError::Closed))
        } else {
            st.broken
                .clone()
                .map(|reason| TaskError::PoolBroken { reason })
        };
        if let Some(e) = refused {
            drop(st);
            for (n, _) in parts {
                job.deliver(n, Err(e.clone()));
            }
            return job;
        }
        let sink = job.part_sink();
        for (n, range) in parts {
            let id = st.next_id;
            st.next_id += 1;
            let job = Arc::clone(&sink);
            st.sinks.insert(id, Sink::Part { job, n });
            st.pending.push_back(TaskMsg {
                id,
                reply: None,
                func,
                input: Input::part(&buf, range),
            });
        }
        self.shared.dispatch(&mut st);
        job
    }
}

impl ExecutorPool for Pool {
    type Chunks = Self;

    fn chunks(&self) -> &Self {
        self
    }

    fn cancel_pending(&self) {
        Pool::cancel_pending(self);
    }

    fn close(&self) {
        Pool::close(self);
    }

    fn join(&mut self) {
        Pool::join(self);
    }

    fn terminate(&mut self) {
        Pool::terminate(self);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}
