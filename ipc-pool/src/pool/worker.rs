//! The worker process's body: take a task, run it, put the outcome; a panic fails the task and
//! the worker lives on.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;

use ipc_core::process::{FnKey, FnRef, panic_message};
use ipc_queue::{GetError, Queue, Serde};

use super::reply::ReplyBoard;
use super::wire::{Batch, Failure, ResultMsg, WorkerArgs};
use crate::task;

thread_local! {
    /// Where the last panic of this thread happened, as the panic hook saw it.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn run_task(key: &FnKey, func: &FnRef, input: &[u8]) -> Result<Vec<u8>, Failure> {
    match task::Resolved::new(func, key) {
        Ok(task) => run_resolved(&task, input),
        Err(m) => Err(Failure::Codec(m)),
    }
}

fn run_resolved(task: &task::Resolved, input: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    match std::panic::catch_unwind(AssertUnwindSafe(|| task.call(input, &mut out))) {
        Ok(Ok(())) => Ok(out),
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
                Ok(task) => run_resolved(task, input),
                Err(m) => Err(Failure::Codec(m.clone())),
            };
            let direct = match (reply, &outcome) {
                (Some(slot), Ok(output)) => replies.publish(*slot, *id, output),
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
                outcome,
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
