//! The manager's protocol: typed requests and replies on shared-memory queues.

use ipc_core::ObjectHandle;
use ipc_core::process::{FnKey, FnRef};
use serde::{Deserialize, Serialize};

/// Bytes of a request or reply that travel inside a queue slot (larger ones go to a segment of
/// their own).
pub(super) const SLOT_SIZE: usize = 512;

/// An encoded value.
pub(super) type Bytes = Vec<u8>;

/// One request of a client.
#[derive(Serialize, Deserialize)]
pub(super) enum Op {
    Hello {
        responses: ObjectHandle,
        /// The client's process, so that the manager can forget it once it is dead.
        process: ipc_core::ProcessIdentity,
    },
    Bye,
    NewDict,
    NewList,
    NewNamespace,
    NewObject {
        ctor: FnRef,
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
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
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
        func: FnRef,
    },
    DictExtend {
        id: u64,
        pairs: Vec<(Bytes, Bytes)>,
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
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
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
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
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
    },
    ListInsert {
        id: u64,
        index: u64,
        value: Bytes,
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
    },
    ListRemove {
        id: u64,
        index: u64,
    },
    ListExtend {
        id: u64,
        values: Vec<Bytes>,
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
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
        /// Decodes the value in the manager and keeps it there (see `ops::holder`).
        hold: FnRef,
    },
    Call {
        id: u64,
        method: FnRef,
        request: Bytes,
    },
    /// Removes and returns the last inserted pair (Python's `popitem`).
    DictPopItem {
        id: u64,
    },
    /// Python's `setdefault`: the value under `key`, inserting `value` first if absent.
    DictSetDefault {
        id: u64,
        key: Bytes,
        value: Bytes,
        hold: FnRef,
    },
    ListReverse {
        id: u64,
    },
    /// Sorts with the element type's `Ord` (a `KIND_SORT` reference).
    ListSort {
        id: u64,
        func: FnRef,
    },
    /// Elements `start..end` (clamped to the list, as Python's slices are).
    ListSlice {
        id: u64,
        start: u64,
        end: u64,
    },
    /// Replaces elements `start..end` with `values` (Python's `l[a:b] = values`).
    ListSetSlice {
        id: u64,
        start: u64,
        end: u64,
        values: Vec<Bytes>,
        hold: FnRef,
    },
    /// Deletes a field; replies with its old value.
    NsDelete {
        id: u64,
        field: String,
    },
    NsFields {
        id: u64,
    },
    Shutdown,
}

/// A request with the client it comes from.
#[derive(Serialize, Deserialize)]
pub(super) struct Request {
    pub(super) client: u64,
    pub(super) op: Op,
}

/// The manager's answer.
#[derive(Serialize, Deserialize)]
pub(super) enum Reply {
    Unit,
    Id(u64),
    Bool(bool),
    Count(u64),
    Value(Option<Bytes>),
    Values(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    Pair(Option<(Bytes, Bytes)>),
    Names(Vec<String>),
    Err(WireError),
}

/// A failure the manager reports.
#[derive(Serialize, Deserialize)]
pub(super) enum WireError {
    Panicked(String),
    Codec(String),
    NotFound(String),
    /// The manager could not take a connection (its reply queue could not be opened).
    Refused(String),
}

/// What the manager process is started with.
#[derive(Serialize, Deserialize)]
pub(super) struct ServerArgs {
    pub(super) requests: ObjectHandle,
    pub(super) key: FnKey,
    /// Runs once in the manager before it serves (Python's `Manager(initializer, initargs)`).
    pub(super) init: Option<(FnRef, Bytes)>,
}

/// What a process needs to reach a manager; it travels inside serialised proxies.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Address {
    pub(super) requests: ObjectHandle,
    pub(super) server: ipc_core::ProcessIdentity,
    pub(super) key: FnKey,
}
