//! `map`, `starmap`, `apply` and `apply_async` over the cluster.

use std::sync::Arc;

use ipc_core::codec;
use ipc_pool::default_chunksize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ClusterPool;
use super::collect::MapJob;
use crate::AsyncResult;
use crate::error::{MapError, SubmitError, TaskError};
use crate::task::TaskFn;
use ipc_pool::raw::ResultSlot;

/// Decodes a chunk's output as `Vec<R>`.
pub(super) fn decode_chunk<R: DeserializeOwned>(
    out: Result<Vec<u8>, TaskError>,
) -> Result<Vec<R>, TaskError> {
    out.and_then(|bytes| {
        codec::decode::<Vec<R>>(&bytes).map_err(|e| TaskError::Codec {
            host: None,
            message: format!("result: {e}"),
        })
    })
}

impl ClusterPool {
    /// Submits `func` over one chunk of items; `deliver` receives the decoded `Vec<R>`.
    pub(super) fn submit_chunk<A, R>(
        &self,
        func: TaskFn,
        items: &[A],
        deliver: impl FnOnce(Result<Vec<R>, TaskError>) + Send + 'static,
    ) -> Result<(), SubmitError>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let input = codec::encode(items).map_err(SubmitError::Encode)?;
        self.core().submit(
            func,
            input,
            items.len(),
            Box::new(move |out| deliver(decode_chunk(out))),
        )
    }

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
        self.map_func(TaskFn::map(f), &items, chunksize)
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
        self.map_func(TaskFn::star(f), &items, chunksize)
    }

    fn map_func<T: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        func: TaskFn,
        items: &[T],
        chunksize: usize,
    ) -> Result<Vec<R>, MapError> {
        let chunksize = chunksize.max(1);
        let job = MapJob::<R>::new(items.len().div_ceil(chunksize), chunksize);
        for (k, chunk) in items.chunks(chunksize).enumerate() {
            let j = job.clone();
            if let Err(e) = self.submit_chunk(func, chunk, move |out| j.deliver(k, out)) {
                job.deliver(k, Err(e.into()));
            }
        }
        job.get()
    }

    /// Runs `f(arg)` on some host and waits for its result (Python's `apply`).
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f(arg)` on some host; returns at once with an [`AsyncResult`] (which is also a
    /// `Future`).
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_inner(f, arg, ResultSlot::<_, TaskError>::new(None, None))
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
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_inner(
            f,
            arg,
            ResultSlot::<_, TaskError>::new(Some(Box::new(on_success)), Some(Box::new(on_error))),
        )
    }

    fn apply_async_inner<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        slot: Arc<ResultSlot<R, TaskError>>,
    ) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let s = Arc::clone(&slot);
        self.submit_chunk(
            TaskFn::map(f),
            std::slice::from_ref(&arg),
            move |r: Result<Vec<R>, TaskError>| {
                s.fulfil(r.and_then(|mut v| {
                    v.pop().ok_or(TaskError::Codec {
                        host: None,
                        message: "empty result".into(),
                    })
                }))
            },
        )?;
        Ok(AsyncResult::from_slot(slot))
    }
}
