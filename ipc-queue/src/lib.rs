//! # ipc-queue
//!
//! The data path between processes, in shared memory: Python's `Queue`, `JoinableQueue`,
//! `SimpleQueue`, `Pipe` and `connection.wait`, and an SPSC ring for the fastest path. All are
//! lock-free and robust to a peer SIGKILLed at any instruction: a dead producer or consumer
//! loses at most the one message it was writing or reading, a blocking call whose every peer
//! is gone returns `Disconnected`, and hostile bytes in shared memory give `Corrupted`, never a
//! panic.
//!
//! | Python `multiprocessing`                 | `ipc_queue`                                          |
//! |------------------------------------------|------------------------------------------------------|
//! | `Queue(maxsize)`                         | [`Queue::<T>::new`](Queue)`(cap)` for `T: Pod`; `Queue::<T, `[`Serde`]`>::new(cap)` for any serde `T` |
//! | `put`, `get`, `put_nowait`, `get_nowait` | `put`, `get`, `try_put`, `try_get`, `put_timeout`, `get_timeout` |
//! | `qsize`, `empty`, `full`, `close`        | `len`, `is_empty`, `is_full`, `close` (then `put` fails with `Closed`) |
//! | `shutdown(immediate)` (3.13)             | [`Queue::shutdown`]                                  |
//! | `JoinableQueue`                          | [`JoinableQueue`]: `task_done`, `join` (a [`JoinError`] instead of waiting for ever on the dead) |
//! | `SimpleQueue`                            | [`SimpleQueue`]                                      |
//! | `Pipe(duplex)`                           | [`pipe`], [`pipe_simplex`] → [`Connection`]s         |
//! | `connection.wait(objects, timeout)`      | [`wait`], with process sentinels among the objects; [`wait_async`] |
//! | (asyncio, a thread per blocking call)    | `*_async` forms: `Queue::get_async`, `Connection::recv_async`, [`Connection::stream`], ... |
//! | `Process(args=(q,))`                     | `Process::new(f, q.try_clone()?)`                    |
//! | (none)                                   | [`RingBuffer::new`]`(cap)` → ([`Producer`], [`Consumer`]) |
//! | (none: `asyncio` has no multiprocessing queue) | `put_async`, `get_async` (and `*_timeout_async`), `stream`, `iter` on [`Queue`]; `join_async` on [`JoinableQueue`]; `push_async`, `pop_async`, `stream` on the ring's ends: for any executor, and a dropped future takes nothing |
//!
//! Every queue has a bound (`Queue::new(0)` is an error): the README says why there is no
//! unbounded queue, and lists every other deliberate difference from Python.
//!
//! ```
//! use ipc_queue::{Queue, RingBuffer, Serde, pipe};
//!
//! let mut q = Queue::<u64>::new(16)?;
//! q.put(5 * 5)?;
//! assert_eq!(q.get()?, 25);
//!
//! let mut names = Queue::<String, Serde>::new(16)?;
//! names.put("any serde value, any size".into())?;
//! assert_eq!(names.get()?, "any serde value, any size");
//!
//! let (mut a, mut b) = pipe()?;
//! a.send(&vec![1, 2, 3])?;
//! assert_eq!(b.recv::<Vec<i32>>()?, [1, 2, 3]);
//!
//! let (mut tx, mut rx) = RingBuffer::<u64>::new(1024)?;
//! tx.push_slice(&[1, 2, 3])?;
//! assert_eq!(rx.pop()?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every object passes to another process by its handle (`handle()`, then `open` there), or as a
//! `Process` argument; `try_clone()` keeps one for the caller. The design notes are in the
//! crate's README.

#[cfg(not(loom))]
mod awaiting;
mod claim;
mod error;
mod fork;
mod joinable_queue;
mod layout;
mod membership;
mod mpmc_index;
mod participants;
mod pipe;
mod primitive;
mod queue;
mod raw_queue;
mod reaper;
mod ring;
mod signal;
mod simple_queue;
mod spill;
mod spsc_index;
mod wait;

pub use error::{CreateError, GetError, OpenError, PutError, TryGetError, TryPutError};
pub use joinable_queue::{JoinError, JoinableQueue, TaskDoneError};
pub use participants::{DEFAULT_PARTICIPANTS, MAX_PARTICIPANTS};
pub use pipe::{
    Connection, ConnectionHandle, DEFAULT_PIPE_CAPACITY, MAX_MESSAGE, PipeBuilder, RecvError,
    SendError, pipe, pipe_simplex, pipe_with_capacity,
};
#[cfg(not(loom))]
pub use pipe::{ConnectionIter, ConnectionStream};
pub use queue::{DEFAULT_SLOT_SIZE, Encoding, Loan, Plain, Queue, QueueBuilder, Sample, Serde};
#[cfg(not(loom))]
pub use queue::{Iter, QueueStream};
#[cfg(not(loom))]
pub use ring::RingStream;
pub use ring::{Consumer, Producer, RingBuffer};
pub use signal::DEFAULT_SPIN;
pub use simple_queue::{SIMPLE_QUEUE_SLOTS, SimpleQueue};
#[cfg(not(loom))]
pub use wait::{WaitFuture, wait_async, wait_timeout_async};
pub use wait::{Waitable, wait};
