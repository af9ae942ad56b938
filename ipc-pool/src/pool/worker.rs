//! The worker process's body: take a task, run it, put the outcome; a panic fails the task and
//! the worker lives on.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;

use ipc_core::process::{FnKey, FnRef, panic_message};
use ipc_queue::{GetError, Producer, Queue, Serde};

use super::reply::ReplyBoard;
use super::wire::{Batch, Failure, RECORD_BYTES, Record, ResultMsg, WorkerArgs};
use crate::task;

thread_local! {
    /// Where the last panic of this thread happened, as the panic hook saw it.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn run_task(key: &FnKey, func: &FnRef, input: &[u8]) -> Result<Vec<u8>, Failure> {
    match task::Resolved::new(func, key) {
        Ok(task) => {
            let mut out = Vec::new();
            run_into(&task, input, &mut out).map(|()| out)
        }
        Err(m) => Err(Failure::Codec(m)),
    }
}

/// Runs `task` on `input`, its encoded output in `out` (cleared first, its capacity kept).
fn run_into(task: &task::Resolved, input: &[u8], out: &mut Vec<u8>) -> Result<(), Failure> {
    out.clear();
    match std::panic::catch_unwind(AssertUnwindSafe(|| task.call(input, out))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(m)) => Err(Failure::Codec(m)),
        Err(p) => Err(Failure::Panicked {
            message: panic_message(&*p),
            location: PANIC_LOCATION.with(|l| l.borrow_mut().take()),
        }),
    }
}

/// The worker process's body.
pub(super) fn worker_main(args: WorkerArgs) -> Result<(), String> {
    let mut tasks = Queue::<Batch, Serde>::open_consumer(&args.tasks)
        .map_err(|e| format!("task queue: {e}"))?;
    let mut results = Queue::<ResultMsg, Serde>::open_producer(&args.results)
        .map_err(|e| format!("result queue: {e}"))?;
    let replies = ReplyBoard::open(&args.replies).map_err(|e| format!("reply board: {e}"))?;
    let mut ring = Producer::<Record>::open(&args.ring).map_err(|e| format!("result ring: {e}"))?;
    // Panics are reported to the parent as task failures (with their location); keep stderr
    // for the user's output.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string());
        PANIC_LOCATION.with(|l| *l.borrow_mut() = location);
    }));
    if let Some((func, input)) = &args.init {
        let outcome = run_task(&args.key, func, input).map(drop);
        let failed = outcome.is_err();
        let _ = results.put(ResultMsg::Initialized {
            slot: args.slot,
            outcome,
        });
        if failed {
            return Err("initializer failed".into());
        }
    }
    let mut done = 0u64;
    // Each task's output, the buffer kept from one task to the next.
    let mut output = Vec::new();
    loop {
        let batch = match tasks.get() {
            Ok(b) => b,
            // The parent is gone or the pool shut down.
            Err(GetError::Disconnected) => return Ok(()),
            Err(e) => return Err(format!("task queue: {e}")),
        };
        // The batch's tasks share one reference: its tag is checked once.
        let task = task::Resolved::new(&batch.func, &args.key);
        for (id, reply, input) in &batch.tasks {
            let outcome = match &task {
                Ok(task) => run_into(task, input.bytes(), &mut output),
                Err(m) => Err(Failure::Codec(m.clone())),
            };
            let direct = match (reply, &outcome) {
                (Some(slot), Ok(())) => replies.publish(*slot, *id, &output),
                _ => false,
            };
            let direct = direct
                || match (reply, &outcome) {
                    (None, Ok(())) if output.len() <= RECORD_BYTES => {
                        match push_record(&mut ring, &replies, &mut results, *id, &output) {
                            Some(pushed) => pushed,
                            // The parent is gone.
                            None => return Ok(()),
                        }
                    }
                    _ => false,
                };
            if direct {
                done += 1;
                if args.max_tasks.is_some_and(|m| done >= m) {
                    return Ok(());
                }
                continue;
            }
            let msg = ResultMsg::Done {
                id: *id,
                slot: args.slot,
                outcome: outcome.map(|()| std::mem::take(&mut output)),
            };
            if results.put(msg).is_err() {
                return Ok(());
            }
            done += 1;
            if args.max_tasks.is_some_and(|m| done >= m) {
                return Ok(());
            }
        }
    }
}

/// Puts a small result on the worker's result ring, and nudges the parent's result thread if it
/// sleeps. `Some(false)`: the ring is full (it holds a worker's credit, so never in practice),
/// the result goes on the result queue instead. `None`: the parent is gone.
fn push_record(
    ring: &mut Producer<Record>,
    replies: &ReplyBoard,
    results: &mut Queue<ResultMsg, Serde>,
    id: u64,
    output: &[u8],
) -> Option<bool> {
    let mut rec = Record {
        id,
        len: output.len() as u32,
        _pad: 0,
        bytes: [0; RECORD_BYTES],
    };
    rec.bytes[..output.len()].copy_from_slice(output);
    if ring.push(rec).is_err() {
        return Some(false);
    }
    if replies.nudge_needed() && results.put(ResultMsg::Nudge).is_err() {
        return None;
    }
    Some(true)
}
