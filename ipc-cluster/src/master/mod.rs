//! `ClusterPool`: the `ipc_pool` surface over hosts, whatever transport carries the chunks.
//!
//! | file         | holds                                                                  |
//! |--------------|------------------------------------------------------------------------|
//! | `mod.rs`     | `ClusterPool`, its builder, `HostStats`, `close`/`join`/`terminate`      |
//! | `core.rs`    | the state, credit-based dispatch, joins, results, a host's death        |
//! | `map.rs`     | `map`, `starmap`, `apply`, `apply_async`; the pool as an `ipc_pool` `ChunkPool` |
//! | `imap.rs`    | the lazy `imap` verbs                                                    |
//!
//! Cutting work in chunks, `imap`'s reassembly and a map's gathering are `ipc_pool::raw`'s,
//! shared with `ipc_pool::Pool`.

pub(crate) mod core;
mod imap;
mod map;

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_core::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use imap::Imap;

use self::core::{Config, Core, ticker};
use crate::BuildId;
use crate::error::{BuildError, WaitHostsError};
use crate::link::{Events, MasterEvent, MasterLink};
use crate::task::TaskFn;

/// The job name a pool and its hosts meet under unless told otherwise.
pub const DEFAULT_JOB: &str = "default";

/// How long a pool waits without any live host before failing what waits, by default.
pub const DEFAULT_NO_HOST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the master knows of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStats {
    /// The host's name (`hostname:pid` unless it chose one).
    pub name: String,
    /// The host process's pid, on its machine.
    pub pid: u32,
    /// Worker processes in the host's pool.
    pub processes: usize,
    /// Whether its liveliness token is still there.
    pub alive: bool,
    /// Chunks it finished successfully.
    pub chunks_done: u64,
    /// Items (tasks) in those chunks.
    pub items_done: u64,
    /// Chunks that failed on it (a panic, a worker's death, or the host's own death).
    pub chunks_failed: u64,
}

/// Builds the initializer's reference and argument.
type Init = (TaskFn, Vec<u8>);

/// Builder for [`ClusterPool`]: `ClusterPool::builder().job("sim").min_hosts(2).build(&node)?`.
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClusterPoolBuilder {
    job: String,
    min_hosts: usize,
    hosts_timeout: Duration,
    credit: Option<usize>,
    no_host_timeout: Duration,
    init: Option<Result<Init, codec::EncodeError>>,
}

impl fmt::Debug for ClusterPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPoolBuilder")
            .field("job", &self.job)
            .field("min_hosts", &self.min_hosts)
            .field("hosts_timeout", &self.hosts_timeout)
            .field("credit", &self.credit)
            .field("no_host_timeout", &self.no_host_timeout)
            .field("initializer", &self.init.is_some())
            .finish()
    }
}

impl ClusterPoolBuilder {
    /// The job name hosts join under (default [`DEFAULT_JOB`]): pools of different jobs share a
    /// network without meeting. Letters, digits, `-`, `_` and `.` only.
    pub fn job(mut self, name: impl Into<String>) -> Self {
        self.job = name.into();
        self
    }

    /// `build` waits until this many hosts have joined (default 0: return at once; work waits
    /// for hosts).
    pub fn min_hosts(mut self, n: usize) -> Self {
        self.min_hosts = n;
        self
    }

    /// How long `build` waits for `min_hosts` (default 30 s).
    pub fn hosts_timeout(mut self, timeout: Duration) -> Self {
        self.hosts_timeout = timeout;
        self
    }

    /// Chunks each worker process of a host may hold at once (default 2: one running, one
    /// ready behind it). Lower keeps a slow host from holding work faster ones could take;
    /// higher hides more network latency when tasks are short.
    pub fn credit_per_process(mut self, n: usize) -> Self {
        self.credit = Some(n);
        self
    }

    /// How long waiting work waits while no host is alive before failing with
    /// [`TaskError::NoHosts`](crate::TaskError::NoHosts) (default
    /// [`DEFAULT_NO_HOST_TIMEOUT`]).
    pub fn no_host_timeout(mut self, timeout: Duration) -> Self {
        self.no_host_timeout = timeout;
        self
    }

    /// Runs `f(arg)` once in every worker process of every host before its first task
    /// (Python's `initializer` and `initargs`, across the cluster).
    #[doc(alias = "initargs")]
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.init = Some(codec::encode(&arg).map(|bytes| (TaskFn::init(f), bytes)));
        self
    }

    /// The job name, checked.
    pub(crate) fn job_name(&self) -> Result<&str, BuildError> {
        if valid_name(&self.job) {
            Ok(&self.job)
        } else {
            Err(BuildError::InvalidArgument {
                what: "a job name is 1 to 64 letters, digits, '-', '_' or '.'",
            })
        }
    }

    /// Builds over a transport: `start` declares the backend's endpoints, given where to
    /// deliver its events, and returns its link.
    pub(crate) fn build_with(
        self,
        start: impl FnOnce(Events) -> Result<Box<dyn MasterLink>, BuildError>,
    ) -> Result<ClusterPool, BuildError> {
        self.job_name()?;
        if self.credit == Some(0) {
            return Err(BuildError::InvalidArgument {
                what: "credit_per_process must be at least 1",
            });
        }
        let build = BuildId::current().map_err(BuildError::BuildId)?;
        let init = match self.init {
            Some(Ok(init)) => Some(init),
            Some(Err(e)) => return Err(BuildError::InitializerArgument(e)),
            None => None,
        };
        let core = Arc::new(Core::new(Config {
            build,
            credit: self.credit,
            no_host_timeout: self.no_host_timeout,
            init,
        }));
        // The backend's callbacks hold the core weakly: the pool owns it, and dropping the pool
        // drops the link (and with it the callbacks) before the core.
        let weak = Arc::downgrade(&core);
        let events: Events = Arc::new(move |event: MasterEvent| {
            if let Some(core) = weak.upgrade() {
                core.handle(event);
            }
        });
        let link = start(events)?;
        core.set_link(link);
        let c = Arc::clone(&core);
        let thread = match std::thread::Builder::new()
            .name("ipc-cluster-ticker".into())
            .spawn(move || ticker(c))
        {
            Ok(t) => t,
            Err(e) => {
                core.stop(true);
                drop(core.take_link());
                return Err(BuildError::Thread(e));
            }
        };
        let pool = ClusterPool {
            core,
            thread: Some(thread),
        };
        if self.min_hosts > 0 {
            pool.wait_for_hosts(self.min_hosts, self.hosts_timeout)
                .map_err(BuildError::Hosts)?;
        }
        Ok(pool)
    }
}

/// Whether `s` can be one chunk of a key expression (and a file-name-like label).
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A pool of worker processes spread over hosts, with the `ipc_pool::Pool` surface: chunks of
/// work travel to hosts, each host runs them on an `ipc_pool::Pool` of its own processes, and a
/// host's death fails only the chunks it was running (its queued ones go to other hosts).
///
/// ```no_run
/// # #[cfg(feature = "zenoh")] {
/// use ipc_cluster::{ClusterPool, Node};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     ipc_cluster::init(); // a `--cluster-worker` run of this program serves and exits here
///     let node = Node::builder().listen("tcp/0.0.0.0:7447").open()?;
///     let pool = ClusterPool::builder().min_hosts(2).build(&node)?;
///     assert_eq!(pool.map(square, [1, 2, 3, 4, 5])?, [1, 4, 9, 16, 25]);
///     Ok(())
/// }
/// # }
/// ```
///
/// Dropping a pool terminates it: unfinished tasks fail and the hosts are told to stop.
#[must_use = "dropping a cluster pool terminates it"]
pub struct ClusterPool {
    core: Arc<Core>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ClusterPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPool")
            .field("hosts", &self.core.hosts().len())
            .field("processes", &self.core.processes())
            .finish()
    }
}

impl ClusterPool {
    /// A builder (job name, hosts to wait for, credit, timeouts, initializer).
    pub fn builder() -> ClusterPoolBuilder {
        ClusterPoolBuilder {
            job: DEFAULT_JOB.to_owned(),
            min_hosts: 0,
            hosts_timeout: Duration::from_secs(30),
            credit: None,
            no_host_timeout: DEFAULT_NO_HOST_TIMEOUT,
            init: None,
        }
    }

    /// Every host that joined, alive or not, in joining order, with its task counts.
    pub fn hosts(&self) -> Vec<HostStats> {
        self.core.hosts()
    }

    /// The worker processes of the live hosts together.
    pub fn processes(&self) -> usize {
        self.core.processes()
    }

    /// Waits until `n` hosts are alive (at most `timeout`); returns how many are.
    pub fn wait_for_hosts(&self, n: usize, timeout: Duration) -> Result<usize, WaitHostsError> {
        self.core.wait_hosts(n, timeout)
    }

    /// Stops accepting tasks; the hosts stop once the submitted ones are done and
    /// [`join`](Self::join) is called (Python's `close`).
    pub fn close(&self) {
        self.core.close();
    }

    /// Waits until every submitted task has finished, then tells the hosts to stop (Python's
    /// `join`; call [`close`](Self::close) first, as in Python). It returns: every task ends,
    /// on a host, by its host's death, or by `no_host_timeout` once no host is left.
    pub fn join(&mut self) {
        self.core.join();
        self.stop_thread();
    }

    /// Stops at once: unfinished tasks fail with [`TaskError::Terminated`](crate::TaskError)
    /// and the hosts are told to stop (Python's `terminate`).
    pub fn terminate(&mut self) {
        self.core.stop(true);
        self.stop_thread();
    }

    /// After `stop`: joins the ticker and undeclares the transport's endpoints.
    fn stop_thread(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        drop(self.core.take_link());
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }
}

impl Drop for ClusterPool {
    fn drop(&mut self) {
        self.terminate();
    }
}
