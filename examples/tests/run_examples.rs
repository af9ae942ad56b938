//! The examples double as end-to-end tests: each one is run as a real program (the binary cargo
//! built for it) and its output is checked against what its documentation promises.

use std::process::{Command, Output};
use std::time::Duration;

use ipc_testkit::{example_bin, output_within};

/// Runs example `name` with a watchdog and returns its output; fails if it does not succeed.
fn run(name: &str) -> Output {
    run_with(name, &[])
}

/// Runs example `name` with arguments and a watchdog; fails unless it succeeds.
fn run_with(name: &str, args: &[&str]) -> Output {
    let bin = example_bin(name);
    assert!(
        bin.exists(),
        "{} is not built (cargo test builds examples)",
        bin.display()
    );
    let out = output_within(Command::new(&bin).args(args), Duration::from_secs(120));
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
        "child saw 15, parent sees 15",
        "a child sends [1, 2, 3] through a Pipe",
        "[1, 4, 9, 16, 25]",
        "killed by signal 9 (SIGKILL)",
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

#[test]
fn async_wait_wakes_1000_tasks_and_survives_a_killed_holder() {
    let out = stdout(&run("async_wait"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "event set by the child: 500 tasks woken",
            "lock released by the child: 500 tasks took it in turn",
            "the runtime kept running meanwhile: true",
            "the child returned 42",
            "holder killed: 1 await ended with OwnerDied, 100 tasks took the lock",
        ],
        "{out}"
    );
}

#[test]
fn async_service_answers_1000_awaiting_tasks_fed_by_a_worker_process() {
    let out = stdout(&run("async_service"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "1000 tasks await the queue the worker process feeds",
            "1000 requests answered over the pipe",
            "the worker checked 1000 answers",
            "sum of the squares: 332833500",
        ],
        "{out}"
    );
}

fn pid_after<'a>(line: &'a str, prefix: &str) -> &'a str {
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"))
}

#[test]
fn process_basics_runs_two_workers_with_their_own_pids() {
    let out = stdout(&run("process_basics"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let main_pid = pid_after(lines[0], "Main process ID: ");
    let mut workers: Vec<&str> = lines[1..3].to_vec();
    workers.sort_unstable();
    let alice = pid_after(workers[0], "Worker Alice: My process ID is ");
    let bob = pid_after(workers[1], "Worker Bob: My process ID is ");
    assert!(
        main_pid != alice && main_pid != bob && alice != bob,
        "{out}"
    );
    assert_eq!(lines[3], "All worker processes finished.");
}

#[test]
fn process_subclass_counts_to_five_in_each_process() {
    let out = stdout(&run("process_subclass"));
    // Named after the type, as Python names instances of a Process subclass.
    for name in ["MyProcess-1", "MyProcess-2"] {
        let mine: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(&format!("Process {name}:")))
            .collect();
        let expected: Vec<String> = (1..=5).map(|n| format!("Process {name}: {n}")).collect();
        assert_eq!(mine, expected, "{out}");
    }
}

#[test]
fn print_numbers_prints_one_line_per_process() {
    let out = stdout(&run("print_numbers"));
    let mut numbers: Vec<u32> = out
        .lines()
        .map(|l| {
            l.rsplit_once("Number: ")
                .expect("a number")
                .1
                .parse()
                .expect("an integer")
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4], "{out}");
}

#[test]
fn daemon_child_is_gone_after_its_parent() {
    let out = stdout(&run("daemon"));
    assert!(out.contains("is alive: true"), "{out}");
    assert!(out.contains("is gone after its parent exited"), "{out}");
}

#[test]
fn pool_map_prints_the_squares() {
    assert_eq!(stdout(&run("pool_map")), "[1, 4, 9, 16, 25]\n");
}

#[test]
fn pool_worker_prints_each_number_once() {
    let out = stdout(&run("pool_worker"));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "Worker process 0",
            "Worker process 1",
            "Worker process 2",
            "Worker process 3"
        ]
    );
}

#[test]
fn pool_survives_a_killed_worker() {
    let out = stdout(&run("pool_survives"));
    assert!(out.contains("succeeded: 999 of 1000"), "{out}");
    let failed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("failed: task"))
        .collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert!(failed[0].contains("killed by signal 9"), "{out}");
    assert!(out.contains("the pool finished"), "{out}");
}

#[test]
fn zero_copy_map_squares_in_place() {
    let out = stdout(&run_with("zero_copy_map", &["3000000"]));
    assert!(out.contains("every sampled element squared: true"), "{out}");
}

#[test]
fn manager_dict_counts_4000_and_lists_four_names() {
    assert_eq!(
        stdout(&run("manager_dict")),
        "4000\nAlice, Bob, Carol, Dave\n"
    );
}

#[test]
fn queue_square_prints_25() {
    assert_eq!(stdout(&run("queue_square")), "25\n");
}

#[test]
fn pipe_send_prints_the_list() {
    assert_eq!(stdout(&run("pipe_send")), "[1, 2, 3]\n");
}

#[test]
fn producer_consumer_loses_at_most_one_message() {
    let out = stdout(&run("producer_consumer"));
    let line = out
        .lines()
        .find(|l| l.starts_with("sent "))
        .expect("a summary line");
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a number"))
        .collect();
    let [sent, received, lost] = nums[..] else {
        panic!("unexpected summary: {line}")
    };
    assert!(lost <= 1, "{line}");
    assert_eq!(sent, received + lost, "{line}");
}

#[test]
fn custom_pool_replaces_a_killed_worker_and_loses_nothing() {
    let out = stdout(&run("custom_pool"));
    assert!(out.contains("ended with exit code Some(-9)"), "{out}");
    assert!(
        out.contains("400 results, all correct: true; workers replaced: 1"),
        "{out}"
    );
}

#[test]
fn bank_account_lives_in_the_manager() {
    assert_eq!(
        stdout(&run("bank_account")),
        "balance: 2100\n\
         refused: Alice cannot withdraw 5000: balance 2100\n\
         audit failed: the call panicked in the manager: the auditor is out today\n\
         balance after all that: 2100\n"
    );
}

#[cfg(feature = "cluster")]
#[test]
fn cluster_map_loses_one_chunk_with_its_killed_host_and_finishes() {
    let out = stdout(&run("cluster_map"));
    for needle in [
        "2 hosts joined",
        "SIGKILL host-a",
        "succeeded: 199 of 200",
        "failed: item",
        "host-b  alive",
        "host-a  dead",
        "the map finished with one failed chunk",
    ] {
        assert!(
            out.contains(needle),
            "cluster_map output lacks `{needle}`:\n{out}"
        );
    }
}
