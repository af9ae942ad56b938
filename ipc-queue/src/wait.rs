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

/// How long a future of [`wait_async`] with no deadline and no word to wait on (descriptors
/// only) stays registered before it polls again.
#[cfg(not(loom))]
const REARM: Duration = Duration::from_secs(3600);

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
    // Announced on every object's signal once for the whole wait and withdrawn when it ends: a
    // later slice reads each epoch again before its look (`Signal::epoch_again`), as a blocking
    // receive does. (Each object's signal is the same object every time it is asked.)
    let mut announced = false;
    let r = loop {
        let r = ready(objects);
        if !r.is_empty() {
            break r;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break Vec::new();
        }
        let slice_end = deadline.map_or(now + SLICE, |d| d.min(now + SLICE));
        let again = std::mem::replace(&mut announced, true);
        let epochs: Vec<Option<u32>> = objects
            .iter()
            .map(|o| {
                o.signal()
                    .map(|s| if again { s.epoch_again() } else { s.prepare() })
            })
            .collect();
        let r = ready(objects);
        if !r.is_empty() {
            break r;
        }
        let words: Vec<(&AtomicU32, u32)> = objects
            .iter()
            .zip(&epochs)
            .filter_map(|(o, e)| Some((o.signal()?.epoch_word(), (*e)?)))
            .collect();
        let fds: Vec<BorrowedFd<'_>> = objects.iter().filter_map(|o| o.fd()).collect();
        sleep_any(&words, &fds, slice_end);
        if Instant::now() >= slice_end {
            let gone: Vec<usize> = (0..objects.len()).filter(|&i| objects[i].gone()).collect();
            if !gone.is_empty() {
                break gone;
            }
        }
    };
    if announced {
        for o in objects.iter() {
            if let Some(s) = o.signal() {
                s.finish();
            }
        }
    }
    r
}

/// The async form of [`wait`]: a future that resolves to the indices of the ready objects
/// (empty once `timeout` passes), for any executor, woken through `ipc_core::raw::reactor` by
/// whatever wakes a blocking [`wait`] (a message, a sender's end, a process's end). It checks
/// readiness exactly as `wait` does, so a receive on a ready object returns at once; it takes
/// nothing, and dropped before it is ready it leaves no waiter announced on any object.
///
/// The future borrows the objects; with `W = dyn Waitable + Send` (or one concrete type, such
/// as `Connection`) it is `Send`, for a multi-thread runtime.
///
/// ```
/// use std::time::Duration;
/// use ipc_queue::{Queue, Waitable, pipe, wait_async};
///
/// let mut q = Queue::<u32>::new(4)?;
/// let (mut a, mut b) = pipe()?;
/// futures::executor::block_on(async {
///     a.send_async(&"hi").await?;
///     let mut objects: [&mut (dyn Waitable + Send); 2] = [&mut q, &mut b];
///     assert_eq!(wait_async(&mut objects, None).await, [1]);
///     assert!(wait_async(&mut objects[..1], Some(Duration::from_millis(1))).await.is_empty());
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
#[doc(alias = "connection.wait")]
pub fn wait_async<'a, 'b, W: Waitable + ?Sized>(
    objects: &'a mut [&'b mut W],
    timeout: Option<Duration>,
) -> WaitFuture<'a, 'b, W> {
    WaitFuture {
        objects,
        deadline: timeout.map(|t| Instant::now() + t),
        regs: Vec::new(),
        announced: false,
        slice_end: None,
    }
}

/// The async form of [`wait`] with a timeout: [`wait_async`]`(objects, Some(timeout))`.
#[cfg(not(loom))]
#[doc(alias = "connection.wait")]
pub fn wait_timeout_async<'a, 'b, W: Waitable + ?Sized>(
    objects: &'a mut [&'b mut W],
    timeout: Duration,
) -> WaitFuture<'a, 'b, W> {
    wait_async(objects, Some(timeout))
}

/// The future of [`wait_async`]: the indices of the ready objects, empty on timeout.
#[cfg(not(loom))]
#[must_use = "a future does nothing unless polled"]
pub struct WaitFuture<'a, 'b, W: Waitable + ?Sized> {
    objects: &'a mut [&'b mut W],
    deadline: Option<Instant>,
    /// One registration per object (its word, or its descriptor), plus one timer.
    regs: Vec<ipc_core::raw::reactor::Registration>,
    /// Whether the objects' signals count this future among their waiters.
    announced: bool,
    slice_end: Option<Instant>,
}

#[cfg(not(loom))]
impl<W: Waitable + ?Sized> std::fmt::Debug for WaitFuture<'_, '_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitFuture")
            .field("objects", &self.objects.len())
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[cfg(not(loom))]
impl<W: Waitable + ?Sized> Unpin for WaitFuture<'_, '_, W> {}

#[cfg(not(loom))]
impl<W: Waitable + ?Sized> WaitFuture<'_, '_, W> {
    fn ready(&mut self) -> Vec<usize> {
        (0..self.objects.len())
            .filter(|&i| self.objects[i].ready())
            .collect()
    }

    /// Withdraws the announcements of this wait.
    fn withdraw(&mut self) {
        if std::mem::take(&mut self.announced) {
            for o in self.objects.iter() {
                if let Some(s) = o.signal() {
                    s.finish();
                }
            }
        }
    }

    /// Ready: withdrawn and disarmed.
    fn done(&mut self, r: Vec<usize>) -> std::task::Poll<Vec<usize>> {
        self.withdraw();
        self.regs.clear();
        std::task::Poll::Ready(r)
    }
}

#[cfg(not(loom))]
impl<W: Waitable + ?Sized> Future for WaitFuture<'_, '_, W> {
    type Output = Vec<usize>;

    /// The steps of one round of [`wait`], with `Pending` where it sleeps (the registration
    /// protocol of `ipc_core::raw::reactor`): look; announce on every signal; look again;
    /// register every word at the epoch read before that look, and every descriptor.
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Vec<usize>> {
        let this = self.get_mut();
        let r = this.ready();
        if !r.is_empty() {
            return this.done(r);
        }
        let now = Instant::now();
        match this.slice_end {
            Some(e) if e <= now => {
                // A slice without news: the senders' liveness, as after a slice of `wait`.
                let gone: Vec<usize> = (0..this.objects.len())
                    .filter(|&i| this.objects[i].gone())
                    .collect();
                if !gone.is_empty() {
                    this.withdraw();
                    for &i in &gone {
                        // The other futures waiting on this object share one slice timer,
                        // which wakes one of them per slice: wake them all now to find the
                        // same (a thousand tasks would otherwise take a thousand slices).
                        if let Some(s) = this.objects[i].signal() {
                            s.notify();
                        }
                    }
                    return this.done(gone);
                }
                this.slice_end = Some(now + SLICE);
            }
            Some(_) => {}
            None => this.slice_end = Some(now + SLICE),
        }
        if this.deadline.is_some_and(|d| now >= d) {
            return this.done(Vec::new());
        }
        // Announced once per wait, as in `wait`: a later poll reads each epoch again.
        let again = std::mem::replace(&mut this.announced, true);
        let epochs: Vec<Option<u32>> = this
            .objects
            .iter()
            .map(|o| {
                o.signal()
                    .map(|s| if again { s.epoch_again() } else { s.prepare() })
            })
            .collect();
        let r = this.ready();
        if !r.is_empty() {
            return this.done(r);
        }
        let n = this.objects.len();
        this.regs
            .resize_with(n + 1, ipc_core::raw::reactor::Registration::new);
        // A descriptor or a bare timer wakes at the deadline (or re-arms after a long while);
        // a word's registration is sliced, sharing the word's slice timer with its other
        // waiters, so a thousand idle futures cost one wake-up per slice, not a thousand.
        let until = this.deadline.unwrap_or(now + REARM);
        let mut words = 0;
        for (i, (o, e)) in this.objects.iter().zip(&epochs).enumerate() {
            let reg = &mut this.regs[i];
            match (o.signal(), e, o.fd()) {
                (Some(s), Some(e), _) => {
                    words += 1;
                    reg.arm_sliced(s.epoch_word(), *e, this.deadline, SLICE, cx.waker());
                }
                (_, _, Some(fd)) => reg.arm_fd(fd, until, cx.waker()),
                _ => reg.disarm(),
            }
        }
        if words == 0 {
            this.regs[n].arm_timer(until, cx.waker());
        } else {
            this.regs[n].disarm();
        }
        std::task::Poll::Pending
    }
}

#[cfg(not(loom))]
impl<W: Waitable + ?Sized> Drop for WaitFuture<'_, '_, W> {
    fn drop(&mut self) {
        self.regs.clear();
        self.withdraw();
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
