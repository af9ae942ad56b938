//! The system calls of the waiter threads of [`raw::reactor`](crate::raw::reactor): sleeping on
//! many shared futex words at once (`futex_waitv`, Linux 5.16+), probing words without reading
//! them in user space, an eventfd doorbell for the descriptor watcher, and the fork handler that
//! gives a fork child a reactor of its own.
//!
//! The words are passed to the kernel by address only: the kernel reads them (an unmapped
//! address is `EFAULT`, never a fault in this process), so a waiter thread never dereferences a
//! word whose mapping a registrant may have dropped.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::io::Errno;
use rustix::thread::futex;

/// The most words one `futex_waitv` call takes (`FUTEX_WAITV_MAX`).
pub(crate) const REACTOR_WAITV_MAX: usize = 128;

/// One word of a `futex_waitv` call: rustix's `futex::Wait`, the kernel's `struct futex_waitv`.
/// It holds the word's address as a raw pointer, never a reference, so an entry whose mapping
/// is gone is only an address the kernel answers `EFAULT` for.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, bytemuck::TransparentWrapper)]
pub(crate) struct ReactorWaitvEntry(futex::Wait);

impl ReactorWaitvEntry {
    /// Sleep while the 32-bit word at `addr` holds `expected`. Shared futex (no
    /// `FUTEX2_PRIVATE`), so wakers in other processes reach it.
    pub(crate) fn new(addr: usize, expected: u32) -> Self {
        let mut w = futex::Wait::new();
        w.val = u64::from(expected);
        w.uaddr = futex::WaitPtr::new(addr as *mut std::ffi::c_void);
        w.flags = futex::WaitFlags::SIZE_U32;
        Self(w)
    }

    /// Changes the expected value (the doorbell's, before each sleep).
    pub(crate) fn set_expected(&mut self, expected: u32) {
        self.0.val = u64::from(expected);
    }

    fn addr(&self) -> usize {
        self.0.uaddr.ptr as usize
    }

    fn expected(&self) -> u32 {
        self.0.val as u32
    }
}

/// How long one `futex_waitv` may sleep.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReactorTimeout {
    /// No limit.
    Never,
    /// Until this instant (measured by the kernel on `CLOCK_MONOTONIC`, as `Instant` is).
    At(Instant),
    /// Already expired: the call only compares the words (a probe).
    Expired,
}

/// Why a `futex_waitv` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReactorWaitv {
    /// Entry `i` was woken by a `FUTEX_WAKE`.
    Woken(usize),
    /// Some word did not hold its expected value (the kernel does not say which).
    ValueChanged,
    /// Some address is not mapped (the kernel does not say which).
    Fault,
    /// The timeout passed.
    TimedOut,
    /// A signal interrupted the sleep, or the kernel gave an error not listed here.
    Interrupted,
    /// The kernel has no `futex_waitv` (before 5.16) or refuses the arguments.
    Unsupported,
}

/// `futex_waitv` on `entries` (at most [`REACTOR_WAITV_MAX`]): sleeps until one word is woken, or one
/// differs from its expected value, or the timeout passes.
pub(crate) fn reactor_waitv(
    entries: &[ReactorWaitvEntry],
    timeout: ReactorTimeout,
) -> ReactorWaitv {
    use bytemuck::TransparentWrapper;
    if entries.is_empty() || entries.len() > REACTOR_WAITV_MAX {
        return ReactorWaitv::Unsupported;
    }
    let ts = match timeout {
        ReactorTimeout::Never => None,
        ReactorTimeout::At(at) => Some(super::monotonic_after(
            at.saturating_duration_since(Instant::now()),
        )),
        // Time zero of the monotonic clock: long past.
        ReactorTimeout::Expired => Some(rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    };
    match futex::waitv(
        ReactorWaitvEntry::peel_slice(entries),
        futex::WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        Ok(i) => ReactorWaitv::Woken(i),
        Err(Errno::AGAIN) => ReactorWaitv::ValueChanged,
        Err(Errno::TIMEDOUT) => ReactorWaitv::TimedOut,
        Err(Errno::FAULT) => ReactorWaitv::Fault,
        Err(Errno::NOSYS | Errno::INVAL) => ReactorWaitv::Unsupported,
        Err(_) => ReactorWaitv::Interrupted,
    }
}

/// The indices (offset by `base`) of the entries whose word no longer holds its expected value
/// (or is unmapped, or was woken meanwhile), found with as few system calls as possible: one
/// probe of the whole range, halved where it reports a difference. No word is read in user
/// space.
pub(crate) fn reactor_probe(entries: &[ReactorWaitvEntry], base: usize, out: &mut Vec<usize>) {
    if entries.is_empty() {
        return;
    }
    match reactor_waitv(entries, ReactorTimeout::Expired) {
        ReactorWaitv::TimedOut | ReactorWaitv::Interrupted => {}
        ReactorWaitv::Woken(i) => out.push(base + i),
        ReactorWaitv::ValueChanged | ReactorWaitv::Fault => {
            if entries.len() == 1 {
                out.push(base);
            } else {
                let (a, b) = entries.split_at(entries.len() / 2);
                reactor_probe(a, base, out);
                reactor_probe(b, base + a.len(), out);
            }
        }
        ReactorWaitv::Unsupported => {
            // No futex_waitv: one FUTEX_WAIT with a zero timeout per word.
            for (i, e) in entries.iter().enumerate() {
                let addr = e.addr() as *const u32;
                match super::futex_wait_at(addr, e.expected(), Some(std::time::Duration::ZERO)) {
                    super::FutexWait::TimedOut => {}
                    _ => out.push(base + i),
                }
            }
        }
    }
}

/// A non-blocking, close-on-exec eventfd: the descriptor watcher's doorbell.
pub(crate) fn reactor_eventfd() -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

/// Rings an eventfd (adds 1 to its counter: it becomes readable).
pub(crate) fn reactor_eventfd_ring(fd: BorrowedFd<'_>) {
    // A full counter (EAGAIN) is already readable, which is all a ring needs.
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Empties an eventfd's counter (it is no longer readable).
pub(crate) fn reactor_eventfd_drain(fd: BorrowedFd<'_>) {
    let mut v = [0u8; 8];
    // Non-blocking, so an empty counter is EAGAIN.
    let _ = rustix::io::read(fd, &mut v);
}

/// Registers `child` to run in every fork child, right after the fork (it must only do what is
/// async-signal-safe: store to atomics).
pub(crate) fn at_fork_child(child: extern "C" fn()) {
    // SAFETY: the caller promises `child` only does what is async-signal-safe, which is all a
    // fork child of a multi-threaded process may do.
    unsafe { super::on_fork_child(child) };
}
