//! A worker host: runs the chunks its master sends on `ipc_pool` pools of its own processes,
//! whatever transport carries them.
//!
//! The host runs one single-process `ipc_pool::Pool` per worker process: a *lane*. The master
//! says which lane each chunk goes to; a lane runs its chunks one at a time in the order it
//! received them, so should this host die, the master knows exactly which chunk each lane was
//! running (its oldest unanswered one): those fail, the rest go to other hosts. A lane holds a
//! few chunks at once (the master's credit), so its process never waits for the network.
//!
//! Everything happens in callbacks: a message from the master is handled in the transport's
//! receiving thread (its chunks are checked and handed to their lanes at once), and a chunk's
//! result is sent from its pool's result thread as soon as it is there. A worker process that
//! dies fails its chunk as in `ipc_pool` (the pool replaces it); a panic fails its chunk.

use std::sync::{Arc, Mutex};

use ipc_core::StartMethod;
use ipc_core::codec;
use ipc_core::process::FnKey;
use ipc_pool::{Pool, TaskError as PoolTaskError};

use crate::bytes::{Bytes, BytesRef};
use crate::link::HostLink;
use crate::task::{ChunkTask, WorkerInit, check_chunk, init_worker, run_chunk};
use crate::wire::{ChunkIn, ChunkResultOut, FromHostOut, RemoteFailure, ToHost};

/// How a host's service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeEnd {
    /// The master shut the pool down (joined, terminated or dropped it).
    Shutdown,
    /// The master vanished (killed, crashed, or cut off past its lease).
    MasterGone,
}

/// How a host's lanes are built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneConfig {
    pub(crate) processes: usize,
    pub(crate) start_method: Option<StartMethod>,
    pub(crate) max_tasks: Option<u64>,
}

/// A host's lanes: one single-process pool per worker process.
pub(crate) struct Lanes {
    pools: Mutex<Vec<Pool>>,
    key: FnKey,
    link: Arc<dyn HostLink>,
}

impl Lanes {
    /// Builds the lanes; every worker process starts with the host's key (the cluster's
    /// initializer, over the pool's private start channel) and runs the master's initializer.
    pub(crate) fn build(
        config: LaneConfig,
        init: &WorkerInit,
        link: Arc<dyn HostLink>,
    ) -> Result<Self, ipc_pool::BuildError> {
        let mut pools = Vec::with_capacity(config.processes);
        for _ in 0..config.processes.max(1) {
            let mut b = Pool::builder()
                .processes(1)
                .initializer(init_worker, init.clone());
            if let Some(m) = config.start_method {
                b = b.start_method(m);
            }
            if let Some(n) = config.max_tasks {
                b = b.max_tasks_per_child(n);
            }
            pools.push(b.build()?);
        }
        Ok(Self {
            pools: Mutex::new(pools),
            key: init.key,
            link,
        })
    }

    /// Tells the master this host is ready for chunks.
    pub(crate) fn announce(&self) -> bool {
        codec::encode(&FromHostOut::Ready).is_ok_and(|b| self.link.send(b))
    }

    /// Handles one message from the master: hands its chunks to their lanes, or reports that
    /// the master said stop. Bytes that are not a message of the protocol are ignored.
    pub(crate) fn on_message(&self, bytes: &[u8]) -> Option<ServeEnd> {
        match codec::decode::<ToHost>(bytes) {
            Ok(ToHost::Chunks(chunks)) => {
                for c in chunks {
                    self.start(c);
                }
                None
            }
            Ok(ToHost::Shutdown) => Some(ServeEnd::Shutdown),
            Err(_) => None,
        }
    }

    fn start(&self, chunk: ChunkIn) {
        let id = chunk.id;
        if !check_chunk(&chunk.func, &self.key) {
            return send_result(&*self.link, id, Err(&RemoteFailure::BadFunction));
        }
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pool) = pools.get(chunk.lane as usize) else {
            return send_result(&*self.link, id, Err(&RemoteFailure::BadFunction));
        };
        let task = ChunkTask {
            func: chunk.func,
            input: chunk.input,
        };
        let (ok, err) = (Arc::clone(&self.link), Arc::clone(&self.link));
        let submitted = pool.apply_async_with(
            run_chunk,
            task,
            move |out: &Result<Bytes, RemoteFailure>| {
                let out = out.as_ref().map(|b| BytesRef(&b.0));
                send_result(&*ok, id, out);
            },
            move |e: &PoolTaskError| send_result(&*err, id, Err(&remote_failure(e))),
        );
        if let Err(e) = submitted {
            send_result(&*self.link, id, Err(&RemoteFailure::Codec(e.to_string())));
        }
    }

    /// Terminates every lane (their processes exit); chunks still running are abandoned.
    pub(crate) fn terminate(&self) {
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|p| p.into_inner()));
        for mut p in pools {
            p.terminate();
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn send_result(link: &dyn HostLink, id: u64, outcome: Result<BytesRef<'_>, &RemoteFailure>) {
    let msg = FromHostOut::Results(vec![ChunkResultOut { id, outcome }]);
    if let Ok(bytes) = codec::encode(&msg) {
        link.send(bytes);
    }
}

/// A pool's failure of a chunk, as the master is told.
fn remote_failure(e: &PoolTaskError) -> RemoteFailure {
    match e {
        PoolTaskError::Panicked {
            message,
            pid,
            location,
        } => RemoteFailure::Panicked {
            pid: *pid,
            message: message.clone(),
            location: location.clone(),
        },
        PoolTaskError::WorkerDied {
            pid,
            exit_code,
            cause,
        } => RemoteFailure::WorkerDied {
            pid: *pid,
            exit_code: *exit_code,
            cause: cause.clone(),
        },
        PoolTaskError::Terminated => RemoteFailure::Terminated,
        PoolTaskError::PoolBroken { reason } => RemoteFailure::PoolBroken(reason.clone()),
        other => RemoteFailure::Codec(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskFn;
    use crate::wire::{ChunkOut, ChunkResult, FromHost, ToHostOut};
    use std::time::{Duration, Instant};

    struct Collect(Mutex<Vec<ChunkResult>>);

    impl HostLink for Collect {
        fn send(&self, bytes: Vec<u8>) -> bool {
            if let FromHost::Results(r) = codec::decode(&bytes).unwrap() {
                self.0.lock().unwrap().extend(r);
            }
            true
        }
    }

    fn triple(x: u32) -> u32 {
        3 * x
    }

    fn boom(_: u32) -> u32 {
        panic!("boom")
    }

    fn chunks(key: &FnKey, items: &[(u64, u32, TaskFn, Vec<u8>)]) -> Vec<u8> {
        let out = ToHostOut::Chunks(
            items
                .iter()
                .map(|(id, lane, f, input)| ChunkOut {
                    id: *id,
                    lane: *lane,
                    func: f.tag(key),
                    input: BytesRef(input),
                })
                .collect(),
        );
        codec::encode(&out).unwrap()
    }

    #[test]
    fn lanes_run_chunks_and_refuse_foreign_references() {
        let key = FnKey::random();
        let link = Arc::new(Collect(Mutex::new(Vec::new())));
        let config = LaneConfig {
            processes: 2,
            start_method: None,
            max_tasks: None,
        };
        let lanes = Lanes::build(config, &WorkerInit { key, user: None }, link.clone()).unwrap();
        let input = codec::encode(&vec![1u32, 2, 3]).unwrap();
        let msg = chunks(
            &key,
            &[
                (7, 0, TaskFn::map(triple), input.clone()),
                (8, 1, TaskFn::map(boom), input.clone()),
                (10, 5, TaskFn::map(triple), input.clone()),
            ],
        );
        assert_eq!(lanes.on_message(&msg), None);
        // Made under another key: refused without running.
        let foreign = chunks(&FnKey::random(), &[(9, 0, TaskFn::map(triple), input)]);
        assert_eq!(lanes.on_message(&foreign), None);
        assert_eq!(lanes.on_message(&[0xff; 7]), None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while link.0.lock().unwrap().len() < 4 {
            assert!(Instant::now() < deadline, "watchdog: no results");
            std::thread::sleep(Duration::from_millis(5));
        }
        let shutdown = codec::encode(&ToHostOut::Shutdown).unwrap();
        assert_eq!(lanes.on_message(&shutdown), Some(ServeEnd::Shutdown));
        lanes.terminate();
        let got = link.0.lock().unwrap();
        let by_id = |id| &got.iter().find(|r| r.id == id).unwrap().outcome;
        let ok = by_id(7).as_ref().unwrap();
        assert_eq!(codec::decode::<Vec<u32>>(&ok.0).unwrap(), [3, 6, 9]);
        assert!(
            matches!(by_id(8), Err(RemoteFailure::Panicked { message, .. }) if message == "boom")
        );
        assert!(matches!(by_id(9), Err(RemoteFailure::BadFunction)));
        assert!(matches!(by_id(10), Err(RemoteFailure::BadFunction)));
    }
}
