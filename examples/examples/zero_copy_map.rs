//! Squares every element of a 100-million-element `SharedSlice<f64>` in place with a pool (each
//! worker gets disjoint `&mut` chunks of the shared memory; only the chunk bounds travel), and
//! prints the time beside a single-process loop over the same data.
//!
//! `cargo run --release --example zero_copy_map [ELEMENTS]` (default 100,000,000: 800 MB).

use std::time::Instant;

use ipc_pool::{Pool, SharedSlice};

fn square_all(xs: &mut [f64]) {
    for x in xs {
        *x *= *x;
    }
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000_000);
    let workers = ipc_core::cpu_count();
    println!(
        "{n} f64 elements ({} MB) in one shared array, {workers} workers",
        n * 8 / 1_000_000
    );

    let mut data = SharedSlice::<f64>::new(n)?;
    let fill = |a: &mut [f64]| {
        for (i, x) in a.iter_mut().enumerate() {
            *x = (i % (1 << 16) % 1000) as f64;
        }
    };

    fill(&mut data);
    let t = Instant::now();
    square_all(&mut data);
    let single = t.elapsed();
    println!("single process: {single:?}");

    fill(&mut data);
    let pool = Pool::builder().processes(workers).build()?;
    let chunk = n.div_ceil(workers * 8).max(1);
    let t = Instant::now();
    pool.map_chunks_mut(&mut data, chunk, square_all)?;
    let pooled = t.elapsed();
    println!(
        "pool of {workers}: {pooled:?} ({:.2}x the single process)",
        single.as_secs_f64() / pooled.as_secs_f64()
    );

    let ok = (0..n).step_by((n / 1000).max(1)).all(|i| {
        let x = (i % (1 << 16) % 1000) as f64;
        data[i] == x * x
    });
    println!("every sampled element squared: {ok}");
    anyhow::ensure!(ok, "wrong results");
    Ok(())
}
