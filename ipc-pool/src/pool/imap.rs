//! `imap` and `imap_unordered`: lazy maps that read their input only as far as needed (the
//! iterator is [`raw::Imap`], shared with every other [`ChunkPool`](raw::ChunkPool)).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Pool;
use crate::raw;

/// The lazy iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: yields `Ok(result)` or
/// the item's error, in input order (or completion order, unordered).
pub type Imap<'p, A, R> = raw::Imap<'p, Pool, A, R>;

impl Pool {
    /// Applies `f` to the items lazily, yielding results in order (Python's `imap`, chunksize
    /// 1). The input is read only as far as needed to keep the workers busy, so an endless
    /// iterator works. A failed item yields its error; the items after it still come.
    pub fn imap<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Imap::ordered(self, f, items, 1)
    }

    /// [`imap`](Self::imap) with `chunksize` items per task.
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
        Imap::ordered(self, f, items, chunksize)
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
        Imap::unordered(self, f, items, 1)
    }

    /// [`imap_unordered`](Self::imap_unordered) with `chunksize` items per task (the items of
    /// one chunk come together, in their order).
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
        Imap::unordered(self, f, items, chunksize)
    }
}
