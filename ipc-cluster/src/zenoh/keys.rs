//! The key expressions of the zenoh backend, all under `ipc-cluster/<job>/`.
//!
//! | key                                         | what                                          |
//! |---------------------------------------------|-----------------------------------------------|
//! | `master/<pool>`                             | the master's liveliness token                 |
//! | `master/<pool>/join/<host>`                 | the master's queryable: the handshake         |
//! | `master/<pool>/host/<host>`                 | a host's liveliness token                     |
//! | `master/<pool>/tasks/<host>`                | master → host: chunks, shutdown               |
//! | `master/<pool>/results/<host>`              | host → master: results                        |
//! | `queue/<name>/owner`                        | a cluster queue owner's liveliness token      |
//! | `queue/<name>/op`                           | the owner's queryable: put and get            |
//! | `pipe/<name>/<a or b>`                      | a pipe end's liveliness token                 |
//! | `pipe/<name>/<a or b>/in`                   | what is sent to that end                      |
//!
//! `<pool>` is the master node's zenoh id and a random suffix per `ClusterPool`, so a second pool
//! of the same job on the same node is a different master; `<host>` is the host's zenoh id and
//! a random suffix. The zenoh id lets a watcher look whether the token's owner is reachable.

pub(crate) const ROOT: &str = "ipc-cluster";

pub(crate) fn masters(job: &str) -> String {
    format!("{ROOT}/{job}/master/*")
}

pub(crate) fn master(job: &str, pool: &str) -> String {
    format!("{ROOT}/{job}/master/{pool}")
}

pub(crate) fn join(job: &str, pool: &str, host: &str) -> String {
    format!("{ROOT}/{job}/master/{pool}/join/{host}")
}

pub(crate) fn host(job: &str, pool: &str, host: &str) -> String {
    format!("{ROOT}/{job}/master/{pool}/host/{host}")
}

pub(crate) fn tasks(job: &str, pool: &str, host: &str) -> String {
    format!("{ROOT}/{job}/master/{pool}/tasks/{host}")
}

pub(crate) fn results(job: &str, pool: &str, host: &str) -> String {
    format!("{ROOT}/{job}/master/{pool}/results/{host}")
}

pub(crate) fn queue_owner(name: &str) -> String {
    format!("{ROOT}/queue/{name}/owner")
}

pub(crate) fn queue_op(name: &str) -> String {
    format!("{ROOT}/queue/{name}/op")
}

/// The last chunk of a key expression (a host's or a pool's id).
pub(crate) fn last(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
