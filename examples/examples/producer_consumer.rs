//! Three producer processes and two consumer processes share one `Queue`; one producer is
//! SIGKILLed midway. The queue keeps working for everyone else, and at most the one message
//! that producer was writing is lost.
//!
//! Each producer counts the puts it *starts* in a shared `RawArray` (before each `put`), and
//! each consumer counts what it receives; so `sent - received` is exactly what was lost.

use std::time::{Duration, Instant};

use ipc_core::{Process, RawArray};
use ipc_queue::{GetError, Queue};

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 2;
const PER_PRODUCER: u64 = 200_000;
/// Counters: started puts per producer, then received messages per consumer.
const COUNTERS: usize = PRODUCERS + CONSUMERS;

fn producer((mut q, counters, id): (Queue<u64>, RawArray<u64>, usize)) -> Result<(), String> {
    // The victim puts forever; the others a fixed number.
    let n = if id == 0 { u64::MAX } else { PER_PRODUCER };
    for i in 0..n {
        counters.set(id, i + 1).map_err(|e| e.to_string())?;
        q.put(((id as u64) << 40) | i).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn consumer((mut q, counters, id): (Queue<u64>, RawArray<u64>, usize)) -> Result<(), String> {
    let mut received = 0;
    loop {
        match q.get() {
            Ok(_) => {
                received += 1;
                counters
                    .set(PRODUCERS + id, received)
                    .map_err(|e| e.to_string())?;
            }
            Err(GetError::Disconnected) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let q = Queue::<u64>::new(64)?;
    let counters = RawArray::<u64>::new(COUNTERS)?;
    // Each child gets its own handle of the queue, in the role it plays, and of the counters.
    let producers = (0..PRODUCERS)
        .map(|i| {
            let args = (
                Queue::<u64>::open_producer(&q.handle())?,
                counters.try_clone()?,
                i,
            );
            Ok(Process::new(producer, args))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let consumers = (0..CONSUMERS)
        .map(|i| {
            let args = (
                Queue::<u64>::open_consumer(&q.handle())?,
                counters.try_clone()?,
                i,
            );
            Ok(Process::new(consumer, args))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for p in producers.iter().chain(&consumers) {
        p.start()?;
    }
    // This process neither puts nor gets: it lets go of its handle, so the consumers see
    // `Disconnected` once the producers are done (or dead), and a producer would see it if
    // every consumer were gone.
    drop(q);

    // Kill the first producer midway through the others' work.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.get(1).unwrap_or(0) < PER_PRODUCER / 2 {
        anyhow::ensure!(Instant::now() < deadline, "producers stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    producers[0].kill()?;
    let _ = producers[0].join();
    for p in producers[1..].iter().chain(&consumers) {
        p.join()?.map_err(anyhow::Error::msg)?;
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
