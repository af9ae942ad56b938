//! The parent's side of the pool: its state, handing tasks to workers with credit, and the two
//! threads that keep it going — the result thread (results, initializer outcomes and death
//! notices, in queue order) and the notice thread (turns the supervisor's exit reports into
//! death notices on the result queue).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipc_core::process::{FnKey, FnRef};
use ipc_core::{ObjectHandle, Placement, Process, StartMethod};
use ipc_queue::{GetError, Queue, Serde};

use super::CREDIT;
use super::death::on_death;
use super::reply::ReplyBoard;
use super::wire::{BATCH_BYTES, Batch, Failure, ResultMsg, TASK_SLOT_SIZE, TaskMsg, WorkerArgs};
use super::worker::worker_main;
use crate::error::{BuildError, TaskError};
use crate::primitive::{AtomicBool, AtomicU64, Ordering};
use ipc_core::process::Supervisor;

/// How often the notice thread checks for shutdown while no worker dies.
const SUPERVISOR_SLICE: Duration = Duration::from_millis(20);
/// How often the result thread checks for shutdown while no result comes.
const RESULT_SLICE: Duration = Duration::from_millis(50);

/// Receives a task's encoded output (or why there is none), in the result thread.
pub(super) type Sink = crate::raw::Sink<TaskError>;

/// A sink bound to its outcome, run once the state lock is released.
pub(super) struct Delivery {
    sink: Sink,
    outcome: Result<Vec<u8>, TaskError>,
}

impl Delivery {
    /// Hands the outcome to its sink.
    pub(super) fn deliver(self) {
        (self.sink)(self.outcome);
    }
}

/// Task ids are handed out in sequence, so they hash as themselves: no SipHash per task.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The sinks of unfinished tasks, by task id.
pub(super) type Sinks = HashMap<u64, Sink, std::hash::BuildHasherDefault<IdHasher>>;

/// One worker process and what the parent knows of it.
pub(super) struct Worker {
    pub(super) process: Arc<Process<Result<(), String>>>,
    pub(super) pid: u32,
    pub(super) queue: Queue<Batch, Serde>,
    /// Tasks handed to it and not yet answered, oldest first (the first is the one it runs).
    pub(super) outstanding: VecDeque<TaskMsg>,
    pub(super) dispatched: u64,
    pub(super) completed: u64,
    pub(super) alive: bool,
}

pub(super) struct State {
    pub(super) workers: Vec<Worker>,
    pub(super) pending: VecDeque<TaskMsg>,
    pub(super) sinks: Sinks,
    pub(super) next_id: u64,
    pub(super) closed: bool,
    /// Replacements in a row that died before finishing a task.
    pub(super) futile_respawns: u32,
    /// Why the pool gave up, if it did: every later task fails with it.
    pub(super) broken: Option<String>,
    /// Threads waiting on [`Shared::idle`] (in `Pool::join`): the result thread wakes them
    /// only when there are any (a condition variable's notify is a system call even when
    /// nobody waits).
    pub(super) joiners: usize,
    /// Reply slots no caller holds (see `reply.rs`).
    pub(super) free_replies: Vec<u32>,
}

pub(super) struct Config {
    pub(super) method: Option<StartMethod>,
    pub(super) max_tasks: Option<u64>,
    pub(super) init: Option<(FnRef, Vec<u8>)>,
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// Signalled whenever a task finishes (for `join`).
    pub(super) idle: std::sync::Condvar,
    pub(super) config: Config,
    pub(super) key: FnKey,
    pub(super) results: ObjectHandle,
    /// Where workers answer blocking `apply` calls directly.
    pub(super) replies: Arc<ReplyBoard>,
    pub(super) stop: AtomicBool,
    /// Watches every worker's pidfd and reports exits at once.
    pub(super) supervisor: Supervisor,
    /// Makes each watched worker's id unique.
    pub(super) watch_serial: AtomicU64,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn stopping(&self) -> bool {
        // ORDERING: Acquire, pairs with the AcqRel swap in `Pool::shutdown`.
        self.stop.load(Ordering::Acquire)
    }

    pub(super) fn start_worker(&self, slot: u32) -> Result<Worker, BuildError> {
        let queue = Queue::<Batch, Serde>::create(&Placement::Anonymous, CREDIT, TASK_SLOT_SIZE)
            .map_err(BuildError::Queue)?;
        let args = WorkerArgs {
            tasks: queue.handle(),
            results: self.results.clone(),
            replies: self.replies.handle(),
            key: self.key,
            slot,
            max_tasks: self.config.max_tasks,
            init: self.config.init.clone(),
        };
        let mut builder = Process::builder()
            .name(format!("PoolWorker-{slot}"))
            .daemon(true);
        if let Some(m) = self.config.method {
            builder = builder.start_method(m);
        }
        let process = builder.target(worker_main, args);
        process.start().map_err(BuildError::Start)?;
        let pid = process.pid().unwrap_or(0);
        let process = Arc::new(process);
        // ORDERING: Relaxed, only uniqueness matters, which the read-modify-write gives.
        let serial = self.watch_serial.fetch_add(1, Ordering::Relaxed);
        // A watch id unique to this worker process; its low half names the slot.
        let id = (serial << 32) | u64::from(slot);
        if let Err(e) = self.supervisor.watch(id, Arc::clone(&process)) {
            let _ = process.kill();
            return Err(BuildError::Watch(e));
        }
        Ok(Worker {
            process,
            pid,
            queue,
            outstanding: VecDeque::new(),
            dispatched: 0,
            completed: 0,
            alive: true,
        })
    }

    /// Hands pending tasks to workers with credit left, in batches: the tasks of one function
    /// at the front of the queue, as many as the worker's credit, its `max_tasks_per_child`
    /// and one queue slot allow.
    pub(super) fn dispatch(&self, st: &mut State) {
        let max = self.config.max_tasks;
        while let Some(front) = st.pending.front() {
            let func = front.func;
            let best = st
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    // A worker takes more work once half its credit is back, so that work
                    // travels in batches rather than a task per answer.
                    w.alive
                        && w.outstanding.len() <= CREDIT / 2
                        && max.is_none_or(|m| w.dispatched < m)
                })
                .min_by_key(|(_, w)| w.outstanding.len())
                .map(|(i, _)| i);
            let Some(i) = best else { return };
            let w = &st.workers[i];
            let mut room = CREDIT - w.outstanding.len();
            if let Some(m) = max {
                room = room.min((m - w.dispatched) as usize);
            }
            // Spread the work: a batch takes at most its share of what is pending.
            let alive = st.workers.iter().filter(|w| w.alive).count().max(1);
            room = room.min(st.pending.len().div_ceil(alive)).max(1);
            let mut tasks = Vec::new();
            let mut bytes = 0;
            for t in st.pending.iter().take(room) {
                if t.func != func || (!tasks.is_empty() && bytes + t.input.len() > BATCH_BYTES) {
                    break;
                }
                bytes += t.input.len();
                tasks.push((t.id, t.reply, std::sync::Arc::clone(&t.input)));
            }
            let n = tasks.len();
            let w = &mut st.workers[i];
            match w.queue.try_put(Batch { func, tasks }) {
                Ok(()) => {
                    w.dispatched += n as u64;
                    let moved = st.pending.drain(..n);
                    st.workers[i].outstanding.extend(moved);
                }
                // Full or disconnected: the supervisor will report this worker soon.
                Err(_) => {
                    st.workers[i].alive = false;
                }
            }
        }
    }

    /// Takes the sink of task `id` and binds it to `outcome`.
    pub(super) fn finish(
        &self,
        st: &mut State,
        id: u64,
        outcome: Result<Vec<u8>, TaskError>,
    ) -> Option<Delivery> {
        let sink = st.sinks.remove(&id)?;
        Some(Delivery { sink, outcome })
    }
}

/// Turns the supervisor's exit reports into death notices on the result queue, behind every
/// result the worker committed before dying.
pub(super) fn notice_loop(shared: Arc<Shared>) {
    let Ok(mut notices) = Queue::<ResultMsg, Serde>::open_producer(&shared.results) else {
        return;
    };
    while !shared.stopping() {
        let Some(exit) = shared.supervisor.next_exit(SUPERVISOR_SLICE) else {
            continue;
        };
        let _ = notices.put(ResultMsg::Died {
            slot: (exit.id & u64::from(u32::MAX)) as u32,
            pid: exit.pid,
            exit_code: exit.exit_code,
        });
    }
}

/// A worker's failure report as the caller sees it.
pub(super) fn task_error(f: Failure, pid: u32) -> TaskError {
    match f {
        Failure::Panicked { message, location } => TaskError::Panicked {
            message,
            pid,
            location,
        },
        Failure::Codec(message) => TaskError::Codec { message },
    }
}

/// The most results the result thread handles under one lock.
const RESULT_BATCH: usize = 64;

/// Handles one message of the result queue.
fn handle(shared: &Shared, st: &mut State, msg: ResultMsg, deliveries: &mut Vec<Delivery>) {
    match msg {
        ResultMsg::Initialized { .. } => {}
        ResultMsg::Died {
            slot,
            pid,
            exit_code,
        } => on_death(shared, st, slot as usize, pid, exit_code, deliveries),
        ResultMsg::Done { id, slot, outcome } => {
            let mut pid = 0;
            if let Some(w) = st.workers.get_mut(slot as usize) {
                pid = w.pid;
                if let Some(pos) = w.outstanding.iter().position(|t| t.id == id) {
                    w.outstanding.remove(pos);
                    w.completed += 1;
                }
            }
            st.futile_respawns = 0;
            let outcome = outcome.map_err(|f| task_error(f, pid));
            if let Some(d) = shared.finish(st, id, outcome) {
                deliveries.push(d);
            }
        }
    }
}

/// Handles results and death notices in queue order, dispatching as credit frees up.
pub(super) fn result_loop(shared: Arc<Shared>, mut results: Queue<ResultMsg, Serde>) {
    let mut deliveries: Vec<Delivery> = Vec::new();
    loop {
        let msg = match results.get_timeout(RESULT_SLICE) {
            Ok(m) => m,
            Err(GetError::Timeout) => {
                if shared.stopping() {
                    return;
                }
                continue;
            }
            Err(_) => {
                if shared.stopping() {
                    return;
                }
                std::thread::sleep(RESULT_SLICE);
                continue;
            }
        };
        let joiners;
        {
            let mut st = shared.lock();
            handle(&shared, &mut st, msg, &mut deliveries);
            // Whatever else is already there is handled under the same lock, with one dispatch
            // for all of it.
            for _ in 0..RESULT_BATCH {
                match results.try_get() {
                    Ok(msg) => handle(&shared, &mut st, msg, &mut deliveries),
                    Err(_) => break,
                }
            }
            shared.dispatch(&mut st);
            joiners = st.joiners;
        }
        for d in deliveries.drain(..) {
            d.deliver();
        }
        // A joiner checks for unfinished tasks under the lock before it waits, so one that
        // came after the lock was released has seen this batch's changes.
        if joiners > 0 {
            shared.idle.notify_all();
        }
    }
}
