//! The one thread that owns every MPI call of a process: it initialises MPI (requesting
//! `MPI_THREAD_FUNNELED` and checking what the library provides), carries the master's or the
//! host's bytes, and finalises MPI when the pool is done.
//!
//! Other threads never call MPI: they push what they want sent into an [`Outbox`] (a channel,
//! then an unpark of this thread). Sends are non-blocking (`MPI_Isend`), their buffers kept
//! until `MPI_Test` reports them complete, so a master and a host sending large messages to
//! each other at once never wait on each other's receive (blocking sends above the eager limit
//! do deadlock there). Receives are matched probes (`MPI_Improbe`, then `MPI_Mrecv`), so no
//! other receive can take a probed message.
//!
//! Idle ranks do not spin: after a short burst of yields the thread parks in slices that grow
//! to [`MAX_NAP`], and an [`Outbox`] push unparks it at once; only a message *arriving* while it
//! naps waits for the end of the slice.
//!
//! | tag            | direction     | bytes                                  |
//! |----------------|---------------|----------------------------------------|
//! | [`TAG_JOIN`]   | host → master | a [`crate::wire::JoinRequest`]         |
//! | [`TAG_REPLY`]  | master → host | its [`crate::wire::JoinReply`]         |
//! | [`TAG_MSG`]    | both          | `ToHost` / `FromHost`                  |
//! | [`TAG_BYE`]    | host → master | empty: the host is done with MPI       |

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use mpi::Threading;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, Rank, SimpleCommunicator};

use crate::link::{Events, MasterEvent, PeerId};

pub(crate) const TAG_JOIN: i32 = 1;
pub(crate) const TAG_REPLY: i32 = 2;
pub(crate) const TAG_MSG: i32 = 3;
pub(crate) const TAG_BYE: i32 = 4;

/// The master is always rank 0 of `MPI_COMM_WORLD`.
pub(crate) const MASTER: Rank = 0;

/// The longest an idle rank sleeps before it probes again.
const MAX_NAP: Duration = Duration::from_millis(1);
/// After its last message a rank yields (rather than sleeps) for this long.
const BUSY: Duration = Duration::from_micros(200);

/// What other threads ask of the MPI thread.
pub(crate) enum Cmd {
    /// Send `bytes` to `rank` under `tag`, after everything sent to it before.
    Send {
        rank: Rank,
        tag: i32,
        bytes: Vec<u8>,
    },
    /// The master's pool is done: flush, wait for every host's goodbye, finalise.
    Finish,
}

/// The way into the MPI thread from any other thread.
pub(crate) struct Outbox {
    tx: Mutex<mpsc::Sender<Cmd>>,
    thread: Thread,
}

impl Outbox {
    pub(crate) fn new(tx: mpsc::Sender<Cmd>, thread: Thread) -> Self {
        Self {
            tx: Mutex::new(tx),
            thread,
        }
    }

    /// Queues `cmd` and wakes the MPI thread; `false` once that thread has ended.
    pub(crate) fn push(&self, cmd: Cmd) -> bool {
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(cmd)
            .is_ok();
        self.thread.unpark();
        sent
    }
}

/// How a rank is named to the master's logic.
pub(crate) fn peer(rank: Rank) -> PeerId {
    format!("rank-{rank}").into()
}

/// The rank a [`peer`] name stands for.
pub(crate) fn rank_of(peer: &str) -> Option<Rank> {
    peer.strip_prefix("rank-")?.parse().ok()
}

/// Why MPI could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitFailure {
    /// MPI was initialised (or finalised) before.
    AlreadyInitialized,
    /// The library gives less than `MPI_THREAD_FUNNELED`.
    ThreadLevel(Threading),
}

/// Initialises MPI in the calling thread (which thereby owns every MPI call of the process).
pub(crate) fn initialize() -> Result<mpi::environment::Universe, InitFailure> {
    if mpi::environment::is_finalized() {
        return Err(InitFailure::AlreadyInitialized);
    }
    let (universe, provided) = mpi::initialize_with_threading(Threading::Funneled)
        .ok_or(InitFailure::AlreadyInitialized)?;
    if provided < Threading::Funneled {
        return Err(InitFailure::ThreadLevel(provided));
    }
    Ok(universe)
}

/// A send in flight: MPI reads `buf` until the request completes.
struct InFlight {
    request: Request<'static, [u8], StaticScope>,
    buf: *mut [u8],
}

/// Non-blocking sends and matched receives, owned by the MPI thread.
pub(crate) struct Wire {
    world: SimpleCommunicator,
    sends: Vec<InFlight>,
    idle_since: Instant,
}

impl Wire {
    pub(crate) fn new(world: SimpleCommunicator) -> Self {
        Self {
            world,
            sends: Vec::new(),
            idle_since: Instant::now(),
        }
    }

    pub(crate) fn rank(&self) -> Rank {
        self.world.rank()
    }

    pub(crate) fn size(&self) -> Rank {
        self.world.size()
    }

    /// Starts sending `bytes` to `rank`; the buffer lives until the send completes.
    pub(crate) fn send(&mut self, rank: Rank, tag: i32, bytes: Vec<u8>) {
        if rank < 0 || rank >= self.world.size() {
            return;
        }
        let buf: &'static mut [u8] = Box::leak(bytes.into_boxed_slice());
        let ptr: *mut [u8] = buf;
        // The request borrows the buffer shared; `ptr` is only used again once it completed.
        let shared: &'static [u8] = buf;
        let request =
            self.world
                .process_at_rank(rank)
                .immediate_send_with_tag(StaticScope, shared, tag);
        self.sends.push(InFlight { request, buf: ptr });
    }

    /// Completes what has completed; whether any did.
    pub(crate) fn test_sends(&mut self) -> bool {
        let before = self.sends.len();
        let mut still = Vec::with_capacity(before);
        for s in self.sends.drain(..) {
            match s.request.test() {
                Ok(_) => {
                    // SAFETY: `buf` came from `Box::leak` in `send` and nothing else freed it;
                    // its request has completed, so MPI no longer reads it, and the request
                    // (the only other reference) was consumed by `test`.
                    drop(unsafe { Box::from_raw(s.buf) });
                }
                Err(request) => still.push(InFlight {
                    request,
                    buf: s.buf,
                }),
            }
        }
        self.sends = still;
        self.sends.len() != before
    }

    pub(crate) fn sends_in_flight(&self) -> usize {
        self.sends.len()
    }

    /// The next message from anyone, if one has arrived: `(source, tag, bytes)`.
    pub(crate) fn try_recv(&mut self) -> Option<(Rank, i32, Vec<u8>)> {
        let probed = self.world.any_process().immediate_matched_probe()?;
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        Some((status.source_rank(), status.tag(), bytes))
    }

    /// Called once per round of the loop: yields, naps or returns at once after progress.
    pub(crate) fn pause(&mut self, progress: bool) {
        let now = Instant::now();
        if progress {
            self.idle_since = now;
            return;
        }
        let idle = now.duration_since(self.idle_since);
        if idle < BUSY {
            std::thread::yield_now();
        } else {
            let nap = (idle / 8).clamp(Duration::from_micros(20), MAX_NAP);
            std::thread::park_timeout(nap);
        }
    }

    /// Waits until every send has completed (the peers keep receiving: they run this loop too).
    pub(crate) fn flush(&mut self) {
        while self.sends_in_flight() > 0 {
            let p = self.test_sends();
            self.pause(p);
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        // A request must not be dropped unfinished (rsmpi aborts the process): finish them.
        self.flush();
    }
}

/// A message for a rank.
type Outgoing = (Rank, Vec<u8>);

/// A join request's answer to come: whoever holds it answers (the master's logic), and if it
/// is dropped unanswered (the pool went away meanwhile) the rank is refused, so it never waits
/// for a reply that cannot come.
struct PendingReply {
    rank: Rank,
    slot: Arc<Mutex<Vec<Outgoing>>>,
    answered: bool,
}

impl PendingReply {
    fn answer(mut self, bytes: Vec<u8>) {
        self.push(bytes);
        self.answered = true;
    }

    fn push(&self, bytes: Vec<u8>) {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.rank, bytes));
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if !self.answered {
            self.push(refusal());
        }
    }
}

/// An encoded `JoinReply::Refused(Refusal::Closed)`.
fn refusal() -> Vec<u8> {
    let refused = crate::wire::JoinReply::Refused(crate::wire::Refusal::Closed);
    // A unit variant always encodes; were it not to, the empty reply fails to decode at the
    // rank, which then leaves all the same (`MpiError::BadReply`).
    ipc_core::codec::encode(&refused).unwrap_or_default()
}

/// The master's loop (rank 0): every other rank is a host. Ends when the pool is done
/// (`Finish`) and every host said goodbye. Without `events` (the pool was never built) it
/// only dismisses the hosts.
pub(crate) fn serve_master(wire: &mut Wire, events: Option<Events>, rx: &mpsc::Receiver<Cmd>) {
    let mut finishing = events.is_none();
    let events = events.unwrap_or_else(|| Arc::new(|_| {}));
    let hosts: HashSet<Rank> = (1..wire.size()).collect();
    for &r in &hosts {
        events(MasterEvent::Alive(peer(r)));
    }
    let mut gone: HashSet<Rank> = HashSet::new();
    let mut replies: Vec<Outgoing> = Vec::new();
    // Join replies: the master's logic answers from this thread, or (a refusal after a wait)
    // from its ticker; either way the bytes leave from here.
    let reply_slot: Arc<Mutex<Vec<Outgoing>>> = Arc::new(Mutex::new(Vec::new()));
    loop {
        let mut progress = false;
        while let Ok(cmd) = rx.try_recv() {
            progress = true;
            match cmd {
                Cmd::Send { rank, tag, bytes } => wire.send(rank, tag, bytes),
                Cmd::Finish => finishing = true,
            }
        }
        while let Some((rank, tag, bytes)) = wire.try_recv() {
            progress = true;
            if !hosts.contains(&rank) {
                continue;
            }
            match tag {
                TAG_JOIN if finishing => wire.send(rank, TAG_REPLY, refusal()),
                TAG_JOIN => {
                    let pending = PendingReply {
                        rank,
                        slot: Arc::clone(&reply_slot),
                        answered: false,
                    };
                    let reply = Box::new(move |b: Vec<u8>| pending.answer(b));
                    events(MasterEvent::Join {
                        peer: peer(rank),
                        request: bytes,
                        reply,
                    });
                }
                TAG_MSG => events(MasterEvent::Message {
                    peer: peer(rank),
                    bytes,
                }),
                TAG_BYE => {
                    gone.insert(rank);
                    events(MasterEvent::Gone(peer(rank)));
                }
                _ => {}
            }
        }
        replies.append(&mut reply_slot.lock().unwrap_or_else(|p| p.into_inner()));
        for (rank, b) in replies.drain(..) {
            progress = true;
            wire.send(rank, TAG_REPLY, b);
        }
        progress |= wire.test_sends();
        if finishing && gone.len() == hosts.len() && wire.sends_in_flight() == 0 {
            return;
        }
        wire.pause(progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_name_gives_its_rank_back() {
        for r in [1, 2, 4095] {
            assert_eq!(rank_of(&peer(r)), Some(r));
        }
        assert_eq!(rank_of("rank-x"), None);
        assert_eq!(rank_of("host-1"), None);
    }

    #[test]
    fn a_join_dropped_unanswered_is_refused() {
        use crate::wire::{JoinReply, Refusal};
        let slot = Arc::new(Mutex::new(Vec::new()));
        let answered = PendingReply {
            rank: 1,
            slot: Arc::clone(&slot),
            answered: false,
        };
        answered.answer(vec![7]);
        drop(PendingReply {
            rank: 2,
            slot: Arc::clone(&slot),
            answered: false,
        });
        let sent = slot.lock().unwrap();
        assert_eq!(sent[0], (1, vec![7]));
        assert_eq!(sent[1].0, 2);
        assert!(matches!(
            ipc_core::codec::decode::<JoinReply>(&sent[1].1),
            Ok(JoinReply::Refused(Refusal::Closed))
        ));
        assert_eq!(sent.len(), 2);
    }
}
