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
    /// The fork generation the entry was claimed in (see `fork::generation`).
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
        let generation = crate::fork::generation();
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
        if self.generation != crate::fork::generation() {
            self.reattach(table)?;
        }
        Ok(self.id)
    }

    /// This process's identity word, as recorded in the table (claiming an entry first in a
    /// fork child, as [`id`](Self::id) does).
    #[inline]
    pub(crate) fn identity(&mut self, table: &Table<'_, Kernel>) -> Result<Identity, NotAttached> {
        self.id(table)?;
        Ok(self.me)
    }

    #[cold]
    fn reattach(&mut self, table: &Table<'_, Kernel>) -> Result<(), NotAttached> {
        let generation = crate::fork::generation();
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
        if self.generation == crate::fork::generation() {
            table.release(self.id, self.me);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod table_tests {
    //! The participant table's protocol under a stand-in kernel (kept out of
    //! `participants.rs`, which `tests/loom.rs` compiles against loom atomics).
    use crate::participants::*;
    use crate::primitive::AtomicU32;
    use ipc_core::Liveness;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A stand-in for the kernel: identities map to what it says; unlisted ones are dead.
    #[derive(Default)]
    struct Kernel(Mutex<HashMap<Identity, Liveness>>);

    impl Kernel {
        fn set(&self, who: Identity, l: Liveness) {
            self.0.lock().unwrap().insert(who, l);
        }
    }

    impl Oracle for &Kernel {
        fn liveness(&self, who: Identity) -> Liveness {
            *self.0.lock().unwrap().get(&who).unwrap_or(&Liveness::Dead)
        }
    }

    fn entries(n: usize) -> Vec<Entry> {
        (0..n).map(|_| Entry::new()).collect()
    }

    const A: Identity = (10 << 32) | 1;
    const B: Identity = (11 << 32) | 1;

    #[test]
    fn attach_release_and_liveness() {
        let k = Kernel::default();
        k.set(A, Liveness::Alive);
        let (ever, e) = (AtomicU32::new(0), entries(4));
        let t = Table::new(&ever, &e, &k);
        let a = t.attach(A, PRODUCER).unwrap();
        let b = t.attach(A, CONSUMER).unwrap();
        assert_ne!(a, b);
        assert!(t.is_alive(a));
        assert!(t.any_alive(PRODUCER, 0));
        assert!(!t.any_alive(PRODUCER, a));
        assert!(t.any_alive(CONSUMER, 0));
        t.release(a, A);
        assert!(!t.is_alive(a));
        assert!(!t.any_alive(PRODUCER, 0));
        assert!(t.ever(PRODUCER));
        assert!(!t.is_alive(0));
        assert!(!t.is_alive(1000));
        // The entry changes hands within the same process: the old id no longer counts.
        let c = t.attach(A, PRODUCER).unwrap();
        assert_eq!(c & 0xffff, a & 0xffff);
        assert!(t.is_alive(c));
        assert!(!t.is_alive(a));
    }

    #[test]
    fn only_a_dead_owner_is_displaced_and_unknown_counts_as_alive() {
        let k = Kernel::default();
        k.set(A, Liveness::Unknown);
        k.set(B, Liveness::Alive);
        let (ever, e) = (AtomicU32::new(0), entries(1));
        let t = Table::new(&ever, &e, &k);
        let a = t.attach(A, PRODUCER).unwrap();
        // The kernel cannot tell about A: A keeps its entry and its id stays alive.
        assert_eq!(t.attach(B, CONSUMER), Err(TableFull));
        assert!(t.is_alive(a));
        assert!(t.any_alive(PRODUCER, 0));
        // The kernel says A is dead: its entry is taken over, its id is dead.
        k.set(A, Liveness::Dead);
        assert!(!t.is_alive(a));
        let b = t.attach(B, CONSUMER).unwrap();
        assert!(t.is_alive(b));
        assert!(!t.is_alive(a));
        // A's release (it cannot come, but a stale copy of its handle might try) changes nothing.
        t.release(a, A);
        assert!(t.is_alive(b));
    }

    #[test]
    fn a_generation_repeats_only_after_65536_claims() {
        let k = Kernel::default();
        k.set(A, Liveness::Alive);
        let (ever, e) = (AtomicU32::new(0), entries(1));
        let t = Table::new(&ever, &e, &k);
        let first = t.attach(A, BOTH).unwrap();
        t.release(first, A);
        for _ in 0..1000 {
            let id = t.attach(A, BOTH).unwrap();
            assert!(!t.is_alive(first), "an old id came back to life");
            t.release(id, A);
        }
    }

    #[test]
    fn table_fills_up() {
        let k = Kernel::default();
        k.set(A, Liveness::Alive);
        let (ever, e) = (AtomicU32::new(0), entries(8));
        let t = Table::new(&ever, &e, &k);
        for _ in 0..8 {
            assert!(t.attach(A, BOTH).is_ok());
        }
        assert_eq!(t.attach(A, BOTH), Err(TableFull));
    }
}
