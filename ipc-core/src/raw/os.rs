//! Process-level calls the crates above and programs need beside these building blocks: a
//! handler that runs in every fork child, process-global state a fork child never finds locked
//! ([`ForkLocal`]), the calling thread's kernel id, and a signal to a process by pid. They are
//! here so that the workspace's system calls stay in ipc-core's platform layer.

use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::platform;
use crate::primitive::Ordering;
use crate::raw::sync::private::AtomicPtr;

/// Process-global state behind a lock, for a process that may fork while another of its
/// threads holds that lock.
///
/// A `static Mutex` is inherited by a fork child in whatever state it had at the fork: if
/// another thread of the parent held it (a background thread of this workspace's, say), the
/// child's first `lock` waits for ever, because the holder does not exist in the child. A
/// `ForkLocal` keeps its value in a cell stamped with the pid that made it; the first use in a
/// process whose pid differs (a fork child) makes a fresh cell with `init` and never touches the
/// parent's, which the child leaves as it is (leaked: what it holds belongs to the parent).
///
/// ```
/// use ipc_core::raw::os::ForkLocal;
///
/// static NAMES: ForkLocal<Vec<String>> = ForkLocal::new(Vec::new);
/// NAMES.lock().push("a".into());
/// assert_eq!(NAMES.lock().len(), 1);
/// ```
pub struct ForkLocal<T> {
    current: AtomicPtr<Cell<T>>,
    init: fn() -> T,
    _value: PhantomData<Mutex<T>>,
}

impl<T> std::fmt::Debug for ForkLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkLocal").finish_non_exhaustive()
    }
}

/// One process's value.
struct Cell<T> {
    pid: u32,
    value: Mutex<T>,
}

impl<T> ForkLocal<T> {
    /// A value made by `init` at its first use in each process.
    pub const fn new(init: fn() -> T) -> Self {
        Self {
            current: AtomicPtr::new(std::ptr::null_mut()),
            init,
            _value: PhantomData,
        }
    }

    /// Locks this process's value (made now if this process has none yet). A panic of an
    /// earlier holder does not poison it for the next.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.cell()
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// In a fork child: the value inherited from the parent, if no thread of the parent held it
    /// at the fork (for a fork handler that closes what the child must not keep open). `None`
    /// in the process that made the value, or when it was held.
    #[inline]
    pub fn try_lock_inherited(&self) -> Option<MutexGuard<'_, T>> {
        // ORDERING: Acquire, pairs with the AcqRel install in `cell`: the cell's contents are
        // visible.
        let seen = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from `Box::into_raw` in `cell` and is never
        // freed once installed.
        let cell = unsafe { seen.as_ref() }?;
        if cell.pid == platform::getpid() {
            return None;
        }
        match cell.value.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// This process's cell.
    fn cell(&self) -> &Cell<T> {
        let pid = platform::getpid();
        loop {
            // ORDERING: Acquire, pairs with the AcqRel install below.
            let seen = self.current.load(Ordering::Acquire);
            // SAFETY: as in `try_lock_inherited`: installed cells are never freed.
            if let Some(cell) = unsafe { seen.as_ref() } {
                if cell.pid == pid {
                    return cell;
                }
            }
            let fresh = Box::into_raw(Box::new(Cell {
                pid,
                value: Mutex::new((self.init)()),
            }));
            // ORDERING: AcqRel on success: Release publishes the fresh cell's contents, Acquire
            // as the load above. Acquire on failure: we look at the winner's cell next.
            match self
                .current
                .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The cell it replaced (a parent's, or none) is left as it is.
                // SAFETY: `fresh` is installed and never freed from now on.
                Ok(_) => return unsafe { &*fresh },
                Err(_) => {
                    // Another thread of this process installed one first: ours was never shared.
                    // SAFETY: `fresh` came from `Box::into_raw` above and nobody else saw it.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

/// Registers `handler` to run in every fork child, right after the fork (`pthread_atfork`'s
/// child handler): the place to clear a per-process cache (a pid, an identity word) that a
/// child must not inherit.
///
/// ```
/// use ipc_core::raw::atomic::AtomicU32;
/// use std::sync::atomic::Ordering;
///
/// static CACHED_PID: AtomicU32 = AtomicU32::new(0);
/// extern "C" fn forget_in_child() {
///     // ORDERING: Relaxed, the child is single-threaded right after fork.
///     CACHED_PID.store(0, Ordering::Relaxed);
/// }
/// // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
/// unsafe { ipc_core::raw::os::on_fork_child(forget_in_child) };
/// ```
///
/// # Safety
/// `handler` must only do what is async-signal-safe (loads and stores of atomics, system
/// calls): it runs in a child of a possibly multi-threaded process, where a lock another thread
/// held at the fork stays held forever (so no allocation, no `std::sync` lock, no printing).
pub unsafe fn on_fork_child(handler: extern "C" fn()) {
    // SAFETY: the caller promises that `handler` is async-signal-safe.
    unsafe { platform::on_fork_child(handler) }
}

/// The calling thread's kernel thread id (`gettid`): equal to the process id in the main
/// thread, and unique among the live threads of the system.
///
/// ```
/// let main = ipc_core::raw::os::gettid();
/// let other = std::thread::spawn(ipc_core::raw::os::gettid).join().unwrap();
/// assert_ne!(other, main);
/// ```
pub fn gettid() -> u32 {
    platform::gettid()
}

/// Sends signal `sig` to process `pid` (Python's `os.kill`): for a program that plays the
/// outside world, as the examples do when they SIGKILL a pool's worker. Named signals only
/// (`SIGKILL`, `SIGTERM`, ...); 0 checks that the process exists. A pid of 0 or one that does
/// not fit a `pid_t`, and a signal number that names no signal, are `InvalidInput`.
///
/// ```
/// let me = std::process::id();
/// ipc_core::raw::os::kill(me, 0)?;
/// assert_eq!(
///     ipc_core::raw::os::kill(0, 0).unwrap_err().kind(),
///     std::io::ErrorKind::InvalidInput
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn kill(pid: u32, sig: i32) -> std::io::Result<()> {
    platform::kill(pid, sig)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::ForkLocal;

    /// A thread of the parent holds the lock while the process forks: the child gets a fresh
    /// value at once (a plain `static Mutex` would leave it waiting for ever).
    #[test]
    fn a_fork_child_gets_a_fresh_value_though_a_parent_thread_held_the_lock() {
        static LIST: ForkLocal<Vec<u32>> = ForkLocal::new(Vec::new);
        LIST.lock().push(1);
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let guard = LIST.lock();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(guard);
        });
        held_rx.recv().unwrap();
        let code = ipc_testkit::process::fork_exit_code_within(Duration::from_secs(20), || {
            let inherited_was_held = LIST.try_lock_inherited().is_none();
            let fresh = LIST.lock().is_empty();
            LIST.lock().push(2);
            inherited_was_held && fresh && *LIST.lock() == [2]
        });
        go_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(
            code,
            Some(0),
            "the child hung on the parent's lock (None) or saw its value"
        );
        assert_eq!(*LIST.lock(), [1], "the parent's value is its own");
        assert!(
            LIST.try_lock_inherited().is_none(),
            "nothing is inherited in the parent"
        );
    }

    /// Unheld at the fork, the parent's value is there for the child's fork handler to close.
    #[test]
    fn an_unheld_value_is_inherited_for_the_childs_handler() {
        static NAMES: ForkLocal<Vec<&'static str>> = ForkLocal::new(Vec::new);
        NAMES.lock().push("parent's");
        let code = ipc_testkit::process::fork_exit_code_within(Duration::from_secs(20), || {
            let inherited = NAMES
                .try_lock_inherited()
                .is_some_and(|v| *v == ["parent's"]);
            inherited && NAMES.lock().is_empty()
        });
        assert_eq!(code, Some(0));
    }
}
