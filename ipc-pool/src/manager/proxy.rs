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
use super::ops;
use super::wire::{Address, Bytes, Op, Reply};

pub(super) fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Bytes, ManagerError> {
    codec::encode(v).map_err(ManagerError::Encode)
}

pub(super) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, ManagerError> {
    codec::decode(b).map_err(ManagerError::Decode)
}

pub(super) fn dec_opt<T: DeserializeOwned>(r: Reply) -> Result<Option<T>, ManagerError> {
    match r {
        Reply::Value(Some(b)) => dec(&b).map(Some),
        Reply::Value(None) => Ok(None),
        _ => Err(ManagerError::Protocol("expected a value")),
    }
}

pub(super) fn unit(r: Reply) -> Result<(), ManagerError> {
    match r {
        Reply::Unit => Ok(()),
        _ => Err(ManagerError::Protocol("expected no value")),
    }
}

pub(super) fn count(r: Reply) -> Result<usize, ManagerError> {
    match r {
        Reply::Count(n) => Ok(n as usize),
        _ => Err(ManagerError::Protocol("expected a count")),
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct ProxyWire {
    pub(super) addr: Address,
    pub(super) id: u64,
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
                let m = Manager::attach(w.addr).map_err(ipc_core::codec::de_error)?;
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

pub(super) use proxy_serde;
