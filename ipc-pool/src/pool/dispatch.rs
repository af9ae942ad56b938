//! The parent's side of the pool: its state, handing tasks to workers with credit, and the two
//! threads that keep it going — the result thread (results, initializer outcomes and death
//! notices) and the notice thread (turns the supervisor's exit reports into death notices on
//! the result queue).
//!
//! ## Where results come back
//!
//! A small successful result (up to [`RECORD_BYTES`] encoded bytes) goes on the worker's own
//! result ring, a single-producer ring in shared memory: a few stores, no claim, no encoding of
//! a message. Everything else (failures, larger results, initializer outcomes, death notices)
//! goes on the shared result queue. The result thread drains the rings and the queue; before it
//! sleeps on the queue it rings a bell on the reply board, and a worker that pushes a record
//! while the bell rings puts a `Nudge` on the queue (an asymmetric barrier pair: a compiler
//! fence per result in the worker, a `membarrier` per sleep in the result thread). A death
//! notice is handled after everything on the dead worker's ring (the ring is drained first; the
//! dead worker pushes nothing more), as it is after everything the worker put on the queue
//! before dying.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipc_core::process::{FnKey, FnRef};
use ipc_core::{ObjectHandle, Placement, Process, StartMethod};
use ipc_queue::{Consumer, GetError, Queue, RingBuffer, Serde};

use super::CREDIT;
use super::death::on_death;
use super::reply::ReplyBoard;
use super::wire::{
    BATCH_BYTES, Batch, Failure, RECORD_BYTES, Record, ResultMsg, TASK_SLOT_SIZE, TaskMsg,
    WorkerArgs,
};
use super::worker::worker_main;
use crate::error::{BuildError, TaskError};
use crate::primitive::{AtomicBool, AtomicU64, Ordering};
use crate::raw::PartSink;
use ipc_core::process::Supervisor;

/// How often the notice thread checks for shutdown while no worker dies.
const SUPERVISOR_SLICE: Duration = Duration::from_millis(20);
/// How often the result thread checks for shutdown while no result comes.
const RESULT_SLICE: Duration = Duration::from_millis(50);
/// How long the result thread sleeps when it could not pair its barrier with the workers'.
const UNPAIRED_SLICE: Duration = Duration::from_millis(1);

/// Receives a task's encoded output (or why there is none), in the result thread.
pub(super) enum Sink {
    /// Any receiver of the output (`apply`, `apply_async`, a chunk of the generic machinery).
    Boxed(crate::raw::Sink<TaskError>),
    /// Chunk `n` of a map job, which decodes the output from the bytes it came in (no buffer
    /// of its own, no allocation per task).
    Part {
        job: Arc<dyn PartSink<TaskError>>,
        n: usize,
    },
}

/// A task's encoded output: as it came on the result queue, or copied out of a record of its
/// worker's result ring.
pub(super) enum Output {
    Bytes(Vec<u8>),
    Record { bytes: [u8; RECORD_BYTES], len: u8 },
}

impl Output {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Bytes(v) => v,
            Self::Record { bytes, len } => &bytes[..usize::from(*len)],
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Self::Bytes(v) => v,
            Self::Record { .. } => self.as_slice().to_vec(),
        }
    }
}

/// A sink bound to its outcome, run once the state lock is released.
pub(super) struct Delivery {
    sink: Sink,
    outcome: Result<Output, TaskError>,
}

impl Delivery {
    /// Hands the outcome to its sink. A user's callback that panics there (the panic hook has
    /// reported it) does not take the result thread down with it: every later result would
    /// wait for a thread that is gone.
    pub(super) fn deliver(self) {
        let Self { sink, outcome } = self;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match sink {
            Sink::Boxed(sink) => sink(outcome.map(Output::into_vec)),
            Sink::Part { job, n } => job.deliver_encoded(
                n,
                outcome.as_ref().map(Output::as_slice).map_err(Clone::clone),
            ),
        }));
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
    /// The consuming end of its result ring, until the result thread takes it.
    pub(super) ring: Option<Consumer<Record>>,
    /// Tasks handed to it and not yet answered, oldest first (the first is the one it runs).
    pub(super) outstanding: VecDeque<TaskMsg>,
    pub(super) dispatched: u64,
    pub(super) completed: u64,
    pub(super) alive: bool,
}

impl Worker {
    /// Takes task `id` off the tasks it holds, as finished; `false` if it did not hold it.
    pub(super) fn retire(&mut self, id: u64) -> bool {
        let Some(pos) = self.outstanding.iter().position(|t| t.id == id) else {
            return false;
        };
        self.outstanding.remove(pos);
        self.completed += 1;
        true
    }
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
    /// A worker that was left with nothing outstanding (checked before use): dispatch takes it
    /// without looking at every worker, as it is as little loaded as a worker can be.
    pub(super) idle_hint: Option<usize>,
    /// The worker the last batch went to.
    pub(super) last_dispatch: usize,
}

impl State {
    /// Takes task `id` off the worker in `slot` as finished, and remembers the worker if that
    /// left it idle; `false` if it did not hold the task.
    pub(super) fn retire(&mut self, slot: usize, id: u64) -> bool {
        let Some(w) = self.workers.get_mut(slot) else {
            return false;
        };
        if !w.retire(id) {
            return false;
        }
        if w.outstanding.is_empty() {
            self.idle_hint = Some(slot);
        }
        true
    }
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
        // The worker opens the producing end; ours is dropped so that the role is free.
        let (producer, ring) = RingBuffer::<Record>::new(2 * CREDIT).map_err(BuildError::Queue)?;
        let ring_handle = producer.handle();
        drop(producer);
        let args = WorkerArgs {
            ring: ring_handle,
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
            ring: Some(ring),
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
            // A worker takes more work once half its credit is back, so that work travels in
            // batches rather than a task per answer.
            let eligible = |w: &Worker| {
                w.alive && w.outstanding.len() <= CREDIT / 2 && max.is_none_or(|m| w.dispatched < m)
            };
            let hinted = st.idle_hint.take().filter(|&i| {
                st.workers
                    .get(i)
                    .is_some_and(|w| w.outstanding.is_empty() && eligible(w))
            });
            let best = hinted.or_else(|| {
                st.workers
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| eligible(w))
                    .min_by_key(|(_, w)| w.outstanding.len())
                    .map(|(i, _)| i)
            });
            let Some(i) = best else { return };
            let w = &st.workers[i];
            let mut room = CREDIT - w.outstanding.len();
            if let Some(m) = max {
                room = room.min((m - w.dispatched) as usize);
            }
            // Spread the work: a batch takes at most its share of what is pending (a task alone
            // needs no count of the workers).
            if st.pending.len() > 1 {
                let alive = st.workers.iter().filter(|w| w.alive).count().max(1);
                room = room.min(st.pending.len().div_ceil(alive));
            }
            room = room.max(1);
            let mut tasks = Vec::new();
            let mut bytes = 0;
            for t in st.pending.iter().take(room) {
                if t.func != func || (!tasks.is_empty() && bytes + t.input.len() > BATCH_BYTES) {
                    break;
                }
                bytes += t.input.len();
                tasks.push((t.id, t.reply, t.input.clone()));
            }
            let n = tasks.len();
            let w = &mut st.workers[i];
            match w.queue.try_put(Batch { func, tasks }) {
                Ok(()) => {
                    w.dispatched += n as u64;
                    let moved = st.pending.drain(..n);
                    st.workers[i].outstanding.extend(moved);
                    st.last_dispatch = i;
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
        outcome: Result<Output, TaskError>,
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

/// The most queue messages the result thread handles under one lock.
const RESULT_BATCH: usize = 64;

/// The result rings of the current workers, by slot, held by the result thread.
type Rings = Vec<Option<Consumer<Record>>>;

/// Takes the rings of workers started since the last call (at the start, and after a
/// replacement).
fn take_rings(st: &mut State, rings: &mut Rings) {
    for (slot, w) in st.workers.iter_mut().enumerate() {
        if let Some(r) = w.ring.take() {
            if rings.len() <= slot {
                rings.resize_with(slot + 1, || None);
            }
            rings[slot] = Some(r);
        }
    }
}

/// Task `id` of the worker in `slot` finished with `outcome`.
fn done(
    shared: &Shared,
    st: &mut State,
    slot: usize,
    id: u64,
    outcome: Result<Output, Failure>,
    deliveries: &mut Vec<Delivery>,
) {
    let pid = st.workers.get(slot).map_or(0, |w| w.pid);
    st.retire(slot, id);
    st.futile_respawns = 0;
    let outcome = outcome.map_err(|f| task_error(f, pid));
    if let Some(d) = shared.finish(st, id, outcome) {
        deliveries.push(d);
    }
}

/// Handles every record on the ring of `slot`; how many.
fn drain_ring(
    shared: &Shared,
    st: &mut State,
    rings: &mut Rings,
    slot: usize,
    deliveries: &mut Vec<Delivery>,
) -> usize {
    let Some(Some(ring)) = rings.get_mut(slot) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(rec) = ring.pop() {
        n += 1;
        let len = rec.len as usize;
        let outcome = if len <= RECORD_BYTES {
            Ok(Output::Record {
                bytes: rec.bytes,
                len: len as u8,
            })
        } else {
            Err(Failure::Codec(format!(
                "a result record of {len} bytes (at most {RECORD_BYTES})"
            )))
        };
        done(shared, st, slot, rec.id, outcome, deliveries);
    }
    n
}

/// Handles one message of the result queue.
fn handle(
    shared: &Shared,
    st: &mut State,
    rings: &mut Rings,
    msg: ResultMsg,
    deliveries: &mut Vec<Delivery>,
) {
    match msg {
        ResultMsg::Initialized { .. } | ResultMsg::Nudge => {}
        ResultMsg::Died {
            slot,
            pid,
            exit_code,
        } => {
            let slot = slot as usize;
            if st.workers.get(slot).is_some_and(|w| w.pid == pid) {
                // Everything the worker pushed before it died comes first.
                drain_ring(shared, st, rings, slot, deliveries);
                if let Some(r) = rings.get_mut(slot) {
                    *r = None;
                }
            }
            on_death(shared, st, slot, pid, exit_code, deliveries);
        }
        ResultMsg::Done { id, slot, outcome } => done(
            shared,
            st,
            slot as usize,
            id,
            outcome.map(Output::Bytes),
            deliveries,
        ),
    }
}

/// Whether any ring holds a record.
fn any_record(rings: &mut Rings) -> bool {
    rings.iter_mut().flatten().any(|r| !r.is_empty())
}

/// Handles results (from the rings and the queue) and death notices, dispatching as credit
/// frees up.
pub(super) fn result_loop(shared: Arc<Shared>, mut results: Queue<ResultMsg, Serde>) {
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut rings: Rings = Vec::new();
    take_rings(&mut shared.lock(), &mut rings);
    // `wait` watches the queue and the rings itself before it sleeps.
    results.set_spin(std::time::Duration::ZERO);
    // A message taken while waiting, handled first.
    let mut first: Option<ResultMsg> = None;
    loop {
        let joiners;
        let handled;
        {
            let mut st = shared.lock();
            let mut n = 0;
            if let Some(msg) = first.take() {
                handle(&shared, &mut st, &mut rings, msg, &mut deliveries);
                n += 1;
            }
            for slot in 0..rings.len() {
                n += drain_ring(&shared, &mut st, &mut rings, slot, &mut deliveries);
            }
            // Whatever is on the queue is handled under the same lock, with one dispatch for
            // all of it.
            for _ in 0..RESULT_BATCH {
                match results.try_get() {
                    Ok(msg) => {
                        handle(&shared, &mut st, &mut rings, msg, &mut deliveries);
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            handled = n > 0;
            if handled {
                shared.dispatch(&mut st);
                take_rings(&mut st, &mut rings);
            }
            joiners = st.joiners;
        }
        for d in deliveries.drain(..) {
            d.deliver();
        }
        // A joiner checks for unfinished tasks under the lock before it waits, so one that
        // came after the lock was released has seen this batch's changes.
        if handled && joiners > 0 {
            shared.idle.notify_all();
        }
        if handled {
            continue;
        }
        match wait(&shared, &mut results, &mut rings) {
            Some(msg) => first = msg,
            None => return,
        }
    }
}

/// Waits for the next result: watches the rings and the queue for the queue's spin, then rings
/// the bell and sleeps on the queue. `Some(message)` (a message taken from the queue, if any)
/// when there may be work; `None` once the pool stops.
fn wait(
    shared: &Shared,
    results: &mut Queue<ResultMsg, Serde>,
    rings: &mut Rings,
) -> Option<Option<ResultMsg>> {
    let start = std::time::Instant::now();
    let mut i = 0u32;
    loop {
        if any_record(rings) || !results.is_empty() {
            return Some(None);
        }
        i = i.wrapping_add(1);
        if i % 16 == 0 && start.elapsed() >= ipc_queue::DEFAULT_SPIN {
            break;
        }
        std::hint::spin_loop();
    }
    let paired = shared.replies.result_thread_sleeps();
    let r = if any_record(rings) {
        Some(None)
    } else {
        // Without the barrier pair a nudge may be missed: sleep briefly, then look again.
        let slice = if paired { RESULT_SLICE } else { UNPAIRED_SLICE };
        match results.get_timeout(slice) {
            Ok(m) => Some(Some(m)),
            Err(GetError::Timeout) => (!shared.stopping()).then_some(None),
            Err(_) => {
                if shared.stopping() {
                    None
                } else {
                    std::thread::sleep(RESULT_SLICE);
                    Some(None)
                }
            }
        }
    };
    shared.replies.result_thread_awake();
    r
}

/// A pool's parent-side state built by hand, with no process started, for tests of the
/// handlers in orders the threads of a real pool almost never produce.
#[cfg(test)]
pub(super) mod testing {
    use std::collections::VecDeque;
    use std::sync::{Arc, Condvar, Mutex};

    use ipc_core::process::{FnKey, Supervisor};
    use ipc_core::{Placement, Process};
    use ipc_queue::{Queue, Serde};

    use super::{Config, Shared, Sink, State, Worker};
    use crate::error::TaskError;
    use crate::pool::reply::ReplyBoard;
    use crate::pool::wire::{Batch, ResultMsg, TASK_SLOT_SIZE, TaskMsg};
    use crate::primitive::{AtomicBool, AtomicU64};

    fn square(x: u64) -> u64 {
        x * x
    }

    fn never_started(_: ()) -> Result<(), String> {
        Ok(())
    }

    /// What each sink received, by task id.
    pub(in crate::pool) type Seen = Arc<Mutex<Vec<(u64, Result<Vec<u8>, TaskError>)>>>;

    /// A pool that is stopping (its death handler starts no replacement) and has no worker.
    pub(in crate::pool) fn unstarted_pool() -> Shared {
        let results = Queue::<ResultMsg, Serde>::builder(4)
            .placement(Placement::Anonymous)
            .create()
            .unwrap();
        Shared {
            state: Mutex::new(State {
                workers: Vec::new(),
                pending: VecDeque::new(),
                sinks: Default::default(),
                next_id: 1000,
                closed: false,
                futile_respawns: 0,
                broken: None,
                joiners: 0,
                free_replies: Vec::new(),
                idle_hint: None,
                last_dispatch: 0,
            }),
            idle: Condvar::new(),
            config: Config {
                method: None,
                max_tasks: None,
                init: None,
            },
            key: FnKey::random(),
            results: results.handle(),
            replies: Arc::new(ReplyBoard::create().unwrap()),
            stop: AtomicBool::new(true),
            supervisor: Supervisor::new().unwrap(),
            watch_serial: AtomicU64::new(1),
        }
    }

    /// Task `id`, answered in reply slot `reply` if any.
    pub(in crate::pool) fn task(shared: &Shared, id: u64, reply: Option<u32>) -> TaskMsg {
        TaskMsg {
            id,
            reply,
            func: crate::task::map(&shared.key, square),
            input: crate::pool::wire::Input::shared(vec![0]),
        }
    }

    /// Sinks for tasks `ids` that record what they receive in `seen`.
    pub(in crate::pool) fn sinks(st: &mut State, seen: &Seen, ids: &[u64]) {
        for &id in ids {
            let seen = Arc::clone(seen);
            st.sinks.insert(
                id,
                Sink::Boxed(Box::new(move |out| seen.lock().unwrap().push((id, out)))),
            );
        }
    }

    /// A worker of pid 4242 (never started) holding `outstanding`.
    pub(in crate::pool) fn worker(outstanding: VecDeque<TaskMsg>) -> Worker {
        Worker {
            process: Arc::new(Process::builder().target(never_started, ())),
            pid: 4242,
            queue: Queue::<Batch, Serde>::create(&Placement::Anonymous, 4, TASK_SLOT_SIZE).unwrap(),
            ring: None,
            dispatched: outstanding.len() as u64,
            outstanding,
            completed: 0,
            alive: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use ipc_queue::RingBuffer;

    use super::testing::{Seen, sinks, task, unstarted_pool, worker};
    use super::{Rings, handle};
    use crate::error::TaskError;
    use crate::pool::wire::{RECORD_BYTES, Record, ResultMsg};

    /// A worker put task 1's result on its ring and died running task 2, and the death notice
    /// is handled before the result thread looked at the ring: the ring is emptied first, so
    /// task 1 gets its result, task 2 fails with the death, and nothing runs again. (An order
    /// the threads of a real pool almost never produce, built here by hand.)
    #[test]
    fn a_death_notice_is_handled_after_everything_on_the_dead_workers_ring() {
        let shared = unstarted_pool();
        let (mut producer, consumer) = RingBuffer::<Record>::new(8).unwrap();
        let mut rec = Record {
            id: 1,
            len: 6,
            _pad: 0,
            bytes: [0; RECORD_BYTES],
        };
        rec.bytes[..6].copy_from_slice(b"answer");
        producer.push(rec).unwrap();
        let mut rings: Rings = vec![Some(consumer)];
        let seen: Seen = Arc::default();
        let mut st = shared.lock();
        sinks(&mut st, &seen, &[1, 2]);
        st.workers.push(worker(VecDeque::from([
            task(&shared, 1, None),
            task(&shared, 2, None),
        ])));
        let mut deliveries = Vec::new();
        let notice = ResultMsg::Died {
            slot: 0,
            pid: 4242,
            exit_code: Some(-9),
        };
        handle(&shared, &mut st, &mut rings, notice, &mut deliveries);
        assert!(st.pending.is_empty(), "a task went back to be run again");
        drop(st);
        for d in deliveries {
            d.deliver();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "both tasks ended");
        assert_eq!(seen[0].0, 1);
        assert_eq!(seen[0].1.as_deref().ok(), Some(&b"answer"[..]));
        assert_eq!(seen[1].0, 2);
        assert!(
            matches!(seen[1].1, Err(TaskError::WorkerDied { pid: 4242, .. })),
            "{:?}",
            seen[1].1
        );
    }

    /// The idle hint is only a hint: a dead worker, or one that has work again, is passed over
    /// for the least loaded live one; an idle live one is taken.
    #[test]
    fn dispatch_takes_the_hinted_worker_only_if_it_is_idle_and_alive() {
        let shared = unstarted_pool();
        let mut st = shared.lock();
        let busy = (1..=3).map(|id| task(&shared, id, None)).collect();
        st.workers.push(worker(busy));
        let mut dead = worker(VecDeque::new());
        dead.alive = false;
        st.workers.push(dead);
        st.workers.push(worker(VecDeque::new()));
        st.workers
            .push(worker(VecDeque::from([task(&shared, 4, None)])));

        st.idle_hint = Some(1);
        st.pending.push_back(task(&shared, 10, None));
        shared.dispatch(&mut st);
        assert_eq!(
            st.workers[2].outstanding.len(),
            1,
            "the least loaded live worker"
        );
        assert!(st.workers[1].outstanding.is_empty(), "not the dead one");

        // Worker 3 answers its task: idle, and hinted.
        assert!(st.retire(3, 4));
        assert_eq!(st.idle_hint, Some(3));
        st.pending.push_back(task(&shared, 11, None));
        shared.dispatch(&mut st);
        assert_eq!(st.workers[3].outstanding.len(), 1, "the hinted idle worker");
        assert_eq!(st.last_dispatch, 3);

        // A hint to a worker that has work again is passed over (worker 2 and 3 hold one
        // task each, worker 0 three): the scan picks one of the least loaded.
        st.idle_hint = Some(0);
        st.pending.push_back(task(&shared, 12, None));
        shared.dispatch(&mut st);
        assert_eq!(
            st.workers[0].outstanding.len(),
            3,
            "not the busy hinted worker"
        );
        assert_eq!(
            st.workers[2].outstanding.len() + st.workers[3].outstanding.len(),
            3
        );
    }
}
