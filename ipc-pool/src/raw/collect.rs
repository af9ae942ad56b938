//! Gathering the chunks of one map: each chunk's outcome arrives (in the pool's result or event
//! thread) in any order; the map ends with the results in input order, or the error of the
//! first failed item.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

use crate::async_result::{AsyncResult, ErrorCallback, ResultSlot, SuccessCallback};
use crate::error::MapError;

/// What runs when every chunk of a map job is in.
type Done<R, E> = Box<dyn FnOnce(Result<Vec<R>, MapError<E>>) + Send>;

struct Collector<R, E> {
    parts: Vec<Option<Vec<R>>>,
    remaining: usize,
    chunksize: usize,
    error: Option<MapError<E>>,
    done: Option<Done<R, E>>,
    finished: Option<Result<Vec<R>, MapError<E>>>,
}

/// The chunks of one map, gathered in order as they come back (made by
/// [`ChunkPool::submit_map`](super::ChunkPool::submit_map)). Clones share the job.
pub struct MapJob<R, E> {
    inner: Arc<(Mutex<Collector<R, E>>, Condvar)>,
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
            parts: (0..chunks).map(|_| None).collect(),
            remaining: chunks,
            chunksize,
            error: None,
            done: None,
            finished: (chunks == 0).then(|| Ok(Vec::new())),
        };
        Self {
            inner: Arc::new((Mutex::new(c), Condvar::new())),
        }
    }

    /// Chunk `n`'s outcome (ignored past the last chunk, or once every chunk is in).
    pub(crate) fn deliver(&self, n: usize, out: Result<Vec<R>, E>) {
        let mut g = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        if n >= g.parts.len() || g.remaining == 0 {
            return;
        }
        match out {
            Ok(v) => g.parts[n] = Some(v),
            Err(error) => {
                let index = n * g.chunksize;
                if g.error.as_ref().is_none_or(|e| e.index > index) {
                    g.error = Some(MapError { index, error });
                }
            }
        }
        g.remaining -= 1;
        if g.remaining == 0 {
            let result = match g.error.take() {
                Some(e) => Err(e),
                None => Ok(g
                    .parts
                    .iter_mut()
                    .flat_map(|p| p.take().unwrap_or_default())
                    .collect()),
            };
            match g.done.take() {
                Some(done) => {
                    drop(g);
                    done(result);
                }
                None => g.finished = Some(result),
            }
            self.inner.1.notify_all();
        }
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
