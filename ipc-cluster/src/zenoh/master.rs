//! The master's side of the zenoh backend: the join queryable, the results subscriber, the
//! hosts' liveliness, the master's own token, and one publisher per host.
//!
//! Every callback turns what zenoh delivered into a [`MasterEvent`] and hands it to the master's
//! logic at once, in zenoh's receiving thread, so events from one host are handled in the order
//! they came over its connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::query::Queryable;

use super::Node;
use super::keys;
use super::liveliness::{self, Change};
use super::reliable::{Frame, Incoming, Outgoing};
use crate::error::BuildError;
use crate::link::{Events, MasterEvent, MasterLink, PeerId};

pub(crate) struct ZenohMaster {
    hosts: Arc<Hosts>,
    // Declared for as long as the master lives; dropping them undeclares them. The token goes
    // first: hosts see the master leave before its endpoints do.
    _token: LivelinessToken,
    _join: Queryable<()>,
    _results: Subscriber<()>,
    _hosts: Subscriber<()>,
}

/// The numbered streams to and from each host ([`super::reliable`]).
struct Hosts {
    session: zenoh::Session,
    job: String,
    pool: String,
    outgoing: Mutex<HashMap<String, Arc<Outgoing>>>,
    incoming: Mutex<HashMap<String, Incoming>>,
}

impl Hosts {
    /// The stream to `peer`, declared on first use.
    fn outgoing(&self, peer: &str) -> Option<Arc<Outgoing>> {
        let mut out = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = out.get(peer) {
            return Some(Arc::clone(o));
        }
        let key = keys::tasks(&self.job, &self.pool, peer);
        let o = Outgoing::declare(&self.session, key).ok()?;
        out.insert(peer.to_owned(), Arc::clone(&o));
        Some(o)
    }

    /// The stream to `peer` if there is one.
    fn existing(&self, peer: &str) -> Option<Arc<Outgoing>> {
        let out = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        out.get(peer).cloned()
    }
}

fn transport(e: zenoh::Error) -> BuildError {
    BuildError::Transport(e)
}

pub(crate) fn start(
    node: &Node,
    job: &str,
    events: Events,
) -> Result<Box<dyn MasterLink>, BuildError> {
    let session = node.session().clone();
    // Its node's zenoh id first: the hosts' watcher looks whether the master is reachable.
    let pool = format!("{}-{:08x}", node.id(), ipc_core::random_u128() as u32);
    let base = keys::master(job, &pool);
    let streams = Arc::new(Hosts {
        session: session.clone(),
        job: job.to_owned(),
        pool: pool.clone(),
        outgoing: Mutex::new(HashMap::new()),
        incoming: Mutex::new(HashMap::new()),
    });

    let (tx, s) = (Arc::clone(&events), Arc::clone(&streams));
    let hosts = liveliness::watch_owners(&session, format!("{base}/host/*"), move |key, change| {
        let peer: PeerId = keys::last(key).into();
        if change == Change::Resumed {
            // A new transport to the host: what it had not acknowledged may be lost.
            if let Some(o) = s.existing(&peer) {
                o.resend();
            }
        }
        tx(match change {
            Change::Present | Change::Resumed => MasterEvent::Alive(peer),
            Change::Gone { .. } => MasterEvent::Gone(peer),
        });
    })
    .map_err(transport)?;

    let (tx, s) = (Arc::clone(&events), Arc::clone(&streams));
    let results = session
        .declare_subscriber(format!("{base}/results/*"))
        .callback(move |sample| {
            let peer = keys::last(sample.key_expr().as_str());
            let bytes = sample.payload().to_bytes();
            let (frame, ack) = {
                let mut incoming = s.incoming.lock().unwrap_or_else(|p| p.into_inner());
                match incoming.get_mut(peer) {
                    Some(i) => i.accept(&bytes),
                    None => incoming.entry(peer.to_owned()).or_default().accept(&bytes),
                }
            };
            if let Frame::Data(payload) = frame {
                tx(MasterEvent::Message {
                    peer: peer.into(),
                    bytes: payload.to_vec(),
                });
            }
            // Most results need nothing more; an acknowledgement due, a probe, or what the host
            // says of our stream goes to (or from) the stream to it.
            let out = match (&frame, ack) {
                (Frame::Data(_) | Frame::Skip, None) => None,
                // A host that sends is there: its acknowledgements need the stream to it.
                (Frame::Data(_), Some(_)) => s.outgoing(peer),
                _ => s.existing(peer),
            };
            if let Some(o) = out {
                o.on_peer(&frame);
                o.reply(&frame, ack);
            }
        })
        .wait()
        .map_err(transport)?;

    let tx = events;
    let join = session
        .declare_queryable(format!("{base}/join/*"))
        .callback(move |query| {
            let peer: PeerId = keys::last(query.key_expr().as_str()).into();
            let request = query
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            let reply = Box::new(move |bytes: Vec<u8>| {
                let key = query.key_expr().clone();
                let _ = query.reply(key, bytes).wait();
            });
            tx(MasterEvent::Join {
                peer,
                request,
                reply,
            });
        })
        .wait()
        .map_err(transport)?;

    let token = session
        .liveliness()
        .declare_token(base)
        .wait()
        .map_err(transport)?;

    Ok(Box::new(ZenohMaster {
        hosts: streams,
        _token: token,
        _join: join,
        _results: results,
        _hosts: hosts,
    }))
}

impl MasterLink for ZenohMaster {
    fn send(&self, peer: &str, bytes: Vec<u8>) {
        // Outside the map's lock: a send may wait on a full transmission queue.
        if let Some(o) = self.hosts.outgoing(peer) {
            let _ = o.send(&bytes);
        }
    }

    fn forget(&self, peer: &str) {
        let h = &self.hosts;
        h.outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(peer);
        h.incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(peer);
    }
}
