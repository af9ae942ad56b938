//! `NamespaceProxy` and `Proxy<T>`: a namespace and a registered object in the manager.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Manager;
use super::error::ManagerError;
use super::ops::{self, Managed};
use super::proxy::{ProxyWire, dec_opt, enc, proxy_serde};
use super::wire::{Op, Reply};

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
        let m = Manager::attach(w.addr).map_err(ipc_core::codec::de_error)?;
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
