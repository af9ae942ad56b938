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
//!
//! | file        | holds                                                             |
//! |-------------|-------------------------------------------------------------------|
//! | `mod.rs`    | `Manager`, `ManagerBuilder`: start, connect, shut down            |
//! | `wire.rs`   | the protocol: requests, replies, the address proxies carry         |
//! | `server.rs` | the manager process: serving requests, pruning dead clients        |
//! | `conn.rs`   | a client's connection                                              |
//! | `ops.rs`    | `Managed` types and the references to code that runs in the manager |
//! | `proxy.rs`  | what every proxy shares, and `DictProxy`                           |
//! | `list.rs`   | `ListProxy`                                                        |
//! | `object.rs` | `NamespaceProxy` and `Proxy<T>` of a registered type               |
//! | `error.rs`  | `ManagerError`                                                     |

mod conn;
mod error;
mod list;
mod object;
mod ops;
mod proxy;
mod server;
mod wire;

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipc_core::process::FnKey;
use ipc_core::{Placement, Process, StartMethod, codec};
use ipc_queue::{Queue, Serde};
use serde::Serialize;
use serde::de::DeserializeOwned;

use conn::Conn;
pub use error::ManagerError;
pub use list::ListProxy;
pub use object::{NamespaceProxy, Proxy};
pub use ops::Managed;
pub use proxy::DictProxy;
use server::server_main;
use wire::{Address, Op, Reply, Request, SLOT_SIZE, ServerArgs};

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
#[doc(alias = "SyncManager")]
#[doc(alias = "BaseManager")]
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
#[derive(Default)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct ManagerBuilder {
    method: Option<StartMethod>,
    name: Option<String>,
    init: Option<MakeInit>,
}

/// Builds the initializer's reference and argument once the manager's key exists.
type MakeInit =
    Box<dyn FnOnce(&FnKey) -> Result<(ipc_core::process::FnRef, Vec<u8>), ManagerError>>;

impl fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("method", &self.method)
            .field("name", &self.name)
            .field("initializer", &self.init.is_some())
            .finish()
    }
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

    /// Runs `f(arg)` once in the manager process before it serves (Python's
    /// `Manager(initializer=f, initargs=(arg,))`). If it fails, `start` fails with
    /// [`ManagerError::Initializer`].
    #[doc(alias = "initargs")]
    pub fn initializer<A: Serialize + DeserializeOwned + 'static>(
        mut self,
        f: fn(A),
        arg: A,
    ) -> Self {
        self.init = Some(Box::new(move |key: &FnKey| {
            let bytes = codec::encode(&arg).map_err(ManagerError::Encode)?;
            Ok((ops::initializer(key, f), bytes))
        }));
        self
    }

    /// Starts the manager process and connects to it.
    pub fn start(self) -> Result<Manager, ManagerError> {
        let requests = Queue::<Request, Serde>::create(&Placement::Anonymous, 64, SLOT_SIZE)
            .map_err(ManagerError::Queue)?;
        let key = FnKey::random();
        let init = match self.init {
            Some(make) => Some(make(&key)?),
            None => None,
        };
        let args = ServerArgs {
            requests: requests.handle(),
            key,
            init,
        };
        let mut b = Process::builder().daemon(true);
        if let Some(m) = self.method {
            b = b.start_method(m);
        }
        if let Some(n) = self.name {
            b = b.name(n);
        }
        let process = b.target(server_main, args);
        process.start().map_err(ManagerError::Start)?;
        let pid = process.pid().unwrap_or(0);
        // The manager ended before it served (its initializer failed): say why, if it said.
        let ended = |process: &Process<Result<(), String>>| match process
            .join_timeout(Duration::from_secs(5))
        {
            Ok(Err(message)) => ManagerError::Initializer(message),
            _ => ManagerError::ManagerGone,
        };
        let server = match ipc_core::ProcessIdentity::of_pid(pid) {
            Ok(Some(id)) => id,
            Ok(None) => return Err(ended(&process)),
            Err(e) => return Err(ManagerError::Start(ipc_core::StartError::Io(e))),
        };
        let addr = Address {
            requests: requests.handle(),
            server,
            key,
        };
        // Our creating handle only produces from here on (the server consumes).
        let mut requests = requests;
        requests.close_receiving();
        let conn = match Conn::connect(&addr) {
            Ok(c) => c,
            Err(ManagerError::ManagerGone) => return Err(ended(&process)),
            Err(e) => return Err(e),
        };
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
            _ => Err(ManagerError::Protocol("expected an object id")),
        }
    }

    /// A new shared dict.
    #[doc(alias = "Dict")]
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
    #[doc(alias = "List")]
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>, ManagerError> {
        Ok(ListProxy {
            m: self.clone(),
            id: self.new_object(Op::NewList)?,
            _t: PhantomData,
        })
    }

    /// A new namespace: named fields of any serde type.
    #[doc(alias = "Namespace")]
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        Ok(NamespaceProxy {
            m: self.clone(),
            id: self.new_object(Op::NewNamespace)?,
        })
    }

    /// Places `value` in the manager and returns its proxy (Python's `BaseManager.register`).
    pub fn register<T: Managed>(&self, value: T) -> Result<Proxy<T>, ManagerError> {
        let init = codec::encode(&value).map_err(ManagerError::Encode)?;
        let ctor = ops::constructor::<T>(&self.inner.addr.key);
        let id = self.new_object(Op::NewObject { ctor, init })?;
        Ok(Proxy {
            m: self.clone(),
            id,
            _t: PhantomData,
        })
    }

    /// A shared-memory queue (Python's `Manager().Queue()`; it needs no server: it is an
    /// [`ipc_queue::Queue`]).
    pub fn queue<T: Serialize + DeserializeOwned>(
        &self,
        capacity: usize,
    ) -> Result<Queue<T, Serde>, ipc_queue::CreateError> {
        Queue::<T, Serde>::new(capacity)
    }

    /// A robust cross-process lock (Python's `Manager().Lock()`; it needs no server: it is an
    /// [`ipc_sync::Lock`]).
    pub fn lock(&self) -> Result<ipc_sync::Lock, ipc_core::CreateError> {
        ipc_sync::Lock::new()
    }

    /// A cross-process event (Python's `Manager().Event()`; an [`ipc_sync::Event`]).
    pub fn event(&self) -> Result<ipc_sync::Event, ipc_core::CreateError> {
        ipc_sync::Event::new()
    }

    /// A reentrant lock (Python's `Manager().RLock()`; an [`ipc_sync::RLock`]).
    pub fn rlock(&self) -> Result<ipc_sync::RLock, ipc_core::CreateError> {
        ipc_sync::RLock::new()
    }

    /// A semaphore (Python's `Manager().Semaphore(n)`; an [`ipc_sync::Semaphore`]).
    pub fn semaphore(&self, value: u32) -> Result<ipc_sync::Semaphore, ipc_core::CreateError> {
        ipc_sync::Semaphore::new(value)
    }

    /// A bounded semaphore (Python's `Manager().BoundedSemaphore(n)`).
    pub fn bounded_semaphore(
        &self,
        value: u32,
    ) -> Result<ipc_sync::BoundedSemaphore, ipc_core::CreateError> {
        ipc_sync::BoundedSemaphore::new(value)
    }

    /// A condition variable (Python's `Manager().Condition()`; an [`ipc_sync::Condition`]).
    pub fn condition(&self) -> Result<ipc_sync::Condition, ipc_core::CreateError> {
        ipc_sync::Condition::new()
    }

    /// A barrier for `parties` processes (Python's `Manager().Barrier(n)`).
    pub fn barrier(&self, parties: u32) -> Result<ipc_sync::Barrier, ipc_core::CreateError> {
        ipc_sync::Barrier::new(parties)
    }

    /// A synchronised shared array (Python's `Manager().Array(typecode, values)`).
    pub fn array<T: bytemuck::Pod>(
        &self,
        values: &[T],
    ) -> Result<ipc_sync::Array<T>, ipc_core::CreateError> {
        ipc_sync::Array::from_slice(values)
    }

    /// A joinable queue (Python's `Manager().JoinableQueue()`).
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(
        &self,
        capacity: usize,
    ) -> Result<ipc_queue::JoinableQueue<T, Serde>, ipc_queue::CreateError> {
        ipc_queue::JoinableQueue::<T, Serde>::new(capacity)
    }

    /// A synchronised shared value (Python's `Manager().Value()`; an [`ipc_sync::Value`]).
    pub fn value<T: bytemuck::Pod>(
        &self,
        value: T,
    ) -> Result<ipc_sync::Value<T>, ipc_core::CreateError> {
        ipc_sync::Value::new(value)
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
