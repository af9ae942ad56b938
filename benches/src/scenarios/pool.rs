//! `ours.pool_*`: ipc-pool's `Pool`, beside `python.pool_*`, and the in-place map beside
//! threads doing the same work. Every pool is started and warmed before the window.
//!
//! - `ours.pool_map` (tasks/s): `Pool` of 2 maps a trivial function over 1,000,000 `u64`
//!   (100,000 with `--quick`) with Python's default chunksize, map after map.
//! - `ours.pool_map_chunk1` (tasks/s): the same over 100,000 items (10,000) with chunksize 1.
//! - `ours.pool_apply_rtt` (µs): `apply` one call after another.
//! - `ours.pool_map@Np` (tasks/s) and `ours.pool_apply_rtt@Np` (µs): the same against the
//!   number of workers, 1 to 256 (on a machine with fewer cores, that is oversubscribed: the
//!   point is to see what it costs; Python runs `Pool(200)`, so must we).
//! - `ours.pool_chunks_mut` (GB/s): `map_chunks_mut` squares a 1 GiB `SharedSlice<f64>`
//!   (128 MiB) in place, 2 workers, after one untimed pass that maps the pages into them.
//! - `threads.chunks_mut` (GB/s): the same work by 2 threads of one process over the same
//!   shared memory, the reference `ours.pool_chunks_mut` is compared with.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ipc_pool::{Pool, SharedSlice};

use crate::harness::{per_call, timed};
use crate::scenario::{Config, Quantity, Repeat, Scenario, Unit};
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("ours.pool_map", Unit::TasksPerSec, |cfg| {
            map(cfg.budget(), WORKERS, cfg.pick(1_000_000, 100_000), None)
        }),
        Scenario::new("ours.pool_map_chunk1", Unit::TasksPerSec, |cfg| {
            map(cfg.budget(), WORKERS, cfg.pick(100_000, 10_000), Some(1))
        }),
        Scenario::new("ours.pool_apply_rtt", Unit::Us, |cfg| {
            apply(cfg.budget(), WORKERS)
        }),
        Scenario::new("ours.pool_chunks_mut", Unit::GbPerSec, pool_chunks_mut),
        Scenario::new("threads.chunks_mut", Unit::GbPerSec, threads_chunks_mut),
    ];
    v.extend(sweep::processes("ours.pool_map", Unit::TasksPerSec, &SWEEP, &SWEEP_QUICK, |cfg, n| {
        map(cfg.sweep_budget(), n, 100_000, None)
    }));
    v.extend(sweep::processes("ours.pool_apply_rtt", Unit::Us, &SWEEP, &SWEEP_QUICK, |cfg, n| {
        apply(cfg.sweep_budget(), n)
    }));
    v
}

const WORKERS: usize = 2;
/// The worker counts of the sweeps (oversubscribed on a small machine: that is the point).
const SWEEP: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 256];
const SWEEP_QUICK: [usize; 5] = [1, 4, 16, 64, 256];

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// Maps of `n` items on a pool of `workers`, map after map; tasks per second.
fn map(budget: Duration, workers: usize, n: u64, chunksize: Option<usize>) -> Repeat {
    let pool = Pool::new(workers).context("pool")?;
    let expected = (0..n).map(square).fold(0u64, u64::wrapping_add);
    let w = timed(budget, |_| {
        let out = match chunksize {
            Some(c) => pool.map_chunksize(square, 0..n, c),
            None => pool.map(square, 0..n),
        }
        .context("map")?;
        ensure!(out.len() as u64 == n, "{} results for {n} items", out.len());
        let sum = out.iter().copied().fold(0u64, u64::wrapping_add);
        ensure!(sum == expected, "map returned wrong results");
        Ok(n)
    })?;
    Ok(Quantity::PerSecond(w.rate()).into())
}

/// `apply` round trips on a pool of `workers`.
fn apply(budget: Duration, workers: usize) -> Repeat {
    let pool = Pool::new(workers).context("pool")?;
    Ok(per_call(budget, |i| {
        let r = pool.apply(square, i).context("apply")?;
        ensure!(r == square(i), "apply({i}) returned {r}");
        Ok(())
    })?
    .into())
}

fn square_all(xs: &mut [f64]) {
    for x in xs {
        *x *= *x;
    }
}

fn filled_array(cfg: &Config) -> anyhow::Result<SharedSlice<f64>> {
    let len = cfg.pick(1usize << 27, 1 << 24); // 1 GiB or 128 MiB of f64
    let mut a = SharedSlice::<f64>::new(len).context("array")?;
    a.fill(1.5);
    Ok(a)
}

fn check_squared(a: &[f64], times: i32) -> anyhow::Result<()> {
    let want = 1.5f64.powi(2i32.pow(times as u32));
    for i in (0..a.len()).step_by(4093) {
        ensure!(a[i] == want, "element {i} is {}, expected {want}", a[i]);
    }
    Ok(())
}

/// One untimed pass (pages into the workers), then one timed pass: a second square is as far
/// as the values go without overflowing, and one pass is long enough to time.
fn two_passes(cfg: &Config, mut pass: impl FnMut(&mut SharedSlice<f64>) -> anyhow::Result<()>) -> Repeat {
    let mut a = filled_array(cfg)?;
    pass(&mut a).context("untimed pass")?;
    let t = Instant::now();
    pass(&mut a).context("timed pass")?;
    let dt = t.elapsed().as_secs_f64();
    check_squared(&a, 2)?;
    Ok(Quantity::PerSecond((a.len() * 8) as f64 / dt).into())
}

fn pool_chunks_mut(cfg: &Config) -> Repeat {
    let pool = Pool::new(WORKERS).context("pool")?;
    two_passes(cfg, |a| {
        let chunk = a.len().div_ceil(WORKERS * 16);
        pool.map_chunks_mut(a, chunk, square_all)?;
        Ok(())
    })
}

fn threads_chunks_mut(cfg: &Config) -> Repeat {
    two_passes(cfg, |a| {
        let half = a.len() / 2;
        let (left, right) = a.split_at_mut(half);
        std::thread::scope(|s| {
            s.spawn(|| square_all(left));
            s.spawn(|| square_all(right));
        });
        Ok(())
    })
}
