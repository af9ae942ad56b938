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
//! - `rtt@SIZE` (µs) and `stream@SIZE` (GB/s): the payload sweep through `bytes_channel`s.

use crate::message::MIB;
use crate::scenario::{Scenario, Unit};
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("ipc_channel.pingpong_rtt", Unit::Us, imp::pingpong_rtt),
        Scenario::new("ipc_channel.u64", Unit::MsgsPerSec, imp::stream_u64),
        Scenario::new("ipc_channel.1mib_bytes", Unit::GbPerSec, |cfg| {
            imp::stream_bytes(cfg.budget(), MIB)
        }),
        Scenario::new("ipc_channel.1mib_shmem", Unit::GbPerSec, imp::stream_shmem_1mib),
    ];
    v.extend(sweep::payload("ipc_channel.rtt", Unit::Us, |cfg, size| {
        imp::rtt_bytes(cfg.sweep_budget(), size)
    }));
    v.extend(sweep::payload("ipc_channel.stream", Unit::GbPerSec, |cfg, size| {
        imp::stream_bytes(cfg.sweep_budget(), size)
    }));
    v
}

#[cfg(not(feature = "peers"))]
mod imp {
    use std::time::Duration;

    use crate::scenario::{Config, Repeat, without_peers};

    pub(super) fn pingpong_rtt(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn stream_u64(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn stream_shmem_1mib(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn rtt_bytes(_: Duration, _: usize) -> Repeat {
        without_peers()
    }
    pub(super) fn stream_bytes(_: Duration, _: usize) -> Repeat {
        without_peers()
    }
}

#[cfg(feature = "peers")]
mod imp {
    use std::time::Duration;

    use anyhow::{Context, ensure};
    use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcReceiver, IpcSender, IpcSharedMemory};

    use crate::harness::{Echo, Peer, Recv, RoundTrip, Sink, Source, round_trips, stream};
    use crate::message::{Inbox, MIB, Outbox, Pattern};
    use crate::scenario::{Config, Repeat};

    fn ipc_err(e: impl std::fmt::Debug) -> anyhow::Error {
        anyhow::anyhow!("ipc-channel: {e:?}")
    }

    const STOP: u64 = u64::MAX;

    /// One side of the `u64` ping-pong.
    struct Counter {
        tx: IpcSender<u64>,
        rx: IpcReceiver<u64>,
    }

    impl RoundTrip for Counter {
        fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
            let serve = 2 * i + 1;
            self.tx.send(serve).map_err(ipc_err)?;
            let reply = self.rx.recv().map_err(ipc_err)?;
            ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
            Ok(())
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            self.tx.send(STOP).map_err(ipc_err)
        }
    }

    impl Echo for Counter {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            match self.rx.recv().map_err(ipc_err)? {
                STOP => Ok(false),
                v => {
                    ensure!(v == 2 * i + 1, "got {v}, expected {}", 2 * i + 1);
                    self.tx.send(v + 1).map_err(ipc_err)?;
                    Ok(true)
                }
            }
        }
    }

    pub(super) fn pingpong_rtt(cfg: &Config) -> Repeat {
        let (to_child, child_rx) = ipc::channel::<u64>().context("channel")?;
        let (child_tx, from_child) = ipc::channel::<u64>().context("channel")?;
        let mut parent = Counter { tx: to_child, rx: from_child };
        Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
            Ok(Counter { tx: child_tx, rx: child_rx })
        })?
        .into())
    }

    /// The sender of 1, 2, 3, …; 0 marks the end.
    struct Values(IpcSender<u64>);

    impl Source for Values {
        fn send(&mut self, i: u64) -> anyhow::Result<u64> {
            self.0.send(i + 1).map_err(ipc_err)?;
            Ok(1)
        }
        fn finish(self, _: u64) -> anyhow::Result<()> {
            self.0.send(0).map_err(ipc_err)
        }
    }

    /// The receiver of 1, 2, 3, …
    struct ValuesRx(IpcReceiver<u64>);

    impl Sink for ValuesRx {
        fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
            match self.0.recv().map_err(ipc_err)? {
                0 => Ok(Recv::End),
                v => {
                    ensure!(v == next + 1, "got {v}, expected {}", next + 1);
                    Ok(Recv::Got(1))
                }
            }
        }
    }

    pub(super) fn stream_u64(cfg: &Config) -> Repeat {
        let (tx, rx) = ipc::channel::<u64>().context("channel")?;
        let mut sink = ValuesRx(rx);
        Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, move || Ok(Values(tx)))?.into())
    }

    /// The end marker of a byte stream (shorter than any message).
    const END: &[u8] = b"end";

    /// The sender of `size`-byte messages through a `bytes_channel`.
    struct Bytes(IpcBytesSender, Outbox);

    impl Source for Bytes {
        fn send(&mut self, i: u64) -> anyhow::Result<u64> {
            self.0.send(self.1.message(i)).context("send")?;
            Ok(1)
        }
        fn finish(self, _: u64) -> anyhow::Result<()> {
            self.0.send(END).context("send")
        }
    }

    /// The receiver: each message arrives as a fresh `Vec`, checked; the last one is kept.
    struct Vecs {
        rx: IpcBytesReceiver,
        pattern: Pattern,
        last: Vec<u8>,
    }

    impl Sink for Vecs {
        fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
            let msg = self.rx.recv().map_err(ipc_err)?;
            if msg == END {
                return Ok(Recv::End);
            }
            self.pattern.check(&msg, next)?;
            self.last = msg;
            Ok(Recv::Got(1))
        }
        fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
            ensure!(received > 0, "nothing arrived");
            self.pattern.check_fully(&self.last, received - 1)
        }
    }

    pub(super) fn stream_bytes(budget: Duration, size: usize) -> Repeat {
        let (tx, rx) = ipc::bytes_channel().context("bytes_channel")?;
        let pattern = Pattern::new(size);
        let mut sink = Vecs { rx, pattern, last: Vec::new() };
        Ok(stream(Peer::Process, budget, size as u64, &mut sink, move || {
            Ok(Bytes(tx, Outbox::new(size)))
        })?
        .into())
    }

    /// Either side of the sized ping-pong through two `bytes_channel`s.
    struct Bounce {
        tx: IpcBytesSender,
        rx: IpcBytesReceiver,
        out: Outbox,
        pattern: Pattern,
    }

    impl RoundTrip for Bounce {
        fn round(&mut self, i: u64, last: bool) -> anyhow::Result<()> {
            self.tx.send(self.out.message(i)).context("send")?;
            let reply = self.rx.recv().map_err(ipc_err)?;
            if last {
                self.pattern.check_fully(&reply, i)
            } else {
                self.pattern.check(&reply, i)
            }
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            self.tx.send(self.out.message(STOP)).context("send")
        }
    }

    impl Echo for Bounce {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            let msg = self.rx.recv().map_err(ipc_err)?;
            if Pattern::index(&msg) == Some(STOP) {
                return Ok(false);
            }
            self.pattern.check(&msg, i)?;
            self.tx.send(&msg).context("send")?;
            Ok(true)
        }
    }

    pub(super) fn rtt_bytes(budget: Duration, size: usize) -> Repeat {
        let (to_child, child_rx) = ipc::bytes_channel().context("bytes_channel")?;
        let (child_tx, from_child) = ipc::bytes_channel().context("bytes_channel")?;
        let bounce = |tx, rx| Bounce {
            tx,
            rx,
            out: Outbox::new(size),
            pattern: Pattern::new(size),
        };
        let mut parent = bounce(to_child, from_child);
        Ok(round_trips(Peer::Process, budget, &mut parent, move || {
            Ok(bounce(child_tx, child_rx))
        })?
        .into())
    }

    /// Each message in a new `IpcSharedMemory`; `None` marks the end.
    struct Shmem(IpcSender<Option<IpcSharedMemory>>, Outbox);

    impl Source for Shmem {
        fn send(&mut self, i: u64) -> anyhow::Result<u64> {
            let shm = IpcSharedMemory::from_bytes(self.1.message(i));
            self.0.send(Some(shm)).map_err(ipc_err)?;
            Ok(1)
        }
        fn finish(self, _: u64) -> anyhow::Result<()> {
            self.0.send(None).map_err(ipc_err)
        }
    }

    /// Each shared memory mapped and copied out into the receiver's own buffer.
    struct Mapped(IpcReceiver<Option<IpcSharedMemory>>, Inbox);

    impl Sink for Mapped {
        fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
            let Some(shm) = self.0.recv().map_err(ipc_err)? else {
                return Ok(Recv::End);
            };
            ensure!(shm.len() == MIB, "a shared memory of {} bytes", shm.len());
            self.1.buf().copy_from_slice(&shm);
            self.1.check(next)?;
            Ok(Recv::Got(1))
        }
        fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
            self.1.check_last(received)
        }
    }

    pub(super) fn stream_shmem_1mib(cfg: &Config) -> Repeat {
        let (tx, rx) = ipc::channel::<Option<IpcSharedMemory>>().context("channel")?;
        let mut sink = Mapped(rx, Inbox::new(MIB));
        Ok(stream(Peer::Process, cfg.budget(), MIB as u64, &mut sink, move || {
            Ok(Shmem(tx, Outbox::new(MIB)))
        })?
        .into())
    }
}
