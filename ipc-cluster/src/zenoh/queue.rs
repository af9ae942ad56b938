//! `ClusterQueue<T>`: an `ipc_queue::Queue` owned by one process, put to and got from any host.
//!
//! The owner holds the queue (shared memory: processes on its host may open it directly with
//! [`ClusterQueue::local_handle`]) and serves other hosts through one zenoh queryable: a remote
//! `put` or `get` is one query, answered by one of two server threads (one for puts, one for
//! gets, so a waiting `get` never holds up a `put` that would satisfy it). A blocking call
//! waits in slices of at most [`SLICE`] at the owner, so it notices the owner's death between
//! slices even if no reply ever comes; the owner's liveliness token going away ends every call
//! waiting on it at once with `Gone`. Queries use `CongestionControl::Block` (their replies
//! inherit it): nothing is dropped under load. A query that ends with no answer (its connection
//! failed, or its answer came too late) is asked again with the same [`CallId`], and the owner
//! answers it from its record of done calls ([`Done`]) rather than doing it twice.
//!
//! | request             | owner does                           | reply                 |
//! |---------------------|--------------------------------------|-----------------------|
//! | `Put { item, wait, call }` | the recorded answer to `call`, or decode, `put_timeout(item, wait)` | `Put(true / false)` (false: still full) |
//! | `Get { wait, call }`       | the recorded answer to `call`, or `get_timeout(wait)`, encode | `Got(Some(item) / None)` (None: still empty) |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipc_core::ObjectHandle;
use ipc_core::codec::{self, DecodeError, EncodeError};
use ipc_queue::{GetError, PutError, Queue, Serde};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::qos::CongestionControl;
use zenoh::query::{Query, Queryable, Reply};

use super::Node;
use super::keys;
use super::liveliness::{self, Change};
use crate::bytes::Bytes;
use crate::master::valid_name;

/// The longest a remote call waits at the owner in one query.
pub(crate) const SLICE: Duration = Duration::from_millis(500);

/// How much longer than its wait at the owner a query may take before the caller gives it up
/// (network and scheduling) and asks again (the owner answers again what it did).
const MARGIN: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
enum Request {
    Put {
        item: Bytes,
        wait_us: u64,
        call: CallId,
    },
    Get {
        wait_us: u64,
        call: CallId,
    },
}

/// Which call a query belongs to: every query of one `put` or `get` carries the same, so the
/// owner does the call once however often it is asked (a query whose reply was lost on a
/// connection that failed is asked again; see [`Done`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
struct CallId {
    /// The remote handle's random id.
    client: u64,
    /// The call's number on that handle.
    seq: u64,
    /// Every call of the handle numbered below this has returned: the owner may forget them.
    done_below: u64,
}

/// How long the owner keeps what it did for a handle that has sent nothing since (a handle
/// asks again within a query's margin; one dropped or dead asks nothing more).
const FORGET_HANDLE_AFTER: Duration = Duration::from_secs(60);

/// The owner's record of the calls it did (a put made, an item taken, with the reply), by
/// handle, until the handle says they have returned.
#[derive(Default)]
struct Done {
    by_handle: HashMap<u64, (Instant, BTreeMap<u64, Response>)>,
}

impl Done {
    /// The reply to `call` if it was done already; forgets what `call` says has returned.
    fn lookup(&mut self, call: CallId, now: Instant) -> Option<Response> {
        let (seen, done) = self
            .by_handle
            .entry(call.client)
            .or_insert_with(|| (now, BTreeMap::new()));
        *seen = now;
        *done = done.split_off(&call.done_below);
        done.get(&call.seq).cloned()
    }

    /// Records the reply to `call` if the call did something (a put made, an item taken): a
    /// query asked again must not do it twice. A wait that ran out did nothing.
    fn record(&mut self, call: CallId, reply: &Response, now: Instant) {
        if matches!(reply, Response::Put(true) | Response::Got(Some(_))) {
            let (seen, done) = self
                .by_handle
                .entry(call.client)
                .or_insert_with(|| (now, BTreeMap::new()));
            *seen = now;
            done.insert(call.seq, reply.clone());
        }
        self.by_handle
            .retain(|_, (seen, _)| now.duration_since(*seen) < FORGET_HANDLE_AFTER);
    }
}

#[derive(Serialize, Deserialize, Clone)]
enum Response {
    /// `true`: put; `false`: still full after the wait.
    Put(bool),
    /// The item, or `None`: still empty after the wait.
    Got(Option<Bytes>),
    /// The request could not be decoded, or the item not as the queue's type.
    Bad,
}

/// Creating or opening a cluster queue failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// The name is not 1 to 64 letters, digits, `-`, `_` or `.`.
    InvalidName,
    /// The owner's local queue could not be created.
    Create(ipc_queue::CreateError),
    /// The owner's local queue could not be attached (by a server thread).
    Open(ipc_queue::OpenError),
    /// zenoh refused to declare the queue's endpoints.
    Transport(zenoh::Error),
    /// A thread of the owner could not be started.
    Thread(std::io::Error),
    /// No owner of the name appeared within the wait.
    NoOwner {
        /// How long it waited.
        waited: Duration,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName => {
                f.write_str("a queue name is 1 to 64 letters, digits, '-', '_' or '.'")
            }
            Self::Create(_) => f.write_str("cannot create the owner's queue"),
            Self::Open(_) => f.write_str("cannot attach to the owner's queue"),
            Self::Transport(_) => f.write_str("zenoh refused to declare the queue's endpoints"),
            Self::Thread(_) => f.write_str("cannot start a thread of the queue's owner"),
            Self::NoOwner { waited } => write!(
                f,
                "no owner of the queue appeared within {:.1} s",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Create(e) => Some(e),
            Self::Open(e) => Some(e),
            Self::Transport(e) => Some(&**e),
            Self::Thread(e) => Some(e),
            _ => None,
        }
    }
}

/// `put` failed; the item is handed back.
#[non_exhaustive]
pub enum QueuePutError<T> {
    /// Still full at the timeout.
    Timeout(T),
    /// The owner is gone (its liveliness token vanished: killed, crashed, cut off).
    Gone(T),
    /// The item could not be encoded.
    Encode(T, EncodeError),
    /// The owner could not take it (its queue failed, or it could not decode the item).
    Refused(T),
}

impl<T> fmt::Debug for QueuePutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("Timeout(..)"),
            Self::Gone(_) => f.write_str("Gone(..)"),
            Self::Encode(_, e) => f.debug_tuple("Encode").field(&"..").field(e).finish(),
            Self::Refused(_) => f.write_str("Refused(..)"),
        }
    }
}

impl<T> fmt::Display for QueuePutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("the queue was still full at the timeout"),
            Self::Gone(_) => f.write_str("the queue's owner is gone"),
            Self::Encode(..) => f.write_str("cannot encode the item"),
            Self::Refused(_) => f.write_str("the queue's owner could not take the item"),
        }
    }
}

impl<T> std::error::Error for QueuePutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(_, e) => Some(e),
            _ => None,
        }
    }
}

impl<T> QueuePutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(t) | Self::Gone(t) | Self::Encode(t, _) | Self::Refused(t) => t,
        }
    }
}

/// `get` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueGetError {
    /// Still empty at the timeout.
    Timeout,
    /// The owner is gone (its liveliness token vanished: killed, crashed, cut off).
    Gone,
    /// An item could not be decoded as the queue's type.
    Decode(DecodeError),
    /// The owner's queue failed.
    Failed(GetError),
    /// The owner could not serve the request.
    Refused,
}

impl fmt::Display for QueueGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("the queue was still empty at the timeout"),
            Self::Gone => f.write_str("the queue's owner is gone"),
            Self::Decode(_) => f.write_str("cannot decode the item"),
            Self::Failed(_) => f.write_str("the owner's queue failed"),
            Self::Refused => f.write_str("the queue's owner could not serve the request"),
        }
    }
}

impl std::error::Error for QueueGetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            Self::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// A queue shared across hosts: one process owns it, any node may put and get.
///
/// ```no_run
/// use std::time::Duration;
/// use ipc_cluster::{ClusterQueue, Node};
///
/// // On the owner:
/// let node = Node::builder().listen("tcp/0.0.0.0:7448").open()?;
/// let q = ClusterQueue::<String>::create(&node, "results", 1024)?;
/// // On any other host:
/// let other = Node::builder().connect("tcp/192.0.2.1:7448").open()?;
/// let r = ClusterQueue::<String>::open(&other, "results", Duration::from_secs(10))?;
/// r.put("done".to_string())?;
/// assert_eq!(q.get()?, "done");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClusterQueue<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Owner(Box<Owner<T>>),
    Remote(Remote),
}

impl<T> fmt::Debug for ClusterQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterQueue")
            .field("type", &std::any::type_name::<T>())
            .field("owner", &matches!(self.inner, Inner::Owner(_)))
            .finish()
    }
}

struct Owner<T> {
    put_q: Mutex<Queue<T, Serde>>,
    get_q: Mutex<Queue<T, Serde>>,
    handle: ObjectHandle,
    servers: Vec<JoinHandle<()>>,
    token: Option<LivelinessToken>,
    queryable: Option<Queryable<()>>,
    to_servers: Routes,
}

/// Where the queryable's callback hands queries: the put server's and the get server's
/// channels (`None` once the owner stops).
type Routes = Arc<Mutex<Option<(Sender<Query>, Sender<Query>)>>>;

impl<T> Drop for Owner<T> {
    fn drop(&mut self) {
        // Stop taking requests, let the servers answer the ones they hold (a put they made
        // is answered before the owner is seen leaving), then withdraw the endpoints and last
        // the token.
        self.to_servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for t in self.servers.drain(..) {
            let _ = t.join();
        }
        self.queryable.take();
        self.token.take();
    }
}

/// What ends a remote call's wait.
enum CallEnd {
    Reply(Vec<u8>),
    /// The query finished (with or without a reply before).
    Finished,
    Gone,
}

/// Sends `Finished` when the query's callback is dropped (zenoh drops it when the query ends).
struct OnFinish(Sender<CallEnd>);

impl Drop for OnFinish {
    fn drop(&mut self) {
        let _ = self.0.send(CallEnd::Finished);
    }
}

struct Liveness {
    alive: bool,
    /// Calls waiting, told `Gone` when the owner vanishes.
    waiting: HashMap<u64, Sender<CallEnd>>,
    next: u64,
}

struct Remote {
    session: zenoh::Session,
    op: String,
    owner: Arc<(Mutex<Liveness>, Condvar)>,
    /// This handle's id and its calls not yet returned, and the next call's number.
    client: u64,
    calls: Mutex<(BTreeSet<u64>, u64)>,
    _watch: Subscriber<()>,
}

/// A call of a remote handle under way: its [`CallId`]; returned when dropped.
struct Underway<'a> {
    remote: &'a Remote,
    seq: u64,
}

impl Remote {
    fn begin(&self) -> Underway<'_> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let seq = calls.1;
        calls.1 += 1;
        calls.0.insert(seq);
        Underway { remote: self, seq }
    }
}

impl Underway<'_> {
    /// The id to send now (what has returned changes while the call is under way).
    fn id(&self) -> CallId {
        let calls = self.remote.calls.lock().unwrap_or_else(|p| p.into_inner());
        CallId {
            client: self.remote.client,
            seq: self.seq,
            done_below: calls.0.first().copied().unwrap_or(calls.1),
        }
    }
}

impl Drop for Underway<'_> {
    fn drop(&mut self) {
        let mut calls = self.remote.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.0.remove(&self.seq);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl<T: Serialize + DeserializeOwned + Send + 'static> ClusterQueue<T> {
    /// Creates the queue (`capacity` items) in this process and serves it to the cluster under
    /// `name`. One owner per name.
    pub fn create(node: &Node, name: &str, capacity: usize) -> Result<Self, QueueError> {
        if !valid_name(name) {
            return Err(QueueError::InvalidName);
        }
        let q = Queue::<T, Serde>::new(capacity).map_err(QueueError::Create)?;
        let handle = q.handle();
        let open = || Queue::<T, Serde>::open(&handle).map_err(QueueError::Open);
        let (get_q, server_put_q, server_get_q) = (open()?, open()?, open()?);
        let (put_tx, put_rx) = mpsc::channel::<Query>();
        let (get_tx, get_rx) = mpsc::channel::<Query>();
        let put_server = std::thread::Builder::new()
            .name("ipc-cluster-queue-put".into())
            .spawn(move || serve_puts(server_put_q, &put_rx))
            .map_err(QueueError::Thread)?;
        let get_server = std::thread::Builder::new()
            .name("ipc-cluster-queue-get".into())
            .spawn(move || serve_gets(server_get_q, &get_rx))
            .map_err(QueueError::Thread)?;
        let servers = vec![put_server, get_server];
        let to_servers = Arc::new(Mutex::new(Some((put_tx, get_tx))));
        let mut owner = Owner {
            put_q: Mutex::new(q),
            get_q: Mutex::new(get_q),
            handle,
            servers,
            token: None,
            queryable: None,
            to_servers: Arc::clone(&to_servers),
        };
        let session = node.session();
        owner.queryable = Some(
            session
                .declare_queryable(keys::queue_op(name))
                .callback(move |query| route(&to_servers, query))
                .wait()
                .map_err(QueueError::Transport)?,
        );
        owner.token = Some(
            session
                .liveliness()
                .declare_token(keys::queue_owner(name))
                .wait()
                .map_err(QueueError::Transport)?,
        );
        Ok(Self {
            inner: Inner::Owner(Box::new(owner)),
        })
    }

    /// Attaches to the queue `name` owned by another process, waiting at most `wait` for its
    /// owner to appear.
    pub fn open(node: &Node, name: &str, wait: Duration) -> Result<Self, QueueError> {
        if !valid_name(name) {
            return Err(QueueError::InvalidName);
        }
        let owner = Arc::new((
            Mutex::new(Liveness {
                alive: false,
                waiting: HashMap::new(),
                next: 0,
            }),
            Condvar::new(),
        ));
        let o = Arc::clone(&owner);
        let session = node.session().clone();
        let watch = liveliness::watch(&session, keys::queue_owner(name), move |_, change| {
            let mut l = o.0.lock().unwrap_or_else(|p| p.into_inner());
            match change {
                Change::Present | Change::Resumed => l.alive = true,
                Change::Gone { .. } => {
                    l.alive = false;
                    for (_, tx) in l.waiting.drain() {
                        let _ = tx.send(CallEnd::Gone);
                    }
                }
            }
            o.1.notify_all();
        })
        .map_err(QueueError::Transport)?;
        let started = Instant::now();
        {
            let mut l = owner.0.lock().unwrap_or_else(|p| p.into_inner());
            while !l.alive {
                let Some(left) = wait.checked_sub(started.elapsed()) else {
                    return Err(QueueError::NoOwner {
                        waited: started.elapsed(),
                    });
                };
                l = owner
                    .1
                    .wait_timeout(l, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        Ok(Self {
            inner: Inner::Remote(Remote {
                session,
                op: keys::queue_op(name),
                owner,
                client: ipc_core::random_u128() as u64,
                calls: Mutex::new((BTreeSet::new(), 0)),
                _watch: watch,
            }),
        })
    }

    /// Whether this handle owns the queue.
    pub fn is_owner(&self) -> bool {
        matches!(self.inner, Inner::Owner(_))
    }

    /// The owner's local queue handle: processes on the owner's host open it with
    /// `ipc_queue::Queue::<T, Serde>::open` and put and get through shared memory. `None` on a
    /// remote handle.
    pub fn local_handle(&self) -> Option<ObjectHandle> {
        match &self.inner {
            Inner::Owner(o) => Some(o.handle.clone()),
            Inner::Remote(_) => None,
        }
    }

    /// Puts `item`, waiting while the queue is full.
    pub fn put(&self, item: T) -> Result<(), QueuePutError<T>> {
        self.put_deadline(item, None)
    }

    /// Puts `item`, waiting at most `timeout` while the queue is full.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), QueuePutError<T>> {
        self.put_deadline(item, Some(Instant::now() + timeout))
    }

    fn put_deadline(&self, item: T, deadline: Option<Instant>) -> Result<(), QueuePutError<T>> {
        let r = match &self.inner {
            Inner::Owner(o) => {
                let mut q = o.put_q.lock().unwrap_or_else(|p| p.into_inner());
                let r = match deadline {
                    None => q.put(item),
                    Some(d) => q.put_timeout(item, d.saturating_duration_since(Instant::now())),
                };
                return r.map_err(|e| match e {
                    PutError::Timeout(t) => QueuePutError::Timeout(t),
                    PutError::Encode(t, e) => QueuePutError::Encode(t, e),
                    other => QueuePutError::Refused(other.into_inner()),
                });
            }
            Inner::Remote(r) => r,
        };
        let bytes = match codec::encode(&item) {
            Ok(b) => b,
            Err(e) => return Err(QueuePutError::Encode(item, e)),
        };
        let call = r.begin();
        let mut last_chance = false;
        loop {
            let wait = slice(deadline);
            let req = Request::Put {
                item: Bytes(bytes.clone()),
                wait_us: micros(wait),
                call: call.id(),
            };
            let unanswered = match r.call(&req, wait) {
                Call::Reply(Response::Put(true)) => return Ok(()),
                Call::Reply(Response::Put(false)) => false,
                Call::NoReply => true,
                Call::Reply(_) => return Err(QueuePutError::Refused(item)),
                Call::Gone => return Err(QueuePutError::Gone(item)),
            };
            // After a query with no answer, ask once more even past the deadline (with no
            // wait): the put may have been made, and then the owner says so.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if !unanswered || last_chance {
                    return Err(QueuePutError::Timeout(item));
                }
                last_chance = true;
            }
        }
    }

    /// Takes the next item, waiting while the queue is empty.
    pub fn get(&self) -> Result<T, QueueGetError> {
        self.get_deadline(None)
    }

    /// Takes the next item, waiting at most `timeout` while the queue is empty.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueGetError> {
        self.get_deadline(Some(Instant::now() + timeout))
    }

    fn get_deadline(&self, deadline: Option<Instant>) -> Result<T, QueueGetError> {
        let r = match &self.inner {
            Inner::Owner(o) => {
                let mut q = o.get_q.lock().unwrap_or_else(|p| p.into_inner());
                let r = match deadline {
                    None => q.get(),
                    Some(d) => q.get_timeout(d.saturating_duration_since(Instant::now())),
                };
                return r.map_err(|e| match e {
                    GetError::Timeout => QueueGetError::Timeout,
                    other => QueueGetError::Failed(other),
                });
            }
            Inner::Remote(r) => r,
        };
        let call = r.begin();
        let mut last_chance = false;
        loop {
            let wait = slice(deadline);
            let req = Request::Get {
                wait_us: micros(wait),
                call: call.id(),
            };
            let unanswered = match r.call(&req, wait) {
                Call::Reply(Response::Got(Some(b))) => {
                    return codec::decode(&b.0).map_err(QueueGetError::Decode);
                }
                Call::Reply(Response::Got(None)) => false,
                Call::NoReply => true,
                Call::Reply(_) => return Err(QueueGetError::Refused),
                Call::Gone => return Err(QueueGetError::Gone),
            };
            // After a query with no answer, ask once more even past the deadline (with no
            // wait): an item may have been taken for this call, and the owner hands it over.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if !unanswered || last_chance {
                    return Err(QueueGetError::Timeout);
                }
                last_chance = true;
            }
        }
    }
}

/// The wait of one query: the time left, at most [`SLICE`].
fn slice(deadline: Option<Instant>) -> Duration {
    match deadline {
        None => SLICE,
        Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
    }
}

enum Call {
    Reply(Response),
    /// The query ended without an answer (the owner's queryable was not reached).
    NoReply,
    Gone,
}

impl Remote {
    /// One query: the owner waits at most `wait`; this waits for its answer, the query's end or
    /// the owner's death, whichever comes first.
    fn call(&self, req: &Request, wait: Duration) -> Call {
        let Ok(payload) = codec::encode(req) else {
            return Call::NoReply;
        };
        let (tx, rx): (Sender<CallEnd>, Receiver<CallEnd>) = mpsc::channel();
        let id = {
            let mut l = self.owner.0.lock().unwrap_or_else(|p| p.into_inner());
            if !l.alive {
                return Call::Gone;
            }
            let id = l.next;
            l.next += 1;
            l.waiting.insert(id, tx.clone());
            id
        };
        let finish = OnFinish(tx.clone());
        let sent = self
            .session
            .get(&self.op)
            .payload(payload)
            .congestion_control(CongestionControl::Block)
            .timeout(wait + MARGIN)
            .callback(move |reply: Reply| {
                let _keep = &finish;
                if let Ok(sample) = reply.result() {
                    let _ = tx.send(CallEnd::Reply(sample.payload().to_bytes().into_owned()));
                }
            })
            .wait();
        let outcome = if sent.is_err() {
            Call::NoReply
        } else {
            // Bounded: the query ends (and its callback is dropped, sending `Finished`) at its
            // timeout at the latest.
            let mut owner_left = false;
            loop {
                match rx.recv_timeout(wait + MARGIN + MARGIN) {
                    Ok(CallEnd::Reply(bytes)) => {
                        break match codec::decode::<Response>(&bytes) {
                            Ok(r) => Call::Reply(r),
                            Err(_) => Call::Reply(Response::Bad),
                        };
                    }
                    // The owner's token went away. zenoh sends declarations ahead of data, so
                    // an owner that answered and then closed may have its answer still on the
                    // way: wait for the query's end (at once if the owner was killed, since
                    // its connection's closing ends the query).
                    Ok(CallEnd::Gone) => owner_left = true,
                    Ok(CallEnd::Finished) | Err(_) if owner_left => break Call::Gone,
                    Ok(CallEnd::Finished) | Err(_) => break self.settle(),
                }
            }
        };
        self.owner
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .remove(&id);
        outcome
    }

    /// A query ended without an answer: the owner died (its token's removal may arrive just
    /// after the query's end, so wait briefly for it), or the owner is there and this was a
    /// hiccup (the caller asks again).
    fn settle(&self) -> Call {
        let l = self.owner.0.lock().unwrap_or_else(|p| p.into_inner());
        let (l, _) = self
            .owner
            .1
            .wait_timeout_while(l, Duration::from_millis(200), |l| l.alive)
            .unwrap_or_else(|p| p.into_inner());
        if l.alive { Call::NoReply } else { Call::Gone }
    }
}

/// Routes a query to the put or the get server (decoding only the request's variant).
fn route(to: &Routes, query: Query) {
    let is_get = query
        .payload()
        .map(|p| p.to_bytes().first().copied() == Some(1))
        .unwrap_or(false);
    if let Some((put, get)) = to.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = if is_get {
            get.send(query)
        } else {
            put.send(query)
        };
    }
}

fn reply(query: &Query, r: &Response) {
    if let Ok(bytes) = codec::encode(r) {
        let _ = query.reply(query.key_expr().clone(), bytes).wait();
    }
}

fn decode_request(query: &Query) -> Option<Request> {
    codec::decode(&query.payload()?.to_bytes()).ok()
}

/// Waits for the next query, or `None` once the owner stops (it drops the routes' senders).
fn next_query(rx: &Receiver<Query>) -> Option<Query> {
    rx.recv().ok()
}

fn serve_puts<T: Serialize + DeserializeOwned>(mut q: Queue<T, Serde>, rx: &Receiver<Query>) {
    let mut done = Done::default();
    while let Some(query) = next_query(rx) {
        let response = match decode_request(&query) {
            Some(Request::Put {
                item,
                wait_us,
                call,
            }) => match done.lookup(call, Instant::now()) {
                Some(again) => again,
                None => {
                    let r = match codec::decode::<T>(&item.0) {
                        Ok(v) => {
                            match q.put_timeout(v, Duration::from_micros(wait_us).min(SLICE)) {
                                Ok(()) => Response::Put(true),
                                Err(PutError::Timeout(_)) => Response::Put(false),
                                Err(_) => Response::Bad,
                            }
                        }
                        Err(_) => Response::Bad,
                    };
                    done.record(call, &r, Instant::now());
                    r
                }
            },
            _ => Response::Bad,
        };
        reply(&query, &response);
    }
}

fn serve_gets<T: Serialize + DeserializeOwned>(mut q: Queue<T, Serde>, rx: &Receiver<Query>) {
    let mut done = Done::default();
    while let Some(query) = next_query(rx) {
        let response = match decode_request(&query) {
            Some(Request::Get { wait_us, call }) => match done.lookup(call, Instant::now()) {
                Some(again) => again,
                None => {
                    let r = match q.get_timeout(Duration::from_micros(wait_us).min(SLICE)) {
                        Ok(v) => match codec::encode(&v) {
                            Ok(b) => Response::Got(Some(Bytes(b))),
                            Err(_) => Response::Bad,
                        },
                        Err(GetError::Timeout) => Response::Got(None),
                        Err(_) => Response::Bad,
                    };
                    done.record(call, &r, Instant::now());
                    r
                }
            },
            _ => Response::Bad,
        };
        reply(&query, &response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, seq: u64, done_below: u64) -> CallId {
        CallId {
            client,
            seq,
            done_below,
        }
    }

    fn got(b: u8) -> Response {
        Response::Got(Some(Bytes(vec![b])))
    }

    fn is_got(r: Option<Response>, b: u8) -> bool {
        matches!(r, Some(Response::Got(Some(Bytes(v)))) if v == [b])
    }

    #[test]
    fn a_call_asked_again_gets_the_answer_it_had_until_its_handle_says_it_returned() {
        let now = Instant::now();
        let mut done = Done::default();
        assert!(done.lookup(id(1, 0, 0), now).is_none());
        done.record(id(1, 0, 0), &got(7), now);
        // Asked again: the same item, not a second one.
        assert!(is_got(done.lookup(id(1, 0, 0), now), 7));
        // Another handle's call of the same number is another call.
        assert!(done.lookup(id(2, 0, 0), now).is_none());
        // Once the handle says calls below 1 returned, the record goes.
        assert!(done.lookup(id(1, 1, 1), now).is_none());
        assert!(done.lookup(id(1, 0, 1), now).is_none());
    }

    #[test]
    fn a_wait_that_ran_out_is_not_recorded_and_idle_handles_are_forgotten() {
        let now = Instant::now();
        let mut done = Done::default();
        done.record(id(1, 0, 0), &Response::Got(None), now);
        done.record(id(1, 1, 0), &Response::Put(false), now);
        assert!(done.lookup(id(1, 0, 0), now).is_none());
        assert!(done.lookup(id(1, 1, 0), now).is_none());
        done.record(id(1, 2, 0), &Response::Put(true), now);
        assert!(matches!(
            done.lookup(id(1, 2, 0), now),
            Some(Response::Put(true))
        ));
        // A record by another handle long after forgets the idle one.
        done.record(id(2, 0, 0), &got(1), now + FORGET_HANDLE_AFTER);
        assert!(!done.by_handle.contains_key(&1));
        assert!(done.by_handle.contains_key(&2));
    }
}
