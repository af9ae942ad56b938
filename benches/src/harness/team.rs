//! Teams: N forked processes doing their part at once (producers and consumers of one queue,
//! processes contending for one lock, clients of one manager), this process only directing. It
//! forks them all and waits until every member has set up, then moves them through the phases
//! (warm-up, measured window, stop) and collects what each reported.
//!
//! The warm-up starts once every member has done its first operation (on a busy machine a
//! forked process can wait a while to be scheduled). Members count their operations themselves
//! and note where they were when they saw the window open and close; the window's length is the
//! parent's, between its two phase changes.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use super::control::{Control, MEASURE, REPORT_WORDS, Report, STOP, WARM};
use super::fork::{Affinity, Child, fork_with};
use super::peer::member;

/// What a member of a team does.
pub trait Member {
    /// One operation (or a batch): how many completed, or `None` when there is nothing more to
    /// do (a consumer whose producers have all finished).
    fn step(&mut self) -> anyhow::Result<Option<u64>>;
    /// The measured window opens (`true`) or closes (`false`), as this member sees it.
    fn window(&mut self, open: bool) {
        let _ = open;
    }
    /// After the stop: finishes (closes its end, drains what is left) and returns the words
    /// it reports (at most [`REPORT_WORDS`]).
    fn finish(self) -> anyhow::Result<Vec<u64>>;
}

/// A team that has set up and waits to start.
#[derive(Debug)]
pub struct Team {
    ctl: Control,
    children: Vec<Child>,
}

/// What a team measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamReport {
    /// The measured window, in seconds.
    pub secs: f64,
    /// Each member's report, by rank.
    pub members: Vec<Report>,
}

impl TeamReport {
    /// The operations of the members in `ranks` inside the window.
    pub fn in_window(&self, ranks: std::ops::Range<usize>) -> u64 {
        self.members[ranks].iter().map(|r| r.in_window).sum()
    }
}

impl Team {
    /// Forks `n` members; member `rank` runs what `make(rank)` sets up (in the child, after the
    /// fork). Returns once every member has set up, so that the caller can drop what it no
    /// longer needs (its own handle of a queue, say) before the start.
    pub fn fork<M: Member>(
        n: usize,
        make: impl Fn(usize) -> anyhow::Result<M>,
    ) -> anyhow::Result<Team> {
        let ctl = Control::new(n)?;
        let mut children = Vec::with_capacity(n);
        for rank in 0..n {
            let body = || member(&ctl, rank, || make(rank), |m| run(&ctl, m));
            children.push(fork_with(Affinity::Any, body)?);
        }
        ctl.wait_arrivals(n)?;
        Ok(Team { ctl, children })
    }

    /// Starts the team: a warm-up of a tenth of `budget`, the measured window of `budget`, then
    /// the stop; waits for every member and returns their reports.
    pub fn measure(self, budget: Duration) -> anyhow::Result<TeamReport> {
        let Team { ctl, children } = self;
        ctl.set_phase(WARM)?;
        // On a busy machine a member may take a while to be scheduled at all: the warm-up
        // starts once every member is working.
        ctl.wait_started(children.len())?;
        std::thread::sleep(budget / 10);
        ctl.set_phase(MEASURE)?;
        let t0 = Instant::now();
        std::thread::sleep(budget);
        ctl.set_phase(STOP)?;
        let secs = t0.elapsed().as_secs_f64();
        for (rank, child) in children.into_iter().enumerate() {
            child.wait().with_context(|| format!("member {rank}"))?;
        }
        let members = (0..ctl.members())
            .map(|rank| {
                ctl.report_of(rank)?
                    .with_context(|| format!("member {rank} did not report"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(TeamReport { secs, members })
    }
}

/// A member's loop: waits for the start, steps until the stop, noting the window.
fn run<M: Member>(ctl: &Control, mut m: M) -> anyhow::Result<(u64, Vec<u64>)> {
    let mut seen = ctl.wait_start()?;
    let phase = ctl.phase()?;
    let (mut done, mut opened) = (0u64, None);
    let closed = loop {
        let p = phase.load();
        if p != seen {
            if p >= MEASURE && opened.is_none() {
                opened = Some(done);
                m.window(true);
            }
            if p == STOP {
                m.window(false);
                break done;
            }
            seen = p;
        }
        match m.step()? {
            Some(n) => {
                if done == 0 {
                    ctl.start()?;
                }
                done += n;
            }
            None => {
                ensure!(
                    phase.load() == STOP,
                    "a member ran out of work before the stop"
                );
                seen = STOP - 1;
            }
        }
    };
    let in_window = closed - opened.unwrap_or(closed);
    let words = m.finish()?;
    ensure!(
        words.len() <= REPORT_WORDS,
        "a report of {} words",
        words.len()
    );
    Ok((in_window, words))
}
