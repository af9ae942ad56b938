//! Python's `with Pool(3) as p: print(p.map(square, [1, 2, 3, 4, 5]))`.
//!
//! Prints `[1, 4, 9, 16, 25]`.

use ipc_pool::Pool;

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let pool = Pool::builder().processes(3).build()?;
    let squares = pool.map(square, [1, 2, 3, 4, 5])?;
    println!("{squares:?}");
    Ok(())
}
