//! `limit.*`: what the hardware allows, the baselines every other scenario is compared with.
//!
//! Each scenario is the least code that does the job between two processes sharing an anonymous
//! [`SharedBlock`]: no headers, no liveness checks, no blocking (except `limit.futex_rtt`, which
//! measures exactly the blocking). They busy-spin, so on a machine with fewer free cores than
//! two they measure the scheduler instead; `ipc-bench` prints the core count with the figures.
//!
//! Two round trips: `limit.pingpong_rtt` bounces one `u64` on one cache line that both sides
//! write, so the line migrates with the message (one transfer per hop); `limit.duplex_rtt` gives
//! each direction its own line, as any channel that both ends may write at once must (a
//! `Connection`, two eventfds), so each hop invalidates the line the other side spins on and
//! then misses on it. The first is faster than any duplex channel can be; `ipc-bench` pairs the
//! two to show what the second line costs.
//!
//! `limit.chunk_rtt` is the round trip of `Connection`'s chunk protocol and nothing else: one
//! ring of 1 MiB per direction, each `u64` message a 24-byte chunk (a tag word, `position + 1`,
//! stored last; a length word; the payload word), after which the sender zeroes the next
//! chunk's tag word; each side keeps its positions in its own memory and spins on the tag. No
//! end claims, no checks of the positions or the header, no wake-up: the floor of
//! `ours.pipe_rtt`'s layout, paired with the bare two-line round trip (what the layout costs
//! over two lines). `limit.chunk_claimed_rtt` adds what a `Connection` whose ends may be shared
//! and whose peers may sleep must do per message, as `Connection` does it: an end claim per send
//! and per receive (a CAS recording the claimer, freed by a Release store), the shared tail and
//! head stored under them, and the looks for sleepers (a compiler fence and a load each, the
//! light side of an asymmetric signal). Paired with the bare chunks (what those cost across two
//! processes) and the floor of `ours.pipe_rtt` (what the rest of `Connection` costs over them).
//!
//! Two SPSC rings, so that each of our paths is compared with the limit of its own kind:
//! `limit.spsc_u64` publishes its index after every message (what one `push` per message must
//! do), `limit.spsc_u64_batch` once per batch of 256 (what `push_slice` can do). Likewise two 1
//! MiB rings: `limit.ring_1mib` copies each message in and out, `limit.ring_1mib_inplace`
//! copies it in and checks it where it lies (the limit of a loan).
//!
//! `limit.mpmc_u64` is the bare bounded MPMC queue (Vyukov's, as crossbeam's `ArrayQueue`):
//! one CAS on the shared position per put and per get, a sequence word per slot, no claimer
//! identity and no recovery, so a process killed between its CAS and its sequence store wedges
//! it. An MPMC queue cannot do with less: a get that two consumers may race for needs a
//! read-modify-write or a store-load fence (Attiya et al., "Laws of Order", POPL 2011). It is
//! the limit of `Queue<u64>`'s kind, and `ipc-bench` pairs it with `limit.spsc_u64` to show
//! what that one read-modify-write per operation costs.
//!
//! `limit.futex_relay_rtt` is `limit.futex_rtt` as an awaiting task must wait: each side sleeps
//! not on the shared word but on a word of its own process, which a thread of its own (the
//! relay, asleep on the shared word) sets and wakes when the peer's value arrives, as
//! `ipc_core::raw::reactor`'s waiter thread wakes a task's runtime. Two wake-ups per direction
//! where the bare round trip pays one: the least a future that works under any executor pays
//! once it has given its thread back (the runtime's thread sleeps in the runtime, which a futex
//! word in shared memory cannot wake; the other way in, an fd the runtime polls, is
//! `eventfd.pingpong_rtt`, measured beside it).
//!
//! `limit.mpmc_claimed_u64` is the same queue with the one change `Queue` makes so that a process
//! killed mid-operation wedges nothing: a put or get claims its slot by a CAS on the slot's word
//! that records the claimer, moves the shared position on with a CAS, and commits with a CAS of
//! the slot word (SeqCst, as the wake-up check needs); no recovery, no participants, no serde,
//! no sleeping. It is the floor of that protocol, paired with `limit.spsc_u64` as
//! `ours.queue_u64` is.

use anyhow::ensure;

use crate::harness::{
    Echo, Peer, Recv, RoundTrip, Sink, Source, deadline, round_trips, spin_until, stream, timed,
};
use crate::message::{Inbox, MIB, Outbox};
use crate::primitive::{Ordering, SharedU64, compiler_fence};
use crate::scenario::{Config, Quantity, Repeat, Scenario, Unit};
use crate::shm::{LINE, SharedBlock};
use ipc_core::raw::futex::Futex;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("limit.pingpong_rtt", Unit::Ns, pingpong_rtt),
        Scenario::new("limit.duplex_rtt", Unit::Ns, duplex_rtt),
        Scenario::new("limit.chunk_rtt", Unit::Ns, |cfg| chunk_rtt(cfg, false)),
        Scenario::new("limit.chunk_claimed_rtt", Unit::Ns, |cfg| chunk_rtt(cfg, true)),
        Scenario::new("limit.spsc_u64", Unit::MsgsPerSec, |cfg| spsc(cfg, 1)),
        Scenario::new("limit.spsc_u64_batch", Unit::MsgsPerSec, |cfg| {
            spsc(cfg, BATCH)
        }),
        Scenario::new("limit.mpmc_u64", Unit::MsgsPerSec, mpmc),
        Scenario::new("limit.mpmc_claimed_u64", Unit::MsgsPerSec, mpmc_claimed),
        Scenario::new("limit.memcpy_1mib", Unit::GbPerSec, memcpy_1mib),
        Scenario::new("limit.ring_1mib", Unit::GbPerSec, |cfg| ring_1mib(cfg, true)),
        Scenario::new("limit.ring_1mib_inplace", Unit::GbPerSec, |cfg| {
            ring_1mib(cfg, false)
        }),
        Scenario::new("limit.futex_rtt", Unit::Us, futex_rtt),
        Scenario::new("limit.futex_relay_rtt", Unit::Us, futex_relay_rtt),
    ]
}

/// The batch of the batched ring, and of every batched path compared with it.
pub const BATCH: usize = 256;

/// `limit.pingpong_rtt`: one `u64` on one cache line; the parent writes an odd value, the child
/// answers with the next even one. Both busy-spin.
fn pingpong_rtt(cfg: &Config) -> Repeat {
    const STOP: u64 = u64::MAX;
    struct Serve<'a>(&'a SharedU64);
    impl RoundTrip for Serve<'_> {
        fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
            let serve = 2 * i + 1;
            // ORDERING: Release, pairs with the child's Acquire load.
            self.0.store(serve, Ordering::Release);
            // ORDERING: Acquire, pairs with the child's Release store of the reply.
            spin_until(deadline(), "the reply", || {
                self.0.load(Ordering::Acquire) == serve + 1
            })
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            // ORDERING: Release, pairs with the child's Acquire load.
            self.0.store(STOP, Ordering::Release);
            Ok(())
        }
    }
    impl Echo for Serve<'_> {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            let mut seen = 0;
            spin_until(deadline(), "the serve", || {
                // ORDERING: Acquire, pairs with the parent's Release store of the serve.
                seen = self.0.load(Ordering::Acquire);
                seen % 2 == 1
            })?;
            if seen == STOP {
                return Ok(false);
            }
            ensure!(seen == 2 * i + 1, "got {seen}, expected {}", 2 * i + 1);
            // ORDERING: Release, pairs with the parent's Acquire load of the reply.
            self.0.store(seen + 1, Ordering::Release);
            Ok(true)
        }
    }
    let block = SharedBlock::new(LINE)?;
    let ball = block.u64_at(0)?;
    Ok(round_trips(Peer::Process, cfg.budget(), &mut Serve(ball), || Ok(Serve(ball)))?.into())
}

/// `limit.duplex_rtt`: one `u64` per direction, each on its own cache line; the parent writes
/// `i` on its line, the child answers `i` on the other. Both busy-spin.
fn duplex_rtt(cfg: &Config) -> Repeat {
    const STOP: u64 = u64::MAX;
    /// The parent's line (requests) and the child's (answers).
    struct Lines<'a> {
        ask: &'a SharedU64,
        answer: &'a SharedU64,
    }
    impl RoundTrip for Lines<'_> {
        fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
            // ORDERING: Release, pairs with the child's Acquire load.
            self.ask.store(i + 1, Ordering::Release);
            // ORDERING: Acquire, pairs with the child's Release store of the answer.
            spin_until(deadline(), "the answer", || {
                self.answer.load(Ordering::Acquire) == i + 1
            })
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            // ORDERING: Release, pairs with the child's Acquire load.
            self.ask.store(STOP, Ordering::Release);
            Ok(())
        }
    }
    impl Echo for Lines<'_> {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            let mut seen = 0;
            spin_until(deadline(), "the request", || {
                // ORDERING: Acquire, pairs with the parent's Release store of the request.
                seen = self.ask.load(Ordering::Acquire);
                seen != i
            })?;
            if seen == STOP {
                return Ok(false);
            }
            ensure!(seen == i + 1, "got {seen}, expected {}", i + 1);
            // ORDERING: Release, pairs with the parent's Acquire load of the answer.
            self.answer.store(seen, Ordering::Release);
            Ok(true)
        }
    }
    let block = SharedBlock::new(2 * LINE)?;
    let (ask, answer) = (block.u64_at(0)?, block.u64_at(LINE)?);
    Ok(round_trips(Peer::Process, cfg.budget(), &mut Lines { ask, answer }, || {
        Ok(Lines { ask, answer })
    })?
    .into())
}

/// The words a direction of `limit.chunk_claimed_rtt` adds to its ring, each on a line of its
/// own as in `Connection`'s direction state: the receive position, the send position, the two
/// sleeper counts a send and a receive check (receivers waiting for a chunk, senders waiting
/// for room), and the two end claims, each with the sleeper count of its waiters on its line.
struct Control<'a> {
    head: &'a SharedU64,
    tail: &'a SharedU64,
    items: &'a SharedU64,
    space: &'a SharedU64,
    send: &'a SharedU64,
    send_free: &'a SharedU64,
    recv: &'a SharedU64,
    recv_free: &'a SharedU64,
}

impl<'a> Control<'a> {
    /// Bytes of one direction's words.
    const BYTES: usize = 6 * LINE;

    fn at(block: &'a SharedBlock, offset: usize) -> anyhow::Result<Self> {
        let line = |i: usize, word: usize| block.u64_at(offset + i * LINE + 8 * word);
        Ok(Self {
            head: line(0, 0)?,
            tail: line(1, 0)?,
            items: line(2, 0)?,
            space: line(3, 0)?,
            send: line(4, 0)?,
            send_free: line(4, 1)?,
            recv: line(5, 0)?,
            recv_free: line(5, 1)?,
        })
    }

    /// Takes an end for `me`: a CAS from free, as `Connection`'s claim of an end (nobody else
    /// holds it here, so it succeeds at once).
    fn claim(word: &SharedU64, me: u64) -> anyhow::Result<()> {
        // ORDERING: AcqRel on success, as `Connection`'s claim; Relaxed on failure (an error).
        let r = word.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed);
        ensure!(r.is_ok(), "an end claimed by {:#x}", r.unwrap_or_else(|v| v));
        Ok(())
    }

    /// Frees an end as `Connection` does: a check that `me` holds it, a Release store, then a
    /// look for sleepers (`free`) behind a compiler fence (the asymmetric signal's light side).
    fn release(word: &SharedU64, free: &SharedU64, me: u64) -> anyhow::Result<()> {
        // ORDERING: Relaxed, our own claim's word.
        ensure!(word.load(Ordering::Relaxed) == me, "an end taken from us");
        // ORDERING: Release, pairs with the next claimer's Acquire.
        word.store(0, Ordering::Release);
        Self::look(free)
    }

    /// The look for sleepers after a change: a compiler fence and a load (asymmetric signal;
    /// nobody sleeps here, so it never wakes anyone).
    fn look(waiters: &SharedU64) -> anyhow::Result<()> {
        compiler_fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered after the change by the fence above (the heavy side,
        // a sleeper's membarrier, never runs here).
        ensure!(waiters.load(Ordering::Relaxed) == 0, "a sleeper in a busy round trip");
        Ok(())
    }
}

/// `limit.chunk_rtt` (`claimed` false) and `limit.chunk_claimed_rtt` (true): a `u64` each way
/// over two rings of `Connection`'s chunks (see the module docs). Both busy-spin.
fn chunk_rtt(cfg: &Config, claimed: bool) -> Repeat {
    /// Bytes of each direction's ring (`Connection`'s default).
    const RING: usize = MIB;
    /// Bytes of a chunk carrying one `u64`: tag, length word, payload.
    const CHUNK: u64 = 24;
    /// The length word of a message's only chunk of 8 bytes: the chunk's length, and the
    /// first-chunk flag with the message's total (as `Connection` writes it).
    const HEADER: u64 = 8 | (((1 << 31) | 8) << 32);
    const STOP: u64 = u64::MAX;
    /// One side: the ring it writes, the ring it reads, its two positions (in bytes), and for
    /// the claimed protocol the words of both directions and its claimer identity.
    struct Chunks<'a> {
        out: &'a [SharedU64],
        inp: &'a [SharedU64],
        tail: u64,
        head: u64,
        ctl: Option<(Control<'a>, Control<'a>, u64)>,
    }
    impl Chunks<'_> {
        /// The word of `ring` at byte position `pos` (a multiple of 8).
        fn word(ring: &[SharedU64], pos: u64) -> &SharedU64 {
            &ring[(pos / 8) as usize % ring.len()]
        }
        fn send(&mut self, v: u64) -> anyhow::Result<()> {
            if let Some((out, _, me)) = &self.ctl {
                Control::claim(out.send, *me)?;
                // ORDERING: Acquire, as `Connection` loads the tail under its claim.
                let tail = out.tail.load(Ordering::Acquire);
                ensure!(tail == self.tail, "the tail at {tail}, expected {}", self.tail);
            }
            let t = self.tail;
            // ORDERING: Relaxed (the payload, the length word and the next chunk's zeroed tag
            // word), published by the Release tag store below.
            Self::word(self.out, t + 16).store(v, Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            Self::word(self.out, t + 8).store(HEADER, Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            Self::word(self.out, t + CHUNK).store(0, Ordering::Relaxed);
            // ORDERING: Release, pairs with the reader's Acquire tag load.
            Self::word(self.out, t).store(t + 1, Ordering::Release);
            self.tail = t + CHUNK;
            if let Some((out, _, me)) = &self.ctl {
                // ORDERING: Release, as `Connection`'s tail store.
                out.tail.store(self.tail, Ordering::Release);
                Control::look(out.items)?;
                Control::release(out.send, out.send_free, *me)?;
            }
            Ok(())
        }
        fn recv(&mut self, what: &str) -> anyhow::Result<u64> {
            if let Some((_, inp, me)) = &self.ctl {
                Control::claim(inp.recv, *me)?;
                // ORDERING: Acquire, as `Connection` loads the head under its claim.
                let head = inp.head.load(Ordering::Acquire);
                ensure!(head == self.head, "the head at {head}, expected {}", self.head);
            }
            let h = self.head;
            let tag = Self::word(self.inp, h);
            // ORDERING: Acquire, pairs with the writer's Release tag store: the length word and
            // the payload are visible.
            spin_until(deadline(), what, || tag.load(Ordering::Acquire) == h + 1)?;
            // ORDERING: Relaxed (both), ordered after the Acquire above.
            let header = Self::word(self.inp, h + 8).load(Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            let v = Self::word(self.inp, h + 16).load(Ordering::Relaxed);
            ensure!(header == HEADER, "a chunk header {header:#x}");
            self.head = h + CHUNK;
            if let Some((_, inp, me)) = &self.ctl {
                // ORDERING: Release, as `Connection`'s head store: our reads of the chunk
                // happen before its sender reuses the bytes.
                inp.head.store(self.head, Ordering::Release);
                Control::look(inp.space)?;
                Control::release(inp.recv, inp.recv_free, *me)?;
            }
            Ok(v)
        }
    }
    impl RoundTrip for Chunks<'_> {
        fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
            self.send(i)?;
            let reply = self.recv("the reply")?;
            ensure!(reply == i + 1, "got {reply}, expected {}", i + 1);
            Ok(())
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            self.send(STOP)
        }
    }
    impl Echo for Chunks<'_> {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            match self.recv("the request")? {
                STOP => Ok(false),
                v => {
                    ensure!(v == i, "got {v}, expected {i}");
                    self.send(v + 1)?;
                    Ok(true)
                }
            }
        }
    }
    let block = SharedBlock::new(2 * RING + 2 * Control::BYTES)?;
    let (d0, d1) = (
        block.u64_slice_at(0, RING / 8)?,
        block.u64_slice_at(RING, RING / 8)?,
    );
    let block = &block;
    let side = move |out, inp, dirs: Option<(usize, usize)>| -> anyhow::Result<Chunks<'_>> {
        let ctl = match dirs {
            Some((o, i)) => Some((
                Control::at(block, 2 * RING + o * Control::BYTES)?,
                Control::at(block, 2 * RING + i * Control::BYTES)?,
                // A claimer identity as `Connection` records one: non-zero, per process.
                (u64::from(std::process::id()) << 32) | 1,
            )),
            None => None,
        };
        Ok(Chunks {
            out,
            inp,
            tail: 0,
            head: 0,
            ctl,
        })
    };
    let dirs = |o, i| claimed.then_some((o, i));
    let mut parent = side(d0, d1, dirs(0, 1))?;
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, || side(d1, d0, dirs(1, 0)))?.into())
}

/// `limit.futex_relay_rtt` (see the module docs): request `i` is the value `i + 1` in the
/// child's shared word, its answer the same value in the parent's; each side's relay thread
/// copies what arrives in its shared word into its process's own word and wakes that.
fn futex_relay_rtt(cfg: &Config) -> Repeat {
    use std::sync::Arc;
    /// The value that stops the peer (and, at the end, each relay).
    const STOP: u32 = u32::MAX;
    /// One side: the shared word it writes, and the relay of the one it reads.
    struct Side {
        block: Arc<SharedBlock>,
        out: usize,
        relay: Relay,
    }
    /// A thread asleep on the shared word at `offset` of `block` that copies each new value into
    /// `local` and wakes it; it ends after passing `STOP` on.
    struct Relay {
        local: Arc<Futex>,
        thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
        block: Arc<SharedBlock>,
        offset: usize,
    }
    impl Relay {
        fn start(block: &Arc<SharedBlock>, offset: usize) -> anyhow::Result<Self> {
            let local = Arc::new(Futex::new(0));
            let (shared, mine) = (Arc::clone(block), Arc::clone(&local));
            block.futex_at(offset)?;
            let thread = std::thread::Builder::new()
                .name("relay".into())
                .spawn(move || -> anyhow::Result<()> {
                    let word = shared.futex_at(offset)?;
                    let mut seen = 0;
                    loop {
                        // No deadline: the side that owns the relay ends it with `STOP`.
                        let v = word.wait_while(|v| v == seen, None).map_err(timeout)?;
                        mine.store_and_wake_all(v);
                        if v == STOP {
                            return Ok(());
                        }
                        seen = v;
                    }
                })?;
            Ok(Self {
                local,
                thread: Some(thread),
                block: Arc::clone(block),
                offset,
            })
        }
        /// Sleeps on our own word until the relay brings `want` (or `STOP`); returns which.
        fn wait_for(&self, want: u32) -> anyhow::Result<u32> {
            self.local
                .wait_while(|v| v != want && v != STOP, Some(deadline()))
                .map_err(timeout)
        }
    }
    impl Drop for Relay {
        fn drop(&mut self) {
            // Ends the relay if the peer did not (a failed run): it passes `STOP` on and returns.
            if let Ok(word) = self.block.futex_at(self.offset) {
                word.store_and_wake_all(STOP);
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
    fn timeout(_: ipc_core::raw::futex::TimedOut) -> anyhow::Error {
        anyhow::anyhow!("futex: timed out waiting for the peer")
    }
    impl Side {
        fn send(&self, v: u32) -> anyhow::Result<()> {
            self.block.futex_at(self.out)?.store_and_wake_all(v);
            Ok(())
        }
    }
    impl RoundTrip for Side {
        fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
            let v = (i + 1) as u32;
            self.send(v)?;
            let got = self.relay.wait_for(v)?;
            ensure!(got == v, "got {got}, expected {v}");
            Ok(())
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            self.send(STOP)
        }
    }
    impl Echo for Side {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            let want = (i + 1) as u32;
            match self.relay.wait_for(want)? {
                STOP => Ok(false),
                v => {
                    self.send(v)?;
                    Ok(true)
                }
            }
        }
    }
    // The parent writes the child's word (0) and reads its own (LINE).
    let block = Arc::new(SharedBlock::new(2 * LINE)?);
    let mut parent = Side {
        block: Arc::clone(&block),
        out: 0,
        relay: Relay::start(&block, LINE)?,
    };
    let child_block = Arc::clone(&block);
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
        // Made in the peer, after the fork: threads do not survive one.
        Ok(Side {
            relay: Relay::start(&child_block, 0)?,
            out: LINE,
            block: child_block,
        })
    })?
    .into())
}

/// A minimal single-producer single-consumer ring of `u64` slots: each side caches the other's
/// index and publishes its own every `batch` messages (and whenever it finds the ring empty or
/// full, so that neither side waits for a message the other has not published).
struct Spsc<'a> {
    head: &'a SharedU64,
    tail: &'a SharedU64,
    slots: &'a [SharedU64],
    batch: u64,
    /// Our own index (tail for the producer, head for the consumer).
    mine: u64,
    /// The last value of the other side's index we read.
    theirs: u64,
}

const SPSC_CAP: u64 = 4096;

impl<'a> Spsc<'a> {
    fn new(block: &'a SharedBlock, batch: usize) -> anyhow::Result<Self> {
        Ok(Self {
            head: block.u64_at(0)?,
            tail: block.u64_at(LINE)?,
            slots: block.u64_slice_at(2 * LINE, SPSC_CAP as usize)?,
            batch: batch as u64,
            mine: 0,
            theirs: 0,
        })
    }

    fn block_len() -> usize {
        2 * LINE + SPSC_CAP as usize * 8
    }
}

impl Source for Spsc<'_> {
    /// Pushes values `i + 1` … for up to one batch (inlined into the harness loop, as
    /// `ours.ring_u64`'s ends are).
    #[inline(always)]
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        let mut n = 0;
        while n < self.batch {
            let t = self.mine;
            if t - self.theirs == SPSC_CAP {
                // ORDERING: Release, pairs with the consumer's Acquire load of `tail`;
                // publishes the slot stores before it.
                self.tail.store(t, Ordering::Release);
                // ORDERING: Acquire, pairs with the consumer's Release store of `head`: the
                // slots before it have been read and may be overwritten.
                self.theirs = self.head.load(Ordering::Acquire);
                if t - self.theirs == SPSC_CAP {
                    break;
                }
            }
            // ORDERING: Relaxed, published by the next Release store of `tail`.
            self.slots[(t % SPSC_CAP) as usize].store(i + n + 1, Ordering::Relaxed);
            self.mine = t + 1;
            n += 1;
            if self.mine % self.batch == 0 {
                // ORDERING: Release, as above.
                self.tail.store(self.mine, Ordering::Release);
            }
        }
        Ok(n)
    }

    fn finish(self, _: u64) -> anyhow::Result<()> {
        // ORDERING: Release, as above: the last messages.
        self.tail.store(self.mine, Ordering::Release);
        Ok(())
    }
}

impl Sink for Spsc<'_> {
    /// Pops and checks up to one batch (inlined, as above).
    #[inline(always)]
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        let mut n = 0;
        while n < self.batch {
            let h = self.mine;
            if h == self.theirs {
                // ORDERING: Release, pairs with the producer's Acquire load of `head`; the
                // slots before `h` have been read.
                self.head.store(h, Ordering::Release);
                // ORDERING: Acquire, pairs with the producer's Release store of `tail`; makes
                // the slot stores before it visible.
                self.theirs = self.tail.load(Ordering::Acquire);
                ensure!(
                    self.theirs >= h && self.theirs - h <= SPSC_CAP,
                    "impossible tail {} for head {h}",
                    self.theirs
                );
                if h == self.theirs {
                    break;
                }
            }
            // ORDERING: Relaxed, made visible by the Acquire load of `tail` above.
            let v = self.slots[(h % SPSC_CAP) as usize].load(Ordering::Relaxed);
            ensure!(v == next + n + 1, "slot {h} holds {v}, expected {}", next + n + 1);
            self.mine = h + 1;
            n += 1;
            if self.mine % self.batch == 0 {
                // ORDERING: Release, as above.
                self.head.store(self.mine, Ordering::Release);
            }
        }
        Ok(if n == 0 { Recv::Idle } else { Recv::Got(n) })
    }
}

/// `limit.spsc_u64` (`batch` 1) and `limit.spsc_u64_batch`: the child pushes 1, 2, 3, …, the
/// parent pops and checks each value.
fn spsc(cfg: &Config, batch: usize) -> Repeat {
    let block = SharedBlock::new(Spsc::block_len())?;
    let mut sink = Spsc::new(&block, batch)?;
    Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, || {
        Spsc::new(&block, batch)
    })?
    .into())
}

/// The bare bounded MPMC queue of `limit.mpmc_u64`: `head` and `tail` on their own lines,
/// then [`MPMC_CAP`] cells of two words (sequence, value).
struct Mpmc<'a> {
    head: &'a SharedU64,
    tail: &'a SharedU64,
    cells: &'a [SharedU64],
}

const MPMC_CAP: u64 = 4096;

impl<'a> Mpmc<'a> {
    fn new(block: &'a SharedBlock) -> anyhow::Result<Self> {
        Ok(Self {
            head: block.u64_at(0)?,
            tail: block.u64_at(LINE)?,
            cells: block.u64_slice_at(2 * LINE, 2 * MPMC_CAP as usize)?,
        })
    }

    fn block_len() -> usize {
        2 * LINE + MPMC_CAP as usize * 16
    }

    /// Writes each cell's first sequence (its index), before any process uses the queue.
    fn init(&self) {
        for i in 0..MPMC_CAP {
            // ORDERING: Relaxed, the fork that follows publishes it.
            self.cells[2 * i as usize].store(i, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn cell(&self, pos: u64) -> (&SharedU64, &SharedU64) {
        let i = 2 * (pos % MPMC_CAP) as usize;
        (&self.cells[i], &self.cells[i + 1])
    }
}

impl Source for Mpmc<'_> {
    /// Puts `i + 1`; 0 when the queue is full.
    #[inline(always)]
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        // ORDERING: Relaxed, only picks the cell; its sequence's Acquire orders the rest.
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let (seq, value) = self.cell(pos);
            // ORDERING: Acquire, pairs with the getter's Release store of the sequence: it has
            // read the cell before we overwrite it.
            let s = seq.load(Ordering::Acquire);
            if s == pos {
                // ORDERING: Relaxed, the claim of a position; the sequence store publishes.
                match self.tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // ORDERING: Relaxed, published by the Release store of the sequence.
                        value.store(i + 1, Ordering::Relaxed);
                        // ORDERING: Release, pairs with the getter's Acquire load: publishes
                        // the value.
                        seq.store(pos + 1, Ordering::Release);
                        return Ok(1);
                    }
                    Err(now) => pos = now,
                }
            } else if s < pos {
                return Ok(0);
            } else {
                // ORDERING: Relaxed, as above.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Sink for Mpmc<'_> {
    /// Gets and checks one value.
    #[inline(always)]
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        // ORDERING: Relaxed, only picks the cell.
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let (seq, value) = self.cell(pos);
            // ORDERING: Acquire, pairs with the putter's Release store of the sequence: the
            // value is visible.
            let s = seq.load(Ordering::Acquire);
            if s == pos + 1 {
                // ORDERING: Relaxed, the claim; the cell's Acquire above ordered the value.
                match self.head.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // ORDERING: Relaxed, ordered by the Acquire load of the sequence.
                        let v = value.load(Ordering::Relaxed);
                        // ORDERING: Release, pairs with the putter's Acquire load: our read
                        // happens before the cell is overwritten.
                        seq.store(pos + MPMC_CAP, Ordering::Release);
                        ensure!(v == next + 1, "cell {pos} holds {v}, expected {}", next + 1);
                        return Ok(Recv::Got(1));
                    }
                    Err(now) => pos = now,
                }
            } else if s < pos + 1 {
                return Ok(Recv::Idle);
            } else {
                // ORDERING: Relaxed, as above.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }
}

/// `limit.mpmc_u64`: the child puts 1, 2, 3, … into the bare MPMC queue, the parent gets and
/// checks each value; one put and one get per message, as `ours.queue_u64`.
fn mpmc(cfg: &Config) -> Repeat {
    let block = SharedBlock::new(Mpmc::block_len())?;
    let mut sink = Mpmc::new(&block)?;
    sink.init();
    Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, || {
        Mpmc::new(&block)
    })?
    .into())
}

/// The queue of `limit.mpmc_claimed_u64`: `head` and `tail` on their own lines, then
/// [`MPMC_CAP`] cells of two words (the slot word, the value). A slot word packs a position
/// modulo 2^32 (high half) and the claimer (low half, 0 when unclaimed): Empty(p) is `p, 0`,
/// Writing(p) `p, putter`, Full(p) `p + 1, 0`, Reading(p) `p + 1, getter`, and a read slot is
/// Empty(p + capacity).
struct Claimed<'a> {
    head: &'a SharedU64,
    tail: &'a SharedU64,
    cells: &'a [SharedU64],
    me: u64,
}

const PUTTER: u64 = 1;
const GETTER: u64 = 2;

fn slot_word(pos: u64, owner: u64) -> u64 {
    (pos << 32) | owner
}

/// The slot word's position minus `pos`, as a signed 32-bit difference.
fn slot_diff(word: u64, pos: u64) -> i64 {
    i64::from(((word >> 32) as u32).wrapping_sub(pos as u32) as i32)
}

impl<'a> Claimed<'a> {
    fn new(block: &'a SharedBlock, me: u64) -> anyhow::Result<Self> {
        let Mpmc { head, tail, cells } = Mpmc::new(block)?;
        Ok(Self {
            head,
            tail,
            cells,
            me,
        })
    }

    /// Writes each slot's first word, Empty(index), before any process uses the queue.
    fn init(&self) {
        for i in 0..MPMC_CAP {
            // ORDERING: Relaxed, the fork that follows publishes it.
            self.cells[2 * i as usize].store(slot_word(i, 0), Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn cell(&self, pos: u64) -> (&SharedU64, &SharedU64) {
        let i = 2 * (pos % MPMC_CAP) as usize;
        (&self.cells[i], &self.cells[i + 1])
    }
}

/// Moves a shared position on from `pos`, if nobody has yet.
#[inline(always)]
fn help_on(position: &SharedU64, pos: u64) {
    // ORDERING: Relaxed, a position only picks the slot to look at; slot words publish.
    let _ = position.compare_exchange(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed);
}

impl Source for Claimed<'_> {
    /// Puts `i + 1`; 0 when the queue is full.
    #[inline(always)]
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        loop {
            // ORDERING: Relaxed, only picks the slot; its word's Acquire orders the rest.
            let pos = self.tail.load(Ordering::Relaxed);
            let (word, value) = self.cell(pos);
            // ORDERING: Acquire, pairs with the getter's release of the slot: it has read the
            // value before we overwrite it.
            let w = word.load(Ordering::Acquire);
            let d = slot_diff(w, pos);
            if d == 0 && w as u32 == 0 {
                // ORDERING: Acquire on success, as the load above; Relaxed on failure (retry).
                let claim = word.compare_exchange(
                    w,
                    slot_word(pos, self.me),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                );
                if claim.is_ok() {
                    help_on(self.tail, pos);
                    // ORDERING: Relaxed, published by the commit's Release.
                    value.store(i + 1, Ordering::Relaxed);
                    // ORDERING: SeqCst, as `Queue`'s commit: Release publishes the value to the
                    // getter's Acquire; SeqCst is the waker's half of a wake-up check.
                    let commit = word.compare_exchange(
                        slot_word(pos, self.me),
                        slot_word(pos + 1, 0),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                    ensure!(commit.is_ok(), "slot {pos} was taken from its putter");
                    return Ok(1);
                }
            } else if d >= 0 {
                help_on(self.tail, pos);
            } else {
                return Ok(0);
            }
        }
    }

    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Sink for Claimed<'_> {
    /// Gets and checks one value.
    #[inline(always)]
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        loop {
            // ORDERING: Relaxed, only picks the slot.
            let pos = self.head.load(Ordering::Relaxed);
            let (word, value) = self.cell(pos);
            // ORDERING: Acquire, pairs with the putter's commit: the value is visible.
            let w = word.load(Ordering::Acquire);
            let d = slot_diff(w, pos);
            if d == 1 && w as u32 == 0 {
                // ORDERING: Acquire on success, as the load above; Relaxed on failure (retry).
                let claim = word.compare_exchange(
                    w,
                    slot_word(pos + 1, self.me),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                );
                if claim.is_ok() {
                    help_on(self.head, pos);
                    // ORDERING: Relaxed, ordered by the Acquire load of the slot word.
                    let v = value.load(Ordering::Relaxed);
                    // ORDERING: SeqCst, as `Queue`'s release of a read slot: Release orders our
                    // read before the next putter's write; SeqCst for the wake-up check.
                    let release = word.compare_exchange(
                        slot_word(pos + 1, self.me),
                        slot_word(pos + MPMC_CAP, 0),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                    ensure!(release.is_ok(), "slot {pos} was taken from its getter");
                    ensure!(v == next + 1, "cell {pos} holds {v}, expected {}", next + 1);
                    return Ok(Recv::Got(1));
                }
            } else if d >= 1 {
                help_on(self.head, pos);
            } else {
                return Ok(Recv::Idle);
            }
        }
    }
}

/// `limit.mpmc_claimed_u64`: as `limit.mpmc_u64`, through the claimed-slot protocol.
fn mpmc_claimed(cfg: &Config) -> Repeat {
    let block = SharedBlock::new(Mpmc::block_len())?;
    let mut sink = Claimed::new(&block, GETTER)?;
    sink.init();
    Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, || {
        Claimed::new(&block, PUTTER)
    })?
    .into())
}

/// `limit.memcpy_1mib`: copies a 1 MiB buffer into another in one process, as fast as it goes.
fn memcpy_1mib(cfg: &Config) -> Repeat {
    let mut out = Outbox::new(MIB);
    let mut inbox = Inbox::new(MIB);
    let mut copies = 0;
    let w = timed(cfg.budget(), |i| {
        inbox.buf().copy_from_slice(std::hint::black_box(out.message(i)));
        std::hint::black_box(inbox.buf());
        copies = i + 1;
        Ok(MIB as u64)
    })?;
    inbox.check_last(copies)?;
    Ok(Quantity::PerSecond(w.rate()).into())
}

/// 1 MiB messages through [`RING_SLOTS`] page-aligned slots of shared memory. The writer copies
/// each message in from its own buffer.
struct SlotRing<'a> {
    block: &'a SharedBlock,
    head: &'a SharedU64,
    tail: &'a SharedU64,
    slots_at: usize,
}

const RING_SLOTS: u64 = 4;

impl<'a> SlotRing<'a> {
    fn slots_at() -> usize {
        (2 * LINE).next_multiple_of(4096)
    }

    fn block_len() -> usize {
        Self::slots_at() + RING_SLOTS as usize * MIB
    }

    fn new(block: &'a SharedBlock) -> anyhow::Result<Self> {
        Ok(Self {
            block,
            head: block.u64_at(0)?,
            tail: block.u64_at(LINE)?,
            slots_at: Self::slots_at(),
        })
    }

    fn slot(&self, i: u64) -> anyhow::Result<*mut u8> {
        let at = self.slots_at + (i % RING_SLOTS) as usize * MIB;
        self.block.bytes_at(at, MIB)
    }

    /// The slot of message `i` as bytes, for reading in place.
    ///
    /// # Safety
    ///
    /// The writer must not write that slot while the slice lives: message `i` must have been
    /// published and not yet released.
    unsafe fn slot_bytes(&self, i: u64) -> anyhow::Result<&[u8]> {
        let p = self.slot(i)?;
        // SAFETY: `p` is a whole slot inside the block, which outlives `self`; the caller
        // guarantees that nobody writes it meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(p, MIB) })
    }
}

/// The writer side of a [`SlotRing`].
struct RingWriter<'a> {
    ring: SlotRing<'a>,
    out: Outbox,
}

impl Source for RingWriter<'_> {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        let r = &self.ring;
        // ORDERING: Acquire, pairs with the reader's Release store of `head`: the slot has been
        // read and may be overwritten.
        if i - r.head.load(Ordering::Acquire) >= RING_SLOTS {
            return Ok(0);
        }
        let dst = r.slot(i)?;
        let msg = self.out.message(i);
        // SAFETY: `dst` is a whole slot inside the block; the reader does not touch slot
        // `i % RING_SLOTS` until `tail` passes `i`, and has released its previous message
        // (checked above); `msg` is private to this process.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, MIB) };
        // ORDERING: Release, pairs with the reader's Acquire load of `tail`; publishes the copy.
        r.tail.store(i + 1, Ordering::Release);
        Ok(1)
    }

    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The reader side of a [`SlotRing`]: copies each message out (`copy_out`) or checks it in
/// place.
struct RingReader<'a> {
    ring: SlotRing<'a>,
    inbox: Inbox,
    copy_out: bool,
}

impl Sink for RingReader<'_> {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        let r = &self.ring;
        // ORDERING: Acquire, pairs with the writer's Release store of `tail`; makes the slot's
        // bytes visible.
        let available = r.tail.load(Ordering::Acquire);
        if available == next {
            return Ok(Recv::Idle);
        }
        ensure!(
            available > next && available - next <= RING_SLOTS,
            "impossible tail {available} for head {next}"
        );
        if self.copy_out {
            let src = r.slot(next)?;
            // SAFETY: `src` is a whole slot inside the block, published by the writer's Release
            // store of `tail` (Acquire above); the writer does not reuse it until `head` passes
            // `next`; the inbox is private to this process.
            unsafe { std::ptr::copy_nonoverlapping(src, self.inbox.buf().as_mut_ptr(), MIB) };
            self.inbox.check(next)?;
        } else {
            // SAFETY: message `next` is published (above) and not released until the store of
            // `head` below, after the slice's last use.
            let bytes = unsafe { r.slot_bytes(next)? };
            self.inbox.pattern().check(bytes, next)?;
        }
        // ORDERING: Release, pairs with the writer's Acquire load of `head`: done with the slot.
        r.head.store(next + 1, Ordering::Release);
        Ok(Recv::Got(1))
    }

    fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
        if self.copy_out {
            return self.inbox.check_last(received);
        }
        ensure!(received > 0, "nothing arrived");
        // SAFETY: the writer has exited (the harness joined it), so nobody writes the slot.
        let bytes = unsafe { self.ring.slot_bytes(received - 1)? };
        self.inbox.pattern().check_fully(bytes, received - 1)
    }
}

/// `limit.ring_1mib` and `limit.ring_1mib_inplace`: the child copies each 1 MiB message in; the
/// parent copies it out and checks it, or checks it in place.
fn ring_1mib(cfg: &Config, copy_out: bool) -> Repeat {
    let block = SharedBlock::new(SlotRing::block_len())?;
    let mut reader = RingReader {
        ring: SlotRing::new(&block)?,
        inbox: Inbox::new(MIB),
        copy_out,
    };
    let per_message = MIB as u64;
    Ok(stream(Peer::Process, cfg.budget(), per_message, &mut reader, || {
        Ok(RingWriter {
            ring: SlotRing::new(&block)?,
            out: Outbox::new(MIB),
        })
    })?
    .into())
}

/// `limit.futex_rtt`: the parent stores an odd value in a shared futex word and wakes the
/// child, which answers with the next even value and wakes the parent; both sleep in the kernel
/// while they wait.
fn futex_rtt(cfg: &Config) -> Repeat {
    const STOP: u32 = u32::MAX;
    struct Wake<'a>(&'a ipc_core::raw::futex::Futex);
    fn timeout(_: ipc_core::raw::futex::TimedOut) -> anyhow::Error {
        anyhow::anyhow!("futex: timed out waiting for the peer")
    }
    impl RoundTrip for Wake<'_> {
        fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
            let serve = (2 * i + 1) as u32;
            self.0.store_and_wake_all(serve);
            self.0
                .wait_while(|v| v != serve + 1, Some(deadline()))
                .map_err(timeout)?;
            Ok(())
        }
        fn stop(&mut self, _: u64) -> anyhow::Result<()> {
            self.0.store_and_wake_all(STOP);
            Ok(())
        }
    }
    impl Echo for Wake<'_> {
        fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
            let v = self
                .0
                .wait_while(|v| v % 2 == 0, Some(deadline()))
                .map_err(timeout)?;
            if v == STOP {
                return Ok(false);
            }
            let want = (2 * i + 1) as u32;
            ensure!(v == want, "got {v}, expected {want}");
            self.0.store_and_wake_all(v + 1);
            Ok(true)
        }
    }
    let block = SharedBlock::new(LINE)?;
    let futex = block.futex_at(0)?;
    Ok(round_trips(Peer::Process, cfg.budget(), &mut Wake(futex), || Ok(Wake(futex)))?.into())
}
