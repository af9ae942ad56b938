//! The waiter queue of a `Condition`: tickets and slots, so that `notify(n)` hands out exactly
//! `n` notifications, each to a live waiter that was waiting when it was called.
//!
//! ## State
//!
//! | field      | meaning                                                                  |
//! |------------|--------------------------------------------------------------------------|
//! | `next`     | the next ticket to hand a waiter (wrapping)                              |
//! | `head`     | every ticket before it is no longer waiting; `notify` starts here        |
//! | `overflow` | waiters that found no free slot (a hint for `notify`)                    |
//! | `seq`      | futex word the overflow waiters sleep on; `notify` bumps it for them     |
//! | slot `t % K` | ticket `t`'s waiter: its identity word (`tag << 32 | pid`) and a state word `t << 2 | st` that it sleeps on |
//!
//! | slot state `st` of ticket `t` | to            | by                                           | lock |
//! |-------------------------------|---------------|----------------------------------------------|------|
//! | `FREE` (of any ticket)        | `WAITING(t)`  | a waiter taking ticket `t = next++` (identity first) | yes |
//! | `WAITING(t)`                  | `NOTIFIED(t)` | `notify`, for the oldest waiting tickets whose waiter the kernel does not call dead; counted | yes |
//! | `WAITING(t)`                  | `FREE(t)`     | `notify`, when the kernel says the waiter is dead: skipped, not counted | yes |
//! | `WAITING(t)`                  | `FREE(t)`     | the waiter, when its deadline passes (one CAS: it loses to a `notify` that got there first, and then returns notified) | no |
//! | `NOTIFIED(t)`                 | `FREE(t)`     | the waiter, consuming its notification        | no |
//! | `WAITING`/`NOTIFIED` of an older ticket | `WAITING(t)` | a waiter taking ticket `t`, when the kernel says the slot's waiter is dead | yes |
//!
//! A notification is handed out only by the CAS `WAITING(t) -> NOTIFIED(t)`, and a timed-out
//! waiter leaves only by the CAS `WAITING(t) -> FREE(t)`, so each ticket is either notified or
//! gone, never both: `notify(n)` counts exactly what it hands out and walks on until it has
//! handed out `n` or reached `next`. A waiter that died while waiting is skipped (the kernel
//! says it is dead), so it swallows nothing meant for a live one; one whose liveness the kernel
//! cannot report is counted as alive (the same rule as the lock's). A waiter registers under
//! the lock before it releases it, and `notify` runs under the lock, so a notification goes to
//! waiters that were waiting when `notify` was called, oldest first, and never to the notifier's
//! own later wait.
//!
//! There are `K` slots (1024 for a `Condition`). A waiter that finds the window of waiting
//! tickets full (`next - head == K`, or its slot still held by a live waiter of an older ticket)
//! waits in `overflow` instead: every `notify` wakes every overflow waiter, which is a spurious
//! wake-up (allowed by the condition-variable contract, as the docs say), so past `K`
//! simultaneous waiters `notify(n)` may wake more than `n`, never fewer.
//!
//! Every value is a legal state: the walk is bounded by `K`, a slot word naming no ticket in the
//! window is skipped, a waiter whose slot word was overwritten returns as from a spurious
//! wake-up, and a corrupted `overflow` costs wake-ups only.

use std::task::Poll;
use std::time::Instant;

use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::sys::{Arm, Liveness, Me, Park, passed, pid_of, slice_end, tag_of};

const FREE: u32 = 0;
const WAITING: u32 = 1;
const NOTIFIED: u32 = 2;
const ST_MASK: u32 = 3;

/// The slot word of ticket `t` in state `st`.
#[inline]
fn word(t: u32, st: u32) -> u32 {
    (t << 2) | st
}

/// The counters of a waiter queue (16 bytes, `#[repr(C)]`, every bit pattern legal).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct WaitQueueState {
    next: AtomicU32,
    head: AtomicU32,
    overflow: AtomicU32,
    seq: AtomicU32,
}

/// One waiter's slot (16 bytes, `#[repr(C)]`, every bit pattern legal).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Slot {
    ident: AtomicU64,
    state: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<WaitQueueState>() == 16);
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Slot>() == 16);

impl Default for WaitQueueState {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueueState {
    /// An empty queue (for the heap: tests and the loom model).
    pub(crate) fn new() -> Self {
        Self {
            next: AtomicU32::new(0),
            head: AtomicU32::new(0),
            overflow: AtomicU32::new(0),
            seq: AtomicU32::new(0),
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    /// A free slot (for the heap: tests and the loom model).
    pub(crate) fn new() -> Self {
        Self {
            ident: AtomicU64::new(0),
            state: AtomicU32::new(FREE),
            _reserved: AtomicU32::new(0),
        }
    }
}

/// A waiter's place in the queue, taken under the lock by [`WaitQueue::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// Ticket `t`, in slot `t % K`.
    Slot(u32),
    /// No slot was free: waits for any notification, on `seq` (which read this value).
    Overflow(u32),
}

/// A waiter queue: the counters and the slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitQueue<'a> {
    pub(crate) state: &'a WaitQueueState,
    pub(crate) slots: &'a [Slot],
}

impl WaitQueue<'_> {
    fn slot(&self, t: u32) -> Option<&Slot> {
        let k = self.slots.len();
        if k == 0 {
            return None;
        }
        self.slots.get(t as usize % k)
    }

    fn k(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// Whether the waiter named by identity word `id` may still run (`false` only when the
    /// kernel says it is dead; the caller's own process is alive without asking).
    fn alive(id: u64, me: Option<Me>, park: &impl Park) -> bool {
        me.is_some_and(|me| me.is(id)) || park.liveness(pid_of(id), tag_of(id)) != Liveness::Dead
    }

    /// Takes a ticket for the waiter `me`. The caller holds the condition's lock.
    pub(crate) fn register(&self, me: Me, park: &impl Park) -> Ticket {
        let st = self.state;
        // ORDERING: Relaxed, written only under the lock, which orders it.
        let t = st.next.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        let head = st.head.load(Ordering::Relaxed);
        if let Some(slot) = self.slot(t).filter(|_| t.wrapping_sub(head) < self.k()) {
            // ORDERING: Acquire, pairs with the Release CAS of a waiter freeing its slot (its
            // identity is no longer needed once we see it free).
            let w = slot.state.load(Ordering::Acquire);
            let reusable = w & ST_MASK == FREE || {
                // Held by an older ticket: reusable only if the kernel says its waiter is dead.
                // ORDERING: Relaxed, written before the slot word's Release store.
                let id = slot.ident.load(Ordering::Relaxed);
                !Self::alive(id, Some(me), park)
            };
            if reusable {
                // ORDERING: Relaxed, published by the Release CAS of the slot word below.
                slot.ident.store(me.word(), Ordering::Relaxed);
                // ORDERING: Release on success, pairs with the Acquire loads of `notify` and of
                // the next registration: the identity is visible with the ticket. Relaxed on
                // failure: the slot moved (a waiter of an older ticket freed it just now), so
                // this waiter takes the overflow path this once.
                if slot
                    .state
                    .compare_exchange(w, word(t, WAITING), Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                {
                    // ORDERING: Relaxed, under the lock.
                    st.next.store(t.wrapping_add(1), Ordering::Relaxed);
                    return Ticket::Slot(t);
                }
            }
        }
        self.register_anonymous()
    }

    /// Takes an overflow place for a waiter without an identity (which cannot be recorded in a
    /// slot). The caller holds the condition's lock.
    pub(crate) fn register_anonymous(&self) -> Ticket {
        // ORDERING: Relaxed, read by `notify` under the same lock.
        self.state.overflow.fetch_add(1, Ordering::Relaxed);
        // ORDERING: Acquire, pairs with the Release increment in `notify`.
        Ticket::Overflow(self.state.seq.load(Ordering::Acquire))
    }

    /// Hands out up to `n` notifications to the oldest live waiters and wakes them; wakes
    /// every overflow waiter. Returns how many it handed out. The caller holds the lock; `me`
    /// is its identity, if known (its own waiters are alive without asking the kernel).
    pub(crate) fn notify(&self, n: u32, me: Option<Me>, park: &impl Park) -> u32 {
        if n == 0 {
            return 0;
        }
        let st = self.state;
        // ORDERING: Relaxed, written only under the lock.
        let head = st.head.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        let next = st.next.load(Ordering::Relaxed);
        let span = next.wrapping_sub(head).min(self.k());
        let mut handed = 0;
        let mut t = head;
        while t != head.wrapping_add(span) && handed < n {
            let Some(slot) = self.slot(t) else { break };
            let waiting = word(t, WAITING);
            // ORDERING: Acquire, pairs with the Release CAS of registration: the identity is
            // visible.
            if slot.state.load(Ordering::Acquire) == waiting {
                // ORDERING: Relaxed, published with the slot word (Acquire above).
                let id = slot.ident.load(Ordering::Relaxed);
                let (to, counted) = if Self::alive(id, me, park) {
                    (word(t, NOTIFIED), true)
                } else {
                    (word(t, FREE), false)
                };
                // ORDERING: Release on success, pairs with the Acquire load in `wait`: the
                // waiter sees its notification (what was written under the lock reaches it
                // through the lock it takes back). Relaxed on failure: the waiter timed out
                // first (the slot is free), and the ticket is skipped.
                if slot
                    .state
                    .compare_exchange(waiting, to, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                    && counted
                {
                    handed += 1;
                    park.wake(&slot.state, u32::MAX);
                }
            }
            t = t.wrapping_add(1);
        }
        // Every ticket before `t` is notified or gone now.
        // ORDERING: Relaxed, under the lock.
        st.head.store(t, Ordering::Relaxed);
        // ORDERING: Relaxed, incremented under the lock (so seen here); decremented by leaving
        // overflow waiters, where a stale value costs one wake-up at most.
        if st.overflow.load(Ordering::Relaxed) != 0 {
            // ORDERING: Release, pairs with the Acquire loads of overflow waiters.
            st.seq.fetch_add(1, Ordering::Release);
            park.wake(&st.seq, u32::MAX);
        }
        handed
    }

    /// Waits (without the lock) until `ticket` is notified or `deadline` passes; `true` if
    /// notified (or woken spuriously: an overflow wake-up, or a slot a peer overwrote).
    pub(crate) fn wait(&self, ticket: Ticket, deadline: Option<Instant>, park: &impl Park) -> bool {
        match ticket {
            Ticket::Slot(t) => self.wait_slot(t, deadline, park),
            Ticket::Overflow(seen) => {
                let st = self.state;
                let woken = loop {
                    // ORDERING: Acquire, pairs with the Release increment in `notify`.
                    if st.seq.load(Ordering::Acquire) != seen {
                        break true;
                    }
                    if passed(deadline) {
                        break false;
                    }
                    park.wait(&st.seq, seen, slice_end(deadline, park.slice()));
                };
                // ORDERING: Relaxed, a hint for `notify` (see there).
                st.overflow.fetch_sub(1, Ordering::Relaxed);
                woken
            }
        }
    }

    /// One poll of an async wait for `ticket` (the steps of [`wait`](Self::wait), returning
    /// `Pending` where it would sleep): arms `arm` on the ticket's slot word (or the overflow
    /// `seq`) with the value its check read. `Ready(true)` if notified (or woken spuriously),
    /// `Ready(false)` once `deadline` passed without a notification. After `Ready` the ticket
    /// is spent: neither poll it again nor [`cancel`](Self::cancel) it.
    pub(crate) fn poll_wait(
        &self,
        ticket: Ticket,
        deadline: Option<Instant>,
        park: &impl Park,
        arm: &mut impl Arm,
    ) -> Poll<bool> {
        match ticket {
            Ticket::Slot(t) => {
                let Some(slot) = self.slot(t) else {
                    return Poll::Ready(true);
                };
                let (waiting, notified) = (word(t, WAITING), word(t, NOTIFIED));
                // ORDERING: Acquire, pairs with the Release CAS in `notify`.
                let w = slot.state.load(Ordering::Acquire);
                if w == notified {
                    // ORDERING: Release, as in `wait_slot`: the slot is free for the next
                    // registration.
                    slot.state.store(word(t, FREE), Ordering::Release);
                    return Poll::Ready(true);
                }
                if w != waiting {
                    return Poll::Ready(true);
                }
                if passed(deadline) {
                    return Poll::Ready(self.cancel(ticket));
                }
                // `notify` wakes a slot it notifies unconditionally: no count to announce in.
                arm.arm(&slot.state, waiting, deadline, park.slice());
                Poll::Pending
            }
            Ticket::Overflow(seen) => {
                let st = self.state;
                // ORDERING: Acquire, pairs with the Release increment in `notify`.
                if st.seq.load(Ordering::Acquire) != seen {
                    self.cancel(ticket);
                    return Poll::Ready(true);
                }
                if passed(deadline) {
                    self.cancel(ticket);
                    return Poll::Ready(false);
                }
                arm.arm(&st.seq, seen, deadline, park.slice());
                Poll::Pending
            }
        }
    }

    /// Gives `ticket` back without waiting further (a deadline passed, or an async wait was
    /// dropped): a slot leaves by the CAS `WAITING -> FREE`, so a notification is either never
    /// handed to it or already taken. Returns `true` if the ticket had been notified (the
    /// notification is consumed here: a dropped waiter's caller hands it on).
    pub(crate) fn cancel(&self, ticket: Ticket) -> bool {
        match ticket {
            Ticket::Slot(t) => {
                let Some(slot) = self.slot(t) else {
                    return false;
                };
                let (waiting, notified) = (word(t, WAITING), word(t, NOTIFIED));
                // ORDERING: Release on success (the slot is free for the next registration);
                // Acquire on failure, pairs with the Release CAS in `notify`.
                match slot.state.compare_exchange(
                    waiting,
                    word(t, FREE),
                    Ordering::Release,
                    Ordering::Acquire,
                ) {
                    Ok(_) => false,
                    Err(now) if now == notified => {
                        // ORDERING: Release, as for a consumed notification in `wait_slot`.
                        slot.state.store(word(t, FREE), Ordering::Release);
                        true
                    }
                    Err(_) => false,
                }
            }
            Ticket::Overflow(_) => {
                // ORDERING: Relaxed, a hint for `notify` (see there).
                self.state.overflow.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn wait_slot(&self, t: u32, deadline: Option<Instant>, park: &impl Park) -> bool {
        let Some(slot) = self.slot(t) else {
            return true;
        };
        let (waiting, notified) = (word(t, WAITING), word(t, NOTIFIED));
        loop {
            // ORDERING: Acquire, pairs with the Release CAS in `notify`.
            let w = slot.state.load(Ordering::Acquire);
            if w == notified {
                // ORDERING: Release, pairs with the Acquire load of the next registration of
                // this slot. Only this waiter moves a slot out of `NOTIFIED(t)` while it lives.
                slot.state.store(word(t, FREE), Ordering::Release);
                return true;
            }
            if w != waiting {
                // Not ours any more (a peer wrote the word): a spurious wake-up.
                return true;
            }
            if passed(deadline) {
                // ORDERING: Release on success (the slot is free for the next registration);
                // Acquire on failure, pairs with the Release CAS in `notify`: the notification
                // that won is seen.
                return match slot.state.compare_exchange(
                    waiting,
                    word(t, FREE),
                    Ordering::Release,
                    Ordering::Acquire,
                ) {
                    Ok(_) => false,
                    Err(now) => {
                        if now == notified {
                            // ORDERING: Release, as for a consumed notification above.
                            slot.state.store(word(t, FREE), Ordering::Release);
                        }
                        true
                    }
                };
            }
            park.wait(&slot.state, waiting, slice_end(deadline, park.slice()));
        }
    }
}
