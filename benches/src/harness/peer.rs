//! Where the other side of a two-sided scenario runs: a forked process (every cross-process
//! scenario) or a thread of this process (the in-process references).

use std::thread::ScopedJoinHandle;

use super::control::Control;
use super::fork::{Affinity, Child, fork_with};

/// Where the peer of a two-sided scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A forked child process (under `--pin A,B`, on CPU `B`).
    Process,
    /// A thread of this process (under `--pin A,B`, pinned to CPU `B`).
    Thread,
}

/// The parent's hold on a running peer.
pub(crate) enum Joiner<'scope> {
    Process(Option<Child>),
    Thread(Option<ScopedJoinHandle<'scope, anyhow::Result<()>>>),
}

impl Joiner<'_> {
    /// Waits for the peer and fails unless it succeeded.
    pub(crate) fn join(&mut self) -> anyhow::Result<()> {
        match self {
            Joiner::Process(child) => match child.take() {
                Some(c) => c.wait(),
                None => Ok(()),
            },
            Joiner::Thread(handle) => match handle.take() {
                Some(h) => h
                    .join()
                    .map_err(|_| anyhow::anyhow!("the peer thread panicked"))?,
                None => Ok(()),
            },
        }
    }
}

/// Runs `child` on a peer and `parent` here; `parent` joins the peer through its [`Joiner`]
/// when it wants the peer's final report. A failing parent kills a peer process; a peer
/// thread is joined (its waits are bounded).
pub(crate) fn with_peer<R>(
    peer: Peer,
    child: impl FnOnce() -> anyhow::Result<()> + Send,
    parent: impl FnOnce(&mut Joiner<'_>) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    match peer {
        Peer::Process => {
            let mut joiner = Joiner::Process(Some(fork_with(Affinity::Peer, child)?));
            let r = parent(&mut joiner)?;
            joiner.join()?;
            Ok(r)
        }
        Peer::Thread => std::thread::scope(|s| {
            let handle = s.spawn(|| {
                if let Some(cpu) = crate::pin::child_cpu() {
                    crate::pin::pin_current(cpu).map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
                }
                child()
            });
            let mut joiner = Joiner::Thread(Some(handle));
            let r = parent(&mut joiner);
            let joined = joiner.join();
            let r = r?;
            joined?;
            Ok(r)
        }),
    }
}

/// The body of a member: sets up with `setup` (reporting a failure at once, so that the parent
/// stops waiting), announces itself, runs `work`, and reports what `work` returns.
pub(crate) fn member<S>(
    ctl: &Control,
    rank: usize,
    setup: impl FnOnce() -> anyhow::Result<S>,
    work: impl FnOnce(S) -> anyhow::Result<(u64, Vec<u64>)>,
) -> anyhow::Result<()> {
    let state = match setup() {
        Ok(s) => s,
        Err(e) => {
            ctl.fail();
            return Err(e.context("setting up"));
        }
    };
    ctl.arrive()?;
    let (in_window, words) = work(state)?;
    ctl.report(rank, in_window, &words)
}
