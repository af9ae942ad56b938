//! What travels between the parent and its workers: tasks on each worker's task queue, and
//! results, initializer outcomes and death notices on the shared result queue. Every message
//! is a typed enum; nothing is a string parsed back.

use std::sync::Arc;

use ipc_core::ObjectHandle;
use ipc_core::process::{FnKey, FnRef};
use serde::{Deserialize, Serialize};

/// Bytes of a result-queue slot: results up to this size travel in the slot, larger ones spill.
pub(super) const SLOT_SIZE: usize = 512;
/// Bytes of a task-queue slot: a batch of small tasks travels in one slot.
pub(super) const TASK_SLOT_SIZE: usize = 2048;
/// The most bytes of task inputs the parent packs into one batch (the rest of the slot holds
/// the reference and the ids).
pub(super) const BATCH_BYTES: usize = TASK_SLOT_SIZE - 256;

/// The most encoded result bytes a worker's result ring carries in one record.
pub(super) const RECORD_BYTES: usize = 48;

/// A small successful result on the worker's own result ring (see `dispatch.rs`): the task's
/// id and its encoded output. Plain data: the parent checks `len` before it reads the bytes.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Record {
    pub(super) id: u64,
    pub(super) len: u32,
    pub(super) _pad: u32,
    pub(super) bytes: [u8; RECORD_BYTES],
}

/// A task's encoded input. In the parent, a range of a buffer shared with the batch it travels
/// in, with the other tasks of its submission (a map encodes all its chunks into one buffer),
/// and kept to hand the task to another worker if its worker dies; in a worker, the bytes as
/// they came. It travels as a sequence of bytes either way.
#[derive(Clone)]
pub(crate) enum Input {
    Shared {
        buf: Arc<[u8]>,
        start: usize,
        end: usize,
    },
    Owned(Vec<u8>),
    /// A short input as a worker received it: no allocation (a `map` of one small item per
    /// task receives thousands of these).
    Inline {
        len: u8,
        bytes: [u8; INLINE_INPUT],
    },
}

/// The most bytes of an input kept in place (the size of the other variants).
const INLINE_INPUT: usize = 30;

impl Input {
    /// The whole of `bytes`, to be shared.
    pub(super) fn shared(bytes: Vec<u8>) -> Self {
        let end = bytes.len();
        Self::Shared {
            buf: bytes.into(),
            start: 0,
            end,
        }
    }

    /// `range` of `buf` (within its bounds: the caller made both).
    pub(super) fn part(buf: &Arc<[u8]>, range: std::ops::Range<usize>) -> Self {
        Self::Shared {
            buf: Arc::clone(buf),
            start: range.start,
            end: range.end,
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Self::Shared { buf, start, end } => &buf[*start..*end],
            Self::Owned(v) => v,
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes().len()
    }
}

impl Serialize for Input {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.bytes())
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(InputVisitor)
    }
}

/// Reads an input's bytes in one piece (serde's `Vec<u8>` reads them a byte at a time).
struct InputVisitor;

impl serde::de::Visitor<'_> for InputVisitor {
    type Value = Input;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Input, E> {
        if v.len() <= INLINE_INPUT {
            let mut bytes = [0; INLINE_INPUT];
            bytes[..v.len()].copy_from_slice(v);
            return Ok(Input::Inline {
                len: v.len() as u8,
                bytes,
            });
        }
        Ok(Input::Owned(v.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Input, E> {
        Ok(Input::Owned(v))
    }
}

/// One task as the parent keeps it: the function reference and its encoded input.
#[derive(Clone)]
pub(crate) struct TaskMsg {
    pub(super) id: u64,
    /// The reply slot of a blocking `apply`'s caller (see `reply.rs`).
    pub(super) reply: Option<u32>,
    pub(super) func: FnRef,
    pub(super) input: Input,
}

/// Tasks of one function for one worker, in one queue message: the reference once, then each
/// task's id, reply slot and input. The worker runs them in order and answers each on its own
/// (in its reply slot, or on the result queue), so that the oldest unanswered task of a dead
/// worker is the one it was running.
#[derive(Serialize, Deserialize)]
pub(super) struct Batch {
    pub(super) func: FnRef,
    pub(super) tasks: Vec<(u64, Option<u32>, Input)>,
}

/// Why a task produced no output, as the worker reports it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Failure {
    /// The function panicked.
    Panicked {
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, if the hook saw it.
        location: Option<String>,
    },
    /// The input could not be decoded, the output encoded, or the reference was refused.
    Codec(String),
}

/// A message on the result queue.
#[derive(Serialize, Deserialize)]
pub(super) enum ResultMsg {
    /// A task finished (from the worker that ran it).
    Done {
        id: u64,
        slot: u32,
        outcome: Result<Vec<u8>, Failure>,
    },
    /// A fresh worker ran the initializer.
    Initialized {
        slot: u32,
        outcome: Result<(), Failure>,
    },
    /// A worker put a result on its ring while the result thread slept: wake up and look.
    Nudge,
    /// A worker died (from the parent's notice thread, behind every result it committed).
    Died {
        slot: u32,
        pid: u32,
        /// Python's exit code, if it could be learned.
        exit_code: Option<i32>,
    },
}

/// What a worker process is started with.
#[derive(Serialize, Deserialize)]
pub(super) struct WorkerArgs {
    pub(super) tasks: ObjectHandle,
    pub(super) results: ObjectHandle,
    /// The reply board (see `reply.rs`).
    pub(super) replies: ObjectHandle,
    /// The worker's own result ring, whose producer it is.
    pub(super) ring: ObjectHandle,
    pub(super) key: FnKey,
    pub(super) slot: u32,
    pub(super) max_tasks: Option<u64>,
    pub(super) init: Option<(FnRef, Vec<u8>)>,
}
