//! The process examples as end-to-end tests: each runs as a real program and its output is
//! checked against what its documentation promises.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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

/// Runs example `name` under a watchdog; returns its standard output, failing unless it succeeds.
fn run(name: &str) -> String {
    let bin = example_bin(name);
    assert!(bin.exists(), "{} is not built", bin.display());
    let mut child = Command::new(&bin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn example");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: example {name} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "example {name} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pid_after(line: &str, prefix: &str) -> u32 {
    line.strip_prefix(prefix)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid after `{prefix}` in `{line}`"))
}

#[test]
fn process_basics_prints_three_distinct_pids() {
    let out = run("process_basics");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let main = pid_after(lines[0], "Main process ID: ");
    assert_eq!(lines[3], "All worker processes finished.");
    let mut workers = BTreeSet::new();
    for who in ["Alice", "Bob"] {
        let prefix = format!("Worker {who}: My process ID is ");
        let line = lines[1..3]
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for {who}:\n{out}"));
        workers.insert(pid_after(line, &prefix));
    }
    assert_eq!(workers.len(), 2, "{out}");
    assert!(!workers.contains(&main), "{out}");
}

#[test]
fn process_subclass_counts_to_five_in_each_process() {
    let out = run("process_subclass");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut expected: Vec<String> = ["Process-1", "Process-2"]
        .iter()
        .flat_map(|name| (1..=5).map(move |i| format!("Process {name}: {i}")))
        .collect();
    expected.sort();
    assert_eq!(lines, expected, "{out}");
}

#[test]
fn print_numbers_prints_one_to_four_from_four_processes() {
    let out = run("print_numbers");
    let mut numbers = BTreeSet::new();
    let mut pids = BTreeSet::new();
    for line in out.lines() {
        let pid = pid_after(line, "Process ID: ");
        let n: u32 = line
            .rsplit_once("Number: ")
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or_else(|| panic!("no number in `{line}`"));
        pids.insert(pid);
        numbers.insert(n);
    }
    assert_eq!(numbers, BTreeSet::from([1, 2, 3, 4]), "{out}");
    assert_eq!(pids.len(), 4, "{out}");
}

#[test]
fn daemon_is_gone_after_its_parent_exits() {
    let out = run("daemon");
    assert!(out.contains(": running forever"), "{out}");
    assert!(out.contains("is alive: true; parent exits now"), "{out}");
    assert!(out.contains("is gone after its parent exited"), "{out}");
}
