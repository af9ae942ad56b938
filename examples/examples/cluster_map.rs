//! A pool across hosts, and a host killed mid-map (run with `--features cluster`).
//!
//! The same program is the master and the worker hosts, as with `python -m mpi4py.futures`:
//!
//! ```text
//! cluster_map --listen tcp/0.0.0.0:7447                                   # the master
//! cluster_map --cluster-worker --connect tcp/MASTER:7447 --processes 4    # on each host
//! ```
//!
//! Run without arguments, it starts its two worker hosts itself, as local processes on
//! 127.0.0.1 (so it runs on one machine), maps a function over them, SIGKILLs one host
//! mid-map, and shows the map finishing with one failed chunk and the per-host task counts.

use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use ipc_cluster::{ClusterPool, Node, TaskError};

const JOB: &str = "cluster-map";
const N: u64 = 200;

fn slow_cube(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(10));
    x * x * x
}

/// Starts this program as a worker host.
fn start_host(endpoint: &str, name: &str) -> anyhow::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([
            "--cluster-worker",
            "--connect",
            endpoint,
            "--processes",
            "1",
        ])
        .args(["--job", JOB, "--name", name])
        .spawn()
        .context("start a worker host")
}

fn main() -> anyhow::Result<()> {
    ipc_cluster::init(); // a `--cluster-worker` run serves its master here and exits

    let endpoint = match std::env::args().skip_while(|a| a != "--listen").nth(1) {
        Some(e) => e,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            format!("tcp/127.0.0.1:{port}")
        }
    };
    let node = Node::builder().listen(&endpoint).open()?;
    let mut a = start_host(&endpoint, "host-a")?;
    let mut b = start_host(&endpoint, "host-b")?;
    let mut pool = ClusterPool::builder().job(JOB).min_hosts(2).build(&node)?;
    println!("master on {endpoint}: {} hosts joined", pool.hosts().len());

    let mut succeeded = 0;
    let mut failed = Vec::new();
    let mut killed = false;
    for (i, r) in pool.imap(slow_cube, 0..N).enumerate() {
        match r {
            Ok(v) => {
                ensure!(v == (i as u64).pow(3), "wrong result for {i}");
                succeeded += 1;
            }
            Err(e) => failed.push(e),
        }
        let a_done = pool
            .hosts()
            .iter()
            .any(|h| h.name == "host-a" && h.items_done >= 20);
        if !killed && a_done {
            println!("SIGKILL host-a (pid {}) after {} results", a.id(), i + 1);
            a.kill()?;
            a.wait()?;
            killed = true;
        }
    }
    println!("succeeded: {succeeded} of {N}");
    for e in &failed {
        println!("failed: item {}: {}", e.index, e.error);
    }
    println!("per host:");
    for h in pool.hosts() {
        println!(
            "  {:<7} {:<5} {:>4} tasks done, {} chunk(s) failed",
            h.name,
            if h.alive { "alive" } else { "dead" },
            h.items_done,
            h.chunks_failed
        );
    }
    pool.close();
    pool.join();
    let status = b.wait()?;
    println!("host-b exited: {status}");
    ensure!(killed, "host-a was never killed");
    ensure!(status.success(), "host-b failed: {status}");
    match failed.as_slice() {
        [e] if matches!(&e.error, TaskError::WorkerDied { host, .. } if host == "host-a") => {}
        other => bail!("expected one chunk lost with host-a, got {other:?}"),
    }
    println!("the map finished with one failed chunk");
    Ok(())
}
