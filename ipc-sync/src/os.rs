//! The real [`Park`]: shared futexes and the kernel's word on liveness; and this process's and
//! this thread's identity.
//!
//! The process identity comes from `ipc_core::ProcessIdentity::current()`, which ipc-core reads
//! once per process (before `main`, and again in each fork child) and caches. The lock's fast
//! paths read it twice per lock/unlock pair, and that call (a cross-crate call that checks the
//! pid, then loads the cached start time) costs more than the lock itself, so this module keeps
//! the result as one identity word in one private atomic: one load, no syscall. A
//! `pthread_atfork` child handler, registered before the word is first stored, clears it in a
//! fork child, which then asks ipc-core again. `current()` fails only when its cache is empty
//! and `/proc` cannot be read — in practice a fork child at its descriptor limit — and then
//! [`me`] returns `None` (and caches nothing): callers wait or report `WouldBlock`, never lock
//! under an invented identity.

use std::cell::Cell;
use std::sync::Once;
use std::task::Waker;
use std::time::{Duration, Instant};

use ipc_core::raw::futex::{self, WaitResult};
use ipc_core::raw::reactor::Registration;
use ipc_core::{self as core, ProcessIdentity};

use crate::primitive::{AtomicU32, AtomicU64, Ordering, private};
use crate::sys::{Arm, Liveness, Me, PID_MASK, Park};

/// The real thing: shared futexes and the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Os;

impl Park for Os {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Instant) -> bool {
        futex::wait(word, expected, Some(deadline)) == WaitResult::TimedOut
    }

    fn wake(&self, word: &AtomicU32, n: u32) {
        futex::wake(word, n);
    }

    fn wait_low(&self, word: &AtomicU64, expected: u32, deadline: Instant) -> bool {
        futex::wait_low(word, expected, Some(deadline)) == WaitResult::TimedOut
    }

    fn wake_low(&self, word: &AtomicU64, n: u32) {
        futex::wake_low(word, n);
    }

    fn liveness(&self, pid: u32, tag: u32) -> Liveness {
        liveness(pid, tag)
    }
}

/// The real [`Arm`]: registers the task's waker with `ipc_core::raw::reactor`, whose waiter
/// threads sleep on the word in the task's place.
#[derive(Debug)]
pub(crate) struct Armer<'a> {
    pub(crate) reg: &'a mut Registration,
    pub(crate) waker: &'a Waker,
}

impl Arm for Armer<'_> {
    fn arm(&mut self, word: &AtomicU32, expected: u32, deadline: Option<Instant>, slice: Duration) {
        self.reg
            .arm_sliced(word, expected, deadline, slice, self.waker);
    }

    fn arm_low(
        &mut self,
        word: &AtomicU64,
        expected: u32,
        deadline: Option<Instant>,
        slice: Duration,
    ) {
        self.reg
            .arm_low_sliced(word, expected, deadline, slice, self.waker);
    }
}

/// What the kernel says of the process `pid` whose start time has the low 32 bits `tag`:
/// `Dead` only when the kernel says so (see `ipc_core::Liveness`).
pub(crate) fn liveness(pid: u32, tag: u32) -> Liveness {
    match ProcessIdentity::liveness_of_tag(pid, tag) {
        core::Liveness::Dead => Liveness::Dead,
        core::Liveness::Alive => Liveness::Alive,
        // `Unknown`, and whatever a later ipc-core may add: not dead.
        _ => Liveness::Unknown,
    }
}

/// This process's identity word (`Me::word`, never 0 once set), 0 until read; cleared in a fork
/// child.
static ME: private::AtomicU64 = private::AtomicU64::new(0);
static AT_FORK: Once = Once::new();

extern "C" fn forget_identity_in_child() {
    // ORDERING: Relaxed, the child is single-threaded right after fork.
    ME.store(0, Ordering::Relaxed);
}

/// This process's identity, or `None` if it cannot be read now (see the module docs). One
/// atomic load once cached.
#[inline]
pub(crate) fn me() -> Option<Me> {
    // ORDERING: Relaxed: the word is the whole value (pid and tag in one atomic); nothing else
    // is read through it.
    let w = ME.load(Ordering::Relaxed);
    if w != 0 {
        return Some(Me {
            pid: w as u32,
            tag: (w >> 32) as u32,
        });
    }
    me_slow()
}

#[cold]
fn me_slow() -> Option<Me> {
    AT_FORK.call_once(|| {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe and valid in
        // a fork child.
        unsafe { ipc_core::raw::os::on_fork_child(forget_identity_in_child) };
    });
    let id = ProcessIdentity::current().ok()?;
    let pid = id.pid();
    // A pid outside the word's pid bits cannot be recorded faithfully: no identity at all
    // rather than a wrong one. (Linux pids stay below 2^22.)
    if pid == 0 || pid & !PID_MASK != 0 {
        return None;
    }
    let me = Me {
        pid,
        tag: id.start_tag(),
    };
    // ORDERING: Relaxed, as in `me`. Racing threads store the same word; a fork between the
    // registration above and this store is covered by the handler.
    ME.store(me.word(), Ordering::Relaxed);
    Some(me)
}

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's kernel thread id, cached per thread.
pub(crate) fn tid() -> u32 {
    TID.with(|t| {
        let cached = t.get();
        if cached != 0 {
            return cached;
        }
        let id = ipc_core::raw::os::gettid();
        t.set(id);
        id
    })
}
