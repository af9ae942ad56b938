//! Four processes increment one shared counter under a `Lock`, 10,000 times each, and the
//! result is exact: prints `40000`.
//!
//! Then the part Python's `Lock` cannot do: a process is SIGKILLed while it holds the lock, in
//! the middle of its critical section. The next `lock()` does not hang: it returns
//! `Err(OwnerDied)` with the lock held, the program repairs the half-done update, marks the lock
//! consistent and goes on.
//!
//! Run with `cargo run -p examples --example lock_counter`.

use std::time::Duration;

use ipc_core::{Process, RawValue};
use ipc_sync::{Event, Lock};

const WORKERS: usize = 4;
const INCREMENTS: u64 = 10_000;

/// The shared state: a counter, a "pending" mark set while an update is half done, and an
/// event the doomed holder sets once it holds the lock.
type Shared = (Lock, RawValue<u64>, RawValue<u64>, Event);

/// Second handles of every object, for a child (Python pickles them into `args`).
fn clone(s: &Shared) -> anyhow::Result<Shared> {
    Ok((
        s.0.try_clone()?,
        s.1.try_clone()?,
        s.2.try_clone()?,
        s.3.try_clone()?,
    ))
}

/// A worker: the read-modify-write is only correct because the lock is held.
fn worker((lock, counter, _pending, _held): Shared) -> Result<(), String> {
    for _ in 0..INCREMENTS {
        let _guard = lock.lock().map_err(|_| "a holder died")?;
        counter.set(counter.get() + 1);
    }
    Ok(())
}

/// A holder that starts an update, says it holds the lock, and never finishes (it is killed).
fn doomed_holder((lock, counter, pending, held): Shared) -> Result<(), String> {
    let _guard = lock.lock().map_err(|_| "a holder died")?;
    pending.set(counter.get() + 1);
    held.set();
    std::thread::sleep(Duration::from_secs(60));
    counter.set(pending.get());
    pending.set(0);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let shared: Shared = (
        Lock::new()?,
        RawValue::new(0u64)?,
        RawValue::new(0u64)?,
        Event::new()?,
    );

    // Run 1: four workers.
    let workers = (0..WORKERS)
        .map(|_| Ok(Process::new(worker, clone(&shared)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for w in &workers {
        w.start()?;
    }
    for w in &workers {
        w.join()?.map_err(anyhow::Error::msg)?;
    }
    let (lock, counter, pending, held) = &shared;
    println!("{}", counter.get());

    // Run 2: a holder killed in the middle of its critical section.
    let doomed = Process::new(doomed_holder, clone(&shared)?);
    doomed.start()?;
    anyhow::ensure!(
        held.wait_timeout(Duration::from_secs(30)),
        "holder did not start"
    );
    doomed.kill()?; // SIGKILL
    let _ = doomed.join();
    let guard = match lock.lock() {
        Ok(guard) => guard,
        Err(owner_died) => {
            let guard = owner_died.into_inner();
            println!(
                "OwnerDied: the holder was killed mid-section (pending update {}), rolled back",
                pending.get()
            );
            pending.set(0);
            guard.make_consistent();
            guard
        }
    };
    // The lock works on, and the counter holds every completed update and nothing else.
    println!("{}", counter.get());
    drop(guard);
    Ok(())
}
