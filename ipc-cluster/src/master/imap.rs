//! `imap` and `imap_unordered`: lazy maps that read their input only as far as needed (the
//! iterator is `ipc_pool`'s [`raw::Imap`], over the cluster pool's chunks).

use ipc_pool::raw;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ClusterPool;

/// The lazy iterator of [`ClusterPool::imap`] and [`ClusterPool::imap_unordered`]: yields
/// `Ok(result)` or the item's error, in input order (or completion order, unordered).
pub type Imap<'p, A, R> = raw::Imap<'p, ClusterPool, A, R>;

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
        Imap::ordered(self, f, items, 1)
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
        Imap::unordered(self, f, items, chunksize)
    }
}
