//! The MPI backend end to end: `mpirun --oversubscribe` runs the `mpi_map` example as a real
//! job, over shared memory and over TCP on loopback, and with a rank SIGKILLed mid-pool.
//!
//! Without `mpirun` on the machine these tests say so and pass, unless `CI` is set: in CI
//! they must run (`.ci/run` installs Open MPI). Run them with
//! `cargo test -p examples --features mpi` (which builds the examples too), or build the
//! example first (`cargo build -p examples --features mpi --example mpi_map`) when selecting
//! `--test mpi` alone, which does not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for example `name` (target/<profile>/examples/<name>).
fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

/// Whether `mpirun` is there; without it outside CI, the test is skipped with a message.
fn have_mpirun() -> bool {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "mpirun is missing in CI: install openmpi-bin and libopenmpi-dev"
        );
        eprintln!("skipped: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)");
    }
    found
}

/// One job at a time: the leftover check looks for any process of the example.
static ONE_JOB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `mpirun --oversubscribe -n <ranks> [mca...] mpi_map [args...]` with a watchdog; then no
/// process of the job may be left.
fn mpirun(ranks: u32, mca: &[&str], args: &[&str]) -> Output {
    let _one = ONE_JOB.lock().unwrap_or_else(|p| p.into_inner());
    let shm_before = shm_entries();
    let bin = example_bin("mpi_map");
    assert!(bin.exists(), "{} is not built", bin.display());
    let mut cmd = Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg("--oversubscribe")
        .arg("-n")
        .arg(ranks.to_string());
    for m in mca {
        cmd.arg(m);
    }
    let mut child = cmd
        .arg(&bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpirun");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "watchdog: mpirun did not finish\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert_no_leftovers(&bin);
    assert_no_new_shm(&shm_before);
    out
}

/// Our segments (`ipc-*`) and Open MPI's shared-memory transport's (`vader_segment.*`).
fn shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ipc-") || n.starts_with("vader_segment"))
                .collect()
        })
        .unwrap_or_default()
}

/// Nothing the job created in /dev/shm outlives it (the cleanup after a SIGKILL is
/// asynchronous, so this waits for it, within a watchdog).
fn assert_no_new_shm(before: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let new: Vec<String> = shm_entries()
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if new.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left in /dev/shm after the job: {new:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// No live process runs `bin` any more (the ranks, their fork servers, their workers); their
/// exit is asynchronous to mpirun's, so this waits for them, within a watchdog.
fn assert_no_leftovers(bin: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = running(bin);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of {} are left: {left:?}",
            bin.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of live (not zombie) processes whose executable is `bin`.
fn running(bin: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let exe = std::fs::read_link(e.path().join("exe"));
        if exe.as_deref().ok() != Some(bin) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if !matches!(state, Some("Z" | "X")) {
            pids.push(pid);
        }
    }
    pids
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_map_output(out: &Output, ranks: u32) {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "mpirun failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    for needle in [
        format!("{ranks} ranks"),
        "map: 1000 results, sum 332833500".to_owned(),
        "starmap: [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]".to_owned(),
        "apply: 144".to_owned(),
        "apply_async awaited: 169".to_owned(),
        "imap: [0, 1, 4, 9, 16]".to_owned(),
        "a panic fails its task only:".to_owned(),
        "large: 16 items of 256 KiB there and back".to_owned(),
        "no square for 7".to_owned(),
        "pool joined; the other ranks have left".to_owned(),
    ] {
        assert!(
            stdout.contains(&needle),
            "output lacks `{needle}`:\n{stdout}\n{stderr}"
        );
    }
    for r in 1..ranks {
        assert!(
            stdout.contains(&format!("rank {r} (")),
            "rank {r} missing:\n{stdout}"
        );
    }
}

const TCP: [&str; 6] = ["--mca", "pml", "ob1", "--mca", "btl", "self,tcp"];

#[test]
fn map_over_shared_memory() {
    if !have_mpirun() {
        return;
    }
    assert_map_output(&mpirun(4, &[], &[]), 4);
}

#[test]
fn map_over_tcp_with_two_processes_per_rank() {
    if !have_mpirun() {
        return;
    }
    let mut mca = TCP.to_vec();
    mca.extend(["--mca", "btl_tcp_if_include", "lo"]);
    let out = mpirun(4, &mca, &["--processes", "2"]);
    assert_map_output(&out, 4);
    assert!(text(&out).0.contains("4 ranks, 6 worker processes"));
}

#[test]
fn executor_submits_and_shuts_down() {
    if !have_mpirun() {
        return;
    }
    let out = mpirun(3, &[], &["--executor"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("submit awaited: 49"), "{stdout}");
    assert!(stdout.contains("executor map: [1, 4, 9]"), "{stdout}");
    assert!(stdout.contains("executor shut down"), "{stdout}");
}

#[test]
fn a_killed_rank_aborts_the_job_with_a_clear_status() {
    if !have_mpirun() {
        return;
    }
    let out = mpirun(3, &[], &["--kill-a-rank"]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "the job went on:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("SIGKILL rank process"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("unreachable"), "{stdout}");
    assert!(
        stderr.contains("signal 9") || stdout.contains("signal 9"),
        "mpirun did not name the killed rank:\n{stdout}\n{stderr}"
    );
}
