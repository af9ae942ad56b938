//! The seam between the cluster's logic and a transport (zenoh today; MPI can sit beside it).
//!
//! A backend turns what it hears into calls and carries bytes the logic has encoded; it knows
//! nothing of chunks, credits or keys. The master's logic ([`crate::master`]) and the host's
//! ([`crate::host`]) are the same whatever carries them.
//!
//! Master side: the backend calls its [`Events`] with, **in the order it heard them from each
//! peer**, a host's liveliness appearing ([`MasterEvent::Alive`]), its join request
//! ([`MasterEvent::Join`]), its messages ([`MasterEvent::Message`]) and its disappearance
//! ([`MasterEvent::Gone`]). Keeping that order matters: a host's results sent before it died
//! must be handled before its death. It sends the master's messages to one host with
//! [`MasterLink::send`], in call order.
//!
//! Host side: the backend hands the master's messages to [`crate::host::Lanes::on_message`]
//! and sends the host's with [`HostLink::send`]; it reports the master's disappearance to the
//! code that serves.

use std::sync::Arc;

/// How a backend names a peer (a host): an opaque string it chooses.
pub(crate) type PeerId = Arc<str>;

/// Answers a join request with the encoded reply.
pub(crate) type Replier = Box<dyn FnOnce(Vec<u8>) + Send>;

/// Where a master's backend delivers what it hears (called from its receiving threads).
pub(crate) type Events = Arc<dyn Fn(MasterEvent) + Send + Sync>;

/// What a master's backend reports.
pub(crate) enum MasterEvent {
    /// The peer's liveliness token appeared.
    Alive(PeerId),
    /// The peer asks to join (an encoded [`crate::wire::JoinRequest`]).
    Join {
        peer: PeerId,
        request: Vec<u8>,
        reply: Replier,
    },
    /// The peer sent a message (an encoded [`crate::wire::FromHost`]).
    Message { peer: PeerId, bytes: Vec<u8> },
    /// The peer's liveliness token vanished: it is dead or cut off.
    Gone(PeerId),
}

/// How the master's logic sends.
pub(crate) trait MasterLink: Send + Sync {
    /// Sends an encoded [`crate::wire::ToHostOut`] to `peer`, after everything sent to it
    /// before. A failure is not reported: a host that cannot be reached is reported
    /// [`MasterEvent::Gone`] by its liveliness.
    fn send(&self, peer: &str, bytes: Vec<u8>);
    /// The peer is gone: release what the backend keeps for it.
    fn forget(&self, peer: &str);
}

/// How the host's logic sends.
pub(crate) trait HostLink: Send + Sync {
    /// Sends an encoded [`crate::wire::FromHost`] to the master; `false` if it could not.
    fn send(&self, bytes: Vec<u8>) -> bool;
}
