//! The building blocks of a pool of your own that hands out this crate's [`AsyncResult`]
//! (`ipc-cluster`'s pools are built on them, with errors of their own):
//!
//! | item | what it is |
//! |------|------------|
//! | [`ResultSlot`], [`SuccessCallback`], [`ErrorCallback`] | the producing side of an [`AsyncResult`] and the callbacks it runs |
//! | [`TaskFailure`], [`PoolFailure`] | what a task's error type gives the machinery below |
//! | [`ChunkPool`], [`Chunk`], [`Sink`] | a pool as a backend that runs a function over chunks of encoded items |
//! | [`map_chunk`] | the worker's side of a chunk: decode the items, apply the function, encode the results |
//! | [`Imap`] | the lazy `imap`/`imap_unordered` over any [`ChunkPool`], results put back in order |
//! | [`MapJob`] | a `map`'s chunks gathered in order, waited for or as an [`AsyncResult`] |
//! | [`ExecutorPool`] | what the generic [`Executor`](crate::Executor) drives |
//!
//! [`AsyncResult`]: crate::AsyncResult

mod chunk_pool;
mod collect;
mod imap;

pub use self::chunk_pool::{Chunk, ChunkPool, Sink, map_chunk};
pub use self::collect::MapJob;
pub(crate) use self::collect::PartSink;
pub use self::imap::Imap;
pub use crate::async_result::{ErrorCallback, ResultSlot, SuccessCallback, TaskFailure};
pub use crate::error::PoolFailure;
pub use crate::executor::ExecutorPool;
