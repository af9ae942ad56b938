//! The master's state and scheduler: hosts, their worker processes ("lanes") and credits,
//! chunks waiting and outstanding, and what a host's death does to them. Transport-independent:
//! a backend delivers [`MasterEvent`]s by calling [`Core::handle`] (from its receiving threads,
//! in the order it heard them from each peer); messages leave through a [`MasterLink`].
//!
//! ## Lanes and dispatch
//! A host with `processes` worker processes runs one single-process `ipc_pool::Pool` per
//! process: a *lane*. A lane runs its chunks one at a time, in the order it received them, so
//! its running chunk is always its oldest unanswered one. Each lane may hold `depth` chunks
//! (the credit per process, by default [`CREDIT_PER_PROCESS`]): enough to keep its process busy
//! across the network's round trip, few enough that a slow host cannot hoard the work faster
//! ones would take. Chunks wait in `pending` (in submission order) until some lane of a ready,
//! live host has room; each round hands the next chunk to the emptiest lane (ties: the least
//! loaded host) and sends every host its new chunks as one message, tagged under that host's
//! key. Sends happen under the state lock, so a lane receives its chunks in the order recorded.
//!
//! ## Death
//! Results a host sent before dying arrive, on the same connection, before the news of its
//! death. When its liveliness token vanishes, the oldest unanswered chunk of each of its lanes —
//! the one that lane was running — fails with [`TaskError::WorkerDied`] naming the host
//! ([`DeathCause::HostLost`]), so a chunk that kills its host fails rather than killing the next
//! one; every other chunk it held goes back, in submission order, to the front of `pending`.
//! While no host is alive, chunks wait; after `no_host_timeout` without one they fail with
//! [`TaskError::NoHosts`], so nothing waits forever on hosts that are gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipc_core::codec;
use ipc_core::process::FnKey;

use crate::BuildId;
use crate::bytes::{Bytes, BytesRef};
use crate::error::{DeathCause, SubmitError, TaskError, WaitHostsError};
use crate::link::{MasterEvent, MasterLink, PeerId, Replier};
use crate::master::HostStats;
use crate::task::TaskFn;
use crate::wire::{
    ChunkOut, FromHost, JoinReply, JoinRequest, PROTOCOL, Refusal, RemoteFailure, ToHostOut,
};

/// Chunks each worker process of a host may hold, by default.
pub(crate) const CREDIT_PER_PROCESS: usize = 2;

/// By default a worker process may also hold more chunks while they carry at most this many
/// items together: short tasks sent one by one (`imap`, `apply`, `submit`) then keep it busy
/// across the network's round trip, while big chunks stay at [`CREDIT_PER_PROCESS`].
pub(crate) const ITEM_CREDIT_PER_PROCESS: usize = 16;

/// The most chunks a lane holds, whatever the credit.
const MAX_LANE: usize = 64;

/// How often the ticker thread enforces `no_host_timeout` and stale joins.
const TICK: Duration = Duration::from_millis(20);

/// How long a join request waits for the host's liveliness token to be seen.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// Receives a chunk's encoded output (`Vec<R>`), or why there is none. Runs in the thread that
/// handled the event (a transport's receiving thread, or the caller of `stop`).
pub(crate) type Sink = ipc_pool::raw::Sink<TaskError>;

/// A sink with its outcome, run once the state lock is released.
type Delivery = (Sink, Result<Vec<u8>, TaskError>);

/// What the master was built with.
pub(crate) struct Config {
    pub(crate) build: BuildId,
    /// Chunks per worker process of a host.
    pub(crate) credit: Option<usize>,
    pub(crate) no_host_timeout: Duration,
    pub(crate) init: Option<(TaskFn, Vec<u8>)>,
}

/// One chunk of work: a function over encoded items.
struct Chunk {
    id: u64,
    func: TaskFn,
    input: Vec<u8>,
    items: usize,
}

struct Host {
    peer: PeerId,
    stats: HostStats,
    key: FnKey,
    /// Built its pool and subscribed: may be sent chunks.
    ready: bool,
    /// Per worker process: chunks sent and not answered, in the order sent (the first runs).
    lanes: Vec<VecDeque<Chunk>>,
    /// Chunks a lane may hold.
    depth: usize,
    /// Beyond `depth`, a lane may hold chunks while their items total at most this (0: no).
    item_credit: usize,
}

impl Host {
    fn outstanding(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    /// The emptiest lane with room for a chunk of `items` items, and how full it is.
    fn free_lane(&self, items: usize) -> Option<(usize, usize)> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.len() < self.depth
                    || (l.len() < MAX_LANE
                        && l.iter().map(|c| c.items).sum::<usize>() + items <= self.item_credit)
            })
            .map(|(i, l)| (i, l.len()))
            .min_by_key(|&(_, n)| n)
    }
}

struct State {
    hosts: Vec<Host>,
    by_peer: HashMap<PeerId, usize>,
    /// Peers whose liveliness token is present.
    tokens: HashSet<PeerId>,
    /// Join requests that arrived before the peer's token: answered when it appears, refused
    /// after [`JOIN_WAIT`] or when the peer is reported gone.
    parked: HashMap<PeerId, (Vec<u8>, Replier, Instant)>,
    pending: VecDeque<Chunk>,
    sinks: HashMap<u64, Sink>,
    next_id: u64,
    closed: bool,
    stopped: bool,
    /// Since when no host has been alive (`None` while one is).
    alone_since: Option<Instant>,
}

/// The master: state, configuration and the way out.
pub(crate) struct Core {
    state: Mutex<State>,
    /// Signalled when hosts join, become ready or die, and when the last task finishes.
    changed: Condvar,
    /// Set once the backend is up; taken (and dropped by the pool's owner) when it stops.
    link: Mutex<Option<Box<dyn MasterLink>>>,
    config: Config,
}

impl Core {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            state: Mutex::new(State {
                hosts: Vec::new(),
                by_peer: HashMap::new(),
                tokens: HashSet::new(),
                parked: HashMap::new(),
                pending: VecDeque::new(),
                sinks: HashMap::new(),
                next_id: 0,
                closed: false,
                stopped: false,
                alone_since: Some(Instant::now()),
            }),
            changed: Condvar::new(),
            link: Mutex::new(None),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the backend's link (once it is up) and dispatches what waits.
    pub(crate) fn set_link(&self, link: Box<dyn MasterLink>) {
        let mut st = self.lock();
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
        self.dispatch(&mut st);
    }

    /// Takes the link out, for its owner to drop outside every lock (undeclaring a backend's
    /// endpoints may wait for its callbacks, which take the state lock).
    pub(crate) fn take_link(&self) -> Option<Box<dyn MasterLink>> {
        let _st = self.lock();
        self.link.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Sends through the link, if it is there. Called with the state lock held.
    fn send(&self, peer: &str, bytes: Vec<u8>) {
        if let Some(link) = self.link.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            link.send(peer, bytes);
        }
    }

    /// Queues chunks of `func`, all or none: each an encoded `Vec<A>` of `items` items, whose
    /// `sink` receives the encoded `Vec<R>`.
    pub(crate) fn submit(
        &self,
        func: TaskFn,
        chunks: Vec<ipc_pool::raw::Chunk<TaskError>>,
    ) -> Result<(), SubmitError> {
        let mut st = self.lock();
        if st.closed || st.stopped {
            return Err(SubmitError::Closed);
        }
        for c in chunks {
            let id = st.next_id;
            st.next_id += 1;
            st.sinks.insert(id, c.sink);
            st.pending.push_back(Chunk {
                id,
                func,
                input: c.input,
                items: c.items,
            });
        }
        self.dispatch(&mut st);
        Ok(())
    }

    /// Refuses new submissions (Python's `close`); hosts may still join to finish the work.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Fails every chunk no host holds yet with [`TaskError::Terminated`].
    pub(crate) fn cancel_pending(&self) {
        let mut deliveries = Vec::new();
        {
            let mut st = self.lock();
            let pending: Vec<Chunk> = st.pending.drain(..).collect();
            for c in pending {
                fail(&mut st, &mut deliveries, c.id, TaskError::Terminated);
            }
        }
        deliver(deliveries);
        self.changed.notify_all();
    }

    /// Waits until every submitted task has finished, then tells the hosts to stop.
    pub(crate) fn join(&self) {
        let mut st = self.lock();
        while !st.sinks.is_empty() && !st.stopped {
            st = self
                .changed
                .wait_timeout(st, TICK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        self.stop(false);
    }

    /// Stops: with `kill`, unfinished tasks fail with [`TaskError::Terminated`]; every live host
    /// is told to shut down.
    pub(crate) fn stop(&self, kill: bool) {
        let mut deliveries = Vec::new();
        {
            let mut st = self.lock();
            if kill {
                let mut all: Vec<Chunk> = st.pending.drain(..).collect();
                for h in &mut st.hosts {
                    for lane in &mut h.lanes {
                        all.extend(lane.drain(..));
                    }
                }
                for c in all {
                    fail(&mut st, &mut deliveries, c.id, TaskError::Terminated);
                }
            }
            if !st.stopped {
                st.stopped = true;
                st.closed = true;
                if let Ok(bytes) = codec::encode(&ToHostOut::Shutdown) {
                    for h in st.hosts.iter().filter(|h| h.stats.alive) {
                        self.send(&h.peer, bytes.clone());
                    }
                }
            }
        }
        deliver(deliveries);
        self.changed.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Every host that ever joined, alive or not, in joining order.
    pub(crate) fn hosts(&self) -> Vec<HostStats> {
        self.lock().hosts.iter().map(|h| h.stats.clone()).collect()
    }

    /// The worker processes of the live hosts.
    pub(crate) fn processes(&self) -> usize {
        self.lock()
            .hosts
            .iter()
            .filter(|h| h.stats.alive)
            .map(|h| h.stats.processes)
            .sum()
    }

    /// The credit of the live hosts together (at least 1).
    pub(crate) fn total_credit(&self) -> usize {
        self.lock()
            .hosts
            .iter()
            .filter(|h| h.stats.alive)
            .map(|h| h.depth.max(h.item_credit) * h.lanes.len())
            .sum::<usize>()
            .max(1)
    }

    /// Waits until `n` hosts are alive and ready, at most `timeout`.
    pub(crate) fn wait_hosts(&self, n: usize, timeout: Duration) -> Result<usize, WaitHostsError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            let ready = st.hosts.iter().filter(|h| h.stats.alive && h.ready).count();
            if ready >= n {
                return Ok(ready);
            }
            if st.stopped {
                return Err(WaitHostsError::Closed);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(WaitHostsError::Timeout {
                    wanted: n,
                    alive: ready,
                });
            };
            st = self
                .changed
                .wait_timeout(st, left.min(TICK))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Hands pending chunks to lanes with room and sends each host its new ones as one message.
    /// Called with the state lock held, so sends to one host keep the recorded order.
    fn dispatch(&self, st: &mut State) {
        if st.pending.is_empty() || st.stopped {
            return;
        }
        if self
            .link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            return;
        }
        let mut fresh: Vec<Vec<usize>> = st.hosts.iter().map(|h| vec![0; h.lanes.len()]).collect();
        while let Some(items) = st.pending.front().map(|c| c.items) {
            let best = st
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.stats.alive && h.ready)
                .filter_map(|(i, h)| h.free_lane(items).map(|(l, n)| (n, h.outstanding(), i, l)))
                .min();
            let Some((_, _, i, l)) = best else { break };
            let Some(chunk) = st.pending.pop_front() else {
                break;
            };
            st.hosts[i].lanes[l].push_back(chunk);
            fresh[i][l] += 1;
        }
        for (i, per_lane) in fresh.into_iter().enumerate() {
            if per_lane.iter().all(|&n| n == 0) {
                continue;
            }
            let h = &st.hosts[i];
            let mut chunks: Vec<ChunkOut<'_>> = Vec::new();
            for (l, n) in per_lane.into_iter().enumerate() {
                let lane = &h.lanes[l];
                chunks.extend(lane.range(lane.len() - n..).map(|c| ChunkOut {
                    id: c.id,
                    lane: l as u32,
                    func: c.func.tag(&h.key),
                    input: BytesRef(&c.input),
                }));
            }
            // Encoding byte strings and fixed-size references cannot fail.
            if let Ok(bytes) = codec::encode(&ToHostOut::Chunks(chunks)) {
                self.send(&h.peer, bytes);
            }
        }
    }

    /// Handles one event from the backend.
    pub(crate) fn handle(&self, event: MasterEvent) {
        let mut deliveries = Vec::new();
        {
            let mut st = self.lock();
            match event {
                MasterEvent::Alive(peer) => {
                    st.tokens.insert(peer.clone());
                    if let Some((request, reply, _)) = st.parked.remove(&peer) {
                        self.on_join(&mut st, peer, &request, reply);
                    }
                }
                MasterEvent::Join {
                    peer,
                    request,
                    reply,
                } => {
                    if st.tokens.contains(&peer) {
                        self.on_join(&mut st, peer, &request, reply);
                    } else {
                        st.parked.insert(peer, (request, reply, Instant::now()));
                    }
                }
                MasterEvent::Message { peer, bytes } => {
                    self.on_message(&mut st, &peer, &bytes, &mut deliveries)
                }
                MasterEvent::Gone(peer) => self.on_gone(&mut st, &peer, &mut deliveries),
            }
            self.dispatch(&mut st);
        }
        deliver(deliveries);
    }

    fn on_join(&self, st: &mut State, peer: PeerId, request: &[u8], reply: Replier) {
        let answer = match codec::decode::<JoinRequest>(request) {
            Err(_) => JoinReply::Refused(Refusal::BadRequest),
            Ok(r) if r.protocol != PROTOCOL => JoinReply::Refused(Refusal::Protocol {
                master: PROTOCOL,
                host: r.protocol,
            }),
            Ok(r) if r.build != self.config.build => JoinReply::Refused(Refusal::Build {
                master: self.config.build,
                host: r.build,
            }),
            Ok(_) if st.stopped => JoinReply::Refused(Refusal::Closed),
            Ok(r) => {
                let key = match st.by_peer.get(&peer) {
                    Some(&i) if st.hosts[i].stats.alive => st.hosts[i].key,
                    _ => {
                        let key = FnKey::random();
                        let processes = (r.processes as usize).clamp(1, 4096);
                        st.by_peer.insert(peer.clone(), st.hosts.len());
                        st.hosts.push(Host {
                            peer,
                            stats: HostStats {
                                name: r.name,
                                pid: r.pid,
                                processes,
                                alive: true,
                                chunks_done: 0,
                                items_done: 0,
                                chunks_failed: 0,
                            },
                            key,
                            ready: false,
                            lanes: (0..processes).map(|_| VecDeque::new()).collect(),
                            depth: self.config.credit.unwrap_or(CREDIT_PER_PROCESS).max(1),
                            item_credit: match self.config.credit {
                                Some(_) => 0,
                                None => ITEM_CREDIT_PER_PROCESS,
                            },
                        });
                        st.alone_since = None;
                        self.changed.notify_all();
                        key
                    }
                };
                JoinReply::Accepted {
                    key,
                    init: self
                        .config
                        .init
                        .as_ref()
                        .map(|(f, arg)| (f.tag(&key), Bytes(arg.clone()))),
                }
            }
        };
        if let Ok(bytes) = codec::encode(&answer) {
            reply(bytes);
        }
    }

    fn on_message(&self, st: &mut State, peer: &str, bytes: &[u8], deliveries: &mut Vec<Delivery>) {
        let Some(&i) = st.by_peer.get(peer) else {
            return;
        };
        if !st.hosts[i].stats.alive {
            return;
        }
        let results = match codec::decode::<FromHost>(bytes) {
            Ok(FromHost::Ready) => {
                st.hosts[i].ready = true;
                self.changed.notify_all();
                return;
            }
            Ok(FromHost::Results(results)) => results,
            Err(_) => return,
        };
        for r in results {
            let h = &mut st.hosts[i];
            let Some(chunk) = h.lanes.iter_mut().find_map(|lane| {
                let pos = lane.iter().position(|c| c.id == r.id)?;
                lane.remove(pos)
            }) else {
                continue;
            };
            let outcome = match r.outcome {
                Ok(Bytes(out)) => {
                    h.stats.chunks_done += 1;
                    h.stats.items_done += chunk.items as u64;
                    Ok(out)
                }
                Err(f) => {
                    h.stats.chunks_failed += 1;
                    Err(remote_error(&h.stats.name, f))
                }
            };
            if let Some(sink) = st.sinks.remove(&chunk.id) {
                deliveries.push((sink, outcome));
            }
        }
        if st.sinks.is_empty() {
            self.changed.notify_all();
        }
    }

    fn on_gone(&self, st: &mut State, peer: &str, deliveries: &mut Vec<Delivery>) {
        st.tokens.remove(peer);
        if let Some((_, reply, _)) = st.parked.remove(peer) {
            refuse(reply, Refusal::NotAlive);
        }
        let Some(i) = st.by_peer.remove(peer) else {
            return;
        };
        let h = &mut st.hosts[i];
        h.stats.alive = false;
        let (name, pid) = (h.stats.name.clone(), h.stats.pid);
        let mut running = Vec::new();
        let mut queued = Vec::new();
        for lane in &mut h.lanes {
            running.extend(lane.pop_front());
            queued.extend(lane.drain(..));
        }
        h.stats.chunks_failed += running.len() as u64;
        for c in running {
            let e = TaskError::WorkerDied {
                host: name.clone(),
                pid,
                cause: DeathCause::HostLost,
            };
            fail(st, deliveries, c.id, e);
        }
        queued.sort_by_key(|c| c.id);
        for c in queued.into_iter().rev() {
            st.pending.push_front(c);
        }
        if let Some(link) = self.link.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            link.forget(peer);
        }
        if !st.hosts.iter().any(|h| h.stats.alive) {
            st.alone_since = Some(Instant::now());
        }
        self.changed.notify_all();
    }

    /// Refuses join requests whose token never appeared, and fails waiting chunks once no host
    /// has been alive for `no_host_timeout`.
    pub(crate) fn tick(&self) {
        let mut deliveries = Vec::new();
        {
            let mut st = self.lock();
            let stale: Vec<PeerId> = st
                .parked
                .iter()
                .filter(|(_, (_, _, at))| at.elapsed() >= JOIN_WAIT)
                .map(|(p, _)| p.clone())
                .collect();
            for p in stale {
                if let Some((_, reply, _)) = st.parked.remove(&p) {
                    refuse(reply, Refusal::NotAlive);
                }
            }
            let Some(since) = st.alone_since else { return };
            let waited = since.elapsed();
            if st.pending.is_empty() || waited < self.config.no_host_timeout {
                return;
            }
            let pending: Vec<Chunk> = st.pending.drain(..).collect();
            for c in pending {
                fail(
                    &mut st,
                    &mut deliveries,
                    c.id,
                    TaskError::NoHosts { waited },
                );
            }
        }
        deliver(deliveries);
        self.changed.notify_all();
    }
}

fn deliver(deliveries: Vec<Delivery>) {
    for (sink, outcome) in deliveries {
        sink(outcome);
    }
}

fn refuse(reply: Replier, why: Refusal) {
    if let Ok(bytes) = codec::encode(&JoinReply::Refused(why)) {
        reply(bytes);
    }
}

fn fail(st: &mut State, deliveries: &mut Vec<Delivery>, id: u64, e: TaskError) {
    if let Some(sink) = st.sinks.remove(&id) {
        deliveries.push((sink, Err(e)));
    }
}

/// A host's report of a failed chunk, as the caller sees it.
fn remote_error(host: &str, f: RemoteFailure) -> TaskError {
    let host = host.to_owned();
    match f {
        RemoteFailure::Panicked {
            pid,
            message,
            location,
        } => TaskError::Panicked {
            host,
            pid,
            message,
            location,
        },
        RemoteFailure::WorkerDied {
            pid,
            exit_code,
            cause,
        } => TaskError::WorkerDied {
            host,
            pid,
            cause: DeathCause::Process {
                exit_code,
                description: cause,
            },
        },
        RemoteFailure::Codec(message) => TaskError::Codec {
            host: Some(host),
            message,
        },
        RemoteFailure::BadFunction => TaskError::Refused { host },
        RemoteFailure::Terminated => TaskError::Terminated,
        RemoteFailure::PoolBroken(reason) => TaskError::PoolBroken { host, reason },
    }
}

/// The master's ticker thread: enforces the timeouts until the pool stops.
pub(crate) fn ticker(core: Arc<Core>) {
    while !core.is_stopped() {
        std::thread::sleep(TICK);
        core.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ToHost;

    type Sent = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    struct FakeLink(Sent);

    impl MasterLink for FakeLink {
        fn send(&self, peer: &str, bytes: Vec<u8>) {
            self.0.lock().unwrap().push((peer.to_owned(), bytes));
        }
        fn forget(&self, _: &str) {}
    }

    fn square(x: u64) -> u64 {
        x * x
    }

    fn core(no_host_timeout: Duration) -> (Core, Sent) {
        core_with_credit(no_host_timeout, Some(2))
    }

    fn core_with_credit(no_host_timeout: Duration, credit: Option<usize>) -> (Core, Sent) {
        let sent: Sent = Arc::default();
        let core = Core::new(Config {
            build: BuildId::current().unwrap(),
            credit,
            no_host_timeout,
            init: None,
        });
        core.set_link(Box::new(FakeLink(Arc::clone(&sent))));
        (core, sent)
    }

    fn ready(core: &Core, peer: &str) {
        core.handle(MasterEvent::Message {
            peer: peer.into(),
            bytes: codec::encode(&FromHost::Ready).unwrap(),
        });
    }

    /// Joins `peer` with `processes`; returns the reply.
    fn join(core: &Core, peer: &str, processes: u32, build: BuildId) -> JoinReply {
        let (tx, rx) = std::sync::mpsc::channel();
        let request = codec::encode(&JoinRequest {
            protocol: PROTOCOL,
            build,
            name: peer.to_owned(),
            pid: 1,
            processes,
        })
        .unwrap();
        core.handle(MasterEvent::Alive(peer.into()));
        core.handle(MasterEvent::Join {
            peer: peer.into(),
            request,
            reply: Box::new(move |b| tx.send(b).unwrap()),
        });
        let reply = codec::decode(&rx.try_recv().unwrap()).unwrap();
        ready(core, peer);
        reply
    }

    /// The (lane, chunk id) pairs each peer was sent, sorted.
    fn chunks_sent(sent: &Sent, peer: &str) -> Vec<(u32, u64)> {
        let mut v: Vec<(u32, u64)> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == peer)
            .flat_map(|(_, b)| match codec::decode::<ToHost>(b).unwrap() {
                ToHost::Chunks(c) => c.into_iter().map(|c| (c.lane, c.id)).collect(),
                ToHost::Shutdown => Vec::new(),
            })
            .collect();
        v.sort_unstable();
        v
    }

    type Outcomes = Arc<Mutex<HashMap<u64, Result<Vec<u8>, TaskError>>>>;

    fn submit_n(core: &Core, n: u64) -> Outcomes {
        let out: Outcomes = Arc::default();
        for i in 0..n {
            let o = Arc::clone(&out);
            let chunk = ipc_pool::raw::Chunk {
                input: codec::encode(&vec![i]).unwrap(),
                items: 1,
                sink: Box::new(move |r| {
                    o.lock().unwrap().insert(i, r);
                }),
            };
            core.submit(TaskFn::map(square), vec![chunk]).unwrap();
        }
        out
    }

    fn answer(core: &Core, peer: &str, ids: &[u64]) {
        let results = ids
            .iter()
            .map(|&id| crate::wire::ChunkResult {
                id,
                outcome: Ok(Bytes(vec![id as u8])),
            })
            .collect();
        core.handle(MasterEvent::Message {
            peer: peer.into(),
            bytes: codec::encode(&FromHost::Results(results)).unwrap(),
        });
    }

    #[test]
    fn chunks_go_to_the_emptiest_lane_within_its_credit() {
        let (core, sent) = core(Duration::from_secs(30));
        let out = submit_n(&core, 10);
        let build = BuildId::current().unwrap();
        assert!(matches!(
            join(&core, "a", 1, build),
            JoinReply::Accepted { .. }
        ));
        assert_eq!(chunks_sent(&sent, "a"), [(0, 0), (0, 1)]);
        assert!(matches!(
            join(&core, "b", 2, build),
            JoinReply::Accepted { .. }
        ));
        assert_eq!(chunks_sent(&sent, "b"), [(0, 2), (0, 4), (1, 3), (1, 5)]);
        answer(&core, "a", &[0]);
        assert_eq!(chunks_sent(&sent, "a"), [(0, 0), (0, 1), (0, 6)]);
        assert_eq!(out.lock().unwrap()[&0].as_ref().unwrap(), &[0]);
        let stats = core.hosts();
        assert_eq!((stats[0].chunks_done, stats[0].items_done), (1, 1));
        // A result for a chunk the host does not hold, or from a stranger, is ignored.
        answer(&core, "a", &[3]);
        answer(&core, "zz", &[1]);
        assert_eq!(out.lock().unwrap().len(), 1);
    }

    #[test]
    fn by_default_small_chunks_fill_a_lane_further_than_big_ones() {
        let (core, sent) = core_with_credit(Duration::from_secs(30), None);
        let _small = submit_n(&core, 40);
        join(&core, "a", 1, BuildId::current().unwrap());
        assert_eq!(chunks_sent(&sent, "a").len(), ITEM_CREDIT_PER_PROCESS);
        let (core, sent) = core_with_credit(Duration::from_secs(30), None);
        for _ in 0..5 {
            let input = codec::encode(&vec![1u64; 20]).unwrap();
            let sink = Box::new(|_| {});
            let chunk = ipc_pool::raw::Chunk {
                input,
                items: 20,
                sink,
            };
            core.submit(TaskFn::map(square), vec![chunk]).unwrap();
        }
        join(&core, "a", 1, BuildId::current().unwrap());
        assert_eq!(chunks_sent(&sent, "a").len(), CREDIT_PER_PROCESS);
    }

    #[test]
    fn a_host_gets_nothing_before_it_is_ready() {
        let (core, sent) = core(Duration::from_secs(30));
        let _out = submit_n(&core, 2);
        let (tx, _rx) = std::sync::mpsc::channel();
        core.handle(MasterEvent::Alive("a".into()));
        core.handle(MasterEvent::Join {
            peer: "a".into(),
            request: codec::encode(&JoinRequest {
                protocol: PROTOCOL,
                build: BuildId::current().unwrap(),
                name: "a".into(),
                pid: 1,
                processes: 1,
            })
            .unwrap(),
            reply: Box::new(move |b| tx.send(b).unwrap()),
        });
        assert!(chunks_sent(&sent, "a").is_empty());
        ready(&core, "a");
        assert_eq!(chunks_sent(&sent, "a"), [(0, 0), (0, 1)]);
    }

    #[test]
    fn a_dead_host_fails_what_each_lane_ran_and_its_queue_goes_elsewhere() {
        let (core, sent) = core(Duration::from_secs(30));
        let out = submit_n(&core, 6);
        let build = BuildId::current().unwrap();
        join(&core, "a", 2, build);
        assert_eq!(chunks_sent(&sent, "a"), [(0, 0), (0, 2), (1, 1), (1, 3)]);
        join(&core, "b", 1, build);
        assert_eq!(chunks_sent(&sent, "b"), [(0, 4), (0, 5)]);
        answer(&core, "a", &[1]);
        core.handle(MasterEvent::Gone("a".into()));
        // Lane 0 of `a` ran 0, lane 1 ran 3 (1 was answered); 2 waits for `b`.
        {
            let out = out.lock().unwrap();
            for id in [0, 3] {
                match &out[&id] {
                    Err(TaskError::WorkerDied {
                        host,
                        cause: DeathCause::HostLost,
                        ..
                    }) => assert_eq!(host, "a"),
                    other => panic!("{other:?}"),
                }
            }
            assert!(out[&1].is_ok());
            assert!(!out.contains_key(&2));
        }
        answer(&core, "b", &[4]);
        assert_eq!(chunks_sent(&sent, "b"), [(0, 2), (0, 4), (0, 5)]);
        let stats = core.hosts();
        assert!(!stats[0].alive && stats[1].alive);
        assert_eq!(stats[0].chunks_failed, 2);
    }

    #[test]
    fn another_build_or_protocol_is_refused_and_an_early_join_waits_for_the_token() {
        let (core, _) = core(Duration::from_secs(30));
        let other = BuildId::of_file(std::path::Path::new("/proc/self/cmdline")).unwrap();
        match join(&core, "x", 1, other) {
            JoinReply::Refused(Refusal::Build { host, .. }) => assert_eq!(host, other),
            r => panic!("{r:?}"),
        }
        assert!(core.hosts().is_empty());
        let (tx, rx) = std::sync::mpsc::channel();
        let request = codec::encode(&JoinRequest {
            protocol: PROTOCOL + 1,
            build: BuildId::current().unwrap(),
            name: "p".into(),
            pid: 1,
            processes: 1,
        })
        .unwrap();
        core.handle(MasterEvent::Alive("p".into()));
        core.handle(MasterEvent::Join {
            peer: "p".into(),
            request,
            reply: Box::new(move |b| tx.send(b).unwrap()),
        });
        assert!(matches!(
            codec::decode::<JoinReply>(&rx.try_recv().unwrap()).unwrap(),
            JoinReply::Refused(Refusal::Protocol { .. })
        ));
        // A join that overtook its token is answered when the token appears.
        let (tx, rx) = std::sync::mpsc::channel();
        let request = codec::encode(&JoinRequest {
            protocol: PROTOCOL,
            build: BuildId::current().unwrap(),
            name: "late".into(),
            pid: 1,
            processes: 1,
        })
        .unwrap();
        core.handle(MasterEvent::Join {
            peer: "late".into(),
            request,
            reply: Box::new(move |b| tx.send(b).unwrap()),
        });
        assert!(rx.try_recv().is_err());
        core.handle(MasterEvent::Alive("late".into()));
        assert!(matches!(
            codec::decode::<JoinReply>(&rx.try_recv().unwrap()).unwrap(),
            JoinReply::Accepted { .. }
        ));
        // One that never sees its token is refused when the peer is reported gone.
        let (tx, rx) = std::sync::mpsc::channel();
        core.handle(MasterEvent::Join {
            peer: "ghost".into(),
            request: Vec::new(),
            reply: Box::new(move |b| tx.send(b).unwrap()),
        });
        core.handle(MasterEvent::Gone("ghost".into()));
        assert!(matches!(
            codec::decode::<JoinReply>(&rx.try_recv().unwrap()).unwrap(),
            JoinReply::Refused(Refusal::NotAlive)
        ));
    }

    #[test]
    fn without_hosts_work_fails_after_the_timeout_and_terminate_fails_the_rest() {
        let (core, _) = core(Duration::ZERO);
        let out = submit_n(&core, 2);
        core.tick();
        assert!(matches!(
            out.lock().unwrap()[&0],
            Err(TaskError::NoHosts { .. })
        ));
        let (core, sent) = core_with_host();
        let out = submit_n(&core, 3);
        core.stop(true);
        assert!(
            out.lock()
                .unwrap()
                .values()
                .all(|r| matches!(r, Err(TaskError::Terminated)))
        );
        assert!(
            sent.lock()
                .unwrap()
                .iter()
                .any(|(_, b)| matches!(codec::decode::<ToHost>(b), Ok(ToHost::Shutdown)))
        );
        assert!(matches!(
            core.submit(TaskFn::map(square), Vec::new()),
            Err(SubmitError::Closed)
        ));
    }

    fn core_with_host() -> (Core, Sent) {
        let (core, sent) = core(Duration::from_secs(30));
        join(&core, "h", 1, BuildId::current().unwrap());
        (core, sent)
    }
}
