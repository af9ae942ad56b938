//! The master's state and scheduler: hosts and their credits, chunks waiting and outstanding,
//! and what a host's death does to them. Transport-independent: events come from a backend
//! through [`MasterEvent`]s, handled in order by one thread ([`event_loop`]); messages leave
//! through a [`MasterLink`].
//!
//! ## Dispatch
//! Chunks wait in `pending` (in submission order) until some live host has credit: each host
//! may hold at most `credit` outstanding chunks (by default twice its processes), so a slow host
//! cannot hoard the work faster ones would take. Each round hands the next chunk to the live
//! host with the lowest outstanding/credit ratio and sends each host its new chunks as one
//! message, tagged under that host's key. Sends happen under the state lock, so the order a
//! host receives its chunks in is the order recorded in its `outstanding` list.
//!
//! ## Death
//! A host runs at most `processes` chunks at a time, admitted in arrival order, so the chunks it
//! is running are exactly the first `processes` of its outstanding list (results it sent before
//! dying arrive, on the same connection, before the news of its death). When its liveliness
//! token vanishes, those chunks fail with [`TaskError::WorkerDied`] naming the host
//! ([`DeathCause::HostLost`]) — a chunk that kills its host fails, rather than killing the next
//! one — and the rest go back, in order, to the front of `pending` for other hosts. While no
//! host is alive, waiting chunks wait; after `no_host_timeout` without one they fail with
//! [`TaskError::NoHosts`], so nothing waits forever on hosts that are gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
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

/// Chunks a host may hold per worker process, by default.
pub(crate) const CREDIT_PER_PROCESS: usize = 2;

/// How often the event thread wakes without events (to enforce `no_host_timeout` and to notice
/// a stop).
const TICK: Duration = Duration::from_millis(20);

/// How long a join request waits for the host's liveliness token to be seen.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// Receives a chunk's encoded output (`Vec<R>`), or why there is none. Runs in the event thread.
pub(crate) type Sink = Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>;

/// A sink with its outcome, run once the state lock is released.
type Delivery = (Sink, Result<Vec<u8>, TaskError>);

/// What the master was built with.
pub(crate) struct Config {
    pub(crate) build: BuildId,
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
    credit: usize,
    key: FnKey,
    /// Chunks sent and not answered, in the order sent.
    outstanding: VecDeque<Chunk>,
}

impl Host {
    fn load(&self) -> f64 {
        self.outstanding.len() as f64 / self.credit as f64
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
    /// Signalled when hosts join or die and when the last outstanding task finishes.
    changed: Condvar,
    link: Box<dyn MasterLink>,
    config: Config,
}

impl Core {
    pub(crate) fn new(link: Box<dyn MasterLink>, config: Config) -> Self {
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
            link,
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one chunk: `func` over `input` (an encoded `Vec<A>` of `items` items); `sink`
    /// receives the encoded `Vec<R>`.
    pub(crate) fn submit(
        &self,
        func: TaskFn,
        input: Vec<u8>,
        items: usize,
        sink: Sink,
    ) -> Result<(), SubmitError> {
        let mut st = self.lock();
        if st.closed || st.stopped {
            return Err(SubmitError::Closed);
        }
        let id = st.next_id;
        st.next_id += 1;
        st.sinks.insert(id, sink);
        st.pending.push_back(Chunk {
            id,
            func,
            input,
            items,
        });
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
        for (sink, outcome) in deliveries {
            sink(outcome);
        }
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
                let pending: Vec<Chunk> = st.pending.drain(..).collect();
                for c in pending {
                    fail(&mut st, &mut deliveries, c.id, TaskError::Terminated);
                }
                for i in 0..st.hosts.len() {
                    let out: Vec<Chunk> = st.hosts[i].outstanding.drain(..).collect();
                    for c in out {
                        fail(&mut st, &mut deliveries, c.id, TaskError::Terminated);
                    }
                }
            }
            if !st.stopped {
                st.stopped = true;
                st.closed = true;
                if let Ok(bytes) = codec::encode(&ToHostOut::Shutdown) {
                    for h in st.hosts.iter().filter(|h| h.stats.alive) {
                        self.link.send(&h.peer, bytes.clone());
                    }
                }
            }
        }
        for (sink, outcome) in deliveries {
            sink(outcome);
        }
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
            .map(|h| h.credit)
            .sum::<usize>()
            .max(1)
    }

    /// Waits until `n` hosts are alive, at most `timeout`.
    pub(crate) fn wait_hosts(&self, n: usize, timeout: Duration) -> Result<usize, WaitHostsError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            let alive = st.hosts.iter().filter(|h| h.stats.alive).count();
            if alive >= n {
                return Ok(alive);
            }
            if st.stopped {
                return Err(WaitHostsError::Closed);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(WaitHostsError::Timeout { wanted: n, alive });
            };
            st = self
                .changed
                .wait_timeout(st, left.min(TICK))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Hands pending chunks to live hosts with credit, and sends each host its new ones as one
    /// message. Called with the lock held, so sends to one host keep the recorded order.
    fn dispatch(&self, st: &mut State) {
        if st.pending.is_empty() || st.stopped {
            return;
        }
        let mut fresh: Vec<usize> = vec![0; st.hosts.len()];
        while !st.pending.is_empty() {
            let best = st
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.stats.alive && h.outstanding.len() < h.credit)
                .min_by(|(_, a), (_, b)| a.load().total_cmp(&b.load()))
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let Some(chunk) = st.pending.pop_front() else {
                break;
            };
            st.hosts[i].outstanding.push_back(chunk);
            fresh[i] += 1;
        }
        for (i, n) in fresh.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            let h = &st.hosts[i];
            let start = h.outstanding.len() - n;
            let chunks: Vec<ChunkOut<'_>> = h
                .outstanding
                .range(start..)
                .map(|c| ChunkOut {
                    id: c.id,
                    func: c.func.tag(&h.key),
                    input: BytesRef(&c.input),
                })
                .collect();
            // Encoding a message of byte strings and fixed-size references cannot fail.
            if let Ok(bytes) = codec::encode(&ToHostOut::Chunks(chunks)) {
                self.link.send(&h.peer, bytes);
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
        for (sink, outcome) in deliveries {
            sink(outcome);
        }
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
                        let processes = (r.processes as usize).max(1);
                        let credit = self
                            .config
                            .credit
                            .unwrap_or(CREDIT_PER_PROCESS * processes)
                            .max(1);
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
                            credit,
                            key,
                            outstanding: VecDeque::new(),
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
        let Ok(FromHost::Results(results)) = codec::decode::<FromHost>(bytes) else {
            return;
        };
        for r in results {
            let h = &mut st.hosts[i];
            let Some(pos) = h.outstanding.iter().position(|c| c.id == r.id) else {
                continue;
            };
            let Some(chunk) = h.outstanding.remove(pos) else {
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
        let Some(&i) = st.by_peer.get(peer) else {
            return;
        };
        let h = &mut st.hosts[i];
        if !h.stats.alive {
            return;
        }
        h.stats.alive = false;
        let running = h.stats.processes.min(h.outstanding.len());
        let mut out: Vec<Chunk> = h.outstanding.drain(..).collect();
        let (name, pid) = (h.stats.name.clone(), h.stats.pid);
        let queued = out.split_off(running);
        for c in out {
            st.hosts[i].stats.chunks_failed += 1;
            fail(
                st,
                deliveries,
                c.id,
                TaskError::WorkerDied {
                    host: name.clone(),
                    pid,
                    cause: DeathCause::HostLost,
                },
            );
        }
        for c in queued.into_iter().rev() {
            st.pending.push_front(c);
        }
        st.by_peer.remove(peer);
        self.link.forget(peer);
        if !st.hosts.iter().any(|h| h.stats.alive) {
            st.alone_since = Some(Instant::now());
        }
        if st.sinks.is_empty() {
            self.changed.notify_all();
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
        for (sink, outcome) in deliveries {
            sink(outcome);
        }
        self.changed.notify_all();
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
    }
}

/// The master's event thread: handles the backend's events in order until the pool stops.
pub(crate) fn event_loop(core: Arc<Core>, events: Receiver<MasterEvent>) {
    loop {
        match events.recv_timeout(TICK) {
            Ok(ev) => core.handle(ev),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        core.tick();
        if core.is_stopped() {
            break;
        }
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
        let sent: Sent = Arc::default();
        let core = Core::new(
            Box::new(FakeLink(Arc::clone(&sent))),
            Config {
                build: BuildId::current().unwrap(),
                credit: None,
                no_host_timeout,
                init: None,
            },
        );
        (core, sent)
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
        codec::decode(&rx.try_recv().unwrap()).unwrap()
    }

    /// The chunk ids each peer was sent, in order.
    fn chunks_sent(sent: &Sent, peer: &str) -> Vec<u64> {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == peer)
            .flat_map(|(_, b)| match codec::decode::<ToHost>(b).unwrap() {
                ToHost::Chunks(c) => c.into_iter().map(|c| c.id).collect(),
                ToHost::Shutdown => Vec::new(),
            })
            .collect()
    }

    type Outcomes = Arc<Mutex<HashMap<u64, Result<Vec<u8>, TaskError>>>>;

    fn submit_n(core: &Core, n: u64) -> Outcomes {
        let out: Outcomes = Arc::default();
        for i in 0..n {
            let o = Arc::clone(&out);
            core.submit(
                TaskFn::map(square),
                codec::encode(&vec![i]).unwrap(),
                1,
                Box::new(move |r| {
                    o.lock().unwrap().insert(i, r);
                }),
            )
            .unwrap();
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
    fn chunks_go_out_within_each_hosts_credit_by_load() {
        let (core, sent) = core(Duration::from_secs(30));
        let out = submit_n(&core, 10);
        assert!(matches!(
            join(&core, "a", 1, BuildId::current().unwrap()),
            JoinReply::Accepted { .. }
        ));
        assert_eq!(chunks_sent(&sent, "a"), [0, 1]);
        assert!(matches!(
            join(&core, "b", 2, BuildId::current().unwrap()),
            JoinReply::Accepted { .. }
        ));
        assert_eq!(chunks_sent(&sent, "b"), [2, 3, 4, 5]);
        answer(&core, "a", &[0]);
        assert_eq!(chunks_sent(&sent, "a"), [0, 1, 6]);
        assert_eq!(out.lock().unwrap()[&0].as_ref().unwrap(), &[0]);
        let stats = core.hosts();
        assert_eq!((stats[0].chunks_done, stats[0].items_done), (1, 1));
        // A result for a chunk the host does not hold, or from a stranger, is ignored.
        answer(&core, "a", &[3]);
        answer(&core, "zz", &[1]);
        assert_eq!(out.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_dead_host_fails_what_it_ran_and_its_queue_goes_elsewhere() {
        let (core, sent) = core(Duration::from_secs(30));
        let out = submit_n(&core, 6);
        let build = BuildId::current().unwrap();
        join(&core, "a", 2, build);
        assert_eq!(chunks_sent(&sent, "a"), [0, 1, 2, 3]);
        join(&core, "b", 1, build);
        assert_eq!(chunks_sent(&sent, "b"), [4, 5]);
        answer(&core, "a", &[1]);
        core.handle(MasterEvent::Gone("a".into()));
        // `a` ran 0 and 2 (the first two of 0, 2, 3 it had not answered); 3 waits for `b`.
        {
            let out = out.lock().unwrap();
            for id in [0, 2] {
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
            assert!(!out.contains_key(&3));
        }
        answer(&core, "b", &[4]);
        assert_eq!(chunks_sent(&sent, "b"), [4, 5, 3]);
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
            core.submit(TaskFn::map(square), Vec::new(), 0, Box::new(|_| {})),
            Err(SubmitError::Closed)
        ));
    }

    fn core_with_host() -> (Core, Sent) {
        let (core, sent) = core(Duration::from_secs(30));
        join(&core, "h", 1, BuildId::current().unwrap());
        (core, sent)
    }
}
