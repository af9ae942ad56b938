//! The system calls of the waiter threads of [`raw::reactor`](crate::raw::reactor): sleeping on
//! many shared futex words at once (`futex_waitv`, Linux 5.16+), probing words without reading
//! them in user space, an eventfd doorbell for the descriptor watcher, and the fork handler that
//! gives a fork child a reactor of its own.
//!
//! The words are passed to the kernel by address only: the kernel reads them (an unmapped
//! address is `EFAULT`, never a fault in this process), so a waiter thread never dereferences a
//! word whose mapping a registrant may have dropped.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// The most words one `futex_waitv` call takes (`FUTEX_WAITV_MAX`).
pub(crate) const REACTOR_WAITV_MAX: usize = 128;

const SYS_FUTEX_WAITV: libc::c_long = 449;
const FUTEX2_SIZE_U32: u32 = 0x02;

/// One word of a `futex_waitv` call (the kernel's `struct futex_waitv`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReactorWaitvEntry {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

impl ReactorWaitvEntry {
    /// Sleep while the 32-bit word at `addr` holds `expected`. Shared futex (no
    /// `FUTEX2_PRIVATE`), so wakers in other processes reach it.
    pub(crate) fn new(addr: usize, expected: u32) -> Self {
        Self {
            val: u64::from(expected),
            uaddr: addr as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        }
    }

    /// Changes the expected value (the doorbell's, before each sleep).
    pub(crate) fn set_expected(&mut self, expected: u32) {
        self.val = u64::from(expected);
    }

    fn addr(&self) -> usize {
        self.uaddr as usize
    }

    fn expected(&self) -> u32 {
        self.val as u32
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

/// The absolute `CLOCK_MONOTONIC` time of `at`.
fn monotonic_at(at: Instant) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let left = at.saturating_duration_since(Instant::now());
    #[allow(clippy::useless_conversion)] // time_t and c_long are i64 on 64-bit Linux only
    let nsec = i64::from(now.tv_nsec) + i64::from(left.subsec_nanos());
    let secs = i64::try_from(left.as_secs()).unwrap_or(i64::MAX / 2);
    #[allow(clippy::useless_conversion)]
    let sec = i64::from(now.tv_sec)
        .saturating_add(secs)
        .saturating_add(nsec / 1_000_000_000);
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: (nsec % 1_000_000_000) as libc::c_long,
    }
}

/// `futex_waitv` on `entries` (at most [`REACTOR_WAITV_MAX`]): sleeps until one word is woken, or one
/// differs from its expected value, or the timeout passes.
pub(crate) fn reactor_waitv(
    entries: &[ReactorWaitvEntry],
    timeout: ReactorTimeout,
) -> ReactorWaitv {
    if entries.is_empty() || entries.len() > REACTOR_WAITV_MAX {
        return ReactorWaitv::Unsupported;
    }
    let ts = match timeout {
        ReactorTimeout::Never => None,
        ReactorTimeout::At(at) => Some(monotonic_at(at)),
        // Time zero of the monotonic clock: long past.
        ReactorTimeout::Expired => Some(libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    };
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `entries` is an array of `entries.len()` (1..=128) `struct futex_waitv` records
    // (`#[repr(C)]`, the kernel's layout) that lives for the call; the kernel only reads the
    // words they name (an unmapped one is EFAULT). `ts_ptr` is null or points at `ts`, a valid
    // timespec on CLOCK_MONOTONIC that outlives the call.
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            entries.as_ptr(),
            entries.len() as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return ReactorWaitv::Woken(r as usize);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => ReactorWaitv::ValueChanged,
        Some(libc::ETIMEDOUT) => ReactorWaitv::TimedOut,
        Some(libc::EFAULT) => ReactorWaitv::Fault,
        Some(libc::ENOSYS | libc::EINVAL) => ReactorWaitv::Unsupported,
        _ => ReactorWaitv::Interrupted,
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
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rings an eventfd (adds 1 to its counter: it becomes readable).
pub(crate) fn reactor_eventfd_ring(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`, which live for the call, to a descriptor the caller
    // keeps open; a full counter (EAGAIN) is already readable, which is all a ring needs.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Empties an eventfd's counter (it is no longer readable).
pub(crate) fn reactor_eventfd_drain(fd: BorrowedFd<'_>) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into `v`, which lives for the call; non-blocking, so an
    // empty counter is EAGAIN.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// Registers `child` to run in every fork child, right after the fork (it must only do what is
/// async-signal-safe: store to atomics).
pub(crate) fn at_fork_child(child: extern "C" fn()) {
    // SAFETY: `child` is an `extern "C"` function; the caller promises it only does what is
    // async-signal-safe, which is all a fork child of a multi-threaded process may do.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}
