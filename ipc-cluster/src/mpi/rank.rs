//! A host rank: joins the master (rank 0) through the same handshake as a zenoh host, runs the
//! chunks it is sent, and leaves when told.
//!
//! With `processes` of 0 (the default) the rank runs its chunks itself, in the MPI thread, one
//! at a time in the order received (one lane): no hop to another process, so a task costs
//! MPI's latency and little else; a panic fails its chunk (caught), a crash ends the rank and
//! therefore the job. With `processes` of 1 or more, the rank hands its chunks to that many
//! worker processes (`crate::host::Lanes`, `ipc_pool` pools), as a zenoh host does: a worker
//! that dies fails only its chunk and is replaced.

use std::sync::Arc;
use std::sync::mpsc;

use ipc_core::codec;
use ipc_core::process::{FnKey, panic_message};
use mpi::topology::Rank;

use super::MpiError;
use super::engine::{Cmd, MASTER, Outbox, TAG_BYE, TAG_JOIN, TAG_MSG, TAG_REPLY, Wire};
use crate::BuildId;
use crate::bytes::BytesRef;
use crate::host::{LaneConfig, Lanes, ServeEnd};
use crate::link::HostLink;
use crate::task::{WorkerInit, call_chunk, check_chunk, init_worker};
use crate::wire::{
    ChunkResultOut, FromHostOut, JoinReply, JoinRequest, PROTOCOL, RemoteFailure, ToHost,
};

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
        // Inline, the rank itself is the one lane.
        processes: u32::try_from(config.processes.max(1)).unwrap_or(u32::MAX),
    };
    let bytes = codec::encode(&request).map_err(|_| MpiError::BadReply)?;
    wire.send(MASTER, TAG_JOIN, bytes);
    let reply = wait_for(wire, MASTER, TAG_REPLY);
    let (key, init) = match codec::decode::<JoinReply>(&reply) {
        Ok(JoinReply::Accepted { key, init }) => (key, init),
        Ok(JoinReply::Refused(why)) => return Err(MpiError::Refused(why)),
        Err(_) => return Err(MpiError::BadReply),
    };
    if config.processes == 0 {
        return serve_inline(wire, key, WorkerInit { key, user: init });
    }
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

/// Runs the chunks in this thread (no worker processes): the master's initializer once, then
/// each chunk as it arrives, its result sent at once.
fn serve_inline(wire: &mut Wire, key: FnKey, init: WorkerInit) -> Result<ServeEnd, MpiError> {
    // The same initializer a worker process runs: it keeps the key and runs the user's.
    init_worker(init);
    send_host(wire, &FromHostOut::Ready);
    let mut out = Vec::new();
    loop {
        let mut progress = wire.test_sends();
        while let Some((source, tag, bytes)) = wire.try_recv() {
            progress = true;
            if source != MASTER || tag != TAG_MSG {
                continue;
            }
            match codec::decode::<ToHost>(&bytes) {
                Ok(ToHost::Chunks(chunks)) => {
                    for c in chunks {
                        out.clear();
                        let outcome = run_inline(&key, &c.func, &c.input.0, &mut out);
                        let outcome = outcome.as_ref().map(|()| BytesRef(&out));
                        let msg = FromHostOut::Results(vec![ChunkResultOut { id: c.id, outcome }]);
                        send_host(wire, &msg);
                    }
                }
                Ok(ToHost::Shutdown) => return Ok(ServeEnd::Shutdown),
                Err(_) => {}
            }
        }
        wire.pause(progress);
    }
}

/// One chunk in this thread: the tag checked under the rank's key, a panic caught.
fn run_inline(
    key: &FnKey,
    func: &ipc_core::process::FnRef,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RemoteFailure> {
    if !check_chunk(func, key) {
        return Err(RemoteFailure::BadFunction);
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call_chunk(func, key, input, out)
    })) {
        Ok(r) => r,
        Err(payload) => Err(RemoteFailure::Panicked {
            pid: std::process::id(),
            message: panic_message(&*payload),
            location: None,
        }),
    }
}

fn send_host(wire: &mut Wire, msg: &FromHostOut<'_>) {
    if let Ok(bytes) = codec::encode(msg) {
        wire.send(MASTER, TAG_MSG, bytes);
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
