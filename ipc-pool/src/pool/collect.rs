//! Gathering the chunks of one map: each chunk's outcome arrives (in the result thread) in any
//! order; the map ends with the results in input order, or the error of the first failed item.

use std::sync::{Arc, Condvar, Mutex};

use crate::async_result::{AsyncResult, ResultSlot};
use crate::error::{MapError, SubmitError, TaskError};

/// Callbacks of an async map, as Python's `callback` and `error_callback`.
type OnSuccess<R> = Option<Box<dyn FnOnce(&Vec<R>) + Send>>;
type OnError = Option<Box<dyn FnOnce(&TaskError) + Send>>;

/// What runs when every chunk of a map job is in.
type Done<R> = Box<dyn FnOnce(Result<Vec<R>, MapError>) + Send>;

pub(super) struct Collector<R> {
    parts: Vec<Option<Vec<R>>>,
    remaining: usize,
    chunksize: usize,
    error: Option<MapError>,
    done: Option<Done<R>>,
    finished: Option<Result<Vec<R>, MapError>>,
}

/// The chunks of one map, gathered in order as they come back.
pub(super) struct MapJob<R> {
    pub(super) collector: Arc<(Mutex<Collector<R>>, Condvar)>,
}

impl<R: Send + 'static> MapJob<R> {
    pub(super) fn new(chunks: usize, chunksize: usize) -> Self {
        let c = Collector {
            parts: (0..chunks).map(|_| None).collect(),
            remaining: chunks,
            chunksize,
            error: None,
            done: None,
            finished: if chunks == 0 {
                Some(Ok(Vec::new()))
            } else {
                None
            },
        };
        Self {
            collector: Arc::new((Mutex::new(c), Condvar::new())),
        }
    }

    pub(super) fn deliver(
        c: &Arc<(Mutex<Collector<R>>, Condvar)>,
        n: usize,
        out: Result<Vec<R>, TaskError>,
    ) {
        let mut g = c.0.lock().unwrap_or_else(|p| p.into_inner());
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
            c.1.notify_all();
        }
    }

    pub(super) fn get_map(self) -> Result<Vec<R>, MapError> {
        let mut g = self.collector.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.finished.take() {
                return r;
            }
            g = self.collector.1.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(super) fn into_async(
        self,
        on_success: OnSuccess<R>,
        on_error: OnError,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError> {
        let slot = ResultSlot::new(on_success, on_error);
        let mut g = self.collector.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.finished.take() {
            Some(r) => slot.fulfil(r.map_err(|e| e.error)),
            None => {
                let s = Arc::clone(&slot);
                g.done = Some(Box::new(move |r| s.fulfil(r.map_err(|e| e.error))));
            }
        }
        drop(g);
        Ok(AsyncResult::from_slot(slot))
    }
}
