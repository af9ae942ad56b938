//! `SimpleQueue`: Python's `multiprocessing.SimpleQueue`, the minimal form — `put`, `get`,
//! `is_empty`, `close` — for any serde value, with room enough that producers rarely wait.

use std::fmt;

use ipc_core::ObjectHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CreateError, GetError, OpenError, PutError};
use crate::queue::{Queue, Serde};

/// The number of slots of a [`SimpleQueue`].
pub const SIMPLE_QUEUE_SLOTS: usize = 1024;

/// A queue of serde values with Python's `SimpleQueue` interface.
///
/// ```
/// let mut q = ipc_queue::SimpleQueue::<String>::new()?;
/// q.put("job".to_string())?;
/// assert!(!q.is_empty());
/// assert_eq!(q.get()?, "job");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T> {
    q: Queue<T, Serde>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("queue", &self.q)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new queue in an anonymous segment.
    pub fn new() -> Result<Self, CreateError> {
        Ok(Self {
            q: Queue::<T, Serde>::new(SIMPLE_QUEUE_SLOTS)?,
        })
    }

    /// Attaches to the queue a handle names.
    pub fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        Ok(Self {
            q: Queue::<T, Serde>::open(handle)?,
        })
    }

    /// The handle another process attaches with.
    pub fn handle(&self) -> ObjectHandle {
        self.q.handle()
    }

    /// Another handle of the same queue (see [`Queue::try_clone`]).
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        Ok(Self {
            q: self.q.try_clone()?,
        })
    }

    /// Puts a value (waits only if the queue is full, while a consumer is alive).
    pub fn put(&mut self, value: T) -> Result<(), PutError<T>> {
        self.q.put(value)
    }

    /// Gets the next value, waiting while a producer is alive.
    pub fn get(&mut self) -> Result<T, GetError> {
        self.q.get()
    }

    /// Whether the queue is empty.
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Declares that this handle will put no more values.
    pub fn close(&mut self) {
        self.q.close();
    }
}

/// A simple queue serialises as its handle (to pass it to a child process, as Python pickles a
/// `SimpleQueue` into `Process(args=(q,))`).
impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> serde::Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            q: <Queue<T, Serde> as serde::Deserialize>::deserialize(d)?,
        })
    }
}
