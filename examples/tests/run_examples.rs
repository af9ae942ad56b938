//! The examples double as end-to-end tests: each one is run as a real program (the binary cargo
//! built for it) and its output is checked against what its documentation promises.

use std::path::PathBuf;
use std::process::{Command, Output};
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

/// Runs example `name` with a watchdog and returns its output; fails if it does not succeed.
fn run(name: &str) -> Output {
    let bin = example_bin(name);
    assert!(
        bin.exists(),
        "{} is not built (cargo test builds examples)",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn example");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
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
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tour_walks_through_every_section() {
    let out = stdout(&run("tour"));
    for needle in [
        "Shared-memory segments",
        "Typed raw values",
        "RawArray [1, 2, 3], add 1 to each",
        "[2, 3, 4]",
        "refused",
        "Tour finished",
    ] {
        assert!(out.contains(needle), "tour output lacks `{needle}`:\n{out}");
    }
}

#[test]
fn shared_value_array_prints_15_and_the_array() {
    assert_eq!(stdout(&run("shared_value_array")), "15\n[2, 3, 4]\n");
}

#[test]
fn lock_counter_counts_40000_and_survives_a_killed_holder() {
    let out = stdout(&run("lock_counter"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"40000"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("OwnerDied")), "{out}");
    assert_eq!(lines.last(), Some(&"40000"), "{out}");
}
