//! `mpi.*` and `mpi4py.*`: a pool over the ranks of an MPI job, ours (ipc-cluster's MPI
//! backend, built with `--features mpi`) beside `mpi4py.futures`'s `MPIPoolExecutor`. Without
//! the feature, without `mpirun`, or (for `mpi4py.*`) without `python3` and its `mpi4py`, the
//! scenarios are skipped with that reason.
//!
//! MPI initialises once per process, so each repeat is one job:
//! `mpirun --oversubscribe -n 3 ipc-bench --mpi-rank SCENARIO` (ours: rank 0 measures, ranks 1
//! and 2 serve, running the tasks themselves) or
//! `mpirun --oversubscribe -n 3 python3 -m mpi4py.futures mpi4py_bench.py SCENARIO` (2
//! workers). Rank 0 prints one JSON object with the figure, as `mp_bench.py` does. The job's
//! start (a few tenths of a second) is outside the timed part.
//!
//! - `*.apply_rtt` (µs): one call after another (`apply`; `submit(..).result()`).
//! - `*.map_chunk1` (tasks/s): a map of 20,000 `u64` (2,000 with `--quick`) with chunksize 1,
//!   one task per message, after an untimed warm-up map.
//! - `mpi.map` (tasks/s): 1,000,000 `u64` (100,000) with Python's default chunksize, as
//!   `ours.pool_map` and `cluster.map`.
//! - `_tcp`: ours with Open MPI forced onto TCP over loopback (`--mca btl self,tcp`);
//!   `_backoff0`: mpi4py with `MPI4PY_FUTURES_BACKOFF=0` (its pollers never sleep).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::scenario::{Config, Outcome, Repeat, Scenario, Unit};

/// The flag that makes a run of `ipc-bench` a rank of an `mpi.*` job.
pub const RANK_FLAG: &str = "--mpi-rank";

const SCRIPT: &str = include_str!("../../python/mpi4py_bench.py");
const SCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/mpi4py_bench.py");

/// How long one job may take before it is killed and the repeat fails.
const JOB_LIMIT: Duration = Duration::from_secs(300);

/// Open MPI's switches to TCP over loopback.
const TCP: [&str; 9] = [
    "--mca",
    "pml",
    "ob1",
    "--mca",
    "btl",
    "self,tcp",
    "--mca",
    "btl_tcp_if_include",
    "lo",
];

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let ours = |name: &str, key: &'static str, unit: Unit, tcp: bool| {
        Scenario::new(name, unit, move |cfg| run_ours(cfg, key, unit, tcp))
    };
    let theirs = |name: &str, key: &'static str, unit: Unit, backoff0: bool| {
        Scenario::new(name, unit, move |cfg| run_mpi4py(cfg, key, unit, backoff0))
    };
    vec![
        ours("mpi.apply_rtt", "apply_rtt", Unit::Us, false),
        ours("mpi.map_chunk1", "map_chunk1", Unit::TasksPerSec, false),
        ours("mpi.map", "map", Unit::TasksPerSec, false),
        ours("mpi.apply_rtt_tcp", "apply_rtt", Unit::Us, true),
        ours("mpi.map_chunk1_tcp", "map_chunk1", Unit::TasksPerSec, true),
        ours("mpi.map_tcp", "map", Unit::TasksPerSec, true),
        theirs("mpi4py.futures_apply_rtt", "apply_rtt", Unit::Us, false),
        theirs(
            "mpi4py.futures_map_chunk1",
            "map_chunk1",
            Unit::TasksPerSec,
            false,
        ),
        theirs("mpi4py.futures_apply_rtt_backoff0", "apply_rtt", Unit::Us, true),
        theirs(
            "mpi4py.futures_map_chunk1_backoff0",
            "map_chunk1",
            Unit::TasksPerSec,
            true,
        ),
    ]
}

/// Whether `program args` runs and succeeds, quietly.
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `mpirun` runs, or why not.
fn mpirun_found() -> Result<(), &'static str> {
    static FOUND: OnceLock<bool> = OnceLock::new();
    if *FOUND.get_or_init(|| succeeds("mpirun", &["--version"])) {
        Ok(())
    } else {
        Err("mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
    }
}

/// Whether `python3` imports `mpi4py.futures`, or why not.
fn mpi4py_found() -> Result<(), &'static str> {
    static FOUND: OnceLock<bool> = OnceLock::new();
    if *FOUND.get_or_init(|| succeeds("python3", &["-c", "import mpi4py.futures"])) {
        Ok(())
    } else {
        Err("python3 with mpi4py not found (pip install mpi4py)")
    }
}

fn script_path() -> anyhow::Result<PathBuf> {
    let shipped = PathBuf::from(SCRIPT_PATH);
    if shipped.is_file() {
        return Ok(shipped);
    }
    // The python group removes this directory at the end of the run.
    let dir = std::env::temp_dir().join(format!("ipc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("mpi4py_bench.py");
    std::fs::write(&path, SCRIPT)?;
    Ok(path)
}

fn run_ours(cfg: &Config, key: &str, unit: Unit, tcp: bool) -> Repeat {
    if !cfg!(feature = "mpi") {
        return Ok(Outcome::skipped("built without --features mpi"));
    }
    if let Err(reason) = mpirun_found() {
        return Ok(Outcome::skipped(reason));
    }
    let mut cmd = mpirun();
    if tcp {
        cmd.args(TCP);
    }
    cmd.arg(std::env::current_exe()?).arg(RANK_FLAG).arg(key);
    if cfg.quick {
        cmd.arg("--quick");
    }
    run_job(cmd, key, unit)
}

fn run_mpi4py(cfg: &Config, key: &str, unit: Unit, backoff0: bool) -> Repeat {
    if let Err(reason) = mpirun_found().and_then(|()| mpi4py_found()) {
        return Ok(Outcome::skipped(reason));
    }
    let mut cmd = mpirun();
    if backoff0 {
        cmd.env("MPI4PY_FUTURES_BACKOFF", "0")
            .args(["-x", "MPI4PY_FUTURES_BACKOFF"]);
    }
    cmd.args(["python3", "-m", "mpi4py.futures"])
        .arg(script_path()?)
        .arg(key);
    if cfg.quick {
        cmd.arg("--quick");
    }
    run_job(cmd, key, unit)
}

/// `mpirun --oversubscribe -n 3`, allowed to run as root.
fn mpirun() -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-n", "3"]);
    cmd
}

/// What rank 0 prints.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct JobOutput {
    scenario: String,
    value: f64,
    unit: String,
    verified: u64,
}

/// Reads a pipe to its end in a thread, so a chatty job never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

fn run_job(mut cmd: Command, key: &str, unit: Unit) -> Repeat {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mpirun")?;
    let stdout = drain(child.stdout.take().context("stdout")?);
    let stderr = drain(child.stderr.take().context("stderr")?);
    let deadline = Instant::now() + JOB_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{key}: the MPI job ran longer than {JOB_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    ensure!(
        status.success(),
        "{key}: the MPI job failed ({status}): {}",
        stderr.trim()
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{key}: no figure in {stdout:?}"))?;
    let out: JobOutput = serde_json::from_str(line.trim())
        .with_context(|| format!("{key}: unreadable output {line:?}"))?;
    ensure!(out.scenario == key, "{key}: the job ran {}", out.scenario);
    ensure!(
        out.unit == unit.symbol(),
        "{key}: the job reports {}, expected {unit}",
        out.unit
    );
    ensure!(out.verified > 0, "{key}: the job verified nothing");
    Ok(unit.quantity(out.value).into())
}

/// A rank of an `mpi.*` job (`ipc-bench --mpi-rank SCENARIO [--quick]`): rank 0 measures and
/// prints the figure, the other ranks serve. Returns the process's exit status.
#[cfg(feature = "mpi")]
pub fn rank_main(args: &[String]) -> u8 {
    match rank::run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ipc-bench --mpi-rank: {e:#}");
            1
        }
    }
}

/// Without the feature there is no rank to be.
#[cfg(not(feature = "mpi"))]
pub fn rank_main(_: &[String]) -> u8 {
    eprintln!("ipc-bench was built without --features mpi");
    2
}

#[cfg(feature = "mpi")]
mod rank {
    use std::time::Instant;

    use anyhow::{Context, bail, ensure};
    use ipc_cluster::MpiPool;

    use super::JobOutput;

    fn square(x: u64) -> u64 {
        x.wrapping_mul(x)
    }

    pub(super) fn run(args: &[String]) -> anyhow::Result<()> {
        let quick = args.iter().any(|a| a == "--quick");
        let key = args
            .iter()
            .skip_while(|a| *a != super::RANK_FLAG)
            .nth(1)
            .context("--mpi-rank needs a scenario")?
            .clone();
        let Some(mut pool) = MpiPool::from_world().context("joining the MPI job")? else {
            return Ok(());
        };
        let pick = |full: u64, q: u64| if quick { q } else { full };
        let (value, unit, verified) = match key.as_str() {
            "apply_rtt" => {
                for i in 0..50 {
                    pool.apply(square, i).context("warm-up")?;
                }
                let n = pick(5_000, 500);
                let t = Instant::now();
                for i in 0..n {
                    ensure!(pool.apply(square, i)? == square(i), "wrong result");
                }
                (t.elapsed().as_secs_f64() / n as f64 * 1e6, "µs", n)
            }
            "map_chunk1" => {
                let n = pick(20_000, 2_000);
                pool.map_chunksize(square, 0..n / 10, 1)
                    .context("warm-up")?;
                let t = Instant::now();
                let out = pool.map_chunksize(square, 0..n, 1)?;
                let dt = t.elapsed().as_secs_f64();
                ensure!(
                    out.iter().enumerate().all(|(i, &v)| v == square(i as u64)),
                    "wrong results"
                );
                (n as f64 / dt, "tasks/s", n)
            }
            "map" => {
                let n = pick(1_000_000, 100_000);
                pool.map(square, 0..n / 10).context("warm-up")?;
                let t = Instant::now();
                let out = pool.map(square, 0..n)?;
                let dt = t.elapsed().as_secs_f64();
                ensure!(
                    out.iter().enumerate().all(|(i, &v)| v == square(i as u64)),
                    "wrong results"
                );
                (n as f64 / dt, "tasks/s", n)
            }
            other => bail!("unknown scenario {other}"),
        };
        pool.close();
        pool.join();
        let out = JobOutput {
            scenario: key,
            value,
            unit: unit.to_owned(),
            verified,
        };
        println!("{}", serde_json::to_string(&out)?);
        Ok(())
    }
}
