//! The MPI backend (feature `mpi`): [`MpiPool`] and [`MpiExecutor`] over the ranks of an
//! `mpirun` or `srun` job, on rsmpi.
//!
//! | file        | holds                                                                   |
//! |-------------|-------------------------------------------------------------------------|
//! | `mod.rs`    | `MpiPool`, its builder, the master's link                               |
//! | `engine.rs` | the thread that owns every MPI call: init, non-blocking sends, probes, finalize |
//! | `rank.rs`   | a host rank: handshake, lanes, goodbye                                  |
//! | `executor.rs` | `MpiExecutor`                                                         |
//! | `error.rs`  | `MpiError`                                                              |
//!
//! Rank 0 is the master: a [`ClusterPool`] whose hosts are the other ranks, with the same
//! scheduler, handshake (build id, per-host keys), tagged function references and wire format
//! as the zenoh backend; only the transport differs. Every other rank is a host: it runs the
//! chunks it is sent itself, or on `ipc_pool` pools of its own worker processes (`processes`
//! per rank).

mod engine;
mod error;
mod executor;
mod rank;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_core::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::MpiError;
pub use executor::MpiExecutor;

use self::engine::{Cmd, Outbox, TAG_MSG};
use crate::host::{LaneConfig, ServeEnd};
use crate::link::{Events, MasterLink};
use crate::master::{ClusterPool, ClusterPoolBuilder};

/// The master's sends: through the MPI thread, to the host's rank.
struct MpiMasterLink(Arc<Outbox>);

impl MasterLink for MpiMasterLink {
    fn send(&self, peer: &str, bytes: Vec<u8>) {
        if let Some(rank) = engine::rank_of(peer) {
            self.0.push(Cmd::Send {
                rank,
                tag: TAG_MSG,
                bytes,
            });
        }
    }

    fn forget(&self, _: &str) {}
}

impl Drop for MpiMasterLink {
    fn drop(&mut self) {
        // The pool stopped (it sent every host `Shutdown` before dropping its link).
        self.0.push(Cmd::Finish);
    }
}

/// Builder for [`MpiPool`]: `MpiPool::builder().processes(4).from_world()?`.
#[must_use = "a builder does nothing until `from_world` is called"]
pub struct MpiPoolBuilder {
    cluster: ClusterPoolBuilder,
    processes: usize,
    start_method: Option<StartMethod>,
    hosts_timeout: Duration,
}

impl fmt::Debug for MpiPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolBuilder")
            .field("cluster", &self.cluster)
            .field("processes", &self.processes)
            .field("start_method", &self.start_method)
            .finish()
    }
}

impl MpiPoolBuilder {
    /// Worker processes each serving rank runs its chunks on. 0 (the default) runs them in
    /// the rank itself, one at a time: the fastest, but a task that crashes (not a panic: a
    /// panic fails its task) takes the rank, hence the job, down. `n` ≥ 1 runs them on `n`
    /// worker processes of the rank (`ipc_pool` pools): one rank per machine with
    /// `processes(cores)` keeps shared memory the path inside a machine, and a worker that
    /// dies fails only its task.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = n;
        self
    }

    /// How the host ranks start their worker processes (default: `ipc_core`'s, the fork
    /// server, which is started before `MPI_Init`).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Chunks each worker process may hold at once (see
    /// [`ClusterPoolBuilder::credit_per_process`]).
    pub fn credit_per_process(mut self, n: usize) -> Self {
        self.cluster = self.cluster.credit_per_process(n);
        self
    }

    /// How long rank 0 waits for every other rank to join (default 60 s).
    pub fn hosts_timeout(mut self, timeout: Duration) -> Self {
        self.hosts_timeout = timeout;
        self
    }

    /// Runs `f(arg)` once in every worker process of every rank before its first task.
    #[doc(alias = "initargs")]
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.cluster = self.cluster.initializer(f, arg);
        self
    }

    /// Joins the MPI job: on rank 0, returns the pool once every other rank has joined; on
    /// every other rank, serves the pool until it is joined, terminated or dropped, then
    /// returns `None` (MPI is finalised by then). Call it once per process, after
    /// [`crate::init`].
    pub fn from_world(self) -> Result<Option<MpiPool>, MpiError> {
        let method = self.start_method.unwrap_or_else(ipc_core::get_start_method);
        if self.processes > 0 && method == StartMethod::ForkServer {
            warm_fork_server().map_err(MpiError::ForkServer)?;
        }
        let config = LaneConfig {
            processes: self.processes,
            start_method: self.start_method,
            max_tasks: None,
        };
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (events_tx, events_rx) = mpsc::channel::<Events>();
        let (tx, rx) = mpsc::channel::<Cmd>();
        let host_tx = tx.clone();
        let engine = std::thread::Builder::new()
            .name("ipc-cluster-mpi".into())
            .spawn(move || -> Result<Option<ServeEnd>, MpiError> {
                let universe = match engine::initialize() {
                    Ok(u) => u,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(None);
                    }
                };
                let mut wire = engine::Wire::new(universe.world());
                let _ = ready_tx.send(Ok((wire.rank(), wire.size())));
                let out = if wire.rank() == engine::MASTER {
                    engine::serve_master(&mut wire, events_rx.recv().ok(), &rx);
                    Ok(None)
                } else {
                    drop(events_rx);
                    rank::serve(&mut wire, &rx, host_tx, config).map(Some)
                };
                drop(wire);
                // `MPI_Finalize`, in the thread that called `MPI_Init_thread`.
                drop(universe);
                out
            })
            .map_err(MpiError::Thread)?;
        let (rank, size) = match ready_rx.recv() {
            Ok(Ok(world)) => world,
            Ok(Err(e)) => {
                let _ = engine.join();
                return Err(match e {
                    engine::InitFailure::AlreadyInitialized => MpiError::AlreadyInitialized,
                    engine::InitFailure::ThreadLevel(t) => MpiError::ThreadLevel {
                        provided: format!("{t:?}"),
                    },
                });
            }
            Err(_) => {
                return Err(join_engine(engine)
                    .err()
                    .unwrap_or(MpiError::AlreadyInitialized));
            }
        };
        if rank != engine::MASTER {
            return join_engine(engine).map(|_| None);
        }
        let size = usize::try_from(size).unwrap_or(0);
        if size < 2 {
            drop(events_tx);
            let _ = join_engine(engine);
            return Err(MpiError::TooFewRanks { size });
        }
        let outbox = Arc::new(Outbox::new(tx, engine.thread().clone()));
        let built = self
            .cluster
            .min_hosts(size - 1)
            .hosts_timeout(self.hosts_timeout)
            .build_with(|events| {
                let _ = events_tx.send(events);
                Ok(Box::new(MpiMasterLink(outbox)))
            });
        match built {
            Ok(pool) => Ok(Some(MpiPool {
                pool,
                engine: Some(engine),
                size,
            })),
            Err(e) => {
                // The pool and its link are gone: the MPI thread dismisses the hosts.
                let _ = join_engine(engine);
                Err(MpiError::Build(e))
            }
        }
    }
}

fn join_engine(
    engine: JoinHandle<Result<Option<ServeEnd>, MpiError>>,
) -> Result<Option<ServeEnd>, MpiError> {
    engine.join().unwrap_or_else(|_| {
        Err(MpiError::Thread(std::io::Error::other(
            "the MPI thread panicked",
        )))
    })
}

fn noop(_: ()) {}

/// Starts the fork server now, before `MPI_Init`, by running one empty child through it.
fn warm_fork_server() -> Result<(), ipc_core::StartError> {
    let p = ipc_core::Process::builder()
        .start_method(StartMethod::ForkServer)
        .target(noop, ());
    p.start()?;
    let _ = p.join();
    Ok(())
}

/// A pool over the ranks of an MPI job (`mpirun -n N prog`, `srun prog`): rank 0 holds it,
/// every other rank serves it. It dereferences to [`ClusterPool`] for the verbs (`map`,
/// `map_chunksize`, `imap`, `imap_unordered`, `starmap`, `apply`, `apply_async` — a
/// [`Future`](std::future::Future) — and `hosts`).
///
/// ```no_run
/// use ipc_cluster::MpiPool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     ipc_cluster::init();
///     // `mpirun -n 4 prog`: ranks 1..4 serve inside `from_world` and get `None`.
///     let Some(mut pool) = MpiPool::from_world()? else {
///         return Ok(());
///     };
///     assert_eq!(pool.map(square, 0..4u64)?, [0, 1, 4, 9]);
///     pool.close();
///     pool.join(); // the other ranks return from `from_world`; MPI is finalised
///     Ok(())
/// }
/// ```
///
/// A rank that dies (SIGKILL, crash) makes Open MPI abort the whole job, rank 0 included:
/// `mpirun` reports the dead rank and exits with a non-zero status. Use the zenoh backend
/// ([`ClusterPool`] over a `Node`) where a host's death must fail only its own tasks.
#[must_use = "dropping an MPI pool terminates it"]
pub struct MpiPool {
    pool: ClusterPool,
    engine: Option<JoinHandle<Result<Option<ServeEnd>, MpiError>>>,
    size: usize,
}

impl fmt::Debug for MpiPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPool")
            .field("ranks", &self.size)
            .field("pool", &self.pool)
            .finish()
    }
}

impl MpiPool {
    /// A builder (processes per rank, credit, initializer, start method).
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder {
            cluster: ClusterPool::builder(),
            processes: 0,
            start_method: None,
            hosts_timeout: Duration::from_secs(60),
        }
    }

    /// `MpiPool::builder().from_world()`: `Some(pool)` on rank 0, `None` on every other rank
    /// once the pool is done.
    pub fn from_world() -> Result<Option<Self>, MpiError> {
        Self::builder().from_world()
    }

    /// The ranks of the job (`MPI_COMM_WORLD`'s size), the master included.
    pub fn ranks(&self) -> usize {
        self.size
    }

    /// Stops accepting tasks (Python's `close`).
    pub fn close(&self) {
        self.pool.close();
    }

    /// Waits for every submitted task, tells the other ranks to stop, waits for their goodbye
    /// and finalises MPI (Python's `join`).
    pub fn join(&mut self) {
        self.pool.join();
        self.finish();
    }

    /// Stops at once: unfinished tasks fail with [`TaskError::Terminated`](crate::TaskError);
    /// the other ranks stop and MPI is finalised.
    pub fn terminate(&mut self) {
        self.pool.terminate();
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(e) = self.engine.take() {
            let _ = join_engine(e);
        }
    }

    pub(crate) fn cluster(&self) -> &ClusterPool {
        &self.pool
    }
}

impl Deref for MpiPool {
    type Target = ClusterPool;

    fn deref(&self) -> &ClusterPool {
        &self.pool
    }
}

impl Drop for MpiPool {
    fn drop(&mut self) {
        self.terminate();
    }
}
