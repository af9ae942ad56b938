//! The `ipc-bench` harness: scenarios between real processes, each repeated, reported as median,
//! min and max.
//!
//! A scenario is a named function that performs one repeat and returns one figure in its unit.
//! Every crate's scenarios live in `scenarios/<topic>.rs` and are listed by [`all`].
//!
//! ```
//! let names: Vec<&str> = benches::all().iter().map(|s| s.name).collect();
//! assert!(names.contains(&"limit.pingpong_rtt"));
//! ```

pub mod compare;
pub mod pin;
pub mod plot;
pub mod primitive;
pub mod report;
pub mod scenarios;
pub mod shm;
pub mod sweep;

use std::time::{Duration, Instant};

/// Settings shared by every scenario.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shorter runs (about a minute for everything).
    pub quick: bool,
}

impl Config {
    /// Picks `full` normally and `quick` under `--quick`.
    ///
    /// ```
    /// let cfg = benches::Config { quick: true };
    /// assert_eq!(cfg.pick(1000, 10), 10);
    /// ```
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }

    /// How long one repeat of a time-bounded scenario measures (1 s, or 150 ms under `--quick`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = benches::Config { quick: false };
    /// assert_eq!(cfg.budget(), Duration::from_secs(1));
    /// ```
    pub fn budget(&self) -> Duration {
        self.pick(Duration::from_millis(1000), Duration::from_millis(150))
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
    /// missing). Return [`skip`]`(reason)` to have the reason reported.
    pub run: fn(&Config) -> anyhow::Result<Option<f64>>,
}

/// Every scenario, in report order.
///
/// ```
/// let all = benches::all();
/// let mut names: Vec<&str> = all.iter().map(|s| s.name).collect();
/// names.sort();
/// names.dedup();
/// assert_eq!(names.len(), all.len(), "names are unique");
/// ```
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(scenarios::limit::scenarios());
    v.extend(scenarios::os::scenarios());
    v.extend(scenarios::threads::scenarios());
    v.extend(scenarios::ipc_channel::scenarios());
    v.extend(scenarios::iceoryx2::scenarios());
    v.extend(scenarios::core::scenarios());
    v.extend(scenarios::python::scenarios());
    v.extend(scenarios::sync::scenarios());
    v.extend(scenarios::pool::scenarios());
    v.extend(scenarios::process::scenarios());
    v.extend(scenarios::queue::scenarios());
    v.extend(scenarios::cluster::scenarios());
    v
}

thread_local! {
    /// Set by [`skip`] on the thread that runs the scenario, taken by the harness.
    static SKIP_REASON: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Marks this repeat as skipped for `reason` (e.g. "python3 not found"): returns `Ok(None)` and
/// records the reason for the report.
///
/// ```
/// let r = benches::skip("no peer");
/// assert!(matches!(r, Ok(None)));
/// assert_eq!(benches::take_skip_reason().as_deref(), Some("no peer"));
/// ```
pub fn skip(reason: impl Into<String>) -> anyhow::Result<Option<f64>> {
    let reason = reason.into();
    SKIP_REASON.with(|r| *r.borrow_mut() = Some(reason));
    Ok(None)
}

/// Takes the reason recorded by the last [`skip`], if any.
///
/// ```
/// let _ = benches::skip("gone");
/// assert!(benches::take_skip_reason().is_some());
/// assert!(benches::take_skip_reason().is_none());
/// ```
pub fn take_skip_reason() -> Option<String> {
    SKIP_REASON.with(|r| r.borrow_mut().take())
}

/// Busy-spins until `ready()` holds, failing once `deadline` passes (checked every few thousand
/// spins, so the clock costs nothing on the hot path). `what` names the wait in the error.
///
/// After [`SPINS_BEFORE_YIELD`] fruitless spins (tens of microseconds) it calls `sched_yield`
/// between checks: with free cores that never happens in a scenario's steady state, and on a
/// machine with more runnable processes than cores it lets a descheduled peer run instead of
/// burning the rest of the time slice.
///
/// ```
/// use std::time::{Duration, Instant};
/// let mut n = 0;
/// benches::spin_until(Instant::now() + Duration::from_secs(1), "n", || { n += 1; n > 10 })?;
/// assert!(benches::spin_until(Instant::now(), "never", || false).is_err());
/// # Ok::<(), anyhow::Error>(())
/// ```
#[inline(always)]
pub fn spin_until(
    deadline: Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let mut spins: u32 = 0;
    loop {
        if ready() {
            return Ok(());
        }
        spins = spins.saturating_add(1);
        if spins < SPINS_BEFORE_YIELD {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        if spins % 1024 == 0 && Instant::now() >= deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
    }
}

/// How many times [`spin_until`] spins before it starts yielding the CPU between checks.
pub const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// How long any single wait inside a scenario may last before the scenario fails: generous, so
/// that a loaded machine slows a scenario down instead of failing it, and bounded, so that a
/// lost peer never hangs the run.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` in a forked child process and returns its pid; the child exits with status 0 if
/// `f` returns `Ok` and 1 otherwise. Only for the single-threaded `ipc-bench` binary.
///
/// Under `--pin A,B` the child first pins itself to CPU `B` and fails if that does not take.
/// The child is killed if the parent dies (`PR_SET_PDEATHSIG`), so a crashed run leaves no
/// spinning process behind. Memory mapped before the fork (an anonymous
/// [`shm::SharedBlock`]) is shared at the same address in both processes.
///
/// ```no_run
/// let child = benches::fork_child(|| Ok(()))?;
/// child.wait()?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn fork_child(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Child> {
    use std::io::Write;
    // Unflushed output would otherwise be written twice, once by each process.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: ipc-bench is single-threaded when it forks, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        anyhow::bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and has no memory effects.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        // SAFETY: getppid has no preconditions.
        let code = if unsafe { libc::getppid() } != parent {
            // The parent died before the death signal was armed.
            1
        } else {
            match pin::pin_child().and_then(|()| f()) {
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

/// Runs one scenario `repeats` times and summarises the figures (stops at the first skip or
/// error). This is what `ipc-bench` does for each scenario.
///
/// ```
/// let s = benches::Scenario {
///     name: "demo.constant",
///     unit: "ns",
///     higher_is_better: false,
///     run: |_| Ok(Some(2.0)),
/// };
/// let out = benches::run_scenario(&s, &benches::Config { quick: true }, 3, |_, _| {});
/// assert!(matches!(out, benches::report::Outcome::Measured { median, .. } if median == 2.0));
/// ```
pub fn run_scenario(
    scenario: &Scenario,
    cfg: &Config,
    repeats: usize,
    mut progress: impl FnMut(usize, f64),
) -> report::Outcome {
    let _ = take_skip_reason();
    let mut figures = Vec::with_capacity(repeats);
    for i in 0..repeats.max(1) {
        match (scenario.run)(cfg) {
            Ok(Some(x)) if x.is_finite() => {
                figures.push(x);
                progress(i + 1, x);
            }
            Ok(Some(x)) => {
                return report::Outcome::Failed(format!("non-finite figure {x}"));
            }
            Ok(None) => {
                let reason = take_skip_reason().unwrap_or_else(|| "skipped".to_owned());
                return report::Outcome::Skipped(reason);
            }
            Err(e) => return report::Outcome::Failed(format!("{e:#}")),
        }
    }
    report::Outcome::measured(&figures, scenario.unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::Outcome;

    fn scenario(run: fn(&Config) -> anyhow::Result<Option<f64>>) -> Scenario {
        Scenario {
            name: "test.scenario",
            unit: "µs",
            higher_is_better: false,
            run,
        }
    }

    #[test]
    fn a_failing_repeat_fails_the_scenario() {
        let s = scenario(|_| anyhow::bail!("checksum mismatch"));
        let out = run_scenario(&s, &Config { quick: true }, 3, |_, _| {});
        assert_eq!(out, Outcome::Failed("checksum mismatch".to_owned()));
    }

    #[test]
    fn a_skip_carries_its_reason() {
        let s = scenario(|_| skip("peer missing"));
        let out = run_scenario(&s, &Config { quick: true }, 3, |_, _| {});
        assert_eq!(out, Outcome::Skipped("peer missing".to_owned()));
    }

    #[test]
    fn non_finite_figures_are_refused() {
        let s = scenario(|_| Ok(Some(f64::NAN)));
        let out = run_scenario(&s, &Config { quick: true }, 3, |_, _| {});
        assert!(matches!(out, Outcome::Failed(_)));
    }

    #[test]
    fn every_repeat_is_reported() {
        let s = scenario(|_| Ok(Some(1.0)));
        let mut seen = Vec::new();
        let out = run_scenario(&s, &Config { quick: true }, 4, |i, _| seen.push(i));
        assert_eq!(seen, [1, 2, 3, 4]);
        assert!(matches!(out, Outcome::Measured { repeats: 4, .. }));
    }

    #[test]
    fn shared_block_bounds_are_checked() {
        let block = shm::SharedBlock::new(4096).unwrap();
        assert!(block.u64_at(4088).is_ok());
        assert!(block.u64_at(4089).is_err());
        assert!(block.u64_at(4092).is_err());
        assert!(block.u64_at(usize::MAX - 3).is_err());
        assert!(block.u64_slice_at(0, 512).is_ok());
        assert!(block.u64_slice_at(0, 513).is_err());
        assert!(block.u64_slice_at(8, usize::MAX).is_err());
        assert!(block.futex_at(4092).is_err());
        assert!(block.bytes_at(4096, 1).is_err());
        assert!(block.bytes_at(0, 4096).is_ok());
    }
}
