//! The host's side of the zenoh backend: find the job's master, join it, serve.

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ipc_core::StartMethod;
use ipc_core::codec;
use zenoh::Wait;
use zenoh::qos::CongestionControl;

use super::Node;
use super::keys;
use super::liveliness::{self, Change};
use super::reliable::{Frame, Incoming, Outgoing};
use crate::BuildId;
use crate::host::{LaneConfig, Lanes, ServeEnd};
use crate::link::HostLink;
use crate::master::{DEFAULT_JOB, valid_name};
use crate::task::WorkerInit;
use crate::wire::{JoinReply, JoinRequest, PROTOCOL, Refusal};

/// Serving as a worker host failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// An argument is out of range (a job name, zero processes).
    InvalidArgument {
        /// Which, and why.
        what: &'static str,
    },
    /// This program's build id could not be computed (reading the executable failed).
    BuildId(std::io::Error),
    /// No master of the job appeared within the wait.
    NoMaster {
        /// How long the host waited.
        waited: Duration,
    },
    /// The master did not answer the join request (it left meanwhile, or did not answer in
    /// time).
    NoReply,
    /// The master refused this host.
    Refused(Refusal),
    /// The master's reply could not be decoded.
    BadReply,
    /// zenoh refused to declare the host's endpoints or to send the request.
    Transport(zenoh::Error),
    /// The host's pool of worker processes could not be built.
    Pool(ipc_pool::BuildError),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument { what } => write!(f, "invalid argument: {what}"),
            Self::BuildId(e) => write!(f, "cannot compute this program's build id: {e}"),
            Self::NoMaster { waited } => write!(
                f,
                "no master of the job appeared within {:.1} s",
                waited.as_secs_f64()
            ),
            Self::NoReply => f.write_str("the master did not answer the join request"),
            Self::Refused(r) => write!(f, "the master refused this host: {r}"),
            Self::BadReply => f.write_str("the master's reply could not be decoded"),
            Self::Transport(_) => f.write_str("zenoh refused an operation of the host"),
            Self::Pool(_) => f.write_str("cannot build the host's pool"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BuildId(e) => Some(e),
            Self::Transport(e) => Some(&**e),
            Self::Pool(e) => Some(e),
            _ => None,
        }
    }
}

/// How a worker host serves: the job it joins, its name, how long it waits for a master, and
/// its pool's settings.
///
/// ```no_run
/// use std::time::Duration;
/// use ipc_cluster::{Node, ServeOptions};
///
/// let node = Node::builder().connect("tcp/192.0.2.1:7447").open()?;
/// let end = ServeOptions::new()
///     .job("sim")
///     .name("rack3-node7")
///     .wait_master(Duration::from_secs(60))
///     .serve(&node, 8)?;
/// println!("served until {end:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until `serve` is called"]
pub struct ServeOptions {
    job: String,
    name: Option<String>,
    wait_master: Duration,
    handshake_timeout: Duration,
    start_method: Option<StartMethod>,
    max_tasks: Option<u64>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The pause before a join request that had no answer is sent again.
const JOIN_RETRY: Duration = Duration::from_millis(20);

/// How long a host waits for its master to appear, by default.
pub const DEFAULT_WAIT_MASTER: Duration = Duration::from_secs(30);

impl ServeOptions {
    /// The defaults: job [`DEFAULT_JOB`], named `hostname:pid`, waiting
    /// [`DEFAULT_WAIT_MASTER`] for a master.
    pub fn new() -> Self {
        Self {
            job: DEFAULT_JOB.to_owned(),
            name: None,
            wait_master: DEFAULT_WAIT_MASTER,
            handshake_timeout: Duration::from_secs(10),
            start_method: None,
            max_tasks: None,
        }
    }

    /// The job to join (the master's `ClusterPoolBuilder::job`).
    pub fn job(mut self, job: impl Into<String>) -> Self {
        self.job = job.into();
        self
    }

    /// The name the master reports this host by (default `hostname:pid`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long to wait for a master of the job to appear (default 30 s).
    pub fn wait_master(mut self, wait: Duration) -> Self {
        self.wait_master = wait;
        self
    }

    /// How long to wait for the master's answer to the join request (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The start method of the host's worker processes (`ipc_pool`'s default otherwise).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Recycles each worker process after this many chunks (Python's `maxtasksperchild`).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// Joins the job's master and runs its chunks on a pool of `processes` worker processes,
    /// until the master shuts the pool down or vanishes; then the pool is terminated (its
    /// processes exit) and this returns how it ended.
    pub fn serve(&self, node: &Node, processes: usize) -> Result<ServeEnd, ServeError> {
        if !valid_name(&self.job) {
            return Err(ServeError::InvalidArgument {
                what: "a job name is 1 to 64 letters, digits, '-', '_' or '.'",
            });
        }
        if processes == 0 {
            return Err(ServeError::InvalidArgument {
                what: "a host needs at least one worker process",
            });
        }
        let build = BuildId::current().map_err(ServeError::BuildId)?;
        let session = node.session();
        // How the service ends: the master says stop (a message) or vanishes (its token).
        let (end_tx, end) = mpsc::channel::<ServeEnd>();

        // Find a master: the first token of the job's masters. Its disappearance later is the
        // master's death.
        let (found_tx, found) = mpsc::channel::<String>();
        let chosen: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        // The stream of results to the chosen master, once joined.
        let results: Arc<OnceLock<Arc<Outgoing>>> = Arc::new(OnceLock::new());
        let (c, tx, r) = (Arc::clone(&chosen), end_tx.clone(), Arc::clone(&results));
        let _masters =
            liveliness::watch_owners(session, keys::masters(&self.job), move |key, change| {
                let pool = keys::last(key).to_owned();
                match change {
                    Change::Present => {
                        let _ = found_tx.send(pool);
                    }
                    Change::Resumed => {
                        let ours = c.lock().unwrap_or_else(|p| p.into_inner());
                        if ours.as_deref() == Some(pool.as_str()) {
                            // A new transport to the master: what it had not acknowledged may be
                            // lost.
                            if let Some(out) = r.get() {
                                out.resend();
                            }
                        }
                    }
                    Change::Gone { .. } => {
                        let ours = c.lock().unwrap_or_else(|p| p.into_inner());
                        if ours.as_deref() == Some(pool.as_str()) {
                            let _ = tx.send(ServeEnd::MasterGone);
                        }
                    }
                }
            })
            .map_err(ServeError::Transport)?;
        let started = Instant::now();
        let pool_id = found
            .recv_timeout(self.wait_master)
            .map_err(|_| ServeError::NoMaster {
                waited: started.elapsed(),
            })?;
        *chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(pool_id.clone());

        let host_id = format!("{}-{:08x}", node.id(), ipc_core::random_u128() as u32);
        let _token = session
            .liveliness()
            .declare_token(keys::host(&self.job, &pool_id, &host_id))
            .wait()
            .map_err(ServeError::Transport)?;
        let out = Outgoing::declare(session, keys::results(&self.job, &pool_id, &host_id))
            .map_err(ServeError::Transport)?;
        let _ = results.set(Arc::clone(&out));

        let request = JoinRequest {
            protocol: PROTOCOL,
            build,
            name: self.name.clone().unwrap_or_else(default_name),
            pid: std::process::id(),
            processes: u32::try_from(processes).unwrap_or(u32::MAX),
        };
        // A request of numbers and a short string always encodes; were it not to, the master
        // would refuse the empty payload as a bad request.
        let payload = codec::encode(&request).unwrap_or_default();
        let deadline = Instant::now() + self.handshake_timeout;
        let sample = loop {
            let replies = session
                .get(keys::join(&self.job, &pool_id, &host_id))
                .payload(payload.clone())
                .congestion_control(CongestionControl::Block)
                .timeout(deadline.saturating_duration_since(Instant::now()))
                .wait()
                .map_err(ServeError::Transport)?;
            if let Ok(reply) = replies.recv() {
                break reply.into_result().map_err(|_| ServeError::NoReply)?;
            }
            // No answer: the time is up, or the transport to the master closed with the
            // request or its answer on it (zenoh ends such a query at once). Ask again while
            // time is left and the master is there (a join is answered alike every time).
            if Instant::now() >= deadline || end.try_recv() == Ok(ServeEnd::MasterGone) {
                return Err(ServeError::NoReply);
            }
            std::thread::sleep(JOIN_RETRY);
        };
        let (key, init) = match codec::decode::<JoinReply>(&sample.payload().to_bytes()) {
            Ok(JoinReply::Accepted { key, init }) => (key, init),
            Ok(JoinReply::Refused(why)) => return Err(ServeError::Refused(why)),
            Err(_) => return Err(ServeError::BadReply),
        };

        let link: Arc<dyn HostLink> = Arc::new(ResultsLink(Arc::clone(&out)));
        let config = LaneConfig {
            processes,
            start_method: self.start_method,
            max_tasks: self.max_tasks,
        };
        let lanes = Arc::new(
            Lanes::build(config, &WorkerInit { key, user: init }, link)
                .map_err(ServeError::Pool)?,
        );
        let (l, tx) = (Arc::clone(&lanes), end_tx);
        let incoming = Mutex::new(Incoming::default());
        let tasks = session
            .declare_subscriber(keys::tasks(&self.job, &pool_id, &host_id))
            .callback(move |sample| {
                let bytes = sample.payload().to_bytes();
                let (frame, ack) = incoming
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .accept(&bytes);
                if let Frame::Data(message) = frame {
                    if let Some(end) = l.on_message(message) {
                        let _ = tx.send(end);
                    }
                }
                out.on_peer(&frame);
                out.reply(&frame, ack);
            })
            .wait()
            .map_err(ServeError::Transport)?;
        // The subscriber is declared before `Ready` leaves on the same connection, so the
        // master's first chunks find it.
        lanes.announce();
        // Bounded by the master: it says stop, or its token vanishes when it dies (at once for
        // a killed process, within the lease for a silent one).
        let mut how = end.recv().unwrap_or(ServeEnd::MasterGone);
        if how == ServeEnd::MasterGone {
            // zenoh sends declarations ahead of data: a master that said `Shutdown` and then
            // left may have its token's removal overtake the message. Give it a moment.
            if let Ok(ServeEnd::Shutdown) = end.recv_timeout(super::pipe::CLOSE_GRACE) {
                how = ServeEnd::Shutdown;
            }
        }
        drop(tasks);
        lanes.terminate();
        Ok(how)
    }
}

/// Serves the job's master as a worker host with `processes` worker processes (see
/// [`ServeOptions::serve`]; this is `ServeOptions::new().job(job).serve(node, processes)`).
///
/// ```no_run
/// let node = ipc_cluster::Node::builder().connect("tcp/192.0.2.1:7447").open()?;
/// ipc_cluster::serve(&node, "default", 4)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve(node: &Node, job: &str, processes: usize) -> Result<ServeEnd, ServeError> {
    ServeOptions::new().job(job).serve(node, processes)
}

/// `hostname:pid`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}:{}", std::process::id())
}

/// The numbered stream of results to the master.
struct ResultsLink(Arc<Outgoing>);

impl HostLink for ResultsLink {
    fn send(&self, bytes: Vec<u8>) -> bool {
        self.0.send(&bytes).is_ok()
    }
}
