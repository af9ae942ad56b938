//! A worker host: runs the chunks its master sends on an `ipc_pool::Pool` of its own
//! processes, whatever transport carries them.
//!
//! The host admits chunks to its pool in arrival order, at most one per worker process at a
//! time, and keeps the rest waiting here. That is what lets the master know, should this host
//! die, exactly which of its chunks were running (the first `processes` it had not answered):
//! those fail, the rest go to other hosts. Finished chunks are sent back in batches of what is
//! ready. The host stops when the master says so or its liveliness vanishes; either way it
//! terminates its pool (its worker processes exit) and returns.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use ipc_core::codec;
use ipc_core::process::FnKey;
use ipc_pool::{AsyncResult, Pool, PoolBuilder, TaskError as PoolTaskError};

use crate::bytes::Bytes;
use crate::link::{HostEvent, HostLink};
use crate::task::{ChunkTask, WorkerInit, check_chunk, init_worker, run_chunk};
use crate::wire::{ChunkIn, ChunkResult, FromHost, RemoteFailure, ToHost};

/// How a host's service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeEnd {
    /// The master shut the pool down (joined, terminated or dropped it).
    Shutdown,
    /// The master vanished (killed, crashed, or cut off past its lease).
    MasterGone,
}

/// Builds the host's pool: the given builder with the cluster's initializer, which hands every
/// worker process the host's key (over the pool's private start channel) and runs the master's
/// initializer, if any.
pub(crate) fn build_pool(
    builder: PoolBuilder,
    init: WorkerInit,
) -> Result<Pool, ipc_pool::BuildError> {
    builder.initializer(init_worker, init).build()
}

type Outcome = Result<Bytes, RemoteFailure>;

/// Serves the master until it says stop or vanishes.
pub(crate) fn run(
    mut pool: Pool,
    key: FnKey,
    events: &Receiver<HostEvent>,
    events_tx: &Sender<HostEvent>,
    link: &dyn HostLink,
) -> ServeEnd {
    let slots = pool.processes().max(1);
    let mut waiting: VecDeque<ChunkIn> = VecDeque::new();
    let mut running: HashMap<u64, (u64, AsyncResult<Outcome>)> = HashMap::new();
    let mut next_local = 0u64;
    let mut results: Vec<ChunkResult> = Vec::new();
    let end = 'serve: loop {
        // Block for one event, then take whatever else is already there, so results that
        // finished together leave as one message.
        let first = match events.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break ServeEnd::MasterGone,
        };
        let mut next = first;
        while let Some(ev) = next {
            match ev {
                HostEvent::Message(bytes) => match codec::decode::<ToHost>(&bytes) {
                    Ok(ToHost::Chunks(chunks)) => waiting.extend(chunks),
                    Ok(ToHost::Shutdown) => break 'serve ServeEnd::Shutdown,
                    // Not a message of this protocol: ignore it.
                    Err(_) => {}
                },
                HostEvent::MasterGone => break 'serve ServeEnd::MasterGone,
                HostEvent::Done(local) => {
                    if let Some((id, r)) = running.remove(&local) {
                        results.push(ChunkResult {
                            id,
                            outcome: finished(r),
                        });
                    }
                }
            }
            next = events.try_recv().ok();
        }
        while running.len() < slots {
            let Some(chunk) = waiting.pop_front() else {
                break;
            };
            if !check_chunk(&chunk.func, &key) {
                results.push(ChunkResult {
                    id: chunk.id,
                    outcome: Err(RemoteFailure::BadFunction),
                });
                continue;
            }
            let local = next_local;
            next_local += 1;
            let (ok, err) = (events_tx.clone(), events_tx.clone());
            let task = ChunkTask {
                func: chunk.func,
                input: chunk.input,
            };
            match pool.apply_async_with(
                run_chunk,
                task,
                move |_| {
                    let _ = ok.send(HostEvent::Done(local));
                },
                move |_| {
                    let _ = err.send(HostEvent::Done(local));
                },
            ) {
                Ok(r) => {
                    running.insert(local, (chunk.id, r));
                }
                Err(e) => results.push(ChunkResult {
                    id: chunk.id,
                    outcome: Err(RemoteFailure::Codec(e.to_string())),
                }),
            }
        }
        if !results.is_empty() {
            let msg = FromHost::Results(std::mem::take(&mut results));
            if let Ok(bytes) = codec::encode(&msg) {
                link.send(bytes);
            }
        }
    };
    pool.terminate();
    end
}

/// A finished chunk's outcome, as the master is told.
fn finished(r: AsyncResult<Outcome>) -> Outcome {
    match r.get() {
        Ok(outcome) => outcome,
        Err(PoolTaskError::Panicked {
            message,
            pid,
            location,
        }) => Err(RemoteFailure::Panicked {
            pid,
            message,
            location,
        }),
        Err(PoolTaskError::WorkerDied {
            pid,
            exit_code,
            cause,
        }) => Err(RemoteFailure::WorkerDied {
            pid,
            exit_code,
            cause,
        }),
        Err(PoolTaskError::Terminated) => Err(RemoteFailure::Terminated),
        Err(e) => Err(RemoteFailure::Codec(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::BytesRef;
    use crate::task::TaskFn;
    use crate::wire::{ChunkOut, ToHostOut};
    use std::sync::{Arc, Mutex};

    struct Collect(Arc<Mutex<Vec<ChunkResult>>>);

    impl HostLink for Collect {
        fn send(&self, bytes: Vec<u8>) -> bool {
            let FromHost::Results(r) = codec::decode(&bytes).unwrap();
            self.0.lock().unwrap().extend(r);
            true
        }
    }

    fn triple(x: u32) -> u32 {
        3 * x
    }

    fn boom(_: u32) -> u32 {
        panic!("boom")
    }

    fn chunks(key: &FnKey, items: &[(u64, TaskFn, Vec<u8>)]) -> Vec<u8> {
        let out = ToHostOut::Chunks(
            items
                .iter()
                .map(|(id, f, input)| ChunkOut {
                    id: *id,
                    func: f.tag(key),
                    input: BytesRef(input),
                })
                .collect(),
        );
        codec::encode(&out).unwrap()
    }

    #[test]
    fn a_host_runs_chunks_on_its_pool_and_refuses_foreign_references() {
        let key = FnKey::random();
        let pool =
            build_pool(Pool::builder().processes(2), WorkerInit { key, user: None }).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let link = Collect(Arc::clone(&got));
        let input = codec::encode(&vec![1u32, 2, 3]).unwrap();
        tx.send(HostEvent::Message(chunks(
            &key,
            &[
                (7, TaskFn::map(triple), input.clone()),
                (8, TaskFn::map(boom), input.clone()),
            ],
        )))
        .unwrap();
        // Made under another key: refused without running.
        tx.send(HostEvent::Message(chunks(
            &FnKey::random(),
            &[(9, TaskFn::map(triple), input)],
        )))
        .unwrap();
        // Garbage is ignored.
        tx.send(HostEvent::Message(vec![0xff; 7])).unwrap();
        let t = {
            let tx = tx.clone();
            std::thread::spawn(move || run(pool, key, &rx, &tx, &link))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while got.lock().unwrap().len() < 3 {
            assert!(std::time::Instant::now() < deadline, "watchdog: no results");
            std::thread::sleep(Duration::from_millis(5));
        }
        tx.send(HostEvent::Message(
            codec::encode(&ToHostOut::Shutdown).unwrap(),
        ))
        .unwrap();
        assert_eq!(t.join().unwrap(), ServeEnd::Shutdown);
        let got = got.lock().unwrap();
        let by_id = |id| &got.iter().find(|r| r.id == id).unwrap().outcome;
        let ok = by_id(7).as_ref().unwrap();
        assert_eq!(codec::decode::<Vec<u32>>(&ok.0).unwrap(), [3, 6, 9]);
        assert!(
            matches!(by_id(8), Err(RemoteFailure::Panicked { message, .. }) if message == "boom")
        );
        assert!(matches!(by_id(9), Err(RemoteFailure::BadFunction)));
    }
}
