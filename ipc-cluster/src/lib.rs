//! # ipc-cluster
//!
//! The `ipc_pool` `Pool`, `Executor` and `Queue`, across machines. Work travels between hosts in
//! chunks over [zenoh](https://zenoh.io) (peer to peer, no daemon); on each host an
//! `ipc_pool::Pool` of that host's processes runs them, so shared memory stays the path inside a
//! host and the network carries only what crosses hosts. A host that dies (SIGKILL, crash,
//! network cut) fails the chunks it was running, naming it, and its queued chunks go to the
//! other hosts; a master that dies makes every host stop and exit.
//!
//! | Python (`multiprocessing`, `mpi4py.futures`)       | `ipc_cluster`                                   |
//! |----------------------------------------------------|-------------------------------------------------|
//! | `python -m mpi4py.futures prog.py` (master and workers) | `prog --listen tcp/0.0.0.0:7447` and `prog --cluster-worker --connect tcp/MASTER:7447 --processes N`, [`init`] first in `main` |
//! | `MPIPoolExecutor()`, `submit`, `map`, `shutdown`    | [`ClusterExecutor`]: `submit` (a `Future`), `map`, `shutdown` |
//! | `Pool(n)` over hosts: `map`, `imap`, `imap_unordered`, `starmap`, `apply`, `apply_async` | [`ClusterPool`]: the same verbs, `close`, `join`, `terminate` |
//! | `BaseManager(address, authkey).start()` + a shared `Queue` | `ClusterQueue`: an `ipc_queue::Queue` owned by one host, `put`/`get` from any |
//! | `Pipe()`, `send`, `recv` (between two hosts)       | `cluster_pipe(&node, name, end, wait)`: a `ClusterConnection` per end |
//! | `Pool(initializer=f, initargs=(a,))`               | `ClusterPool::builder().initializer(f, a)`: in every worker process of every host |
//!
//! The transport sits behind the `zenoh` feature (off by default: zenoh is a large build).
//! Without it the crate holds the transport-independent parts only (errors, results, the
//! scheduler) and [`init`] refuses `--cluster-worker`. The feature `tls` (implies `zenoh`) adds
//! mutual TLS on `tls/host:port` endpoints: `Node::builder().tls(TlsFiles { root_ca,
//! certificate, private_key })`, or `--tls-root-ca`, `--tls-certificate` and
//! `--tls-private-key` on the command line; a peer whose certificate the cluster's authority
//! did not sign is refused. The feature `mpi` adds the same pool over the ranks of an `mpirun`
//! or `srun` job (`MpiPool`, `MpiExecutor`, on rsmpi): rank 0 holds the pool, the other ranks
//! serve it; a rank's death aborts the whole job, as MPI does.
//!
//! ```no_run
//! # #[cfg(feature = "zenoh")] {
//! use ipc_cluster::{ClusterPool, Node};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     ipc_cluster::init(); // `prog --cluster-worker ...` serves here and exits
//!     let node = Node::builder_from_args(std::env::args()).open()?; // `--listen tcp/0.0.0.0:7447`
//!     let pool = ClusterPool::builder().min_hosts(2).build(&node)?;
//!     println!("{:?}", pool.map(square, 0..100u64)?);
//!     for h in pool.hosts() {
//!         println!("{}: {} tasks", h.name, h.items_done);
//!     }
//!     Ok(())
//! }
//! # }
//! ```
//!
//! Functions are non-capturing `fn`s, as for `ipc_pool`: they travel as authenticated
//! references into the program's executable ([`ipc_core::process::FnRef`]), tagged under a key
//! the master gives each host at its handshake, and a host running another build of the program
//! is refused there ([`BuildId`]). The crate's README has the design, the fault model and the
//! limits.

// Without a backend the transport-independent machinery has no caller outside the tests.
#![cfg_attr(not(any(feature = "zenoh", feature = "mpi")), allow(dead_code))]

mod build_id;
mod bytes;
mod error;
mod executor;
mod host;
mod launch;
mod link;
mod master;
#[cfg(feature = "mpi")]
mod mpi;
mod primitive;
mod task;
mod wire;
#[cfg(feature = "zenoh")]
mod zenoh;

/// The pending result of a task submitted to a cluster pool: `ipc_pool`'s [`AsyncResult`]
/// (Python's `AsyncResult` and a `Future`), failing with this crate's [`TaskError`].
pub type AsyncResult<T> = ipc_pool::AsyncResult<T, TaskError>;
/// Why [`AsyncResult::get_timeout`] returned no value.
pub type GetTimeoutError<T> = ipc_pool::GetTimeoutError<T, TaskError>;
/// `get_timeout` ended at its timeout: the result is handed back, to wait on again.
pub type Timeout<T> = ipc_pool::Timeout<T, TaskError>;
pub use build_id::BuildId;
pub use error::{BuildError, DeathCause, MapError, SubmitError, TaskError, WaitHostsError};
pub use executor::ClusterExecutor;
pub use host::ServeEnd;
pub use launch::{WORKER_FLAG, init};
pub use master::{
    ClusterPool, ClusterPoolBuilder, DEFAULT_JOB, DEFAULT_NO_HOST_TIMEOUT, HostStats, Imap,
};
#[cfg(feature = "mpi")]
pub use mpi::{MpiError, MpiExecutor, MpiPool, MpiPoolBuilder};
pub use wire::Refusal;
#[cfg(feature = "tls")]
pub use zenoh::TlsFiles;
#[cfg(feature = "zenoh")]
pub use zenoh::{
    ClusterConnection, ClusterQueue, DEFAULT_LEASE, DEFAULT_WAIT_MASTER, Node, NodeBuilder,
    NodeError, PipeEnd, PipeOpenError, PipeRecvError, PipeSendError, QueueError, QueueGetError,
    QueuePutError, ServeError, ServeOptions, cluster_pipe, serve,
};
