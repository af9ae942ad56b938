//! `Manager`: a server process holding shared dicts, lists, namespaces and user-registered
//! objects, reached through proxies from any process (Python's `multiprocessing.Manager` and
//! `BaseManager.register`).
//!
//! ## Transport
//!
//! Requests travel over one shared-memory [`Queue`] into the manager (every client produces,
//! the manager consumes); each client connection has its own response queue, created by the
//! client and announced in its first request. Both sides spin briefly before sleeping on the
//! queue's futex, so a round trip costs a few microseconds rather than a socket round trip and
//! a pickle. The manager serves requests one at a time, so requests from one proxy are answered
//! in order and every operation, `update_with` included, is atomic.
//!
//! ## Faults
//!
//! - The manager killed: a client's `put` or `get` sees the queue disconnected (the manager's
//!   participant entry is dead), and the call returns [`ManagerError::ManagerGone`].
//! - A client killed mid-request: the manager's reply finds that client's response queue
//!   disconnected, drops the connection and serves the others.
//! - A registered object's method panicking: that call returns [`ManagerError::Panicked`]; the
//!   manager lives on.
//!
//! Values are stored in the manager as their codec encoding, so the manager process needs no
//! knowledge of the user's types; functions that must run inside it (`update_with`, registered
//! methods) travel as authenticated references, as pool tasks do.

use std::collections::HashMap;

use indexmap::IndexMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipc_core::{ObjectHandle, Placement, Process, StartMethod, codec};
use ipc_queue::{GetError, PutError, Queue, Serde};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::function::{Key, ObjRef};

/// A manager call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagerError {
    /// The manager process has exited (shut down, or killed).
    ManagerGone,
    /// The manager could not be started.
    Start(String),
    /// The object's code panicked inside the manager; the manager lives on.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// A value could not be encoded or decoded.
    Codec(String),
    /// The request names no such object, or an index/key outside it.
    NotFound(String),
    /// The manager answered something impossible.
    Protocol(String),
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManagerGone => f.write_str("the manager process is gone (shut down or killed)"),
            Self::Start(m) => write!(f, "cannot start the manager process: {m}"),
            Self::Panicked { message } => write!(f, "the call panicked in the manager: {message}"),
            Self::Codec(m) => write!(f, "cannot transfer the value: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::Protocol(m) => write!(f, "unexpected reply from the manager: {m}"),
        }
    }
}

impl std::error::Error for ManagerError {}

type Bytes = Vec<u8>;

#[derive(Serialize, Deserialize)]
enum Op {
    Hello {
        responses: ObjectHandle,
    },
    Bye,
    NewDict,
    NewList,
    NewNamespace,
    NewObject {
        ctor: ObjRef,
        init: Bytes,
    },
    Drop {
        id: u64,
    },
    DictGet {
        id: u64,
        key: Bytes,
    },
    DictInsert {
        id: u64,
        key: Bytes,
        value: Bytes,
    },
    DictRemove {
        id: u64,
        key: Bytes,
    },
    DictContains {
        id: u64,
        key: Bytes,
    },
    DictUpdateWith {
        id: u64,
        key: Bytes,
        func: ObjRef,
    },
    DictExtend {
        id: u64,
        pairs: Vec<(Bytes, Bytes)>,
    },
    DictItems {
        id: u64,
    },
    Len {
        id: u64,
    },
    Clear {
        id: u64,
    },
    ListPush {
        id: u64,
        value: Bytes,
    },
    ListPop {
        id: u64,
    },
    ListGet {
        id: u64,
        index: u64,
    },
    ListSet {
        id: u64,
        index: u64,
        value: Bytes,
    },
    ListInsert {
        id: u64,
        index: u64,
        value: Bytes,
    },
    ListRemove {
        id: u64,
        index: u64,
    },
    ListExtend {
        id: u64,
        values: Vec<Bytes>,
    },
    ListItems {
        id: u64,
    },
    NsGet {
        id: u64,
        field: String,
    },
    NsSet {
        id: u64,
        field: String,
        value: Bytes,
    },
    Call {
        id: u64,
        method: ObjRef,
        request: Bytes,
    },
    Shutdown,
}

#[derive(Serialize, Deserialize)]
struct Request {
    client: u64,
    op: Op,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Unit,
    Id(u64),
    Bool(bool),
    Count(u64),
    Value(Option<Bytes>),
    Values(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    Err(WireError),
}

#[derive(Serialize, Deserialize)]
enum WireError {
    Panicked(String),
    Codec(String),
    NotFound(String),
}

impl From<WireError> for ManagerError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Panicked(message) => Self::Panicked { message },
            WireError::Codec(m) => Self::Codec(m),
            WireError::NotFound(m) => Self::NotFound(m),
        }
    }
}

/// A user type that lives in the manager process and is reached through a [`Proxy`]
/// (Python's `BaseManager.register`): requests in, responses out.
///
/// ```no_run
/// use ipc_pool::{Manager, Managed};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Account { balance: i64 }
///
/// #[derive(Serialize, Deserialize)]
/// enum Op { Deposit(i64), Balance }
///
/// impl Managed for Account {
///     type Request = Op;
///     type Response = i64;
///     fn handle(&mut self, op: Op) -> i64 {
///         if let Op::Deposit(n) = op { self.balance += n; }
///         self.balance
///     }
/// }
///
/// let m = Manager::start()?;
/// let acct = m.register(Account { balance: 10 })?;
/// assert_eq!(acct.call(Op::Deposit(5))?, 15);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Managed: Serialize + DeserializeOwned + Send + 'static {
    /// What a proxy sends.
    type Request: Serialize + DeserializeOwned;
    /// What the object answers.
    type Response: Serialize + DeserializeOwned;
    /// Handles one request, inside the manager process.
    fn handle(&mut self, request: Self::Request) -> Self::Response;
}

enum Object {
    /// Insertion-ordered, as Python's `dict`.
    Dict(IndexMap<Bytes, Bytes>),
    List(Vec<Bytes>),
    Namespace(IndexMap<String, Bytes>),
    User(Box<dyn std::any::Any>),
}

#[derive(Serialize, Deserialize)]
struct ServerArgs {
    requests: ObjectHandle,
    key: Key,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

/// The manager process's body.
fn server_main(args: ServerArgs) -> Result<(), String> {
    let mut requests = Queue::<Request, Serde>::open_consumer(&args.requests)
        .map_err(|e| format!("request queue: {e}"))?;
    std::panic::set_hook(Box::new(|_| {}));
    let mut clients: HashMap<u64, Queue<Reply, Serde>> = HashMap::new();
    let mut objects: HashMap<u64, Object> = HashMap::new();
    let mut next_id = 1u64;
    loop {
        let req = match requests.get() {
            Ok(r) => r,
            Err(GetError::Disconnected) => return Ok(()),
            Err(GetError::Decode(_)) => continue,
            Err(e) => return Err(format!("request queue: {e}")),
        };
        let reply = match req.op {
            Op::Hello { responses } => {
                if let Ok(q) = Queue::<Reply, Serde>::open_producer(&responses) {
                    clients.insert(req.client, q);
                }
                Reply::Unit
            }
            Op::Bye => {
                clients.remove(&req.client);
                continue;
            }
            Op::Shutdown => {
                if let Some(q) = clients.get_mut(&req.client) {
                    let _ = q.put(Reply::Unit);
                }
                return Ok(());
            }
            op => serve(op, &args.key, &mut objects, &mut next_id),
        };
        if let Some(q) = clients.get_mut(&req.client) {
            // A client killed mid-request: its queue is disconnected; forget it.
            if q.put_timeout(reply, Duration::from_secs(5)).is_err() {
                clients.remove(&req.client);
            }
        }
    }
}

fn serve(op: Op, secret: &Key, objects: &mut HashMap<u64, Object>, next_id: &mut u64) -> Reply {
    let mut new = |obj: Object| {
        let id = *next_id;
        *next_id += 1;
        objects.insert(id, obj);
        Reply::Id(id)
    };
    match op {
        Op::NewDict => return new(Object::Dict(IndexMap::new())),
        Op::NewList => return new(Object::List(Vec::new())),
        Op::NewNamespace => return new(Object::Namespace(IndexMap::new())),
        Op::NewObject { ctor, init } => {
            return match std::panic::catch_unwind(AssertUnwindSafe(|| {
                ctor.construct(secret, &init)
            })) {
                Ok(Ok(obj)) => new(Object::User(obj)),
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_text(p))),
            };
        }
        _ => {}
    }
    let id = match &op {
        Op::Drop { id }
        | Op::DictGet { id, .. }
        | Op::DictInsert { id, .. }
        | Op::DictRemove { id, .. }
        | Op::DictContains { id, .. }
        | Op::DictUpdateWith { id, .. }
        | Op::DictExtend { id, .. }
        | Op::DictItems { id }
        | Op::Len { id }
        | Op::Clear { id }
        | Op::ListPush { id, .. }
        | Op::ListPop { id }
        | Op::ListGet { id, .. }
        | Op::ListSet { id, .. }
        | Op::ListInsert { id, .. }
        | Op::ListRemove { id, .. }
        | Op::ListExtend { id, .. }
        | Op::ListItems { id }
        | Op::NsGet { id, .. }
        | Op::NsSet { id, .. }
        | Op::Call { id, .. } => *id,
        _ => return Reply::Err(WireError::NotFound("unknown operation".into())),
    };
    if let Op::Drop { id } = op {
        objects.remove(&id);
        return Reply::Unit;
    }
    let Some(obj) = objects.get_mut(&id) else {
        return Reply::Err(WireError::NotFound(format!("object {id}")));
    };
    let oob =
        |i: u64, n: usize| Reply::Err(WireError::NotFound(format!("index {i} of a list of {n}")));
    let wrong = || {
        Reply::Err(WireError::NotFound(format!(
            "object {id} is of another kind"
        )))
    };
    match (obj, op) {
        (Object::Dict(d), Op::DictGet { key, .. }) => Reply::Value(d.get(&key).cloned()),
        (Object::Dict(d), Op::DictInsert { key, value, .. }) => Reply::Value(d.insert(key, value)),
        (Object::Dict(d), Op::DictRemove { key, .. }) => Reply::Value(d.shift_remove(&key)),
        (Object::Dict(d), Op::DictContains { key, .. }) => Reply::Bool(d.contains_key(&key)),
        (Object::Dict(d), Op::DictUpdateWith { key, func, .. }) => {
            let old = d.get(&key).cloned();
            match std::panic::catch_unwind(AssertUnwindSafe(|| func.update(secret, old))) {
                Ok(Ok(new)) => {
                    d.insert(key, new.clone());
                    Reply::Value(Some(new))
                }
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_text(p))),
            }
        }
        (Object::Dict(d), Op::DictExtend { pairs, .. }) => {
            d.extend(pairs);
            Reply::Unit
        }
        (Object::Dict(d), Op::DictItems { .. }) => {
            Reply::Pairs(d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        (Object::Dict(d), Op::Len { .. }) => Reply::Count(d.len() as u64),
        (Object::Dict(d), Op::Clear { .. }) => {
            d.clear();
            Reply::Unit
        }
        (Object::List(l), Op::ListPush { value, .. }) => {
            l.push(value);
            Reply::Unit
        }
        (Object::List(l), Op::ListPop { .. }) => Reply::Value(l.pop()),
        (Object::List(l), Op::ListGet { index, .. }) => {
            Reply::Value(l.get(index as usize).cloned())
        }
        (Object::List(l), Op::ListSet { index, value, .. }) => match l.get_mut(index as usize) {
            Some(slot) => Reply::Value(Some(std::mem::replace(slot, value))),
            None => oob(index, l.len()),
        },
        (Object::List(l), Op::ListInsert { index, value, .. }) => {
            if index as usize <= l.len() {
                l.insert(index as usize, value);
                Reply::Unit
            } else {
                oob(index, l.len())
            }
        }
        (Object::List(l), Op::ListRemove { index, .. }) => {
            if (index as usize) < l.len() {
                Reply::Value(Some(l.remove(index as usize)))
            } else {
                oob(index, l.len())
            }
        }
        (Object::List(l), Op::ListExtend { values, .. }) => {
            l.extend(values);
            Reply::Unit
        }
        (Object::List(l), Op::ListItems { .. }) => Reply::Values(l.clone()),
        (Object::List(l), Op::Len { .. }) => Reply::Count(l.len() as u64),
        (Object::List(l), Op::Clear { .. }) => {
            l.clear();
            Reply::Unit
        }
        (Object::Namespace(n), Op::NsGet { field, .. }) => Reply::Value(n.get(&field).cloned()),
        (Object::Namespace(n), Op::NsSet { field, value, .. }) => {
            Reply::Value(n.insert(field, value))
        }
        (
            Object::User(obj),
            Op::Call {
                method, request, ..
            },
        ) => {
            match std::panic::catch_unwind(AssertUnwindSafe(|| {
                method.call_object(secret, obj.as_mut(), &request)
            })) {
                Ok(Ok(resp)) => Reply::Value(Some(resp)),
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_text(p))),
            }
        }
        _ => wrong(),
    }
}

/// What a process needs to reach a manager; it travels inside serialised proxies.
#[derive(Clone, Serialize, Deserialize)]
struct Address {
    requests: ObjectHandle,
    server: ipc_core::ProcessIdentity,
    key: Key,
}

struct Conn {
    client: u64,
    requests: Queue<Request, Serde>,
    responses: Queue<Reply, Serde>,
}

/// Bytes of a request or reply that travel inside a queue slot (larger ones go to a segment of
/// their own).
const SLOT_SIZE: usize = 512;

/// How long a client waits between liveness checks of the manager while connecting.
const CONNECT_SLICE: Duration = Duration::from_millis(50);

impl Conn {
    fn connect(addr: &Address) -> Result<Self, ManagerError> {
        let requests = Queue::<Request, Serde>::open_producer(&addr.requests)
            .map_err(|_| ManagerError::ManagerGone)?;
        let responses = Queue::<Reply, Serde>::create(&Placement::Anonymous, 4, SLOT_SIZE)
            .map_err(|e| ManagerError::Start(e.to_string()))?;
        let client = ipc_core::random_u128() as u64;
        let mut conn = Self {
            client,
            requests,
            responses,
        };
        conn.send(Op::Hello {
            responses: conn.responses.handle(),
        })?;
        let responses = &mut conn.responses;
        // Until the manager has attached as the producer, "no producer" does not mean gone:
        // wait in slices and check that the manager lives.
        loop {
            match responses.get_timeout(CONNECT_SLICE) {
                Ok(Reply::Unit) => break,
                Ok(_) => return Err(ManagerError::Protocol("bad reply to hello".into())),
                Err(GetError::Timeout) => {
                    if !addr.server.is_alive() {
                        return Err(ManagerError::ManagerGone);
                    }
                }
                Err(_) => return Err(ManagerError::ManagerGone),
            }
        }
        // From now on this handle only receives: when the manager dies, `get` says so.
        responses.close();
        Ok(conn)
    }

    fn send(&mut self, op: Op) -> Result<(), ManagerError> {
        match self.requests.put(Request {
            client: self.client,
            op,
        }) {
            Ok(()) => Ok(()),
            Err(PutError::Encode(_, e)) => Err(ManagerError::Codec(e.to_string())),
            Err(_) => Err(ManagerError::ManagerGone),
        }
    }

    fn call(&mut self, op: Op) -> Result<Reply, ManagerError> {
        self.send(op)?;
        match self.responses.get() {
            Ok(Reply::Err(e)) => Err(e.into()),
            Ok(r) => Ok(r),
            Err(GetError::Decode(e)) => Err(ManagerError::Codec(e.to_string())),
            Err(_) => Err(ManagerError::ManagerGone),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.requests.try_put(Request {
            client: self.client,
            op: Op::Bye,
        });
    }
}

struct Inner {
    /// In the creating process: the request queue as created. It must stay open here, because
    /// other processes reach an anonymous segment through its creator's descriptor.
    _requests: Option<Queue<Request, Serde>>,
    addr: Address,
    conn: Mutex<Option<Conn>>,
    /// Set in the process that started the manager: dropping the last handle shuts it down.
    process: Option<Process<Result<(), String>>>,
}

impl Inner {
    fn conn(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        let mut guard = self.conn();
        let conn = guard.as_mut().ok_or(ManagerError::ManagerGone)?;
        let r = conn.call(op);
        if matches!(r, Err(ManagerError::ManagerGone)) {
            *guard = None;
        }
        r
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(p) = &self.process {
            if let Some(mut conn) = self.conn().take() {
                let _ = conn.call(Op::Shutdown);
            }
            if p.join_timeout(Duration::from_secs(5)).is_err() {
                let _ = p.kill();
                let _ = p.join_timeout(Duration::from_secs(5));
            }
        }
    }
}

/// A running manager process, Python's `multiprocessing.Manager()`.
///
/// ```no_run
/// use ipc_pool::Manager;
///
/// let m = Manager::start()?;
/// let counts = m.dict::<String, u64>()?;
/// counts.update_with("hits".to_string(), |n| n.unwrap_or(0) + 1)?;
/// assert_eq!(counts.get(&"hits".to_string())?, Some(1));
/// let names = m.list::<String>()?;
/// names.push("worker-1".to_string())?;
/// assert_eq!(names.len()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cloning is cheap. Dropping the last `Manager` (or proxy) of the process that started it shuts
/// the manager down.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("server", &self.inner.addr.server)
            .finish()
    }
}

/// Builder for [`Manager`]: start method and process name.
#[derive(Debug, Default)]
pub struct ManagerBuilder {
    method: Option<StartMethod>,
    name: Option<String>,
}

impl ManagerBuilder {
    /// The start method of the manager process (default: ipc-core's default).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The manager process's name (default `SyncManager-N`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Starts the manager process and connects to it.
    pub fn start(self) -> Result<Manager, ManagerError> {
        let requests = Queue::<Request, Serde>::create(&Placement::Anonymous, 64, SLOT_SIZE)
            .map_err(|e| ManagerError::Start(e.to_string()))?;
        let key = Key::random();
        let args = ServerArgs {
            requests: requests.handle(),
            key,
        };
        let mut b = Process::builder().daemon(true);
        if let Some(m) = self.method {
            b = b.start_method(m);
        }
        if let Some(n) = self.name {
            b = b.name(n);
        }
        let process = b.target(server_main, args);
        process
            .start()
            .map_err(|e| ManagerError::Start(e.to_string()))?;
        let pid = process.pid().unwrap_or(0);
        let server = ipc_core::ProcessIdentity::of_pid(pid)
            .map_err(|e| ManagerError::Start(e.to_string()))?
            .ok_or(ManagerError::ManagerGone)?;
        let addr = Address {
            requests: requests.handle(),
            server,
            key,
        };
        // Our creating handle only produces from here on (the server consumes).
        let mut requests = requests;
        requests.close_receiving();
        let conn = Conn::connect(&addr)?;
        Ok(Manager {
            inner: Arc::new(Inner {
                _requests: Some(requests),
                addr,
                conn: Mutex::new(Some(conn)),
                process: Some(process),
            }),
        })
    }
}

impl Manager {
    /// Starts a manager with the default settings.
    pub fn start() -> Result<Self, ManagerError> {
        ManagerBuilder::default().start()
    }

    /// A builder (start method, name).
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Stops the manager process now; every proxy's later call returns
    /// [`ManagerError::ManagerGone`].
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        let r = self.inner.call(Op::Shutdown).map(drop);
        *self.inner.conn() = None;
        if let Some(p) = &self.inner.process {
            let _ = p.join_timeout(Duration::from_secs(5));
        }
        r
    }

    /// The manager process's pid.
    pub fn pid(&self) -> u32 {
        self.inner.addr.server.pid()
    }

    fn new_object(&self, op: Op) -> Result<u64, ManagerError> {
        match self.inner.call(op)? {
            Reply::Id(id) => Ok(id),
            _ => Err(ManagerError::Protocol("expected an object id".into())),
        }
    }

    /// A new shared dict.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ManagerError>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Ok(DictProxy {
            m: self.clone(),
            id: self.new_object(Op::NewDict)?,
            _t: PhantomData,
        })
    }

    /// A new shared list.
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>, ManagerError> {
        Ok(ListProxy {
            m: self.clone(),
            id: self.new_object(Op::NewList)?,
            _t: PhantomData,
        })
    }

    /// A new namespace: named fields of any serde type.
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        Ok(NamespaceProxy {
            m: self.clone(),
            id: self.new_object(Op::NewNamespace)?,
        })
    }

    /// Places `value` in the manager and returns its proxy (Python's `BaseManager.register`).
    pub fn register<T: Managed>(&self, value: T) -> Result<Proxy<T>, ManagerError> {
        let init = codec::encode(&value).map_err(|e| ManagerError::Codec(e.to_string()))?;
        let ctor = crate::function::ObjRef::constructor::<T>(&self.inner.addr.key);
        let id = self.new_object(Op::NewObject { ctor, init })?;
        Ok(Proxy {
            m: self.clone(),
            id,
            _t: PhantomData,
        })
    }

    /// A shared-memory queue (needs no server: it is an [`ipc_queue::Queue`]).
    pub fn queue<T: Serialize + DeserializeOwned>(
        &self,
        capacity: usize,
    ) -> Result<Queue<T, Serde>, ManagerError> {
        Queue::<T, Serde>::new(capacity).map_err(|e| ManagerError::Start(e.to_string()))
    }

    /// A robust cross-process lock (needs no server: it is an [`ipc_sync::Lock`]).
    pub fn lock(&self) -> Result<ipc_sync::Lock, ManagerError> {
        ipc_sync::Lock::new().map_err(|e| ManagerError::Start(e.to_string()))
    }

    /// A cross-process event (needs no server: it is an [`ipc_sync::Event`]).
    pub fn event(&self) -> Result<ipc_sync::Event, ManagerError> {
        ipc_sync::Event::new().map_err(|e| ManagerError::Start(e.to_string()))
    }

    /// A synchronised shared value (needs no server: it is an [`ipc_sync::Value`]).
    pub fn value<T: bytemuck::Pod>(&self, value: T) -> Result<ipc_sync::Value<T>, ManagerError> {
        ipc_sync::Value::new(value).map_err(|e| ManagerError::Start(e.to_string()))
    }

    fn address(&self) -> Address {
        self.inner.addr.clone()
    }

    fn attach(addr: Address) -> Result<Self, ManagerError> {
        let conn = Conn::connect(&addr)?;
        Ok(Manager {
            inner: Arc::new(Inner {
                _requests: None,
                addr,
                conn: Mutex::new(Some(conn)),
                process: None,
            }),
        })
    }
}

fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Bytes, ManagerError> {
    codec::encode(v).map_err(|e| ManagerError::Codec(e.to_string()))
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, ManagerError> {
    codec::decode(b).map_err(|e| ManagerError::Codec(e.to_string()))
}

fn dec_opt<T: DeserializeOwned>(r: Reply) -> Result<Option<T>, ManagerError> {
    match r {
        Reply::Value(Some(b)) => dec(&b).map(Some),
        Reply::Value(None) => Ok(None),
        _ => Err(ManagerError::Protocol("expected a value".into())),
    }
}

fn unit(r: Reply) -> Result<(), ManagerError> {
    match r {
        Reply::Unit => Ok(()),
        _ => Err(ManagerError::Protocol("expected no value".into())),
    }
}

fn count(r: Reply) -> Result<usize, ManagerError> {
    match r {
        Reply::Count(n) => Ok(n as usize),
        _ => Err(ManagerError::Protocol("expected a count".into())),
    }
}

#[derive(Serialize, Deserialize)]
struct ProxyWire {
    addr: Address,
    id: u64,
}

macro_rules! proxy_serde {
    ($name:ident < $($g:ident),* >, $($bound:tt)*) => {
        impl<$($g),*> Serialize for $name<$($g),*> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ProxyWire { addr: self.m.address(), id: self.id }.serialize(s)
            }
        }

        impl<'de, $($g),*> Deserialize<'de> for $name<$($g),*> where $($bound)* {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let w = ProxyWire::deserialize(d)?;
                let m = Manager::attach(w.addr).map_err(serde::de::Error::custom)?;
                Ok(Self { m, id: w.id, _t: PhantomData })
            }
        }
    };
}

/// `Send + Sync` whatever the key and value types: proxies hold only encoded bytes.
type Types<K, V> = fn(K, V) -> (K, V);

/// A proxy of a dict in the manager; passes to child processes as an argument.
pub struct DictProxy<K, V> {
    m: Manager,
    id: u64,
    _t: PhantomData<Types<K, V>>,
}

proxy_serde!(DictProxy<K, V>, K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned);

impl<K, V> Clone for DictProxy<K, V> {
    fn clone(&self) -> Self {
        Self {
            m: self.m.clone(),
            id: self.id,
            _t: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for DictProxy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DictProxy").field("id", &self.id).finish()
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        self.m.inner.call(op)
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, ManagerError> {
        dec_opt(self.call(Op::DictGet {
            id: self.id,
            key: enc(key)?,
        })?)
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, ManagerError> {
        dec_opt(self.call(Op::DictInsert {
            id: self.id,
            key: enc(&key)?,
            value: enc(&value)?,
        })?)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>, ManagerError> {
        dec_opt(self.call(Op::DictRemove {
            id: self.id,
            key: enc(key)?,
        })?)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> Result<bool, ManagerError> {
        match self.call(Op::DictContains {
            id: self.id,
            key: enc(key)?,
        })? {
            Reply::Bool(b) => Ok(b),
            _ => Err(ManagerError::Protocol("expected a bool".into())),
        }
    }

    /// Atomically replaces the value under `key` with `f(old)` inside the manager, so that
    /// `d[k] += 1` from many processes loses no increment; returns the new value.
    pub fn update_with(&self, key: K, f: fn(Option<V>) -> V) -> Result<V, ManagerError> {
        let func = crate::function::ObjRef::updater(&self.m.inner.addr.key, f);
        dec_opt(self.call(Op::DictUpdateWith {
            id: self.id,
            key: enc(&key)?,
            func,
        })?)?
        .ok_or_else(|| ManagerError::Protocol("update returned nothing".into()))
    }

    /// Inserts every pair (Python's `update`).
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), ManagerError> {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| Ok((enc(&k)?, enc(&v)?)))
            .collect::<Result<_, ManagerError>>()?;
        unit(self.call(Op::DictExtend { id: self.id, pairs })?)
    }

    /// A snapshot of every pair.
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        match self.call(Op::DictItems { id: self.id })? {
            Reply::Pairs(p) => p.iter().map(|(k, v)| Ok((dec(k)?, dec(v)?))).collect(),
            _ => Err(ManagerError::Protocol("expected pairs".into())),
        }
    }

    /// A snapshot of the keys.
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// A snapshot of the values.
    pub fn values(&self) -> Result<Vec<V>, ManagerError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }

    /// The number of entries.
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.call(Op::Len { id: self.id })?)
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), ManagerError> {
        unit(self.call(Op::Clear { id: self.id })?)
    }
}

/// A proxy of a list in the manager; passes to child processes as an argument.
pub struct ListProxy<T> {
    m: Manager,
    id: u64,
    _t: PhantomData<fn(T) -> T>,
}

proxy_serde!(ListProxy<T>, T: Serialize + DeserializeOwned);

impl<T> Clone for ListProxy<T> {
    fn clone(&self) -> Self {
        Self {
            m: self.m.clone(),
            id: self.id,
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ListProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListProxy").field("id", &self.id).finish()
    }
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        self.m.inner.call(op)
    }

    /// Appends (Python's `append`).
    #[doc(alias = "append")]
    pub fn push(&self, value: T) -> Result<(), ManagerError> {
        unit(self.call(Op::ListPush {
            id: self.id,
            value: enc(&value)?,
        })?)
    }

    /// Removes and returns the last element.
    pub fn pop(&self) -> Result<Option<T>, ManagerError> {
        dec_opt(self.call(Op::ListPop { id: self.id })?)
    }

    /// The element at `index`.
    pub fn get(&self, index: usize) -> Result<Option<T>, ManagerError> {
        dec_opt(self.call(Op::ListGet {
            id: self.id,
            index: index as u64,
        })?)
    }

    /// Replaces the element at `index`; returns the old one.
    pub fn set(&self, index: usize, value: T) -> Result<T, ManagerError> {
        dec_opt(self.call(Op::ListSet {
            id: self.id,
            index: index as u64,
            value: enc(&value)?,
        })?)?
        .ok_or_else(|| ManagerError::Protocol("set returned nothing".into()))
    }

    /// Inserts at `index` (at most `len`).
    pub fn insert(&self, index: usize, value: T) -> Result<(), ManagerError> {
        unit(self.call(Op::ListInsert {
            id: self.id,
            index: index as u64,
            value: enc(&value)?,
        })?)
    }

    /// Removes and returns the element at `index`.
    pub fn remove(&self, index: usize) -> Result<T, ManagerError> {
        dec_opt(self.call(Op::ListRemove {
            id: self.id,
            index: index as u64,
        })?)?
        .ok_or_else(|| ManagerError::Protocol("remove returned nothing".into()))
    }

    /// Appends every value.
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        let values = values
            .into_iter()
            .map(|v| enc(&v))
            .collect::<Result<_, _>>()?;
        unit(self.call(Op::ListExtend {
            id: self.id,
            values,
        })?)
    }

    /// A copy of the whole list.
    pub fn snapshot(&self) -> Result<Vec<T>, ManagerError> {
        match self.call(Op::ListItems { id: self.id })? {
            Reply::Values(v) => v.iter().map(|b| dec(b)).collect(),
            _ => Err(ManagerError::Protocol("expected values".into())),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.call(Op::Len { id: self.id })?)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// Removes every element.
    pub fn clear(&self) -> Result<(), ManagerError> {
        unit(self.call(Op::Clear { id: self.id })?)
    }
}

/// A proxy of a namespace (Python's `Manager().Namespace()`): named fields of any serde type.
#[derive(Clone)]
pub struct NamespaceProxy {
    m: Manager,
    id: u64,
}

impl fmt::Debug for NamespaceProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamespaceProxy")
            .field("id", &self.id)
            .finish()
    }
}

impl Serialize for NamespaceProxy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProxyWire {
            addr: self.m.address(),
            id: self.id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for NamespaceProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ProxyWire::deserialize(d)?;
        let m = Manager::attach(w.addr).map_err(serde::de::Error::custom)?;
        Ok(Self { m, id: w.id })
    }
}

impl NamespaceProxy {
    /// The field `name`, decoded as `T`; `None` if unset.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ManagerError> {
        dec_opt(self.m.inner.call(Op::NsGet {
            id: self.id,
            field: name.to_owned(),
        })?)
    }

    /// Sets the field `name`.
    pub fn set<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ManagerError> {
        let r = self.m.inner.call(Op::NsSet {
            id: self.id,
            field: name.to_owned(),
            value: enc(value)?,
        })?;
        match r {
            Reply::Value(_) => Ok(()),
            _ => Err(ManagerError::Protocol("expected a value".into())),
        }
    }
}

/// A proxy of a registered object ([`Managed`]); passes to child processes as an argument.
pub struct Proxy<T> {
    m: Manager,
    id: u64,
    _t: PhantomData<fn(T) -> T>,
}

proxy_serde!(Proxy<T>, T: Managed);

impl<T> Clone for Proxy<T> {
    fn clone(&self) -> Self {
        Self {
            m: self.m.clone(),
            id: self.id,
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Proxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("id", &self.id).finish()
    }
}

impl<T: Managed> Proxy<T> {
    /// Sends `request` to the object and returns its response. Requests from one proxy are
    /// handled in order, one at a time.
    pub fn call(&self, request: T::Request) -> Result<T::Response, ManagerError> {
        let method = crate::function::ObjRef::method::<T>(&self.m.inner.addr.key);
        let r = self.m.inner.call(Op::Call {
            id: self.id,
            method,
            request: enc(&request)?,
        })?;
        dec_opt(r)?.ok_or_else(|| ManagerError::Protocol("call returned nothing".into()))
    }
}
