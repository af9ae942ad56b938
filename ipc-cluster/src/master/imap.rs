//! `imap` and `imap_unordered`: lazy maps that read their input only as far as needed.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::mpsc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ClusterPool;
use crate::error::{MapError, TaskError};
use crate::task::TaskFn;

impl ClusterPool {
    /// Applies `f` to the items lazily, yielding results in order (Python's `imap`, chunksize
    /// 1). The input is read only as far as needed to keep the hosts busy (twice their credit),
    /// so an endless iterator works. A failed item yields its error; the items after it still
    /// come.
    pub fn imap<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.imap_chunksize(f, items, 1)
    }

    /// [`imap`](Self::imap) with `chunksize` items per message to a host.
    pub fn imap_chunksize<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Imap::new(
            self,
            TaskFn::map(f),
            Box::new(items.into_iter()),
            chunksize,
            true,
        )
    }

    /// Like [`imap`](Self::imap), but yields each result as soon as its chunk is back, in any
    /// order (Python's `imap_unordered`, chunksize 1).
    pub fn imap_unordered<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.imap_unordered_chunksize(f, items, 1)
    }

    /// [`imap_unordered`](Self::imap_unordered) with `chunksize` items per message (the items
    /// of one chunk come together, in their order).
    pub fn imap_unordered_chunksize<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Imap::new(
            self,
            TaskFn::map(f),
            Box::new(items.into_iter()),
            chunksize,
            false,
        )
    }
}

/// The outcome of one chunk, by chunk number.
type ChunkOutcome<R> = (usize, Result<Vec<R>, TaskError>);

/// The lazy iterator of [`ClusterPool::imap`] and [`ClusterPool::imap_unordered`]: yields
/// `Ok(result)` or the item's error, in input order (or completion order, unordered).
#[must_use = "an imap submits work only as it is iterated"]
pub struct Imap<'p, A, R> {
    pool: &'p ClusterPool,
    func: TaskFn,
    input: Box<dyn Iterator<Item = A> + 'p>,
    exhausted: bool,
    chunksize: usize,
    ordered: bool,
    next_chunk: usize,
    next_to_yield: usize,
    in_flight: usize,
    tx: mpsc::Sender<ChunkOutcome<R>>,
    rx: mpsc::Receiver<ChunkOutcome<R>>,
    done: HashMap<usize, Result<Vec<R>, TaskError>>,
    ready: VecDeque<Result<R, MapError>>,
}

impl<A, R> fmt::Debug for Imap<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<'p, A, R> Imap<'p, A, R>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    fn new(
        pool: &'p ClusterPool,
        func: TaskFn,
        input: Box<dyn Iterator<Item = A> + 'p>,
        chunksize: usize,
        ordered: bool,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            pool,
            func,
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
        }
    }

    fn fill(&mut self) {
        let limit = 2 * self.pool.core().total_credit();
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
                let _ = self.tx.send((n, Err(e.into())));
            }
        }
    }

    fn push_ready(&mut self, n: usize, out: Result<Vec<R>, TaskError>) {
        match out {
            Ok(v) => self.ready.extend(v.into_iter().map(Ok)),
            Err(error) => self.ready.push_back(Err(MapError {
                index: n * self.chunksize,
                error,
            })),
        }
    }
}

impl<A, R> Iterator for Imap<'_, A, R>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    type Item = Result<R, MapError>;

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
            if self.ordered {
                self.done.insert(n, out);
            } else {
                self.push_ready(n, out);
            }
        }
    }
}
