//! A host rank: joins the master (rank 0) through the same handshake as a zenoh host, runs the
//! chunks it is sent on its lanes (`crate::host::Lanes`), and leaves when told.

use std::sync::Arc;
use std::sync::mpsc;

use ipc_core::codec;
use mpi::topology::Rank;

use super::MpiError;
use super::engine::{Cmd, MASTER, Outbox, TAG_BYE, TAG_JOIN, TAG_MSG, TAG_REPLY, Wire};
use crate::BuildId;
use crate::host::{LaneConfig, Lanes, ServeEnd};
use crate::link::HostLink;
use crate::task::WorkerInit;
use crate::wire::{JoinReply, JoinRequest, PROTOCOL};

/// The host's sends: through the MPI thread, to the master.
struct RankLink(Outbox);

impl HostLink for RankLink {
    fn send(&self, bytes: Vec<u8>) -> bool {
        self.0.push(Cmd::Send {
            rank: MASTER,
            tag: TAG_MSG,
            bytes,
        })
    }
}

/// Serves the master until it says stop; then says goodbye (always, so the master can
/// finalise) and returns.
pub(crate) fn serve(
    wire: &mut Wire,
    rx: &mpsc::Receiver<Cmd>,
    tx: mpsc::Sender<Cmd>,
    config: LaneConfig,
) -> Result<ServeEnd, MpiError> {
    let outcome = join_and_serve(wire, rx, tx, config);
    wire.send(MASTER, TAG_BYE, Vec::new());
    wire.flush();
    outcome
}

fn join_and_serve(
    wire: &mut Wire,
    rx: &mpsc::Receiver<Cmd>,
    tx: mpsc::Sender<Cmd>,
    config: LaneConfig,
) -> Result<ServeEnd, MpiError> {
    let rank = wire.rank();
    let request = JoinRequest {
        protocol: PROTOCOL,
        build: BuildId::current().map_err(MpiError::BuildId)?,
        name: format!("rank {rank} ({})", host_name()),
        pid: std::process::id(),
        processes: u32::try_from(config.processes).unwrap_or(u32::MAX),
    };
    let bytes = codec::encode(&request).map_err(|_| MpiError::BadReply)?;
    wire.send(MASTER, TAG_JOIN, bytes);
    let reply = wait_for(wire, MASTER, TAG_REPLY);
    let (key, init) = match codec::decode::<JoinReply>(&reply) {
        Ok(JoinReply::Accepted { key, init }) => (key, init),
        Ok(JoinReply::Refused(why)) => return Err(MpiError::Refused(why)),
        Err(_) => return Err(MpiError::BadReply),
    };
    let link: Arc<dyn HostLink> = Arc::new(RankLink(Outbox::new(tx, std::thread::current())));
    let lanes =
        Lanes::build(config, &WorkerInit { key, user: init }, link).map_err(MpiError::Pool)?;
    lanes.announce();
    loop {
        let mut progress = false;
        while let Ok(cmd) = rx.try_recv() {
            progress = true;
            if let Cmd::Send { rank, tag, bytes } = cmd {
                wire.send(rank, tag, bytes);
            }
        }
        while let Some((source, tag, bytes)) = wire.try_recv() {
            progress = true;
            if source != MASTER || tag != TAG_MSG {
                continue;
            }
            if let Some(end) = lanes.on_message(&bytes) {
                lanes.terminate();
                // Results that raced the shutdown go nowhere: the master stopped listening.
                while rx.try_recv().is_ok() {}
                return Ok(end);
            }
        }
        progress |= wire.test_sends();
        wire.pause(progress);
    }
}

/// Receives the next message from `source` under `tag` (others are dropped: before the
/// handshake ends nothing else is expected).
fn wait_for(wire: &mut Wire, source: Rank, tag: i32) -> Vec<u8> {
    loop {
        let mut progress = wire.test_sends();
        if let Some((s, t, bytes)) = wire.try_recv() {
            if s == source && t == tag {
                return bytes;
            }
            progress = true;
        }
        wire.pause(progress);
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}
