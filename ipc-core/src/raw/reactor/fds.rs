//! The descriptor side of the reactor: registrations of (descriptor, deadline, waker), slept on
//! by one lazily started thread with `poll` beside an eventfd doorbell. Used for a child's
//! pidfd and result channel (`Process::join_async`); futex words go to the shards of
//! `words.rs`, since `futex_waitv` takes no descriptors and `poll` takes no futexes.
//!
//! The doorbell works as the shards' does: the thread sets `sleeping` under the lock, a
//! registrant that must interrupt it clears `sleeping` and writes the eventfd after the lock;
//! the eventfd stays readable until the thread drains it, so a ring between the thread's unlock
//! and its `poll` is not lost.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Instant;

use crate::platform;

#[derive(Debug)]
struct Waiter {
    fd: RawFd,
    waker: Waker,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Table {
    waiters: HashMap<u64, Waiter>,
    deadlines: BTreeMap<(Instant, u64), ()>,
    next_id: u64,
    sleeping: bool,
    started: bool,
}

/// One process's descriptor watcher.
#[derive(Debug)]
pub(super) struct Fds {
    pid: u32,
    table: Mutex<Table>,
    bell: OwnedFd,
}

static CURRENT: OnceLock<Fds> = OnceLock::new();

/// This process's watcher, created on first use; `None` if it cannot be (no eventfd), or in a
/// fork child of a process that had one (its thread does not exist there).
pub(super) fn current() -> Option<&'static Fds> {
    let fds = match CURRENT.get() {
        Some(f) => f,
        None => {
            let bell = platform::reactor_eventfd().ok()?;
            CURRENT.get_or_init(|| Fds {
                pid: std::process::id(),
                table: Mutex::new(Table::default()),
                bell,
            })
        }
    };
    (fds.pid == std::process::id()).then_some(fds)
}

impl Fds {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `waker` for `fd` until `deadline`; `None` if the thread could not be started
    /// (the waker has been woken: the caller polls again).
    pub(super) fn insert(
        &'static self,
        fd: RawFd,
        deadline: Instant,
        waker: &Waker,
    ) -> Option<u64> {
        let mut t = self.lock();
        if !t.started {
            let spawned = std::thread::Builder::new()
                .name("ipc-fd-waiter".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                drop(t);
                waker.wake_by_ref();
                return None;
            }
            t.started = true;
        }
        let id = t.next_id;
        t.next_id = t.next_id.wrapping_add(1);
        t.waiters.insert(
            id,
            Waiter {
                fd,
                waker: waker.clone(),
                deadline,
            },
        );
        t.deadlines.insert((deadline, id), ());
        // Every new descriptor must be seen by the sleeping thread.
        let ring = t.sleeping;
        t.sleeping = false;
        drop(t);
        if ring {
            platform::reactor_eventfd_ring(self.bell.as_fd());
        }
        Some(id)
    }

    /// Withdraws registration `id`, if it has not fired.
    pub(super) fn remove(&self, id: u64) {
        let mut t = self.lock();
        if let Some(w) = t.waiters.remove(&id) {
            t.deadlines.remove(&(w.deadline, id));
            drop(t);
            drop(w);
        }
    }

    fn run(&'static self) {
        let bell = self.bell.as_fd();
        let mut fds: Vec<(RawFd, i16)> = Vec::new();
        let mut wakes: Vec<Waker> = Vec::new();
        loop {
            let until = {
                let mut t = self.lock();
                let now = Instant::now();
                while let Some(e) = t.deadlines.first_entry() {
                    let &(d, id) = e.key();
                    if d > now {
                        break;
                    }
                    e.remove();
                    if let Some(w) = t.waiters.remove(&id) {
                        wakes.push(w.waker);
                    }
                }
                fds.clear();
                fds.push((std::os::fd::AsRawFd::as_raw_fd(&bell), libc::POLLIN));
                for w in t.waiters.values() {
                    if !fds.iter().any(|&(fd, _)| fd == w.fd) {
                        fds.push((w.fd, libc::POLLIN));
                    }
                }
                let until = t.deadlines.first_key_value().map(|(&(d, _), _)| d);
                t.sleeping = true;
                until
            };
            for w in wakes.drain(..) {
                w.wake();
            }
            let timeout = until.map(|u| u.saturating_duration_since(Instant::now()));
            let revents = match platform::poll(&fds, timeout) {
                Ok(r) => r,
                Err(_) => {
                    // Out of memory for the poll set, say: ask again after a short nap rather
                    // than spin.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
            };
            platform::reactor_eventfd_drain(bell);
            let mut t = self.lock();
            t.sleeping = false;
            let ready: Vec<RawFd> = fds
                .iter()
                .zip(&revents)
                .skip(1)
                .filter(|(_, r)| **r != 0)
                .map(|(&(fd, _), _)| fd)
                .collect();
            if ready.is_empty() {
                continue;
            }
            let fired: Vec<u64> = t
                .waiters
                .iter()
                .filter(|(_, w)| ready.contains(&w.fd))
                .map(|(&id, _)| id)
                .collect();
            for id in fired {
                if let Some(w) = t.waiters.remove(&id) {
                    t.deadlines.remove(&(w.deadline, id));
                    wakes.push(w.waker);
                }
            }
        }
    }
}
