//! The manager process: one thread serving requests in order, so every operation is atomic.
//!
//! Clients announce themselves (`Hello`, with their response queue and their process identity)
//! and say goodbye (`Bye`). A client killed without a goodbye is pruned once the kernel says its
//! process is gone: checked every [`PRUNE_SLICE`] while idle, every [`PRUNE_EVERY`] requests,
//! and whenever a new client's queue cannot be opened (which is how a manager at its descriptor
//! limit frees what dead clients held before it refuses anyone).
//!
//! A manager that still cannot open a new client's queue refuses it at once and says why: it
//! keeps a few descriptors in reserve ([`Reserve`]), closes them for as long as it takes to
//! open the client's queue and put the refusal, then takes them back. So a connect to a
//! manager at its descriptor limit fails with `ManagerError::Refused` naming the limit, never
//! a wait.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use indexmap::IndexMap;
use ipc_core::ProcessIdentity;
use ipc_core::process::{FnKey, panic_message};
use ipc_queue::{GetError, Queue, Serde};

use super::ops::{self, Held};
use super::wire::{Bytes, Op, Reply, Request, ServerArgs, WireError};

/// How long the manager waits for a request before it checks for dead clients.
const PRUNE_SLICE: Duration = Duration::from_secs(1);
/// Requests between two checks for dead clients while busy.
const PRUNE_EVERY: u32 = 256;
/// How long a reply may wait for room in a client's queue.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A stored object. Values are kept decoded as well as encoded (see `ops::holder`).
enum Object {
    /// Insertion-ordered, as Python's `dict`.
    Dict(IndexMap<Bytes, Held>),
    List(Vec<Held>),
    Namespace(IndexMap<String, Held>),
    User(Box<dyn std::any::Any>),
}

/// How many descriptors the manager keeps in reserve: opening a client's queue takes at most
/// three at once (a pidfd, the duplicated memfd, and the queue's own).
const RESERVE: usize = 4;

/// Descriptors held so that a manager out of them can still open one queue to refuse a client.
struct Reserve(Vec<std::fs::File>);

impl Reserve {
    fn new() -> Self {
        let mut r = Self(Vec::with_capacity(RESERVE));
        r.refill();
        r
    }

    /// Takes descriptors back up to [`RESERVE`] (as many as the limit allows).
    fn refill(&mut self) {
        while self.0.len() < RESERVE {
            match std::fs::File::open("/dev/null") {
                Ok(f) => self.0.push(f),
                Err(_) => break,
            }
        }
    }

    /// Closes the reserve so that the next opens can use its descriptors.
    fn release(&mut self) {
        self.0.clear();
    }
}

/// Tells a client that the manager cannot serve it, on its queue opened with the reserve.
fn refuse(
    reserve: &mut Reserve,
    responses: &ipc_core::ObjectHandle,
    why: &ipc_queue::OpenError,
    clients: usize,
) {
    reserve.release();
    if let Ok(mut q) = Queue::<Reply, Serde>::open_producer(responses) {
        let message = format!(
            "the manager (pid {}) cannot open this client's reply queue ({why}), with {clients} \
             clients connected: it is probably at its descriptor limit; raise the manager's \
             RLIMIT_NOFILE or end other clients",
            std::process::id()
        );
        let _ = q.put_timeout(Reply::Err(WireError::Refused(message)), REPLY_TIMEOUT);
    }
    reserve.refill();
}

/// A connected client: its response queue and its process.
struct Client {
    responses: Queue<Reply, Serde>,
    process: ProcessIdentity,
}

/// Forgets the clients whose process the kernel says is gone (their queue's descriptor and
/// mapping go with them).
fn prune(clients: &mut HashMap<u64, Client>) {
    clients.retain(|_, c| !c.process.liveness().is_dead());
}

/// The manager process's body.
pub(super) fn server_main(args: ServerArgs) -> Result<(), String> {
    let mut requests = Queue::<Request, Serde>::open_consumer(&args.requests)
        .map_err(|e| format!("request queue: {e}"))?;
    std::panic::set_hook(Box::new(|_| {}));
    if let Some((func, arg)) = &args.init {
        match std::panic::catch_unwind(AssertUnwindSafe(|| ops::initialize(func, &args.key, arg))) {
            Ok(Ok(())) => {}
            Ok(Err(m)) => return Err(format!("the initializer failed: {m}")),
            Err(p) => return Err(format!("the initializer panicked: {}", panic_message(&*p))),
        }
    }
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut reserve = Reserve::new();
    let mut objects: HashMap<u64, Object> = HashMap::new();
    let mut next_id = 1u64;
    let mut since_prune = 0u32;
    loop {
        let req = match requests.get_timeout(PRUNE_SLICE) {
            Ok(r) => r,
            Err(GetError::Timeout) => {
                prune(&mut clients);
                since_prune = 0;
                continue;
            }
            Err(GetError::Disconnected) => return Ok(()),
            Err(GetError::Decode(_)) => continue,
            Err(e) => return Err(format!("request queue: {e}")),
        };
        since_prune += 1;
        if since_prune >= PRUNE_EVERY {
            prune(&mut clients);
            since_prune = 0;
        }
        let reply = match req.op {
            Op::Hello { responses, process } => {
                let mut opened = Queue::<Reply, Serde>::open_producer(&responses);
                if opened.is_err() {
                    // Perhaps out of descriptors: free what dead clients hold, then try again.
                    prune(&mut clients);
                    opened = Queue::<Reply, Serde>::open_producer(&responses);
                }
                match opened {
                    Ok(q) => {
                        clients.insert(
                            req.client,
                            Client {
                                responses: q,
                                process,
                            },
                        );
                    }
                    Err(e) => {
                        refuse(&mut reserve, &responses, &e, clients.len());
                        continue;
                    }
                }
                Reply::Unit
            }
            Op::Bye => {
                clients.remove(&req.client);
                continue;
            }
            Op::Shutdown => {
                if let Some(c) = clients.get_mut(&req.client) {
                    let _ = c.responses.put(Reply::Unit);
                }
                return Ok(());
            }
            op => serve(op, &args.key, &mut objects, &mut next_id),
        };
        if let Some(c) = clients.get_mut(&req.client) {
            // A client killed mid-request: its queue is disconnected; forget it.
            if c.responses.put_timeout(reply, REPLY_TIMEOUT).is_err() {
                clients.remove(&req.client);
            }
        }
    }
}

/// Runs one object operation.
fn serve(op: Op, secret: &FnKey, objects: &mut HashMap<u64, Object>, next_id: &mut u64) -> Reply {
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
                ops::construct(&ctor, secret, &init)
            })) {
                Ok(Ok(obj)) => new(Object::User(obj)),
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_message(&*p))),
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
        | Op::Call { id, .. }
        | Op::DictPopItem { id }
        | Op::DictSetDefault { id, .. }
        | Op::ListReverse { id }
        | Op::ListSort { id, .. }
        | Op::ListSlice { id, .. }
        | Op::ListSetSlice { id, .. }
        | Op::NsDelete { id, .. }
        | Op::NsFields { id } => *id,
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
    // Decodes and keeps a value in the manager (see `ops::holder`), catching a panic in the
    // user's `Deserialize`.
    let keep = |hold: &ipc_core::process::FnRef, bytes: &[u8]| -> Result<Held, Reply> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| ops::hold(hold, secret, bytes))) {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(m)) => Err(Reply::Err(WireError::Codec(m))),
            Err(p) => Err(Reply::Err(WireError::Panicked(panic_message(&*p)))),
        }
    };
    let bytes = |h: Option<Held>| h.map(|h| h.bytes);
    match (obj, op) {
        (Object::Dict(d), Op::DictGet { key, .. }) => {
            Reply::Value(d.get(&key).map(|h| h.bytes.clone()))
        }
        (
            Object::Dict(d),
            Op::DictInsert {
                key, value, hold, ..
            },
        ) => match keep(&hold, &value) {
            Ok(held) => Reply::Value(bytes(d.insert(key, held))),
            Err(r) => r,
        },
        (Object::Dict(d), Op::DictRemove { key, .. }) => Reply::Value(bytes(d.shift_remove(&key))),
        (Object::Dict(d), Op::DictContains { key, .. }) => Reply::Bool(d.contains_key(&key)),
        (Object::Dict(d), Op::DictUpdateWith { key, func, .. }) => {
            let old = d.get(&key).map(|h| h.bytes.clone());
            match std::panic::catch_unwind(AssertUnwindSafe(|| ops::update(&func, secret, old))) {
                Ok(Ok(new)) => {
                    let reply = new.bytes.clone();
                    d.insert(key, new);
                    Reply::Value(Some(reply))
                }
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_message(&*p))),
            }
        }
        (Object::Dict(d), Op::DictExtend { pairs, hold, .. }) => {
            for (k, v) in pairs {
                match keep(&hold, &v) {
                    Ok(held) => {
                        d.insert(k, held);
                    }
                    Err(r) => return r,
                }
            }
            Reply::Unit
        }
        (Object::Dict(d), Op::DictPopItem { .. }) => {
            Reply::Pair(d.pop().map(|(k, v)| (k, v.bytes)))
        }
        (
            Object::Dict(d),
            Op::DictSetDefault {
                key, value, hold, ..
            },
        ) => {
            if let Some(v) = d.get(&key) {
                return Reply::Value(Some(v.bytes.clone()));
            }
            match keep(&hold, &value) {
                Ok(held) => {
                    let reply = held.bytes.clone();
                    d.insert(key, held);
                    Reply::Value(Some(reply))
                }
                Err(r) => r,
            }
        }
        (Object::Dict(d), Op::DictItems { .. }) => Reply::Pairs(
            d.iter()
                .map(|(k, v)| (k.clone(), v.bytes.clone()))
                .collect(),
        ),
        (Object::Dict(d), Op::Len { .. }) => Reply::Count(d.len() as u64),
        (Object::Dict(d), Op::Clear { .. }) => {
            d.clear();
            Reply::Unit
        }
        (Object::List(l), Op::ListPush { value, hold, .. }) => match keep(&hold, &value) {
            Ok(held) => {
                l.push(held);
                Reply::Unit
            }
            Err(r) => r,
        },
        (Object::List(l), Op::ListPop { .. }) => Reply::Value(bytes(l.pop())),
        (Object::List(l), Op::ListGet { index, .. }) => {
            Reply::Value(l.get(index as usize).map(|h| h.bytes.clone()))
        }
        (
            Object::List(l),
            Op::ListSet {
                index, value, hold, ..
            },
        ) => {
            let n = l.len();
            match l.get_mut(index as usize) {
                Some(slot) => match keep(&hold, &value) {
                    Ok(held) => Reply::Value(Some(std::mem::replace(slot, held).bytes)),
                    Err(r) => r,
                },
                None => oob(index, n),
            }
        }
        (
            Object::List(l),
            Op::ListInsert {
                index, value, hold, ..
            },
        ) => {
            if index as usize <= l.len() {
                match keep(&hold, &value) {
                    Ok(held) => {
                        l.insert(index as usize, held);
                        Reply::Unit
                    }
                    Err(r) => r,
                }
            } else {
                oob(index, l.len())
            }
        }
        (Object::List(l), Op::ListRemove { index, .. }) => {
            if (index as usize) < l.len() {
                Reply::Value(Some(l.remove(index as usize).bytes))
            } else {
                oob(index, l.len())
            }
        }
        (Object::List(l), Op::ListExtend { values, hold, .. }) => {
            for v in values {
                match keep(&hold, &v) {
                    Ok(held) => l.push(held),
                    Err(r) => return r,
                }
            }
            Reply::Unit
        }
        (Object::List(l), Op::ListItems { .. }) => {
            Reply::Values(l.iter().map(|h| h.bytes.clone()).collect())
        }
        (Object::List(l), Op::ListReverse { .. }) => {
            l.reverse();
            Reply::Unit
        }
        (Object::List(l), Op::ListSort { func, .. }) => {
            let items: Vec<&[u8]> = l.iter().map(|h| h.bytes.as_slice()).collect();
            match std::panic::catch_unwind(AssertUnwindSafe(|| ops::sort(&func, secret, &items))) {
                Ok(Ok(order)) if is_permutation(&order, l.len()) => {
                    let mut old: Vec<Option<Held>> = l.drain(..).map(Some).collect();
                    l.extend(order.into_iter().filter_map(|i| old[i].take()));
                    Reply::Unit
                }
                Ok(Ok(_)) => Reply::Err(WireError::Codec("the sort lost elements".into())),
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_message(&*p))),
            }
        }
        (Object::List(l), Op::ListSlice { start, end, .. }) => {
            let (a, b) = clamp(start, end, l.len());
            Reply::Values(l[a..b].iter().map(|h| h.bytes.clone()).collect())
        }
        (
            Object::List(l),
            Op::ListSetSlice {
                start,
                end,
                values,
                hold,
                ..
            },
        ) => {
            let (a, b) = clamp(start, end, l.len());
            let mut held = Vec::with_capacity(values.len());
            for v in values {
                match keep(&hold, &v) {
                    Ok(h) => held.push(h),
                    Err(r) => return r,
                }
            }
            l.splice(a..b, held);
            Reply::Unit
        }
        (Object::List(l), Op::Len { .. }) => Reply::Count(l.len() as u64),
        (Object::List(l), Op::Clear { .. }) => {
            l.clear();
            Reply::Unit
        }
        (Object::Namespace(n), Op::NsDelete { field, .. }) => {
            Reply::Value(bytes(n.shift_remove(&field)))
        }
        (Object::Namespace(n), Op::NsFields { .. }) => Reply::Names(n.keys().cloned().collect()),
        (Object::Namespace(n), Op::NsGet { field, .. }) => {
            Reply::Value(n.get(&field).map(|h| h.bytes.clone()))
        }
        (
            Object::Namespace(n),
            Op::NsSet {
                field, value, hold, ..
            },
        ) => match keep(&hold, &value) {
            Ok(held) => Reply::Value(bytes(n.insert(field, held))),
            Err(r) => r,
        },
        (
            Object::User(obj),
            Op::Call {
                method, request, ..
            },
        ) => {
            match std::panic::catch_unwind(AssertUnwindSafe(|| {
                ops::call_object(&method, secret, obj.as_mut(), &request)
            })) {
                Ok(Ok(resp)) => Reply::Value(Some(resp)),
                Ok(Err(m)) => Reply::Err(WireError::Codec(m)),
                Err(p) => Reply::Err(WireError::Panicked(panic_message(&*p))),
            }
        }
        _ => wrong(),
    }
}

/// A slice range `start..end` clamped to a list of `len` (Python's slices never fail).
fn clamp(start: u64, end: u64, len: usize) -> (usize, usize) {
    let end = usize::try_from(end).unwrap_or(usize::MAX).min(len);
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(end);
    (start, end)
}

/// Whether `order` holds each of `0..n` exactly once (a sorter's answer is checked before use).
fn is_permutation(order: &[usize], n: usize) -> bool {
    let mut seen = vec![false; n];
    order.len() == n
        && order
            .iter()
            .all(|&i| i < n && !std::mem::replace(&mut seen[i], true))
}
