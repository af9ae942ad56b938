//! `ipc_core::Process` under every start method, joined under a watchdog.

use std::time::Duration;

use ipc_core::{JoinError, Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every start method.
pub const START_METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

/// A process running `f(arg)` with `method` (forking from the multi-threaded test harness is
/// accepted, with its risk).
pub fn process<A, R>(method: StartMethod, f: fn(A) -> R, arg: A) -> Process<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned,
{
    Process::builder()
        .start_method(method)
        .accept_fork_with_threads(true)
        .target(f, arg)
}

/// Joins `p` under a watchdog of `limit`: a child still running then is killed and the test
/// fails.
pub fn join_within<R: Serialize + DeserializeOwned>(
    p: &Process<R>,
    limit: Duration,
) -> Result<R, JoinError> {
    match p.join_timeout(limit) {
        Err(JoinError::Timeout) => {
            let _ = p.kill();
            let _ = p.join();
            panic!("watchdog: {} did not end in {limit:?}", p.name());
        }
        other => other,
    }
}
