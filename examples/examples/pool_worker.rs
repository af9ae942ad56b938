//! Python's `Pool(4).map(worker, range(4))` where the worker prints its number.
//!
//! Prints `Worker process 0` … `Worker process 3` (in the order the workers get to them).

use ipc_pool::Pool;

fn worker(n: u32) {
    println!("Worker process {n}");
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let pool = Pool::builder().processes(4).build()?;
    pool.map_chunksize(worker, 0..4, 1)?;
    Ok(())
}
