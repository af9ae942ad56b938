//! `ipc_channel.*`: Servo's `ipc-channel` crate between two processes (built with
//! `--features peers`; without it these scenarios are skipped with that reason).
//!
//! On Linux an `ipc-channel` is a `SOCK_SEQPACKET` Unix socket pair; typed messages are
//! serialised with bincode, `bytes_channel` sends raw bytes, and `IpcSharedMemory` travels as a
//! memfd descriptor. The channels are made before the fork, so the child inherits its ends.
//!
//! - `pingpong_rtt` (µs): a `u64` counter over two `IpcSender<u64>` channels and back.
//! - `u64` (msgs/s): the child sends 1, 2, 3, … on one channel, the parent checks each.
//! - `1mib_bytes` (GB/s): 1 MiB messages through a `bytes_channel`, received into a fresh
//!   `Vec` (its API), checked.
//! - `1mib_shmem` (GB/s): the child wraps each 1 MiB message in a new
//!   `IpcSharedMemory::from_bytes` (a memfd, one copy in) and sends it; the parent maps it and
//!   copies it out into its own buffer, as the other `1mib` scenarios do.
//! - `rtt@SIZE` (µs) and `stream@SIZE` (GB/s): the payload sweep through a `bytes_channel`.

use crate::Scenario;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario {
            name: "ipc_channel.pingpong_rtt",
            unit: "µs",
            higher_is_better: false,
            run: imp::pingpong_rtt,
        },
        Scenario {
            name: "ipc_channel.u64",
            unit: "msgs/s",
            higher_is_better: true,
            run: imp::stream_u64,
        },
        Scenario {
            name: "ipc_channel.1mib_bytes",
            unit: "GB/s",
            higher_is_better: true,
            run: |cfg| imp::stream_bytes(cfg, super::limit::MIB),
        },
        Scenario {
            name: "ipc_channel.1mib_shmem",
            unit: "GB/s",
            higher_is_better: true,
            run: imp::stream_shmem_1mib,
        },
    ];
    v.extend(crate::sweep!(
        "ipc_channel.rtt",
        "µs",
        false,
        imp::rtt_bytes
    ));
    v.extend(crate::sweep!(
        "ipc_channel.stream",
        "GB/s",
        true,
        imp::stream_bytes
    ));
    v
}

#[cfg(not(feature = "peers"))]
mod imp {
    use crate::Config;

    type Figure = anyhow::Result<Option<f64>>;

    fn off() -> Figure {
        crate::skip("built without --features peers")
    }

    pub(super) fn pingpong_rtt(_: &Config) -> Figure {
        off()
    }
    pub(super) fn stream_u64(_: &Config) -> Figure {
        off()
    }
    pub(super) fn stream_shmem_1mib(_: &Config) -> Figure {
        off()
    }
    pub(super) fn rtt_bytes(_: &Config, _: usize) -> Figure {
        off()
    }
    pub(super) fn stream_bytes(_: &Config, _: usize) -> Figure {
        off()
    }
}

#[cfg(feature = "peers")]
mod imp {
    use std::time::Instant;

    use anyhow::{Context, ensure};
    use ipc_channel::ipc::{self, IpcSharedMemory};

    use crate::primitive::Ordering;
    use crate::scenarios::limit::MIB;
    use crate::shm::{LINE, SharedBlock};
    use crate::sweep::{self, Pattern};
    use crate::{Config, fork_child};

    type Figure = anyhow::Result<Option<f64>>;

    const STOP: u64 = u64::MAX;

    fn ipc_err(e: impl std::fmt::Debug) -> anyhow::Error {
        anyhow::anyhow!("ipc-channel: {e:?}")
    }

    pub(super) fn pingpong_rtt(cfg: &Config) -> Figure {
        let (to_child, child_rx) = ipc::channel::<u64>().context("channel")?;
        let (child_tx, from_child) = ipc::channel::<u64>().context("channel")?;
        let child = fork_child(move || {
            let mut replies = 0u64;
            loop {
                let v = child_rx.recv().map_err(ipc_err)?;
                if v == STOP {
                    child_tx.send(replies).map_err(ipc_err)?;
                    return Ok(());
                }
                ensure!(
                    v == 2 * replies + 1,
                    "got {v}, expected {}",
                    2 * replies + 1
                );
                child_tx.send(v + 1).map_err(ipc_err)?;
                replies += 1;
            }
        })?;
        let budget = cfg.budget();
        let (mut rounds, mut warm) = (0u64, 0u64);
        let mut t0 = Instant::now();
        loop {
            let serve = 2 * rounds + 1;
            to_child.send(serve).map_err(ipc_err)?;
            let reply = from_child.recv().map_err(ipc_err)?;
            ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
            rounds += 1;
            if warm == 0 && (rounds == 100 || t0.elapsed() >= budget / 10) {
                warm = rounds;
                t0 = Instant::now();
            }
            if warm > 0 && rounds % 16 == 0 && t0.elapsed() >= budget {
                break;
            }
        }
        let elapsed = t0.elapsed();
        to_child.send(STOP).map_err(ipc_err)?;
        let replies = from_child.recv().map_err(ipc_err)?;
        child.wait()?;
        ensure!(
            replies == rounds,
            "the child answered {replies} of {rounds}"
        );
        Ok(Some(elapsed.as_secs_f64() * 1e6 / (rounds - warm) as f64))
    }

    /// The child sends 1, 2, 3, … until the stop flag, then 0 as the end marker.
    pub(super) fn stream_u64(cfg: &Config) -> Figure {
        let block = SharedBlock::new(2 * LINE)?;
        let stop = block.u64_at(0)?;
        let sent = block.u64_at(LINE)?;
        let (tx, rx) = ipc::channel::<u64>().context("channel")?;
        let child = fork_child(move || {
            let mut i = 0u64;
            // ORDERING: Relaxed, a request flag; the values travel through the channel.
            while stop.load(Ordering::Relaxed) == 0 {
                i += 1;
                tx.send(i).map_err(ipc_err)?;
            }
            tx.send(0).map_err(ipc_err)?;
            // ORDERING: Relaxed; the parent reads it after waiting for this process.
            sent.store(i, Ordering::Relaxed);
            Ok(())
        })?;
        let budget = cfg.budget();
        let t0 = Instant::now();
        let mut received = 0u64;
        loop {
            let v = rx.recv().map_err(ipc_err)?;
            if v == 0 {
                break;
            }
            ensure!(v == received + 1, "got {v}, expected {}", received + 1);
            received += 1;
            if received % 256 == 0 && t0.elapsed() >= budget {
                // ORDERING: Relaxed, see the child's load.
                stop.store(1, Ordering::Relaxed);
            }
        }
        let elapsed = t0.elapsed();
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let sent = sent.load(Ordering::Relaxed);
        ensure!(
            sent == received,
            "the child sent {sent} values, {received} arrived"
        );
        ensure!(received > 0, "nothing was sent");
        Ok(Some(received as f64 / elapsed.as_secs_f64()))
    }

    /// Ping-pong of `size`-byte messages through two `bytes_channel`s: the child checks each
    /// message and sends it back; a message stamped `u64::MAX` stops it.
    pub(super) fn rtt_bytes(cfg: &Config, size: usize) -> Figure {
        let pattern = Pattern::new(size);
        let (to_child, child_rx) = ipc::bytes_channel().context("bytes_channel")?;
        let (child_tx, from_child) = ipc::bytes_channel().context("bytes_channel")?;
        let child = fork_child(|| {
            let mut replies = 0u64;
            loop {
                let msg = child_rx.recv().map_err(ipc_err)?;
                if Pattern::index(&msg) == Some(STOP) {
                    child_tx.send(&replies.to_le_bytes()).context("send")?;
                    return Ok(());
                }
                pattern.check(&msg, replies)?;
                child_tx.send(&msg).context("send")?;
                replies += 1;
            }
        })?;
        let budget = sweep::budget(cfg);
        let mut msg = pattern.reference().to_vec();
        let (mut rounds, mut warm) = (0u64, 0u64);
        let mut t0 = Instant::now();
        let mut last;
        loop {
            pattern.stamp(&mut msg, rounds);
            to_child.send(&msg).context("send")?;
            last = from_child.recv().map_err(ipc_err)?;
            pattern.check(&last, rounds)?;
            rounds += 1;
            if warm == 0 && (rounds == 20 || t0.elapsed() >= budget / 10) {
                warm = rounds;
                t0 = Instant::now();
            }
            if warm > 0 && t0.elapsed() >= budget {
                break;
            }
        }
        let elapsed = t0.elapsed();
        pattern.check_fully(&last, rounds - 1)?;
        pattern.stamp(&mut msg, STOP);
        to_child.send(&msg).context("send")?;
        let replies = from_child.recv().map_err(ipc_err)?;
        child.wait()?;
        ensure!(
            replies == rounds.to_le_bytes(),
            "the child's final count {replies:?} is not {rounds}"
        );
        Ok(Some(elapsed.as_secs_f64() * 1e6 / (rounds - warm) as f64))
    }

    /// The child streams `size`-byte messages through a `bytes_channel` until the stop flag,
    /// then an 8-byte end marker; the parent checks each.
    pub(super) fn stream_bytes(cfg: &Config, size: usize) -> Figure {
        let block = SharedBlock::new(2 * LINE)?;
        let stop = block.u64_at(0)?;
        let sent = block.u64_at(LINE)?;
        let pattern = Pattern::new(size);
        let (tx, rx) = ipc::bytes_channel().context("bytes_channel")?;
        let child = fork_child(|| {
            let mut msg = pattern.reference().to_vec();
            let mut i = 0u64;
            // ORDERING: Relaxed, a request flag; the messages travel through the channel.
            while stop.load(Ordering::Relaxed) == 0 {
                pattern.stamp(&mut msg, i);
                tx.send(&msg).context("send")?;
                i += 1;
            }
            tx.send(b"end").context("send")?;
            // ORDERING: Relaxed; the parent reads it after waiting for this process.
            sent.store(i, Ordering::Relaxed);
            Ok(())
        })?;
        let budget = if size == MIB && !cfg.quick {
            cfg.budget()
        } else {
            sweep::budget(cfg)
        };
        let t0 = Instant::now();
        let mut received = 0u64;
        let mut last = Vec::new();
        loop {
            let msg = rx.recv().map_err(ipc_err)?;
            if msg == b"end" {
                break;
            }
            pattern.check(&msg, received)?;
            last = msg;
            received += 1;
            if t0.elapsed() >= budget {
                // ORDERING: Relaxed, see the child's load.
                stop.store(1, Ordering::Relaxed);
            }
        }
        let elapsed = t0.elapsed();
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let sent = sent.load(Ordering::Relaxed);
        ensure!(
            sent == received,
            "the child sent {sent} messages, {received} arrived"
        );
        ensure!(received > 0, "nothing was sent");
        pattern.check_fully(&last, received - 1)?;
        Ok(Some(
            (received * size as u64) as f64 / elapsed.as_secs_f64() / 1e9,
        ))
    }

    /// 1 MiB messages as `IpcSharedMemory`, copied out by the parent.
    pub(super) fn stream_shmem_1mib(cfg: &Config) -> Figure {
        let block = SharedBlock::new(2 * LINE)?;
        let stop = block.u64_at(0)?;
        let sent = block.u64_at(LINE)?;
        let pattern = Pattern::new(MIB);
        let (tx, rx) = ipc::channel::<Option<IpcSharedMemory>>().context("channel")?;
        let child = fork_child(|| {
            let mut msg = pattern.reference().to_vec();
            let mut i = 0u64;
            // ORDERING: Relaxed, a request flag; the messages travel through the channel.
            while stop.load(Ordering::Relaxed) == 0 {
                pattern.stamp(&mut msg, i);
                tx.send(Some(IpcSharedMemory::from_bytes(&msg)))
                    .map_err(ipc_err)?;
                i += 1;
            }
            tx.send(None).map_err(ipc_err)?;
            // ORDERING: Relaxed; the parent reads it after waiting for this process.
            sent.store(i, Ordering::Relaxed);
            Ok(())
        })?;
        let budget = cfg.budget();
        let mut buf = vec![0u8; MIB];
        let t0 = Instant::now();
        let mut received = 0u64;
        while let Some(shm) = rx.recv().map_err(ipc_err)? {
            ensure!(shm.len() == MIB, "a shared memory of {} bytes", shm.len());
            buf.copy_from_slice(&shm);
            drop(shm);
            pattern.check(&buf, received)?;
            received += 1;
            if t0.elapsed() >= budget {
                // ORDERING: Relaxed, see the child's load.
                stop.store(1, Ordering::Relaxed);
            }
        }
        let elapsed = t0.elapsed();
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let sent = sent.load(Ordering::Relaxed);
        ensure!(
            sent == received,
            "the child sent {sent} messages, {received} arrived"
        );
        ensure!(received > 0, "nothing was sent");
        pattern.check_fully(&buf, received - 1)?;
        Ok(Some(
            (received * MIB as u64) as f64 / elapsed.as_secs_f64() / 1e9,
        ))
    }
}
