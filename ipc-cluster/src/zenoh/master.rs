//! The master's side of the zenoh backend: the join queryable, the results subscriber, the
//! hosts' liveliness, the master's own token, and one publisher per host.
//!
//! Every callback turns what zenoh delivered into a [`MasterEvent`] and hands it to the master's
//! logic at once, in zenoh's receiving thread, so events from one host are handled in the order
//! they came over its connection.

use std::collections::HashMap;
use std::sync::Mutex;

use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::Queryable;

use super::Node;
use super::keys;
use super::liveliness::{self, Change};
use crate::error::BuildError;
use crate::link::{Events, MasterEvent, MasterLink, PeerId};

pub(crate) struct ZenohMaster {
    session: zenoh::Session,
    job: String,
    pool: String,
    publishers: Mutex<HashMap<String, Publisher<'static>>>,
    // Declared for as long as the master lives; dropping them undeclares them. The token goes
    // first: hosts see the master leave before its endpoints do.
    _token: LivelinessToken,
    _join: Queryable<()>,
    _results: Subscriber<()>,
    _hosts: Subscriber<()>,
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
    let pool = format!("{:016x}", ipc_core::random_u128() as u64);
    let base = keys::master(job, &pool);

    let tx = std::sync::Arc::clone(&events);
    let hosts = liveliness::watch(&session, format!("{base}/host/*"), move |key, change| {
        let peer: PeerId = keys::last(key).into();
        tx(match change {
            Change::Present => MasterEvent::Alive(peer),
            Change::Gone { .. } => MasterEvent::Gone(peer),
        });
    })
    .map_err(transport)?;

    let tx = std::sync::Arc::clone(&events);
    let results = session
        .declare_subscriber(format!("{base}/results/*"))
        .callback(move |sample| {
            let peer: PeerId = keys::last(sample.key_expr().as_str()).into();
            let bytes = sample.payload().to_bytes().into_owned();
            tx(MasterEvent::Message { peer, bytes });
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
        session,
        job: job.to_owned(),
        pool,
        publishers: Mutex::new(HashMap::new()),
        _token: token,
        _join: join,
        _results: results,
        _hosts: hosts,
    }))
}

impl MasterLink for ZenohMaster {
    fn send(&self, peer: &str, bytes: Vec<u8>) {
        let mut pubs = self.publishers.lock().unwrap_or_else(|p| p.into_inner());
        if !pubs.contains_key(peer) {
            let declared = self
                .session
                .declare_publisher(keys::tasks(&self.job, &self.pool, peer))
                .congestion_control(CongestionControl::Block)
                .wait();
            match declared {
                Ok(p) => {
                    pubs.insert(peer.to_owned(), p);
                }
                Err(_) => return,
            }
        }
        if let Some(p) = pubs.get(peer) {
            let _ = p.put(bytes).wait();
        }
    }

    fn forget(&self, peer: &str) {
        let mut pubs = self.publishers.lock().unwrap_or_else(|p| p.into_inner());
        pubs.remove(peer);
    }
}
