//! Proxies: typed handles to objects in the manager, each call a request and a reply. Every
//! proxy serialises to the manager's address and the object's id, so it passes to a child
//! process as an argument and reconnects there.

use std::fmt;
use std::marker::PhantomData;

use ipc_core::codec;
use ipc_core::process::FnRef;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Manager;
use super::error::ManagerError;
use super::ops::{self, Managed};
use super::wire::{Address, Bytes, Op, Reply};

fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Bytes, ManagerError> {
    codec::encode(v).map_err(ManagerError::Encode)
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, ManagerError> {
    codec::decode(b).map_err(ManagerError::Decode)
}

fn dec_opt<T: DeserializeOwned>(r: Reply) -> Result<Option<T>, ManagerError> {
    match r {
        Reply::Value(Some(b)) => dec(&b).map(Some),
        Reply::Value(None) => Ok(None),
        _ => Err(ManagerError::Protocol("expected a value")),
    }
}

fn unit(r: Reply) -> Result<(), ManagerError> {
    match r {
        Reply::Unit => Ok(()),
        _ => Err(ManagerError::Protocol("expected no value")),
    }
}

fn count(r: Reply) -> Result<usize, ManagerError> {
    match r {
        Reply::Count(n) => Ok(n as usize),
        _ => Err(ManagerError::Protocol("expected a count")),
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
    pub(super) m: Manager,
    pub(super) id: u64,
    pub(super) _t: PhantomData<Types<K, V>>,
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

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned + 'static,
{
    fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        self.m.inner.call(op)
    }

    fn holder(&self) -> FnRef {
        ops::holder::<V>(&self.m.inner.addr.key)
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
            hold: self.holder(),
        })?)
    }

    /// Removes and returns the pair inserted last (Python's `popitem`); `None` when empty.
    pub fn popitem(&self) -> Result<Option<(K, V)>, ManagerError> {
        match self.call(Op::DictPopItem { id: self.id })? {
            Reply::Pair(Some((k, v))) => Ok(Some((dec(&k)?, dec(&v)?))),
            Reply::Pair(None) => Ok(None),
            _ => Err(ManagerError::Protocol("expected a pair")),
        }
    }

    /// The value under `key`, after inserting `default` if there was none (Python's
    /// `setdefault`), in one atomic step.
    pub fn setdefault(&self, key: K, default: V) -> Result<V, ManagerError> {
        dec_opt(self.call(Op::DictSetDefault {
            id: self.id,
            key: enc(&key)?,
            value: enc(&default)?,
            hold: self.holder(),
        })?)?
        .ok_or(ManagerError::Protocol("setdefault returned nothing"))
    }

    /// Removes `key` and returns its value, or `default` if it was absent (Python's
    /// `pop(key, default)`).
    pub fn pop(&self, key: &K, default: V) -> Result<V, ManagerError> {
        Ok(self.remove(key)?.unwrap_or(default))
    }

    /// A local copy of every pair, in insertion order (Python's `copy`, which returns a plain
    /// dict).
    pub fn copy(&self) -> Result<Vec<(K, V)>, ManagerError> {
        self.items()
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
            _ => Err(ManagerError::Protocol("expected a bool")),
        }
    }

    /// Atomically replaces the value under `key` with `f(old)` inside the manager, so that
    /// `d[k] += 1` from many processes loses no increment; returns the new value.
    pub fn update_with(&self, key: K, f: fn(Option<V>) -> V) -> Result<V, ManagerError> {
        let func = ops::updater(&self.m.inner.addr.key, f);
        dec_opt(self.call(Op::DictUpdateWith {
            id: self.id,
            key: enc(&key)?,
            func,
        })?)?
        .ok_or(ManagerError::Protocol("update returned nothing"))
    }

    /// Inserts every pair (Python's `update`).
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), ManagerError> {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| Ok((enc(&k)?, enc(&v)?)))
            .collect::<Result<_, ManagerError>>()?;
        unit(self.call(Op::DictExtend {
            id: self.id,
            pairs,
            hold: self.holder(),
        })?)
    }

    /// A snapshot of every pair.
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        match self.call(Op::DictItems { id: self.id })? {
            Reply::Pairs(p) => p.iter().map(|(k, v)| Ok((dec(k)?, dec(v)?))).collect(),
            _ => Err(ManagerError::Protocol("expected pairs")),
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
    pub(super) m: Manager,
    pub(super) id: u64,
    pub(super) _t: PhantomData<fn(T) -> T>,
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

impl<T: Serialize + DeserializeOwned + 'static> ListProxy<T> {
    fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        self.m.inner.call(op)
    }

    fn holder(&self) -> FnRef {
        ops::holder::<T>(&self.m.inner.addr.key)
    }

    /// Appends (Python's `append`).
    #[doc(alias = "append")]
    pub fn push(&self, value: T) -> Result<(), ManagerError> {
        unit(self.call(Op::ListPush {
            id: self.id,
            value: enc(&value)?,
            hold: self.holder(),
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
            hold: self.holder(),
        })?)?
        .ok_or(ManagerError::Protocol("set returned nothing"))
    }

    /// Inserts at `index` (at most `len`).
    pub fn insert(&self, index: usize, value: T) -> Result<(), ManagerError> {
        unit(self.call(Op::ListInsert {
            id: self.id,
            index: index as u64,
            value: enc(&value)?,
            hold: self.holder(),
        })?)
    }

    /// Removes and returns the element at `index`.
    pub fn remove(&self, index: usize) -> Result<T, ManagerError> {
        dec_opt(self.call(Op::ListRemove {
            id: self.id,
            index: index as u64,
        })?)?
        .ok_or(ManagerError::Protocol("remove returned nothing"))
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
            hold: self.holder(),
        })?)
    }

    /// Reverses the list in place (Python's `reverse`).
    pub fn reverse(&self) -> Result<(), ManagerError> {
        unit(self.call(Op::ListReverse { id: self.id })?)
    }

    /// Sorts the list in place by `T`'s order, inside the manager (Python's `sort`; stable).
    pub fn sort(&self) -> Result<(), ManagerError>
    where
        T: Ord,
    {
        unit(self.call(Op::ListSort {
            id: self.id,
            func: ops::sorter::<T>(&self.m.inner.addr.key),
        })?)
    }

    /// The elements `range` (clamped to the list, as Python's `l[a:b]`).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<Vec<T>, ManagerError> {
        match self.call(Op::ListSlice {
            id: self.id,
            start: range.start as u64,
            end: range.end as u64,
        })? {
            Reply::Values(v) => v.iter().map(|b| dec(b)).collect(),
            _ => Err(ManagerError::Protocol("expected values")),
        }
    }

    /// Replaces the elements `range` (clamped) with `values`, which may be of another length
    /// (Python's `l[a:b] = values`).
    pub fn set_slice(
        &self,
        range: std::ops::Range<usize>,
        values: impl IntoIterator<Item = T>,
    ) -> Result<(), ManagerError> {
        let values = values
            .into_iter()
            .map(|v| enc(&v))
            .collect::<Result<_, _>>()?;
        unit(self.call(Op::ListSetSlice {
            id: self.id,
            start: range.start as u64,
            end: range.end as u64,
            values,
            hold: self.holder(),
        })?)
    }

    /// How many elements equal `value` (Python's `count`).
    pub fn count(&self, value: &T) -> Result<usize, ManagerError>
    where
        T: PartialEq,
    {
        Ok(self.snapshot()?.iter().filter(|v| *v == value).count())
    }

    /// The index of the first element equal to `value` (Python's `index`, which raises
    /// `ValueError` where this returns `None`).
    pub fn index(&self, value: &T) -> Result<Option<usize>, ManagerError>
    where
        T: PartialEq,
    {
        Ok(self.snapshot()?.iter().position(|v| v == value))
    }

    /// A copy of the whole list.
    pub fn snapshot(&self) -> Result<Vec<T>, ManagerError> {
        match self.call(Op::ListItems { id: self.id })? {
            Reply::Values(v) => v.iter().map(|b| dec(b)).collect(),
            _ => Err(ManagerError::Protocol("expected values")),
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
    pub(super) m: Manager,
    pub(super) id: u64,
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

    /// Deletes the field `name` (Python's `del ns.name`); `true` if it was set.
    pub fn delete(&self, name: &str) -> Result<bool, ManagerError> {
        match self.m.inner.call(Op::NsDelete {
            id: self.id,
            field: name.to_owned(),
        })? {
            Reply::Value(old) => Ok(old.is_some()),
            _ => Err(ManagerError::Protocol("expected a value")),
        }
    }

    /// The names of the fields that are set, in the order they were first set (Python's
    /// `vars(ns)`).
    pub fn fields(&self) -> Result<Vec<String>, ManagerError> {
        match self.m.inner.call(Op::NsFields { id: self.id })? {
            Reply::Names(n) => Ok(n),
            _ => Err(ManagerError::Protocol("expected names")),
        }
    }

    /// Sets the field `name`.
    pub fn set<T: Serialize + DeserializeOwned + 'static>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), ManagerError> {
        let r = self.m.inner.call(Op::NsSet {
            id: self.id,
            field: name.to_owned(),
            value: enc(value)?,
            hold: ops::holder::<T>(&self.m.inner.addr.key),
        })?;
        match r {
            Reply::Value(_) => Ok(()),
            _ => Err(ManagerError::Protocol("expected a value")),
        }
    }
}

/// A proxy of a registered object ([`Managed`]); passes to child processes as an argument.
pub struct Proxy<T> {
    pub(super) m: Manager,
    pub(super) id: u64,
    pub(super) _t: PhantomData<fn(T) -> T>,
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
        let method = ops::method::<T>(&self.m.inner.addr.key);
        let r = self.m.inner.call(Op::Call {
            id: self.id,
            method,
            request: enc(&request)?,
        })?;
        dec_opt(r)?.ok_or(ManagerError::Protocol("call returned nothing"))
    }
}
