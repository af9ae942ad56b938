//! [`ChunkPool`]: a pool seen as a backend that takes chunks of encoded items and hands back
//! their encoded results, and what every such pool builds on it (one chunk, one `apply`, one
//! `map`), written once for `Pool` and for `ipc-cluster`'s pools.

use std::fmt;
use std::sync::Arc;

use ipc_core::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::collect::MapJob;
use crate::async_result::{AsyncResult, ResultSlot};
use crate::error::{PoolFailure, SubmitError};

/// Receives a chunk's encoded output (a `Vec<R>`), or why there is none, once.
pub type Sink<E> = Box<dyn FnOnce(Result<Vec<u8>, E>) + Send>;

/// One chunk of a submission: its encoded input and where its output goes.
pub struct Chunk<E> {
    /// The encoded `Vec` of items (or whatever input the function's trampoline decodes).
    pub input: Vec<u8>,
    /// How many items the input holds (a backend may weigh its credit by them).
    pub items: usize,
    /// Receives the encoded output.
    pub sink: Sink<E>,
}

impl<E> fmt::Debug for Chunk<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("bytes", &self.input.len())
            .field("items", &self.items)
            .finish()
    }
}

/// A pool as the shared machinery sees it: it runs a function over chunks of encoded items
/// somewhere (worker processes, hosts) and hands each chunk's encoded results to its sink.
/// Implement the three required items; `imap` ([`Imap`](super::Imap)), `map` and `apply` come
/// with the provided methods.
pub trait ChunkPool {
    /// A function as the pool's workers receive it.
    type Func: Copy;
    /// Why a task fails.
    type TaskError: PoolFailure + Clone + Send + 'static;

    /// `f` over a chunk: the input an encoded `Vec<A>`, the output an encoded `Vec<R>`.
    fn map_func<A: DeserializeOwned, R: Serialize>(&self, f: fn(A) -> R) -> Self::Func;

    /// Submits `func` over every chunk, in order; each chunk's sink runs once, with its output
    /// or why it failed. Refused as a whole once the pool accepts no work.
    fn submit_encoded(
        &self,
        func: Self::Func,
        chunks: Vec<Chunk<Self::TaskError>>,
    ) -> Result<(), SubmitError<Self::TaskError>>;

    /// How many chunks a lazy map keeps in flight: enough to keep every worker busy.
    fn imap_window(&self) -> usize;

    /// Submits `func` over one chunk of `items`; `deliver` receives the decoded `Vec<R>`.
    fn submit_chunk<A, R>(
        &self,
        func: Self::Func,
        items: &[A],
        deliver: impl FnOnce(Result<Vec<R>, Self::TaskError>) + Send + 'static,
    ) -> Result<(), SubmitError<Self::TaskError>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let input = codec::encode(items).map_err(SubmitError::Encode)?;
        let sink: Sink<Self::TaskError> = Box::new(move |out| deliver(decode_chunk(out)));
        self.submit_encoded(
            func,
            vec![Chunk {
                input,
                items: items.len(),
                sink,
            }],
        )
    }

    /// `f(arg)` as a chunk of one item (Python's `apply_async`); `slot` holds the callbacks.
    /// `arg` itself lives until the task has ended, as `Process::new`'s does until its child has
    /// decoded it: a shared object in it (a value, a queue) is reopened by the worker through
    /// this process's descriptor of it, which must still be open then.
    fn submit_apply<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        slot: Arc<ResultSlot<R, Self::TaskError>>,
    ) -> Result<AsyncResult<R, Self::TaskError>, SubmitError<Self::TaskError>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let input = codec::encode(std::slice::from_ref(&arg)).map_err(SubmitError::Encode)?;
        let s = Arc::clone(&slot);
        let sink: Sink<Self::TaskError> = Box::new(move |out| {
            drop(arg);
            s.fulfil(decode_chunk(out).and_then(|mut v: Vec<R>| {
                v.pop()
                    .ok_or_else(|| Self::TaskError::codec("empty result".into()))
            }))
        });
        let chunk = Chunk {
            input,
            items: 1,
            sink,
        };
        self.submit_encoded(self.map_func(f), vec![chunk])?;
        Ok(AsyncResult::from_slot(slot))
    }

    /// `func` over `items` cut in chunks of `chunksize`, submitted at once; the job gathers the
    /// results in order (Python's `map` and `starmap`).
    fn submit_map<T, R>(
        &self,
        func: Self::Func,
        items: &[T],
        chunksize: usize,
    ) -> MapJob<R, Self::TaskError>
    where
        T: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        let chunksize = chunksize.max(1);
        let job = MapJob::new(items.len().div_ceil(chunksize), chunksize);
        let mut chunks = Vec::with_capacity(items.len().div_ceil(chunksize));
        let mut numbers = Vec::with_capacity(chunks.capacity());
        for (n, part) in items.chunks(chunksize).enumerate() {
            match codec::encode(part) {
                Ok(input) => {
                    let j = job.clone();
                    let sink: Sink<Self::TaskError> =
                        Box::new(move |out| j.deliver(n, decode_chunk(out)));
                    chunks.push(Chunk {
                        input,
                        items: part.len(),
                        sink,
                    });
                    numbers.push(n);
                }
                Err(e) => job.deliver(n, Err(Self::TaskError::codec(e.to_string()))),
            }
        }
        if let Err(e) = self.submit_encoded(func, chunks) {
            let e = Self::TaskError::from_submit(e);
            for n in numbers {
                job.deliver(n, Err(e.clone()));
            }
        }
        job
    }
}

/// The worker's side of a chunk: decodes `input` as the `Vec<A>` that
/// [`ChunkPool::submit_chunk`] encoded, applies `f` to each item in order and encodes the
/// `Vec<R>` of results into `out`, which `submit_chunk` decodes. The error says which half
/// failed.
pub fn map_chunk<A: DeserializeOwned, R: Serialize>(
    input: &[u8],
    out: &mut Vec<u8>,
    f: impl FnMut(A) -> R,
) -> Result<(), String> {
    // Item by item: neither the items nor the results are gathered in a `Vec` first.
    codec::map_each(input, out, f)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Decodes a chunk's output as `Vec<R>`.
fn decode_chunk<R: DeserializeOwned, E: PoolFailure>(out: Result<Vec<u8>, E>) -> Result<Vec<R>, E> {
    out.and_then(|bytes| {
        codec::decode::<Vec<R>>(&bytes).map_err(|e| E::codec(format!("result: {e}")))
    })
}
