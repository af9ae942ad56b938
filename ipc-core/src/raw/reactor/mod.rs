//! Async waiting on shared futex words, for any executor: the waking machinery under every
//! `*_async` form of the workspace.
//!
//! A blocking call sleeps in the kernel on a futex word in shared memory until a peer changes
//! the word and wakes it. A future cannot sleep; it must return `Pending` and have its
//! [`Waker`] called later. This module does the sleeping for it: a [`Registration`] asks to be
//! woken when a word no longer holds the value the future saw, or when a deadline passes.
//! Nothing here knows an executor: it works under tokio, async-std, smol, `futures::executor`
//! or `pollster` alike, and no crate of the workspace depends on a runtime.
//!
//! ## The async forms of the workspace
//!
//! One naming convention, in every crate: the async form of a blocking method `x` is a method
//! `x_async` that returns a future (`impl Future`), with the same arguments and the same result:
//! `Lock::lock_async`, `Semaphore::acquire_async`, `Event::wait_async`,
//! `ConditionGuard::wait_async`, `Barrier::wait_async`, `Process::join_async`, and in
//! `ipc-queue` `Queue::get_async`/`put_async`, `Consumer::pop_async`, `Connection::recv_async`.
//! The timeout forms follow the same rule: `lock_timeout_async(Duration)`,
//! `lock_deadline_async(Instant)`, `wait_timeout_async(Duration)`. A future does nothing until
//! polled (except where its method documents otherwise, as `ConditionGuard::wait_async`
//! releasing the lock at the call), and **dropping a pending future cancels it cleanly**: it
//! takes nothing (no lock, no permit, no slot, no message), leaves no waiter count raised and
//! hands on any wake-up it consumed. So a runtime's own timeout (`tokio::time::timeout`,
//! `select!`) composes with every form; the `*_timeout_async` forms exist for code that wants
//! the blocking forms' exact results (`TimedOut`, `false`) without a runtime timer.
//!
//! ## Design
//!
//! One process-wide table of registrations, each `(word address, expected value, deadline,
//! waker)`, deduplicated per `(word, value)`: a thousand tasks awaiting one queue are one entry,
//! woken together. Entries are spread over *shards* of at most 127 words; each shard has one
//! waiter thread (started on first use, named `ipc-waiter-N`) that sleeps on all of its words
//! and one *doorbell* word at once with `futex_waitv` (Linux 5.16+; 128 words per call), until
//! the first of its registrations' deadlines. When the kernel reports a word woken, or a word
//! that differs from its value, the thread wakes every waker of that entry and drops the entry;
//! when a deadline passes, it wakes that registration's waker. Registering a new word, or a
//! deadline earlier than the thread's sleep, rings the doorbell (a futex wake on a private word)
//! so that the thread takes the change into account. Descriptors (a child's pidfd, for
//! `Process::join_async`) are watched by one more thread with `poll` and an eventfd doorbell.
//!
//! The thread never reads a word in user space. It hands addresses to the kernel, which
//! compares them (`EAGAIN` for a differing word, `EFAULT` for an unmapped one, and a probe with
//! an expired timeout, halving the set, finds which); so a registration whose owner vanished
//! without deregistering (a leaked future) can cost a wake-up, never a read of unmapped memory.
//!
//! ## The registration protocol
//!
//! A future that must wait runs these steps in `poll`, with the same waiter announcement its
//! blocking form makes, because the waker in another process is unchanged and skips the wake
//! system call when nobody announced itself:
//!
//! | step | the future (`poll`)                                          | a waker (any process)              | the waiter thread                  |
//! |------|--------------------------------------------------------------|------------------------------------|------------------------------------|
//! | 1    | announces a waiter: count + 1 or a `WAITERS` bit (SeqCst)     |                                    |                                    |
//! | 2    | reads the word: `v`; checks its condition on the state read after step 1 | changes the state and the word |                              |
//! | 3    | ready: withdraws, returns `Ready`. Else `arm_sliced(word, v, deadline, slice, waker)`, returns `Pending` | reads the count (SeqCst); if raised: `FUTEX_WAKE(word)` |  |
//! | 4    |                                                              |                                    | `futex_waitv(..., word == v, ...)` |
//! | 5    |                                                              |                                    | woken or `word != v`: wakes every waker of the entry; its deadline: wakes it; the entry's slice: wakes its oldest |
//! | 6    | polled again: withdraws the announcement, back to step 1     |                                    |                                    |
//!
//! A [`Registration`]'s own states:
//!
//! | state    | to       | by                                                                 |
//! |----------|----------|--------------------------------------------------------------------|
//! | unarmed  | armed    | [`arm`](Registration::arm) (and `arm_low`, `arm_timer`, `arm_fd`)   |
//! | armed    | armed    | `arm` with the same word and value: the waker and deadline are updated in place |
//! | armed    | armed    | `arm` with another word or value: the old one is withdrawn first    |
//! | armed    | fired    | the waiter thread: the word was woken or differs, or the deadline passed (the waker is called once) |
//! | armed    | unarmed  | [`disarm`](Registration::disarm) or drop: withdrawn; the waker is never called |
//! | fired    | unarmed  | `disarm` or drop: nothing to withdraw                               |
//!
//! ### Why no wake-up is lost
//!
//! The value a future registers is the one it read before its last check of the condition
//! (step 2), after announcing itself (step 1). A waker's change either comes before that read,
//! and the check sees it; or after it, and then (the store-buffer pair of the announcement and
//! the waker's count read, both SeqCst) the waker sees the announcement and wakes the word.
//! That wake finds the waiter thread asleep on the word, or it comes before the thread's
//! `futex_waitv`, whose kernel check then sees `word != v` and returns at once. Either way the
//! entry fires. Registrations of one word made while the thread sleeps are added to the entry
//! (same value) or ring the doorbell (a new value), and the doorbell is itself a futex word read
//! under the table lock before the thread sleeps, so a ring is never lost either. The loom
//! models of `ipc-sync` check steps 1 to 3 of the lock, the semaphore and the condition against
//! a futex model that really blocks, where a lost wake-up is a deadlock.
//!
//! Every blocking call of the workspace sleeps in *slices* (tens of milliseconds) and re-checks
//! its peers' liveness between them (a lock holder, a barrier party, a queue's producers). A
//! sliced registration ([`arm_sliced`](Registration::arm_sliced)) does the same: each entry
//! has one slice timer, which wakes the entry's oldest sliced task once per slice; that task
//! re-checks exactly as the blocking call does, and what it does about a dead peer (a takeover,
//! a break) changes the word and so wakes all the others. So no future stays pending on a
//! dead peer, and even a wake that a corrupted waiter count made a peer skip costs one slice,
//! never a hang.
//!
//! ### Cancellation
//!
//! Dropping a [`Registration`] withdraws it (one lock of the table, no system call): the waker
//! is never called afterwards. The futures built on it withdraw their waiter announcement in
//! their own `Drop` and take nothing they did not return: a dropped lock future holds no lock,
//! a dropped semaphore future no permit. A wake they may have consumed (a lock's unlock or a
//! semaphore's release wakes *one* sleeper, and the waiter thread may have been that one) is
//! handed on: the dropped future wakes one more sleeper if the lock is free or a permit left.
//!
//! ### Cost
//!
//! - Idle: a process whose tasks await sleeps in the kernel; its waiter thread wakes once per
//!   slice per awaited word (and at the tasks' own deadlines), and wakes one task then, so an
//!   idle awaiting process costs a few microseconds of CPU per slice, near zero, however many
//!   tasks await.
//! - A wake-up: the peer's `FUTEX_WAKE` (which it pays for a blocking waiter too), the thread's
//!   return from `futex_waitv`, the table lock, the task's wake (the runtime's own unpark of
//!   its thread); then the task's poll: one thread wake more than a blocking round trip. A task
//!   that must wait again registers a new value, which would ring the doorbell (a second wake of
//!   the waiter thread) if the thread were asleep by then; so after waking tasks the thread
//!   *lingers* awake for up to 20 µs, yielding the CPU, until a registration adds a word, which
//!   then needs no ring. (Measured in `ipc-bench`: `ours.async_event_rtt` and
//!   `ours.async_event_rtt_blocking_peer`; the benches README has the figures.)
//! - Dedup wakes every task of an entry together: `k` tasks of one process contending for one
//!   lock are all woken by each unlock (one of them takes it, the others register again), O(k)
//!   polls per hand-over. A lock contended by many tasks of one process is better fronted by a
//!   runtime's own async mutex, with one task at a time waiting on the shared lock.
//! - Memory and threads: one thread per 127 distinct words awaited at once (a stack each), one
//!   thread for descriptors once a process is joined asynchronously.
//!
//! ### Limits
//!
//! - Without `futex_waitv` (kernels before 5.16) a shard naps in 1 ms steps and probes each of
//!   its words with a zero-timeout `FUTEX_WAIT`: correct, but an idle awaiting process then
//!   wakes a thousand times a second.
//! - If no waiter thread can be started (the process is at its thread limit), a registration
//!   wakes its waker at once instead, so the future polls again: it never hangs, but it spins
//!   until a thread can be started.
//! - A fork child starts a reactor of its own on first use; a future copied from the parent by
//!   `fork` is not carried over (its registration is ignored in the child).

mod fds;
mod futex_waiter;
mod words;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::primitive::{AtomicU32, AtomicU64};

pub use futex_waiter::FutexWaiter;

/// A word nobody ever changes or wakes: registrations on it are pure timers.
static TIMER: AtomicU32 = AtomicU32::new(0);

/// A request to wake a [`Waker`] when a futex word changes (or is woken), a descriptor becomes
/// readable, or a deadline passes. Dropping it withdraws the request. See the
/// [module docs](self) for the protocol a future follows around it.
///
/// ```
/// use ipc_core::raw::reactor::Registration;
/// use ipc_core::raw::atomic::AtomicU32;
/// use std::sync::Arc;
/// use std::sync::atomic::Ordering;
/// use std::task::{Wake, Waker};
/// use std::time::{Duration, Instant};
///
/// struct Flag(std::sync::Mutex<bool>, std::sync::Condvar);
/// impl Wake for Flag {
///     fn wake(self: Arc<Self>) {
///         *self.0.lock().unwrap() = true;
///         self.1.notify_all();
///     }
/// }
///
/// let word = AtomicU32::new(0);
/// let flag = Arc::new(Flag(Default::default(), Default::default()));
/// let waker = Waker::from(Arc::clone(&flag));
/// let mut reg = Registration::new();
/// // Wake us when `word` is no longer 0, or in ten seconds.
/// reg.arm(&word, 0, Instant::now() + Duration::from_secs(10), &waker);
/// // ORDERING: Relaxed, the example only needs the value to change.
/// word.store(1, Ordering::Relaxed);
/// ipc_core::raw::futex::wake(&word, 1);
/// let mut woken = flag.0.lock().unwrap();
/// while !*woken {
///     woken = flag.1.wait(woken).unwrap();
/// }
/// ```
#[derive(Debug, Default)]
pub struct Registration {
    armed: Option<Armed>,
}

#[derive(Debug, Clone, Copy)]
enum Armed {
    Word {
        words: &'static words::Words,
        key: words::Key,
        id: u64,
    },
    Fd {
        fds: &'static fds::Fds,
        id: u64,
    },
}

impl Registration {
    /// An unarmed registration.
    pub const fn new() -> Self {
        Self { armed: None }
    }

    /// Asks for `waker` to be woken when the word no longer holds `expected` (or a peer wakes
    /// it), or when `deadline` passes, whichever comes first; replaces any earlier request of
    /// this registration. Only the word's address is kept: the kernel compares it, this process
    /// never reads it after the call.
    ///
    /// Read `expected` from the word *after* announcing the waiter to the wakers and before the
    /// last check of the condition (see the [module docs](self)).
    pub fn arm(&mut self, word: &AtomicU32, expected: u32, deadline: Instant, waker: &Waker) {
        self.arm_at(
            word.as_ptr() as usize,
            expected,
            Some(deadline),
            None,
            waker,
        );
    }

    /// As [`arm`](Self::arm), on the low 32 bits of a 64-bit word (the half
    /// [`futex::wait_low`](super::futex::wait_low) sleeps on).
    pub fn arm_low(&mut self, word: &AtomicU64, expected: u32, deadline: Instant, waker: &Waker) {
        let addr = super::futex::low_half(word) as usize;
        self.arm_at(addr, expected, Some(deadline), None, waker);
    }

    /// As [`arm`](Self::arm), for a wait that re-checks its peers' liveness every `slice`:
    /// besides the word and its own `deadline` (`None`: none), the task shares the slice timer
    /// of every sliced registration of the same word and value, which wakes the oldest of them
    /// once per `slice`. That one checks (and a dead peer's takeover or break changes the word,
    /// which wakes all), so a thousand tasks awaiting one word cost one wake-up per slice, not
    /// a thousand. A task woken so finds its condition unchanged: it checks its peers if a
    /// whole slice went by since it last did, and arms again.
    pub fn arm_sliced(
        &mut self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
        slice: Duration,
        waker: &Waker,
    ) {
        self.arm_at(
            word.as_ptr() as usize,
            expected,
            deadline,
            Some(slice),
            waker,
        );
    }

    /// As [`arm_sliced`](Self::arm_sliced), on the low 32 bits of a 64-bit word.
    pub fn arm_low_sliced(
        &mut self,
        word: &AtomicU64,
        expected: u32,
        deadline: Option<Instant>,
        slice: Duration,
        waker: &Waker,
    ) {
        let addr = super::futex::low_half(word) as usize;
        self.arm_at(addr, expected, deadline, Some(slice), waker);
    }

    /// Asks for `waker` to be woken when `deadline` passes: a timer, for a future that has no
    /// word to wait on (one that retries something in slices).
    pub fn arm_timer(&mut self, deadline: Instant, waker: &Waker) {
        self.arm(&TIMER, 0, deadline, waker);
    }

    /// Asks for `waker` to be woken when `fd` is readable (or hung up, or closed), or when
    /// `deadline` passes. Only the descriptor's number is kept: keep it open while armed (a
    /// number closed and reused meanwhile costs a spurious wake-up, nothing worse).
    pub fn arm_fd(&mut self, fd: BorrowedFd<'_>, deadline: Instant, waker: &Waker) {
        self.disarm();
        let Some(fds) = fds::current() else {
            // No watcher in this process: poll again at the deadline.
            self.arm_timer(deadline, waker);
            return;
        };
        if let Some(id) = fds.insert(fd.as_raw_fd(), deadline, waker) {
            self.armed = Some(Armed::Fd { fds, id });
        }
    }

    fn arm_at(
        &mut self,
        addr: usize,
        expected: u32,
        deadline: Option<Instant>,
        slice: Option<Duration>,
        waker: &Waker,
    ) {
        let key = words::Key { addr, expected };
        if let Some(Armed::Word {
            words: w,
            key: k,
            id,
        }) = self.armed
        {
            if k == key && words::is_current(w) && w.update(key, id, deadline, slice, waker) {
                return;
            }
        }
        self.disarm();
        let words = words::current();
        if let Some(id) = words.insert(key, deadline, slice, waker) {
            self.armed = Some(Armed::Word { words, key, id });
        }
    }

    /// Withdraws the request, if it has not fired: the waker will not be called for it.
    pub fn disarm(&mut self) {
        match self.armed.take() {
            // In a fork child, the parent's reactor is not ours (and its lock may be held by a
            // thread that does not exist here): a request made there is forgotten.
            Some(Armed::Word { words, key, id }) if words::is_current(words) => {
                words.remove(key, id);
            }
            Some(Armed::Fd { fds, id }) if fds::current().is_some_and(|f| std::ptr::eq(f, fds)) => {
                fds.remove(id);
            }
            _ => {}
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests;
