//! `iceoryx2.*`: Eclipse iceoryx2 (zero-copy shared-memory middleware) between two processes
//! (built with `--features peers`; without it these scenarios are skipped with that reason).
//!
//! Each process makes its own iceoryx2 node (the parent before the fork, the child after it);
//! the parent creates the services under a name unique to the repeat, the child opens them and
//! raises a ready flag once its ports exist. Receivers poll (`receive()` returns at once), so
//! every scenario except `event_rtt` busy-waits, like `limit.*`; `event_rtt` sleeps in the
//! listener.
//!
//! - `pubsub_rtt` (µs): a `u64` counter published on one service and answered on another.
//! - `reqres_rtt` (µs): `client.send_copy(v)`, the server answers `v + 1`.
//! - `u64` (msgs/s): the child publishes 1, 2, 3, … (`send_copy`, `RetryUntilDelivered`
//!   backpressure, no overflow), the parent checks each.
//! - `1mib_copy` (GB/s): 1 MiB slices; the child writes each into a loaned sample from its own
//!   buffer, the parent copies each out into its own buffer (what every other `1mib`
//!   transport does).
//! - `1mib_loan` (GB/s): the same, but the parent checks each sample in place and copies
//!   nothing out: the zero-copy read.
//! - `event_rtt` (µs): notifier and listener in both directions; both sides sleep.
//! - `rtt@SIZE` (µs) and `stream@SIZE` (GB/s): the payload sweep; `rtt` copies the message
//!   into a loaned sample on both sides, `stream` reads in place as `1mib_loan` does.

use crate::{Config, Scenario};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario {
            name: "iceoryx2.pubsub_rtt",
            unit: "µs",
            higher_is_better: false,
            run: imp::pubsub_rtt,
        },
        Scenario {
            name: "iceoryx2.reqres_rtt",
            unit: "µs",
            higher_is_better: false,
            run: imp::reqres_rtt,
        },
        Scenario {
            name: "iceoryx2.u64",
            unit: "msgs/s",
            higher_is_better: true,
            run: imp::stream_u64,
        },
        Scenario {
            name: "iceoryx2.1mib_copy",
            unit: "GB/s",
            higher_is_better: true,
            run: |cfg| imp::stream_slices(cfg, super::limit::MIB, true, cfg.budget()),
        },
        Scenario {
            name: "iceoryx2.1mib_loan",
            unit: "GB/s",
            higher_is_better: true,
            run: |cfg| imp::stream_slices(cfg, super::limit::MIB, false, cfg.budget()),
        },
        Scenario {
            name: "iceoryx2.event_rtt",
            unit: "µs",
            higher_is_better: false,
            run: imp::event_rtt,
        },
    ];
    v.extend(crate::sweep!("iceoryx2.rtt", "µs", false, imp::rtt_slices));
    v.extend(crate::sweep!("iceoryx2.stream", "GB/s", true, stream_sweep));
    v
}

fn stream_sweep(cfg: &Config, size: usize) -> anyhow::Result<Option<f64>> {
    imp::stream_slices(cfg, size, false, crate::sweep::budget(cfg))
}

#[cfg(not(feature = "peers"))]
mod imp {
    use crate::Config;

    type Figure = anyhow::Result<Option<f64>>;

    fn off() -> Figure {
        crate::skip("built without --features peers")
    }

    pub(super) fn pubsub_rtt(_: &Config) -> Figure {
        off()
    }
    pub(super) fn reqres_rtt(_: &Config) -> Figure {
        off()
    }
    pub(super) fn stream_u64(_: &Config) -> Figure {
        off()
    }
    pub(super) fn event_rtt(_: &Config) -> Figure {
        off()
    }
    pub(super) fn stream_slices(_: &Config, _: usize, _: bool, _: std::time::Duration) -> Figure {
        off()
    }
    pub(super) fn rtt_slices(_: &Config, _: usize) -> Figure {
        off()
    }
}

#[cfg(feature = "peers")]
mod imp {
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, ensure};
    use iceoryx2::prelude::*;

    use crate::primitive::Ordering;
    use crate::shm::{LINE, SharedBlock};
    use crate::sweep::{self, Pattern};
    use crate::{Config, WAIT_LIMIT, fork_child, spin_until};

    type Figure = anyhow::Result<Option<f64>>;
    type Ipc = ipc::Service;

    const STOP: u64 = u64::MAX;

    fn ix(what: &'static str) -> impl Fn(&dyn std::fmt::Debug) -> anyhow::Error {
        move |e| anyhow!("iceoryx2 {what}: {e:?}")
    }

    macro_rules! ix {
        ($e:expr, $what:literal) => {
            $e.map_err(|e| ix($what)(&e))
        };
    }

    fn new_node() -> anyhow::Result<Node<Ipc>> {
        set_log_level(LogLevel::Error);
        ix!(NodeBuilder::new().create::<Ipc>(), "node")
    }

    /// A service name unique to this repeat.
    fn service_name(kind: &str) -> anyhow::Result<ServiceName> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        ix!(
            ServiceName::new(&format!("ipc-bench/{pid}/{nanos}/{kind}")),
            "service name"
        )
    }

    /// Polls `f` until it yields a value, spinning and then yielding like
    /// [`spin_until`](crate::spin_until), failing after [`WAIT_LIMIT`].
    fn poll<T>(what: &str, mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
        let mut out = None;
        let mut err = None;
        spin_until(Instant::now() + WAIT_LIMIT, what, || match f() {
            Ok(Some(v)) => {
                out = Some(v);
                true
            }
            Ok(None) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        })?;
        match (out, err) {
            (Some(v), _) => Ok(v),
            (None, Some(e)) => Err(e),
            (None, None) => Err(anyhow!("no value for {what}")),
        }
    }

    /// The parent's side of the warm-up and measurement loop of a round-trip scenario: calls
    /// `round(i)` until the budget is spent and returns (rounds, measured rounds, time).
    fn measure_rounds(
        budget: Duration,
        warmup: u64,
        mut round: impl FnMut(u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<(u64, u64, Duration)> {
        let (mut rounds, mut warm) = (0u64, 0u64);
        let mut t0 = Instant::now();
        loop {
            round(rounds)?;
            rounds += 1;
            if warm == 0 && (rounds == warmup || t0.elapsed() >= budget / 10) {
                warm = rounds;
                t0 = Instant::now();
            }
            if warm > 0 && rounds % 16 == 0 && t0.elapsed() >= budget {
                return Ok((rounds, rounds - warm, t0.elapsed()));
            }
        }
    }

    /// Sends with `send` until the message reached the one subscriber. Under
    /// `RetryUntilDelivered` a publisher that outruns its subscriber can still report a send
    /// that reached nobody (its list of chunks in use is full until the subscriber's returns
    /// are reclaimed); the message is then sent again, and the receiver's sequence check would
    /// catch a duplicate.
    fn deliver(mut send: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut tries = 0u32;
        loop {
            match send()? {
                1 => return Ok(()),
                0 if Instant::now() < deadline => {
                    tries += 1;
                    if tries < crate::SPINS_BEFORE_YIELD {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                n => anyhow::bail!("a message reached {n} subscribers"),
            }
        }
    }

    /// Waits for the child's ready flag.
    fn wait_ready(ready: &crate::primitive::SharedU64) -> anyhow::Result<()> {
        // ORDERING: Acquire pairs with the child's Release store after it made its ports.
        spin_until(Instant::now() + WAIT_LIMIT, "the child's ports", || {
            ready.load(Ordering::Acquire) == 1
        })
    }

    pub(super) fn pubsub_rtt(cfg: &Config) -> Figure {
        let block = SharedBlock::new(2 * LINE)?;
        let ready = block.u64_at(0)?;
        let replies_out = block.u64_at(LINE)?;
        let node = new_node()?;
        let (ping_name, pong_name) = (service_name("ping")?, service_name("pong")?);
        let ping = ix!(
            node.service_builder(&ping_name)
                .publish_subscribe::<u64>()
                .create(),
            "ping service"
        )?;
        let pong = ix!(
            node.service_builder(&pong_name)
                .publish_subscribe::<u64>()
                .create(),
            "pong service"
        )?;
        let tx = ix!(ping.publisher_builder().create(), "publisher")?;
        let rx = ix!(pong.subscriber_builder().create(), "subscriber")?;
        let child = fork_child(|| {
            let node = new_node()?;
            let ping = ix!(
                node.service_builder(&ping_name)
                    .publish_subscribe::<u64>()
                    .open(),
                "open ping"
            )?;
            let pong = ix!(
                node.service_builder(&pong_name)
                    .publish_subscribe::<u64>()
                    .open(),
                "open pong"
            )?;
            let rx = ix!(ping.subscriber_builder().create(), "subscriber")?;
            let tx = ix!(pong.publisher_builder().create(), "publisher")?;
            // ORDERING: Release publishes "my ports exist" to the parent's Acquire.
            ready.store(1, Ordering::Release);
            let mut replies = 0u64;
            loop {
                let v = poll("a ping", || Ok(ix!(rx.receive(), "receive")?.map(|s| *s)))?;
                if v == STOP {
                    // ORDERING: Relaxed; the parent reads it after waiting for this process.
                    replies_out.store(replies, Ordering::Relaxed);
                    return Ok(());
                }
                ensure!(
                    v == 2 * replies + 1,
                    "got {v}, expected {}",
                    2 * replies + 1
                );
                ix!(tx.send_copy(v + 1), "send")?;
                replies += 1;
            }
        })?;
        wait_ready(ready)?;
        let (rounds, measured, elapsed) = measure_rounds(cfg.budget(), 100, |i| {
            let serve = 2 * i + 1;
            let n = ix!(tx.send_copy(serve), "send")?;
            ensure!(n == 1, "the ping reached {n} subscribers");
            let reply = poll("a pong", || Ok(ix!(rx.receive(), "receive")?.map(|s| *s)))?;
            ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
            Ok(())
        })?;
        ix!(tx.send_copy(STOP), "send")?;
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let replies = replies_out.load(Ordering::Relaxed);
        ensure!(
            replies == rounds,
            "the child answered {replies} of {rounds}"
        );
        Ok(Some(elapsed.as_secs_f64() * 1e6 / measured as f64))
    }

    pub(super) fn reqres_rtt(cfg: &Config) -> Figure {
        let block = SharedBlock::new(2 * LINE)?;
        let ready = block.u64_at(0)?;
        let replies_out = block.u64_at(LINE)?;
        let node = new_node()?;
        let name = service_name("reqres")?;
        let service = ix!(
            node.service_builder(&name)
                .request_response::<u64, u64>()
                .create(),
            "service"
        )?;
        let client = ix!(service.client_builder().create(), "client")?;
        let child = fork_child(|| {
            let node = new_node()?;
            let service = ix!(
                node.service_builder(&name)
                    .request_response::<u64, u64>()
                    .open(),
                "open"
            )?;
            let server = ix!(service.server_builder().create(), "server")?;
            // ORDERING: Release publishes "my ports exist" to the parent's Acquire.
            ready.store(1, Ordering::Release);
            let mut replies = 0u64;
            loop {
                let req = poll("a request", || Ok(ix!(server.receive(), "receive")?))?;
                let v = *req;
                if v == STOP {
                    // ORDERING: Relaxed; the parent reads it after waiting for this process.
                    replies_out.store(replies, Ordering::Relaxed);
                    return Ok(());
                }
                ensure!(
                    v == 2 * replies + 1,
                    "got {v}, expected {}",
                    2 * replies + 1
                );
                ix!(req.send_copy(v + 1), "respond")?;
                replies += 1;
            }
        })?;
        wait_ready(ready)?;
        let (rounds, measured, elapsed) = measure_rounds(cfg.budget(), 100, |i| {
            let serve = 2 * i + 1;
            let pending = ix!(client.send_copy(serve), "request")?;
            ensure!(
                pending.number_of_server_connections() == 1,
                "the request reached {} servers",
                pending.number_of_server_connections()
            );
            let reply = poll("a response", || {
                Ok(ix!(pending.receive(), "receive")?.map(|r| *r))
            })?;
            ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
            Ok(())
        })?;
        let _last = ix!(client.send_copy(STOP), "request")?;
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let replies = replies_out.load(Ordering::Relaxed);
        ensure!(
            replies == rounds,
            "the child answered {replies} of {rounds}"
        );
        Ok(Some(elapsed.as_secs_f64() * 1e6 / measured as f64))
    }

    pub(super) fn event_rtt(cfg: &Config) -> Figure {
        const PING: usize = 1;
        const QUIT: usize = 2;
        let block = SharedBlock::new(2 * LINE)?;
        let ready = block.u64_at(0)?;
        let replies_out = block.u64_at(LINE)?;
        let node = new_node()?;
        let (ping_name, pong_name) = (service_name("evping")?, service_name("evpong")?);
        let ping = ix!(node.service_builder(&ping_name).event().create(), "ping")?;
        let pong = ix!(node.service_builder(&pong_name).event().create(), "pong")?;
        let notifier = ix!(ping.notifier_builder().create(), "notifier")?;
        let listener = ix!(pong.listener_builder().create(), "listener")?;
        let child = fork_child(|| {
            let node = new_node()?;
            let ping = ix!(node.service_builder(&ping_name).event().open(), "open ping")?;
            let pong = ix!(node.service_builder(&pong_name).event().open(), "open pong")?;
            let listener = ix!(ping.listener_builder().create(), "listener")?;
            let notifier = ix!(pong.notifier_builder().create(), "notifier")?;
            // ORDERING: Release publishes "my ports exist" to the parent's Acquire.
            ready.store(1, Ordering::Release);
            let mut replies = 0u64;
            loop {
                let (mut pings, mut quit) = (0u64, false);
                let n = ix!(
                    listener.timed_wait(
                        |a| match a.id.as_value() {
                            PING => pings += a.count,
                            _ => quit = true,
                        },
                        WAIT_LIMIT
                    ),
                    "wait"
                )?;
                ensure!(n > 0, "no ping within {WAIT_LIMIT:?}");
                if quit {
                    // ORDERING: Relaxed; the parent reads it after waiting for this process.
                    replies_out.store(replies, Ordering::Relaxed);
                    return Ok(());
                }
                ensure!(pings == 1, "{pings} pings arrived at once");
                let n = ix!(notifier.notify(), "notify")?;
                ensure!(n == 1, "the pong reached {n} listeners");
                replies += 1;
            }
        })?;
        wait_ready(ready)?;
        let (rounds, measured, elapsed) = measure_rounds(cfg.budget(), 100, |_| {
            let n = ix!(
                notifier.notify_with_custom_event_id(EventId::new(PING)),
                "notify"
            )?;
            ensure!(n == 1, "the ping reached {n} listeners");
            let mut pongs = 0u64;
            let got = ix!(
                listener.timed_wait(|a| pongs += a.count, WAIT_LIMIT),
                "wait"
            )?;
            ensure!(got > 0 && pongs == 1, "expected one pong, got {pongs}");
            Ok(())
        })?;
        ix!(
            notifier.notify_with_custom_event_id(EventId::new(QUIT)),
            "notify"
        )?;
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let replies = replies_out.load(Ordering::Relaxed);
        ensure!(
            replies == rounds,
            "the child answered {replies} of {rounds}"
        );
        Ok(Some(elapsed.as_secs_f64() * 1e6 / measured as f64))
    }

    pub(super) fn stream_u64(cfg: &Config) -> Figure {
        const BUFFER: usize = 256;
        let block = SharedBlock::new(2 * LINE)?;
        let stop = block.u64_at(0)?;
        let sent = block.u64_at(LINE)?;
        let node = new_node()?;
        let name = service_name("u64")?;
        let service = ix!(
            node.service_builder(&name)
                .publish_subscribe::<u64>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(BUFFER)
                .create(),
            "service"
        )?;
        let rx = ix!(
            service.subscriber_builder().buffer_size(BUFFER).create(),
            "subscriber"
        )?;
        let child = fork_child(|| {
            let node = new_node()?;
            let service = ix!(
                node.service_builder(&name)
                    .publish_subscribe::<u64>()
                    .open(),
                "open"
            )?;
            let tx = ix!(
                service
                    .publisher_builder()
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create(),
                "publisher"
            )?;
            let mut i = 0u64;
            // ORDERING: Relaxed, a request flag; the values travel through the service.
            while stop.load(Ordering::Relaxed) == 0 {
                i += 1;
                deliver(|| ix!(tx.send_copy(i), "send"))?;
            }
            ix!(tx.send_copy(0), "send")?;
            // ORDERING: Relaxed; the parent reads it after waiting for this process.
            sent.store(i, Ordering::Relaxed);
            Ok(())
        })?;
        let budget = cfg.budget();
        let t0 = Instant::now();
        let mut received = 0u64;
        loop {
            let v = poll("a value", || Ok(ix!(rx.receive(), "receive")?.map(|s| *s)))?;
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

    /// How many samples a subscriber of `size`-byte slices may hold: about 32 MiB of buffer.
    fn slice_buffer(size: usize) -> usize {
        ((32 << 20) / size).clamp(2, 256)
    }

    /// The child streams `size`-byte slices; the parent checks each in place, or first copies
    /// it out into its own buffer when `copy_out`.
    pub(super) fn stream_slices(
        _cfg: &Config,
        size: usize,
        copy_out: bool,
        budget: Duration,
    ) -> Figure {
        let buffer = slice_buffer(size);
        let block = SharedBlock::new(2 * LINE)?;
        let stop = block.u64_at(0)?;
        let sent = block.u64_at(LINE)?;
        let pattern = Pattern::new(size);
        let node = new_node()?;
        let name = service_name("slices")?;
        let service = ix!(
            node.service_builder(&name)
                .publish_subscribe::<[u8]>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(buffer)
                .create(),
            "service"
        )?;
        let rx = ix!(
            service.subscriber_builder().buffer_size(buffer).create(),
            "subscriber"
        )?;
        let child = fork_child(|| {
            let node = new_node()?;
            let service = ix!(
                node.service_builder(&name)
                    .publish_subscribe::<[u8]>()
                    .open(),
                "open"
            )?;
            let tx = ix!(
                service
                    .publisher_builder()
                    .initial_max_slice_len(size)
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create(),
                "publisher"
            )?;
            let mut msg = pattern.reference().to_vec();
            let mut i = 0u64;
            // ORDERING: Relaxed, a request flag; the messages travel through the service.
            while stop.load(Ordering::Relaxed) == 0 {
                pattern.stamp(&mut msg, i);
                deliver(|| {
                    let sample = ix!(tx.loan_slice_uninit(size), "loan")?;
                    ix!(sample.write_from_slice(&msg).send(), "send")
                })?;
                i += 1;
            }
            let sample = ix!(tx.loan_slice_uninit(8), "loan")?;
            ix!(sample.write_from_slice(&STOP.to_le_bytes()).send(), "send")?;
            // ORDERING: Relaxed; the parent reads it after waiting for this process.
            sent.store(i, Ordering::Relaxed);
            Ok(())
        })?;
        let mut buf = vec![0u8; size];
        let t0 = Instant::now();
        let mut received = 0u64;
        loop {
            let sample = poll("a message", || ix!(rx.receive(), "receive"))?;
            let payload: &[u8] = &sample;
            if payload.len() == 8 && Pattern::index(payload) == Some(STOP) {
                break;
            }
            if copy_out {
                ensure!(
                    payload.len() == size,
                    "a message of {} bytes",
                    payload.len()
                );
                buf.copy_from_slice(payload);
                drop(sample);
                pattern.check(&buf, received)?;
            } else {
                pattern.check(payload, received)?;
                if t0.elapsed() >= budget {
                    // The last message: checked whole, in place.
                    pattern.check_fully(payload, received)?;
                }
            }
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
        if copy_out {
            pattern.check_fully(&buf, received - 1)?;
        }
        Ok(Some(
            (received * size as u64) as f64 / elapsed.as_secs_f64() / 1e9,
        ))
    }

    /// Ping-pong of `size`-byte slices: the child checks each and publishes it back.
    pub(super) fn rtt_slices(cfg: &Config, size: usize) -> Figure {
        let block = SharedBlock::new(2 * LINE)?;
        let ready = block.u64_at(0)?;
        let replies_out = block.u64_at(LINE)?;
        let pattern = Pattern::new(size);
        let node = new_node()?;
        let (ping_name, pong_name) = (service_name("sping")?, service_name("spong")?);
        let ping = ix!(
            node.service_builder(&ping_name)
                .publish_subscribe::<[u8]>()
                .create(),
            "ping service"
        )?;
        let pong = ix!(
            node.service_builder(&pong_name)
                .publish_subscribe::<[u8]>()
                .create(),
            "pong service"
        )?;
        let tx = ix!(
            ping.publisher_builder()
                .initial_max_slice_len(size)
                .create(),
            "publisher"
        )?;
        let rx = ix!(pong.subscriber_builder().create(), "subscriber")?;
        let child = fork_child(|| {
            let node = new_node()?;
            let ping = ix!(
                node.service_builder(&ping_name)
                    .publish_subscribe::<[u8]>()
                    .open(),
                "open ping"
            )?;
            let pong = ix!(
                node.service_builder(&pong_name)
                    .publish_subscribe::<[u8]>()
                    .open(),
                "open pong"
            )?;
            let rx = ix!(ping.subscriber_builder().create(), "subscriber")?;
            let tx = ix!(
                pong.publisher_builder()
                    .initial_max_slice_len(size)
                    .create(),
                "publisher"
            )?;
            // ORDERING: Release publishes "my ports exist" to the parent's Acquire.
            ready.store(1, Ordering::Release);
            let mut replies = 0u64;
            loop {
                let msg = poll("a ping", || ix!(rx.receive(), "receive"))?;
                if Pattern::index(&msg) == Some(STOP) {
                    // ORDERING: Relaxed; the parent reads it after waiting for this process.
                    replies_out.store(replies, Ordering::Relaxed);
                    return Ok(());
                }
                pattern.check(&msg, replies)?;
                let out = ix!(tx.loan_slice_uninit(size), "loan")?;
                let n = ix!(out.write_from_slice(&msg).send(), "send")?;
                ensure!(n == 1, "the pong reached {n} subscribers");
                replies += 1;
            }
        })?;
        wait_ready(ready)?;
        let mut msg = pattern.reference().to_vec();
        let mut round = |i: u64, fully: bool| -> anyhow::Result<()> {
            pattern.stamp(&mut msg, i);
            let out = ix!(tx.loan_slice_uninit(size), "loan")?;
            let n = ix!(out.write_from_slice(&msg).send(), "send")?;
            ensure!(n == 1, "the ping reached {n} subscribers");
            let reply = poll("a pong", || ix!(rx.receive(), "receive"))?;
            if fully {
                pattern.check_fully(&reply, i)
            } else {
                pattern.check(&reply, i)
            }
        };
        let (rounds, measured, elapsed) =
            measure_rounds(sweep::budget(cfg), 20, |i| round(i, false))?;
        // One more round, untimed, whose reply is checked byte for byte.
        round(rounds, true)?;
        let rounds = rounds + 1;
        pattern.stamp(&mut msg, STOP);
        let out = ix!(tx.loan_slice_uninit(size), "loan")?;
        ix!(out.write_from_slice(&msg).send(), "send")?;
        child.wait()?;
        // ORDERING: Relaxed; waitpid ordered the child's store before this load.
        let replies = replies_out.load(Ordering::Relaxed);
        ensure!(
            replies == rounds,
            "the child answered {replies} of {rounds}"
        );
        Ok(Some(elapsed.as_secs_f64() * 1e6 / measured as f64))
    }
}
