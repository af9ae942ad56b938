//! What runs inside the manager on a client's behalf: registered types ([`Managed`]) and the
//! authenticated references (an [`FnRef`] per kind of operation) that name their code.
//!
//! | kind | trampoline type | made by |
//! |------|-----------------|---------|
//! | `KIND_CONSTRUCT` | [`Construct`]: decode a `T`, box it | `constructor::<T>` |
//! | `KIND_CALL` | [`CallObject`]: call `T::handle` on a boxed `T` | `method::<T>` |
//! | `KIND_UPDATE` | [`Update`]: apply an `fn(Option<V>) -> V` to a stored value | `updater::<V>` |
//! | `KIND_HOLD` | [`Hold`]: decode a stored `V` and keep it, re-encoded | `holder::<V>` |
//! | `KIND_SORT` | [`Sort`]: the sorting permutation of encoded `T: Ord` | `sorter::<T>` |
//! | `KIND_INIT` | [`Init`]: decode an `A` and call the initializer `fn(A)` | `initializer::<A>` |
//!
//! ## Why the manager holds decoded values
//!
//! A value may contain handles of shared objects (a `Queue`, a `Lock`): an anonymous object's
//! handle names the descriptor of the process that encoded it, which that process closes when
//! it drops its copy. So the manager decodes every stored value (attaching the objects in it,
//! which keeps them alive while the value is stored) and stores its own encoding, whose handles
//! name the manager's descriptors: a client reads back a queue that works, as Python stores
//! the queue itself. For plain values this costs one decode and one encode in the manager.

use std::any::Any;

use ipc_core::codec;
use ipc_core::process::{FnKey, FnRef};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A user type that lives in the manager process and is reached through a [`Proxy`](super::Proxy)
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

type Construct = fn(&[u8]) -> Result<Box<dyn Any>, String>;
type CallObject = fn(&mut dyn Any, &[u8]) -> Result<Vec<u8>, String>;
type Update = fn(usize, Option<Vec<u8>>) -> Result<Held, String>;
type Hold = fn(&[u8]) -> Result<Held, String>;
type Sort = fn(&[&[u8]]) -> Result<Vec<usize>, String>;
type Init = fn(usize, &[u8]) -> Result<(), String>;

/// A value as the manager keeps it: decoded (so the shared objects in it stay attached) and its
/// encoding made by the manager.
pub(super) struct Held {
    pub(super) bytes: Vec<u8>,
    pub(super) _value: Box<dyn Any>,
}

const KIND_CONSTRUCT: u8 = 2;
const KIND_CALL: u8 = 3;
const KIND_UPDATE: u8 = 4;
const KIND_HOLD: u8 = 5;
const KIND_SORT: u8 = 6;
const KIND_INIT: u8 = 7;

/// The sorting permutation of a list of encoded `T`, by `T`'s `Ord` (a stable sort).
pub(super) fn sorter<T: DeserializeOwned + Ord>(key: &FnKey) -> FnRef {
    // SAFETY: `KIND_SORT` references always carry a `Sort` and no function.
    unsafe { FnRef::new(key, KIND_SORT, sort_tramp::<T> as Sort as usize, 0) }
}

/// Runs a sorter on encoded elements.
pub(super) fn sort(r: &FnRef, key: &FnKey, items: &[&[u8]]) -> Result<Vec<usize>, String> {
    let (t, _) = r.resolve(key, KIND_SORT).map_err(|e| e.to_string())?;
    // SAFETY: as in `construct`, for a `Sort` trampoline made by `sorter`.
    let t: Sort = unsafe { std::mem::transmute::<usize, Sort>(t) };
    t(items)
}

fn sort_tramp<T: DeserializeOwned + Ord>(items: &[&[u8]]) -> Result<Vec<usize>, String> {
    let values: Vec<T> = items
        .iter()
        .map(|b| codec::decode(b).map_err(|e| format!("element: {e}")))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].cmp(&values[b]));
    Ok(order)
}

/// The manager's initializer `f`, called with a decoded `A`.
pub(super) fn initializer<A: DeserializeOwned>(key: &FnKey, f: fn(A)) -> FnRef {
    // SAFETY: `KIND_INIT` references always carry an `Init`, here `init_tramp::<A>`, with the
    // `fn(A)` it transmutes its function to.
    unsafe { FnRef::new(key, KIND_INIT, init_tramp::<A> as Init as usize, f as usize) }
}

/// Runs the initializer on its encoded argument.
pub(super) fn initialize(r: &FnRef, key: &FnKey, arg: &[u8]) -> Result<(), String> {
    let (t, f) = r.resolve(key, KIND_INIT).map_err(|e| e.to_string())?;
    // SAFETY: as in `construct`, for an `Init` trampoline made by `initializer`.
    let t: Init = unsafe { std::mem::transmute::<usize, Init>(t) };
    t(f, arg)
}

fn init_tramp<A: DeserializeOwned>(f: usize, arg: &[u8]) -> Result<(), String> {
    // SAFETY: `f` was made from an `fn(A)` by `initializer`, the only constructor pairing it
    // with this trampoline, and authenticated by `initialize`.
    let f: fn(A) = unsafe { std::mem::transmute::<usize, fn(A)>(f) };
    let arg: A = codec::decode(arg).map_err(|e| format!("initializer argument: {e}"))?;
    f(arg);
    Ok(())
}

/// Decodes a `T` and boxes it, in the manager.
pub(super) fn constructor<T: Managed>(key: &FnKey) -> FnRef {
    // SAFETY: `KIND_CONSTRUCT` references always carry a `Construct` and no function.
    unsafe {
        FnRef::new(
            key,
            KIND_CONSTRUCT,
            construct_tramp::<T> as Construct as usize,
            0,
        )
    }
}

/// Calls `T::handle` on a boxed `T`, in the manager.
pub(super) fn method<T: Managed>(key: &FnKey) -> FnRef {
    // SAFETY: `KIND_CALL` references always carry a `CallObject` and no function.
    unsafe { FnRef::new(key, KIND_CALL, call_tramp::<T> as CallObject as usize, 0) }
}

/// Applies `f` to a stored `Option<V>`, in the manager.
pub(super) fn updater<V: Serialize + DeserializeOwned + 'static>(
    key: &FnKey,
    f: fn(Option<V>) -> V,
) -> FnRef {
    // SAFETY: `KIND_UPDATE` references always carry an `Update`, here `update_tramp::<V>`,
    // with the `fn(Option<V>) -> V` it transmutes its function to.
    unsafe {
        FnRef::new(
            key,
            KIND_UPDATE,
            update_tramp::<V> as Update as usize,
            f as usize,
        )
    }
}

/// Decodes a stored `V` in the manager and keeps it (see the module docs).
pub(super) fn holder<V: Serialize + DeserializeOwned + 'static>(key: &FnKey) -> FnRef {
    // SAFETY: `KIND_HOLD` references always carry a `Hold` and no function.
    unsafe { FnRef::new(key, KIND_HOLD, hold_tramp::<V> as Hold as usize, 0) }
}

/// Decodes and keeps an encoded value.
pub(super) fn hold(r: &FnRef, key: &FnKey, bytes: &[u8]) -> Result<Held, String> {
    let (t, _) = r.resolve(key, KIND_HOLD).map_err(|e| e.to_string())?;
    // SAFETY: as in `construct`, for a `Hold` trampoline made by `holder`.
    let t: Hold = unsafe { std::mem::transmute::<usize, Hold>(t) };
    t(bytes)
}

fn hold_tramp<V: Serialize + DeserializeOwned + 'static>(bytes: &[u8]) -> Result<Held, String> {
    let value: V = codec::decode(bytes).map_err(|e| format!("value: {e}"))?;
    let bytes = codec::encode(&value).map_err(|e| format!("value: {e}"))?;
    Ok(Held {
        bytes,
        _value: Box::new(value),
    })
}

/// Builds a registered object from its encoded initial value.
pub(super) fn construct(r: &FnRef, key: &FnKey, init: &[u8]) -> Result<Box<dyn Any>, String> {
    let (t, _) = r.resolve(key, KIND_CONSTRUCT).map_err(|e| e.to_string())?;
    // SAFETY: the tag checked out for `KIND_CONSTRUCT`, which only `constructor` makes, always
    // with a `Construct` trampoline; same executable, so the address is that trampoline here.
    let t: Construct = unsafe { std::mem::transmute::<usize, Construct>(t) };
    t(init)
}

/// Calls a registered object's `handle` with an encoded request.
pub(super) fn call_object(
    r: &FnRef,
    key: &FnKey,
    obj: &mut dyn Any,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    let (t, _) = r.resolve(key, KIND_CALL).map_err(|e| e.to_string())?;
    // SAFETY: as in `construct`, for a `CallObject` trampoline made by `method`.
    let t: CallObject = unsafe { std::mem::transmute::<usize, CallObject>(t) };
    t(obj, request)
}

/// Applies an updater to a stored value.
pub(super) fn update(r: &FnRef, key: &FnKey, old: Option<Vec<u8>>) -> Result<Held, String> {
    let (t, f) = r.resolve(key, KIND_UPDATE).map_err(|e| e.to_string())?;
    // SAFETY: as in `construct`, for an `Update` trampoline made by `updater`.
    let t: Update = unsafe { std::mem::transmute::<usize, Update>(t) };
    t(f, old)
}

fn construct_tramp<T: Managed>(init: &[u8]) -> Result<Box<dyn Any>, String> {
    let value: T = codec::decode(init).map_err(|e| format!("initial value: {e}"))?;
    Ok(Box::new(value))
}

fn call_tramp<T: Managed>(obj: &mut dyn Any, request: &[u8]) -> Result<Vec<u8>, String> {
    let obj = obj
        .downcast_mut::<T>()
        .ok_or("the object is of another registered type")?;
    let request: T::Request = codec::decode(request).map_err(|e| format!("request: {e}"))?;
    let response = obj.handle(request);
    codec::encode(&response).map_err(|e| format!("response: {e}"))
}

fn update_tramp<V: Serialize + DeserializeOwned + 'static>(
    f: usize,
    old: Option<Vec<u8>>,
) -> Result<Held, String> {
    // SAFETY: `f` was made from an `fn(Option<V>) -> V` by `updater`, the only constructor
    // pairing it with this trampoline, and authenticated by `update`.
    let f: fn(Option<V>) -> V = unsafe { std::mem::transmute::<usize, fn(Option<V>) -> V>(f) };
    let old: Option<V> = match old {
        Some(bytes) => Some(codec::decode(&bytes).map_err(|e| format!("stored value: {e}"))?),
        None => None,
    };
    let new = f(old);
    let bytes = codec::encode(&new).map_err(|e| format!("new value: {e}"))?;
    Ok(Held {
        bytes,
        _value: Box::new(new),
    })
}
