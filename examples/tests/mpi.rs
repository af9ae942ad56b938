//! The MPI backend end to end: `mpirun --oversubscribe` runs the `mpi_map` example as a real
//! job, over shared memory and over TCP on loopback, and with a rank SIGKILLed mid-pool.
//!
//! Without `mpirun` on the machine these tests say so and pass, unless `CI` is set: in CI
//! they must run (`.ci/run` installs Open MPI). Run them with
//! `cargo test -p examples --features mpi` (which builds the examples too), or build the
//! example first (`cargo build -p examples --features mpi --example mpi_map`) when selecting
//! `--test mpi` alone, which does not.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ipc_testkit::{
    assert_no_new_shm, example_bin, have_command, output_within, processes_running, shm_names,
    wait_until_none_left,
};

/// Whether `mpirun` is there; without it outside CI, the test is skipped with a message.
fn have_mpirun() -> bool {
    let found = have_command("mpirun", &["--version"]);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "mpirun is missing in CI: install openmpi-bin and libopenmpi-dev"
        );
        eprintln!("skipped: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)");
    }
    found
}

/// Our segments (`ipc-*`) and Open MPI's shared-memory transport's (`vader_segment.*`): nothing
/// the job created in /dev/shm may outlive it.
const SHM_PREFIXES: &[&str] = &["ipc-", "vader_segment"];

/// One job at a time: the leftover check looks for any process of the example.
static ONE_JOB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `mpirun --oversubscribe -n <ranks> [mca...] mpi_map [args...]` with a watchdog; then no
/// process of the job may be left.
fn mpirun(ranks: u32, mca: &[&str], args: &[&str]) -> Output {
    let _one = ONE_JOB.lock().unwrap_or_else(|p| p.into_inner());
    let shm_before = shm_names(SHM_PREFIXES);
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
    let out = output_within(cmd.arg(&bin).args(args), Duration::from_secs(120));
    assert_no_leftovers(&bin);
    // The cleanup after a SIGKILL is asynchronous: wait for it, within a watchdog.
    assert_no_new_shm(&shm_before, SHM_PREFIXES, Duration::from_secs(30));
    out
}

/// No live process runs `bin` any more (the ranks, their fork servers, their workers); their
/// exit is asynchronous to mpirun's, so this waits for them, within a watchdog.
fn assert_no_leftovers(bin: &Path) {
    wait_until_none_left(
        Duration::from_secs(30),
        &format!("processes of {} are left", bin.display()),
        || processes_running(bin),
    );
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
