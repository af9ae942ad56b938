//! `ipc_core::Process` under every start method, joined under a watchdog.

use std::time::Duration;

use ipc_core::{JoinError, Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every start method.
pub const START_METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

/// A process running `f(arg)` with `method` (forking from the multi-threaded test harness is
/// accepted, with its risk).
pub fn process<A, R>(method: StartMethod, f: fn(A) -> R, arg: A) -> Process<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned,
{
    Process::builder()
        .start_method(method)
        .accept_fork_with_threads(true)
        .target(f, arg)
}

/// Joins `p` under a watchdog of `limit`: a child still running then is killed and the test
/// fails.
pub fn join_within<R: Serialize + DeserializeOwned>(
    p: &Process<R>,
    limit: Duration,
) -> Result<R, JoinError> {
    match p.join_timeout(limit) {
        Err(JoinError::Timeout) => {
            let _ = p.kill();
            let _ = p.join();
            panic!("watchdog: {} did not end in {limit:?}", p.name());
        }
        other => other,
    }
}

/// Forks this (multi-threaded) test process with a bare `fork()`: the child runs `f` and exits
/// with 0 if it returned `true`, 1 otherwise. Returns the child's exit code, or `None` if it had
/// not ended within `limit` (it is then SIGKILLed and reaped): how a test sees a child that hung
/// on a lock another thread of the parent held at the fork.
pub fn fork_exit_code_within(limit: Duration, f: impl FnOnce() -> bool) -> Option<i32> {
    // SAFETY: the child runs only `f` and `_exit`; what `f` may do after a fork of a
    // multi-threaded process is the caller's test.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(false);
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let end = std::time::Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if std::time::Instant::now() >= end {
            // SAFETY: `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
