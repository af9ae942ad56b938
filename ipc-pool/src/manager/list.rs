//! `ListProxy`: a list in the manager.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Manager;
use super::error::ManagerError;
use super::ops;
use super::proxy::{ProxyWire, count, dec, dec_opt, enc, proxy_serde, unit};
use super::wire::{Op, Reply};
use ipc_core::process::FnRef;

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
