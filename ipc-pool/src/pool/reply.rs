//! Direct replies for `apply`: a board of reply slots in shared memory, so that a worker hands
//! a blocking caller its result itself and wakes it, without the parent's result thread in
//! between (two wake-ups per call, the minimum, instead of three).
//!
//! A blocking [`Pool::apply`](super::Pool::apply) takes a free slot, arms it with its task's id
//! and sends the task with the slot's number. The worker that runs the task, if the encoded
//! result fits, claims the slot (`ARMED` → `WRITING`, only for that id), writes the result,
//! marks it `READY` and wakes the caller if it sleeps; it then sends no result message. Anything
//! else (a failure, a result too large, a slot no longer armed for the task) goes the usual way,
//! through the result queue, whose handler delivers it to the task's sink, which marks the slot
//! `DELIVERED`. The caller does the bookkeeping the result thread would have done.
//!
//! A worker that dies after marking its slot `READY` finished that task: the death handler skips
//! it (see `death.rs`) and fails the task it ran next, if any. One that dies while `WRITING` did
//! not: its task fails as any task a worker died running.
//!
//! ## A slot
//!
//! | word | holds                                                                  |
//! |------|------------------------------------------------------------------------|
//! | 0    | the state: the task id << 8, the phase (low 7 bits), [`SLEEPER`] (bit 7) |
//! | 1    | the result's length in bytes (valid once `READY`)                      |
//! | 2..  | the result's bytes, at most [`CAPACITY`]                               |
//!
//! The caller sleeps on the low half of word 0 (a futex), after setting [`SLEEPER`] with a
//! compare-and-swap of the phase it saw; every phase change after that wakes it. Only the
//! caller that armed a slot frees it (word 0 back to 0).

use std::time::{Duration, Instant};

use ipc_core::{ObjectHandle, OpenError, Placement, RawArray, futex};

use crate::primitive::{AtomicU64, Ordering};

/// Slots on the board: as many threads of the parent as may block in `apply` at once; a caller
/// that finds none free takes the result thread's path.
pub(super) const SLOTS: usize = 64;
/// Words per slot (512 bytes: neighbouring slots never share a cache line).
const SLOT_WORDS: usize = 64;
/// The most result bytes a slot holds.
pub(super) const CAPACITY: usize = (SLOT_WORDS - 2) * 8;

/// Armed for a task, nothing written yet.
const ARMED: u64 = 1;
/// A worker is writing the result.
const WRITING: u64 = 2;
/// The result is in the slot.
const READY: u64 = 3;
/// The outcome went to the task's sink (through the result queue, or a failure the parent
/// decided).
const DELIVERED: u64 = 4;
const PHASE: u64 = 0x7f;
/// The caller may be asleep on the word: whoever changes the phase wakes it.
const SLEEPER: u64 = 0x80;

/// How long a caller watches its slot before it sleeps: the answer to a short task lands
/// within it, and the wait costs no system call on either side.
const SPIN: Duration = Duration::from_micros(50);
/// The longest single sleep: a lost wake-up (a killed waker) costs at most this.
const SLICE: Duration = Duration::from_millis(50);

fn state(id: u64, phase: u64) -> u64 {
    (id << 8) | phase
}

/// How a caller's wait ended.
pub(super) enum Reply {
    /// The worker wrote the result (the encoded output) into the slot.
    Ready(Vec<u8>),
    /// The outcome went to the task's sink.
    Delivered,
}

/// Words after the slots: the result thread's bell (see [`ReplyBoard::nudge_needed`]), alone on
/// its cache line.
const BELL_WORDS: usize = 8;
const WORDS: usize = SLOTS * SLOT_WORDS + BELL_WORDS;

/// The board of reply slots (an anonymous shared array the workers map), and the result
/// thread's bell.
pub(super) struct ReplyBoard {
    words: RawArray<u64>,
}

impl ReplyBoard {
    /// A board of [`SLOTS`] free slots.
    pub(super) fn create() -> Result<Self, ipc_core::CreateError> {
        let words = RawArray::<u64>::create(&Placement::Anonymous, WORDS)?;
        Ok(Self { words })
    }

    /// The board `handle` names (in a worker); refused unless it has the board's size.
    pub(super) fn open(handle: &ObjectHandle) -> Result<Self, OpenError> {
        let words = RawArray::<u64>::open(handle)?;
        if words.len() != WORDS {
            return Err(OpenError::Corrupted {
                what: "reply board size",
            });
        }
        Ok(Self { words })
    }

    pub(super) fn handle(&self) -> ObjectHandle {
        self.words.handle()
    }

    /// The bell word: 1 while the parent's result thread sleeps, or is about to, on the result
    /// queue.
    fn bell(&self) -> &AtomicU64 {
        // SAFETY: `SLOTS * SLOT_WORDS` is below the array's length `WORDS` (checked in `open`);
        // aligned, mapped while `self` lives, only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.words.as_ptr().add(SLOTS * SLOT_WORDS)) }
    }

    /// In the result thread, before it sleeps: rings the bell for the next result. The caller
    /// then looks at the rings once more; this is the sleeper's side of the store-buffer pair
    /// with [`nudge_needed`](Self::nudge_needed): either that look finds the worker's record, or
    /// the worker sees the bell. The barrier pair is asymmetric (`ipc_core::raw::barrier`): the
    /// worker pays a compiler fence per result, this side a `membarrier` per sleep. `false`:
    /// the barrier could not be made (a seccomp filter refuses `membarrier` here while a worker
    /// registered for it), so a nudge may be missed: the caller sleeps briefly.
    pub(super) fn result_thread_sleeps(&self) -> bool {
        // ORDERING: Relaxed store, ordered before the caller's next ring loads by `heavy`.
        self.bell().store(1, Ordering::Relaxed);
        ipc_core::raw::barrier::heavy()
    }

    /// In the result thread, once awake.
    pub(super) fn result_thread_awake(&self) {
        // ORDERING: Relaxed: a stale 1 costs one needless nudge, never a lost one.
        self.bell().store(0, Ordering::Relaxed);
    }

    /// In a worker, after it pushed a record on its ring: whether the result thread sleeps and
    /// must be nudged (the first worker to see the bell takes it).
    pub(super) fn nudge_needed(&self) -> bool {
        // ORDERING: the waker's side of the asymmetric pair (see `result_thread_sleeps`): the
        // push's tail store stays before the bell's load.
        ipc_core::raw::barrier::light();
        let bell = self.bell();
        // ORDERING: Relaxed first look (ordered by the barrier pair); SeqCst swap so that one
        // worker takes the bell.
        bell.load(Ordering::Relaxed) == 1 && bell.swap(0, Ordering::SeqCst) == 1
    }

    /// Word `i` of slot `slot`, or `None` if `slot` is not on the board (a corrupted message).
    fn word(&self, slot: u32, i: usize) -> Option<&AtomicU64> {
        let slot = slot as usize;
        if slot >= SLOTS || i >= SLOT_WORDS {
            return None;
        }
        // SAFETY: the index is below the array's length (checked above and in `open`); the
        // array's words are 8-aligned and mapped while `self` lives; every access to them is
        // atomic (these words and the word-wise shared copies below).
        Some(unsafe { AtomicU64::from_ptr(self.words.as_ptr().add(slot * SLOT_WORDS + i)) })
    }

    fn data(&self, slot: u32) -> *mut u8 {
        // SAFETY: `slot < SLOTS` (every caller checked it through `word`): inside the array.
        unsafe {
            self.words
                .as_ptr()
                .add(slot as usize * SLOT_WORDS + 2)
                .cast::<u8>()
        }
    }

    /// Arms free slot `slot` for task `id` (the parent, before it queues the task: the queue
    /// publishes the store to the worker).
    pub(super) fn arm(&self, slot: u32, id: u64) {
        if let Some(w) = self.word(slot, 0) {
            // ORDERING: Release, as every phase change; the task queue's put orders it before
            // the worker reads it.
            w.store(state(id, ARMED), Ordering::Release);
        }
    }

    /// Frees `slot` once its caller is done with it.
    pub(super) fn free(&self, slot: u32) {
        if let Some(w) = self.word(slot, 0) {
            // ORDERING: Release: our reads of the slot happen before it is armed again.
            w.store(0, Ordering::Release);
        }
    }

    /// Whether the result of task `id` is in `slot` (its worker finished it).
    pub(super) fn is_ready(&self, slot: u32, id: u64) -> bool {
        self.word(slot, 0).is_some_and(|w| {
            // ORDERING: Acquire, pairs with the worker's Release: the task is finished.
            w.load(Ordering::Acquire) & !SLEEPER == state(id, READY)
        })
    }

    /// In the worker: puts the encoded output of task `id` into `slot` and wakes its caller.
    /// `false`: not done (the slot is not armed for the task, or the output does not fit); the
    /// output then goes the usual way.
    pub(super) fn publish(&self, slot: u32, id: u64, output: &[u8]) -> bool {
        let Some(w) = self.word(slot, 0) else {
            return false;
        };
        if output.len() > CAPACITY {
            return false;
        }
        // ORDERING: Relaxed, only picks what to try; the CAS decides.
        let mut seen = w.load(Ordering::Relaxed);
        loop {
            if seen & !SLEEPER != state(id, ARMED) {
                return false;
            }
            let writing = (seen & SLEEPER) | state(id, WRITING);
            // ORDERING: Acquire, pairs with the parent's Release arming (the slot is ours to
            // write only after it was armed).
            match w.compare_exchange(seen, writing, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        if let Some(len) = self.word(slot, 1) {
            // ORDERING: Relaxed, published by the Release of the phase change below.
            len.store(output.len() as u64, Ordering::Relaxed);
        }
        // SAFETY: `CAPACITY` bytes after the slot's two header words are inside the array and
        // `output.len() <= CAPACITY`; only the holder of the `WRITING` phase writes them, and
        // every other access goes through these word-wise copies.
        unsafe { ipc_core::pod::copy_to_shared(output, self.data(slot)) };
        // ORDERING: SeqCst: Release publishes the length and the bytes; against the caller's
        // SeqCst CAS that sets `SLEEPER`, either we see its flag and wake it, or its CAS fails
        // and it sees `READY`. (WRITING + 1 = READY; the flag is kept.)
        let before = w.fetch_add(READY - WRITING, Ordering::SeqCst);
        if before & SLEEPER != 0 {
            futex::wake_low(w, u32::MAX);
        }
        true
    }

    /// In the parent, from a task's sink: marks `slot` delivered for task `id` (its outcome is
    /// in the sink's cell) and wakes the caller. Nothing happens if the worker's result is in
    /// the slot already: the task finished, and the caller reads that.
    pub(super) fn deliver(&self, slot: u32, id: u64) {
        let Some(w) = self.word(slot, 0) else {
            return;
        };
        // ORDERING: Relaxed, only picks what to try; the CAS decides.
        let mut seen = w.load(Ordering::Relaxed);
        loop {
            let phase = seen & PHASE;
            // A `WRITING` slot here belongs to a dead worker (a sink runs for a task handed to
            // a worker only after that worker died or was killed and reaped).
            if seen >> 8 != id || !(phase == ARMED || phase == WRITING) {
                return;
            }
            let delivered = (seen & SLEEPER) | state(id, DELIVERED);
            // ORDERING: SeqCst, as the worker's phase change (and Release: the sink's cell,
            // written before, is visible to the caller's Acquire).
            match w.compare_exchange(seen, delivered, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        futex::wake_low(w, u32::MAX);
    }

    /// In the caller: waits until the reply for task `id` is in `slot` or was delivered to the
    /// sink. It watches the slot for [`SPIN`], then sleeps on it.
    pub(super) fn wait(&self, slot: u32, id: u64) -> Reply {
        let Some(w) = self.word(slot, 0) else {
            return Reply::Delivered;
        };
        let start = Instant::now();
        let mut i = 0u32;
        loop {
            // ORDERING: Acquire, pairs with the Release (SeqCst) phase changes of the worker
            // and of the sink: the result bytes, or the sink's cell, are visible.
            let seen = w.load(Ordering::Acquire);
            match seen & PHASE {
                READY => return Reply::Ready(self.read(slot)),
                DELIVERED => return Reply::Delivered,
                _ => {}
            }
            if seen >> 8 != id {
                // Not armed for us: cannot happen while we hold the slot.
                return Reply::Delivered;
            }
            i = i.wrapping_add(1);
            if i % 64 != 0 || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let sleeping = seen | SLEEPER;
            if seen & SLEEPER == 0 {
                // ORDERING: SeqCst, pairs with the SeqCst phase changes (see `publish`).
                if w.compare_exchange(seen, sleeping, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
            }
            let _ = futex::wait_low(w, sleeping as u32, Some(Instant::now() + SLICE));
        }
    }

    /// The result bytes of a `READY` slot.
    fn read(&self, slot: u32) -> Vec<u8> {
        // ORDERING: Relaxed, ordered after the caller's Acquire load of `READY`.
        let len = self
            .word(slot, 1)
            .map_or(0, |w| w.load(Ordering::Relaxed) as usize)
            .min(CAPACITY);
        let mut out = vec![0u8; len];
        // SAFETY: `len <= CAPACITY` bytes after the slot's header words, inside the array; the
        // worker wrote them before its Release, and nobody writes them until we free the slot.
        unsafe { ipc_core::pod::copy_from_shared(self.data(slot), &mut out) };
        out
    }
}
