//! Four processes increment one shared counter under a `Lock`, 10,000 times each, and the
//! result is exact: prints `40000`.
//!
//! Then the part Python's `Lock` cannot do: a process is SIGKILLed while it holds the lock, in
//! the middle of its critical section. The next `lock()` does not hang: it returns
//! `Err(OwnerDied)` with the lock held, the program repairs the half-done update, marks the lock
//! consistent and goes on.
//!
//! Run with `cargo run -p examples --example lock_counter`.

use std::process::{Command, Stdio};
use std::time::Duration;

use ipc_core::RawValue;
use ipc_sync::{Event, Lock};

const ROLE: &str = "LOCK_COUNTER_ROLE";
const ARGS: &str = "LOCK_COUNTER_ARGS";
const WORKERS: usize = 4;
const INCREMENTS: u64 = 10_000;

/// The shared state: a counter, and a "pending" mark set while an update is half done.
type Shared = (Lock, RawValue<u64>, RawValue<u64>, Event);

/// A worker: the read-modify-write is only correct because the lock is held.
fn worker((lock, counter, _pending, _held): &Shared) -> anyhow::Result<()> {
    for _ in 0..INCREMENTS {
        let _guard = lock.lock().map_err(|_| anyhow::anyhow!("a holder died"))?;
        counter.set(counter.get() + 1);
    }
    Ok(())
}

/// A holder that starts an update, says it holds the lock, and never finishes (it is killed).
fn doomed_holder((lock, counter, pending, held): &Shared) -> anyhow::Result<()> {
    let _guard = lock.lock().map_err(|_| anyhow::anyhow!("a holder died"))?;
    pending.set(counter.get() + 1);
    held.set();
    std::thread::sleep(Duration::from_secs(60));
    counter.set(pending.get());
    pending.set(0);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    if let Ok(role) = std::env::var(ROLE) {
        let shared: Shared = ipc_core::codec::decode(&from_hex(&std::env::var(ARGS)?)?)?;
        return match role.as_str() {
            "worker" => worker(&shared),
            _ => doomed_holder(&shared),
        };
    }

    let shared: Shared = (
        Lock::new()?,
        RawValue::new(0u64)?,
        RawValue::new(0u64)?,
        Event::new()?,
    );
    let args = to_hex(&ipc_core::codec::encode(&shared)?);
    let start = |role: &str| {
        Command::new(std::env::current_exe()?)
            .env(ROLE, role)
            .env(ARGS, &args)
            .stdout(Stdio::null())
            .spawn()
    };

    // Run 1: four workers.
    let mut workers = (0..WORKERS)
        .map(|_| start("worker"))
        .collect::<std::io::Result<Vec<_>>>()?;
    for w in &mut workers {
        anyhow::ensure!(w.wait()?.success(), "a worker failed");
    }
    let (lock, counter, pending, held) = &shared;
    println!("{}", counter.get());

    // Run 2: a holder killed in the middle of its critical section.
    let mut doomed = start("holder")?;
    anyhow::ensure!(
        held.wait_timeout(Duration::from_secs(30)),
        "holder did not start"
    );
    doomed.kill()?; // SIGKILL
    doomed.wait()?;
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

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(s.get(i..i + 2).unwrap_or("x"), 16)?))
        .collect()
}
