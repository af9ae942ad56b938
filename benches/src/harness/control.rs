//! The words a harness shares with the processes it forks, in an anonymous [`SharedBlock`]
//! mapped before the fork, each group on its own cache line:
//!
//! | offset            | word                                                                 |
//! |-------------------|----------------------------------------------------------------------|
//! | 0                 | the phase, a [`Futex`]: `STARTING` → `WARM` → `MEASURE` → `STOP`       |
//! | `LINE`            | how many members arrived (set up and ready); how many failed setting up; how many have started working |
//! | `(2 + rank) LINE` | member `rank`'s report: a done flag, its operations inside the measured window, then up to [`REPORT_WORDS`] words of its own |
//!
//! Members wait for `WARM` asleep on the futex (a team can be many more processes than CPUs),
//! then read the phase as they work: only the parent writes it, three times a repeat, so the
//! line stays shared in every cache and a read costs an L1 hit.

use anyhow::{Context, ensure};
use ipc_core::raw::futex::Futex;

use super::wait::{Patience, deadline};
use crate::primitive::{Ordering, SharedU64};
use crate::shm::{LINE, SharedBlock};

/// Members are forked and setting up.
pub(crate) const STARTING: u32 = 0;
/// Members run, untimed.
pub(crate) const WARM: u32 = 1;
/// Members run inside the measured window.
pub(crate) const MEASURE: u32 = 2;
/// Members stop, finish and report.
pub(crate) const STOP: u32 = 3;

/// The words of its own a member may report.
pub const REPORT_WORDS: usize = LINE / 8 - 2;

/// What a member reported once it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its operations inside the measured window (as the harness counted them).
    pub in_window: u64,
    /// The words it reported itself.
    pub words: Vec<u64>,
}

/// The control block of one repeat.
#[derive(Debug)]
pub(crate) struct Control {
    block: SharedBlock,
    members: usize,
}

impl Control {
    /// A block for `members` forked processes.
    pub(crate) fn new(members: usize) -> anyhow::Result<Self> {
        let len = (2 + members)
            .checked_mul(LINE)
            .context("too many members")?;
        Ok(Self {
            block: SharedBlock::new(len)?,
            members,
        })
    }

    /// How many members the block has room for.
    pub(crate) fn members(&self) -> usize {
        self.members
    }

    /// The phase word.
    pub(crate) fn phase(&self) -> anyhow::Result<&Futex> {
        self.block.futex_at(0)
    }

    fn arrived(&self) -> anyhow::Result<&SharedU64> {
        self.block.u64_at(LINE)
    }

    fn failed(&self) -> anyhow::Result<&SharedU64> {
        self.block.u64_at(LINE + 8)
    }

    fn started(&self) -> anyhow::Result<&SharedU64> {
        self.block.u64_at(LINE + 16)
    }

    /// Member: it has started working (its first operation is done).
    pub(crate) fn start(&self) -> anyhow::Result<()> {
        // ORDERING: Relaxed, a count the parent polls; it publishes nothing.
        self.started()?.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Parent: waits until `n` members have started working.
    pub(crate) fn wait_started(&self, n: usize) -> anyhow::Result<()> {
        let started = self.started()?;
        let mut patience = Patience::new();
        // ORDERING: Relaxed, see `start`.
        while started.load(Ordering::Relaxed) < n as u64 {
            patience.idle("every member to start")?;
        }
        Ok(())
    }

    fn slot(&self, rank: usize) -> anyhow::Result<&[SharedU64]> {
        ensure!(rank < self.members, "member {rank} of {}", self.members);
        self.block.u64_slice_at((2 + rank) * LINE, LINE / 8)
    }

    /// Member: set up, ready to start.
    pub(crate) fn arrive(&self) -> anyhow::Result<()> {
        // ORDERING: Release, pairs with the Acquire in `wait_arrivals`; publishes nothing but
        // the fact that this member is ready (its objects live in its own process).
        self.arrived()?.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Member: setting up failed (the parent stops waiting for arrivals).
    pub(crate) fn fail(&self) {
        if let Ok(w) = self.failed() {
            // ORDERING: Relaxed, a flag the parent polls; the reason is on standard error.
            w.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Member: sleeps until the parent starts the run; returns the phase.
    pub(crate) fn wait_start(&self) -> anyhow::Result<u32> {
        self.phase()?
            .wait_while(|p| p == STARTING, Some(deadline()))
            .map_err(|_| anyhow::anyhow!("timed out waiting for the start"))
    }

    /// Member: records its report (read by the parent once the member has exited).
    pub(crate) fn report(&self, rank: usize, in_window: u64, words: &[u64]) -> anyhow::Result<()> {
        ensure!(
            words.len() <= REPORT_WORDS,
            "a report of {} words (at most {REPORT_WORDS})",
            words.len()
        );
        let slot = self.slot(rank)?;
        // ORDERING: Relaxed, published by the Release store of the done flag below.
        slot[1].store(in_window, Ordering::Relaxed);
        for (w, &v) in slot[2..].iter().zip(words) {
            // ORDERING: Relaxed, as above.
            w.store(v, Ordering::Relaxed);
        }
        // ORDERING: Release, pairs with the Acquire in `report_of`; publishes the words.
        slot[0].store(1 + words.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Parent: waits until `n` members arrived; fails at once if one failed setting up.
    pub(crate) fn wait_arrivals(&self, n: usize) -> anyhow::Result<()> {
        let (arrived, failed) = (self.arrived()?, self.failed()?);
        let mut patience = Patience::new();
        loop {
            // ORDERING: Acquire, pairs with the Release in `arrive`.
            if arrived.load(Ordering::Acquire) == n as u64 {
                return Ok(());
            }
            // ORDERING: Relaxed, see `fail`.
            if failed.load(Ordering::Relaxed) > 0 {
                anyhow::bail!("a benchmark process failed to set up");
            }
            patience.idle("the benchmark processes to set up")?;
        }
    }

    /// Parent: moves every member to `phase`, waking those asleep.
    pub(crate) fn set_phase(&self, phase: u32) -> anyhow::Result<()> {
        self.phase()?.store_and_wake_all(phase);
        Ok(())
    }

    /// Parent: member `rank`'s report, if it made one.
    pub(crate) fn report_of(&self, rank: usize) -> anyhow::Result<Option<Report>> {
        let slot = self.slot(rank)?;
        // ORDERING: Acquire, pairs with the Release in `report`.
        let done = slot[0].load(Ordering::Acquire);
        if done == 0 {
            return Ok(None);
        }
        let n = (done - 1) as usize;
        ensure!(n <= REPORT_WORDS, "member {rank}: a report of {n} words");
        Ok(Some(Report {
            // ORDERING: Relaxed, ordered after the Acquire load of the done flag.
            in_window: slot[1].load(Ordering::Relaxed),
            // ORDERING: Relaxed, as above.
            words: slot[2..2 + n]
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect(),
        }))
    }
}
