//! End-to-end tests of the `ipc-bench` binary: it runs real scenarios between real processes,
//! verifies what they moved, and prints the documented JSON document.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use ipc_testkit::{output_within, shm_names};

const EXE: &str = env!("CARGO_BIN_EXE_ipc-bench");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs ipc-bench with a watchdog: killed (and the test failed) after `limit`.
fn run(args: &[&str], limit: Duration) -> Run {
    let out = output_within(Command::new(EXE).args(args), limit);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Runs `ipc-bench --quick --json` with `args` and returns its document (it must succeed).
fn run_json(args: &[&str], limit: Duration) -> serde_json::Value {
    let all: Vec<&str> = ["--quick", "--json"].iter().chain(args).copied().collect();
    let r = run(&all, limit);
    assert_eq!(r.code, Some(0), "stderr:\n{}", r.stderr);
    serde_json::from_str(r.stdout.trim()).expect("one JSON document")
}

fn our_shm_names() -> BTreeSet<String> {
    shm_names(&["ipc-", "shmem_"])
}

const RUST_SCENARIOS: &[(&str, &str)] = &[
    ("limit.pingpong_rtt", "ns"),
    ("limit.duplex_rtt", "ns"),
    ("limit.chunk_rtt", "ns"),
    ("limit.chunk_claimed_rtt", "ns"),
    ("limit.spsc_u64", "msgs/s"),
    ("limit.mpmc_u64", "msgs/s"),
    ("limit.mpmc_claimed_u64", "msgs/s"),
    ("limit.spsc_u64_batch", "msgs/s"),
    ("limit.memcpy_1mib", "GB/s"),
    ("limit.ring_1mib", "GB/s"),
    ("limit.ring_1mib_inplace", "GB/s"),
    ("limit.futex_rtt", "µs"),
    ("limit.futex_relay_rtt", "µs"),
    ("pipe.pingpong_rtt", "µs"),
    ("unix.pingpong_rtt", "µs"),
    ("pipe.pingpong_rtt_busy", "µs"),
    ("unix.pingpong_rtt_busy", "µs"),
    ("pipe.1mib", "GB/s"),
    ("unix.1mib", "GB/s"),
    ("core.segment_create_open", "µs"),
    ("shared_memory.create_open", "µs"),
];

const PYTHON_SCENARIOS: &[(&str, &str)] = &[
    ("python.queue_small", "msgs/s"),
    ("python.pipe_rtt", "µs"),
    ("python.pool_map", "tasks/s"),
    ("python.pool_map_chunk1", "tasks/s"),
    ("python.pool_apply_rtt", "µs"),
    ("python.value_locked_incr", "ops/s"),
    ("python.event_rtt", "µs"),
    ("python.start_fork", "ms"),
    ("python.start_forkserver", "ms"),
    ("python.start_spawn", "ms"),
    ("python.shm_create_attach", "µs"),
];

fn check_measured(doc: &serde_json::Value, name: &str, unit: &str) {
    let s = &doc["scenarios"][name];
    assert_eq!(s["unit"], unit, "{name}: {s}");
    let median = s["median"]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: {s}"));
    let min = s["min"].as_f64().expect("min");
    let max = s["max"].as_f64().expect("max");
    assert!(min > 0.0 && min <= median && median <= max, "{name}: {s}");
    assert_eq!(s.as_object().expect("object").len(), 4, "{name}: {s}");
}

#[test]
fn rust_scenarios_run_verify_and_print_json() {
    let before = our_shm_names();
    let doc = run_json(
        &[
            "--repeats",
            "2",
            "--filter",
            "limit.,pipe.pingpong_rtt,pipe.1mib,unix.pingpong_rtt,unix.1mib",
            "--filter=core.,shared_memory.",
        ],
        Duration::from_secs(600),
    );
    let top: BTreeSet<&str> = doc
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, BTreeSet::from(["machine", "scenarios", "pairs"]));
    for key in ["cpu", "cores", "kernel", "rustc", "profile", "date"] {
        assert!(!doc["machine"][key].is_null(), "machine.{key} missing");
    }
    for (name, unit) in RUST_SCENARIOS {
        check_measured(&doc, name, unit);
    }
    assert_eq!(
        doc["scenarios"].as_object().expect("object").len(),
        RUST_SCENARIOS.len()
    );
    let leaked: Vec<_> = our_shm_names().difference(&before).cloned().collect();
    assert!(leaked.is_empty(), "left in /dev/shm: {leaked:?}");
}

#[test]
fn pairs_and_teams_report_ratios_and_fairness() {
    let doc = run_json(
        &[
            "--repeats",
            "2",
            "--filter",
            "ours.ring_u64_batch,limit.spsc_u64_batch,ours.lock_contended@2p,ours.queue_mpmc@2p",
        ],
        Duration::from_secs(300),
    );
    let pairs = doc["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let p = &pairs[0];
    assert_eq!(p["ours"], "ours.ring_u64_batch");
    assert_eq!(p["limit"], "limit.spsc_u64_batch");
    assert_eq!(p["rounds"], 2);
    let (lo, mid, hi) = (
        p["ratio"]["min"].as_f64().expect("min"),
        p["ratio"]["median"].as_f64().expect("median"),
        p["ratio"]["max"].as_f64().expect("max"),
    );
    assert!(0.0 < lo && lo <= mid && mid <= hi, "{p}");
    assert!(p["meets"].is_boolean(), "{p}");
    let lock = &doc["scenarios"]["ours.lock_contended@2p"];
    assert_eq!(lock["unit"], "ops/s", "{lock}");
    let f = &lock["fairness"];
    let (min, max) = (
        f["min_share"].as_f64().expect("min"),
        f["max_share"].as_f64().expect("max"),
    );
    assert!(
        (0.0..=0.5).contains(&min) && (0.5..=1.0).contains(&max),
        "{f}"
    );
    assert!(f["longest_streak"].as_u64().expect("streak") >= 1, "{f}");
    check_measured(&doc, "ours.queue_mpmc@2p", "msgs/s");
}

#[test]
fn python_scenarios_are_measured_or_skipped_with_a_reason() {
    let doc = run_json(
        &["--repeats", "1", "--filter", "python.pipe_rtt,python.shm_"],
        Duration::from_secs(300),
    );
    let python = Command::new("python3").arg("--version").output().is_ok();
    for (name, unit) in [
        ("python.pipe_rtt", "µs"),
        ("python.shm_create_attach", "µs"),
    ] {
        if python {
            check_measured(&doc, name, unit);
        } else {
            let why = doc["scenarios"][name]["skipped"]
                .as_str()
                .expect("a skip reason");
            assert!(why.contains("python3"), "{why}");
            eprintln!("python3 is missing: {name} skipped ({why})");
        }
    }
}

#[test]
fn list_names_every_baseline() {
    let r = run(&["--list"], Duration::from_secs(60));
    assert_eq!(r.code, Some(0));
    for (name, unit) in RUST_SCENARIOS.iter().chain(PYTHON_SCENARIOS) {
        let line = r
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{}", r.stdout));
        assert!(line.ends_with(unit), "{line}");
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["--repeats", "0"][..],
        &["--repeats"][..],
        &["--filter", "no.such.scenario"][..],
        &["--frobnicate"][..],
    ] {
        let r = run(args, Duration::from_secs(60));
        assert_eq!(r.code, Some(2), "{args:?}");
        let stderr = r.stderr.to_lowercase();
        assert!(
            stderr.contains("usage") || stderr.contains("--help") || stderr.contains("no scenario"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}");
    }
}

/// The first CPU this process may run on (from `/proc/self/status`).
fn an_allowed_cpu() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    list.trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a CPU number")
}

#[test]
fn sweeps_peers_markdown_plots_and_pinning() {
    let dir = std::env::temp_dir().join(format!("ipc-bench-cli-plot-{}", std::process::id()));
    let cpu = an_allowed_cpu().to_string();
    let pin = format!("{cpu},{cpu}");
    let r = run(
        &[
            "--quick",
            "--markdown",
            "--repeats",
            "1",
            "--pin",
            &pin,
            "--plot",
            dir.to_str().expect("utf-8 temp dir"),
            "--filter",
            "pipe.rtt@8B,pipe.rtt@4KiB,unix.stream@64KiB,unix.stream@1KiB,eventfd.,_busy",
            "--filter",
            "crossbeam.,ipc_channel.pingpong_rtt,iceoryx2.pubsub_rtt,iceoryx2.rtt@8B",
        ],
        Duration::from_secs(300),
    );
    assert_eq!(r.code, Some(0), "stderr:\n{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("pinned: parent on CPU {cpu}, child on CPU {cpu}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("| scenario | median | min | max | unit |")
    );
    for name in [
        "pipe.rtt@8B",
        "pipe.rtt@4KiB",
        "unix.stream@1KiB",
        "unix.stream@64KiB",
        "eventfd.pingpong_rtt",
        "eventfd.pingpong_rtt_busy",
        "pipe.pingpong_rtt_busy",
        "unix.pingpong_rtt_busy",
        "crossbeam.u64_threads",
        "crossbeam.pingpong_rtt_threads",
    ] {
        let row = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", r.stdout));
        assert!(!row.contains("skipped") && !row.contains("FAILED"), "{row}");
    }
    for name in [
        "ipc_channel.pingpong_rtt",
        "iceoryx2.pubsub_rtt",
        "iceoryx2.rtt@8B",
    ] {
        let row = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", r.stdout));
        // Measured with `--features peers`, skipped with the reason without it.
        assert!(
            !row.contains("FAILED")
                && (!row.contains("skipped") || row.contains("--features peers")),
            "{row}"
        );
    }
    for chart in ["latency.svg", "throughput.svg"] {
        let svg = std::fs::read_to_string(dir.join(chart)).expect(chart);
        assert!(svg.starts_with("<svg"), "{chart}");
    }
    let latency = std::fs::read_to_string(dir.join("latency.svg")).expect("latency.svg");
    assert!(latency.contains("pipe.rtt"));
    let throughput = std::fs::read_to_string(dir.join("throughput.svg")).expect("throughput.svg");
    assert!(throughput.contains("unix.stream"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_sweep_has_all_sizes_and_bad_pins_are_usage_errors() {
    let r = run(&["--list", "--filter", "@"], Duration::from_secs(60));
    assert_eq!(r.code, Some(0));
    for base in [
        "pipe.rtt",
        "pipe.stream",
        "unix.rtt",
        "unix.stream",
        "ipc_channel.rtt",
        "ipc_channel.stream",
        "iceoryx2.rtt",
        "iceoryx2.stream",
    ] {
        for size in [
            "8B", "16B", "64B", "256B", "1KiB", "4KiB", "16KiB", "64KiB", "256KiB", "1MiB", "4MiB",
        ] {
            let name = format!("{base}@{size}");
            assert!(
                r.stdout
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(&name)),
                "{name} not listed"
            );
        }
    }
    for args in [
        &["--pin", "1"][..],
        &["--pin", "a,b"][..],
        &["--json", "--markdown"][..],
        &["--plot"][..],
    ] {
        let r = run(args, Duration::from_secs(60));
        assert_eq!(r.code, Some(2), "{args:?}");
        assert!(r.stdout.is_empty(), "{args:?}");
    }
}
