//! The async forms under tokio, beside their blocking forms and beside `tokio::sync`.
//!
//! - `ours.async_event_rtt` (µs): `ours.event_rtt` with both sides awaiting instead of blocking:
//!   each side runs a current-thread tokio runtime and awaits `Event::wait_async`; the peer is
//!   another process. A round trip is two wake-ups through `ipc_core::raw::reactor`: the setter's
//!   `FUTEX_WAKE` reaches the waiter thread, which wakes the task's waker, which unparks the
//!   runtime's thread (one more thread hop per direction than the blocking form).
//! - `ours.async_event_rtt_blocking_peer` (µs): the same, with the peer blocking in
//!   `Event::wait` (a service awaiting a worker that blocks).
//! - `ours.async_queue_rtt` (µs): `ours.queue_rtt` with both sides awaiting instead of
//!   blocking: a `u64` over one `Queue<u64>` (`put_async`) and back over another (`get_async`),
//!   each side in a current-thread tokio runtime (one `block_on` per round), the peer another
//!   process; each `get_async` spins for the queue's default spin on its first poll, as `get`
//!   does, before it registers with the reactor.
//! - `ours.async_pipe_rtt` (µs): `ours.pipe_rtt` with both sides awaiting instead of blocking:
//!   a `u64` over a `pipe()` `Connection` and back, each side a current-thread tokio runtime
//!   awaiting `send_bytes_async` / `recv_bytes_async`; the peer is another process.
//! - `tokio.mpsc_rtt` (µs): the same ping-pong between two tasks of one process on a
//!   two-worker tokio runtime, through two `tokio::sync::mpsc` channels of capacity 1: what an
//!   async round trip costs without a process boundary.

use anyhow::{Context as _, ensure};
use ipc_core::ObjectHandle;
use ipc_queue::Queue;
use ipc_sync::Event;

use crate::harness::{Echo, Peer, RoundTrip, WAIT_LIMIT, round_trips, timed};
use crate::primitive::{Ordering, SharedU64};
use crate::scenario::{Config, Quantity, Repeat, Scenario, Unit};
use crate::shm::SharedBlock;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("ours.async_event_rtt", Unit::Us, |cfg| {
            async_event_rtt(cfg, true)
        }),
        Scenario::new("ours.async_event_rtt_blocking_peer", Unit::Us, |cfg| {
            async_event_rtt(cfg, false)
        }),
        Scenario::new("ours.async_queue_rtt", Unit::Us, |cfg| queue_rtt(cfg, true)),
        Scenario::new("tokio.mpsc_rtt", Unit::Us, tokio_mpsc_rtt),
        Scenario::new("ours.async_pipe_rtt", Unit::Us, async_pipe_rtt),
    ]
}

const STOP: u64 = u64::MAX;

/// A current-thread tokio runtime, as a single-threaded service would run.
fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Either side of the event ping-pong, as in `ours.event_rtt`, awaiting under `rt` (or
/// blocking, where `rt` is `None`).
struct AsyncEvents<'a> {
    ping: Event,
    pong: Event,
    seq: &'a SharedU64,
    rt: Option<tokio::runtime::Runtime>,
}

impl AsyncEvents<'_> {
    fn wait(&self, e: &Event) -> anyhow::Result<()> {
        let set = match &self.rt {
            Some(rt) => rt.block_on(e.wait_timeout_async(WAIT_LIMIT)),
            None => e.wait_timeout(WAIT_LIMIT),
        };
        ensure!(set, "the event was not set within {WAIT_LIMIT:?}");
        Ok(())
    }
}

impl RoundTrip for AsyncEvents<'_> {
    fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
        // ORDERING: Relaxed; `set` publishes it and the wait acquires it.
        self.seq.store(i, Ordering::Relaxed);
        self.ping.set();
        self.wait(&self.pong)?;
        self.pong.clear();
        Ok(())
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        // ORDERING: Relaxed, as above.
        self.seq.store(STOP, Ordering::Relaxed);
        self.ping.set();
        Ok(())
    }
}

impl Echo for AsyncEvents<'_> {
    fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
        self.wait(&self.ping)?;
        self.ping.clear();
        // ORDERING: Relaxed, ordered after the wait (see `round`).
        match self.seq.load(Ordering::Relaxed) {
            STOP => Ok(false),
            v => {
                ensure!(v == i, "request {v}, expected {i}");
                self.pong.set();
                Ok(true)
            }
        }
    }
}

fn async_event_rtt(cfg: &Config, peer_awaits: bool) -> Repeat {
    let block = SharedBlock::new(8)?;
    let seq = block.u64_at(0)?;
    let (ping, pong) = (Event::new()?, Event::new()?);
    let (hp, hq) = (ping.handle(), pong.handle());
    let mut parent = AsyncEvents {
        ping,
        pong,
        seq,
        rt: Some(current_thread()?),
    };
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, || {
        // Made in the peer, after the fork: a runtime's threads do not survive one.
        Ok(AsyncEvents {
            ping: Event::open(&hp)?,
            pong: Event::open(&hq)?,
            seq,
            rt: if peer_awaits {
                Some(current_thread()?)
            } else {
                None
            },
        })
    })?
    .into())
}

/// Either side of the queue ping-pong: puts on `to`, gets from `from`, awaiting under `rt` (or
/// blocking, where `rt` is `None`).
struct QueuePingPong {
    to: Queue<u64>,
    from: Queue<u64>,
    rt: Option<tokio::runtime::Runtime>,
}

fn queue_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

impl QueuePingPong {
    /// Attaches to the two queues: a producer of `to`, a consumer of `from`.
    fn open(to: &ObjectHandle, from: &ObjectHandle, awaits: bool) -> anyhow::Result<Self> {
        Ok(Self {
            to: Queue::<u64>::open_producer(to)?,
            from: Queue::<u64>::open_consumer(from)?,
            rt: if awaits { Some(current_thread()?) } else { None },
        })
    }

    /// Puts `v`, then gets the answer.
    fn send_recv(&mut self, v: u64) -> anyhow::Result<u64> {
        let Self { to, from, rt } = self;
        match rt {
            Some(rt) => rt.block_on(async {
                to.put_timeout_async(v, WAIT_LIMIT).await.map_err(queue_err)?;
                from.get_timeout_async(WAIT_LIMIT).await.map_err(queue_err)
            }),
            None => {
                to.put_timeout(v, WAIT_LIMIT).map_err(queue_err)?;
                from.get_timeout(WAIT_LIMIT).map_err(queue_err)
            }
        }
    }

    /// Gets a request.
    fn recv(&mut self) -> anyhow::Result<u64> {
        let Self { from, rt, .. } = self;
        match rt {
            Some(rt) => rt
                .block_on(from.get_timeout_async(WAIT_LIMIT))
                .map_err(queue_err),
            None => from.get_timeout(WAIT_LIMIT).map_err(queue_err),
        }
    }

    /// Puts an answer (or the stop).
    fn send(&mut self, v: u64) -> anyhow::Result<()> {
        let Self { to, rt, .. } = self;
        match rt {
            Some(rt) => rt
                .block_on(to.put_timeout_async(v, WAIT_LIMIT))
                .map_err(queue_err),
            None => to.put_timeout(v, WAIT_LIMIT).map_err(queue_err),
        }
    }
}

impl RoundTrip for QueuePingPong {
    fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
        let reply = self.send_recv(i)?;
        ensure!(reply == i + 1, "got {reply}, expected {}", i + 1);
        Ok(())
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        self.send(STOP)
    }
}

impl Echo for QueuePingPong {
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

/// `ours.queue_rtt` (`awaits` false) and `ours.async_queue_rtt` (true): the same round trip,
/// blocking or awaiting on both sides.
pub(super) fn queue_rtt(cfg: &Config, awaits: bool) -> Repeat {
    let (ping, pong) = (Queue::<u64>::new(1)?, Queue::<u64>::new(1)?);
    let (hp, hq) = (ping.handle(), pong.handle());
    let mut parent = QueuePingPong {
        to: ping,
        from: pong,
        rt: if awaits { Some(current_thread()?) } else { None },
    };
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, || {
        // Attached in the peer, after the fork, as the runtime is made there: a runtime's
        // threads do not survive one.
        QueuePingPong::open(&hq, &hp, awaits)
    })?
    .into())
}

fn tokio_mpsc_rtt(cfg: &Config) -> Repeat {
    const BURST: u64 = 64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (to_echo, mut requests) = tokio::sync::mpsc::channel::<u64>(1);
    let (to_main, mut answers) = tokio::sync::mpsc::channel::<u64>(1);
    let echo = rt.spawn(async move {
        while let Some(v) = requests.recv().await {
            if to_main.send(v).await.is_err() {
                break;
            }
        }
    });
    let w = timed(cfg.budget(), |call| {
        rt.block_on(async {
            for k in 0..BURST {
                let v = call * BURST + k;
                to_echo.send(v).await.context("the echo task ended")?;
                let back = answers.recv().await.context("the echo task ended")?;
                ensure!(back == v, "answer {back}, expected {v}");
            }
            Ok(BURST)
        })
    })?;
    drop(to_echo);
    rt.block_on(echo)?;
    Ok(Quantity::Seconds(w.per_op()).into())
}

/// Either end of the `u64` ping-pong of `ours.pipe_rtt`, awaiting under a current-thread
/// runtime: the parent sends `i`, the peer answers `i + 1`; `u64::MAX` stops the peer.
struct AsyncPipe {
    conn: ipc_queue::Connection,
    rt: tokio::runtime::Runtime,
}

impl AsyncPipe {
    fn send(&mut self, v: u64) -> anyhow::Result<()> {
        let bytes = v.to_le_bytes();
        self.rt
            .block_on(self.conn.send_bytes_async(&bytes))
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn recv(&mut self) -> anyhow::Result<u64> {
        let got = self
            .rt
            .block_on(self.conn.recv_bytes_timeout_async(WAIT_LIMIT))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let bytes: [u8; 8] = got
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("a message of {} bytes", got.len()))?;
        Ok(u64::from_le_bytes(bytes))
    }
}

impl RoundTrip for AsyncPipe {
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

impl Echo for AsyncPipe {
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

fn async_pipe_rtt(cfg: &Config) -> Repeat {
    let (a, b) = ipc_queue::pipe()?;
    let handle = b.handle();
    drop(b);
    let mut parent = AsyncPipe {
        conn: a,
        rt: current_thread()?,
    };
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
        // Made in the peer, after the fork: a runtime's threads do not survive one.
        Ok(AsyncPipe {
            conn: ipc_queue::Connection::open(&handle)?,
            rt: current_thread()?,
        })
    })?
    .into())
}
