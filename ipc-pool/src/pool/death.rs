//! A worker died: fail the task it was running, hand its other tasks back, start a
//! replacement; or, when replacements keep dying, give up on the pool cleanly.

use std::time::Duration;

use ipc_core::JoinError;

use super::dispatch::{Delivery, Shared, State};
use crate::error::TaskError;
use ipc_core::process::ProcessExit;

/// Replacements that die before finishing a task, in a row, before the pool gives up on them.
const MAX_FUTILE_RESPAWNS: u32 = 5;

/// Handles the death notice of the worker `pid` in `slot`, which ended with `exit_code`.
pub(super) fn on_death(
    shared: &Shared,
    st: &mut State,
    slot: usize,
    pid: u32,
    exit_code: Option<i32>,
    deliveries: &mut Vec<Delivery>,
) {
    let Some(w) = st.workers.get_mut(slot) else {
        return;
    };
    if pid != w.pid {
        return; // a notice about a worker already replaced
    }
    let cause = ProcessExit {
        id: 0,
        pid,
        exit_code,
    }
    .describe();
    w.alive = false;
    let mut lost = std::mem::take(&mut w.outstanding);
    let mut finished_any = w.completed > 0;
    // Tasks it answered in their callers' reply slots are finished, not lost (their callers do
    // the bookkeeping); it ran its tasks in order, so the one it was running comes after them.
    while lost
        .front()
        .is_some_and(|t| t.reply.is_some_and(|s| shared.replies.is_ready(s, t.id)))
    {
        lost.pop_front();
        finished_any = true;
    }
    // The oldest outstanding task is the one it was running: it fails. The others go back.
    if let Some(running) = lost.pop_front() {
        let err = TaskError::WorkerDied {
            pid,
            exit_code,
            cause: cause.clone(),
        };
        if let Some(d) = shared.finish(st, running.id, Err(err)) {
            deliveries.push(d);
        }
    }
    while let Some(t) = lost.pop_back() {
        st.pending.push_front(t);
    }
    let expected_exit = shared
        .config
        .max_tasks
        .is_some_and(|m| st.workers[slot].dispatched >= m);
    if !finished_any && !expected_exit {
        st.futile_respawns += 1;
    }
    if shared.stopping() {
        return;
    }
    if st.futile_respawns > MAX_FUTILE_RESPAWNS {
        let reason =
            format!("workers keep dying before finishing any task (last: pid {pid}, {cause})");
        break_pool(shared, st, deliveries, reason);
        return;
    }
    match shared.start_worker(slot as u32) {
        Ok(new) => st.workers[slot] = new,
        Err(e) => {
            let reason = format!("cannot start a replacement worker: {e}");
            if st.workers.iter().any(|w| w.alive) {
                // The live workers carry on with the pending tasks, one worker short.
                st.broken = None;
            } else {
                break_pool(shared, st, deliveries, reason);
            }
        }
    }
}

/// Gives up on a pool that cannot keep workers alive: stops the workers that remain (so that no
/// task still runs, in particular none holding a chunk of a `map_chunks_mut` slice), then fails
/// every unfinished task and every later submission with `reason`.
fn break_pool(shared: &Shared, st: &mut State, deliveries: &mut Vec<Delivery>, reason: String) {
    for w in st.workers.iter_mut().filter(|w| w.alive) {
        let _ = w.process.kill();
        let _ = w.process.join_timeout(Duration::from_secs(5));
        w.alive = false;
    }
    st.broken = Some(reason.clone());
    fail_all(shared, st, deliveries, || TaskError::PoolBroken {
        reason: reason.clone(),
    });
}

/// Fails every pending and outstanding task with `err()`.
pub(super) fn fail_all(
    shared: &Shared,
    st: &mut State,
    deliveries: &mut Vec<Delivery>,
    err: impl Fn() -> TaskError,
) {
    st.pending.clear();
    for w in &mut st.workers {
        w.outstanding.clear();
    }
    let ids: Vec<u64> = st.sinks.keys().copied().collect();
    for id in ids {
        if let Some(d) = shared.finish(st, id, Err(err())) {
            deliveries.push(d);
        }
    }
}

/// How a worker that `join` reports on ended, in words.
pub(super) fn describe_exit(r: Result<Result<(), String>, JoinError>) -> String {
    match r {
        Ok(Ok(())) => "exited normally".into(),
        Ok(Err(m)) => format!("failed: {m}"),
        Err(JoinError::Signaled { signal }) => ProcessExit::describe_code(Some(-signal)),
        Err(JoinError::Exited { code }) => format!("exited with code {code}"),
        Err(JoinError::Panicked { message }) => format!("panicked: {message}"),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use super::on_death;
    use crate::error::TaskError;
    use crate::pool::dispatch::testing::{Seen, sinks, task, unstarted_pool, worker};

    /// A worker answered task 1 in its reply slot, then died running task 2, before the caller
    /// of task 1 did its bookkeeping: task 1 is finished (its sink is left to its caller), task
    /// 2 fails with the death, and nothing goes back to be run again. (An order the threads of
    /// a real pool almost never produce, built here by hand.)
    #[test]
    fn a_task_answered_in_its_slot_is_finished_and_the_one_after_it_fails() {
        let shared = unstarted_pool();
        shared.replies.arm(0, 1);
        assert!(
            shared.replies.publish(0, 1, b"answer"),
            "the worker's answer"
        );
        let seen: Seen = Arc::default();
        let mut st = shared.lock();
        sinks(&mut st, &seen, &[1, 2]);
        st.workers.push(worker(VecDeque::from([
            task(&shared, 1, Some(0)),
            task(&shared, 2, None),
        ])));
        let mut deliveries = Vec::new();
        on_death(&shared, &mut st, 0, 4242, Some(-9), &mut deliveries);
        assert!(st.pending.is_empty(), "a task went back to be run again");
        assert!(
            st.sinks.contains_key(&1),
            "the answered task's sink is its caller's"
        );
        drop(st);
        for d in deliveries {
            d.deliver();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one task failed");
        assert_eq!(seen[0].0, 2, "the task it was running");
        assert!(
            matches!(seen[0].1, Err(TaskError::WorkerDied { pid: 4242, .. })),
            "{:?}",
            seen[0].1
        );
    }
}
