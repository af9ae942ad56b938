//! `ours.*` scenarios of ipc-queue, each measured as its `limit.*` counterpart is (a forked
//! peer that opens its own end, a warm-up, a start handshake, then the time budget; nothing is
//! created, forked or touched for the first time inside the window), and every message checked.
//!
//! - `ours.ring_u64` (msgs/s): `RingBuffer<u64>`, one `push_blocking` and one `pop_blocking`
//!   per message, as users call it; compare with `limit.spsc_u64` (index published per message).
//! - `ours.ring_u64_batch` (msgs/s): the same ring through `push_slice`/`pop_slice` of up to
//!   256; compare with `limit.spsc_u64_batch` (index published per batch of 256).
//! - `ours.queue_u64` (msgs/s): `Queue<u64>`, `put` and `get`, one producer, one consumer.
//! - `ours.queue_serde_small` (msgs/s): `Queue<Small, Serde>` of a small struct with a string.
//! - `ours.pipe_rtt` (ns): a `u64` over a `pipe()` `Connection` and back, spinning receivers
//!   (the default spin); `ours.pipe_rtt_sleeping` (µs) with no spin, so both sides sleep.
//! - `ours.queue_rtt` (µs): a `u64` over one `Queue<u64>` and back over another, `put` and
//!   `get` with the default spin on both sides; `ours.async_queue_rtt` (in `awaits.rs`) is the
//!   same round trip with both sides awaiting under tokio.
//! - `ours.queue_1mib` (GB/s): `Queue<[u64; 131072]>` of 4 slots, `put_from` and `get_into`:
//!   one copy in, one copy out; compare with `limit.ring_1mib`.
//! - `ours.loan_1mib` (GB/s): the same queue of 8 slots through `loan` (the message written
//!   into the slot) and `get_sample` (checked in place); compare with `limit.ring_1mib_inplace`.
//! - `ours.pipe_1mib` (GB/s): 1 MiB `send_bytes`/`recv_bytes_into` through a 4 MiB pipe.
//! - `ours.queue_mpmc@Np`: `Queue<u64>` with N producer and N consumer processes
//!   (N = 1, 2, 4, 8, 16); msgs/s delivered.

use anyhow::{bail, ensure};
use ipc_core::ObjectHandle;
use ipc_queue::{
    Connection, Consumer, GetError, Producer, Queue, RecvError, RingBuffer, Serde, pipe,
    pipe_with_capacity,
};
use serde::{Deserialize, Serialize};

use super::limit::BATCH;
use crate::harness::{
    Echo, Member, Peer, Recv, RoundTrip, Sink, Source, Team, round_trips, stream,
};
use crate::message::{Inbox, MIB, Outbox};
use crate::scenario::{Config, Quantity, Repeat, Scenario, Unit};
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("ours.ring_u64", Unit::MsgsPerSec, |cfg| ring_u64(cfg, false)),
        Scenario::new("ours.ring_u64_batch", Unit::MsgsPerSec, |cfg| {
            ring_u64(cfg, true)
        }),
        Scenario::new("ours.queue_u64", Unit::MsgsPerSec, queue_u64),
        Scenario::new("ours.queue_serde_small", Unit::MsgsPerSec, queue_serde_small),
        Scenario::new("ours.pipe_rtt", Unit::Ns, |cfg| pipe_rtt(cfg, None)),
        Scenario::new("ours.pipe_rtt_sleeping", Unit::Us, |cfg| {
            pipe_rtt(cfg, Some(std::time::Duration::ZERO))
        }),
        Scenario::new("ours.queue_rtt", Unit::Us, |cfg| {
            super::awaits::queue_rtt(cfg, false)
        }),
        Scenario::new("ours.queue_1mib", Unit::GbPerSec, queue_1mib),
        Scenario::new("ours.loan_1mib", Unit::GbPerSec, loan_1mib),
        Scenario::new("ours.pipe_1mib", Unit::GbPerSec, pipe_1mib),
    ];
    v.extend(sweep::processes(
        "ours.queue_mpmc",
        Unit::MsgsPerSec,
        &[1, 2, 4, 8, 16],
        &[1, 2, 4, 8, 16],
        queue_mpmc,
    ));
    v
}

/// The ring's and the queue's capacity, as the limit's.
const CAP: usize = 4096;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The producing end of the ring, one `push_blocking` per message.
struct RingTx(Producer<u64>);

impl Source for RingTx {
    /// Inlined into the harness loop, as a user's loop inlines `push_blocking` (and as the
    /// limit's ends are).
    #[inline(always)]
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        self.0.push_blocking(i + 1).map_err(err)?;
        Ok(1)
    }

    /// Drops the producer: the consumer's `pop_blocking` reports the end once drained.
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The consuming end of the ring, one `pop_blocking` per message.
struct RingRx(Consumer<u64>);

impl Sink for RingRx {
    /// Inlined, as above.
    #[inline(always)]
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.0.pop_blocking() {
            Ok(v) => {
                ensure!(v == next + 1, "got {v}, expected {}", next + 1);
                Ok(Recv::Got(1))
            }
            Err(GetError::Disconnected) => Ok(Recv::End),
            Err(e) => Err(err(e)),
        }
    }
}

/// The producing end of the ring, one `push_slice` of up to [`BATCH`] per call.
struct RingSliceTx {
    tx: Producer<u64>,
    batch: [u64; BATCH],
}

impl Source for RingSliceTx {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        for (k, b) in self.batch.iter_mut().enumerate() {
            *b = i + k as u64 + 1;
        }
        Ok(self.tx.push_slice(&self.batch).map_err(err)? as u64)
    }

    /// Drops the producer: the consumer's `pop_slice` reports the end once drained.
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The consuming end of the ring, one `pop_slice` of up to [`BATCH`] per call.
struct RingSliceRx {
    rx: Consumer<u64>,
    batch: [u64; BATCH],
}

impl Sink for RingSliceRx {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        let n = self.rx.pop_slice(&mut self.batch).map_err(err)?;
        for (k, &v) in self.batch[..n].iter().enumerate() {
            let want = next + k as u64 + 1;
            ensure!(v == want, "got {v}, expected {want}");
        }
        Ok(if n == 0 { Recv::Idle } else { Recv::Got(n as u64) })
    }
}

/// `ours.ring_u64` and `ours.ring_u64_batch`: the child pushes 1, 2, 3, …, the parent pops
/// and checks each value. Each form has its own ends, small enough to inline into the harness
/// loop as the limit's are.
fn ring_u64(cfg: &Config, batched: bool) -> Repeat {
    let (tx, rx) = RingBuffer::<u64>::new(CAP)?;
    let handle = tx.handle();
    // The child opens its own producer; the parent pops only after it has (the handshake).
    drop(tx);
    let q = if batched {
        let mut sink = RingSliceRx {
            rx,
            batch: [0; BATCH],
        };
        stream(Peer::Process, cfg.budget(), 1, &mut sink, move || {
            Ok(RingSliceTx {
                tx: Producer::open(&handle)?,
                batch: [0; BATCH],
            })
        })?
    } else {
        let mut sink = RingRx(rx);
        stream(Peer::Process, cfg.budget(), 1, &mut sink, move || {
            Ok(RingTx(Producer::open(&handle)?))
        })?
    };
    Ok(q.into())
}

/// A producer's end of a queue; its drop (or exit) disconnects the consumer.
struct Put<Q>(Q);

/// The consumer's end of a queue, checking each message.
struct Get<Q>(Q);

impl Source for Put<Queue<u64>> {
    /// Inlined into the harness loop, as the limit's ends are.
    #[inline(always)]
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        self.0.put(i + 1).map_err(err)?;
        Ok(1)
    }
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Sink for Get<Queue<u64>> {
    /// Inlined, as above.
    #[inline(always)]
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.0.get() {
            Ok(v) => {
                ensure!(v == next + 1, "got {v}, expected {}", next + 1);
                Ok(Recv::Got(1))
            }
            Err(GetError::Disconnected) => Ok(Recv::End),
            Err(e) => Err(err(e)),
        }
    }
}

fn queue_u64(cfg: &Config) -> Repeat {
    let mut q = Queue::<u64>::new(CAP)?;
    let handle = q.handle();
    // This handle only gets: the queue disconnects when the child's producer drops.
    q.close();
    let mut sink = Get(q);
    Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, move || {
        Ok(Put(Queue::<u64>::open_producer(&handle)?))
    })?
    .into())
}

/// A small message such as a task description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Small {
    id: u64,
    name: String,
    values: [f32; 4],
}

type SmallQueue = Queue<Small, Serde>;

impl Source for Put<SmallQueue> {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        let m = Small {
            id: i,
            name: "task".into(),
            values: [1.0, 2.0, 3.0, i as f32],
        };
        self.0.put(m).map_err(err)?;
        Ok(1)
    }
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Sink for Get<SmallQueue> {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.0.get() {
            Ok(m) => {
                ensure!(m.id == next && m.name == "task", "message {next} reads {m:?}");
                Ok(Recv::Got(1))
            }
            Err(GetError::Disconnected) => Ok(Recv::End),
            Err(e) => Err(err(e)),
        }
    }
}

fn queue_serde_small(cfg: &Config) -> Repeat {
    let mut q = SmallQueue::new(CAP)?;
    let handle = q.handle();
    q.close();
    let mut sink = Get(q);
    Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, move || {
        Ok(Put(SmallQueue::open_producer(&handle)?))
    })?
    .into())
}

/// Either end of the `u64` ping-pong over a `pipe()`: the parent sends `i`, the child answers
/// `i + 1`; `u64::MAX` stops the child.
struct PingPong(Connection);

const STOP: u64 = u64::MAX;

impl PingPong {
    fn recv(&mut self) -> anyhow::Result<u64> {
        let mut buf = [0u8; 8];
        let n = self.0.recv_bytes_into(&mut buf).map_err(err)?;
        ensure!(n == 8, "a message of {n} bytes");
        Ok(u64::from_le_bytes(buf))
    }

    fn send(&mut self, v: u64) -> anyhow::Result<()> {
        self.0.send_bytes(&v.to_le_bytes()).map_err(err)
    }
}

impl RoundTrip for PingPong {
    fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
        self.send(i)?;
        let reply = self.recv()?;
        ensure!(reply == i + 1, "got {reply}, expected {}", i + 1);
        Ok(())
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        self.send(STOP)
    }
}

impl Echo for PingPong {
    fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
        match self.recv()? {
            STOP => Ok(false),
            v => {
                ensure!(v == i, "got {v}, expected {i}");
                self.send(v + 1)?;
                Ok(true)
            }
        }
    }
}

/// `ours.pipe_rtt` (the default spin) and `ours.pipe_rtt_sleeping` (`spin` zero).
fn pipe_rtt(cfg: &Config, spin: Option<std::time::Duration>) -> Repeat {
    let (mut a, b) = pipe()?;
    let handle = b.handle();
    drop(b);
    if let Some(s) = spin {
        a.set_spin(s);
    }
    let mut parent = PingPong(a);
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
        let mut b = Connection::open(&handle)?;
        if let Some(s) = spin {
            b.set_spin(s);
        }
        Ok(PingPong(b))
    })?
    .into())
}

/// A 1 MiB message as the queue's element type.
type Mib = [u64; MIB / 8];

/// `put_from` of each message from the producer's own buffer.
struct PutFrom(Queue<Mib>, Outbox);

impl Source for PutFrom {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        self.0.put_from(self.1.message_as::<Mib>(i)).map_err(err)?;
        Ok(1)
    }
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `get_into` the consumer's own buffer, then checked.
struct GetInto(Queue<Mib>, Inbox);

impl Sink for GetInto {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.0.get_into(self.1.buf_as::<Mib>()) {
            Ok(()) => self.1.check(next).map(|()| Recv::Got(1)),
            Err(GetError::Disconnected) => Ok(Recv::End),
            Err(e) => Err(err(e)),
        }
    }
    fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
        self.1.check_last(received)
    }
}

fn queue_1mib(cfg: &Config) -> Repeat {
    let mut q = Queue::<Mib>::new(4)?;
    let handle = q.handle();
    q.close();
    let mut sink = GetInto(q, Inbox::new(MIB));
    Ok(stream(Peer::Process, cfg.budget(), MIB as u64, &mut sink, move || {
        Ok(PutFrom(Queue::<Mib>::open_producer(&handle)?, Outbox::new(MIB)))
    })?
    .into())
}

/// A 1 MiB message of bytes, for loans.
type MibBytes = [u8; MIB];

/// Each message written into a loaned slot.
struct Lend(Queue<MibBytes>, Outbox);

impl Source for Lend {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        let mut loan = self.0.loan().map_err(err)?;
        loan.as_bytes_mut().copy_from_slice(self.1.message(i));
        loan.commit();
        Ok(1)
    }
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Each message checked in its slot (completely, every 1024th), nothing copied out.
struct Borrow(Queue<MibBytes>, Inbox);

impl Sink for Borrow {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.0.get_sample() {
            Ok(sample) => {
                let pattern = self.1.pattern();
                if next % 1024 == 0 {
                    pattern.check_fully(sample.as_bytes(), next)?;
                } else {
                    pattern.check(sample.as_bytes(), next)?;
                }
                Ok(Recv::Got(1))
            }
            Err(GetError::Disconnected) => Ok(Recv::End),
            Err(e) => Err(err(e)),
        }
    }
}

fn loan_1mib(cfg: &Config) -> Repeat {
    let mut q = Queue::<MibBytes>::new(8)?;
    let handle = q.handle();
    q.close();
    let mut sink = Borrow(q, Inbox::new(MIB));
    Ok(stream(Peer::Process, cfg.budget(), MIB as u64, &mut sink, move || {
        Ok(Lend(Queue::<MibBytes>::open_producer(&handle)?, Outbox::new(MIB)))
    })?
    .into())
}

/// 1 MiB `send_bytes` from the producer's own buffer.
struct SendBytes(Connection, Outbox);

impl Source for SendBytes {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        self.0.send_bytes(self.1.message(i)).map_err(err)?;
        Ok(1)
    }
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `recv_bytes_into` the consumer's own buffer, then checked.
struct RecvBytes(Connection, Inbox);

impl Sink for RecvBytes {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        match self.0.recv_bytes_into(self.1.buf()) {
            Ok(n) => {
                ensure!(n == MIB, "a message of {n} bytes");
                self.1.check(next).map(|()| Recv::Got(1))
            }
            Err(RecvError::Disconnected) => Ok(Recv::End),
            Err(e) => Err(err(e)),
        }
    }
    fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
        self.1.check_last(received)
    }
}

fn pipe_1mib(cfg: &Config) -> Repeat {
    let (a, b) = pipe_with_capacity(&ipc_core::Placement::Anonymous, 4 * MIB, false)?;
    let handle = b.handle();
    drop(b);
    let mut sink = RecvBytes(a, Inbox::new(MIB));
    Ok(stream(Peer::Process, cfg.budget(), MIB as u64, &mut sink, move || {
        Ok(SendBytes(Connection::open(&handle)?, Outbox::new(MIB)))
    })?
    .into())
}

/// A member of the MPMC team: a producer putting `rank << 40 | seq`, or a consumer summing
/// what it gets. Both report (messages, sum of values).
enum Mpmc {
    Producer { q: Queue<u64>, rank: u64, sent: u64, sum: u64 },
    Consumer { q: Queue<u64>, got: u64, sum: u64 },
}

impl Mpmc {
    fn open(handle: &ObjectHandle, rank: usize, producers: usize) -> anyhow::Result<Self> {
        Ok(if rank < producers {
            Mpmc::Producer {
                q: Queue::<u64>::open_producer(handle)?,
                rank: rank as u64,
                sent: 0,
                sum: 0,
            }
        } else {
            Mpmc::Consumer {
                q: Queue::<u64>::open_consumer(handle)?,
                got: 0,
                sum: 0,
            }
        })
    }
}

impl Member for Mpmc {
    fn step(&mut self) -> anyhow::Result<Option<u64>> {
        match self {
            Mpmc::Producer { q, rank, sent, sum } => {
                let v = *rank << 40 | *sent;
                q.put(v).map_err(err)?;
                *sent += 1;
                *sum = sum.wrapping_add(v);
                Ok(Some(1))
            }
            Mpmc::Consumer { q, got, sum } => match q.get() {
                Ok(v) => {
                    *got += 1;
                    *sum = sum.wrapping_add(v);
                    Ok(Some(1))
                }
                Err(GetError::Disconnected) => Ok(None),
                Err(e) => Err(err(e)),
            },
        }
    }

    fn finish(mut self) -> anyhow::Result<Vec<u64>> {
        match self {
            Mpmc::Producer { sent, sum, .. } => Ok(vec![sent, sum]),
            Mpmc::Consumer { .. } => {
                // Drain: the queue disconnects once every producer has dropped its end.
                while self.step()?.is_some() {}
                let Mpmc::Consumer { got, sum, .. } = self else {
                    bail!("a consumer turned producer")
                };
                Ok(vec![got, sum])
            }
        }
    }
}

/// `ours.queue_mpmc@Np`: `n` producers and `n` consumers of one `Queue<u64>`; the figure is the
/// messages consumed per second, the check that every message sent was consumed once.
fn queue_mpmc(cfg: &Config, n: usize) -> Repeat {
    let q = Queue::<u64>::new(CAP)?;
    let handle = q.handle();
    let team = Team::fork(2 * n, |rank| Mpmc::open(&handle, rank, n))?;
    // Every member has its own end now: without ours, the consumers see the end of the
    // stream once the producers drop theirs.
    drop(q);
    let report = team.measure(cfg.sweep_budget())?;
    let total = |ranks: std::ops::Range<usize>| -> (u64, u64) {
        report.members[ranks].iter().fold((0, 0), |(c, s), m| {
            (c + m.words[0], s.wrapping_add(m.words[1]))
        })
    };
    let (sent, sent_sum) = total(0..n);
    let (got, got_sum) = total(n..2 * n);
    ensure!(sent == got, "{sent} messages sent, {got} consumed");
    ensure!(sent_sum == got_sum, "the consumed messages differ from those sent");
    let consumed = report.in_window(n..2 * n);
    ensure!(consumed > 0, "nothing was consumed inside the window");
    Ok(Quantity::PerSecond(consumed as f64 / report.secs).into())
}
