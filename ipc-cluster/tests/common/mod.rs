//! What only the cluster's multi-process tests need: ports, node specs and the host role. A host
//! (or a master, or a queue owner) is a child role (`ipc_testkit::Role`) told what to do through
//! a spec in its environment, and tagged so that the test can tell whether any process of it
//! (the hosts' pool workers included) outlived it; everything runs on 127.0.0.1, every wait is
//! bounded.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use ipc_cluster::{ClusterConnection, Node, PipeEnd, PipeOpenError, ServeOptions, cluster_pipe};
use ipc_testkit::Role;

/// What a child is asked to do: `key=value;key=value`.
pub const SPEC: &str = "IPC_CLUSTER_TEST_SPEC";

/// A port on 127.0.0.1 that nothing listens on now, below the ephemeral range (so no outgoing
/// connection takes it meanwhile) and random (so tests running at once pick different ones).
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + (ipc_core::random_u128() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The master's node, listening on a fresh port; returns it and the endpoint to connect to.
pub fn master_node() -> (Node, String) {
    let port = free_port();
    let node = Node::builder()
        .listen(format!("tcp/127.0.0.1:{port}"))
        .open()
        .expect("master node");
    (node, format!("tcp/127.0.0.1:{port}"))
}

/// Parses a spec.
pub fn spec_get(spec: &str, key: &str) -> Option<String> {
    spec.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// The spec this child runs with, if it runs as a child.
pub fn child_spec() -> Option<String> {
    std::env::var(SPEC).ok()
}

/// Starts the ignored test `role` of the executable `exe` with `spec`, tagged with `tag`; its
/// stderr goes to the test's log.
pub fn spawn_role_of(exe: &Path, role: &str, spec: &str, tag: &str) -> Role {
    ipc_testkit::role(role)
        .exe(exe)
        .env(SPEC, spec)
        .tag(tag)
        .log_stderr()
        .spawn()
}

/// Starts the ignored test `role` of this binary.
pub fn spawn_role(role: &str, spec: &str, tag: &str) -> Role {
    spawn_role_of(&std::env::current_exe().unwrap(), role, spec, tag)
}

/// A worker host: `host_role` with this endpoint, job, name and processes.
pub fn spawn_host(endpoint: &str, job: &str, name: &str, processes: usize, tag: &str) -> Role {
    spawn_role(
        "host_role",
        &format!("connect={endpoint};job={job};name={name};processes={processes}"),
        tag,
    )
}

/// The body of every binary's `host_role`: serve, print how it ended, exit.
pub fn host_role() {
    let Some(spec) = child_spec() else { return };
    let node = Node::builder()
        .connect(spec_get(&spec, "connect").unwrap())
        .open()
        .unwrap();
    let processes: usize = spec_get(&spec, "processes").unwrap().parse().unwrap();
    let opts = ServeOptions::new()
        .job(spec_get(&spec, "job").unwrap())
        .name(spec_get(&spec, "name").unwrap())
        .wait_master(Duration::from_secs(20));
    let code = match opts.serve(&node, processes) {
        Ok(end) => {
            println!("SERVE-END {end:?}");
            0
        }
        Err(e) => {
            println!("SERVE-ERROR {e}");
            3
        }
    };
    drop(node);
    std::process::exit(code);
}

/// Opens a pipe named `name` between `a` (its first end) and `b` (its second), both ends
/// waiting at most `wait`.
pub fn pipe_between(
    a: &Node,
    b: &Node,
    name: &str,
    wait: Duration,
) -> [Result<ClusterConnection, PipeOpenError>; 2] {
    std::thread::scope(|s| {
        let second = s.spawn(|| cluster_pipe(b, name, PipeEnd::Second, wait));
        let first = cluster_pipe(a, name, PipeEnd::First, wait);
        [first, second.join().unwrap()]
    })
}
