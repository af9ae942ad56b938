//! `ours.pool_*` and `ours.manager_*`: ipc-pool's costs, beside `python.pool_*` and
//! `python.manager_dict_set_rtt`, and the in-place map beside threads doing the same work.
//!
//! - `ours.pool_map` (tasks/s): `Pool` of 2 maps a trivial function over 1,000,000 `u64`
//!   (100,000 with `--quick`) with Python's default chunksize, on warm workers (one untimed map
//!   of the same shape first, as in a program that maps repeatedly).
//! - `ours.pool_map_chunk1` (tasks/s): the same over 100,000 items (10,000) with chunksize 1.
//! - `ours.pool_apply_rtt` (µs): `apply` one call after another.
//! - `ours.pool_chunks_mut` (GB/s): `map_chunks_mut` squares a 1 GiB `SharedSlice<f64>`
//!   (128 MiB) in place, 2 workers, after one untimed pass that maps the pages into them.
//! - `threads.chunks_mut` (GB/s): the same work by 2 threads of one process over the same
//!   shared memory, the reference `ours.pool_chunks_mut` is compared with.
//! - `ours.manager_dict_set_rtt` (µs): `insert` on a manager dict proxy, one after another.

use std::time::Instant;

use anyhow::{Context, ensure};
use ipc_pool::{Manager, Pool, SharedSlice};

use crate::{Config, Scenario};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ours.pool_map",
            unit: "tasks/s",
            higher_is_better: true,
            run: pool_map,
        },
        Scenario {
            name: "ours.pool_map_chunk1",
            unit: "tasks/s",
            higher_is_better: true,
            run: pool_map_chunk1,
        },
        Scenario {
            name: "ours.pool_apply_rtt",
            unit: "µs",
            higher_is_better: false,
            run: pool_apply_rtt,
        },
        Scenario {
            name: "ours.pool_chunks_mut",
            unit: "GB/s",
            higher_is_better: true,
            run: pool_chunks_mut,
        },
        Scenario {
            name: "threads.chunks_mut",
            unit: "GB/s",
            higher_is_better: true,
            run: threads_chunks_mut,
        },
        Scenario {
            name: "ours.manager_dict_set_rtt",
            unit: "µs",
            higher_is_better: false,
            run: manager_dict_set_rtt,
        },
    ]
}

const WORKERS: usize = 2;

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn expected_sum(n: u64) -> u64 {
    (0..n).map(square).fold(0u64, u64::wrapping_add)
}

fn timed_map(n: u64, chunksize: Option<usize>) -> anyhow::Result<Option<f64>> {
    let pool = Pool::new(WORKERS).context("pool")?;
    // Warm workers, as in a program that maps repeatedly: one untimed map of the same shape.
    match chunksize {
        Some(c) => pool.map_chunksize(square, 0..n, c),
        None => pool.map(square, 0..n),
    }
    .context("warm-up")?;
    let t = Instant::now();
    let out = match chunksize {
        Some(c) => pool.map_chunksize(square, 0..n, c),
        None => pool.map(square, 0..n),
    }
    .context("map")?;
    let dt = t.elapsed().as_secs_f64();
    ensure!(
        out.len() as u64 == n,
        "map returned {} results for {n} items",
        out.len()
    );
    ensure!(
        out.iter().copied().fold(0u64, u64::wrapping_add) == expected_sum(n),
        "map returned wrong results"
    );
    Ok(Some(n as f64 / dt))
}

fn pool_map(cfg: &Config) -> anyhow::Result<Option<f64>> {
    timed_map(cfg.pick(1_000_000, 100_000), None)
}

fn pool_map_chunk1(cfg: &Config) -> anyhow::Result<Option<f64>> {
    timed_map(cfg.pick(100_000, 10_000), Some(1))
}

fn pool_apply_rtt(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let pool = Pool::new(WORKERS).context("pool")?;
    for i in 0..50 {
        pool.apply(square, i).context("warm-up")?;
    }
    let n = cfg.pick(5_000u64, 500);
    let t = Instant::now();
    for i in 0..n {
        ensure!(
            pool.apply(square, i).context("apply")? == square(i),
            "wrong result"
        );
    }
    Ok(Some(t.elapsed().as_secs_f64() * 1e6 / n as f64))
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

fn pool_chunks_mut(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let mut a = filled_array(cfg)?;
    let pool = Pool::new(WORKERS).context("pool")?;
    let chunk = a.len().div_ceil(WORKERS * 16);
    pool.map_chunks_mut(&mut a, chunk, square_all)
        .context("untimed pass")?;
    let t = Instant::now();
    pool.map_chunks_mut(&mut a, chunk, square_all)
        .context("timed pass")?;
    let dt = t.elapsed().as_secs_f64();
    check_squared(&a, 2)?;
    Ok(Some((a.len() * 8) as f64 / dt / 1e9))
}

fn threads_chunks_mut(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let mut a = filled_array(cfg)?;
    let len = a.len();
    let run = |all: &mut [f64]| {
        let (left, right) = all.split_at_mut(len / 2);
        std::thread::scope(|s| {
            s.spawn(|| square_all(left));
            s.spawn(|| square_all(right));
        });
    };
    run(&mut a);
    let t = Instant::now();
    run(&mut a);
    let dt = t.elapsed().as_secs_f64();
    check_squared(&a, 2)?;
    Ok(Some((len * 8) as f64 / dt / 1e9))
}

fn manager_dict_set_rtt(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let m = Manager::start().context("manager")?;
    let d = m.dict::<u64, u64>().context("dict")?;
    for i in 0..100 {
        d.insert(i % 10, i).context("warm-up")?;
    }
    let n = cfg.pick(20_000u64, 2_000);
    let t = Instant::now();
    for i in 0..n {
        d.insert(i % 100, i).context("insert")?;
    }
    let dt = t.elapsed().as_secs_f64();
    ensure!(d.get(&((n - 1) % 100))? == Some(n - 1), "wrong contents");
    ensure!(d.len()? == 100, "wrong length");
    Ok(Some(dt * 1e6 / n as f64))
}
