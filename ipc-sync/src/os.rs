//! The real [`Park`]: shared futexes and `/proc`; and this process's and this thread's identity,
//! cached so that the uncontended lock path makes no syscall.

use std::cell::Cell;
use std::sync::Once;
use std::time::Instant;

use ipc_core::ProcessIdentity;
use ipc_core::futex::{self, WaitResult};

use crate::primitive::private;
use crate::primitive::{AtomicU32, Ordering};
use crate::sys::{Liveness, Me, Park};

/// The real thing: shared futexes and `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Os;

impl Park for Os {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Instant) -> bool {
        futex::wait(word, expected, Some(deadline)) == WaitResult::TimedOut
    }

    fn wake(&self, word: &AtomicU32, n: u32) {
        futex::wake(word, n);
    }

    fn liveness(&self, pid: u32, start: u64) -> Liveness {
        liveness(pid, start)
    }
}

/// Checks a recorded (pid, start time) pair against `/proc`.
pub(crate) fn liveness(pid: u32, start: u64) -> Liveness {
    if pid == 0 {
        return Liveness::Dead;
    }
    match ProcessIdentity::of_pid(pid) {
        Ok(None) => Liveness::Dead,
        Ok(Some(id)) if id.start_time() == start => Liveness::Alive,
        Ok(Some(_)) => Liveness::Mismatch,
        // The kernel could not be asked: alive, ask again later.
        Err(_) => Liveness::Alive,
    }
}

static PID: private::AtomicU32 = private::AtomicU32::new(0);
static START: private::AtomicU64 = private::AtomicU64::new(0);
static AT_FORK: Once = Once::new();

extern "C" fn forget_identity_in_child() {
    // ORDERING: Relaxed, the child is single-threaded right after fork.
    PID.store(0, Ordering::Relaxed);
}

/// This process's identity, read from `/proc` once and cached; a fork child (through `fork(2)`
/// of libc, which runs `pthread_atfork` handlers) reads its own.
pub(crate) fn me() -> Me {
    // ORDERING: Acquire, pairs with the Release store below: the start time stored before the
    // pid is visible.
    let pid = PID.load(Ordering::Acquire);
    if pid != 0 {
        // ORDERING: Relaxed, ordered after the Acquire load of PID above.
        let start = START.load(Ordering::Relaxed);
        return Me { pid, start };
    }
    me_slow()
}

#[cold]
fn me_slow() -> Me {
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which is async-signal-safe
        // and valid in a fork child.
        unsafe { libc::pthread_atfork(None, None, Some(forget_identity_in_child)) };
    });
    let Ok(id) = ProcessIdentity::current() else {
        // Not cached: the next call asks again.
        return Me {
            pid: std::process::id(),
            start: 0,
        };
    };
    // ORDERING: Relaxed, published by the Release store of PID below.
    START.store(id.start_time(), Ordering::Relaxed);
    // ORDERING: Release, pairs with the Acquire load in `me`: publishes START.
    PID.store(id.pid(), Ordering::Release);
    Me {
        pid: id.pid(),
        start: id.start_time(),
    }
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
        // SAFETY: gettid has no preconditions and cannot fail.
        let id = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        t.set(id);
        id
    })
}
