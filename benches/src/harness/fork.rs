//! Forked peers: the child runs a closure and exits; the parent waits for it, or kills it when
//! the handle drops.

use crate::pin;

/// Where a forked child runs under `--pin A,B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// The peer of a two-process scenario: on CPU `B`.
    Peer,
    /// A member of a team: on every CPU the run may use.
    Any,
}

/// Runs `f` in a forked child process and returns it; the child exits with status 0 if `f`
/// returns `Ok` and 1 otherwise. Only for the single-threaded `ipc-bench` binary.
///
/// Under `--pin A,B` the child first pins itself to CPU `B` and fails if that does not take.
/// The child is killed if the parent dies (`PR_SET_PDEATHSIG`), so a crashed run leaves no
/// spinning process behind. Memory mapped before the fork (an anonymous
/// [`SharedBlock`](crate::shm::SharedBlock)) is shared at the same address in both processes.
///
/// ```no_run
/// let child = benches::harness::fork_child(|| Ok(()))?;
/// child.wait()?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn fork_child(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Child> {
    fork_with(Affinity::Peer, f)
}

pub(crate) fn fork_with(
    affinity: Affinity,
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Child> {
    use std::io::Write;
    // Unflushed output would otherwise be written twice, once by each process.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let parent = std::process::id();
    // SAFETY: ipc-bench is single-threaded when it forks, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        anyhow::bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and has no memory effects.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        let code = if std::os::unix::process::parent_id() != parent {
            // The parent died before the death signal was armed.
            1
        } else {
            let placed = match affinity {
                Affinity::Peer => pin::pin_child(),
                Affinity::Any => pin::unpin_child(),
            };
            match placed.and_then(|()| f()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("benchmark child failed: {e:#}");
                    1
                }
            }
        };
        // SAFETY: _exit ends the child without running the parent's atexit handlers twice.
        unsafe { libc::_exit(code) };
    }
    Ok(Child { pid })
}

/// Forks a child that runs `f` and `_exit`s with the status it returns, and nothing else: no
/// death signal, no pin, no flush. The bare call that the floors of process start are made of
/// (`raw.fork_exit_wait`, `raw.fork_result_wait`), measured as `Process::start` and `join` run:
/// a child of `Process` arms nothing either, and stays where the scheduler puts it. `f` must end
/// at once (the child is not killed if the parent dies) and write no buffered output.
///
/// ```no_run
/// let child = benches::harness::fork_bare(|| 0)?;
/// child.wait()?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn fork_bare(f: impl FnOnce() -> i32) -> anyhow::Result<Child> {
    // SAFETY: ipc-bench is single-threaded when it forks, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        anyhow::bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let code = f();
        // SAFETY: _exit ends the child without running the parent's atexit handlers twice.
        unsafe { libc::_exit(code) };
    }
    Ok(Child { pid })
}

/// A forked child; waiting is explicit, and dropping kills it so nothing is left behind.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
}

impl Child {
    /// Waits for the child and fails unless it exited with status 0.
    pub fn wait(mut self) -> anyhow::Result<()> {
        let status = wait_pid(self.pid)?;
        self.pid = 0;
        if status != 0 {
            anyhow::bail!("benchmark child exited with status {status:#x}");
        }
        Ok(())
    }

    /// The pid, to watch the child's end through a pidfd.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Whether the child has ended (reaped now; it must have exited with status 0), without
    /// waiting.
    pub fn try_wait(&mut self) -> anyhow::Result<bool> {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our child, not yet reaped.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == 0 {
            return Ok(false);
        }
        if r != self.pid {
            anyhow::bail!("waitpid: {}", std::io::Error::last_os_error());
        }
        self.pid = 0;
        if status != 0 {
            anyhow::bail!("benchmark child exited with status {status:#x}");
        }
        Ok(true)
    }
}

fn wait_pid(pid: libc::pid_t) -> anyhow::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            anyhow::bail!("waitpid: {e}");
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pid > 0 {
            let _ = ipc_core::raw::os::kill(self.pid as u32, libc::SIGKILL);
            let _ = wait_pid(self.pid);
        }
    }
}
