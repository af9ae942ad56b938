//! One-way streams: the peer sends messages 0, 1, 2, … as fast as the mechanism takes them, this
//! process receives and checks each. The peer starts when told; the parent warms up, counts the
//! messages that arrive inside the timed window, then stops the peer and drains (untimed) what
//! is still in flight. The peer reports how many it sent, which must be how many arrived.

use std::time::Duration;

use anyhow::{Context, ensure};

use super::control::{Control, STOP, WARM};
use super::peer::{Peer, member, with_peer};
use super::wait::Patience;
use super::window::Window;
use crate::scenario::Quantity;

/// What a [`Sink`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// `n ≥ 1` messages arrived and were checked.
    Got(u64),
    /// Nothing was there (a polling receiver); the harness polls again.
    Idle,
    /// The sender finished (an end marker, or its end closed) and everything it sent arrived.
    End,
}

/// The receiving side of a stream, in this process.
pub trait Sink {
    /// Receives what is there from message `next` on and checks it.
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv>;
    /// After the end: checks the newest message (number `received - 1`) completely, if the sink
    /// kept it.
    fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
        let _ = received;
        Ok(())
    }
}

/// The sending side of a stream, on the peer.
pub trait Source {
    /// Sends message `i` (or a batch from `i` on); returns how many it sent, 0 when there was
    /// no room (the harness calls again).
    fn send(&mut self, i: u64) -> anyhow::Result<u64>;
    /// After the stop: tells the receiver that the `sent` messages were all (an end marker,
    /// closing its end, or publishing its last index; a polling [`Sink`] may also learn it from
    /// the harness).
    fn finish(self, sent: u64) -> anyhow::Result<()>;
}

/// A closure is a [`Sink`] (with no final check).
impl<F: FnMut(u64) -> anyhow::Result<Recv>> Sink for F {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        self(next)
    }
}

/// A closure is a [`Source`] whose receiver learns the end from the harness (a polling
/// [`Sink`]); dropping it drops its ends.
impl<F: FnMut(u64) -> anyhow::Result<u64>> Source for F {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        self(i)
    }
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Measures a stream from the [`Source`] that `child` makes on the peer to `sink` here; returns
/// messages per second times `per_message` (1, or the message size for bytes per second).
pub fn stream<K: Sink, S: Source>(
    peer: Peer,
    budget: Duration,
    per_message: u64,
    sink: &mut K,
    child: impl FnOnce() -> anyhow::Result<S> + Send,
) -> anyhow::Result<Quantity> {
    let ctl = Control::new(1)?;
    let ctl = &ctl;
    let source = move || {
        member(ctl, 0, child, |mut source: S| {
            ctl.wait_start()?;
            let phase = ctl.phase()?;
            let mut sent = 0u64;
            let mut patience = Patience::new();
            while phase.load() != STOP {
                match source.send(sent)? {
                    0 => patience.idle("room to send")?,
                    n => {
                        sent += n;
                        patience.reset();
                    }
                }
            }
            source.finish(sent)?;
            Ok((0, vec![sent]))
        })
    };
    with_peer(peer, source, |joiner| {
        ctl.wait_arrivals(1)?;
        ctl.set_phase(WARM)?;
        let mut window = Window::new(budget);
        let mut received = 0u64;
        let mut patience = Patience::new();
        loop {
            match sink.recv(received)? {
                Recv::Got(n) => {
                    received += n;
                    patience.reset();
                    if !window.ended() && window.tick(received) {
                        ctl.set_phase(STOP)?;
                    }
                }
                Recv::Idle => {
                    if !window.ended() && window.poll(received) {
                        ctl.set_phase(STOP)?;
                    }
                    if window.ended()
                        && ctl
                            .report_of(0)?
                            .is_some_and(|r| r.words.first() == Some(&received))
                    {
                        break;
                    }
                    patience.idle("a message")?;
                }
                Recv::End => break,
            }
        }
        joiner.join()?;
        ensure!(window.ended(), "the stream ended inside the window");
        let report = ctl.report_of(0)?.context("the peer did not report")?;
        let sent = report.words.first().copied().unwrap_or(0);
        ensure!(
            sent == received,
            "the peer sent {sent} messages, {received} arrived"
        );
        sink.check_last(received)?;
        Ok(Quantity::PerSecond(window.rate() * per_message as f64))
    })
}
