//! Gathering the chunks of one map: each chunk's outcome arrives (in the event thread) in any
//! order; the map ends with the results in input order, or the error of the first failed item.

use std::sync::{Arc, Condvar, Mutex};

use crate::error::{MapError, TaskError};

struct Collector<R> {
    parts: Vec<Option<Vec<R>>>,
    remaining: usize,
    chunksize: usize,
    error: Option<MapError>,
}

/// The chunks of one map, gathered in order as they come back.
pub(super) struct MapJob<R> {
    inner: Arc<(Mutex<Collector<R>>, Condvar)>,
}

impl<R> Clone for MapJob<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Send + 'static> MapJob<R> {
    pub(super) fn new(chunks: usize, chunksize: usize) -> Self {
        Self {
            inner: Arc::new((
                Mutex::new(Collector {
                    parts: (0..chunks).map(|_| None).collect(),
                    remaining: chunks,
                    chunksize,
                    error: None,
                }),
                Condvar::new(),
            )),
        }
    }

    /// Chunk `n`'s outcome.
    pub(super) fn deliver(&self, n: usize, out: Result<Vec<R>, TaskError>) {
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
            self.inner.1.notify_all();
        }
    }

    /// Waits for every chunk, then gives the results in order or the first error.
    pub(super) fn get(self) -> Result<Vec<R>, MapError> {
        let mut g = self.inner.0.lock().unwrap_or_else(|p| p.into_inner());
        while g.remaining > 0 {
            g = self.inner.1.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(e) = g.error.take() {
            return Err(e);
        }
        Ok(g.parts
            .iter_mut()
            .flat_map(|p| p.take().unwrap_or_default())
            .collect())
    }
}
