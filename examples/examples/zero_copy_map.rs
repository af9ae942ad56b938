//! Squares every element of a 100-million-element shared `RawArray<f64>` in place with a pool
//! (each worker gets disjoint chunks of the shared memory; only the chunk bounds travel), and
//! prints the time beside a single-process loop over the same data.
//!
//! `cargo run --release --example zero_copy_map [ELEMENTS]` (default 100,000,000: 800 MB).

use std::time::Instant;

use ipc_core::RawArray;
use ipc_pool::Pool;

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

    let mut data = RawArray::<f64>::new(n)?;
    let fill = |a: &RawArray<f64>| -> anyhow::Result<()> {
        let block: Vec<f64> = (0..1 << 16).map(|i| (i % 1000) as f64).collect();
        let mut at = 0;
        while at < a.len() {
            let take = block.len().min(a.len() - at);
            a.write(at, &block[..take])?;
            at += take;
        }
        Ok(())
    };

    fill(&data)?;
    let t = Instant::now();
    {
        // SAFETY: this process is the only user of the array while the slice lives.
        let all = unsafe { std::slice::from_raw_parts_mut(data.as_ptr(), data.len()) };
        square_all(all);
    }
    let single = t.elapsed();
    println!("single process: {single:?}");

    fill(&data)?;
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
        data.get(i) == Some(x * x)
    });
    println!("every sampled element squared: {ok}");
    anyhow::ensure!(ok, "wrong results");
    Ok(())
}
