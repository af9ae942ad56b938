//! A pool maps 1,000 tasks while one of its workers is SIGKILLed. Python's `Pool` hangs forever
//! here (CPython gh-66587); this one fails the task the worker was running, starts a
//! replacement, and finishes everything else.
//!
//! Prints how many tasks succeeded, which failed and why, and that the pool finished.

use std::time::Duration;

use ipc_pool::Pool;

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    x * x
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let pool = Pool::builder().processes(2).build()?;
    let before = pool.worker_pids();
    let mut succeeded = 0;
    let mut failed = Vec::new();
    for (i, result) in pool.imap(slow_square, 0..1000u64).enumerate() {
        match result {
            Ok(v) => {
                assert_eq!(v, (i as u64) * (i as u64));
                succeeded += 1;
            }
            Err(e) => failed.push((i, e.error.to_string())),
        }
        if i == 200 {
            let victim = before[0];
            println!(
                "killing worker {victim} with SIGKILL after {} results",
                i + 1
            );
            let _ = ipc_core::raw::os::kill(victim, libc::SIGKILL);
        }
    }
    println!("succeeded: {succeeded} of 1000");
    for (i, why) in &failed {
        println!("failed: task {i}: {why}");
    }
    let after = pool.worker_pids();
    println!("workers before: {before:?}, after: {after:?}");
    println!("the pool finished");
    Ok(())
}
