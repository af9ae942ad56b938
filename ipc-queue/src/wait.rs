//! `wait(objects, timeout)`: Python's `multiprocessing.connection.wait` — block until any of
//! several queues, connections or ring consumers is ready.
//!
//! The waiter announces itself on every object's signal (so that senders pay the wake syscall),
//! then sleeps on all their event words at once with `futex_waitv` (Linux 5.16+). Where that
//! system call is missing it sleeps in short slices instead.

use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::pipe::Connection;
use crate::queue::{Encoding, Queue};
use crate::ring::Consumer;
use crate::signal::Signal;

mod sealed {
    pub trait Sealed {
        /// Whether a receive would return at once with a message.
        fn ready(&mut self) -> bool;
        /// Whether every sender has gone (a receive would return `Disconnected` at once).
        fn gone(&mut self) -> bool;
        /// The signal senders bump.
        fn signal(&self) -> Option<&super::Signal>;
    }
}

/// Something [`wait`] can wait on: a [`Queue`], a [`Connection`] or a ring [`Consumer`].
pub trait Waitable: sealed::Sealed {}

impl<T, E: Encoding> sealed::Sealed for Queue<T, E> {
    fn ready(&mut self) -> bool {
        !self.is_empty()
    }
    fn gone(&mut self) -> bool {
        let t = self.raw().table();
        t.ever(crate::participants::PRODUCER) && !t.any_alive(crate::participants::PRODUCER, 0)
    }
    fn signal(&self) -> Option<&Signal> {
        Some(&self.raw().state().not_empty)
    }
}
impl<T, E: Encoding> Waitable for Queue<T, E> {}

impl sealed::Sealed for Connection {
    fn ready(&mut self) -> bool {
        self.poll().unwrap_or(true)
    }
    fn gone(&mut self) -> bool {
        self.recv_gone()
    }
    fn signal(&self) -> Option<&Signal> {
        self.recv_signal()
    }
}
impl Waitable for Connection {}

impl<T: Pod> sealed::Sealed for Consumer<T> {
    fn ready(&mut self) -> bool {
        !self.is_empty()
    }
    fn gone(&mut self) -> bool {
        self.producer_gone()
    }
    fn signal(&self) -> Option<&Signal> {
        Some(self.items_signal())
    }
}
impl<T: Pod> Waitable for Consumer<T> {}

/// How long one sleep lasts at most before readiness and liveness are checked again.
const SLICE: Duration = Duration::from_millis(20);

/// Waits until at least one of `objects` is ready to receive (or has lost every sender, so a
/// receive returns at once), or `timeout` passes. Returns the indices of the ready objects
/// (empty on timeout), like Python's `multiprocessing.connection.wait`.
///
/// ```
/// use std::time::Duration;
/// use ipc_queue::{Queue, pipe, wait};
///
/// let mut q = Queue::<u32>::new(4)?;
/// let (mut a, mut b) = pipe()?;
/// a.send(&"hi")?;
/// let ready = wait(&mut [&mut q, &mut b], Some(Duration::from_secs(5)));
/// assert_eq!(ready, [1]);
/// assert!(wait(&mut [&mut q], Some(Duration::from_millis(1))).is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait(objects: &mut [&mut dyn Waitable], timeout: Option<Duration>) -> Vec<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let ready = |objects: &mut [&mut dyn Waitable]| -> Vec<usize> {
        (0..objects.len()).filter(|&i| objects[i].ready()).collect()
    };
    loop {
        let r = ready(objects);
        if !r.is_empty() {
            return r;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Vec::new();
        }
        let slice_end = deadline.map_or(now + SLICE, |d| d.min(now + SLICE));
        let epochs: Vec<Option<u32>> = objects
            .iter()
            .map(|o| o.signal().map(Signal::prepare))
            .collect();
        let r = ready(objects);
        if r.is_empty() {
            let words: Vec<(&crate::primitive::AtomicU32, u32)> = objects
                .iter()
                .zip(&epochs)
                .filter_map(|(o, e)| Some((o.signal()?.epoch_word(), (*e)?)))
                .collect();
            sleep_any(&words, slice_end);
        }
        for (o, e) in objects.iter().zip(&epochs) {
            if let (Some(s), Some(_)) = (o.signal(), e) {
                s.finish();
            }
        }
        if !r.is_empty() {
            return r;
        }
        if Instant::now() >= slice_end {
            let gone: Vec<usize> = (0..objects.len()).filter(|&i| objects[i].gone()).collect();
            if !gone.is_empty() {
                return gone;
            }
        }
    }
}

#[cfg(not(loom))]
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

#[cfg(not(loom))]
const SYS_FUTEX_WAITV: libc::c_long = 449;
#[cfg(not(loom))]
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Under loom there are no futexes: the model's threads just yield.
#[cfg(loom)]
fn sleep_any(_words: &[(&crate::primitive::AtomicU32, u32)], _until: Instant) {
    loom::thread::yield_now();
}

/// Sleeps until one of the words differs from its value or is woken, or `until` passes.
#[cfg(not(loom))]
fn sleep_any(words: &[(&crate::primitive::AtomicU32, u32)], until: Instant) {
    if words.is_empty() {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        return;
    }
    let waiters: Vec<FutexWaitv> = words
        .iter()
        .map(|(w, v)| FutexWaitv {
            val: u64::from(*v),
            uaddr: w.as_ptr() as u64,
            // Shared futexes: no FUTEX2_PRIVATE, so wakers in other processes reach us.
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    let left = until.saturating_duration_since(Instant::now());
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    #[allow(clippy::useless_conversion)] // time_t and c_long are i64 on 64-bit Linux only
    let mut nsec = i64::from(now.tv_nsec) + i64::from(left.subsec_nanos());
    #[allow(clippy::useless_conversion)]
    let mut sec = i64::from(now.tv_sec) + left.as_secs() as i64 + nsec / 1_000_000_000;
    nsec %= 1_000_000_000;
    if sec < 0 {
        sec = 0;
    }
    let abs = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    // SAFETY: `waiters` is an array of `waiters.len()` futex_waitv records whose addresses are
    // 4-aligned words inside live mappings (the objects are borrowed for the call); `abs` is a
    // valid timespec on CLOCK_MONOTONIC.
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0 as libc::c_uint,
            &abs as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // No futex_waitv: poll in short naps.
        std::thread::sleep(left.min(Duration::from_millis(1)));
    }
}
