//! The `Fork` start method: a plain `fork()`; the child runs the target in the copied image.

use std::io::Write;
use std::os::unix::net::UnixStream;

use super::child::{self, Current};
use super::exit::StartError;
use super::running::{Running, Watch};
use super::{Target, forkserver};
use crate::{platform, tracker};

pub(super) fn start(
    target: &Target,
    info: Current<'_>,
    daemon: bool,
    accept_threads: bool,
) -> Result<Running, StartError> {
    let threads = platform::thread_count()?;
    if threads > 1 && !accept_threads {
        return Err(StartError::ForkWithThreads { threads });
    }
    let (ours, theirs) = UnixStream::pair()?;
    // Output buffered now would be written twice, once by each process (standard error is
    // unbuffered).
    let _ = std::io::stdout().flush();
    let parent = platform::getpid();
    // SAFETY: the child only runs the target after the checks above: either this process is
    // single-threaded, or the caller explicitly accepted the risk of a multi-threaded fork.
    let pid = unsafe { platform::fork() }?;
    if pid == 0 {
        platform::close_now(ours.into());
        child::set_forked_with_threads(threads > 1);
        after_fork_in_child();
        if daemon {
            child::arm_daemon(parent);
        }
        // SAFETY: this child never returns from here (`child::run` ends the process, and
        // catches the target's panics), so this frame, and every frame of the caller's, stays
        // as it is until the process ends: `info` and what it borrows (the `Process` whose start
        // this is, alive for the whole call) live as long as the process. Nothing in this
        // process can free them: safe code cannot drop an owner while it is borrowed for a call
        // that has not returned.
        let info: &'static Current<'static> =
            unsafe { &*std::ptr::from_ref(&info).cast::<Current<'static>>() };
        child::run(theirs, info, target.trampoline, target.func, &target.arg);
    }
    drop(theirs);
    let pidfd = platform::pidfd_open(pid).ok();
    Ok(Running::new(pid, pidfd, ours, Watch::Child)?)
}

/// Drops what the child must not keep of its parent: the tracker connection and the fork server
/// connection (holding them open would keep the parent's helpers waiting on this child). The
/// parent's list of children needs nothing: it is a [`ForkLocal`](crate::raw::os::ForkLocal),
/// which this process never reads.
#[inline]
pub(super) fn after_fork_in_child() {
    tracker::forget_inherited();
    forkserver::forget_inherited();
}

/// Keeps the cached pid right in every forked child, ours or not: registered with
/// `pthread_atfork` before `main` (`role.rs`), so the C library's `fork` runs it in each child.
/// Defined here, beside [`start`], so that it lands near the start's child branch: a forked child
/// maps the code it runs first a 64 KiB window at a time, each a page fault (3-4 µs on the
/// machine of the README's figures).
extern "C" fn forget_pid_in_child() {
    platform::forget_pid();
}

/// Registers [`forget_pid_in_child`].
pub(crate) fn register_atfork() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe and therefore
    // fine in a child right after fork.
    unsafe { platform::on_fork_child(forget_pid_in_child) };
}
