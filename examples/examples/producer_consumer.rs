//! Three producer processes and two consumer processes share one `Queue`; one producer is
//! SIGKILLed midway. The queue keeps working for everyone else, and at most the one message
//! that producer was writing is lost.
//!
//! Each producer counts the puts it *starts* in a shared `RawArray` (before each `put`), and
//! each consumer counts what it receives; so `sent - received` is exactly what was lost.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ipc_core::{ObjectHandle, RawArray};
use ipc_queue::{GetError, Queue};

const ROLE: &str = "PRODUCER_CONSUMER_ROLE";
const PRODUCERS: usize = 3;
const CONSUMERS: usize = 2;
const PER_PRODUCER: u64 = 200_000;
/// Counters: started puts per producer, then received messages per consumer.
const COUNTERS: usize = PRODUCERS + CONSUMERS;

fn producer(q: &ObjectHandle, counters: &ObjectHandle, id: usize) -> anyhow::Result<()> {
    let mut q = Queue::<u64>::open_producer(q)?;
    let counters = RawArray::<u64>::open(counters)?;
    // The victim puts forever; the others a fixed number.
    let n = if id == 0 { u64::MAX } else { PER_PRODUCER };
    for i in 0..n {
        counters.set(id, i + 1)?;
        q.put(((id as u64) << 40) | i)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

fn consumer(q: &ObjectHandle, counters: &ObjectHandle, id: usize) -> anyhow::Result<()> {
    let mut q = Queue::<u64>::open_consumer(q)?;
    let counters = RawArray::<u64>::open(counters)?;
    let mut received = 0;
    loop {
        match q.get() {
            Ok(_) => {
                received += 1;
                counters.set(PRODUCERS + id, received)?;
            }
            Err(GetError::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn spawn(role: &str, q: &ObjectHandle, counters: &ObjectHandle) -> anyhow::Result<Child> {
    let arg = ipc_core::codec::encode(&(role, q, counters))?;
    let hex: String = arg.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Command::new(std::env::current_exe()?)
        .env(ROLE, hex)
        .spawn()?)
}

fn run_child(hex: &str) -> anyhow::Result<()> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()?;
    let (role, q, counters): (String, ObjectHandle, ObjectHandle) =
        ipc_core::codec::decode(&bytes)?;
    let (kind, id) = role
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("bad role"))?;
    let id: usize = id.parse()?;
    match kind {
        "producer" => producer(&q, &counters, id),
        "consumer" => consumer(&q, &counters, id),
        _ => anyhow::bail!("unknown role {kind}"),
    }
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    if let Ok(hex) = std::env::var(ROLE) {
        return run_child(&hex);
    }
    let mut q = Queue::<u64>::new(64)?;
    let counters = RawArray::<u64>::new(COUNTERS)?;
    let (qh, ch) = (q.handle(), counters.handle());
    let mut producers = (0..PRODUCERS)
        .map(|i| spawn(&format!("producer:{i}"), &qh, &ch))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut consumers = (0..CONSUMERS)
        .map(|i| spawn(&format!("consumer:{i}"), &qh, &ch))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Once every producer has started putting, this process stops counting as one: the
    // consumers then see `Disconnected` when the producers are done (or dead).
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..PRODUCERS).any(|i| counters.get(i) == Some(0)) {
        anyhow::ensure!(Instant::now() < deadline, "producers did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    q.close();

    // Kill the first producer midway through the others' work.
    while counters.get(1).unwrap_or(0) < PER_PRODUCER / 2 {
        anyhow::ensure!(Instant::now() < deadline, "producers stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    producers[0].kill()?;
    producers[0].wait()?;
    for p in &mut producers[1..] {
        anyhow::ensure!(p.wait()?.success(), "a producer failed");
    }
    for c in &mut consumers {
        anyhow::ensure!(c.wait()?.success(), "a consumer failed");
    }

    let all = counters.to_vec();
    let sent: u64 = all[..PRODUCERS].iter().sum();
    let received: u64 = all[PRODUCERS..].iter().sum();
    let lost = sent.saturating_sub(received);
    println!("sent {sent}, received {received}, lost {lost}");
    anyhow::ensure!(
        lost <= 1 && received <= sent,
        "lost more than the message in flight"
    );
    Ok(())
}
