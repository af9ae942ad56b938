//! Gathering the chunks of one map: each chunk's outcome arrives (in the pool's result or event
//! thread) in any order; the map ends with the results in input order, or the error of the
//! first failed item.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

use ipc_core::codec;
use serde::de::DeserializeOwned;

use crate::async_result::{AsyncResult, ErrorCallback, ResultSlot, SuccessCallback};
use crate::error::{MapError, PoolFailure};

/// What runs when every chunk of a map job is in.
type Done<R, E> = Box<dyn FnOnce(Result<Vec<R>, MapError<E>>) + Send>;

/// The results of one chunk, as they came.
enum Part<R> {
    /// None yet (or an empty chunk).
    Empty,
    /// One result, which is all a chunk of one item needs: no `Vec`.
    One(R),
    Many(Vec<R>),
}

impl<R> Part<R> {
    /// Adds the next result; a second one makes a `Vec` with room for `room` (the chunk's size,
    /// as far as its bytes can hold).
    fn push(&mut self, r: R, room: usize) {
        *self = match std::mem::replace(self, Self::Empty) {
            Self::Empty => Self::One(r),
            Self::One(a) => {
                let mut v = Vec::with_capacity(room.max(2));
                v.push(a);
                v.push(r);
                Self::Many(v)
            }
            Self::Many(mut v) => {
                v.push(r);
                Self::Many(v)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(_) => 1,
            Self::Many(v) => v.len(),
        }
    }

    fn take_into(&mut self, out: &mut Vec<R>) {
        match std::mem::replace(self, Self::Empty) {
            Self::Empty => {}
            Self::One(r) => out.push(r),
            Self::Many(v) => out.extend(v),
        }
    }
}

struct Collector<R, E> {
    parts: Vec<Part<R>>,
    remaining: usize,
    error: Option<MapError<E>>,
    done: Option<Done<R, E>>,
    finished: Option<Result<Vec<R>, MapError<E>>>,
    /// The job's items, kept until it ends (see [`MapJob::keep`]).
    kept: Option<Box<dyn std::any::Any + Send>>,
}

/// Where the chunks of one map job arrive still encoded (each an encoded `Vec<R>`): a pool's
/// result thread hands over the bytes as they came, and the job decodes each result into its
/// place (no `Vec` for a chunk of one item).
pub(crate) trait PartSink<E>: Send + Sync {
    /// Chunk `n`'s encoded outcome.
    fn deliver_encoded(&self, n: usize, out: Result<&[u8], E>);
}

/// A job's state, the condition its `get` waits on, and its chunksize.
struct Job<R, E>(Mutex<Collector<R, E>>, Condvar, usize);

impl<R, E> PartSink<E> for Job<R, E>
where
    R: DeserializeOwned + Send + 'static,
    E: PoolFailure + Send + 'static,
{
    fn deliver_encoded(&self, n: usize, out: Result<&[u8], E>) {
        // Decoded before the lock is taken.
        let part = out.and_then(|bytes| {
            let mut part = Part::Empty;
            // Every result takes a byte or more (unless of size zero, which needs no room).
            let room = self.2.min(bytes.len());
            codec::decode_each(bytes, |r| part.push(r, room))
                .map(|_| part)
                .map_err(|e| E::codec(format!("result: {e}")))
        });
        self.put(n, part);
    }
}

impl<R, E> Job<R, E> {
    fn put(&self, n: usize, out: Result<Part<R>, E>) {
        // The kept items are dropped once the lock is released (declared first, dropped last).
        let mut _kept = None;
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if n >= g.parts.len() || g.remaining == 0 {
            return;
        }
        match out {
            Ok(part) => g.parts[n] = part,
            Err(error) => {
                let index = n * self.2;
                if g.error.as_ref().is_none_or(|e| e.index > index) {
                    g.error = Some(MapError { index, error });
                }
            }
        }
        g.remaining -= 1;
        if g.remaining == 0 {
            _kept = g.kept.take();
            let result = match g.error.take() {
                Some(e) => Err(e),
                None => {
                    let mut all = Vec::with_capacity(g.parts.iter().map(Part::len).sum());
                    for p in &mut g.parts {
                        p.take_into(&mut all);
                    }
                    Ok(all)
                }
            };
            match g.done.take() {
                Some(done) => {
                    drop(g);
                    done(result);
                }
                None => g.finished = Some(result),
            }
            self.1.notify_all();
        }
    }
}

/// The chunks of one map, gathered in order as they come back (made by
/// [`ChunkPool::submit_map`](super::ChunkPool::submit_map)). Clones share the job.
pub struct MapJob<R, E> {
    inner: Arc<Job<R, E>>,
}

impl<R, E> Clone for MapJob<R, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R, E> fmt::Debug for MapJob<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("MapJob")
            .field("remaining", &g.remaining)
            .finish()
    }
}

impl<R: Send + 'static, E: Send + 'static> MapJob<R, E> {
    /// A job of `chunks` chunks of `chunksize` items (the last may be shorter).
    pub(crate) fn new(chunks: usize, chunksize: usize) -> Self {
        let c = Collector {
            parts: (0..chunks).map(|_| Part::Empty).collect(),
            remaining: chunks,
            error: None,
            done: None,
            finished: (chunks == 0).then(|| Ok(Vec::new())),
            kept: None,
        };
        Self {
            inner: Arc::new(Job(Mutex::new(c), Condvar::new(), chunksize)),
        }
    }

    /// Chunk `n`'s outcome (ignored past the last chunk, or once every chunk is in).
    pub(crate) fn deliver(&self, n: usize, out: Result<Vec<R>, E>) {
        self.inner.put(n, out.map(Part::Many));
    }

    /// The job as the receiver of its chunks' encoded outcomes.
    pub(crate) fn part_sink(&self) -> Arc<dyn PartSink<E>>
    where
        R: DeserializeOwned,
        E: PoolFailure,
    {
        Arc::clone(&self.inner) as Arc<dyn PartSink<E>>
    }

    /// Waits for every chunk, then gives the results in order or the first failed item's error.
    pub fn get(self) -> Result<Vec<R>, MapError<E>> {
        let mut g = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.finished.take() {
                return r;
            }
            g = self.inner.1.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Keeps `items` until every chunk is in (at once dropped if they all are): a shared object
    /// among them (a value, a queue) is reopened by the worker through this process's
    /// descriptor of it, which must still be open then.
    pub(crate) fn keep(&self, items: Box<dyn std::any::Any + Send>) {
        let mut g = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.remaining > 0 {
            g.kept = Some(items);
        }
    }

    /// The job as one [`AsyncResult`] of every result (Python's `map_async`): one of the
    /// callbacks runs in the thread that delivers the last chunk.
    pub fn into_async(
        self,
        on_success: Option<SuccessCallback<Vec<R>>>,
        on_error: Option<ErrorCallback<E>>,
    ) -> AsyncResult<Vec<R>, E> {
        let slot = ResultSlot::new(on_success, on_error);
        let mut g = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.finished.take() {
            Some(r) => slot.fulfil(r.map_err(|e| e.error)),
            None => {
                let s = Arc::clone(&slot);
                g.done = Some(Box::new(move |r| s.fulfil(r.map_err(|e| e.error))));
            }
        }
        drop(g);
        AsyncResult::from_slot(slot)
    }
}
