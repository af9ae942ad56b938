//! A handle's entry in a participant table (`participants.rs`): the kernel as the liveness
//! oracle, this process's identity, and a fresh entry for a fork child on its first use.

use std::io;

use ipc_core::{Liveness, ProcessIdentity};

use crate::participants::{
    Entry, Identity, Oracle, ParticipantId, Table, TableFull, identity, split_identity,
};
use crate::primitive::AtomicU32;

/// The kernel as the oracle: `ProcessIdentity::liveness_of_tag` (dead only when the kernel
/// says so; an unanswerable question is `Unknown`, which counts as alive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel;

impl Oracle for Kernel {
    fn liveness(&self, who: Identity) -> Liveness {
        let (pid, tag) = split_identity(who);
        ProcessIdentity::liveness_of_tag(pid, tag)
    }
}

/// This process's identity as one word. Fails (and caches nothing) when `/proc/self/stat`
/// cannot be read.
pub(crate) fn current_identity() -> io::Result<Identity> {
    let me = ProcessIdentity::current()?;
    Ok(identity(me.pid(), me.start_tag()))
}

/// Where a table lives in a mapping.
#[derive(Clone, Copy)]
pub(crate) struct TablePlace {
    ever: *const AtomicU32,
    entries: *const Entry,
    len: usize,
}

impl TablePlace {
    /// # Safety
    /// `ever` and `entries` (`len` entries) must be aligned and stay mapped for as long as the
    /// place is used; every bit pattern is valid for them, and they are only accessed through
    /// atomics.
    pub(crate) unsafe fn new(ever: *const AtomicU32, entries: *const Entry, len: usize) -> Self {
        Self { ever, entries, len }
    }

    /// The table, judged by the kernel.
    pub(crate) fn table(&self) -> Table<'_, Kernel> {
        // SAFETY: per `new`'s contract the words are mapped, aligned and atomic-only while
        // `self` is used.
        let (ever, entries) = unsafe {
            (
                &*self.ever,
                std::slice::from_raw_parts(self.entries, self.len),
            )
        };
        Table::new(ever, entries, Kernel)
    }
}

/// Attaching failed.
#[derive(Debug)]
pub(crate) enum AttachError {
    /// This process's identity could not be read.
    Identity(io::Error),
    /// Every entry is held by a process the kernel does not call dead.
    Full {
        /// The number of entries.
        limit: usize,
    },
}

impl From<AttachError> for crate::error::OpenError {
    fn from(e: AttachError) -> Self {
        match e {
            AttachError::Identity(e) => Self::Identity(e),
            AttachError::Full { limit } => Self::TooManyParticipants { limit },
        }
    }
}

/// This handle has no entry in this process: it is a fork child's copy that could not claim
/// one (the table is full, or the child's identity could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotAttached;

/// A claimed entry, released on drop; claimed afresh in a fork child on first use.
pub(crate) struct Membership {
    id: ParticipantId,
    me: Identity,
    role: u32,
    /// The fork generation the entry was claimed in (see `primitive::fork_generation`).
    generation: u64,
}

fn attach_in(
    table: &Table<'_, Kernel>,
    role: u32,
) -> Result<(ParticipantId, Identity), AttachError> {
    let me = current_identity().map_err(AttachError::Identity)?;
    let id = table
        .attach(me, role)
        .map_err(|TableFull| AttachError::Full { limit: table.len() })?;
    Ok((id, me))
}

impl Membership {
    /// Claims an entry of `table` with `role`.
    pub(crate) fn attach(table: &Table<'_, Kernel>, role: u32) -> Result<Self, AttachError> {
        let generation = crate::primitive::fork_generation();
        let (id, me) = attach_in(table, role)?;
        Ok(Self {
            id,
            me,
            role,
            generation,
        })
    }

    /// The roles this handle holds.
    pub(crate) fn role(&self) -> u32 {
        self.role
    }

    /// Our participant id, claiming an entry first if this process is a fork child of the one
    /// that attached. Cheap: one relaxed load on the common path. A fork child that cannot
    /// claim an entry gets `NotAttached` (and tries again on its next call): it never acts under
    /// its parent's id, which peers judge by the parent's life.
    #[inline]
    pub(crate) fn id(&mut self, table: &Table<'_, Kernel>) -> Result<ParticipantId, NotAttached> {
        if self.generation != crate::primitive::fork_generation() {
            self.reattach(table)?;
        }
        Ok(self.id)
    }

    #[cold]
    fn reattach(&mut self, table: &Table<'_, Kernel>) -> Result<(), NotAttached> {
        let generation = crate::primitive::fork_generation();
        let (id, me) = attach_in(table, self.role).map_err(|_| NotAttached)?;
        self.id = id;
        self.me = me;
        self.generation = generation;
        Ok(())
    }

    /// Changes this handle's roles.
    pub(crate) fn set_role(&mut self, table: &Table<'_, Kernel>, role: u32) {
        self.role = role;
        if let Ok(id) = self.id(table) {
            table.set_role(id, self.me, role);
        }
    }

    /// Releases the entry (only in the process that claimed it).
    pub(crate) fn release(&self, table: &Table<'_, Kernel>) {
        if self.generation == crate::primitive::fork_generation() {
            table.release(self.id, self.me);
        }
    }
}

/// A table of [`DEFAULT_PARTICIPANTS`](crate::DEFAULT_PARTICIPANTS) entries inside a state
/// struct (`#[repr(C)]`, atomics only).
#[repr(C)]
pub(crate) struct InlineTable {
    ever: AtomicU32,
    _pad: AtomicU32,
    entries: [Entry; crate::participants::DEFAULT_PARTICIPANTS],
}

impl InlineTable {
    /// Where the table is.
    pub(crate) fn place(&self) -> TablePlace {
        // SAFETY: the words live inside `self`, which the caller keeps mapped while it uses the
        // place (it lives in a state struct of a segment the handle owns); atomics only.
        unsafe { TablePlace::new(&self.ever, self.entries.as_ptr(), self.entries.len()) }
    }
}
