//! The lazy `imap` and `imap_unordered` over any [`ChunkPool`]: reads its input only as far as
//! needed to keep `imap_window` chunks in flight, and puts the results back in input order (or
//! hands them out as their chunks come back).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::mpsc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ChunkPool;
use crate::error::{MapError, PoolFailure};

/// The outcome of one chunk, by chunk number.
type ChunkOutcome<R, E> = (usize, Result<Vec<R>, E>);

/// The lazy iterator of `imap` and `imap_unordered` (of [`Pool`](crate::Pool) as
/// [`ipc_pool::Imap`](crate::Imap), and of every other [`ChunkPool`]): yields `Ok(result)` or
/// the item's error, in input order (or completion order, unordered). A failed chunk yields
/// one error, for its first item; the items after it still come.
#[must_use = "an imap submits work only as it is iterated"]
pub struct Imap<'p, P: ChunkPool, A, R> {
    pool: &'p P,
    func: P::Func,
    input: Box<dyn Iterator<Item = A> + 'p>,
    exhausted: bool,
    chunksize: usize,
    ordered: bool,
    next_chunk: usize,
    next_to_yield: usize,
    in_flight: usize,
    tx: mpsc::Sender<ChunkOutcome<R, P::TaskError>>,
    rx: mpsc::Receiver<ChunkOutcome<R, P::TaskError>>,
    done: HashMap<usize, Result<Vec<R>, P::TaskError>>,
    ready: VecDeque<Result<R, MapError<P::TaskError>>>,
    /// The items of the chunks in flight, kept until each has come back: a shared object among
    /// them (a value, a queue) is reopened by the worker through this process's descriptor of
    /// it, which must still be open then.
    kept: HashMap<usize, Vec<A>>,
}

impl<P: ChunkPool, A, R> fmt::Debug for Imap<'_, P, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<'p, P, A, R> Imap<'p, P, A, R>
where
    P: ChunkPool,
    A: Serialize + DeserializeOwned + 'p,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// `f` over `items` in chunks of `chunksize`, yielding the results in input order.
    pub fn ordered<I>(pool: &'p P, f: fn(A) -> R, items: I, chunksize: usize) -> Self
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Self::new(pool, f, Box::new(items.into_iter()), chunksize, true)
    }

    /// `f` over `items` in chunks of `chunksize`, yielding each chunk's results as it comes
    /// back (the items of one chunk together, in their order).
    pub fn unordered<I>(pool: &'p P, f: fn(A) -> R, items: I, chunksize: usize) -> Self
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Self::new(pool, f, Box::new(items.into_iter()), chunksize, false)
    }

    fn new(
        pool: &'p P,
        f: fn(A) -> R,
        input: Box<dyn Iterator<Item = A> + 'p>,
        chunksize: usize,
        ordered: bool,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            pool,
            func: pool.map_func(f),
            input,
            exhausted: false,
            chunksize: chunksize.max(1),
            ordered,
            next_chunk: 0,
            next_to_yield: 0,
            in_flight: 0,
            tx,
            rx,
            done: HashMap::new(),
            ready: VecDeque::new(),
            kept: HashMap::new(),
        }
    }
}

impl<P, A, R> Imap<'_, P, A, R>
where
    P: ChunkPool,
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    fn fill(&mut self) {
        let limit = self.pool.imap_window();
        while !self.exhausted && self.in_flight < limit {
            let chunk: Vec<A> = self.input.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.exhausted = true;
                break;
            }
            let n = self.next_chunk;
            self.next_chunk += 1;
            self.in_flight += 1;
            let tx = self.tx.clone();
            if let Err(e) = self.pool.submit_chunk(self.func, &chunk, move |out| {
                let _ = tx.send((n, out));
            }) {
                let _ = self.tx.send((n, Err(P::TaskError::from_submit(e))));
            }
            self.kept.insert(n, chunk);
        }
    }

    fn push_ready(&mut self, n: usize, out: Result<Vec<R>, P::TaskError>) {
        match out {
            Ok(v) => self.ready.extend(v.into_iter().map(Ok)),
            Err(error) => self.ready.push_back(Err(MapError {
                index: n * self.chunksize,
                error,
            })),
        }
    }
}

impl<P, A, R> Iterator for Imap<'_, P, A, R>
where
    P: ChunkPool,
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    type Item = Result<R, MapError<P::TaskError>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.ordered {
                if let Some(out) = self.done.remove(&self.next_to_yield) {
                    let n = self.next_to_yield;
                    self.next_to_yield += 1;
                    self.push_ready(n, out);
                    continue;
                }
            }
            self.fill();
            if self.in_flight == 0 {
                return None;
            }
            let (n, out) = self.rx.recv().ok()?;
            self.in_flight -= 1;
            self.kept.remove(&n);
            if self.ordered {
                self.done.insert(n, out);
            } else {
                self.push_ready(n, out);
            }
        }
    }
}
