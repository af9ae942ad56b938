//! A tokio program awaits objects that other *processes* act on: an `Event` set by a child, a
//! `Lock` held by a child, and the children themselves (`join_async`). A thousand tasks wait at
//! once, no thread is blocked while they do, and the runtime keeps serving its timer meanwhile.
//!
//! Python's `asyncio` has no multiprocessing lock or event: a coroutine that must wait for a
//! `multiprocessing.Event` hands the wait to a thread (`loop.run_in_executor`), one thread per
//! waiter. Here `wait_async` and `lock_async` are futures woken by the same shared futex words
//! the blocking calls sleep on.
//!
//! Then a holder is SIGKILLed while 100 tasks await its lock: the await ends with `OwnerDied`,
//! exactly as a blocking `lock()` would, and the tasks go on.
//!
//! Run with `cargo run -p examples --example async_wait`.

use std::sync::Arc;
use std::time::Duration;

use ipc_core::Process;
use ipc_sync::{Event, Lock};

const TASKS: usize = 1000;

/// The objects a child receives (Python pickles them into `args`).
type Shared = (Lock, Event, Event);

/// A child that holds the lock while it works, sets the `ready` event when its work is done,
/// then releases the lock.
fn worker((lock, held, ready): Shared) -> u64 {
    let guard = lock.lock().unwrap_or_else(|died| died.into_inner());
    held.set();
    std::thread::sleep(Duration::from_millis(300));
    ready.set();
    drop(guard);
    42
}

/// A child that takes the lock, says so, and never lets it go (it is killed).
fn doomed((lock, held, _): Shared) -> u64 {
    let _guard = lock.lock().unwrap_or_else(|died| died.into_inner());
    held.set();
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn clone(s: &Shared) -> anyhow::Result<Shared> {
    Ok((s.0.try_clone()?, s.1.try_clone()?, s.2.try_clone()?))
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let shared: Shared = (Lock::new()?, Event::new()?, Event::new()?);
    let child = Process::new(worker, clone(&shared)?);
    child.start()?;
    let (lock, held, ready) = shared;
    let (lock, ready) = (Arc::new(lock), Arc::new(ready));
    // The child holds the lock once this is set.
    anyhow::ensure!(
        held.wait_timeout_async(Duration::from_secs(30)).await,
        "the child did not start"
    );

    // A timer task: the runtime keeps running while a thousand tasks wait.
    let ticks = Arc::new(tokio::sync::Mutex::new(0u32));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                *ticks.lock().await += 1;
            }
        })
    };

    // Half the tasks await the event the child will set, half the lock it holds.
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (lock, ready) = (Arc::clone(&lock), Arc::clone(&ready));
            tokio::spawn(async move {
                if i % 2 == 0 {
                    ready.wait_async().await;
                    0
                } else {
                    let _guard = lock.lock_async().await.expect("the child released it");
                    1
                }
            })
        })
        .collect();
    let mut took_lock = 0;
    for t in tasks {
        took_lock += t.await?;
    }
    println!("event set by the child: {} tasks woken", TASKS - took_lock);
    println!("lock released by the child: {took_lock} tasks took it in turn");
    ticker.abort();
    let ticks = *ticks.lock().await;
    println!("the runtime kept running meanwhile: {}", ticks > 0);
    println!("the child returned {}", child.join_async().await?);

    // A holder killed while 100 tasks await its lock.
    held.clear();
    let doomed = Process::new(
        doomed,
        (lock.try_clone()?, held.try_clone()?, ready.try_clone()?),
    );
    doomed.start()?;
    anyhow::ensure!(
        held.wait_timeout_async(Duration::from_secs(30)).await,
        "the holder did not start"
    );
    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let lock = Arc::clone(&lock);
            tokio::spawn(async move {
                match lock.lock_async().await {
                    Ok(_guard) => false,
                    Err(died) => {
                        // Repair what the dead holder left half done, then mark it consistent.
                        died.into_inner().make_consistent();
                        true
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    doomed.kill()?; // SIGKILL, while it holds the lock
    let mut owner_died = 0;
    for w in waiters {
        owner_died += u32::from(w.await?);
    }
    println!("holder killed: {owner_died} await ended with OwnerDied, 100 tasks took the lock");
    let _ = doomed.join_async().await;
    Ok(())
}
