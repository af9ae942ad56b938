//! `Pool.map` over the ranks of an MPI job, as `mpi4py.futures` runs `MPIPoolExecutor.map`:
//!
//! ```sh
//! cargo build --features mpi -p examples --example mpi_map
//! mpirun -n 3 target/debug/examples/mpi_map              # add --oversubscribe on small machines
//! mpirun -n 3 target/debug/examples/mpi_map --processes 2  # two worker processes per rank
//!                                                          # (default: tasks run in the ranks)
//! mpirun -n 3 target/debug/examples/mpi_map --executor     # MpiExecutor: submit, map, shutdown
//! mpirun -n 3 target/debug/examples/mpi_map --kill-a-rank  # Open MPI aborts the whole job
//! mpirun -n 3 target/debug/examples/mpi_map --idle 2       # CPU the ranks use while idle
//! ```
//!
//! Rank 0 is the master and prints; every other rank serves inside `MpiPool::from_world` and
//! returns `None` once the master joins the pool. With `--kill-a-rank` the master SIGKILLs one
//! serving rank and maps again: Open MPI ends the whole job (mpirun exits non-zero, naming the
//! rank), since MPI has no way to go on without a rank. The zenoh backend is the one that
//! survives a host's death.

use ipc_cluster::{MpiExecutor, MpiPool};

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn whoami(_: u32) -> u32 {
    // The serving rank itself, or with --processes N one of its worker processes.
    std::process::id()
}

fn reversed(mut v: Vec<u8>) -> Vec<u8> {
    v.reverse();
    v
}

fn boom(x: u64) -> u64 {
    panic!("no square for {x}")
}

fn main() -> anyhow::Result<()> {
    ipc_cluster::init();
    let args: Vec<String> = std::env::args().collect();
    let processes = args
        .iter()
        .position(|a| a == "--processes")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(0);
    let kill = args.iter().any(|a| a == "--kill-a-rank");
    if args.iter().any(|a| a == "--executor") {
        // mpi4py.futures's MPIPoolExecutor: submit returns a future.
        let Some(ex) = MpiExecutor::from_world()? else {
            return Ok(());
        };
        let fut = ex.submit(square, 7)?;
        println!("submit awaited: {}", futures::executor::block_on(fut)?);
        let cubes: Result<Vec<u64>, _> = ex.map(square, 1..=3).collect();
        println!("executor map: {:?}", cubes?);
        ex.shutdown(true, false);
        println!("executor shut down");
        return Ok(());
    }
    let Some(pool) = MpiPool::builder().processes(processes).from_world()? else {
        // A serving rank: the master joined the pool; MPI is finalised.
        return Ok(());
    };
    println!(
        "{} ranks, {} worker processes",
        pool.ranks(),
        pool.processes()
    );
    let squares = pool.map(square, 0..1000u64)?;
    println!(
        "map: {} results, sum {}",
        squares.len(),
        squares.iter().sum::<u64>()
    );
    let sums = pool.starmap(add, (0..10u64).map(|i| (i, 10 * i)))?;
    println!("starmap: {sums:?}");
    println!("apply: {}", pool.apply(square, 12)?);
    let fut = pool.apply_async(square, 13)?;
    println!("apply_async awaited: {}", futures::executor::block_on(fut)?);
    let imap: Result<Vec<u64>, _> = pool.imap(square, 0..5u64).collect();
    println!("imap: {:?}", imap?);
    // Messages far above MPI's eager limit, both ways at once (one per task): sends must not
    // wait for the peer's receive.
    let big: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 256 << 10]).collect();
    let back = pool.map_chunksize(reversed, big.clone(), 1)?;
    if back == big.into_iter().map(reversed).collect::<Vec<_>>() {
        println!("large: 16 items of 256 KiB there and back");
    } else {
        println!("large: the items came back wrong");
    }
    match pool.apply(boom, 7) {
        Err(e) => println!("a panic fails its task only: {e}"),
        Ok(v) => println!("unexpected: {v}"),
    }
    let pids: std::collections::BTreeSet<u32> = pool.map(whoami, 0..64u32)?.into_iter().collect();
    println!("tasks ran in {} worker processes", pids.len());
    for h in pool.hosts() {
        println!("{}: {} tasks", h.name, h.items_done);
    }
    if args.iter().any(|a| a == "--rtt") {
        // Rough figures for the README (ipc-bench is where timings are compared).
        let n = 2000u64;
        let t = std::time::Instant::now();
        for i in 0..n {
            pool.apply(square, i)?;
        }
        let rtt = t.elapsed() / n as u32;
        let t = std::time::Instant::now();
        let done = pool.map_chunksize(square, 0..20_000u64, 1)?.len();
        let rate = done as f64 / t.elapsed().as_secs_f64();
        println!("apply round trip {rtt:?}; map with chunksize 1: {rate:.0} tasks/s");
    }
    if let Some(secs) = args
        .iter()
        .position(|a| a == "--idle")
        .and_then(|i| args.get(i + 1))
    {
        // How much CPU the serving ranks burn while the pool has nothing to do.
        let secs: u64 = secs.parse()?;
        let cpu = |pid: u32| -> u64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            // utime and stime, fields 14 and 15 of stat (11 and 12 after the command).
            fields
                .get(11)
                .and_then(|u| u.parse::<u64>().ok())
                .unwrap_or(0)
                + fields
                    .get(12)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
        };
        let pids: Vec<u32> = pool.hosts().iter().map(|h| h.pid).collect();
        let before: u64 = pids.iter().map(|&p| cpu(p)).sum();
        std::thread::sleep(std::time::Duration::from_secs(secs));
        let after: u64 = pids.iter().map(|&p| cpu(p)).sum();
        // SAFETY: sysconf with a valid name; no memory is involved.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        println!(
            "idle for {secs} s: the {} serving ranks used {} ms of CPU together",
            pids.len(),
            (after - before) * 1000 / ticks
        );
    }
    if kill {
        let victim = pool.hosts().last().map(|h| h.pid).expect("a serving rank");
        println!("SIGKILL rank process {victim}");
        // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
        unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
        // Open MPI aborts the job: this map never returns, the master is killed with the rest.
        let r = pool.map(square, 0..100_000u64);
        println!("unreachable: the map returned {:?}", r.map(|v| v.len()));
        return Ok(());
    }
    let mut pool = pool;
    pool.close();
    pool.join();
    println!("pool joined; the other ranks have left");
    Ok(())
}
