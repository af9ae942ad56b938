//! `crossbeam.*`: `crossbeam-channel` between two threads of one process, the in-process
//! reference every cross-process figure can be held against (no process boundary, no shared
//! memory setup, the same caches).
//!
//! - `u64_threads` (msgs/s): a producer thread sends 1, 2, 3, … through a `bounded(4096)`
//!   channel; the main thread receives and checks each.
//! - `pingpong_rtt_threads` (µs): a `u64` counter through two `bounded(1)` channels and back
//!   (crossbeam spins briefly, then parks the thread).
//!
//! Under `--pin A,B` the spawned thread pins itself to `B` (the main thread is already on `A`).

use std::time::Instant;

use anyhow::{anyhow, ensure};

use crate::{Config, Scenario};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "crossbeam.u64_threads",
            unit: "msgs/s",
            higher_is_better: true,
            run: u64_threads,
        },
        Scenario {
            name: "crossbeam.pingpong_rtt_threads",
            unit: "µs",
            higher_is_better: false,
            run: pingpong_rtt_threads,
        },
    ]
}

fn pin_spawned() -> anyhow::Result<()> {
    if let Some(cpu) = crate::pin::child_cpu() {
        crate::pin::pin_current(cpu).map_err(|e| anyhow!("--pin: {e}"))?;
    }
    Ok(())
}

fn u64_threads(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(4096);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let producer = std::thread::spawn(move || -> anyhow::Result<u64> {
        pin_spawned()?;
        let mut i = 0u64;
        while stop_rx.is_empty() {
            for _ in 0..256 {
                i += 1;
                tx.send(i).map_err(|_| anyhow!("the receiver is gone"))?;
            }
        }
        Ok(i)
    });
    let budget = cfg.budget();
    let t0 = Instant::now();
    let mut received = 0u64;
    let mut stopping = false;
    // The sender's end closes when the producer returns, which ends this loop.
    for v in rx.iter() {
        ensure!(v == received + 1, "got {v}, expected {}", received + 1);
        received += 1;
        if !stopping && received % 256 == 0 && t0.elapsed() >= budget {
            let _ = stop_tx.send(());
            stopping = true;
        }
    }
    let elapsed = t0.elapsed();
    let sent = producer
        .join()
        .map_err(|_| anyhow!("the producer panicked"))??;
    ensure!(sent == received, "sent {sent}, received {received}");
    Ok(Some(received as f64 / elapsed.as_secs_f64()))
}

fn pingpong_rtt_threads(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(1);
    let echo = std::thread::spawn(move || -> anyhow::Result<u64> {
        pin_spawned()?;
        let mut replies = 0u64;
        // Ends when the main thread drops its sender.
        for v in ping_rx.iter() {
            ensure!(
                v == 2 * replies + 1,
                "got {v}, expected {}",
                2 * replies + 1
            );
            pong_tx
                .send(v + 1)
                .map_err(|_| anyhow!("the main thread is gone"))?;
            replies += 1;
        }
        Ok(replies)
    });
    let budget = cfg.budget();
    let (mut rounds, mut warm) = (0u64, 0u64);
    let mut t0 = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        loop {
            let serve = 2 * rounds + 1;
            ping_tx
                .send(serve)
                .map_err(|_| anyhow!("the echo thread is gone"))?;
            let reply = pong_rx
                .recv_timeout(crate::WAIT_LIMIT)
                .map_err(|e| anyhow!("no reply: {e}"))?;
            ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
            rounds += 1;
            if warm == 0 && (rounds == 100 || t0.elapsed() >= budget / 10) {
                warm = rounds;
                t0 = Instant::now();
            }
            if warm > 0 && rounds % 16 == 0 && t0.elapsed() >= budget {
                return Ok(());
            }
        }
    })();
    let elapsed = t0.elapsed();
    drop(ping_tx);
    let replies = echo
        .join()
        .map_err(|_| anyhow!("the echo thread panicked"))??;
    result?;
    ensure!(
        replies == rounds,
        "the thread answered {replies} of {rounds}"
    );
    Ok(Some(elapsed.as_secs_f64() * 1e6 / (rounds - warm) as f64))
}
