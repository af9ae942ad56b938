//! `ours.manager_*`: ipc-pool's `Manager`, beside `python.manager_dict_set_rtt`.
//!
//! - `ours.manager_dict_set_rtt` (µs): `insert` on a manager dict proxy, one after another.
//! - `ours.manager_dict_rtt@Np` (µs): N client processes (1 to 16) each `insert` into one dict
//!   as fast as they can; the figure is the round trip as a client sees it (the window times N
//!   over the inserts made). The manager serves one request at a time, so past the point where
//!   it is busy the round trip grows with N.

use anyhow::{Context, ensure};
use ipc_pool::{DictProxy, Manager};

use crate::harness::{Member, Team, per_call};
use crate::scenario::{Config, Quantity, Repeat, Scenario, Unit};
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![Scenario::new(
        "ours.manager_dict_set_rtt",
        Unit::Us,
        dict_set_rtt,
    )];
    v.extend(sweep::processes(
        "ours.manager_dict_rtt",
        Unit::Us,
        &[1, 2, 4, 8, 16],
        &[1, 2, 4, 8, 16],
        dict_rtt_clients,
    ));
    v
}

type Dict = DictProxy<u64, u64>;

fn dict_set_rtt(cfg: &Config) -> Repeat {
    let m = Manager::start().context("manager")?;
    let d: Dict = m.dict().context("dict")?;
    let mut last = 0;
    let q = per_call(cfg.budget(), |i| {
        d.insert(i % 100, i).context("insert")?;
        last = i;
        Ok(())
    })?;
    ensure!(d.get(&(last % 100))? == Some(last), "wrong contents");
    ensure!(d.len()? == 100, "wrong length");
    Ok(q.into())
}

/// A client: inserts its count under its rank, request after request.
struct Client {
    dict: Dict,
    rank: u64,
    done: u64,
}

impl Member for Client {
    fn step(&mut self) -> anyhow::Result<Option<u64>> {
        self.done += 1;
        self.dict.insert(self.rank, self.done).context("insert")?;
        Ok(Some(1))
    }
    fn finish(self) -> anyhow::Result<Vec<u64>> {
        Ok(vec![self.done])
    }
}

fn dict_rtt_clients(cfg: &Config, n: usize) -> Repeat {
    let m = Manager::start().context("manager")?;
    let d: Dict = m.dict().context("dict")?;
    // Each client connects through the proxy's wire form, as a proxy passed to a process does.
    let wire = ipc_core::codec::encode(&d).context("encoding the proxy")?;
    let team = Team::fork(n, |rank| {
        Ok(Client {
            dict: ipc_core::codec::decode(&wire).context("decoding the proxy")?,
            rank: rank as u64,
            done: 0,
        })
    })?;
    let report = team.measure(cfg.sweep_budget())?;
    for (rank, member) in report.members.iter().enumerate() {
        let last = d.get(&(rank as u64))?;
        ensure!(
            last == Some(member.words[0]),
            "client {rank} made {} inserts, the dict holds {last:?}",
            member.words[0]
        );
    }
    let inserts = report.in_window(0..n);
    ensure!(inserts > 0, "no insert inside the window");
    Ok(Quantity::Seconds(report.secs * n as f64 / inserts as f64).into())
}
