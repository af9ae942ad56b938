//! `crossbeam.*`: `crossbeam-channel` between two threads of one process, the in-process
//! reference every cross-process figure can be held against (no process boundary, no shared
//! memory setup, the same caches). The harness runs the peer as a thread
//! ([`Peer::Thread`]), pinned to CPU `B` under `--pin A,B`.
//!
//! - `u64_threads` (msgs/s): a producer thread sends 1, 2, 3, … through a `bounded(4096)`
//!   channel; the main thread receives and checks each.
//! - `pingpong_rtt_threads` (µs): a `u64` counter through two `bounded(1)` channels and back
//!   (crossbeam spins briefly, then parks the thread).

use anyhow::{anyhow, ensure};
use crossbeam_channel::{Receiver, Sender, bounded};

use crate::harness::{Echo, Peer, Recv, RoundTrip, Sink, Source, WAIT_LIMIT, round_trips, stream};
use crate::scenario::{Config, Repeat, Scenario, Unit};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("crossbeam.u64_threads", Unit::MsgsPerSec, u64_threads),
        Scenario::new("crossbeam.pingpong_rtt_threads", Unit::Us, pingpong_rtt_threads),
    ]
}

/// One side of a channel pair.
struct Ends {
    tx: Sender<u64>,
    rx: Receiver<u64>,
}

impl Ends {
    fn take(&self) -> anyhow::Result<Option<u64>> {
        match self.rx.recv_timeout(WAIT_LIMIT) {
            Ok(v) => Ok(Some(v)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Ok(None),
            Err(e) => Err(anyhow!("no message: {e}")),
        }
    }

    fn put(&self, v: u64) -> anyhow::Result<()> {
        self.tx.send(v).map_err(|_| anyhow!("the other thread is gone"))
    }
}

const STOP: u64 = u64::MAX;

impl RoundTrip for Ends {
    fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
        let serve = 2 * i + 1;
        self.put(serve)?;
        let reply = self.take()?.ok_or_else(|| anyhow!("the echo thread is gone"))?;
        ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
        Ok(())
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        self.put(STOP)
    }
}

impl Echo for Ends {
    fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
        match self.take()? {
            Some(STOP) | None => Ok(false),
            Some(v) => {
                ensure!(v == 2 * i + 1, "got {v}, expected {}", 2 * i + 1);
                self.put(v + 1)?;
                Ok(true)
            }
        }
    }
}

impl Source for Ends {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        self.put(i + 1)?;
        Ok(1)
    }

    /// Drops the sender: the receiver's channel disconnects once drained.
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Sink for Ends {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.take()? {
            None => Ok(Recv::End),
            Some(v) => {
                ensure!(v == next + 1, "got {v}, expected {}", next + 1);
                Ok(Recv::Got(1))
            }
        }
    }
}

/// Two channels of `cap`: this thread's ends and the peer's.
fn channels(cap: usize) -> (Ends, Ends) {
    let (a_tx, b_rx) = bounded(cap);
    let (b_tx, a_rx) = bounded(cap);
    (Ends { tx: a_tx, rx: a_rx }, Ends { tx: b_tx, rx: b_rx })
}

fn u64_threads(cfg: &Config) -> Repeat {
    // The receiving channel disconnects once the peer's sender drops and it is drained.
    let (mut ours, theirs) = channels(4096);
    Ok(stream(Peer::Thread, cfg.budget(), 1, &mut ours, move || Ok(theirs))?.into())
}

fn pingpong_rtt_threads(cfg: &Config) -> Repeat {
    let (mut ours, theirs) = channels(1);
    Ok(round_trips(Peer::Thread, cfg.budget(), &mut ours, move || Ok(theirs))?.into())
}
