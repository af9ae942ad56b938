//! Who is attached to a shared object: a small table in the object's state with one entry per
//! attached handle (process id, process start time, role), claimed at attach and released at
//! drop. A waiting side asks it whether any peer of the other role is still alive, so that no
//! wait outlasts the processes that could end it.
//!
//! ## An entry
//!
//! | word    | bits                 | meaning                                              |
//! |---------|----------------------|------------------------------------------------------|
//! | `owner` | 63..32 pid, 31..0 role | 0: free; role [`CLAIMING`]: being claimed; else the roles held |
//! | `start` | 63..0                | the owner's process start time (valid once the role is set) |
//! | `generation` | 63..0           | bumped at every claim                                 |
//!
//! A participant id is `generation % 512 << 7 | (index + 1)`: 16 bits, recorded in queue slot
//! words. An id whose generation no longer matches its entry belongs to a process that has
//! gone, even when a new process holds the entry now.
//!
//! | from                  | to                     | by                                   |
//! |-----------------------|------------------------|--------------------------------------|
//! | free                  | `pid, CLAIMING`        | an attaching process (CAS)           |
//! | dead `pid', role'`    | `pid, CLAIMING`        | an attaching process, after checking `pid'` is dead (CAS) |
//! | `pid, CLAIMING`       | `pid, role`            | the same process, after storing `start` |
//! | `pid, role`           | free                   | the same process, when its handle drops |
//!
//! An entry in `CLAIMING` counts as alive while its pid exists; an entry with a role counts as
//! alive while its pid exists *and* started at `start` (so a recycled pid does not count).

use ipc_core::ProcessIdentity;

use crate::primitive::{AtomicU32, AtomicU64, Ordering};

/// How many handles may be attached to one object at once.
pub const MAX_PARTICIPANTS: usize = 64;

/// The role bit of a handle that puts (sends, pushes).
pub(crate) const PRODUCER: u32 = 1;
/// The role bit of a handle that gets (receives, pops).
pub(crate) const CONSUMER: u32 = 2;
/// Both roles.
pub(crate) const BOTH: u32 = PRODUCER | CONSUMER;
/// An entry whose owner has not finished claiming it.
const CLAIMING: u32 = 0x8000_0000;

#[repr(C)]
struct Entry {
    owner: AtomicU64,
    start: AtomicU64,
    /// Bumped at every claim, so that an id recorded before the entry changed hands is
    /// recognised as belonging to a process that has gone.
    generation: AtomicU64,
}

/// Bits of a participant id that name the entry (index + 1); the bits above hold the entry's
/// generation at claim time.
const INDEX_BITS: u32 = 7;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// Participant ids fit in 16 bits (they are recorded in slot words).
const GENERATION_MASK: u64 = (1 << (16 - INDEX_BITS)) - 1;
const _: () = assert!(MAX_PARTICIPANTS < (1 << INDEX_BITS));

/// The table, `#[repr(C)]` in shared memory; all bit patterns are valid.
#[repr(C)]
pub(crate) struct ParticipantTable {
    entries: [Entry; MAX_PARTICIPANTS],
    /// The roles ever attached (bit-or of role bits).
    ever: AtomicU32,
    _pad: u32,
}

fn pack(pid: u32, role: u32) -> u64 {
    (u64::from(pid) << 32) | u64::from(role)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// A participant id: the entry index plus one (0 means "nobody"), as recorded in slot words.
pub(crate) type ParticipantId = u32;

impl ParticipantTable {
    fn entry(&self, id: ParticipantId) -> Option<&Entry> {
        let index = usize::try_from(id & INDEX_MASK).ok()?.checked_sub(1)?;
        self.entries.get(index)
    }

    fn word_is_alive(&self, word: u64, start: u64) -> bool {
        let (pid, role) = unpack(word);
        if pid == 0 {
            return false;
        }
        if role == CLAIMING {
            return !matches!(ProcessIdentity::of_pid(pid), Ok(None));
        }
        ProcessIdentity::from_parts(pid, start).is_alive()
    }

    /// Claims an entry for the calling process with `role`; `None` if every entry is held by
    /// a live process.
    pub(crate) fn attach(&self, role: u32) -> Option<ParticipantId> {
        let me = ProcessIdentity::current().ok()?;
        let claiming = pack(me.pid(), CLAIMING);
        for (index, entry) in self.entries.iter().enumerate() {
            // ORDERING: Acquire, pairs with the Release stores below: if the entry is taken we
            // read its `start` after this.
            let word = entry.owner.load(Ordering::Acquire);
            if word != 0 {
                // ORDERING: Relaxed, `start` is checked only to decide liveness; a stale value
                // can only make a claiming owner look alive (CLAIMING is checked by pid).
                let start = entry.start.load(Ordering::Relaxed);
                if self.word_is_alive(word, start) {
                    continue;
                }
            }
            // ORDERING: AcqRel on success, orders our `start` store after the claim; Relaxed on
            // failure, we only move on.
            if entry
                .owner
                .compare_exchange(word, claiming, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // ORDERING: Relaxed, published by the Release store of the role below.
                entry.start.store(me.start_time(), Ordering::Relaxed);
                // ORDERING: Relaxed, published by the Release store of the role below.
                let generation = entry
                    .generation
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(1);
                // ORDERING: Release, pairs with the Acquire loads in `is_alive`: publishes
                // `start` together with the role.
                entry.owner.store(pack(me.pid(), role), Ordering::Release);
                // ORDERING: Relaxed, a flag word read only under liveness checks.
                self.ever.fetch_or(role, Ordering::Relaxed);
                let tag = ((generation & GENERATION_MASK) as u32) << INDEX_BITS;
                return Some(tag | (index as ParticipantId + 1));
            }
        }
        None
    }

    /// Releases the entry `id` if the calling process holds it (a forked child holding a copy
    /// of its parent's handle does not release the parent's entry).
    pub(crate) fn release(&self, id: ParticipantId) {
        let Some(entry) = self.entry(id) else { return };
        let pid = std::process::id();
        // ORDERING: Relaxed, we only compare our own pid, which only we write here.
        let word = entry.owner.load(Ordering::Relaxed);
        if unpack(word).0 == pid {
            // ORDERING: Release, pairs with the Acquire in `attach`: everything this handle did
            // happens before the entry is reused.
            let _ = entry
                .owner
                .compare_exchange(word, 0, Ordering::Release, Ordering::Relaxed);
        }
    }

    /// Whether the process that claimed `id` still holds it and is alive (out-of-range ids,
    /// and ids of an entry that has changed hands since, are not).
    pub(crate) fn is_alive(&self, id: ParticipantId) -> bool {
        let Some(entry) = self.entry(id) else {
            return false;
        };
        // ORDERING: Acquire, pairs with the Release store of the role in `attach`.
        let word = entry.owner.load(Ordering::Acquire);
        // ORDERING: Relaxed, ordered by the Acquire above.
        let generation = entry.generation.load(Ordering::Relaxed) & GENERATION_MASK;
        if u64::from(id >> INDEX_BITS) != generation {
            return false;
        }
        // ORDERING: Relaxed, ordered by the Acquire above.
        let start = entry.start.load(Ordering::Relaxed);
        self.word_is_alive(word, start)
    }

    /// Whether any live participant other than `except` holds one of the roles in `mask`.
    pub(crate) fn any_alive(&self, mask: u32, except: ParticipantId) -> bool {
        self.entries.iter().enumerate().any(|(index, entry)| {
            if index as ParticipantId + 1 == except & INDEX_MASK {
                return false;
            }
            // ORDERING: Acquire, pairs with the Release store of the role in `attach`.
            let word = entry.owner.load(Ordering::Acquire);
            let (_, role) = unpack(word);
            let claiming = role == CLAIMING;
            if word == 0 || (!claiming && role & mask == 0) {
                return false;
            }
            // ORDERING: Relaxed, ordered by the Acquire above.
            let start = entry.start.load(Ordering::Relaxed);
            self.word_is_alive(word, start)
        })
    }

    /// Whether a participant with a role in `mask` ever attached.
    pub(crate) fn ever(&self, mask: u32) -> bool {
        // ORDERING: Relaxed, a monotonic flag read on the slow path.
        self.ever.load(Ordering::Relaxed) & mask != 0
    }

    /// The number of live participants holding a role in `mask`.
    pub(crate) fn count(&self, mask: u32) -> usize {
        self.entries
            .iter()
            .filter(|entry| {
                // ORDERING: Acquire, pairs with the Release store of the role in `attach`.
                let word = entry.owner.load(Ordering::Acquire);
                let (_, role) = unpack(word);
                // ORDERING: Relaxed, ordered by the Acquire above.
                let start = entry.start.load(Ordering::Relaxed);
                role != CLAIMING && role & mask != 0 && self.word_is_alive(word, start)
            })
            .count()
    }

    /// Changes the role of our own entry `id` (e.g. a `Queue` handle that `close`s its sending
    /// side).
    pub(crate) fn set_role(&self, id: ParticipantId, role: u32) {
        let Some(entry) = self.entry(id) else { return };
        // ORDERING: Relaxed, we only compare our own pid.
        let word = entry.owner.load(Ordering::Relaxed);
        let (pid, _) = unpack(word);
        if pid == std::process::id() {
            // ORDERING: Release, pairs with the Acquire loads of the readers of roles.
            let _ = entry.owner.compare_exchange(
                word,
                pack(pid, role),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}

/// A claimed entry, released on drop; re-claimed in a forked child on first use.
pub(crate) struct Membership {
    id: ParticipantId,
    role: u32,
    generation: u64,
}

impl Membership {
    /// The roles this handle holds.
    pub(crate) fn role(&self) -> u32 {
        self.role
    }

    pub(crate) fn attach(table: &ParticipantTable, role: u32) -> Option<Self> {
        let generation = crate::primitive::fork_generation();
        let id = table.attach(role)?;
        Some(Self {
            id,
            role,
            generation,
        })
    }

    /// Our participant id, claiming a new entry first if this process is a fork child of the
    /// one that attached. Cheap: one relaxed load on the common path.
    #[inline]
    pub(crate) fn id(&mut self, table: &ParticipantTable) -> ParticipantId {
        if self.generation != crate::primitive::fork_generation() {
            self.reattach(table);
        }
        self.id
    }

    #[cold]
    fn reattach(&mut self, table: &ParticipantTable) {
        self.generation = crate::primitive::fork_generation();
        // If the table is full, keep the parent's id: liveness is then attributed to it.
        if let Some(id) = table.attach(self.role) {
            self.id = id;
        }
    }

    pub(crate) fn set_role(&mut self, table: &ParticipantTable, role: u32) {
        let id = self.id(table);
        self.role = role;
        table.set_role(id, role);
    }

    pub(crate) fn release(&self, table: &ParticipantTable) {
        table.release(self.id);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn table() -> Box<ParticipantTable> {
        // SAFETY: the table is atomics only, for which all-zero is a valid (empty) state.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn attach_release_and_liveness() {
        let t = table();
        let a = t.attach(PRODUCER).unwrap();
        let b = t.attach(CONSUMER).unwrap();
        assert_ne!(a, b);
        assert!(t.is_alive(a));
        assert!(t.any_alive(PRODUCER, 0));
        assert!(!t.any_alive(PRODUCER, a));
        assert_eq!(t.count(CONSUMER), 1);
        t.release(a);
        assert!(!t.is_alive(a));
        assert!(!t.any_alive(PRODUCER, 0));
        assert!(t.ever(PRODUCER));
        assert!(!t.is_alive(0));
        assert!(!t.is_alive(1000));
        // The entry changes hands: the old id no longer counts as alive.
        let c = t.attach(PRODUCER).unwrap();
        assert_eq!(c & INDEX_MASK, a & INDEX_MASK);
        assert!(t.is_alive(c));
        assert!(!t.is_alive(a));
    }

    #[test]
    fn dead_entries_are_reclaimed() {
        let t = table();
        // An entry whose owner never existed (pid 0x7fff_fff0 is beyond pid_max).
        t.entries[0]
            .owner
            .store(pack(0x7fff_fff0, PRODUCER), Ordering::Relaxed);
        assert!(!t.any_alive(PRODUCER, 0));
        assert_eq!(t.attach(CONSUMER).map(|id| id & INDEX_MASK), Some(1));
    }

    #[test]
    fn table_fills_up() {
        let t = table();
        for _ in 0..MAX_PARTICIPANTS {
            assert!(t.attach(BOTH).is_some());
        }
        assert!(t.attach(BOTH).is_none());
    }
}
