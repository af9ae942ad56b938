//! The MPMC slot protocol: Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>, as in
//! crossbeam's `ArrayQueue`), changed in one way so that a process killed mid-operation wedges
//! nothing: a slot is *claimed* by a CAS on the slot's own state word that records the claimer's
//! participant id, and the shared head/tail positions only follow (anyone may help them on).
//! Whoever finds a slot claimed for too long checks the claimer; if it is dead, it moves the slot
//! on with a CAS (the one message being written or read is lost, nothing else).
//!
//! This file names only `crate::primitive`, so `tests/loom.rs` model-checks it with loom.
//!
//! ## The slot word (u64)
//!
//! | bits   | field   | meaning                                                        |
//! |--------|---------|----------------------------------------------------------------|
//! | 63..32 | `seq`   | a position modulo 2^32                                         |
//! | 31..0  | `owner` | participant id of the claimer (16-bit generation, 16-bit entry), 0 when unclaimed |
//!
//! Sequence arithmetic is modulo 2^32: `seq - pos` is read as a signed 32-bit difference, which
//! is exact while the capacity is below 2^31 ([`MAX_CAPACITY`]; checked at creation and open).
//!
//! For the slot of position `p` (`p % capacity`):
//!
//! | state       | word             | next state      | by                                  |
//! |-------------|------------------|-----------------|-------------------------------------|
//! | Empty(p)    | `seq p, 0`       | Writing(p)      | a producer at tail `p` (CAS)        |
//! | Writing(p)  | `seq p, id`      | Full(p)         | that producer, after writing (CAS from its exact word, Release) |
//! | Writing(p)  | `seq p, id`      | Empty(p + cap)  | anyone, once `id` is dead (CAS): skipped |
//! | Full(p)     | `seq p+1, 0`     | Reading(p)      | a consumer at head `p` (CAS)        |
//! | Reading(p)  | `seq p+1, id`    | Empty(p + cap)  | that consumer, after reading (CAS from its exact word, Release) |
//! | Reading(p)  | `seq p+1, id`    | Empty(p + cap)  | anyone, once `id` is dead (CAS)     |
//!
//! `tail` moves from `p` to `p + 1` (CAS, by anyone) once slot `p` has left Empty(p); `head`
//! moves from `p` to `p + 1` once slot `p` has left Full(p) or was skipped. Since a slot is only
//! claimed at the current tail (head), claims happen in position order, every committed message
//! is read exactly once, and a skipped slot is never read.
//!
//! A skipped slot can run a lap ahead of the head: when a producer dies in Writing(p) and the
//! ring fills behind it, the producers wait at tail `p + cap` on the same slot as the consumers
//! at head `p`. If a producer recovers it, it claims it at once for `p + cap` and may commit
//! Full(p + cap) (`seq p+cap+1`) before any consumer has moved the head past `p`. A consumer at
//! head `p` that finds that word helps the head on, as for any skipped slot; no other state can
//! be more than a lap ahead (position `p + cap + 1` needs position `p + 1` read, so the head
//! past `p`).
//!
//! ## A limit below the slot count
//!
//! The protocol needs two slots to tell laps apart (with one, Empty(p + 1) and Full(p) would be
//! the same word), but Python's `Queue(maxsize=1)` is full after one put. So a ring may hold
//! fewer messages than it has slots: its *limit* `l` ([`SlotWords::limit`]). A producer at tail
//! `p` may claim slot `p` only once position `p - l` has been read and released, which it sees
//! in that position's own slot word (the *gate*):
//!
//! | gate slot (position `q = p - l`) | word            | the producer at `p`                  |
//! |----------------------------------|-----------------|--------------------------------------|
//! | released                         | `seq >= q + cap` | claims slot `p` as usual             |
//! | Full(q)                          | `seq q+1, 0`     | `Full`: the queue holds `l` messages |
//! | Writing(q), Reading(q)           | `seq q / q+1, id` | `Stuck`: waits, or recovers it if `id` is gone |
//! | an older word (Empty(q), ...)    | `seq <= q`       | `Full`: the claim of `q` is not visible to us yet (the tail is read Relaxed), but it was made |
//!
//! A released position stays released (a slot's sequence only grows), so a gate seen open
//! cannot close before the claim's CAS: at most `l` positions from the oldest unreleased one
//! are ever claimed, i.e. the ring never holds more than `l` messages, without a shared count
//! (which a process killed between counting and claiming would leave wrong for good). The gate
//! is read only when `l < cap`, which happens only for `l = 1` on two slots.

use crate::primitive::{AtomicU64, CachePadded, Ordering};

/// The largest number of slots (sequence differences must fit a signed 32-bit number).
pub(crate) const MAX_CAPACITY: u64 = 1 << 30;

/// Head and tail of the ring, each on its own cache line (`#[repr(C)]`).
#[repr(C)]
pub(crate) struct MpmcIndices {
    /// Next position to read.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Next position to write.
    pub(crate) tail: CachePadded<AtomicU64>,
}

/// Packs a slot word: the position modulo 2^32 and the owner.
pub(crate) fn pack(seq: u64, owner: u32) -> u64 {
    (u64::from(seq as u32) << 32) | u64::from(owner)
}

/// Unpacks a slot word into `(seq, owner)`.
pub(crate) fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// The slot of position `pos` in a ring of `cap` slots: a mask for a power of two (no division
/// on the per-message path), else the remainder.
#[inline(always)]
pub(crate) fn slot_of(pos: u64, cap: u64) -> usize {
    if cap.is_power_of_two() {
        (pos & (cap - 1)) as usize
    } else {
        (pos % cap) as usize
    }
}

/// Whether `seq` is position `pos` modulo 2^32.
pub(crate) fn seq_is(seq: u32, pos: u64) -> bool {
    seq == pos as u32
}

/// `seq - pos` modulo 2^32, as a signed number.
fn diff(seq: u32, pos: u64) -> i64 {
    i64::from(seq.wrapping_sub(pos as u32) as i32)
}

/// What a producer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutClaim {
    /// The slot of this position is ours (Writing): write it, then `commit_put`.
    Claimed(u64),
    /// Every slot holds a message.
    Full,
    /// The slot is held by a claimer of the previous lap: wait, or `recover` it if the owner
    /// died.
    Stuck(Stuck),
    /// The shared state is impossible.
    Corrupt,
}

/// What a consumer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GetClaim {
    /// The slot of this position is ours (Reading): read it, then `finish_get`.
    Claimed(u64),
    /// No message.
    Empty,
    /// The next message is being written: wait, or `recover` it if the writer died.
    Stuck(Stuck),
    /// The shared state is impossible.
    Corrupt,
}

/// A slot held by a claimer that may have died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stuck {
    /// The slot index.
    pub(crate) slot: usize,
    /// The word seen.
    pub(crate) word: u64,
    /// Whether the claimer is a consumer (Reading) rather than a producer (Writing).
    pub(crate) reading: bool,
}

/// The slot words of a ring, however they are stored.
pub(crate) trait SlotWords {
    /// The number of slots.
    fn capacity(&self) -> u64;
    /// The most messages the ring may hold: between 1 and `capacity` (see "A limit below the
    /// slot count").
    fn limit(&self) -> u64 {
        self.capacity()
    }
    /// The state word of slot `index` (`index < capacity`).
    fn word(&self, index: usize) -> &AtomicU64;
}

fn help(pos_word: &AtomicU64, pos: u64) {
    // ORDERING: Relaxed, moving a position on publishes nothing by itself: slot contents are
    // published by the slot words' Release stores and read after Acquire loads of them.
    let _ = pos_word.compare_exchange(
        pos,
        pos.wrapping_add(1),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

/// Claims the slot at the tail for participant `me`.
pub(crate) fn claim_put(idx: &MpmcIndices, slots: &impl SlotWords, me: u32) -> PutClaim {
    let cap = slots.capacity();
    let mut stale = 0u32;
    loop {
        // ORDERING: Relaxed, only picks the slot to look at; the slot word's Acquire load
        // orders what matters.
        let pos = idx.tail.load(Ordering::Relaxed);
        let index = slot_of(pos, cap);
        // ORDERING: Acquire, pairs with the Release CAS in `finish_get` (or a recovery): the
        // previous reader is done with the slot before we write it.
        let word = slots.word(index).load(Ordering::Acquire);
        let (seq, owner) = unpack(word);
        let d = diff(seq, pos);
        if d == 0 && owner == 0 {
            if let Gate::Closed(claim) = gate(slots, pos) {
                return claim;
            }
            // ORDERING: Acquire on success, as for the load above; Relaxed on failure (retry).
            if slots
                .word(index)
                .compare_exchange(word, pack(pos, me), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                help(&idx.tail, pos);
                return PutClaim::Claimed(pos);
            }
        } else if d >= 0 && d <= cap as i64 {
            // Claimed, committed or skipped already: the tail is behind; help it on.
            help(&idx.tail, pos);
        } else if d == 1 - cap as i64 && owner == 0 {
            return PutClaim::Full;
        } else if (d == 1 - cap as i64 || d == -(cap as i64)) && owner != 0 {
            return PutClaim::Stuck(Stuck {
                slot: index,
                word,
                reading: d == 1 - cap as i64,
            });
        } else {
            // Only possible if the tail moved on meanwhile; otherwise the state is impossible.
            // ORDERING: Relaxed, as above.
            if idx.tail.load(Ordering::Relaxed) == pos {
                stale += 1;
                if stale > 2 {
                    return PutClaim::Corrupt;
                }
            }
        }
    }
}

/// What the gate of position `pos` says (see "A limit below the slot count").
enum Gate {
    /// The position `limit` places back has been released (or the ring has no gate).
    Open,
    /// The ring holds `limit` messages: `Full`, or `Stuck` on a claimer of the gate slot.
    Closed(PutClaim),
}

fn gate(slots: &impl SlotWords, pos: u64) -> Gate {
    let cap = slots.capacity();
    let limit = slots.limit();
    if limit >= cap {
        return Gate::Open;
    }
    let Some(q) = pos.checked_sub(limit) else {
        // No position that far back was ever written.
        return Gate::Open;
    };
    let index = slot_of(q, cap);
    // ORDERING: Acquire, pairs with the Release CAS of `finish_get` (or a recovery's AcqRel)
    // that released position `q`: the put that finds room happens after the get that made it,
    // as in a queue with a lock. Publishes nothing by itself.
    let word = slots.word(index).load(Ordering::Acquire);
    let (seq, owner) = unpack(word);
    let d = diff(seq, q);
    if d >= cap as i64 {
        Gate::Open
    } else if (d == 0 || d == 1) && owner != 0 {
        Gate::Closed(PutClaim::Stuck(Stuck {
            slot: index,
            word,
            reading: d == 1,
        }))
    } else {
        // Full(q), or an older word of the slot: the tail has passed `q`, so position `q` has
        // been claimed, but our relaxed view of the tail does not order the claim before this
        // load, which may still see the slot as it was (Empty(q), or a lap before). Either way
        // position `q` is not released: the ring holds its `limit` messages.
        Gate::Closed(PutClaim::Full)
    }
}

/// Publishes the message written into the slot of `pos`. `false` if the slot was taken from us
/// (only possible if a peer believed our claim abandoned, or wrote garbage): the message is lost.
pub(crate) fn commit_put(slots: &impl SlotWords, pos: u64, me: u32) -> bool {
    let index = slot_of(pos, slots.capacity());
    // A CAS from our exact Writing word, never a load then a store: a peer that recovers the
    // slot between the two would have its change overwritten (a lost update), bringing a slot
    // that has moved on back to Full.
    // ORDERING: SeqCst on success: Release pairs with the Acquire in `claim_get` and publishes
    // the message bytes; SeqCst makes it the waker's half of the wake-up check
    // (`Signal::notify_after_seqcst_change`; the same instruction on x86). Relaxed on failure:
    // the slot is not ours any more and we publish nothing.
    slots
        .word(index)
        .compare_exchange(
            pack(pos, me),
            pack(pos.wrapping_add(1), 0),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Claims the slot at the head for participant `me`.
pub(crate) fn claim_get(idx: &MpmcIndices, slots: &impl SlotWords, me: u32) -> GetClaim {
    let cap = slots.capacity();
    let mut stale = 0u32;
    loop {
        // ORDERING: Relaxed, only picks the slot; the slot word's Acquire load orders the rest.
        let pos = idx.head.load(Ordering::Relaxed);
        let index = slot_of(pos, cap);
        // ORDERING: Acquire, pairs with the Release CAS in `commit_put`: the message bytes are
        // visible before we read them.
        let word = slots.word(index).load(Ordering::Acquire);
        let (seq, owner) = unpack(word);
        let d = diff(seq, pos);
        if d == 1 && owner == 0 {
            // ORDERING: Acquire on success, as for the load above; Relaxed on failure (retry).
            if slots
                .word(index)
                .compare_exchange(
                    word,
                    pack(pos.wrapping_add(1), me),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                help(&idx.head, pos);
                return GetClaim::Claimed(pos);
            }
        } else if (d >= 1 && d <= cap as i64) || (d == cap as i64 + 1 && owner == 0) {
            // Being read, read already, or skipped: the head is behind; help it on. A skipped
            // slot may already be Full a lap on (d = cap + 1): a producer recovered it and
            // wrote the next lap's message before any consumer moved the head past it.
            help(&idx.head, pos);
        } else if d == 0 && owner == 0 {
            return GetClaim::Empty;
        } else if d == 0 {
            return GetClaim::Stuck(Stuck {
                slot: index,
                word,
                reading: false,
            });
        } else if d == 1 - cap as i64 && owner != 0 {
            // The reader of the previous lap is still at it: nothing to read here yet.
            return GetClaim::Stuck(Stuck {
                slot: index,
                word,
                reading: true,
            });
        } else {
            // ORDERING: Relaxed, as above.
            if idx.head.load(Ordering::Relaxed) == pos {
                stale += 1;
                if stale > 2 {
                    return GetClaim::Corrupt;
                }
            }
        }
    }
}

/// Frees the slot of `pos` after reading it. `false` if it was taken from us meanwhile.
pub(crate) fn finish_get(slots: &impl SlotWords, pos: u64, me: u32) -> bool {
    let cap = slots.capacity();
    // As in `commit_put`: a CAS from our exact Reading word.
    // ORDERING: SeqCst on success: Release pairs with the Acquire in `claim_put`, so our reads
    // of the slot happen before the next writer's writes; SeqCst makes it the waker's half of
    // the wake-up check, as in `commit_put`. Relaxed on failure: not ours any more.
    slots
        .word(slot_of(pos, cap))
        .compare_exchange(
            pack(pos.wrapping_add(1), me),
            pack(pos.wrapping_add(cap), 0),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
}

// The queue's own recovery (`RawQueue::recover`) inlines this to read a dead reader's record
// before the CAS; the loom models check this form.
#[allow(dead_code)]
/// Moves a stuck slot on if `alive` says its claimer is gone (see [`recover`]); `true` if the
/// claimer is gone (the slot has then moved on, by us or by someone else), `false` if it may be
/// alive (the slot is left alone: only a claimer known gone loses its slot).
pub(crate) fn recover_if_dead(
    slots: &impl SlotWords,
    stuck: Stuck,
    alive: impl FnOnce(u32) -> bool,
) -> bool {
    let (_, owner) = unpack(stuck.word);
    if alive(owner) {
        return false;
    }
    recover(slots, stuck);
    true
}

/// Moves a stuck slot on (its claimer is known gone): Writing(p) and Reading(p) both become
/// Empty(p + cap). `true` if we did it; `false` if the slot had moved on already.
pub(crate) fn recover(slots: &impl SlotWords, stuck: Stuck) -> bool {
    let cap = slots.capacity();
    let (seq, _) = unpack(stuck.word);
    let seq = u64::from(seq);
    let base = if stuck.reading {
        seq.wrapping_sub(1)
    } else {
        seq
    };
    // ORDERING: AcqRel on success: Acquire so that nothing the dead claimer did is reordered
    // after our change, Release to publish the freed slot to the next claimer (pairs with its
    // Acquire). Relaxed on failure: the slot moved on by itself.
    slots
        .word(stuck.slot % cap as usize)
        .compare_exchange(
            stuck.word,
            pack(base.wrapping_add(cap), 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// The number of messages, approximately (positions read without a snapshot); `None` when the
/// positions are impossible.
pub(crate) fn len(idx: &MpmcIndices, cap: u64) -> Option<u64> {
    // ORDERING: Relaxed, an approximate snapshot (like Python's `qsize`).
    let head = idx.head.load(Ordering::Relaxed);
    // ORDERING: Relaxed, as above.
    let tail = idx.tail.load(Ordering::Relaxed);
    // A skipped slot may put the head one past the tail for a moment.
    if head > tail {
        return (head - tail <= cap).then_some(0);
    }
    let n = tail - head;
    // A skipped slot refilled a lap on before the head moved past it (see "A skipped slot can
    // run a lap ahead") puts the tail `cap + 1` ahead for a moment, with `cap` messages.
    (n <= cap + 1).then_some(n.min(cap))
}
