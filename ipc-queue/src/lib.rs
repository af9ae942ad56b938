//! # ipc-queue
//!
//! The data path between processes: a lock-free SPSC ring, the MPMC `Queue<T>`,
//! `Pipe`/`Connection`, all in shared memory, robust to peers killed at any instruction.
//!
//! | Python `multiprocessing`          | `ipc_queue`                                          |
//! |-----------------------------------|------------------------------------------------------|
//! | (none)                            | [`RingBuffer::new`]`(cap)` → ([`Producer`], [`Consumer`]) |
//!
//! ```
//! use ipc_queue::RingBuffer;
//!
//! let (mut tx, mut rx) = RingBuffer::<u64>::new(16)?;
//! tx.push(5 * 5)?;
//! assert_eq!(rx.pop()?, 25);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod joinable_queue;
mod layout;
mod mpmc_index;
mod participants;
mod pipe;
mod primitive;
mod queue;
mod raw_queue;
mod ring;
mod signal;
mod simple_queue;
mod spsc_index;
mod wait;

pub use error::{CreateError, GetError, OpenError, PutError, TryGetError, TryPutError};
pub use joinable_queue::{JoinTimeout, JoinableQueue, TaskDoneError};
pub use participants::MAX_PARTICIPANTS;
pub use pipe::{
    Connection, ConnectionHandle, DEFAULT_PIPE_CAPACITY, MAX_MESSAGE, RecvError, SendError, pipe,
    pipe_simplex, pipe_with_capacity,
};
pub use queue::{DEFAULT_SLOT_SIZE, Encoding, Loan, Plain, Queue, Sample, Serde};
pub use ring::{Consumer, Producer, RingBuffer};
pub use signal::DEFAULT_SPIN;
pub use simple_queue::{SIMPLE_QUEUE_SLOTS, SimpleQueue};
pub use wait::{Waitable, wait};
