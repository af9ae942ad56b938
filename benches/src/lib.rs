//! The `ipc-bench` harness: scenarios between real processes, each repeated, reported as median,
//! min and max.
//!
//! A scenario is a named function that performs one repeat and returns one figure in its unit.
//! Every crate's scenarios live in `scenarios/<topic>.rs` and are listed by [`all`].

pub mod scenarios;

/// Settings shared by every scenario.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shorter runs (about a minute for everything).
    pub quick: bool,
}

impl Config {
    /// Picks `full` normally and `quick` under `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// One benchmark scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The stable name, `group.what` (e.g. `limit.pingpong_rtt`).
    pub name: &'static str,
    /// The unit of the figure (`ns`, `µs`, `ms`, `msgs/s`, `GB/s`, `ops/s`, `tasks/s`).
    pub unit: &'static str,
    /// Whether a larger figure is better (throughput) or worse (latency).
    pub higher_is_better: bool,
    /// Performs one repeat and returns its figure; `Ok(None)` means "skipped" (a peer is
    /// missing), with the reason printed by the scenario.
    pub run: fn(&Config) -> anyhow::Result<Option<f64>>,
}

/// Every scenario, in report order.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(scenarios::limit::scenarios());
    v.extend(scenarios::queue::scenarios());
    v
}

/// Runs `f` in a forked child process and returns its pid; the child exits with status 0 if
/// `f` returns `Ok` and 1 otherwise. Only for the single-threaded `ipc-bench` binary.
pub fn fork_child(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Child> {
    // SAFETY: ipc-bench is single-threaded when it forks, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        anyhow::bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let code = match f() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("benchmark child failed: {e:#}");
                1
            }
        };
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
            // SAFETY: kill and waitpid on our own child have no memory-safety preconditions.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = wait_pid(self.pid);
        }
    }
}
