//! `cluster.*`: ipc-cluster over loopback (built with `--features cluster`; without it these
//! scenarios are skipped with that reason), beside `ours.pool_*`, the same task shapes on one
//! machine. Every repeat starts its own master node (on a fresh port of 127.0.0.1) and its own
//! worker hosts: real processes (started by ipc-core's fork server, so `ipc-bench` itself never
//! forks once zenoh's threads run), each serving with a pool of its own worker processes; then
//! a warm-up and the hosts' handshake, then the timed part.
//!
//! - `cluster.apply_rtt` (µs): `apply` one call after another, one host with one process: the
//!   master → host → worker → host → master round trip.
//! - `cluster.map_chunk1` (tasks/s): two hosts of one process each (two workers, as
//!   `ours.pool_map_chunk1`) map a trivial function over 20,000 `u64` (2,000 with `--quick`),
//!   chunksize 1: one task per message, after one untimed map of the same shape.
//! - `cluster.map` (tasks/s): the same over 1,000,000 items (100,000) with Python's default
//!   chunksize, as `ours.pool_map`.
//! - `cluster.queue_u64` (msgs/s): a `ClusterQueue<u64>` owned by another process; this one
//!   puts 1, 2, 3, … remotely for the time budget (each put a query answered by the owner),
//!   the owner takes each one locally and checks the sequence.
//! - `cluster.death_detect` (ms): a joined host is SIGKILLed; the time until the master has
//!   marked it dead (its liveliness token withdrawn: TCP close, zenoh's transport closed, the
//!   token's deletion delivered and standing for the watcher's 1 s grace, the master's event
//!   thread). Polled every 20 µs.

use crate::scenario::{Scenario, Unit};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("cluster.apply_rtt", Unit::Us, imp::apply_rtt),
        Scenario::new("cluster.map_chunk1", Unit::TasksPerSec, imp::map_chunk1),
        Scenario::new("cluster.map", Unit::TasksPerSec, imp::map),
        Scenario::new("cluster.queue_u64", Unit::MsgsPerSec, imp::queue_u64),
        Scenario::new("cluster.death_detect", Unit::Ms, imp::death_detect),
    ]
}

#[cfg(not(feature = "cluster"))]
mod imp {
    use crate::scenario::{Config, Outcome, Repeat};

    fn off() -> Repeat {
        Ok(Outcome::skipped("built without --features cluster"))
    }

    pub(super) fn apply_rtt(_: &Config) -> Repeat {
        off()
    }
    pub(super) fn map_chunk1(_: &Config) -> Repeat {
        off()
    }
    pub(super) fn map(_: &Config) -> Repeat {
        off()
    }
    pub(super) fn queue_u64(_: &Config) -> Repeat {
        off()
    }
    pub(super) fn death_detect(_: &Config) -> Repeat {
        off()
    }
}

#[cfg(feature = "cluster")]
mod imp {
    use std::time::{Duration, Instant};

    use anyhow::{Context, anyhow, ensure};
    use ipc_cluster::{ClusterPool, ClusterQueue, Node, ServeOptions};
    use ipc_core::Process;
    use serde::{Deserialize, Serialize};

    use crate::scenario::{Config, Quantity, Repeat};

    fn square(x: u64) -> u64 {
        x.wrapping_mul(x)
    }

    /// What a host process is started with.
    #[derive(Serialize, Deserialize)]
    struct HostSpec {
        endpoint: String,
        job: String,
        processes: usize,
    }

    /// A worker host: serve until the master shuts the pool down.
    fn host_main(spec: HostSpec) {
        let Ok(node) = Node::builder().connect(spec.endpoint).open() else {
            return;
        };
        let _ = ServeOptions::new()
            .job(spec.job)
            .wait_master(Duration::from_secs(30))
            .serve(&node, spec.processes);
    }

    /// A master node on a fresh loopback port, and the endpoint hosts connect to.
    fn master() -> anyhow::Result<(Node, String)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let endpoint = format!("tcp/127.0.0.1:{port}");
        let node = Node::builder()
            .listen(&endpoint)
            .open()
            .map_err(|e| anyhow!("master node: {e}"))?;
        Ok((node, endpoint))
    }

    fn job() -> String {
        format!("bench-{:016x}", ipc_core::random_u128() as u64)
    }

    /// A master with `hosts` joined hosts of `processes` each.
    struct Cluster {
        pool: ClusterPool,
        hosts: Vec<Process<()>>,
        _node: Node,
    }

    impl Cluster {
        fn start(hosts: usize, processes: usize) -> anyhow::Result<Self> {
            let (node, endpoint) = master()?;
            let job = job();
            let pool = ClusterPool::builder()
                .job(&job)
                .build(&node)
                .context("cluster pool")?;
            let mut procs = Vec::new();
            for _ in 0..hosts {
                let p = Process::new(
                    host_main,
                    HostSpec {
                        endpoint: endpoint.clone(),
                        job: job.clone(),
                        processes,
                    },
                );
                p.start().context("start a host")?;
                procs.push(p);
            }
            pool.wait_for_hosts(hosts, Duration::from_secs(60))
                .context("hosts joining")?;
            Ok(Self {
                pool,
                hosts: procs,
                _node: node,
            })
        }

        fn finish(mut self) -> anyhow::Result<()> {
            self.pool.close();
            self.pool.join();
            for h in &self.hosts {
                h.join_timeout(Duration::from_secs(30))
                    .map_err(|e| anyhow!("host exit: {e}"))?;
            }
            Ok(())
        }
    }

    pub(super) fn apply_rtt(cfg: &Config) -> Repeat {
        let c = Cluster::start(1, 1)?;
        for i in 0..50 {
            c.pool.apply(square, i).context("warm-up")?;
        }
        let n = cfg.pick(5_000u64, 500);
        let t = Instant::now();
        for i in 0..n {
            ensure!(
                c.pool.apply(square, i).context("apply")? == square(i),
                "wrong result"
            );
        }
        let dt = t.elapsed();
        c.finish()?;
        Ok(Quantity::Seconds(dt.as_secs_f64() / n as f64).into())
    }

    fn timed_map(n: u64, chunksize: Option<usize>) -> Repeat {
        let c = Cluster::start(2, 1)?;
        let run = || match chunksize {
            Some(k) => c.pool.map_chunksize(square, 0..n, k),
            None => c.pool.map(square, 0..n),
        };
        run().context("warm-up")?;
        let t = Instant::now();
        let out = run().context("map")?;
        let dt = t.elapsed().as_secs_f64();
        ensure!(out.len() as u64 == n, "map returned {} results", out.len());
        let sum = out.iter().copied().fold(0u64, u64::wrapping_add);
        let want = (0..n).map(square).fold(0u64, u64::wrapping_add);
        ensure!(sum == want, "map returned wrong results");
        c.finish()?;
        Ok(Quantity::PerSecond(n as f64 / dt).into())
    }

    pub(super) fn map_chunk1(cfg: &Config) -> Repeat {
        timed_map(cfg.pick(20_000, 2_000), Some(1))
    }

    pub(super) fn map(cfg: &Config) -> Repeat {
        timed_map(cfg.pick(1_000_000, 100_000), None)
    }

    #[derive(Serialize, Deserialize)]
    struct OwnerSpec {
        endpoint: String,
        name: String,
    }

    /// The queue's owner: takes 1, 2, 3, … until 0; returns how many, or 0 if out of order.
    fn owner_main(spec: OwnerSpec) -> u64 {
        let Ok(node) = Node::builder().listen(spec.endpoint).open() else {
            return 0;
        };
        let Ok(q) = ClusterQueue::<u64>::create(&node, &spec.name, 4096) else {
            return 0;
        };
        let mut expect = 1u64;
        loop {
            match q.get_timeout(Duration::from_secs(60)) {
                Ok(0) => return expect - 1,
                Ok(v) if v == expect => expect += 1,
                _ => return 0,
            }
        }
    }

    pub(super) fn queue_u64(cfg: &Config) -> Repeat {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let endpoint = format!("tcp/127.0.0.1:{port}");
        let name = job();
        let owner = Process::new(
            owner_main,
            OwnerSpec {
                endpoint: endpoint.clone(),
                name: name.clone(),
            },
        );
        owner.start().context("start the owner")?;
        let node = Node::builder()
            .connect(&endpoint)
            .open()
            .map_err(|e| anyhow!("node: {e}"))?;
        let q = ClusterQueue::<u64>::open(&node, &name, Duration::from_secs(60))
            .map_err(|e| anyhow!("open the queue: {e}"))?;
        let mut next = 1u64;
        for _ in 0..100 {
            q.put(next).map_err(|e| anyhow!("warm-up: {e}"))?;
            next += 1;
        }
        let budget = cfg.budget();
        let (t, first) = (Instant::now(), next);
        while t.elapsed() < budget {
            q.put(next).map_err(|e| anyhow!("put: {e}"))?;
            next += 1;
        }
        let dt = t.elapsed().as_secs_f64();
        q.put(0).map_err(|e| anyhow!("end: {e}"))?;
        let got = owner
            .join_timeout(Duration::from_secs(60))
            .map_err(|e| anyhow!("owner: {e}"))?;
        ensure!(
            got == next - 1,
            "the owner got {got} in order of {}",
            next - 1
        );
        Ok(Quantity::PerSecond((next - first) as f64 / dt).into())
    }

    pub(super) fn death_detect(_: &Config) -> Repeat {
        let c = Cluster::start(1, 1)?;
        c.pool.apply(square, 3).context("warm-up")?;
        let host = &c.hosts[0];
        let t = Instant::now();
        host.kill().map_err(|e| anyhow!("kill: {e}"))?;
        while c.pool.hosts().iter().any(|h| h.alive) {
            ensure!(t.elapsed() < Duration::from_secs(60), "death not detected");
            std::thread::sleep(Duration::from_micros(20));
        }
        let dt = t.elapsed();
        let _ = host.join_timeout(Duration::from_secs(10));
        Ok(Quantity::Seconds(dt.as_secs_f64()).into())
    }
}
