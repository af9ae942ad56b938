//! `map`, `starmap` and their async forms, and the zero-copy maps: `map_pod` (plain data placed
//! in shared arrays) and `map_chunks_mut` (a caller's `SharedSlice` lent in chunks).

use ipc_core::{RawArray, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Pool, default_chunksize};
use crate::async_result::AsyncResult;
use crate::error::{MapError, SubmitError, TaskError};
use crate::raw::{ChunkPool, MapJob};
use crate::shared_slice::SharedSlice;
use crate::task::{self, ChunkInput, Plain, PlainInput};

/// Below this chunksize a `map` of primitive numbers goes through the codec: placing a
/// few items in shared arrays costs more than encoding them.
const PLAIN_MIN_CHUNK: usize = 64;
/// The most input plus output bytes of a plain map kept mapped for the next one.
const SCRATCH_MAX: usize = 64 << 20;

impl Pool {
    /// Applies `f` to every item and returns the results in order (Python's `map`), with
    /// Python's default chunksize. On failure, the error of the first failed item; to keep the
    /// results of the others, use [`imap`](Self::imap).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes);
        self.map_chunksize(f, items, chunk)
    }

    /// [`map`](Self::map) with an explicit chunksize.
    ///
    /// When `A` and `R` are primitive numbers (`u8` to `u128`, `i8` to `i128`, `usize`,
    /// `isize`, `f32`, `f64`) and chunks are large, the items travel by placement in shared
    /// memory (as with [`map_pod`](Self::map_pod)) instead of through the codec. `map` takes
    /// any serde type, so it has no trait bound to choose the path by: stable Rust cannot ask
    /// whether a generic type implements a trait, and a bound would shut every other type out.
    /// The primitive numbers are recognised at run time instead (a sealed list, each checked
    /// `Pod` by the compiler); [`map_pod`](Self::map_pod) is the zero-copy path for any `Pod`.
    pub fn map_chunksize<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = items.into_iter().collect();
        if chunksize >= PLAIN_MIN_CHUNK {
            if let (Some(a), Some(r)) = (Plain::number(), Plain::number()) {
                return self.map_plain(f, &items, chunksize, (a, r));
            }
        }
        self.submit_map(self.map_func(f), &items, chunksize).get()
    }

    /// Zero-copy map for plain data: the items are placed once in a shared array, each worker
    /// reads its chunk there and writes its results into a shared output array, and only the
    /// chunk bounds are encoded. Python's default chunksize.
    ///
    /// ```no_run
    /// use ipc_pool::Pool;
    ///
    /// fn half(x: f64) -> f64 {
    ///     x / 2.0
    /// }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.map_pod(half, &[1.0, 2.0, 3.0])?, [0.5, 1.0, 1.5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_pod<A: bytemuck::Pod, R: bytemuck::Pod>(
        &self,
        f: fn(A) -> R,
        items: &[A],
    ) -> Result<Vec<R>, MapError> {
        let chunk = default_chunksize(items.len(), self.processes);
        self.map_plain(f, items, chunk, (Plain::pod(), Plain::pod()))
    }

    /// `f` over `items` through shared arrays; `plain` proves `A` and `R` plain data.
    fn map_plain<A: 'static, R: 'static>(
        &self,
        f: fn(A) -> R,
        items: &[A],
        chunksize: usize,
        plain: (Plain<A>, Plain<R>),
    ) -> Result<Vec<R>, MapError> {
        let func = task::plain(self.key(), f, plain.0, plain.1);
        self.ensure_open().map_err(|e| MapError {
            index: 0,
            error: e.into(),
        })?;
        let fail = |message: String| MapError {
            index: 0,
            error: TaskError::Codec { message },
        };
        let n = items.len();
        let in_bytes = n
            .checked_mul(size_of::<A>())
            .ok_or_else(|| fail("input too large".into()))?;
        let out_bytes = n
            .checked_mul(size_of::<R>())
            .ok_or_else(|| fail("output too large".into()))?;
        // Reuse the arrays of an earlier call when they are large enough: the workers keep them
        // mapped, so a steady stream of maps costs no new segment and no page faults.
        let reused = self
            .scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .filter(|(i, o)| i.len() >= in_bytes && o.len() >= out_bytes);
        let (input, output) = match reused {
            Some(pair) => pair,
            None => (
                RawArray::<u8>::new(in_bytes).map_err(|e| fail(e.to_string()))?,
                RawArray::<u8>::new(out_bytes).map_err(|e| fail(e.to_string()))?,
            ),
        };
        // SAFETY: `items` is `in_bytes` initialised bytes (`plain.0` proves `A` has no padding).
        let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), in_bytes) };
        input.write(0, bytes).map_err(|e| fail(e.to_string()))?;
        let chunksize = chunksize.max(1);
        let starts: Vec<usize> = (0..n).step_by(chunksize).collect();
        let job = MapJob::<(), TaskError>::new(starts.len(), chunksize);
        let (input_handle, output_handle) = (input.handle(), output.handle());
        for (k, start) in starts.into_iter().enumerate() {
            let task = PlainInput {
                input: input_handle.clone(),
                output: output_handle.clone(),
                start,
                len: chunksize.min(n - start),
            };
            let j = job.clone();
            let r = match codec::encode(&task) {
                Ok(bytes) => self.submit_raw(
                    func,
                    bytes,
                    Box::new(move |out| j.deliver(k, out.map(|_| Vec::new()))),
                ),
                Err(e) => Err(SubmitError::Encode(e)),
            };
            if let Err(e) = r {
                job.deliver(k, Err(e.into()));
            }
        }
        job.get()?;
        let keep = input.len() + output.len() <= SCRATCH_MAX;
        let mut out: Vec<R> = Vec::with_capacity(n);
        // SAFETY: the capacity holds `n` elements of `out_bytes` bytes in all; every task has
        // finished, so nobody writes the output array any more; any bytes are a valid `R` (proved
        // by `plain.1`), so after the copy the first `n` elements are initialised. The
        // copy is a shared copy (word-wise atomic) of the pool's own array.
        unsafe {
            let dst = std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out_bytes);
            ipc_core::pod::copy_from_shared(output.as_ptr(), dst);
            out.set_len(n);
        }
        if keep {
            *self.scratch.lock().unwrap_or_else(|p| p.into_inner()) = Some((input, output));
        }
        Ok(out)
    }

    /// Like [`map`](Self::map), returning at once with an [`AsyncResult`] of all results
    /// (Python's `map_async`). Refused at the call once the pool is closed.
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_with(f, items, None, |_| {}, |_| {})
    }

    /// [`map_async`](Self::map_async) with Python's `chunksize` (`None`: the default),
    /// `callback` and `error_callback`: one of the callbacks runs in the parent's result thread
    /// when the last chunk is in.
    ///
    /// ```no_run
    /// use std::sync::mpsc;
    ///
    /// fn square(x: u32) -> u32 {
    ///     x * x
    /// }
    ///
    /// let pool = ipc_pool::Pool::new(2)?;
    /// let (tx, rx) = mpsc::channel();
    /// let r = pool.map_async_with(square, 1..=4, Some(2), move |v| tx.send(v.clone()).unwrap(), |_| {})?;
    /// assert_eq!(r.get()?, [1, 4, 9, 16]);
    /// assert_eq!(rx.recv()?, [1, 4, 9, 16]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "error_callback")]
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        on_success: impl FnOnce(&Vec<R>) + Send + 'static,
        on_error: impl FnOnce(&TaskError) + Send + 'static,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.ensure_open()?;
        let items: Vec<A> = items.into_iter().collect();
        let chunk = chunksize.unwrap_or_else(|| default_chunksize(items.len(), self.processes));
        let job = self.submit_map(self.map_func(f), &items, chunk);
        // The items live until the map ends, as `apply_async`'s argument does.
        job.keep(Box::new(items));
        Ok(job.into_async(Some(Box::new(on_success)), Some(Box::new(on_error))))
    }

    /// `f(a, b)` for every pair, in order (Python's `starmap`), with Python's default
    /// chunksize.
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
        let chunk = default_chunksize(items.len(), self.processes);
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
        let func = task::star(self.key(), f);
        let items: Vec<(A, B)> = items.into_iter().collect();
        self.submit_map(func, &items, chunksize).get()
    }

    /// Like [`starmap`](Self::starmap), returning at once (Python's `starmap_async`).
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        B: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async_with(f, items, None, |_| {}, |_| {})
    }

    /// [`starmap_async`](Self::starmap_async) with `chunksize`, `callback` and
    /// `error_callback`, as [`map_async_with`](Self::map_async_with).
    pub fn starmap_async_with<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
        chunksize: Option<usize>,
        on_success: impl FnOnce(&Vec<R>) + Send + 'static,
        on_error: impl FnOnce(&TaskError) + Send + 'static,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        B: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.ensure_open()?;
        let func = task::star(self.key(), f);
        let items: Vec<(A, B)> = items.into_iter().collect();
        let chunk = chunksize.unwrap_or_else(|| default_chunksize(items.len(), self.processes));
        let job = self.submit_map(func, &items, chunk);
        job.keep(Box::new(items));
        Ok(job.into_async(Some(Box::new(on_success)), Some(Box::new(on_error))))
    }

    /// Zero-copy map over a [`SharedSlice`]: the slice is cut into chunks of `chunk_len`
    /// elements and each worker runs `f` on `&mut` its chunks, in place. Nothing is serialised
    /// but the chunk bounds. The slice is borrowed exclusively until every chunk is done; no
    /// other handle to it exists (see [`SharedSlice`] for why it is a type of its own).
    ///
    /// ```no_run
    /// use ipc_pool::{Pool, SharedSlice};
    ///
    /// fn square_all(xs: &mut [f64]) {
    ///     for x in xs {
    ///         *x *= *x;
    ///     }
    /// }
    ///
    /// let mut data = SharedSlice::from_slice(&[1.0, 2.0, 3.0])?;
    /// let pool = Pool::new(2)?;
    /// pool.map_chunks_mut(&mut data, 2, square_all)?;
    /// assert_eq!(&data[..], [1.0, 4.0, 9.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_chunks_mut<T: bytemuck::Pod>(
        &self,
        array: &mut SharedSlice<T>,
        chunk_len: usize,
        f: fn(&mut [T]),
    ) -> Result<(), MapError> {
        let func = task::chunks(self.key(), f);
        let handle = array.worker_handle();
        let chunk_len = chunk_len.max(1);
        let bounds: Vec<(usize, usize)> = (0..array.len())
            .step_by(chunk_len)
            .map(|s| (s, chunk_len.min(array.len() - s)))
            .collect();
        let job = MapJob::<(), TaskError>::new(bounds.len(), 1);
        for (n, (start, len)) in bounds.into_iter().enumerate() {
            let input = ChunkInput {
                array: handle.clone(),
                start,
                len,
            };
            let j = job.clone();
            let r = match codec::encode(&input) {
                Ok(bytes) => self.submit_raw(
                    func,
                    bytes,
                    Box::new(move |out| {
                        let out = out.and_then(|b| {
                            codec::decode::<()>(&b).map(|()| vec![()]).map_err(|e| {
                                TaskError::Codec {
                                    message: e.to_string(),
                                }
                            })
                        });
                        j.deliver(n, out)
                    }),
                ),
                Err(e) => Err(SubmitError::Encode(e)),
            };
            if let Err(e) = r {
                job.deliver(n, Err(e.into()));
            }
        }
        job.get().map(drop)
    }
}
