//! `PoolBuilder`: the number of workers, their start method, an initializer, recycling; and
//! `build`, which starts the workers and the pool's two threads.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipc_core::process::{FnKey, FnRef};
use ipc_core::{Placement, StartMethod, codec};
use ipc_queue::{GetError, Queue, Serde};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::death::describe_exit;
use super::dispatch::{Config, Shared, State, notice_loop, result_loop};
use super::reply::{self, ReplyBoard};
use super::wire::{Failure, ResultMsg, SLOT_SIZE};
use super::{CREDIT, Pool};
use crate::error::BuildError;
use crate::primitive::{AtomicBool, AtomicU64};
use crate::task;
use ipc_core::process::Supervisor;

/// Builds the initializer's function reference and argument once the pool's key exists.
type MakeInit = Box<dyn FnOnce(&FnKey) -> Result<(FnRef, Vec<u8>), codec::EncodeError>>;

/// Builder for [`Pool`]: `Pool::builder().processes(4).build()?`.
///
/// ```no_run
/// use ipc_pool::Pool;
///
/// fn setup(greeting: String) {
///     println!("{greeting} from {}", std::process::id());
/// }
///
/// let pool = Pool::builder()
///     .processes(4)
///     .initializer(setup, "hello".to_string())
///     .max_tasks_per_child(100)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    pub(super) processes: Option<usize>,
    pub(super) method: Option<StartMethod>,
    pub(super) max_tasks: Option<u64>,
    pub(super) init: Option<MakeInit>,
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
    /// The number of worker processes (default: [`ipc_core::cpu_count`]); 0 is refused by
    /// [`build`](Self::build).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// The start method of the workers (default: ipc-core's default, the fork server).
    /// `StartMethod::Fork` is refused by [`build`](Self::build) with
    /// [`BuildError::ForkStartMethod`]: a pool runs threads, and forking a multi-threaded
    /// process is unsafe.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Each worker exits after this many tasks and is replaced by a fresh one (Python's
    /// `maxtasksperchild`); 0 is refused by [`build`](Self::build).
    #[doc(alias = "maxtasksperchild")]
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// Runs `f(arg)` once in every worker before its first task (Python's `initializer` and
    /// `initargs`). If it panics in a worker of `build`, `build` fails.
    #[doc(alias = "initargs")]
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.init = Some(Box::new(move |key: &FnKey| {
            let input = codec::encode(&vec![arg])?;
            Ok((task::map(key, f), input))
        }));
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<Pool, BuildError> {
        if self.method.unwrap_or_else(ipc_core::get_start_method) == StartMethod::Fork {
            return Err(BuildError::ForkStartMethod);
        }
        if self.processes == Some(0) {
            return Err(BuildError::InvalidArgument {
                what: "the number of processes must be at least 1",
            });
        }
        if self.max_tasks == Some(0) {
            return Err(BuildError::InvalidArgument {
                what: "max_tasks_per_child must be at least 1",
            });
        }
        let processes = self.processes.unwrap_or_else(ipc_core::cpu_count).max(1);
        // Each worker costs this process five descriptors (its task queue, its result ring, its
        // pidfd, its result channel, its status pipe) and a replacement as many again while the
        // old one is reaped: make room for hundreds of workers, as Python's Pool(200) has.
        let _ = ipc_core::process::reserve_descriptors(10 * processes as u64 + 64);
        let key = FnKey::random();
        let init = match self.init {
            Some(make) => Some(make(&key).map_err(BuildError::InitializerArgument)?),
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
            .map_err(BuildError::Queue)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                workers: Vec::new(),
                pending: Default::default(),
                sinks: Default::default(),
                next_id: 0,
                closed: false,
                futile_respawns: 0,
                broken: None,
                joiners: 0,
                free_replies: (0..reply::SLOTS as u32).rev().collect(),
                idle_hint: None,
                last_dispatch: 0,
            }),
            idle: std::sync::Condvar::new(),
            config: Config {
                method: self.method,
                max_tasks: self.max_tasks,
                init,
            },
            key,
            results: results.handle(),
            replies: Arc::new(ReplyBoard::create().map_err(BuildError::Segment)?),
            stop: AtomicBool::new(false),
            supervisor: Supervisor::new().map_err(BuildError::Thread)?,
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
                .map_err(BuildError::Thread)?,
        );
        let s = Arc::clone(&shared);
        pool.threads.push(
            std::thread::Builder::new()
                .name("ipc-pool-supervisor".into())
                .spawn(move || notice_loop(s))
                .map_err(BuildError::Thread)?,
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
            Ok(ResultMsg::Initialized { outcome, .. }) => match outcome {
                Ok(()) => ok += 1,
                Err(Failure::Panicked { message, .. }) | Err(Failure::Codec(message)) => {
                    return Err(BuildError::Initializer { message });
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
            Err(e) => return Err(BuildError::Results(e)),
        }
    }
    Ok(())
}
