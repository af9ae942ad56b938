//! What travels between a master and its hosts, whatever the transport: the handshake, chunks
//! of work, their results. Every message is a typed enum encoded with [`ipc_core::codec`];
//! payloads are byte strings ([`Bytes`]) so large ones are copied, not visited. Every decoder
//! here takes bytes from the network: a message that does not decode is dropped, never a
//! panic.
//!
//! | direction     | message                                  | when                                  |
//! |---------------|------------------------------------------|---------------------------------------|
//! | host → master | [`JoinRequest`]                          | once, as a query, after the host's liveliness token is declared |
//! | master → host | [`JoinReply`]                            | its reply: the host's key, or why not |
//! | host → master | [`FromHost::Ready`]                      | its pool is built and it listens for chunks |
//! | master → host | [`ToHost::Chunks`]                       | chunks within the host's credit       |
//! | host → master | [`FromHost::Results`]                    | chunks done (a batch of what is ready) |
//! | master → host | [`ToHost::Shutdown`]                     | the pool was joined or terminated     |

use std::fmt;

use ipc_core::process::{FnKey, FnRef};
use serde::{Deserialize, Serialize};

use crate::BuildId;
use crate::bytes::{Bytes, BytesRef};

/// The protocol's version: a host of another version is refused at the handshake.
pub(crate) const PROTOCOL: u32 = 1;

/// A host asks to join a master.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinRequest {
    pub(crate) protocol: u32,
    pub(crate) build: BuildId,
    /// How the host calls itself (`hostname:pid` unless set).
    pub(crate) name: String,
    pub(crate) pid: u32,
    /// Worker processes in its pool.
    pub(crate) processes: u32,
}

/// The master's answer to a [`JoinRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum JoinReply {
    /// Welcome: the key this host's function references are tagged under, and the cluster's
    /// worker initializer (tagged under that key), if any.
    Accepted {
        key: FnKey,
        init: Option<(FnRef, Bytes)>,
    },
    /// Not welcome, and why.
    Refused(Refusal),
}

/// Why a master refused a host at the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The host runs another build of the program (its functions would not be where the
    /// master's references point).
    Build {
        /// The master's build id.
        master: BuildId,
        /// The host's.
        host: BuildId,
    },
    /// The host speaks another version of the protocol.
    Protocol {
        /// The master's version.
        master: u32,
        /// The host's.
        host: u32,
    },
    /// The master's pool is closed: it takes no new hosts.
    Closed,
    /// The master did not see the host's liveliness token (it vanished, or was never declared).
    NotAlive,
    /// The request could not be decoded.
    BadRequest,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build { master, host } => write!(
                f,
                "the host runs another build of the program (build id {host}, the master's is \
                 {master})"
            ),
            Self::Protocol { master, host } => write!(
                f,
                "the host speaks protocol version {host}, the master {master}"
            ),
            Self::Closed => f.write_str("the master's pool is closed"),
            Self::NotAlive => f.write_str("the master did not see the host's liveliness token"),
            Self::BadRequest => f.write_str("the master could not decode the join request"),
        }
    }
}

/// A chunk as the master encodes it (borrowing the input it keeps for re-dispatch).
#[derive(Serialize)]
pub(crate) struct ChunkOut<'a> {
    pub(crate) id: u64,
    pub(crate) lane: u32,
    pub(crate) func: FnRef,
    pub(crate) input: BytesRef<'a>,
}

/// A chunk as a host decodes it.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkIn {
    pub(crate) id: u64,
    /// Which of the host's worker processes runs it (after the ones sent to it before).
    pub(crate) lane: u32,
    pub(crate) func: FnRef,
    pub(crate) input: Bytes,
}

/// Master to host, as encoded. Same layout as [`ToHost`].
#[derive(Serialize)]
pub(crate) enum ToHostOut<'a> {
    Chunks(Vec<ChunkOut<'a>>),
    Shutdown,
}

/// Master to host, as decoded.
#[derive(Debug, Deserialize)]
pub(crate) enum ToHost {
    /// Run these (in order of arrival).
    Chunks(Vec<ChunkIn>),
    /// Stop: terminate the pool and leave.
    Shutdown,
}

/// Host to master.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromHost {
    /// The host built its pool and listens for chunks: it may be sent some.
    Ready,
    /// Chunks done, successfully or not.
    Results(Vec<ChunkResult>),
}

/// Host to master, as encoded (borrowing the outputs). Same layout as [`FromHost`].
#[derive(Serialize)]
pub(crate) enum FromHostOut<'a> {
    Ready,
    Results(Vec<ChunkResultOut<'a>>),
}

/// The outcome of one chunk, as a host encodes it.
#[derive(Serialize)]
pub(crate) struct ChunkResultOut<'a> {
    pub(crate) id: u64,
    pub(crate) outcome: Result<BytesRef<'a>, &'a RemoteFailure>,
}

/// The outcome of one chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkResult {
    pub(crate) id: u64,
    pub(crate) outcome: Result<Bytes, RemoteFailure>,
}

/// Why a chunk produced no output, as its host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RemoteFailure {
    /// The function panicked in worker `pid`.
    Panicked {
        pid: u32,
        message: String,
        location: Option<String>,
    },
    /// Worker process `pid` died running it.
    WorkerDied {
        pid: u32,
        exit_code: Option<i32>,
        cause: String,
    },
    /// Input or output could not be decoded or encoded.
    Codec(String),
    /// The function reference did not check out under the host's key.
    BadFunction,
    /// The host's pool was terminated before the chunk finished.
    Terminated,
    /// The host's pool gave up (its workers kept dying, or none could be restarted).
    PoolBroken(String),
}

impl fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked { message, .. } => write!(f, "panicked: {message}"),
            Self::WorkerDied { cause, .. } => write!(f, "worker died: {cause}"),
            Self::Codec(m) => write!(f, "data could not be transferred: {m}"),
            Self::BadFunction => {
                f.write_str("refused a function reference that does not check out")
            }
            Self::Terminated => f.write_str("terminated"),
            Self::PoolBroken(reason) => write!(f, "the pool gave up: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::codec;

    #[test]
    fn the_encoding_side_decodes_as_the_decoding_side() {
        let key = FnKey::random();
        fn id(x: u8) -> u8 {
            x
        }
        let func = crate::task::TaskFn::map(id).tag(&key);
        let input = vec![7u8; 1000];
        let out = ToHostOut::Chunks(vec![ChunkOut {
            id: 42,
            lane: 3,
            func,
            input: BytesRef(&input),
        }]);
        let bytes = codec::encode(&out).unwrap();
        match codec::decode::<ToHost>(&bytes).unwrap() {
            ToHost::Chunks(c) => {
                assert_eq!(c.len(), 1);
                assert_eq!((c[0].id, c[0].lane), (42, 3));
                assert_eq!(c[0].func, func);
                assert_eq!(c[0].input.0, input);
            }
            other => panic!("{other:?}"),
        }
        let bytes = codec::encode(&ToHostOut::Shutdown).unwrap();
        assert!(matches!(
            codec::decode::<ToHost>(&bytes),
            Ok(ToHost::Shutdown)
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = codec::decode::<ToHost>(&bytes);
            let _ = codec::decode::<FromHost>(&bytes);
            let _ = codec::decode::<JoinRequest>(&bytes);
            let _ = codec::decode::<JoinReply>(&bytes);
        }
    }
}
