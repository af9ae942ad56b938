//! The real [`Park`]: shared futexes and the kernel's word on liveness; and this process's and
//! this thread's identity.
//!
//! The process identity is `ipc_core::ProcessIdentity::current()`, which ipc-core reads once
//! per process (before `main`, and again in each fork child) and caches, so the uncontended
//! lock path makes no system call. It fails only when the cache is empty and `/proc` cannot be
//! read — in practice a fork child that is at its descriptor limit — and then [`me`] returns
//! `None`: callers wait or report `WouldBlock`, never lock under an invented identity.

use std::cell::Cell;
use std::time::Instant;

use ipc_core::futex::{self, WaitResult};
use ipc_core::{self as core, ProcessIdentity};

use crate::primitive::{AtomicU32, AtomicU64};
use crate::sys::{Liveness, Me, PID_MASK, Park};

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

/// This process's identity, or `None` if it cannot be read now (see the module docs). No
/// system call once ipc-core has cached it.
#[inline]
pub(crate) fn me() -> Option<Me> {
    let id = ProcessIdentity::current().ok()?;
    let pid = id.pid();
    // A pid outside the word's pid bits cannot be recorded faithfully: no identity at all
    // rather than a wrong one. (Linux pids stay below 2^22.)
    if pid == 0 || pid & !PID_MASK != 0 {
        return None;
    }
    Some(Me {
        pid,
        tag: id.start_tag(),
    })
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
