//! `ours.start_*` and `raw.*`: the cost of starting a process and collecting its result.
//!
//! - `ours.start_fork`, `ours.start_spawn`, `ours.start_forkserver` (ms): [`Process::start`] of a
//!   no-op child with that start method, then [`Process::join`] returning its result (a `u32`).
//!   Compare with `python.start_fork`, `python.start_spawn`, `python.start_forkserver`.
//! - `raw.fork_exit_wait` (ms): `fork()`, `_exit(0)` in the child, `waitpid` in the parent: the
//!   floor under `ours.start_fork`.
//! - `raw.reexec_wait` (ms): this executable run again (`/proc/self/exe`, as the spawn method
//!   runs it) that exits from a constructor before `main`, waited for: the floor under
//!   `ours.start_spawn`.
//!
//! `ipc-bench` is single-threaded, so the `Fork` method runs without accepting any risk.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use ipc_core::{Process, StartMethod};

use crate::{Config, Scenario};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ours.start_fork",
            unit: "ms",
            higher_is_better: false,
            run: start_fork,
        },
        Scenario {
            name: "ours.start_spawn",
            unit: "ms",
            higher_is_better: false,
            run: start_spawn,
        },
        Scenario {
            name: "ours.start_forkserver",
            unit: "ms",
            higher_is_better: false,
            run: start_forkserver,
        },
        Scenario {
            name: "raw.fork_exit_wait",
            unit: "ms",
            higher_is_better: false,
            run: fork_exit_wait,
        },
        Scenario {
            name: "raw.reexec_wait",
            unit: "ms",
            higher_is_better: false,
            run: reexec_wait,
        },
    ]
}

const WARMUP: u32 = 3;

/// The environment variable that makes a re-executed `ipc-bench` exit before `main`.
const EXIT_AT_ONCE: &str = "IPC_BENCH_EXIT_AT_ONCE";

extern "C" fn exit_at_once() {
    if std::env::var_os(EXIT_AT_ONCE).is_some() {
        // SAFETY: `_exit` has no preconditions; nothing of this fresh process needs cleaning up.
        unsafe { libc::_exit(0) };
    }
}

/// Runs before `main` in every run of a binary that links this module.
#[used]
#[unsafe(link_section = ".init_array")]
static EXIT_AT_ONCE_HOOK: extern "C" fn() = exit_at_once;

/// Times `cycle` repeatedly for the budget (at least 10 times), after a warm-up; ms per cycle.
fn timed(cfg: &Config, mut cycle: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..WARMUP {
        cycle()?;
    }
    let budget = cfg.budget();
    let t0 = Instant::now();
    let mut n = 0u32;
    while n < 10 || t0.elapsed() < budget {
        cycle()?;
        n += 1;
    }
    Ok(t0.elapsed().as_secs_f64() * 1e3 / f64::from(n))
}

fn noop(x: u32) -> u32 {
    x + 1
}

fn start_join(cfg: &Config, method: StartMethod) -> anyhow::Result<Option<f64>> {
    let figure = timed(cfg, || {
        let p = Process::builder().start_method(method).target(noop, 41);
        p.start()
            .with_context(|| format!("start with {method:?}"))?;
        let r = p.join().with_context(|| format!("join with {method:?}"))?;
        ensure!(r == 42, "the child returned {r}");
        Ok(())
    })?;
    Ok(Some(figure))
}

fn start_fork(cfg: &Config) -> anyhow::Result<Option<f64>> {
    start_join(cfg, StartMethod::Fork)
}

fn start_spawn(cfg: &Config) -> anyhow::Result<Option<f64>> {
    start_join(cfg, StartMethod::Spawn)
}

fn start_forkserver(cfg: &Config) -> anyhow::Result<Option<f64>> {
    start_join(cfg, StartMethod::ForkServer)
}

fn fork_exit_wait(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let figure = timed(cfg, || {
        let child = crate::fork_child(|| Ok(()))?;
        child.wait()
    })?;
    Ok(Some(figure))
}

fn reexec_wait(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let figure = timed(cfg, || {
        let status = Command::new("/proc/self/exe")
            .env(EXIT_AT_ONCE, "1")
            .status()
            .context("re-executing ipc-bench")?;
        ensure!(status.success(), "the re-executed binary failed: {status}");
        Ok(())
    })?;
    Ok(Some(figure))
}
