//! `Pool`: Python's `multiprocessing.Pool`, on shared-memory queues, that survives killed
//! workers.
//!
//! ## How it works
//!
//! Each worker is a daemon [`Process`] with a task queue of its own; all workers share one
//! result queue (both [`ipc_queue::Queue`]s in shared memory). The parent hands each task to the
//! least loaded worker (at most [`CREDIT`] outstanding per worker) and remembers, per worker,
//! which tasks it handed over, in order. A supervisor thread watches every worker's pidfd, so a
//! death is noticed at once; it then puts a death notice on the result queue, behind every
//! result the dead worker had committed. The result thread, which handles results and notices
//! in queue order, fails the dead worker's oldest outstanding task (the one it was running) with
//! [`TaskError::WorkerDied`], hands the others back to be dispatched again, and starts a
//! replacement. A panicking task fails with its message and its worker lives on.

use crate::primitive::{AtomicBool, AtomicU64, Ordering};
use crate::supervisor::{Supervisor, WorkerExit};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_core::{JoinError, ObjectHandle, Placement, Process, RawArray, StartMethod, codec};
use ipc_queue::{GetError, Queue, Serde};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::async_result::{AsyncResult, Slot};
use crate::error::{BuildError, MapError, SubmitError, TaskError};
use crate::function::{ChunkInput, FnRef, Key, PlainInput};

/// Bytes of a task or result message that travel inside a queue slot; larger ones (big chunks)
/// go to a segment of their own.
const SLOT_SIZE: usize = 512;
/// Chunks of at least this many items of primitive numbers travel by placement in shared
/// arrays; smaller ones are cheaper inline in the task message.
const PLAIN_MIN_CHUNK: usize = 64;

/// The largest pair of plain-map arrays a pool keeps for reuse, in bytes.
const SCRATCH_MAX: usize = 64 << 20;

/// Tasks handed to one worker and not yet answered, at most.
pub const CREDIT: usize = 32;
/// How often the supervisor re-reads the set of workers and the shutdown flag.
const SUPERVISOR_SLICE: Duration = Duration::from_millis(20);
/// How often the result thread checks the shutdown flag while no result arrives.
const RESULT_SLICE: Duration = Duration::from_millis(50);
/// Id of the message a worker sends once its initializer has run.
const INIT_ID: u64 = u64::MAX;
/// Id of a death notice from the supervisor.
const DEATH_ID: u64 = u64::MAX - 1;
/// Replacements that die before finishing a task, in a row, before the pool gives up on them.
const MAX_FUTILE_RESPAWNS: u32 = 5;

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct TaskMsg {
    id: u64,
    func: FnRef,
    input: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
enum Failure {
    Panicked(String),
    Codec(String),
    Died(String),
}

#[derive(Serialize, Deserialize)]
struct ResultMsg {
    id: u64,
    slot: u32,
    outcome: Result<Vec<u8>, Failure>,
}

#[derive(Serialize, Deserialize)]
struct WorkerArgs {
    tasks: ObjectHandle,
    results: ObjectHandle,
    key: Key,
    slot: u32,
    max_tasks: Option<u64>,
    init: Option<(FnRef, Vec<u8>)>,
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

fn run_task(key: &Key, func: &FnRef, input: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    match std::panic::catch_unwind(AssertUnwindSafe(|| func.call(key, input, &mut out))) {
        Ok(Ok(())) => Ok(out),
        Ok(Err(m)) => Err(Failure::Codec(m)),
        Err(p) => Err(Failure::Panicked(panic_message(p))),
    }
}

/// The worker process's body.
fn worker_main(args: WorkerArgs) -> Result<(), String> {
    let mut tasks = Queue::<TaskMsg, Serde>::open_consumer(&args.tasks)
        .map_err(|e| format!("task queue: {e}"))?;
    let mut results = Queue::<ResultMsg, Serde>::open_producer(&args.results)
        .map_err(|e| format!("result queue: {e}"))?;
    // Panics are reported to the parent as task failures; keep stderr for the user's output.
    std::panic::set_hook(Box::new(|_| {}));
    if let Some((func, input)) = &args.init {
        let outcome = run_task(&args.key, func, input);
        let failed = outcome.is_err();
        let _ = results.put(ResultMsg {
            id: INIT_ID,
            slot: args.slot,
            outcome,
        });
        if failed {
            return Err("initializer failed".into());
        }
    }
    let mut done = 0u64;
    loop {
        let task = match tasks.get() {
            Ok(t) => t,
            // The parent is gone or the pool shut down.
            Err(GetError::Disconnected) => return Ok(()),
            Err(e) => return Err(format!("task queue: {e}")),
        };
        let outcome = run_task(&args.key, &task.func, &task.input);
        if results
            .put(ResultMsg {
                id: task.id,
                slot: args.slot,
                outcome,
            })
            .is_err()
        {
            return Ok(());
        }
        done += 1;
        if args.max_tasks.is_some_and(|m| done >= m) {
            return Ok(());
        }
    }
}

type Sink = Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>;

struct Worker {
    process: Arc<Process<Result<(), String>>>,
    pid: u32,
    queue: Queue<TaskMsg, Serde>,
    outstanding: VecDeque<TaskMsg>,
    dispatched: u64,
    completed: u64,
    alive: bool,
}

struct State {
    workers: Vec<Worker>,
    pending: VecDeque<TaskMsg>,
    sinks: HashMap<u64, Sink>,
    next_id: u64,
    closed: bool,
    futile_respawns: u32,
    broken: Option<String>,
}

struct Config {
    method: Option<StartMethod>,
    max_tasks: Option<u64>,
    init: Option<(FnRef, Vec<u8>)>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a task finishes (for `join`).
    idle: std::sync::Condvar,
    config: Config,
    key: Key,
    results: ObjectHandle,
    stop: AtomicBool,
    /// Watches every worker's pidfd and reports exits at once.
    supervisor: Supervisor,
    /// Makes each watched worker's id unique.
    watch_serial: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_worker(&self, slot: u32) -> Result<Worker, BuildError> {
        let queue = Queue::<TaskMsg, Serde>::create(&Placement::Anonymous, CREDIT, SLOT_SIZE)
            .map_err(|e| BuildError::Channel(e.to_string()))?;
        let args = WorkerArgs {
            tasks: queue.handle(),
            results: self.results.clone(),
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
        // A watch id unique to this worker process; its low half names the slot.
        let id = (self.watch_serial.fetch_add(1, Ordering::Relaxed) << 32) | u64::from(slot);
        if let Err(e) = self.supervisor.watch(id, Arc::clone(&process)) {
            let _ = process.kill();
            return Err(BuildError::Channel(format!("cannot watch the worker: {e}")));
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

    /// Hands pending tasks to workers with credit left.
    fn dispatch(&self, st: &mut State) {
        while let Some(task) = st.pending.front() {
            let max = self.config.max_tasks;
            let best = st
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    w.alive && w.outstanding.len() < CREDIT && max.is_none_or(|m| w.dispatched < m)
                })
                .min_by_key(|(_, w)| w.outstanding.len())
                .map(|(i, _)| i);
            let Some(i) = best else { return };
            let w = &mut st.workers[i];
            match w.queue.try_put(task.clone()) {
                Ok(()) => {
                    w.dispatched += 1;
                    let task = st.pending.pop_front().expect("front exists");
                    st.workers[i].outstanding.push_back(task);
                }
                // Full or disconnected: the supervisor will report this worker soon.
                Err(_) => {
                    st.workers[i].alive = false;
                }
            }
        }
    }

    fn finish(
        &self,
        st: &mut State,
        id: u64,
        outcome: Result<Vec<u8>, TaskError>,
    ) -> Option<Box<dyn FnOnce() + Send>> {
        let sink = st.sinks.remove(&id)?;
        Some(Box::new(move || sink(outcome)))
    }
}

/// A pool of worker processes, like Python's `multiprocessing.Pool`.
///
/// ```no_run
/// use ipc_pool::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::builder().processes(3).build()?;
/// assert_eq!(pool.map(square, [1, 2, 3, 4, 5])?, [1, 4, 9, 16, 25]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping a pool terminates it, as leaving Python's `with Pool(...)` block does.
pub struct Pool {
    shared: Arc<Shared>,
    /// The input and output arrays of the last plain `map`, kept for the next one.
    scratch: Mutex<Option<(RawArray<u8>, RawArray<u8>)>>,
    processes: usize,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .finish()
    }
}

/// Builds the initializer's function reference and argument once the pool's key exists.
type MakeInit = Box<dyn FnOnce(&Key) -> Result<(FnRef, Vec<u8>), String>>;

/// Builder for [`Pool`]: `Pool::builder().processes(4).build()?`.
pub struct PoolBuilder {
    processes: Option<usize>,
    method: Option<StartMethod>,
    max_tasks: Option<u64>,
    init: Option<MakeInit>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("method", &self.method)
            .field("max_tasks", &self.max_tasks)
            .field("initializer", &self.init.is_some())
            .finish()
    }
}

impl PoolBuilder {
    /// The number of worker processes (default: [`ipc_core::cpu_count`]).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n.max(1));
        self
    }

    /// The start method of the workers (default: ipc-core's default, the fork server).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Each worker exits after this many tasks and is replaced by a fresh one (Python's
    /// `maxtasksperchild`).
    #[doc(alias = "maxtasksperchild")]
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = Some(n.max(1));
        self
    }

    /// Runs `f(arg)` once in every worker before its first task (Python's `initializer` and
    /// `initargs`). If it panics in a worker of `build`, `build` fails.
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.init = Some(Box::new(move |key: &Key| {
            let input = codec::encode(&vec![arg]).map_err(|e| e.to_string())?;
            Ok((FnRef::map(key, f), input))
        }));
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<Pool, BuildError> {
        let processes = self.processes.unwrap_or_else(ipc_core::cpu_count).max(1);
        let key = Key::random();
        let init = match self.init {
            Some(make) => Some(make(&key).map_err(|message| BuildError::Initializer { message })?),
            None => None,
        };
        let has_init = init.is_some();
        // Every worker attaches to the result queue, and a replaced worker's entry is reused
        // once the kernel says it is dead: room for twice the workers, and never below the
        // default.
        let participants = (2 * processes + 16)
            .clamp(ipc_queue::DEFAULT_PARTICIPANTS, ipc_queue::MAX_PARTICIPANTS);
        let mut results = Queue::<ResultMsg, Serde>::builder(processes * CREDIT + 16)
            .placement(Placement::Anonymous)
            .slot_size(SLOT_SIZE)
            .participants(participants)
            .create()
            .map_err(|e| BuildError::Channel(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                workers: Vec::new(),
                pending: VecDeque::new(),
                sinks: HashMap::new(),
                next_id: 0,
                closed: false,
                futile_respawns: 0,
                broken: None,
            }),
            idle: std::sync::Condvar::new(),
            config: Config {
                method: self.method,
                max_tasks: self.max_tasks,
                init,
            },
            key,
            results: results.handle(),
            stop: AtomicBool::new(false),
            supervisor: Supervisor::new().map_err(|e| BuildError::Channel(e.to_string()))?,
            watch_serial: AtomicU64::new(1),
        });
        let mut pool = Pool {
            shared: Arc::clone(&shared),
            scratch: Mutex::new(None),
            processes,
            threads: Vec::new(),
        };
        for slot in 0..processes {
            let w = shared.start_worker(slot as u32)?;
            shared.lock().workers.push(w);
        }
        if has_init {
            wait_for_initializers(&shared, &mut results, processes)?;
        }
        let s = Arc::clone(&shared);
        pool.threads.push(
            std::thread::Builder::new()
                .name("ipc-pool-results".into())
                .spawn(move || result_loop(s, results))
                .map_err(|e| BuildError::Channel(e.to_string()))?,
        );
        let s = Arc::clone(&shared);
        pool.threads.push(
            std::thread::Builder::new()
                .name("ipc-pool-supervisor".into())
                .spawn(move || notice_loop(s))
                .map_err(|e| BuildError::Channel(e.to_string()))?,
        );
        Ok(pool)
    }
}

fn wait_for_initializers(
    shared: &Shared,
    results: &mut Queue<ResultMsg, Serde>,
    n: usize,
) -> Result<(), BuildError> {
    let mut ok = 0;
    while ok < n {
        match results.get_timeout(Duration::from_millis(50)) {
            Ok(msg) if msg.id == INIT_ID => match msg.outcome {
                Ok(_) => ok += 1,
                Err(Failure::Panicked(m)) | Err(Failure::Codec(m)) | Err(Failure::Died(m)) => {
                    return Err(BuildError::Initializer { message: m });
                }
            },
            Ok(_) => {}
            Err(GetError::Timeout) => {
                let st = shared.lock();
                if let Some(w) = st.workers.iter().find(|w| !w.process.is_alive()) {
                    let cause = describe_exit(w.process.join_timeout(Duration::from_secs(1)));
                    return Err(BuildError::Initializer {
                        message: format!("worker {} died before finishing it: {cause}", w.pid),
                    });
                }
            }
            Err(e) => return Err(BuildError::Channel(e.to_string())),
        }
    }
    Ok(())
}

/// How a worker that `join` reports on ended, in words.
fn describe_exit(r: Result<Result<(), String>, JoinError>) -> String {
    match r {
        Ok(Ok(())) => "exited normally".into(),
        Ok(Err(m)) => format!("failed: {m}"),
        Err(JoinError::Signaled { signal }) => WorkerExit {
            id: 0,
            pid: 0,
            exit_code: Some(-signal),
        }
        .describe(),
        Err(JoinError::Exited { code }) => format!("exited with code {code}"),
        Err(JoinError::Panicked { message }) => format!("panicked: {message}"),
        Err(e) => e.to_string(),
    }
}

/// Turns the supervisor's exit reports into death notices on the result queue, behind every
/// result the worker committed before dying.
fn notice_loop(shared: Arc<Shared>) {
    let Ok(mut notices) = Queue::<ResultMsg, Serde>::open_producer(&shared.results) else {
        return;
    };
    // ORDERING: Acquire, pairs with the Release swap in `shutdown`.
    while !shared.stop.load(Ordering::Acquire) {
        let Some(exit) = shared.supervisor.next_exit(SUPERVISOR_SLICE) else {
            continue;
        };
        let slot = (exit.id & u64::from(u32::MAX)) as u32;
        let _ = notices.put(ResultMsg {
            id: DEATH_ID,
            slot,
            outcome: Err(Failure::Died(format!("{}:{}", exit.pid, exit.describe()))),
        });
    }
}

fn to_task_error(f: Failure) -> TaskError {
    match f {
        Failure::Panicked(message) => TaskError::Panicked { message },
        Failure::Codec(message) => TaskError::Codec { message },
        Failure::Died(cause) => TaskError::WorkerDied { pid: 0, cause },
    }
}

/// Handles results and death notices in queue order, dispatching as credit frees up.
fn result_loop(shared: Arc<Shared>, mut results: Queue<ResultMsg, Serde>) {
    loop {
        let msg = match results.get_timeout(RESULT_SLICE) {
            Ok(m) => m,
            Err(GetError::Timeout) => {
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                continue;
            }
            Err(_) => {
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(RESULT_SLICE);
                continue;
            }
        };
        let mut deliveries: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        {
            let mut st = shared.lock();
            let slot = msg.slot as usize;
            match msg.id {
                INIT_ID => {}
                DEATH_ID => on_death(&shared, &mut st, slot, msg.outcome, &mut deliveries),
                id => {
                    if let Some(w) = st.workers.get_mut(slot) {
                        if let Some(pos) = w.outstanding.iter().position(|t| t.id == id) {
                            w.outstanding.remove(pos);
                            w.completed += 1;
                        }
                    }
                    st.futile_respawns = 0;
                    let outcome = msg.outcome.map_err(to_task_error);
                    if let Some(d) = shared.finish(&mut st, id, outcome) {
                        deliveries.push(d);
                    }
                }
            }
            shared.dispatch(&mut st);
        }
        for d in deliveries {
            d();
        }
        shared.idle.notify_all();
    }
}

fn on_death(
    shared: &Shared,
    st: &mut State,
    slot: usize,
    outcome: Result<Vec<u8>, Failure>,
    deliveries: &mut Vec<Box<dyn FnOnce() + Send>>,
) {
    let Some(w) = st.workers.get_mut(slot) else {
        return;
    };
    let (pid, cause) = match outcome {
        Err(Failure::Died(s)) => match s.split_once(':') {
            Some((p, c)) => (p.parse().unwrap_or(0), c.to_owned()),
            None => (0, s),
        },
        _ => (0, "ended".to_owned()),
    };
    if pid != w.pid {
        return; // a notice about a worker already replaced
    }
    w.alive = false;
    let mut lost = std::mem::take(&mut w.outstanding);
    let finished_any = w.completed > 0;
    // The oldest outstanding task is the one it was running: it fails. The others go back.
    if let Some(running) = lost.pop_front() {
        let err = TaskError::WorkerDied {
            pid,
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
    if shared.stop.load(Ordering::Acquire) {
        return;
    }
    if st.futile_respawns > MAX_FUTILE_RESPAWNS {
        let reason = format!("workers keep dying before finishing any task (last: {cause})");
        break_pool(shared, st, deliveries, pid, reason);
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
                break_pool(shared, st, deliveries, pid, reason);
            }
        }
    }
}

/// Gives up on a pool that cannot keep workers alive: stops the workers that remain (so that no
/// task still runs, in particular none holding a chunk of a `map_chunks_mut` array), then fails
/// every unfinished task and every later submission with `reason`.
fn break_pool(
    shared: &Shared,
    st: &mut State,
    deliveries: &mut Vec<Box<dyn FnOnce() + Send>>,
    pid: u32,
    reason: String,
) {
    for w in st.workers.iter_mut().filter(|w| w.alive) {
        let _ = w.process.kill();
        let _ = w.process.join_timeout(Duration::from_secs(5));
        w.alive = false;
    }
    st.broken = Some(reason.clone());
    fail_all(shared, st, deliveries, || TaskError::WorkerDied {
        pid,
        cause: reason.clone(),
    });
}

fn fail_all(
    shared: &Shared,
    st: &mut State,
    deliveries: &mut Vec<Box<dyn FnOnce() + Send>>,
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

/// Whether `T` is a primitive number (no padding, valid for every bit pattern).
fn is_primitive<T: 'static>() -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<u128>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<i128>(),
        TypeId::of::<isize>(),
        TypeId::of::<f32>(),
        TypeId::of::<f64>(),
    ]
    .contains(&t)
}

/// Python's default chunksize for `map`: ceil(n / (4 × workers)).
pub fn default_chunksize(n: usize, workers: usize) -> usize {
    n.div_ceil(4 * workers.max(1)).max(1)
}

impl Pool {
    /// A builder (number of processes, initializer, max tasks per child, start method).
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: None,
            max_tasks: None,
            init: None,
        }
    }

    /// A pool of `n` workers with the default settings.
    pub fn new(n: usize) -> Result<Self, BuildError> {
        Self::builder().processes(n).build()
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The pids of the current workers (they change as workers are replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .lock()
            .workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| w.pid)
            .collect()
    }

    /// Submits one task: `func` applied to the encoded `input`; `sink` receives the encoded
    /// output (in the result thread).
    pub(crate) fn submit_raw(
        &self,
        func: FnRef,
        input: Vec<u8>,
        sink: Sink,
    ) -> Result<(), SubmitError> {
        let mut st = self.shared.lock();
        if st.closed || self.shared.stop.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        if let Some(reason) = &st.broken {
            let reason = reason.clone();
            drop(st);
            sink(Err(TaskError::WorkerDied {
                pid: 0,
                cause: reason,
            }));
            return Ok(());
        }
        let id = st.next_id;
        st.next_id += 1;
        st.sinks.insert(id, sink);
        st.pending.push_back(TaskMsg { id, func, input });
        self.shared.dispatch(&mut st);
        Ok(())
    }

    pub(crate) fn key(&self) -> &Key {
        &self.shared.key
    }

    /// Submits `f` over one chunk of items; the result arrives as `Vec<R>`.
    fn submit_chunk<A, R>(
        &self,
        func: FnRef,
        items: &[A],
        deliver: impl FnOnce(Result<Vec<R>, TaskError>) + Send + 'static,
    ) -> Result<(), SubmitError>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let input = codec::encode(items).map_err(|e| SubmitError::Encode(e.to_string()))?;
        self.submit_raw(
            func,
            input,
            Box::new(move |out| {
                deliver(out.and_then(|bytes| {
                    codec::decode::<Vec<R>>(&bytes).map_err(|e| TaskError::Codec {
                        message: format!("result: {e}"),
                    })
                }))
            }),
        )
    }

    /// Runs `f(arg)` in a worker and waits for its result (Python's `apply`).
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f(arg)` in a worker; returns at once with an [`AsyncResult`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_inner(f, arg, Slot::new(None, None))
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and `error_callback`: one of
    /// them runs in the parent's result thread when the task ends.
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        on_success: impl FnOnce(&R) + Send + 'static,
        on_error: impl FnOnce(&TaskError) + Send + 'static,
    ) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_inner(
            f,
            arg,
            Slot::new(Some(Box::new(on_success)), Some(Box::new(on_error))),
        )
    }

    fn apply_async_inner<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        slot: Arc<Slot<R>>,
    ) -> Result<AsyncResult<R>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = FnRef::map(self.key(), f);
        let s = Arc::clone(&slot);
        self.submit_chunk(
            func,
            std::slice::from_ref(&arg),
            move |r: Result<Vec<R>, TaskError>| {
                s.fulfil(r.and_then(|mut v| {
                    v.pop().ok_or(TaskError::Codec {
                        message: "empty result".into(),
                    })
                }))
            },
        )?;
        Ok(AsyncResult::from_slot(slot))
    }

    /// Applies `f` to every item and returns the results in order (Python's `map`), with
    /// Python's default chunksize. On failure, the error of the first failed item; to keep the
    /// results of the others, use [`imap`](Self::imap).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes);
        self.map_chunksize(f, items, chunk)
    }

    /// [`map`](Self::map) with an explicit chunksize.
    ///
    /// When `A` and `R` are primitive numbers and chunks are large, the items travel by
    /// placement in shared memory (as with [`map_pod`](Self::map_pod)) instead of through the
    /// codec.
    pub fn map_chunksize<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<A> = items.into_iter().collect();
        if chunksize >= PLAIN_MIN_CHUNK && is_primitive::<A>() && is_primitive::<R>() {
            // SAFETY: primitive numbers have no padding and are valid for every bit pattern.
            let func = unsafe { FnRef::plain(self.key(), f) };
            // SAFETY: as above.
            return unsafe { self.map_plain(func, &items, chunksize) };
        }
        let func = FnRef::map(self.key(), f);
        self.map_func(func, &items, chunksize).get_map()
    }

    /// Zero-copy map for plain data: the items are placed once in a shared array, each worker
    /// reads its chunk there and writes its results into a shared output array, and only the
    /// chunk bounds are encoded. Python's default chunksize.
    ///
    /// ```no_run
    /// use ipc_pool::Pool;
    ///
    /// fn half(x: f64) -> f64 {
    ///     x / 2.0
    /// }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.map_pod(half, &[1.0, 2.0, 3.0])?, [0.5, 1.0, 1.5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_pod<A: bytemuck::Pod, R: bytemuck::Pod>(
        &self,
        f: fn(A) -> R,
        items: &[A],
    ) -> Result<Vec<R>, MapError> {
        let chunk = default_chunksize(items.len(), self.processes);
        // SAFETY: `Pod` types have no padding and are valid for every bit pattern.
        let func = unsafe { FnRef::plain(self.key(), f) };
        // SAFETY: as above.
        unsafe { self.map_plain(func, items, chunk) }
    }

    /// # Safety
    /// `A` and `R` must have no padding and be valid for every bit pattern, and `func` must
    /// have been made by `FnRef::plain::<A, R>`.
    unsafe fn map_plain<A: 'static, R: 'static>(
        &self,
        func: FnRef,
        items: &[A],
        chunksize: usize,
    ) -> Result<Vec<R>, MapError> {
        let fail = |message: String| MapError {
            index: 0,
            error: TaskError::Codec { message },
        };
        let n = items.len();
        let in_bytes = n
            .checked_mul(size_of::<A>())
            .ok_or_else(|| fail("input too large".into()))?;
        let out_bytes = n
            .checked_mul(size_of::<R>())
            .ok_or_else(|| fail("output too large".into()))?;
        // Reuse the arrays of an earlier call when they are large enough: the workers keep them
        // mapped, so a steady stream of maps costs no new segment and no page faults.
        let reused = self
            .scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .filter(|(i, o)| i.len() >= in_bytes && o.len() >= out_bytes);
        let (input, output) = match reused {
            Some(pair) => pair,
            None => (
                RawArray::<u8>::new(in_bytes).map_err(|e| fail(e.to_string()))?,
                RawArray::<u8>::new(out_bytes).map_err(|e| fail(e.to_string()))?,
            ),
        };
        // SAFETY: `items` is `in_bytes` initialised bytes (the caller guarantees no padding).
        let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), in_bytes) };
        input.write(0, bytes).map_err(|e| fail(e.to_string()))?;
        let chunksize = chunksize.max(1);
        let starts: Vec<usize> = (0..n).step_by(chunksize).collect();
        let job = MapJob::<()>::new(starts.len(), chunksize);
        let (input_handle, output_handle) = (input.handle(), output.handle());
        for (k, start) in starts.into_iter().enumerate() {
            let task = PlainInput {
                input: input_handle.clone(),
                output: output_handle.clone(),
                start,
                len: chunksize.min(n - start),
            };
            let c = Arc::clone(&job.collector);
            let r = match codec::encode(&task) {
                Ok(bytes) => self.submit_raw(
                    func,
                    bytes,
                    Box::new(move |out| {
                        let out = out.map(|_| Vec::new());
                        MapJob::deliver(&c, k, out)
                    }),
                ),
                Err(e) => Err(SubmitError::Encode(e.to_string())),
            };
            if let Err(e) = r {
                MapJob::deliver(&job.collector, k, Err(e.into()));
            }
        }
        job.get_map()?;
        let keep = input.len() + output.len() <= SCRATCH_MAX;
        let mut out: Vec<R> = Vec::with_capacity(n);
        // SAFETY: the capacity holds `n` elements of `out_bytes` bytes in all; every task has
        // finished, so nobody writes the output array any more; any bytes are a valid `R` (the
        // caller's guarantee), so after the copy the first `n` elements are initialised.
        unsafe {
            std::ptr::copy_nonoverlapping(
                output.as_ptr(),
                out.as_mut_ptr().cast::<u8>(),
                out_bytes,
            );
            out.set_len(n);
        }
        if keep {
            *self.scratch.lock().unwrap_or_else(|p| p.into_inner()) = Some((input, output));
        }
        Ok(out)
    }

    /// Like [`map`](Self::map), returning at once with an [`AsyncResult`] of all results.
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = FnRef::map(self.key(), f);
        let items: Vec<A> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes);
        self.map_func(func, &items, chunk).into_async()
    }

    /// `f(a, b)` for every pair, in order (Python's `starmap`).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, MapError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = FnRef::star(self.key(), f);
        let items: Vec<(A, B)> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes);
        self.map_func(func, &items, chunk).get_map()
    }

    /// Like [`starmap`](Self::starmap), returning at once.
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<AsyncResult<Vec<R>>, SubmitError>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let func = FnRef::star(self.key(), f);
        let items: Vec<(A, B)> = items.into_iter().collect();
        let chunk = default_chunksize(items.len(), self.processes);
        self.map_func(func, &items, chunk).into_async()
    }

    fn map_func<I: Serialize, R>(&self, func: FnRef, items: &[I], chunksize: usize) -> MapJob<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let chunks: Vec<&[I]> = items.chunks(chunksize.max(1)).collect();
        let job = MapJob::<R>::new(chunks.len(), chunksize.max(1));
        for (n, chunk) in chunks.iter().enumerate() {
            let c = Arc::clone(&job.collector);
            let r = self.submit_chunk(func, chunk, move |out: Result<Vec<R>, TaskError>| {
                MapJob::deliver(&c, n, out)
            });
            if let Err(e) = r {
                MapJob::deliver(&job.collector, n, Err(e.into()));
            }
        }
        job
    }

    /// Applies `f` to the items lazily, yielding results in order (Python's `imap`, chunksize
    /// 1). The input is read only as far as needed to keep the workers busy, so an endless
    /// iterator works. A failed item yields its error; the items after it still come.
    pub fn imap<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.imap_chunksize(f, items, 1)
    }

    /// [`imap`](Self::imap) with `chunksize` items per task.
    pub fn imap_chunksize<'p, A, R, I>(
        &'p self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Imap::new(
            self,
            FnRef::map(self.key(), f),
            Box::new(items.into_iter()),
            chunksize,
            true,
        )
    }

    /// Like [`imap`](Self::imap), but yields each result as soon as it is ready, in any order,
    /// with the index of its item (Python's `imap_unordered`).
    pub fn imap_unordered<'p, A, R, I>(&'p self, f: fn(A) -> R, items: I) -> Imap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + 'p,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        Imap::new(
            self,
            FnRef::map(self.key(), f),
            Box::new(items.into_iter()),
            1,
            false,
        )
    }

    /// Zero-copy map over a shared array: the array is cut into chunks of `chunk_len` elements
    /// and each worker runs `f` on `&mut` its chunks, in place. Nothing is serialised but the
    /// chunk bounds. The array is borrowed exclusively until every chunk is done.
    ///
    /// ```no_run
    /// use ipc_core::RawArray;
    /// use ipc_pool::Pool;
    ///
    /// fn square_all(xs: &mut [f64]) {
    ///     for x in xs {
    ///         *x *= *x;
    ///     }
    /// }
    ///
    /// let mut data = RawArray::from_slice(&[1.0, 2.0, 3.0])?;
    /// let pool = Pool::new(2)?;
    /// pool.map_chunks_mut(&mut data, 2, square_all)?;
    /// assert_eq!(data.to_vec(), [1.0, 4.0, 9.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_chunks_mut<T: bytemuck::Pod>(
        &self,
        array: &mut RawArray<T>,
        chunk_len: usize,
        f: fn(&mut [T]),
    ) -> Result<(), MapError> {
        let func = FnRef::chunks(self.key(), f);
        let handle = array.handle();
        let chunk_len = chunk_len.max(1);
        let bounds: Vec<(usize, usize)> = (0..array.len())
            .step_by(chunk_len)
            .map(|s| (s, chunk_len.min(array.len() - s)))
            .collect();
        let job = MapJob::<()>::new(bounds.len(), 1);
        for (n, (start, len)) in bounds.into_iter().enumerate() {
            let input = ChunkInput {
                array: handle.clone(),
                start,
                len,
            };
            let c = Arc::clone(&job.collector);
            let encoded = codec::encode(&input);
            let r = match encoded {
                Ok(bytes) => self.submit_raw(
                    func,
                    bytes,
                    Box::new(move |out| {
                        let out = out.and_then(|b| {
                            codec::decode::<()>(&b).map(|()| vec![()]).map_err(|e| {
                                TaskError::Codec {
                                    message: e.to_string(),
                                }
                            })
                        });
                        MapJob::deliver(&c, n, out)
                    }),
                ),
                Err(e) => Err(SubmitError::Encode(e.to_string())),
            };
            if let Err(e) = r {
                MapJob::deliver(&job.collector, n, Err(e.into()));
            }
        }
        job.get_map().map(drop)
    }

    /// Fails every task not yet handed to a worker with [`TaskError::Terminated`] (used by
    /// [`Executor::shutdown`](crate::Executor::shutdown) with `cancel_futures`).
    pub fn cancel_pending(&self) {
        let mut deliveries = Vec::new();
        {
            let mut st = self.shared.lock();
            let pending: Vec<TaskMsg> = st.pending.drain(..).collect();
            for t in pending {
                if let Some(d) = self
                    .shared
                    .finish(&mut st, t.id, Err(TaskError::Terminated))
                {
                    deliveries.push(d);
                }
            }
        }
        for d in deliveries {
            d();
        }
        self.shared.idle.notify_all();
    }

    /// Stops accepting tasks; the workers exit once the submitted ones are done (Python's
    /// `close`).
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// Waits until every submitted task has finished, then stops the workers (Python's `join`;
    /// call [`close`](Self::close) first, as in Python, or tasks submitted meanwhile keep it
    /// waiting).
    pub fn join(&mut self) {
        let mut st = self.shared.lock();
        while !st.sinks.is_empty() {
            st = self
                .shared
                .idle
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        self.shutdown(false);
    }

    /// Stops the workers at once; unfinished tasks fail with [`TaskError::Terminated`] (Python's
    /// `terminate`).
    pub fn terminate(&mut self) {
        self.shutdown(true);
    }

    fn shutdown(&mut self, kill: bool) {
        if self.shared.stop.swap(true, Ordering::AcqRel) && self.threads.is_empty() {
            return;
        }
        let workers: Vec<Worker>;
        let mut deliveries = Vec::new();
        {
            let mut st = self.shared.lock();
            st.closed = true;
            fail_all(&self.shared, &mut st, &mut deliveries, || {
                TaskError::Terminated
            });
            workers = std::mem::take(&mut st.workers);
        }
        for d in deliveries {
            d();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for mut w in workers {
            if kill {
                let _ = w.process.kill();
            }
            // Closing the task queue tells a worker blocked in `get` to exit.
            w.queue.close();
            drop(w.queue);
            if w.process.join_timeout(Duration::from_secs(2)).is_err() {
                let _ = w.process.kill();
                let _ = w.process.join_timeout(Duration::from_secs(5));
            }
        }
        self.shared.idle.notify_all();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

/// What runs when every chunk of a map job is in.
type Done<R> = Box<dyn FnOnce(Result<Vec<R>, MapError>) + Send>;

struct Collector<R> {
    parts: Vec<Option<Vec<R>>>,
    remaining: usize,
    chunksize: usize,
    error: Option<MapError>,
    done: Option<Done<R>>,
    finished: Option<Result<Vec<R>, MapError>>,
}

struct MapJob<R> {
    collector: Arc<(Mutex<Collector<R>>, std::sync::Condvar)>,
}

impl<R: Send + 'static> MapJob<R> {
    fn new(chunks: usize, chunksize: usize) -> Self {
        let c = Collector {
            parts: (0..chunks).map(|_| None).collect(),
            remaining: chunks,
            chunksize,
            error: None,
            done: None,
            finished: if chunks == 0 {
                Some(Ok(Vec::new()))
            } else {
                None
            },
        };
        Self {
            collector: Arc::new((Mutex::new(c), std::sync::Condvar::new())),
        }
    }

    fn deliver(
        c: &Arc<(Mutex<Collector<R>>, std::sync::Condvar)>,
        n: usize,
        out: Result<Vec<R>, TaskError>,
    ) {
        let mut g = c.0.lock().unwrap_or_else(|p| p.into_inner());
        match out {
            Ok(v) => g.parts[n] = Some(v),
            Err(error) => {
                let index = n * g.chunksize;
                if g.error.as_ref().is_none_or(|e| e.index > index) {
                    g.error = Some(MapError { index, error });
                }
            }
        }
        g.remaining -= 1;
        if g.remaining == 0 {
            let result = match g.error.take() {
                Some(e) => Err(e),
                None => Ok(g
                    .parts
                    .iter_mut()
                    .flat_map(|p| p.take().unwrap_or_default())
                    .collect()),
            };
            match g.done.take() {
                Some(done) => {
                    drop(g);
                    done(result);
                }
                None => g.finished = Some(result),
            }
            c.1.notify_all();
        }
    }

    fn get_map(self) -> Result<Vec<R>, MapError> {
        let mut g = self.collector.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = g.finished.take() {
                return r;
            }
            g = self.collector.1.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn into_async(self) -> Result<AsyncResult<Vec<R>>, SubmitError> {
        let slot = Slot::new(None, None);
        let mut g = self.collector.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.finished.take() {
            Some(r) => slot.fulfil(r.map_err(|e| e.error)),
            None => {
                let s = Arc::clone(&slot);
                g.done = Some(Box::new(move |r| s.fulfil(r.map_err(|e| e.error))));
            }
        }
        drop(g);
        Ok(AsyncResult::from_slot(slot))
    }
}

/// The lazy iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: yields
/// `Ok(result)` or the item's error, in input order (or completion order, unordered).
pub struct Imap<'p, A, R> {
    pool: &'p Pool,
    func: FnRef,
    input: Box<dyn Iterator<Item = A> + 'p>,
    exhausted: bool,
    chunksize: usize,
    ordered: bool,
    next_chunk: usize,
    next_to_yield: usize,
    in_flight: usize,
    tx: mpsc::Sender<(usize, Result<Vec<R>, TaskError>)>,
    rx: mpsc::Receiver<(usize, Result<Vec<R>, TaskError>)>,
    done: HashMap<usize, Result<Vec<R>, TaskError>>,
    ready: VecDeque<Result<R, MapError>>,
    _r: PhantomData<R>,
}

impl<A, R> fmt::Debug for Imap<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<'p, A, R> Imap<'p, A, R>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    fn new(
        pool: &'p Pool,
        func: FnRef,
        input: Box<dyn Iterator<Item = A> + 'p>,
        chunksize: usize,
        ordered: bool,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            pool,
            func,
            input,
            exhausted: false,
            chunksize: chunksize.max(1),
            ordered,
            next_chunk: 0,
            next_to_yield: 0,
            in_flight: 0,
            tx,
            rx,
            done: HashMap::new(),
            ready: VecDeque::new(),
            _r: PhantomData,
        }
    }

    fn fill(&mut self) {
        let limit = 2 * CREDIT * self.pool.processes;
        while !self.exhausted && self.in_flight < limit {
            let chunk: Vec<A> = self.input.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.exhausted = true;
                break;
            }
            let n = self.next_chunk;
            self.next_chunk += 1;
            self.in_flight += 1;
            let tx = self.tx.clone();
            if let Err(e) =
                self.pool
                    .submit_chunk(self.func, &chunk, move |out: Result<Vec<R>, TaskError>| {
                        let _ = tx.send((n, out));
                    })
            {
                let _ = self.tx.send((n, Err(e.into())));
            }
        }
    }

    fn push_ready(&mut self, n: usize, out: Result<Vec<R>, TaskError>) {
        match out {
            Ok(v) => self.ready.extend(v.into_iter().map(Ok)),
            Err(error) => self.ready.push_back(Err(MapError {
                index: n * self.chunksize,
                error,
            })),
        }
    }
}

impl<A, R> Iterator for Imap<'_, A, R>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    type Item = Result<R, MapError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.ordered {
                if let Some(out) = self.done.remove(&self.next_to_yield) {
                    let n = self.next_to_yield;
                    self.next_to_yield += 1;
                    self.push_ready(n, out);
                    continue;
                }
            }
            self.fill();
            if self.in_flight == 0 {
                return None;
            }
            let (n, out) = self.rx.recv().ok()?;
            self.in_flight -= 1;
            if self.ordered {
                self.done.insert(n, out);
            } else {
                self.push_ready(n, out);
            }
        }
    }
}
