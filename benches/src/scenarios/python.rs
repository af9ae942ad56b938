//! `python.*`: Python's `multiprocessing`, measured by `benches/python/mp_bench.py`.
//!
//! Each repeat runs `python3 mp_bench.py SCENARIO [--quick]` once; the script times one thing,
//! checks what it moved, and prints one JSON object with the figure. Without `python3` (or
//! without its `multiprocessing` module) the scenarios are skipped with that reason.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::scenario::{Config, Outcome, Repeat, Scenario, Unit};

/// The script, as shipped in `benches/python/`; written to a temporary file when the binary
/// runs away from its source tree.
const SCRIPT: &str = include_str!("../../python/mp_bench.py");
const SCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/mp_bench.py");

/// How long one run of the script may take before it is killed and the repeat fails.
const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

/// The scenarios: name, the script's scenario key, unit.
const SCRIPTS: [(&str, &str, Unit); 12] = [
    ("python.queue_small", "queue_small", Unit::MsgsPerSec),
    ("python.pipe_rtt", "pipe_rtt", Unit::Us),
    ("python.pool_map", "pool_map", Unit::TasksPerSec),
    ("python.pool_map_chunk1", "pool_map_chunk1", Unit::TasksPerSec),
    ("python.pool_apply_rtt", "pool_apply_rtt", Unit::Us),
    ("python.value_locked_incr", "value_locked_incr", Unit::OpsPerSec),
    ("python.event_rtt", "event_rtt", Unit::Us),
    ("python.start_fork", "start_fork", Unit::Ms),
    ("python.start_forkserver", "start_forkserver", Unit::Ms),
    ("python.start_spawn", "start_spawn", Unit::Ms),
    ("python.shm_create_attach", "shm_create_attach", Unit::Us),
    ("python.manager_dict_set_rtt", "manager_dict_set_rtt", Unit::Us),
];

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    SCRIPTS
        .iter()
        .map(|&(name, key, unit)| Scenario::new(name, unit, move |cfg| run_script(cfg, key, unit)))
        .collect()
}

/// `python3 --version` without the prefix, or why Python cannot be used.
pub fn python_version() -> Result<&'static str, &'static str> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import multiprocessing, platform; print(platform.python_version())",
                ])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map_err(|_| "python3 not found on PATH".to_owned())?;
            if !out.status.success() {
                return Err("python3 has no usable multiprocessing module".to_owned());
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .as_ref()
        .map(String::as_str)
        .map_err(String::as_str)
}

fn script_path() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        let shipped = PathBuf::from(SCRIPT_PATH);
        if shipped.is_file() {
            return Ok(shipped);
        }
        let dir = std::env::temp_dir().join(format!("ipc-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("mp_bench.py");
        std::fs::write(&path, SCRIPT).map_err(|e| e.to_string())?;
        Ok(path)
    })
    .clone()
    .map_err(|e| anyhow::anyhow!("writing the Python script: {e}"))
}

/// Removes the temporary copy of the script, if one was written.
pub fn cleanup() {
    let dir = std::env::temp_dir().join(format!("ipc-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(dir);
}

/// What the script prints.
#[derive(Debug, serde::Deserialize)]
struct ScriptOutput {
    scenario: String,
    value: f64,
    unit: String,
    verified: u64,
}

fn run_script(cfg: &Config, key: &str, unit: Unit) -> Repeat {
    if let Err(reason) = python_version() {
        return Ok(Outcome::skipped(reason));
    }
    let script = script_path()?;
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(key);
    if cfg.quick {
        cmd.arg("--quick");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting python3")?;
    let deadline = Instant::now() + SCRIPT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{key}: the script ran longer than {SCRIPT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut stdout)?;
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut stderr)?;
    }
    ensure!(
        status.success(),
        "{key}: python3 failed ({status}): {}",
        stderr.trim()
    );
    let out: ScriptOutput = serde_json::from_str(stdout.trim())
        .with_context(|| format!("{key}: unreadable output {stdout:?}"))?;
    ensure!(
        out.scenario == key,
        "{key}: the script ran {}",
        out.scenario
    );
    ensure!(
        out.unit == unit.symbol(),
        "{key}: the script reports {}, expected {unit}",
        out.unit
    );
    ensure!(out.verified > 0, "{key}: the script verified nothing");
    Ok(unit.quantity(out.value).into())
}
