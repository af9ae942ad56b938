//! Round trips between this process and a peer: the parent sends request 0, 1, 2, …, the peer
//! answers each, the parent checks every answer. A warm-up, then the timed window, then one
//! more (untimed) round trip whose answer is checked completely, then the stop; the peer reports
//! how many requests it answered, which must be every one.

use std::time::Duration;

use anyhow::{Context, ensure};

use super::control::Control;
use super::peer::{Peer, member, with_peer};
use super::window::Window;
use crate::scenario::Quantity;

/// The parent's side of a round-trip scenario.
pub trait RoundTrip {
    /// Sends request `i`, waits for the answer and checks it (completely when `last`: the
    /// untimed round trip after the window).
    fn round(&mut self, i: u64, last: bool) -> anyhow::Result<()>;
    /// Tells the peer that no request follows the `rounds` it was sent.
    fn stop(&mut self, rounds: u64) -> anyhow::Result<()>;
}

/// The peer's side of a round-trip scenario.
pub trait Echo {
    /// Waits for request `i` and answers it; `Ok(false)` when the stop came instead.
    fn serve(&mut self, i: u64) -> anyhow::Result<bool>;
}

/// A [`RoundTrip`] made of two closures that share the parent's ends.
#[derive(Debug)]
pub struct Rounds<F, G> {
    /// [`RoundTrip::round`].
    pub round: F,
    /// [`RoundTrip::stop`].
    pub stop: G,
}

impl<F, G> RoundTrip for Rounds<F, G>
where
    F: FnMut(u64, bool) -> anyhow::Result<()>,
    G: FnMut(u64) -> anyhow::Result<()>,
{
    fn round(&mut self, i: u64, last: bool) -> anyhow::Result<()> {
        (self.round)(i, last)
    }
    fn stop(&mut self, rounds: u64) -> anyhow::Result<()> {
        (self.stop)(rounds)
    }
}

/// A closure is an [`Echo`].
impl<F: FnMut(u64) -> anyhow::Result<bool>> Echo for F {
    fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
        self(i)
    }
}

/// Measures round trips between `parent` here and the [`Echo`] that `child` makes on the peer
/// (after the fork, so that it opens its own ends); returns the time per round trip.
pub fn round_trips<R: RoundTrip, E: Echo>(
    peer: Peer,
    budget: Duration,
    parent: &mut R,
    child: impl FnOnce() -> anyhow::Result<E> + Send,
) -> anyhow::Result<Quantity> {
    let ctl = Control::new(1)?;
    let ctl = &ctl;
    let echo = move || {
        member(ctl, 0, child, |mut echo: E| {
            let mut answered = 0u64;
            while echo.serve(answered)? {
                answered += 1;
            }
            Ok((0, vec![answered]))
        })
    };
    with_peer(peer, echo, |joiner| {
        ctl.wait_arrivals(1)?;
        let mut window = Window::new(budget);
        let mut rounds = 0u64;
        loop {
            parent.round(rounds, false)?;
            rounds += 1;
            if window.tick(rounds) {
                break;
            }
        }
        parent.round(rounds, true)?;
        rounds += 1;
        parent.stop(rounds)?;
        joiner.join()?;
        let report = ctl.report_of(0)?.context("the peer did not report")?;
        let answered = report.words.first().copied().unwrap_or(0);
        ensure!(
            answered == rounds,
            "the peer answered {answered} of {rounds} requests"
        );
        Ok(Quantity::Seconds(window.per_op()))
    })
}
