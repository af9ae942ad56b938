//! `iceoryx2.*`: Eclipse iceoryx2 (zero-copy shared-memory middleware) between two processes
//! (built with `--features peers`; without it these scenarios are skipped with that reason).
//!
//! Each process makes its own iceoryx2 node (the parent before the fork, the child after it);
//! the parent creates the services under a name unique to the repeat, the child opens them and
//! makes its ports before the harness's ready handshake. Receivers poll (`receive()` returns at
//! once), so every scenario except `event_rtt` busy-waits, like `limit.*`; `event_rtt` sleeps in
//! the listener.
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
//!
//! Receivers check every message's stamps and a sample of its bytes, and every 1024th message
//! completely.

use crate::message::MIB;
use crate::scenario::{Scenario, Unit};
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("iceoryx2.pubsub_rtt", Unit::Us, imp::pubsub_rtt),
        Scenario::new("iceoryx2.reqres_rtt", Unit::Us, imp::reqres_rtt),
        Scenario::new("iceoryx2.u64", Unit::MsgsPerSec, imp::stream_u64),
        Scenario::new("iceoryx2.1mib_copy", Unit::GbPerSec, |cfg| {
            imp::stream_slices(cfg.budget(), MIB, true)
        }),
        Scenario::new("iceoryx2.1mib_loan", Unit::GbPerSec, |cfg| {
            imp::stream_slices(cfg.budget(), MIB, false)
        }),
        Scenario::new("iceoryx2.event_rtt", Unit::Us, imp::event_rtt),
    ];
    v.extend(sweep::payload("iceoryx2.rtt", Unit::Us, |cfg, size| {
        imp::rtt_slices(cfg.sweep_budget(), size)
    }));
    v.extend(sweep::payload("iceoryx2.stream", Unit::GbPerSec, |cfg, size| {
        imp::stream_slices(cfg.sweep_budget(), size, false)
    }));
    v
}

#[cfg(not(feature = "peers"))]
mod imp {
    use std::time::Duration;

    use crate::scenario::{Config, Repeat, without_peers};

    pub(super) fn pubsub_rtt(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn reqres_rtt(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn stream_u64(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn event_rtt(_: &Config) -> Repeat {
        without_peers()
    }
    pub(super) fn stream_slices(_: Duration, _: usize, _: bool) -> Repeat {
        without_peers()
    }
    pub(super) fn rtt_slices(_: Duration, _: usize) -> Repeat {
        without_peers()
    }
}

#[cfg(feature = "peers")]
mod imp {
    use std::time::Duration;

    use anyhow::{anyhow, ensure};
    use iceoryx2::prelude::*;

    use crate::harness::{Patience, Peer, Recv, Rounds, WAIT_LIMIT, poll, round_trips, stream};
    use crate::message::{Inbox, Outbox, Pattern};
    use crate::scenario::{Config, Repeat};

    type Ipc = ipc::Service;

    const STOP: u64 = u64::MAX;

    macro_rules! ix {
        ($e:expr, $what:literal) => {
            $e.map_err(|e| anyhow!("iceoryx2 {}: {e:?}", $what))
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

    /// Sends with `send` until the message reached the one subscriber. Under
    /// `RetryUntilDelivered` a publisher that outruns its subscriber can still report a send
    /// that reached nobody (its list of chunks in use is full until the subscriber's returns
    /// are reclaimed); the message is then sent again, and the receiver's sequence check would
    /// catch a duplicate.
    fn deliver(mut send: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<()> {
        let mut patience = Patience::new();
        loop {
            match send()? {
                1 => return Ok(()),
                0 => patience.idle("a subscriber to take the message")?,
                n => anyhow::bail!("a message reached {n} subscribers"),
            }
        }
    }

    pub(super) fn pubsub_rtt(cfg: &Config) -> Repeat {
        let node = new_node()?;
        let (ping_name, pong_name) = (service_name("ping")?, service_name("pong")?);
        let ping = ix!(
            node.service_builder(&ping_name).publish_subscribe::<u64>().create(),
            "ping service"
        )?;
        let pong = ix!(
            node.service_builder(&pong_name).publish_subscribe::<u64>().create(),
            "pong service"
        )?;
        let tx = ix!(ping.publisher_builder().create(), "publisher")?;
        let rx = ix!(pong.subscriber_builder().create(), "subscriber")?;
        let mut parent = Rounds {
            round: |i: u64, _| {
                let serve = 2 * i + 1;
                let n = ix!(tx.send_copy(serve), "send")?;
                ensure!(n == 1, "the ping reached {n} subscribers");
                let reply = poll("a pong", || Ok(ix!(rx.receive(), "receive")?.map(|s| *s)))?;
                ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
                Ok(())
            },
            stop: |_| ix!(tx.send_copy(STOP), "send").map(drop),
        };
        Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
            let node = new_node()?;
            let ping = ix!(
                node.service_builder(&ping_name).publish_subscribe::<u64>().open(),
                "open ping"
            )?;
            let pong = ix!(
                node.service_builder(&pong_name).publish_subscribe::<u64>().open(),
                "open pong"
            )?;
            let rx = ix!(ping.subscriber_builder().create(), "subscriber")?;
            let tx = ix!(pong.publisher_builder().create(), "publisher")?;
            Ok(move |i: u64| {
                let _node = &node;
                let v = poll("a ping", || Ok(ix!(rx.receive(), "receive")?.map(|s| *s)))?;
                if v == STOP {
                    return Ok(false);
                }
                ensure!(v == 2 * i + 1, "got {v}, expected {}", 2 * i + 1);
                ix!(tx.send_copy(v + 1), "send")?;
                Ok(true)
            })
        })?
        .into())
    }

    pub(super) fn reqres_rtt(cfg: &Config) -> Repeat {
        let node = new_node()?;
        let name = service_name("reqres")?;
        let service = ix!(
            node.service_builder(&name).request_response::<u64, u64>().create(),
            "service"
        )?;
        let client = ix!(service.client_builder().create(), "client")?;
        let mut parent = Rounds {
            round: |i: u64, _| {
                let serve = 2 * i + 1;
                let pending = ix!(client.send_copy(serve), "request")?;
                let servers = pending.number_of_server_connections();
                ensure!(servers == 1, "the request reached {servers} servers");
                let reply = poll("a response", || {
                    Ok(ix!(pending.receive(), "receive")?.map(|r| *r))
                })?;
                ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
                Ok(())
            },
            stop: |_| ix!(client.send_copy(STOP), "request").map(drop),
        };
        Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
            let node = new_node()?;
            let service = ix!(
                node.service_builder(&name).request_response::<u64, u64>().open(),
                "open"
            )?;
            let server = ix!(service.server_builder().create(), "server")?;
            Ok(move |i: u64| {
                let _node = &node;
                let req = poll("a request", || ix!(server.receive(), "receive"))?;
                let v = *req;
                if v == STOP {
                    return Ok(false);
                }
                ensure!(v == 2 * i + 1, "got {v}, expected {}", 2 * i + 1);
                ix!(req.send_copy(v + 1), "respond")?;
                Ok(true)
            })
        })?
        .into())
    }

    pub(super) fn event_rtt(cfg: &Config) -> Repeat {
        const PING: usize = 1;
        const QUIT: usize = 2;
        let node = new_node()?;
        let (ping_name, pong_name) = (service_name("evping")?, service_name("evpong")?);
        let ping = ix!(node.service_builder(&ping_name).event().create(), "ping")?;
        let pong = ix!(node.service_builder(&pong_name).event().create(), "pong")?;
        let notifier = ix!(ping.notifier_builder().create(), "notifier")?;
        let listener = ix!(pong.listener_builder().create(), "listener")?;
        let mut parent = Rounds {
            round: |_, _| {
                let n = ix!(
                    notifier.notify_with_custom_event_id(EventId::new(PING)),
                    "notify"
                )?;
                ensure!(n == 1, "the ping reached {n} listeners");
                let mut pongs = 0u64;
                let got = ix!(listener.timed_wait(|a| pongs += a.count, WAIT_LIMIT), "wait")?;
                ensure!(got > 0 && pongs == 1, "expected one pong, got {pongs}");
                Ok(())
            },
            stop: |_| {
                ix!(notifier.notify_with_custom_event_id(EventId::new(QUIT)), "notify").map(drop)
            },
        };
        Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
            let node = new_node()?;
            let ping = ix!(node.service_builder(&ping_name).event().open(), "open ping")?;
            let pong = ix!(node.service_builder(&pong_name).event().open(), "open pong")?;
            let listener = ix!(ping.listener_builder().create(), "listener")?;
            let notifier = ix!(pong.notifier_builder().create(), "notifier")?;
            Ok(move |_: u64| {
                let _node = &node;
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
                    return Ok(false);
                }
                ensure!(pings == 1, "{pings} pings arrived at once");
                let n = ix!(notifier.notify(), "notify")?;
                ensure!(n == 1, "the pong reached {n} listeners");
                Ok(true)
            })
        })?
        .into())
    }

    pub(super) fn stream_u64(cfg: &Config) -> Repeat {
        const BUFFER: usize = 256;
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
        let rx = ix!(service.subscriber_builder().buffer_size(BUFFER).create(), "subscriber")?;
        let mut sink = |next: u64| {
            Ok(match ix!(rx.receive(), "receive")? {
                None => Recv::Idle,
                Some(v) => {
                    ensure!(*v == next + 1, "got {}, expected {}", *v, next + 1);
                    Recv::Got(1)
                }
            })
        };
        Ok(stream(Peer::Process, cfg.budget(), 1, &mut sink, move || {
            let node = new_node()?;
            let service =
                ix!(node.service_builder(&name).publish_subscribe::<u64>().open(), "open")?;
            let tx = ix!(
                service
                    .publisher_builder()
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create(),
                "publisher"
            )?;
            Ok(move |i: u64| {
                let _node = &node;
                deliver(|| ix!(tx.send_copy(i + 1), "send"))?;
                Ok(1)
            })
        })?
        .into())
    }

    /// How many samples a subscriber of `size`-byte slices may hold: about 32 MiB of buffer.
    fn slice_buffer(size: usize) -> usize {
        ((32 << 20) / size).clamp(2, 256)
    }

    /// The child streams `size`-byte slices; the parent checks each in place, or first copies
    /// it out into its own buffer when `copy_out`.
    pub(super) fn stream_slices(budget: Duration, size: usize, copy_out: bool) -> Repeat {
        let buffer = slice_buffer(size);
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
        let rx = ix!(service.subscriber_builder().buffer_size(buffer).create(), "subscriber")?;
        let mut inbox = Inbox::new(size);
        let mut sink = |next: u64| {
            let Some(sample) = ix!(rx.receive(), "receive")? else {
                return Ok(Recv::Idle);
            };
            let fully = next % 1024 == 0;
            if copy_out {
                ensure!(sample.len() == size, "a message of {} bytes", sample.len());
                inbox.buf().copy_from_slice(&sample);
                drop(sample);
                inbox.check(next)?;
                if fully {
                    inbox.check_last(next + 1)?;
                }
            } else if fully {
                inbox.pattern().check_fully(&sample, next)?;
            } else {
                inbox.pattern().check(&sample, next)?;
            }
            Ok(Recv::Got(1))
        };
        Ok(stream(Peer::Process, budget, size as u64, &mut sink, move || {
            let node = new_node()?;
            let service =
                ix!(node.service_builder(&name).publish_subscribe::<[u8]>().open(), "open")?;
            let tx = ix!(
                service
                    .publisher_builder()
                    .initial_max_slice_len(size)
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create(),
                "publisher"
            )?;
            let mut out = Outbox::new(size);
            Ok(move |i: u64| {
                let _node = &node;
                let msg = out.message(i);
                deliver(|| {
                    let sample = ix!(tx.loan_slice_uninit(size), "loan")?;
                    ix!(sample.write_from_slice(msg).send(), "send")
                })?;
                Ok(1)
            })
        })?
        .into())
    }

    /// Ping-pong of `size`-byte slices: the child checks each and publishes it back.
    pub(super) fn rtt_slices(budget: Duration, size: usize) -> Repeat {
        let node = new_node()?;
        let (ping_name, pong_name) = (service_name("sping")?, service_name("spong")?);
        let ping = ix!(
            node.service_builder(&ping_name).publish_subscribe::<[u8]>().create(),
            "ping service"
        )?;
        let pong = ix!(
            node.service_builder(&pong_name).publish_subscribe::<[u8]>().create(),
            "pong service"
        )?;
        let tx = ix!(ping.publisher_builder().initial_max_slice_len(size).create(), "publisher")?;
        let rx = ix!(pong.subscriber_builder().create(), "subscriber")?;
        let pattern = Pattern::new(size);
        let mut out = Outbox::new(size);
        let publish = |msg: &[u8]| -> anyhow::Result<()> {
            let sample = ix!(tx.loan_slice_uninit(msg.len()), "loan")?;
            let n = ix!(sample.write_from_slice(msg).send(), "send")?;
            ensure!(n == 1, "the ping reached {n} subscribers");
            Ok(())
        };
        let mut parent = Rounds {
            round: |i: u64, last: bool| {
                publish(out.message(i))?;
                let reply = poll("a pong", || ix!(rx.receive(), "receive"))?;
                if last {
                    pattern.check_fully(&reply, i)
                } else {
                    pattern.check(&reply, i)
                }
            },
            stop: |_| publish(&STOP.to_le_bytes()),
        };
        Ok(round_trips(Peer::Process, budget, &mut parent, move || {
            let node = new_node()?;
            let ping = ix!(
                node.service_builder(&ping_name).publish_subscribe::<[u8]>().open(),
                "open ping"
            )?;
            let pong = ix!(
                node.service_builder(&pong_name).publish_subscribe::<[u8]>().open(),
                "open pong"
            )?;
            let rx = ix!(ping.subscriber_builder().create(), "subscriber")?;
            let tx = ix!(pong.publisher_builder().initial_max_slice_len(size).create(), "publisher")?;
            let pattern = Pattern::new(size);
            Ok(move |i: u64| {
                let _node = &node;
                let msg = poll("a ping", || ix!(rx.receive(), "receive"))?;
                if Pattern::index(&msg) == Some(STOP) {
                    return Ok(false);
                }
                pattern.check(&msg, i)?;
                let reply = ix!(tx.loan_slice_uninit(size), "loan")?;
                let n = ix!(reply.write_from_slice(&msg).send(), "send")?;
                ensure!(n == 1, "the pong reached {n} subscribers");
                Ok(true)
            })
        })?
        .into())
    }
}
