//! `cluster_pipe`: a point-to-point `Connection` between two nodes, Python's `Pipe()` across
//! hosts.
//!
//! The two ends of a pipe named `name` meet by name: one node opens the `First` end, another
//! the `Second`. Each end declares a subscriber for what the other sends, then a liveliness
//! token; an end opens once it has seen the other's token (so the other's subscriber is there,
//! declared before the token on the same connection, and nothing sent is lost). Messages are
//! zenoh publications with `CongestionControl::Block` and reliable delivery, numbered and kept
//! until acknowledged ([`super::reliable`]), so they arrive whole, once, in order, even when
//! the transport between the two nodes closes and opens again.
//!
//! An end that is dropped sends a `Close` frame behind its messages and stays declared, in the
//! background, until the other end has acknowledged everything (at most [`LINGER`]): a
//! connection that fails then still has what it lost sent again. Then it withdraws its token.
//! zenoh sends declarations ahead of data, so the token's removal may overtake the last
//! messages; the other end therefore takes `Close` as the end of the stream, and a removal
//! without `Close` (a killed end, whose connection's closing comes after everything it
//! delivered) as the end after [`CLOSE_GRACE`]. Then `send` returns `Gone`, and `recv` returns
//! what had arrived, then `Gone`. A `send` that returned has handed its message to zenoh's
//! transmission queue in the sending process, not to the kernel: a SIGKILL of that process can
//! lose what zenoh had not written out yet (a dropped end's `Close` comes behind everything).
//!
//! | key                          | what                                 |
//! |------------------------------|--------------------------------------|
//! | `pipe/<name>/<end>`          | an end's liveliness token            |
//! | `pipe/<name>/<end>/in`       | what is sent to that end             |

use crate::primitive::{AtomicBool, Ordering};
use std::fmt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ipc_core::codec::{self, DecodeError, EncodeError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zenoh::Wait;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;

use super::Node;
use super::keys;
use super::liveliness::{self, Change};
use super::reliable::{self, Incoming, Outgoing};
use crate::bytes::{Bytes, BytesRef};
use crate::master::valid_name;

/// Which end of a cluster pipe a node opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeEnd {
    /// One end (say, the side that starts the exchange).
    First,
    /// The other end.
    Second,
}

impl PipeEnd {
    fn label(self) -> &'static str {
        match self {
            Self::First => "a",
            Self::Second => "b",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
        }
    }
}

/// Opening an end of a cluster pipe failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipeOpenError {
    /// The name is not 1 to 64 letters, digits, `-`, `_` or `.`.
    InvalidName,
    /// zenoh refused to declare the end's endpoints.
    Transport(zenoh::Error),
    /// The other end did not appear within the wait.
    NoPeer {
        /// How long it waited.
        waited: Duration,
    },
}

impl fmt::Display for PipeOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName => {
                f.write_str("a pipe name is 1 to 64 letters, digits, '-', '_' or '.'")
            }
            Self::Transport(_) => f.write_str("zenoh refused to declare the pipe's endpoints"),
            Self::NoPeer { waited } => write!(
                f,
                "the other end of the pipe did not appear within {:.1} s",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for PipeOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(&**e),
            _ => None,
        }
    }
}

/// `send` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipeSendError {
    /// The other end is gone.
    Gone,
    /// The value could not be encoded.
    Encode(EncodeError),
    /// zenoh could not send it (the session is closed).
    Transport(zenoh::Error),
}

impl fmt::Display for PipeSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gone => f.write_str("the other end of the pipe is gone"),
            Self::Encode(_) => f.write_str("cannot encode the value"),
            Self::Transport(_) => f.write_str("zenoh could not send the value"),
        }
    }
}

impl std::error::Error for PipeSendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(e) => Some(e),
            Self::Transport(e) => Some(&**e),
            Self::Gone => None,
        }
    }
}

/// `recv` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipeRecvError {
    /// Nothing arrived before the timeout.
    Timeout,
    /// The other end is gone and everything it sent was received (Python's `EOFError`).
    Gone,
    /// A message could not be decoded as the requested type.
    Decode(DecodeError),
}

impl fmt::Display for PipeRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("nothing arrived before the timeout"),
            Self::Gone => f.write_str("the other end of the pipe is gone"),
            Self::Decode(_) => f.write_str("cannot decode the message"),
        }
    }
}

impl std::error::Error for PipeRecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// How long an end waits for the other's `Close` once its token is gone (see the module docs).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// What one end publishes to the other.
#[derive(Serialize, Deserialize)]
enum Frame {
    Data(Bytes),
    Close,
}

/// What arrives at an end: frames, and the other end's token going away (when zenoh reported
/// it; the report comes [`liveliness::GRACE`] later).
enum Arrival {
    Frame(Vec<u8>),
    PeerGone(Instant),
}

/// How far the other end's leaving has been seen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaving {
    No,
    /// Its token went away at this instant; its `Close` may still be on the way.
    TokenGone(Instant),
    /// Its stream ended.
    Done,
}

/// Whether the other end is there (and was ever seen), with a condvar for `open`.
struct Peer {
    present: Mutex<(bool, bool)>,
    changed: Condvar,
}

/// One end of a cluster pipe: Python's `Connection`, between two nodes.
///
/// ```no_run
/// use std::time::Duration;
/// use ipc_cluster::{Node, PipeEnd, cluster_pipe};
///
/// // On one host:
/// let node = Node::builder().listen("tcp/0.0.0.0:7449").open()?;
/// let a = cluster_pipe(&node, "results", PipeEnd::First, Duration::from_secs(30))?;
/// a.send(&vec![1, 2, 3])?;
/// // On another:
/// let other = Node::builder().connect("tcp/192.0.2.1:7449").open()?;
/// let b = cluster_pipe(&other, "results", PipeEnd::Second, Duration::from_secs(30))?;
/// assert_eq!(b.recv::<Vec<i32>>()?, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClusterConnection {
    end: PipeEnd,
    out: Arc<Outgoing>,
    inbox: Mutex<Receiver<Arrival>>,
    leaving: Mutex<Leaving>,
    /// Set once `recv` has seen the end of the stream (`Leaving::Done`): from then on `send`
    /// and `peer_alive` agree with it, whether or not the token's removal has arrived yet.
    ended: AtomicBool,
    peer: Arc<Peer>,
    /// The token, the inbox and the watcher: kept, when the end is dropped, until the other
    /// end has everything it sent (see `Drop`).
    declared: Option<(LivelinessToken, Subscriber<()>, Subscriber<()>)>,
}

impl fmt::Debug for ClusterConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConnection")
            .field("end", &self.end)
            .finish()
    }
}

fn end_key(name: &str, end: PipeEnd) -> String {
    format!("{}/pipe/{name}/{}", keys::ROOT, end.label())
}

/// Opens the `end` of the pipe `name` on `node`, waiting at most `wait` for the other end.
pub fn cluster_pipe(
    node: &Node,
    name: &str,
    end: PipeEnd,
    wait: Duration,
) -> Result<ClusterConnection, PipeOpenError> {
    ClusterConnection::open(node, name, end, wait)
}

impl ClusterConnection {
    /// Opens the `end` of the pipe `name` on `node`, waiting at most `wait` for the other end
    /// (see [`cluster_pipe`]).
    pub fn open(
        node: &Node,
        name: &str,
        end: PipeEnd,
        wait: Duration,
    ) -> Result<Self, PipeOpenError> {
        if !valid_name(name) {
            return Err(PipeOpenError::InvalidName);
        }
        let session = node.session();
        let out = Outgoing::declare(session, format!("{}/in", end_key(name, end.other())))
            .map_err(PipeOpenError::Transport)?;
        let (tx, rx): (Sender<Arrival>, Receiver<Arrival>) = mpsc::channel();
        let (inbox_tx, inbox_out) = (tx.clone(), Arc::clone(&out));
        let incoming = Mutex::new(Incoming::default());
        let inbox = session
            .declare_subscriber(format!("{}/in", end_key(name, end)))
            .callback(move |sample| {
                let bytes = sample.payload().to_bytes();
                let mut incoming = incoming.lock().unwrap_or_else(|e| e.into_inner());
                let (frame, ack) = incoming.accept(&bytes);
                if let reliable::Frame::Data(frame) = frame {
                    let _ = inbox_tx.send(Arrival::Frame(frame.to_vec()));
                }
                inbox_out.on_peer(&frame);
                inbox_out.reply(&frame, ack);
            })
            .wait()
            .map_err(PipeOpenError::Transport)?;
        let peer = Arc::new(Peer {
            present: Mutex::new((false, false)),
            changed: Condvar::new(),
        });
        let (p, resend) = (Arc::clone(&peer), Arc::clone(&out));
        let watch = liveliness::watch(session, end_key(name, end.other()), move |_, change| {
            if change == Change::Resumed {
                // A new transport to the other end: what it had not acknowledged may be lost.
                resend.resend();
            }
            let mut present = p.present.lock().unwrap_or_else(|e| e.into_inner());
            match change {
                Change::Present | Change::Resumed => *present = (true, true),
                Change::Gone { since } => {
                    present.0 = false;
                    // Behind every message the other end sent (same connection, in order).
                    let _ = tx.send(Arrival::PeerGone(since));
                }
            }
            p.changed.notify_all();
        })
        .map_err(PipeOpenError::Transport)?;
        let token = session
            .liveliness()
            .declare_token(end_key(name, end))
            .wait()
            .map_err(PipeOpenError::Transport)?;
        let started = Instant::now();
        {
            let mut present = peer.present.lock().unwrap_or_else(|e| e.into_inner());
            while !present.1 {
                let Some(left) = wait.checked_sub(started.elapsed()) else {
                    return Err(PipeOpenError::NoPeer {
                        waited: started.elapsed(),
                    });
                };
                present = peer
                    .changed
                    .wait_timeout(present, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        Ok(Self {
            end,
            out,
            inbox: Mutex::new(rx),
            leaving: Mutex::new(Leaving::No),
            ended: AtomicBool::new(false),
            peer,
            declared: Some((token, inbox, watch)),
        })
    }

    /// Which end this is.
    pub fn end(&self) -> PipeEnd {
        self.end
    }

    /// Sends `value` (any serde value, any size) to the other end.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), PipeSendError> {
        if !self.peer_alive() {
            return Err(PipeSendError::Gone);
        }
        let bytes = codec::encode(value).map_err(PipeSendError::Encode)?;
        let frame =
            codec::encode(&FrameOut::Data(BytesRef(&bytes))).map_err(PipeSendError::Encode)?;
        self.out.send(&frame).map_err(PipeSendError::Transport)
    }

    /// Receives the next message, waiting for it.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, PipeRecvError> {
        self.recv_deadline(None)
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T, PipeRecvError> {
        self.recv_deadline(Some(Instant::now() + timeout))
    }

    fn recv_deadline<T: DeserializeOwned>(
        &self,
        deadline: Option<Instant>,
    ) -> Result<T, PipeRecvError> {
        let inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let mut leaving = self.leaving.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.recv_locked(&inbox, &mut leaving, deadline);
        if *leaving == Leaving::Done {
            // ORDERING: a flag read by `send` and `peer_alive` of this process; it guards no
            // other memory, so Relaxed suffices.
            self.ended.store(true, Ordering::Relaxed);
        }
        result
    }

    fn recv_locked<T: DeserializeOwned>(
        &self,
        inbox: &Receiver<Arrival>,
        leaving: &mut Leaving,
        deadline: Option<Instant>,
    ) -> Result<T, PipeRecvError> {
        loop {
            // How long to wait now: until the deadline, and while the other end's token is
            // gone, no longer than the rest of the grace for its `Close`.
            let grace_end = match *leaving {
                Leaving::Done => return Err(PipeRecvError::Gone),
                Leaving::TokenGone(at) => Some(at + CLOSE_GRACE),
                Leaving::No => None,
            };
            let until = match (deadline, grace_end) {
                (Some(d), Some(g)) => Some(d.min(g)),
                (d, g) => d.or(g),
            };
            let next = match until {
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(u) => inbox.recv_timeout(u.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(Arrival::Frame(b)) => match codec::decode::<Frame>(&b) {
                    Ok(Frame::Data(v)) => {
                        return codec::decode(&v.0).map_err(PipeRecvError::Decode);
                    }
                    Ok(Frame::Close) => *leaving = Leaving::Done,
                    Err(e) => return Err(PipeRecvError::Decode(e)),
                },
                Ok(Arrival::PeerGone(since)) => {
                    if *leaving == Leaving::No {
                        *leaving = Leaving::TokenGone(since);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => *leaving = Leaving::Done,
                Err(RecvTimeoutError::Timeout) => {
                    if grace_end.is_some_and(|g| Instant::now() >= g) {
                        *leaving = Leaving::Done;
                    } else {
                        return Err(PipeRecvError::Timeout);
                    }
                }
            }
        }
    }

    /// Whether the other end is there now: false once its token is gone, and once `recv` has
    /// returned `Gone`.
    pub fn peer_alive(&self) -> bool {
        // ORDERING: see `recv_deadline`.
        !self.ended.load(Ordering::Relaxed)
            && self
                .peer
                .present
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
    }
}

/// How long a dropped end stays declared at most, waiting for the other end to acknowledge
/// what it sent (a dead other end never does).
const LINGER: Duration = Duration::from_secs(2);

impl Drop for ClusterConnection {
    fn drop(&mut self) {
        // Behind every message sent, before the token goes.
        if let Ok(close) = codec::encode(&FrameOut::Close) {
            let _ = self.out.send(&close);
        }
        // The end stays declared (its token, its inbox for the acknowledgements, its watcher
        // for a reconnection) until the other end has acknowledged everything, so that what a
        // failing connection lost is still sent again; then the token goes.
        if let Some(declared) = self.declared.take() {
            self.out.linger(Box::new(declared), LINGER);
        }
    }
}

/// A [`Frame`] as encoded, borrowing the message. Same layout as [`Frame`].
#[derive(Serialize)]
enum FrameOut<'a> {
    Data(BytesRef<'a>),
    Close,
}
