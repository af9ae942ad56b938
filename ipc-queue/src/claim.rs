//! One-holder words: something only one process may hold at a time (a ring's producer or
//! consumer role, a pipe end for the length of one record), recorded in shared memory as one
//! 64-bit word that names the holder.
//!
//! This file names only `crate::primitive`, `crate::participants` and `ipc_core::Liveness`, so
//! it can be model-checked like the other protocol files.
//!
//! ## The word
//!
//! | value                                 | state     | meaning                                   |
//! |---------------------------------------|-----------|-------------------------------------------|
//! | `0`                                   | Free      | nobody holds it                           |
//! | `pid << 32 \| start_tag` (bit 63 clear) | Held(x)   | process `x` holds it                      |
//! | `1 << 63 \| token` (token ≠ 0, 63 bits) | HandOff(t) | its holder serialised its handle; the first deserialiser presenting `t` takes it |
//! | `1` ([`ORPHANED`], per-record claims only) | Free      | freed from a dead holder: the next claimer first repairs what the holder may have left half done |
//!
//! `1` is `pid 0`, which no process has, so it never names a holder.
//! A pid is below 2^31, so bit 63 of an identity is always clear and the states never overlap.
//!
//! ## Transitions
//!
//! | from        | to          | by                                                               |
//! |-------------|-------------|------------------------------------------------------------------|
//! | Free        | Held(me)    | an opener (CAS)                                                  |
//! | Held(x)     | Held(me)    | an opener, once the kernel says `x` is dead (CAS from `x`)        |
//! | Held(x)     | Orphaned    | a waiter for a per-record claim, once the kernel says `x` is dead ([`orphan_dead`]) |
//! | Orphaned    | Held(me)    | a claimer of a per-record claim, which then repairs (CAS from `1`) |
//! | Held(me)    | Free        | the holder, when done ([`release`]: CAS from `me`, Release; a pipe end, whose holder is the only writer of a word it holds, stores `0`) |
//! | Held(me)    | HandOff(t)  | the holder, when it serialises its handle (CAS); its handle becomes inert |
//! | HandOff(t)  | Held(me)    | the deserialiser presenting `t` (CAS from exactly `HandOff(t)`)   |
//!
//! Nothing else moves the word: a live holder (or one the kernel cannot vouch for, `Unknown`)
//! keeps it, and a hand-over in flight is completed only by its token.

use ipc_core::Liveness;

use crate::participants::{Identity, Oracle};
use crate::primitive::{AtomicU64, Ordering};

/// The bit that marks a hand-over.
pub(crate) const HANDOFF: u64 = 1 << 63;
/// A per-record claim freed from a dead holder (see the module docs): free, but its next
/// holder must repair first.
pub(crate) const ORPHANED: u64 = 1;

/// Who holds a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Nobody.
    Free,
    /// The process with this identity.
    Held(Identity),
    /// A serialised handle carrying this token.
    HandOff(u64),
}

/// Decodes a word.
pub(crate) fn holder(word: u64) -> Holder {
    if word == 0 || word == ORPHANED {
        Holder::Free
    } else if word & HANDOFF != 0 {
        Holder::HandOff(word & !HANDOFF)
    } else {
        Holder::Held(word)
    }
}

/// A claim failed: the word is held (by a process the kernel does not call dead) or handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Held by the process with this identity.
    By(Identity),
    /// Handed over, waiting for its deserialiser.
    InTransit,
}

/// Claims `word` for `me`: free, or held by a process the kernel says is dead.
pub(crate) fn claim(word: &AtomicU64, me: Identity, oracle: &impl Oracle) -> Result<(), Taken> {
    loop {
        // ORDERING: Acquire, pairs with the Release CASes of `release` and `hand_over`: what the
        // previous holder did under the word happens before what we do.
        let seen = word.load(Ordering::Acquire);
        match holder(seen) {
            Holder::Free => {}
            Holder::Held(x) if x == me => return Err(Taken::By(x)),
            Holder::Held(x) => {
                if oracle.liveness(x) != Liveness::Dead {
                    return Err(Taken::By(x));
                }
            }
            Holder::HandOff(_) => return Err(Taken::InTransit),
        }
        if try_claim_from(word, seen, me) {
            return Ok(());
        }
    }
}

/// One attempt to move `word` from `seen` (free, or a holder known dead) to `me`.
pub(crate) fn try_claim_from(word: &AtomicU64, seen: u64, me: Identity) -> bool {
    // ORDERING: AcqRel on success: Acquire as in `claim`; Release so that a later holder that
    // takes the word from us after our death sees our accesses as done before. Relaxed on
    // failure: the caller looks again.
    word.compare_exchange(seen, me, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Releases `word` if `me` holds it; `false` if it did not.
pub(crate) fn release(word: &AtomicU64, me: Identity) -> bool {
    // ORDERING: Release, pairs with the Acquire in `claim`: everything done under the word
    // happens before the next holder's accesses. Relaxed on failure: not ours, left alone.
    word.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

/// Moves `word` from `me` to a hand-over carrying `token` (63 bits, non-zero); `false` if `me`
/// does not hold it.
pub(crate) fn hand_over(word: &AtomicU64, me: Identity, token: u64) -> bool {
    debug_assert!(token != 0 && token & HANDOFF == 0);
    // ORDERING: Release, pairs with the Acquire of `take_over`: everything the old holder did
    // happens before the new holder's accesses. Relaxed on failure: not ours.
    word.compare_exchange(me, HANDOFF | token, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

/// Completes the hand-over carrying `token`, for `me`; `false` if the word is not that
/// hand-over.
pub(crate) fn take_over(word: &AtomicU64, token: u64, me: Identity) -> bool {
    if token == 0 || token & HANDOFF != 0 {
        return false;
    }
    // ORDERING: Acquire on success, pairs with the Release of `hand_over`; Relaxed on failure.
    word.compare_exchange(HANDOFF | token, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Whether nobody holds `word` any more: free, or held by a process the kernel says is dead. A
/// hand-over in flight is not gone (its deserialiser may still come).
pub(crate) fn gone(word: &AtomicU64, oracle: &impl Oracle) -> bool {
    // ORDERING: Acquire, pairs with the Release of `release`: a holder's last accesses happen
    // before we act on its absence.
    match holder(word.load(Ordering::Acquire)) {
        Holder::Free => true,
        Holder::Held(x) => oracle.liveness(x) == Liveness::Dead,
        Holder::HandOff(_) => false,
    }
}

/// Marks a per-record claim whose holder the kernel says is dead as [`ORPHANED`] (free, to be
/// repaired by its next holder); `Err` if the word holds a hand-over (which a per-record claim
/// never does: the word is corrupted).
pub(crate) fn orphan_dead(word: &AtomicU64, oracle: &impl Oracle) -> Result<(), Taken> {
    // ORDERING: Acquire, as in `claim`: the dead holder's accesses happen before ours.
    let seen = word.load(Ordering::Acquire);
    match holder(seen) {
        Holder::Free => Ok(()),
        Holder::Held(x) => {
            if oracle.liveness(x) == Liveness::Dead {
                // ORDERING: AcqRel on success: Acquire as above, Release so that the next
                // claimer, whose Acquire CAS takes the word from `ORPHANED`, sees the dead
                // holder's accesses as done before its own. Relaxed on failure (it moved on).
                let _ = word.compare_exchange(seen, ORPHANED, Ordering::AcqRel, Ordering::Relaxed);
            }
            Ok(())
        }
        Holder::HandOff(_) => Err(Taken::InTransit),
    }
}

/// A fresh hand-over token: 63 random bits, never 0.
pub(crate) fn new_token(random: u128) -> u64 {
    match (random as u64) & !HANDOFF {
        0 => 1,
        t => t,
    }
}
