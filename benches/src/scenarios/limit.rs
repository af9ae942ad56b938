//! `limit.*`: what the hardware allows, the baselines every other scenario is compared with.
//!
//! Each scenario is the least code that does the job between two forked processes sharing an
//! anonymous [`SharedBlock`]: no headers, no liveness checks, no blocking (except
//! `limit.futex_rtt`, which measures exactly the blocking). They busy-spin, so on a machine with
//! fewer free cores than two they measure the scheduler instead; `ipc-bench` prints the core
//! count with the figures.
//!
//! Time-bounded scenarios run for [`Config::budget`]: the parent times from the moment it lets
//! the child start, asks it to stop when the budget is spent, and drains what is in flight.

use std::time::Instant;

use anyhow::{Context, bail, ensure};

use crate::primitive::{Ordering, SharedU64};
use crate::shm::{LINE, SharedBlock};
use crate::{Config, Scenario, WAIT_LIMIT, fork_child, spin_until};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "limit.pingpong_rtt",
            unit: "ns",
            higher_is_better: false,
            run: pingpong_rtt,
        },
        Scenario {
            name: "limit.spsc_u64",
            unit: "msgs/s",
            higher_is_better: true,
            run: spsc_u64,
        },
        Scenario {
            name: "limit.memcpy_1mib",
            unit: "GB/s",
            higher_is_better: true,
            run: memcpy_1mib,
        },
        Scenario {
            name: "limit.ring_1mib",
            unit: "GB/s",
            higher_is_better: true,
            run: ring_1mib,
        },
        Scenario {
            name: "limit.futex_rtt",
            unit: "µs",
            higher_is_better: false,
            run: futex_rtt,
        },
    ]
}

/// One mebibyte, the payload of the `*_1mib` scenarios.
pub const MIB: usize = 1 << 20;

/// The control words every two-process scenario here uses, each on its own cache line:
/// the child says it is ready, the parent says go and later stop, the child reports its count.
struct Control<'a> {
    ready: &'a SharedU64,
    go: &'a SharedU64,
    stop: &'a SharedU64,
    /// The child's count, valid once `done` is set.
    count: &'a SharedU64,
    done: &'a SharedU64,
}

/// The bytes [`Control`] occupies at the start of a block.
const CONTROL_LEN: usize = 5 * LINE;

impl<'a> Control<'a> {
    fn at(block: &'a SharedBlock) -> anyhow::Result<Self> {
        Ok(Self {
            ready: block.u64_at(0)?,
            go: block.u64_at(LINE)?,
            stop: block.u64_at(2 * LINE)?,
            count: block.u64_at(3 * LINE)?,
            done: block.u64_at(4 * LINE)?,
        })
    }

    /// Child: announce readiness and wait for the parent's go.
    fn child_start(&self) -> anyhow::Result<()> {
        // ORDERING: Release, pairs with the Acquire in `parent_start`; publishes nothing but
        // the fact that the child runs.
        self.ready.store(1, Ordering::Release);
        // ORDERING: Acquire, pairs with the Release store of `go` in `parent_start`.
        spin_until(deadline(), "the parent's go", || {
            self.go.load(Ordering::Acquire) == 1
        })
    }

    /// Parent: wait for the child, then let it go; returns the start of the timed section.
    fn parent_start(&self) -> anyhow::Result<Instant> {
        // ORDERING: Acquire, pairs with the Release store in `child_start`.
        spin_until(deadline(), "the child to start", || {
            self.ready.load(Ordering::Acquire) == 1
        })?;
        let t0 = Instant::now();
        // ORDERING: Release, pairs with the Acquire in `child_start`.
        self.go.store(1, Ordering::Release);
        Ok(t0)
    }

    /// Child: should it stop? (checked every so often, off the hot path)
    fn should_stop(&self) -> bool {
        // ORDERING: Relaxed, a request flag; the data the child still has to hand over is
        // synchronised by the scenario's own indices.
        self.stop.load(Ordering::Relaxed) == 1
    }

    fn request_stop(&self) {
        // ORDERING: Relaxed, see `should_stop`.
        self.stop.store(1, Ordering::Relaxed);
    }

    /// Child: report its final count.
    fn finish(&self, count: u64) {
        // ORDERING: Relaxed, published by the Release store of `done` below.
        self.count.store(count, Ordering::Relaxed);
        // ORDERING: Release, pairs with the Acquire in `child_count`; publishes `count` and
        // the child's last index stores.
        self.done.store(1, Ordering::Release);
    }

    /// Parent: the child's final count, if it has finished.
    fn child_count(&self) -> Option<u64> {
        // ORDERING: Acquire, pairs with the Release store in `finish`.
        if self.done.load(Ordering::Acquire) == 1 {
            // ORDERING: Relaxed, ordered after the Acquire load of `done`.
            Some(self.count.load(Ordering::Relaxed))
        } else {
            None
        }
    }
}

fn deadline() -> Instant {
    Instant::now() + WAIT_LIMIT
}

/// `limit.pingpong_rtt`: one `u64` on one cache line; the parent writes an odd value, the child
/// answers with the next even one. Both busy-spin. Reports nanoseconds per round trip.
fn pingpong_rtt(cfg: &Config) -> anyhow::Result<Option<f64>> {
    const STOP: u64 = u64::MAX;
    const WARMUP: u64 = 1000;
    let block = SharedBlock::new(CONTROL_LEN + LINE)?;
    let ctl = Control::at(&block)?;
    let ball = block.u64_at(CONTROL_LEN)?;

    let child = fork_child(|| {
        ctl.child_start()?;
        let mut replies = 0u64;
        loop {
            let mut seen = 0;
            spin_until(deadline(), "the parent's serve", || {
                // ORDERING: Acquire, pairs with the parent's Release store of the serve.
                seen = ball.load(Ordering::Acquire);
                seen % 2 == 1
            })?;
            if seen == STOP {
                break;
            }
            ensure!(
                seen == 2 * replies + 1,
                "pingpong: got {seen}, expected {}",
                2 * replies + 1
            );
            // ORDERING: Release, pairs with the parent's Acquire load of the reply.
            ball.store(seen + 1, Ordering::Release);
            replies += 1;
        }
        ctl.finish(replies);
        Ok(())
    })?;

    ctl.parent_start()?;
    let budget = cfg.budget();
    let mut rounds = 0u64;
    let mut warm = 0u64;
    let mut t0 = Instant::now();
    loop {
        let serve = 2 * rounds + 1;
        // ORDERING: Release, pairs with the child's Acquire load.
        ball.store(serve, Ordering::Release);
        // ORDERING: Acquire, pairs with the child's Release store of the reply.
        spin_until(deadline(), "the child's reply", || {
            ball.load(Ordering::Acquire) == serve + 1
        })?;
        rounds += 1;
        if warm == 0 && (rounds == WARMUP || t0.elapsed() >= budget / 10) {
            warm = rounds;
            t0 = Instant::now();
        }
        if warm > 0 && rounds % 256 == 0 && t0.elapsed() >= budget {
            break;
        }
    }
    let elapsed = t0.elapsed();
    // ORDERING: Release, pairs with the child's Acquire load.
    ball.store(STOP, Ordering::Release);
    child.wait()?;
    let replies = ctl.child_count().context("pingpong child did not report")?;
    ensure!(
        replies == rounds,
        "pingpong: child answered {replies} of {rounds} serves"
    );
    Ok(Some(elapsed.as_nanos() as f64 / (rounds - warm) as f64))
}

/// `limit.spsc_u64`: a single-producer single-consumer ring of `u64` slots. The child pushes
/// 1, 2, 3, …; the parent pops and checks each value. Each side caches the other's index and
/// publishes its own every [`SPSC_BATCH`] messages (or when it has to wait). Reports messages
/// per second.
fn spsc_u64(cfg: &Config) -> anyhow::Result<Option<f64>> {
    const CAP: u64 = 4096;
    const SPSC_BATCH: u64 = 64;
    let head_at = CONTROL_LEN;
    let tail_at = CONTROL_LEN + LINE;
    let slots_at = CONTROL_LEN + 2 * LINE;
    let block = SharedBlock::new(slots_at + CAP as usize * 8)?;
    let ctl = Control::at(&block)?;
    let head = block.u64_at(head_at)?;
    let tail = block.u64_at(tail_at)?;
    let slots = block.u64_slice_at(slots_at, CAP as usize)?;

    let child = fork_child(|| {
        ctl.child_start()?;
        let mut t = 0u64;
        let mut cached_head = 0u64;
        loop {
            if t % 4096 == 0 && ctl.should_stop() {
                break;
            }
            if t - cached_head == CAP {
                // ORDERING: Release, pairs with the consumer's Acquire load of `tail`;
                // publishes the slot stores before it.
                tail.store(t, Ordering::Release);
                spin_until(deadline(), "a free slot", || {
                    // ORDERING: Acquire, pairs with the consumer's Release store of `head`:
                    // the slots before it have been read and may be overwritten.
                    cached_head = head.load(Ordering::Acquire);
                    t - cached_head < CAP
                })?;
            }
            // ORDERING: Relaxed, published by the next Release store of `tail`.
            slots[(t % CAP) as usize].store(t + 1, Ordering::Relaxed);
            t += 1;
            if t % SPSC_BATCH == 0 {
                // ORDERING: Release, as above.
                tail.store(t, Ordering::Release);
            }
        }
        // ORDERING: Release, as above.
        tail.store(t, Ordering::Release);
        ctl.finish(t);
        Ok(())
    })?;

    let t0 = ctl.parent_start()?;
    let budget = cfg.budget();
    let mut h = 0u64;
    let mut cached_tail = 0u64;
    let mut stopping = false;
    let mut idle = 0u32;
    let mut wait_end = deadline();
    loop {
        if h == cached_tail {
            // ORDERING: Release, pairs with the producer's Acquire load of `head`; the slots
            // before `h` have been read.
            head.store(h, Ordering::Release);
            if !stopping && t0.elapsed() >= budget {
                ctl.request_stop();
                stopping = true;
            }
            if stopping {
                if let Some(total) = ctl.child_count() {
                    // ORDERING: Acquire, ordered after `done`: the final tail.
                    cached_tail = tail.load(Ordering::Acquire);
                    ensure!(
                        cached_tail == total,
                        "spsc: tail {cached_tail} != count {total}"
                    );
                    if h == total {
                        break;
                    }
                }
            }
            let mut spins = 0u32;
            loop {
                // ORDERING: Acquire, pairs with the producer's Release store of `tail`;
                // makes the slot stores before it visible.
                cached_tail = tail.load(Ordering::Acquire);
                if cached_tail != h {
                    break;
                }
                spins = spins.wrapping_add(1);
                if spins % 1024 == 0 {
                    // Between batches, or stopping: leave to re-check the budget and `done`.
                    break;
                }
                std::hint::spin_loop();
            }
            if cached_tail == h {
                if idle == 0 {
                    wait_end = deadline();
                }
                idle += 1;
                if idle > crate::SPINS_BEFORE_YIELD / 1024 {
                    // Long idle: the producer is probably descheduled; let it run.
                    std::thread::yield_now();
                }
                ensure!(
                    Instant::now() < wait_end,
                    "spsc: timed out waiting for the producer"
                );
            } else {
                idle = 0;
            }
            ensure!(
                cached_tail >= h && cached_tail - h <= CAP,
                "spsc: impossible tail {cached_tail} for head {h}"
            );
            continue;
        }
        // ORDERING: Relaxed, made visible by the Acquire load of `tail` above.
        let v = slots[(h % CAP) as usize].load(Ordering::Relaxed);
        if v != h + 1 {
            bail!("spsc: slot {h} holds {v}, expected {}", h + 1);
        }
        h += 1;
        if h % SPSC_BATCH == 0 {
            // ORDERING: Release, as above.
            head.store(h, Ordering::Release);
        }
    }
    let elapsed = t0.elapsed();
    child.wait()?;
    ensure!(h > 0, "spsc: nothing was sent");
    Ok(Some(h as f64 / elapsed.as_secs_f64()))
}

/// A 1 MiB message whose every byte depends on its index `i`, so a reader can verify it.
fn fill_message(buf: &mut [u8], i: u64) {
    let seed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (k, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed ^ k as u64).to_le_bytes());
    }
}

/// Stamps message index `i` into three places of a prepared message (start, middle, end), so
/// a sender can reuse one buffer and a reader can check every message cheaply.
fn stamp(buf: &mut [u8], i: u64) {
    let n = buf.len();
    for at in [0, n / 2, n - 8] {
        buf[at..at + 8].copy_from_slice(&i.to_le_bytes());
    }
}

/// Checks the stamps of message `i` and a sample of its other bytes against `reference` (the
/// sender's buffer before stamping).
pub(crate) fn check_message(buf: &[u8], reference: &[u8], i: u64) -> anyhow::Result<()> {
    let n = buf.len();
    ensure!(
        n == reference.len(),
        "message of {n} bytes, expected {}",
        reference.len()
    );
    for at in [0, n / 2, n - 8] {
        let got = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        ensure!(got == i, "message {i}: stamp at {at} reads {got}");
    }
    for at in (4096 + 8..n - 8).step_by(4096) {
        ensure!(buf[at] == reference[at], "message {i}: byte {at} differs");
    }
    Ok(())
}

/// Checks a whole message `i` byte for byte.
pub(crate) fn check_message_fully(buf: &[u8], reference: &[u8], i: u64) -> anyhow::Result<()> {
    let mut expected = reference.to_vec();
    stamp(&mut expected, i);
    ensure!(
        buf == &expected[..],
        "message {i} differs from what was sent"
    );
    Ok(())
}

/// A message buffer for the senders of the `*_1mib` scenarios: the reference contents.
pub(crate) fn reference_message() -> Vec<u8> {
    let mut buf = vec![0u8; MIB];
    fill_message(&mut buf, 0x5eed);
    buf
}

/// Re-stamps a sender's buffer for message `i`.
pub(crate) fn stamp_message(buf: &mut [u8], i: u64) {
    stamp(buf, i);
}

/// `limit.memcpy_1mib`: copies a 1 MiB buffer into another in one process, as fast as it goes.
/// Reports GB/s (10^9 bytes per second) of bytes copied.
fn memcpy_1mib(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let mut src = reference_message();
    let mut dst = vec![0u8; MIB];
    let budget = cfg.budget();
    let t0 = Instant::now();
    let mut copies = 0u64;
    while copies % 16 != 0 || t0.elapsed() < budget {
        stamp(&mut src, copies);
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        copies += 1;
    }
    let elapsed = t0.elapsed();
    check_message_fully(&dst, &reference_message(), copies - 1)?;
    Ok(Some(
        (copies * MIB as u64) as f64 / elapsed.as_secs_f64() / 1e9,
    ))
}

/// `limit.ring_1mib`: 1 MiB messages through [`RING_SLOTS`] page-aligned slots of shared
/// memory. The child copies each message in from its own buffer, the parent copies it out into
/// its own and checks it. Reports GB/s of message bytes delivered.
fn ring_1mib(cfg: &Config) -> anyhow::Result<Option<f64>> {
    const RING_SLOTS: u64 = 4;
    const PAGE: usize = 4096;
    let head_at = CONTROL_LEN;
    let tail_at = CONTROL_LEN + LINE;
    let slots_at = (tail_at + LINE).next_multiple_of(PAGE);
    let block = SharedBlock::new(slots_at + RING_SLOTS as usize * MIB)?;
    let ctl = Control::at(&block)?;
    let head = block.u64_at(head_at)?;
    let tail = block.u64_at(tail_at)?;
    let slot = |i: u64| block.bytes_at(slots_at + (i % RING_SLOTS) as usize * MIB, MIB);
    let reference = reference_message();

    let child = fork_child(|| {
        let mut msg = reference.clone();
        ctl.child_start()?;
        let mut t = 0u64;
        while !ctl.should_stop() {
            spin_until(deadline(), "a free slot", || {
                // ORDERING: Acquire, pairs with the reader's Release store of `head`: the slot
                // has been copied out and may be overwritten.
                t - head.load(Ordering::Acquire) < RING_SLOTS
            })?;
            stamp(&mut msg, t);
            let dst = slot(t)?;
            // SAFETY: `dst` is a whole slot inside the block; the reader does not touch slot
            // `t % RING_SLOTS` until `tail` passes `t`, and it has released the slot's previous
            // message (checked above); `msg` is private to this process.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, MIB) };
            t += 1;
            // ORDERING: Release, pairs with the reader's Acquire load of `tail`; publishes the
            // copy into the slot.
            tail.store(t, Ordering::Release);
        }
        ctl.finish(t);
        Ok(())
    })?;

    let mut out = vec![0u8; MIB];
    let t0 = ctl.parent_start()?;
    let budget = cfg.budget();
    let mut h = 0u64;
    let mut stopping = false;
    loop {
        if !stopping && t0.elapsed() >= budget {
            ctl.request_stop();
            stopping = true;
        }
        let mut available = 0u64;
        let mut finished = None;
        spin_until(deadline(), "a message", || {
            // ORDERING: Acquire, pairs with the writer's Release store of `tail`; makes the
            // slot's bytes visible.
            available = tail.load(Ordering::Acquire);
            if available != h {
                return true;
            }
            finished = ctl.child_count();
            if finished.is_some() {
                // ORDERING: Acquire, ordered after the Acquire load of `done`: the writer's
                // final tail, which the load above may have missed.
                available = tail.load(Ordering::Acquire);
                return true;
            }
            false
        })?;
        if available == h {
            // The writer finished and everything it wrote has been read.
            let total = finished.unwrap_or(0);
            ensure!(
                total == h,
                "ring: the writer sent {total} messages, {h} arrived"
            );
            break;
        }
        ensure!(
            available > h && available - h <= RING_SLOTS,
            "ring: impossible tail {available} for head {h}"
        );
        let src = slot(h)?;
        // SAFETY: `src` is a whole slot inside the block, published by the writer's Release
        // store of `tail` (Acquire above); the writer does not reuse it until `head` passes
        // `h`; `out` is private to this process.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), MIB) };
        h += 1;
        // ORDERING: Release, pairs with the writer's Acquire load of `head`: we are done with
        // the slot.
        head.store(h, Ordering::Release);
        check_message(&out, &reference, h - 1)?;
    }
    let elapsed = t0.elapsed();
    child.wait()?;
    ensure!(h > 0, "ring: nothing was sent");
    check_message_fully(&out, &reference, h - 1)?;
    Ok(Some((h * MIB as u64) as f64 / elapsed.as_secs_f64() / 1e9))
}

/// `limit.futex_rtt`: the parent stores an odd value in a shared [`Futex`](ipc_core::futex::Futex)
/// and wakes the child, which answers with the next even value and wakes the parent; both sleep
/// in the kernel while they wait (`ipc_core::futex`, no spinning). Reports microseconds per
/// round trip.
fn futex_rtt(cfg: &Config) -> anyhow::Result<Option<f64>> {
    const STOP: u32 = u32::MAX;
    const WARMUP: u32 = 100;
    let block = SharedBlock::new(CONTROL_LEN + LINE)?;
    let ctl = Control::at(&block)?;
    let futex = block.futex_at(CONTROL_LEN)?;

    let child = fork_child(|| {
        ctl.child_start()?;
        let mut replies = 0u32;
        loop {
            let v = futex
                .wait_while(|v| v % 2 == 0, Some(deadline()))
                .map_err(|_| anyhow::anyhow!("futex: timed out waiting for the parent"))?;
            if v == STOP {
                break;
            }
            ensure!(
                v == 2 * replies + 1,
                "futex: got {v}, expected {}",
                2 * replies + 1
            );
            futex.store_and_wake_all(v + 1);
            replies += 1;
        }
        ctl.finish(u64::from(replies));
        Ok(())
    })?;

    ctl.parent_start()?;
    let budget = cfg.budget();
    let mut rounds = 0u32;
    let mut warm = 0u32;
    let mut t0 = Instant::now();
    loop {
        let serve = 2 * rounds + 1;
        futex.store_and_wake_all(serve);
        futex
            .wait_while(|v| v != serve + 1, Some(deadline()))
            .map_err(|_| anyhow::anyhow!("futex: timed out waiting for the child"))?;
        rounds += 1;
        if warm == 0 && (rounds == WARMUP || t0.elapsed() >= budget / 10) {
            warm = rounds;
            t0 = Instant::now();
        }
        if warm > 0 && rounds % 16 == 0 && t0.elapsed() >= budget {
            break;
        }
    }
    let elapsed = t0.elapsed();
    futex.store_and_wake_all(STOP);
    child.wait()?;
    let replies = ctl.child_count().context("futex child did not report")?;
    ensure!(
        replies == u64::from(rounds),
        "futex: child answered {replies} of {rounds}"
    );
    Ok(Some(elapsed.as_secs_f64() * 1e6 / f64::from(rounds - warm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_verify_and_detect_damage() {
        let reference = reference_message();
        let mut msg = reference.clone();
        stamp(&mut msg, 42);
        check_message(&msg, &reference, 42).unwrap();
        check_message_fully(&msg, &reference, 42).unwrap();
        assert!(check_message(&msg, &reference, 41).is_err());
        msg[8192 + 8] ^= 1;
        assert!(check_message(&msg, &reference, 42).is_err());
        msg[8192 + 8] ^= 1;
        msg[100] ^= 1;
        assert!(check_message_fully(&msg, &reference, 42).is_err());
    }
}
