//! `wait(objects, timeout)`: Python's `multiprocessing.connection.wait` — block until any of
//! several queues, connections, ring consumers or process sentinels is ready.
//!
//! The waiter announces itself on every object's signal (so that senders pay the wake syscall),
//! then sleeps on all their event words and on the sentinels' descriptors at once with
//! `ipc_core::raw::futex::wait_any` (`futex_waitv`, plus a poll of the descriptors).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::pipe::Connection;
use crate::primitive::AtomicU32;
use crate::queue::{Encoding, Queue};
use crate::ring::Consumer;
use crate::signal::Signal;

mod sealed {
    use std::os::fd::BorrowedFd;

    pub trait Sealed {
        /// Whether a receive would return at once with a message (a sentinel: its process
        /// has ended).
        fn ready(&mut self) -> bool;
        /// Whether every sender has gone (a receive would return `Disconnected` at once).
        fn gone(&mut self) -> bool;
        /// The signal senders bump.
        fn signal(&self) -> Option<&super::Signal>;
        /// A descriptor that becomes readable when the object is ready.
        fn fd(&self) -> Option<BorrowedFd<'_>> {
            None
        }
    }
}

/// Something [`wait`] can wait on: a [`Queue`], a [`Connection`], a ring [`Consumer`], or a
/// descriptor that becomes readable when something happens, such as a process's sentinel
/// (`ipc_core::Process::sentinel`, readable once the process has ended).
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

/// A descriptor is ready when it is readable (or hung up): a pidfd such as
/// `Process::sentinel()` once its process has ended, a pipe or socket with data.
impl sealed::Sealed for BorrowedFd<'_> {
    fn ready(&mut self) -> bool {
        ipc_core::raw::futex::is_readable(*self)
    }
    fn gone(&mut self) -> bool {
        false
    }
    fn signal(&self) -> Option<&Signal> {
        None
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(*self)
    }
}
impl Waitable for BorrowedFd<'_> {}

/// How long one sleep lasts at most before readiness and liveness are checked again.
const SLICE: Duration = Duration::from_millis(20);

/// Waits until at least one of `objects` is ready to receive (or has lost every sender, so a
/// receive returns at once; or, for a sentinel, its process has ended), or `timeout` passes.
/// Returns the indices of the ready objects (empty on timeout), like Python's
/// `multiprocessing.connection.wait`.
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
///
/// A process's sentinel waits beside connections, as in Python's
/// `connection.wait([conn, p.sentinel])`:
///
/// ```no_run
/// use ipc_core::Process;
/// use ipc_queue::{Connection, pipe_simplex, wait};
///
/// fn work(mut w: Connection) {
///     w.send(&"done").unwrap();
/// }
///
/// let (mut r, w) = pipe_simplex()?;
/// let p = Process::new(work, w);
/// p.start()?;
/// let mut sentinel = p.sentinel().expect("started");
/// let ready = wait(&mut [&mut r, &mut sentinel], None);
/// assert!(!ready.is_empty()); // a message, the end of the process, or both
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "connection.wait")]
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
            let words: Vec<(&AtomicU32, u32)> = objects
                .iter()
                .zip(&epochs)
                .filter_map(|(o, e)| Some((o.signal()?.epoch_word(), (*e)?)))
                .collect();
            let fds: Vec<BorrowedFd<'_>> = objects.iter().filter_map(|o| o.fd()).collect();
            sleep_any(&words, &fds, slice_end);
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

/// Sleeps until one of the words differs from its value or is woken, a descriptor becomes
/// readable, or `until` passes.
#[cfg(not(loom))]
fn sleep_any(words: &[(&AtomicU32, u32)], fds: &[BorrowedFd<'_>], until: Instant) {
    if words.is_empty() && fds.is_empty() {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        return;
    }
    ipc_core::raw::futex::wait_any(words, fds, Some(until));
}

/// Under loom there are no futexes: the model's threads just yield.
#[cfg(loom)]
fn sleep_any(_words: &[(&AtomicU32, u32)], _fds: &[BorrowedFd<'_>], _until: Instant) {
    loom::thread::yield_now();
}
