//! Who is attached to a shared object: a table in the object's segment with one entry per
//! attached handle, claimed at attach and released at drop. A waiting side asks it whether any
//! peer of the other role may still be alive, so that no wait outlasts the processes that could
//! end it, and a slot whose claimer is gone can be moved on.
//!
//! This file names only `crate::primitive` and `ipc_core::Liveness`; the kernel is asked through
//! an [`Oracle`], so `tests/loom.rs` model-checks the claim and release protocol.
//!
//! ## An entry (24 bytes)
//!
//! | word    | bits                          | meaning                                        |
//! |---------|-------------------------------|------------------------------------------------|
//! | `owner` | 63..32 pid, 31..0 start tag   | the holder's identity, one word; 0: free        |
//! | `state` | 63..32 generation, 31..0 roles | generation bumped at every claim; the roles held |
//! | `taken` | 63..0 count                   | a `JoinableQueue`'s tasks this holder got and has not marked done (reset at every claim; written only by the holder) |
//!
//! The identity is published by one 64-bit CAS, so no reader ever sees a pid without its start
//! tag. A participant id is `generation % 2^16 << 16 | (index + 1)`: 32 bits, recorded in queue
//! slot words. An id whose generation no longer matches its entry belongs to a handle that has
//! gone, even when another handle holds the entry now; a generation repeats only after 65,536
//! claims of the same entry (and then only makes a dead claimer look alive for a while).
//!
//! | from              | to                | by                                                  |
//! |-------------------|-------------------|-----------------------------------------------------|
//! | free              | `me`              | an attaching handle (CAS on `owner`)                 |
//! | `x`               | `me`              | an attaching handle, once the kernel says `x` is dead (CAS) |
//! | `me`, gen g       | `me`, gen g+1, roles | the same handle, right after its CAS (store on `state`) |
//! | `me`, roles r     | `me`, roles r'    | the same handle (`close`: store on `state`)          |
//! | `me`              | free              | the same handle when it drops: roles cleared, then CAS on `owner` |
//!
//! ## Dead means the kernel says so
//!
//! An entry frees nothing and counts as alive unless the [`Oracle`] answers
//! [`Liveness::Dead`] for its owner: `Unknown` (the kernel could not be asked) is alive. Judging
//! a live holder dead would hand its slot to another process; judging a dead one alive only
//! costs the time until the next check. Between an attacher's CAS and its `state` store, a
//! reader may pair the new owner with the old generation: that can only make an id of the
//! previous (gone) holder look alive for a moment, never a live holder's id look dead, because
//! a holder's own `owner` and generation do not change while it holds the entry.

use ipc_core::Liveness;

use crate::primitive::{AtomicU32, AtomicU64, Ordering};

/// The number of entries a participant table has unless its creator asks for another size.
pub const DEFAULT_PARTICIPANTS: usize = 1024;
/// The most entries a table can have (an entry index plus one fits 16 bits of a participant id).
pub const MAX_PARTICIPANTS: usize = (1 << ID_INDEX_BITS) - 1;

/// The role bit of a handle that puts (sends, pushes).
pub(crate) const PRODUCER: u32 = 1;
/// The role bit of a handle that gets (receives, pops).
pub(crate) const CONSUMER: u32 = 2;
/// Both roles.
pub(crate) const BOTH: u32 = PRODUCER | CONSUMER;

const ID_INDEX_BITS: u32 = 16;
const ID_INDEX_MASK: u32 = (1 << ID_INDEX_BITS) - 1;
const ROLE_MASK: u64 = 0xffff_ffff;

/// A process identity as one word: `pid << 32 | start_tag` (see
/// `ipc_core::ProcessIdentity::start_tag`). 0 is nobody; a pid is below 2^31, so bit 63 is
/// never set in an identity.
pub(crate) type Identity = u64;

/// Packs a pid and a start tag into an [`Identity`].
pub(crate) fn identity(pid: u32, start_tag: u32) -> Identity {
    (u64::from(pid) << 32) | u64::from(start_tag)
}

/// Splits an [`Identity`] into pid and start tag.
pub(crate) fn split_identity(word: Identity) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// Asks the kernel (or, in a model, a stand-in) whether the process an identity names is alive.
pub(crate) trait Oracle {
    /// What is known about the process `who` (never 0).
    fn liveness(&self, who: Identity) -> Liveness;
}

/// One entry, `#[repr(C)]` in shared memory; all bit patterns are valid.
#[repr(C)]
pub(crate) struct Entry {
    owner: AtomicU64,
    state: AtomicU64,
    taken: AtomicU64,
}

impl Entry {
    /// A free entry (for models and tests).
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self {
            owner: AtomicU64::new(0),
            state: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }
}

/// Bytes of one entry.
pub(crate) const ENTRY_BYTES: usize = size_of::<Entry>();
const _: () = assert!(ENTRY_BYTES == 24);

/// A participant id: `generation << 16 | (index + 1)`; 0 means "nobody".
pub(crate) type ParticipantId = u32;

/// Why an attach failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableFull;

/// A view of a table: the word of roles ever attached, the entries, and the oracle.
pub(crate) struct Table<'a, O> {
    ever: &'a AtomicU32,
    entries: &'a [Entry],
    oracle: O,
}

impl<'a, O: Oracle> Table<'a, O> {
    /// The table made of `ever` and `entries`, judged by `oracle`.
    pub(crate) fn new(ever: &'a AtomicU32, entries: &'a [Entry], oracle: O) -> Self {
        Self {
            ever,
            entries,
            oracle,
        }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn entry(&self, id: ParticipantId) -> Option<(usize, &Entry)> {
        let index = usize::try_from(id & ID_INDEX_MASK).ok()?.checked_sub(1)?;
        Some((index, self.entries.get(index)?))
    }

    fn holder_alive(&self, owner: Identity) -> bool {
        owner != 0 && self.oracle.liveness(owner) != Liveness::Dead
    }

    /// Claims an entry for the handle of process `me` (not 0) with `role`: a free entry if
    /// there is one, otherwise one whose owner the kernel says is dead (the kernel is asked
    /// only when no entry is free).
    pub(crate) fn attach(&self, me: Identity, role: u32) -> Result<ParticipantId, TableFull> {
        debug_assert!(me != 0);
        for ask_kernel in [false, true] {
            for (index, entry) in self.entries.iter().enumerate() {
                // ORDERING: Relaxed, only picks a candidate; the CAS below decides, with
                // Acquire.
                let owner = entry.owner.load(Ordering::Relaxed);
                if owner != 0 && (!ask_kernel || self.oracle.liveness(owner) != Liveness::Dead) {
                    continue;
                }
                // ORDERING: Acquire on success, pairs with the Release CAS in `release` (or the
                // previous holder's death): what it did with the entry happens before our use.
                // Relaxed on failure: we only move on.
                if entry
                    .owner
                    .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(self.claimed(index, entry, role));
                }
            }
        }
        Err(TableFull)
    }

    /// Finishes a claim of `entry` (ours since the CAS on its owner): a new generation and our
    /// roles.
    fn claimed(&self, index: usize, entry: &Entry, role: u32) -> ParticipantId {
        // ORDERING: Relaxed, our own entry from the CAS on: published by the Release store of
        // `state` below. A previous holder's count is not ours.
        entry.taken.store(0, Ordering::Relaxed);
        // ORDERING: Relaxed, our own entry: only the holder writes `state`.
        let generation = (entry.state.load(Ordering::Relaxed) >> 32).wrapping_add(1) as u32;
        // ORDERING: Release, pairs with the Acquire loads of `state` in `is_alive` and the role
        // readers: publishes the new generation and roles.
        entry.state.store(
            (u64::from(generation) << 32) | u64::from(role),
            Ordering::Release,
        );
        // ORDERING: Relaxed, a monotonic flag read on slow paths only.
        self.ever.fetch_or(role, Ordering::Relaxed);
        let tag = (generation & 0xffff) << ID_INDEX_BITS;
        // `index < entries.len() <= MAX_PARTICIPANTS < 2^16`.
        tag | (index as u32 + 1)
    }

    /// Releases the entry `id` if the handle of process `me` holds it (a fork child holding a
    /// copy of its parent's handle has another identity and releases nothing).
    pub(crate) fn release(&self, id: ParticipantId, me: Identity) {
        let Some((_, entry)) = self.entry(id) else {
            return;
        };
        // ORDERING: Relaxed, compares with our own identity, which only we store here.
        if entry.owner.load(Ordering::Relaxed) != me || !self.generation_matches(entry, id) {
            return;
        }
        // ORDERING: Relaxed, our own entry; the CAS below publishes it.
        let state = entry.state.load(Ordering::Relaxed);
        // ORDERING: Relaxed, published by the Release CAS below.
        entry.state.store(state & !ROLE_MASK, Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire CAS in `attach`: everything this handle did
        // happens before the entry is reused. Relaxed on failure (a hostile word: leave it).
        let _ = entry
            .owner
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
    }

    fn generation_matches(&self, entry: &Entry, id: ParticipantId) -> bool {
        // ORDERING: Acquire, pairs with the Release store in `attach`.
        let state = entry.state.load(Ordering::Acquire);
        ((state >> 32) as u32 & 0xffff) == id >> ID_INDEX_BITS
    }

    /// Whether the handle that claimed `id` may still hold it: `false` only if its entry has
    /// changed hands or been released since, or the kernel says its process is dead.
    /// Out-of-range ids are not alive.
    pub(crate) fn is_alive(&self, id: ParticipantId) -> bool {
        let Some((_, entry)) = self.entry(id) else {
            return false;
        };
        if !self.generation_matches(entry, id) {
            return false;
        }
        // ORDERING: Acquire, pairs with the Acquire/Release CASes in `attach`/`release`.
        let owner = entry.owner.load(Ordering::Acquire);
        self.holder_alive(owner)
    }

    /// Whether any live participant other than `except` holds one of the roles in `mask`.
    pub(crate) fn any_alive(&self, mask: u32, except: ParticipantId) -> bool {
        self.entries.iter().enumerate().any(|(index, entry)| {
            if index as u32 + 1 == except & ID_INDEX_MASK {
                return false;
            }
            // ORDERING: Acquire, pairs with the Release store in `attach`/`set_role`.
            let roles = entry.state.load(Ordering::Acquire) as u32;
            if roles & mask == 0 {
                return false;
            }
            // ORDERING: Acquire, pairs with the CASes of `attach`/`release`.
            let owner = entry.owner.load(Ordering::Acquire);
            self.holder_alive(owner)
        })
    }

    /// The `taken` count of our own entry `id` (`JoinableQueue`), if `id` names an entry.
    pub(crate) fn taken(&self, id: ParticipantId) -> Option<&AtomicU64> {
        self.entry(id).map(|(_, e)| &e.taken)
    }

    /// Whether any live holder's `taken` count is above zero: some handle got a task and may
    /// still mark it done.
    pub(crate) fn any_live_taken(&self) -> bool {
        self.entries.iter().any(|entry| {
            // ORDERING: Acquire, pairs with the Release stores of `taken` (a `task_done`
            // lowering it after its decrement of the unfinished count): a joiner that reads the
            // lowered count then sees that decrement.
            entry.taken.load(Ordering::Acquire) != 0 && {
                // ORDERING: Acquire, pairs with the CASes of `attach`/`release`.
                let owner = entry.owner.load(Ordering::Acquire);
                self.holder_alive(owner)
            }
        })
    }

    /// Whether a participant with a role in `mask` ever attached.
    pub(crate) fn ever(&self, mask: u32) -> bool {
        // ORDERING: Relaxed, a monotonic flag read on slow paths.
        self.ever.load(Ordering::Relaxed) & mask != 0
    }

    /// Changes the roles of our own entry `id` (e.g. a `Queue` handle that `close`s its sending
    /// side).
    pub(crate) fn set_role(&self, id: ParticipantId, me: Identity, role: u32) {
        let Some((_, entry)) = self.entry(id) else {
            return;
        };
        // ORDERING: Relaxed, compares with our own identity.
        if entry.owner.load(Ordering::Relaxed) != me || !self.generation_matches(entry, id) {
            return;
        }
        // ORDERING: Relaxed, our own entry: no other writer.
        let state = entry.state.load(Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire loads of the role readers.
        entry
            .state
            .store((state & !ROLE_MASK) | u64::from(role), Ordering::Release);
        // ORDERING: Relaxed, as in `attach`.
        self.ever.fetch_or(role, Ordering::Relaxed);
    }
}
