//! The zenoh backend: nodes, the master's and the hosts' transport, cluster queues and pipes.
//!
//! | file         | holds                                                          |
//! |--------------|----------------------------------------------------------------|
//! | `node.rs`    | `Node`: the zenoh peer session and its configuration            |
//! | `keys.rs`    | the key expressions                                             |
//! | `liveliness.rs` | liveliness watchers whose removals hold (debounced)          |
//! | `reliable.rs` | numbered frames, sent again after a reconnection               |
//! | `master.rs`  | the master's queryable, subscribers, token and publishers       |
//! | `host.rs`    | `serve`: find the master, join, run chunks                      |
//! | `queue.rs`   | `ClusterQueue`: an `ipc_queue::Queue` reached through queryables |
//! | `pipe.rs`    | `cluster_pipe`: a point-to-point connection between two nodes    |

mod host;
mod keys;
mod liveliness;
mod master;
mod node;
mod pipe;
mod queue;
mod reliable;

pub use host::{DEFAULT_WAIT_MASTER, ServeError, ServeOptions, serve};
#[cfg(feature = "tls")]
pub use node::TlsFiles;
pub use node::{DEFAULT_LEASE, Node, NodeBuilder, NodeError};
pub use pipe::{
    ClusterConnection, PipeEnd, PipeOpenError, PipeRecvError, PipeSendError, cluster_pipe,
};
pub use queue::{ClusterQueue, QueueError, QueueGetError, QueuePutError};

use crate::error::BuildError;
use crate::master::{ClusterPool, ClusterPoolBuilder};

impl ClusterPoolBuilder {
    /// Declares the pool on `node` (its join queryable, results subscriber and liveliness
    /// token) and starts it; with `min_hosts`, waits for them.
    pub fn build(self, node: &Node) -> Result<ClusterPool, BuildError> {
        let job = self.job_name()?.to_owned();
        self.build_with(|events| master::start(node, &job, events))
    }
}
