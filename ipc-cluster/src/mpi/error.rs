//! Why [`MpiPool::from_world`](super::MpiPool::from_world) failed.

use std::fmt;

use crate::error::BuildError;
use crate::wire::Refusal;

/// Why an MPI pool could not be built (on rank 0) or served (on the other ranks).
#[derive(Debug)]
#[non_exhaustive]
pub enum MpiError {
    /// MPI was initialised (or finalised) before in this process: it initialises once.
    AlreadyInitialized,
    /// The MPI library does not give `MPI_THREAD_FUNNELED` (one thread, not the main one, makes
    /// every MPI call); it gave this level.
    ThreadLevel {
        /// The level the library provided.
        provided: String,
    },
    /// The job has fewer than two ranks: rank 0 is the master, the others serve.
    TooFewRanks {
        /// `MPI_COMM_WORLD`'s size.
        size: usize,
    },
    /// The fork server (started before `MPI_Init`, so no process forks after it) did not start.
    ForkServer(ipc_core::StartError),
    /// The MPI thread could not be started, or ended by a panic.
    Thread(std::io::Error),
    /// This program's build id could not be computed.
    BuildId(std::io::Error),
    /// Rank 0: the pool could not be built.
    Build(BuildError),
    /// A host rank: the master refused it.
    Refused(Refusal),
    /// A host rank: the master's reply could not be decoded.
    BadReply,
    /// A host rank: its worker processes could not be started.
    Pool(ipc_pool::BuildError),
}

impl fmt::Display for MpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInitialized => {
                f.write_str("MPI was already initialised in this process (it initialises once)")
            }
            Self::ThreadLevel { provided } => write!(
                f,
                "the MPI library provides thread level {provided}, below MPI_THREAD_FUNNELED"
            ),
            Self::TooFewRanks { size } => write!(
                f,
                "an MPI pool needs at least 2 ranks (rank 0 is the master), this job has {size}"
            ),
            Self::ForkServer(_) => f.write_str("cannot start the fork server before MPI_Init"),
            Self::Thread(_) => f.write_str("the MPI thread could not start or panicked"),
            Self::BuildId(_) => f.write_str("cannot compute this program's build id"),
            Self::Build(_) => f.write_str("cannot build the MPI pool"),
            Self::Refused(r) => write!(f, "the master refused this rank: {r}"),
            Self::BadReply => f.write_str("the master's reply could not be decoded"),
            Self::Pool(_) => f.write_str("cannot start this rank's worker processes"),
        }
    }
}

impl std::error::Error for MpiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ForkServer(e) => Some(e),
            Self::Thread(e) | Self::BuildId(e) => Some(e),
            Self::Build(e) => Some(e),
            Self::Pool(e) => Some(e),
            _ => None,
        }
    }
}
