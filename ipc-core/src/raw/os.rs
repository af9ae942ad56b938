//! Process-level calls the crates above and programs need beside these building blocks: a
//! handler that runs in every fork child, the calling thread's kernel id, and a signal to a
//! process by pid. They are here so that the workspace's system calls stay in ipc-core's
//! platform layer.

use crate::platform;

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
