//! `map`, `starmap`, `apply` and `apply_async` over the cluster, and the [`ChunkPool`] they
//! (and `imap`) stand on.

use ipc_pool::default_chunksize;
use ipc_pool::raw::{Chunk, ChunkPool, ResultSlot};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ClusterPool;
use crate::AsyncResult;
use crate::error::{MapError, SubmitError, TaskError};
use crate::task::TaskFn;

impl ChunkPool for ClusterPool {
    type Func = TaskFn;
    type TaskError = TaskError;

    fn map_func<A: DeserializeOwned, R: Serialize>(&self, f: fn(A) -> R) -> TaskFn {
        TaskFn::map(f)
    }

    fn submit_encoded(
        &self,
        func: TaskFn,
        chunks: Vec<Chunk<TaskError>>,
    ) -> Result<(), SubmitError> {
        self.core().submit(func, chunks)
    }

    /// Twice the live hosts' credit.
    fn imap_window(&self) -> usize {
        2 * self.core().total_credit()
    }
}

impl ClusterPool {
    /// Applies `f` to every item and returns the results in order (Python's `map`), with
    /// Python's default chunksize over the live hosts' processes. On failure, the error of the
    /// first failed item; to keep the results of the others, use [`imap`](Self::imap).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes());
        self.map_chunksize(f, items, chunk)
    }

    /// [`map`](Self::map) with an explicit chunksize (items per message to a host).
    pub fn map_chunksize<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.submit_map(TaskFn::map(f), &items, chunksize).get()
    }

    /// Applies `f` to every pair (Python's `starmap`).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<(A, B)> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes());
        self.starmap_chunksize(f, items, chunk)
    }

    /// [`starmap`](Self::starmap) with an explicit chunksize.
    pub fn starmap_chunksize<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<(A, B)> = items.into_iter().collect();
        self.submit_map(TaskFn::star(f), &items, chunksize).get()
    }

    /// Runs `f(arg)` on some host and waits for its result (Python's `apply`).
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f(arg)` on some host; returns at once with an [`AsyncResult`] (which is also a
    /// `Future`).
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.submit_apply(f, arg, ResultSlot::new(None, None))
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and `error_callback`: one of
    /// them runs in the pool's event thread when the task ends.
    #[doc(alias = "error_callback")]
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        on_success: impl FnOnce(&R) + Send + 'static,
        on_error: impl FnOnce(&TaskError) + Send + 'static,
    ) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let slot = ResultSlot::new(Some(Box::new(on_success)), Some(Box::new(on_error)));
        self.submit_apply(f, arg, slot)
    }
}
