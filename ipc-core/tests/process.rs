//! `Process` with every start method: results, exit codes, signals, timeouts, daemons, handles.
//!
//! No `main` is needed: the crate's constructor dispatches re-executed children before the test
//! harness starts. Tests run on several threads, so `Fork` is used with the risk accepted.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipc_core::{
    JoinError, Process, ProcessIdentity, RawArray, RawValue, Runnable, SharedMemory, SignalError,
    StartError, StartMethod,
};
use ipc_testkit::WATCHDOG;
use ipc_testkit::process::{START_METHODS as METHODS, join_within, process};
use serde::{Deserialize, Serialize};

fn square(x: u64) -> u64 {
    x * x
}

fn my_pid(_: ()) -> u32 {
    std::process::id()
}

fn panics(msg: String) -> u32 {
    panic!("{msg}")
}

fn exits(code: i32) {
    std::process::exit(code)
}

fn sleeps(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms))
}

fn sleeps_then_exits(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::exit(7)
}

fn add_five(v: RawValue<u64>) -> u64 {
    v.fetch_add(5);
    v.get()
}

fn who_am_i(_: ()) -> (String, Option<u32>, Option<String>) {
    let me = ipc_core::current_process();
    let parent = ipc_core::parent_process();
    (
        me.name,
        parent.as_ref().map(|p| p.pid()),
        parent.map(|p| p.name),
    )
}

#[test]
fn returns_the_result_with_each_method() {
    for method in METHODS {
        let p = process(method, square, 7);
        assert_eq!(p.exit_code(), None);
        p.start().unwrap();
        assert_eq!(join_within(&p, WATCHDOG).unwrap(), 49, "{method:?}");
        assert_eq!(p.exit_code(), Some(0), "{method:?}");
        assert!(!p.is_alive());
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn returns_results_of_every_size_with_each_method() {
    // Around the room a child encodes its result into on its stack (256 bytes: a `Vec<u8>` of
    // 254 fills it with its length, one of 255 moves to the heap), and far past what the
    // channel's socket buffer holds while nobody reads it.
    let sizes = [0, 200, 252, 253, 254, 255, 256, 257, 300, 70_000, 3 << 20];
    for method in METHODS {
        for len in sizes {
            let p = process(method, pattern, len);
            p.start().unwrap();
            let got = join_within(&p, WATCHDOG).unwrap();
            assert!(
                got == pattern(len),
                "{method:?}: a result of {len} bytes came back altered"
            );
        }
    }
}

#[test]
fn child_pid_is_its_own() {
    for method in METHODS {
        let p = process(method, my_pid, ());
        p.start().unwrap();
        let pid = p.pid().unwrap();
        assert_ne!(pid, std::process::id());
        assert_eq!(join_within(&p, WATCHDOG).unwrap(), pid, "{method:?}");
    }
}

#[test]
fn panic_gives_its_message_and_exit_code_1() {
    for method in METHODS {
        let p = process(method, panics, format!("boom with {method:?}"));
        p.start().unwrap();
        match join_within(&p, WATCHDOG) {
            Err(JoinError::Panicked { message }) => {
                assert_eq!(message, format!("boom with {method:?}"))
            }
            other => panic!("{method:?}: expected a panic, got {other:?}"),
        }
        assert_eq!(p.exit_code(), Some(1), "{method:?}");
    }
}

#[test]
fn exit_3_gives_exit_code_3() {
    for method in METHODS {
        let p = process(method, exits, 3);
        p.start().unwrap();
        assert!(
            matches!(
                join_within(&p, WATCHDOG),
                Err(JoinError::Exited { code: 3 })
            ),
            "{method:?}"
        );
        assert_eq!(p.exit_code(), Some(3), "{method:?}");
    }
}

#[test]
fn exit_0_without_result_is_result_missing() {
    for method in METHODS {
        let p = process(method, exits, 0);
        p.start().unwrap();
        assert!(
            matches!(join_within(&p, WATCHDOG), Err(JoinError::ResultMissing)),
            "{method:?}"
        );
        assert_eq!(p.exit_code(), Some(0), "{method:?}");
    }
}

#[test]
fn terminate_gives_minus_15_and_kill_minus_9() {
    for method in METHODS {
        for (sig, code) in [(libc::SIGTERM, -15), (libc::SIGKILL, -9)] {
            let p = process(method, sleeps, 600_000);
            p.start().unwrap();
            assert!(p.is_alive());
            if sig == libc::SIGTERM {
                p.terminate().unwrap();
            } else {
                p.kill().unwrap();
            }
            match join_within(&p, WATCHDOG) {
                Err(JoinError::Signaled { signal }) => assert_eq!(signal, sig, "{method:?}"),
                other => panic!("{method:?}: expected a signal, got {other:?}"),
            }
            assert_eq!(p.exit_code(), Some(code), "{method:?}");
            assert!(!p.is_alive());
            // Signalling an ended process is a no-op, as in Python.
            p.terminate().unwrap();
        }
    }
}

#[test]
fn join_timeout_returns_and_the_child_keeps_running() {
    for method in METHODS {
        let p = process(method, sleeps, 600_000);
        p.start().unwrap();
        assert!(matches!(
            p.join_timeout(Duration::from_millis(50)),
            Err(JoinError::Timeout)
        ));
        assert!(p.is_alive(), "{method:?}");
        assert_eq!(p.exit_code(), None);
        let pid = p.pid().unwrap();
        assert!(ProcessIdentity::of_pid(pid).unwrap().is_some());
        p.kill().unwrap();
        assert!(matches!(
            join_within(&p, WATCHDOG),
            Err(JoinError::Signaled { signal: 9 })
        ));
    }
}

#[test]
fn a_raw_value_handle_attaches_in_the_child() {
    for method in METHODS {
        let value = RawValue::new(10u64).unwrap();
        let p = process(method, add_five, RawValue::open(&value.handle()).unwrap());
        p.start().unwrap();
        assert_eq!(join_within(&p, WATCHDOG).unwrap(), 15, "{method:?}");
        assert_eq!(value.get(), 15, "{method:?}");
    }
}

fn double_and_mark(handles: (RawArray<u32>, SharedMemory)) -> u32 {
    let (array, seg) = handles;
    for i in 0..array.len() {
        let v = array.get(i).unwrap();
        array.set(i, v * 2).unwrap();
    }
    seg.write(0, b"seen").unwrap();
    array.to_vec().iter().sum()
}

#[test]
fn array_and_segment_handles_attach_in_the_child() {
    for method in METHODS {
        let array = RawArray::from_slice(&[1u32, 2, 3]).unwrap();
        let seg = SharedMemory::anonymous(64).unwrap();
        let handles = (
            RawArray::open(&array.handle()).unwrap(),
            SharedMemory::open(&seg.handle()).unwrap(),
        );
        let p = process(method, double_and_mark, handles);
        p.start().unwrap();
        assert_eq!(join_within(&p, WATCHDOG).unwrap(), 12, "{method:?}");
        assert_eq!(array.to_vec(), [2, 4, 6], "{method:?}");
        let mut buf = [0u8; 4];
        seg.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"seen", "{method:?}");
    }
}

/// The signals blocked in this process (`SigBlk` of `/proc/self/status`) and whether `fd` is open.
fn what_it_inherited(fd: i32) -> (u64, bool) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
    (blocked, open)
}

#[test]
fn a_spawned_child_starts_with_no_blocked_signal_and_none_of_our_close_on_exec_descriptors() {
    // A close-on-exec descriptor of ours, and a signal blocked in the starting thread (this
    // test's own thread: the harness runs each test on one of its own).
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: both sets are initialised by `sigemptyset` before use; the mask change is local
    // to this thread and undone below.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    let p = process(StartMethod::Spawn, what_it_inherited, fd);
    let started = p.start();
    // SAFETY: as above.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    started.unwrap();
    let (blocked, open) = join_within(&p, WATCHDOG).unwrap();
    assert_eq!(blocked, 0, "the spawned child starts with signals blocked");
    assert!(
        !open,
        "the spawned child inherited our close-on-exec descriptor {fd}"
    );
    drop(file);
}

/// The environment the target sees: `PATH`, and whether the start's own variables are gone.
fn environment(_: ()) -> (Option<String>, bool) {
    let private = std::env::vars().any(|(k, _)| k.starts_with("IPC_CORE_"));
    (std::env::var("PATH").ok(), private)
}

#[test]
fn a_spawned_child_sees_the_parents_environment_and_not_the_starts_own() {
    let p = process(StartMethod::Spawn, environment, ());
    p.start().unwrap();
    let (path, private) = join_within(&p, WATCHDOG).unwrap();
    assert_eq!(path, std::env::var("PATH").ok());
    assert!(!private, "the start's variables reached the target");
}

#[test]
fn start_twice_and_join_unstarted_are_errors() {
    let p = process(StartMethod::ForkServer, square, 2);
    assert!(matches!(p.join(), Err(JoinError::NotStarted)));
    assert!(matches!(
        p.join_timeout(Duration::from_millis(1)),
        Err(JoinError::NotStarted)
    ));
    assert!(matches!(p.terminate(), Err(SignalError::NotStarted)));
    assert!(!p.is_alive());
    assert_eq!(p.pid(), None);
    p.start().unwrap();
    assert!(matches!(p.start(), Err(StartError::AlreadyStarted)));
    assert_eq!(join_within(&p, WATCHDOG).unwrap(), 4);
    // The result was taken: a second join says so.
    assert!(matches!(p.join(), Err(JoinError::ResultMissing)));
}

#[test]
fn fork_is_refused_with_threads_unless_accepted() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let p = Process::builder()
        .start_method(StartMethod::Fork)
        .target(square, 2);
    match p.start() {
        Err(StartError::ForkWithThreads { threads }) => assert!(threads >= 2),
        other => panic!("expected ForkWithThreads, got {other:?}"),
    }
    drop(tx);
    helper.join().unwrap();
}

/// Forks three times from a process that starts with one thread (a re-executed child): alone,
/// with a second thread alive (refused: how many threads it saw), and after that thread ended.
fn forks_by_threads(_: ()) -> (bool, Option<usize>, bool) {
    let fork_and_join = || {
        let p = Process::builder()
            .start_method(StartMethod::Fork)
            .target(square, 3);
        p.start().is_ok() && join_within(&p, WATCHDOG).ok() == Some(9)
    };
    let alone = fork_and_join();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let refused = match Process::builder()
        .start_method(StartMethod::Fork)
        .target(square, 3)
        .start()
    {
        Err(StartError::ForkWithThreads { threads }) => Some(threads),
        _ => None,
    };
    drop(tx);
    helper.join().unwrap();
    (alone, refused, fork_and_join())
}

#[test]
fn a_single_threaded_process_forks_and_a_second_thread_is_seen() {
    let p = process(StartMethod::Spawn, forks_by_threads, ());
    p.start().unwrap();
    let (alone, refused, after) = join_within(&p, WATCHDOG).unwrap();
    assert!(alone, "a process with one thread could not fork");
    assert!(
        refused.is_some_and(|n| n >= 2),
        "a fork with a second thread alive was not refused: {refused:?}"
    );
    assert!(after, "no fork once the second thread had ended");
}

/// An argument whose decoding always fails in the child.
struct Refused;

impl Serialize for Refused {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for Refused {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("refused on purpose"))
    }
}

fn takes_refused(_: Refused) -> u8 {
    0
}

#[test]
fn argument_decode_failure_is_reported() {
    for method in METHODS {
        let p = process(method, takes_refused, Refused);
        p.start().unwrap();
        match join_within(&p, WATCHDOG) {
            // postcard reports custom errors without their text.
            Err(JoinError::ArgumentDecode { message }) => assert!(!message.is_empty()),
            other => panic!("{method:?}: expected ArgumentDecode, got {other:?}"),
        }
        assert_eq!(p.exit_code(), Some(1));
    }
}

/// An argument that cannot be serialised at all.
struct Unserialisable;

impl Serialize for Unserialisable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not today"))
    }
}

impl<'de> Deserialize<'de> for Unserialisable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unserialisable)
    }
}

fn takes_unserialisable(_: Unserialisable) {}

#[test]
fn an_unserialisable_argument_fails_at_start() {
    let p = Process::new(takes_unserialisable, Unserialisable);
    assert!(matches!(p.start(), Err(StartError::Encode(_))));
}

/// [`process`], named `name`.
fn named<A, R>(name: &str, method: StartMethod, f: fn(A) -> R, arg: A) -> Process<R>
where
    A: Serialize + serde::de::DeserializeOwned + Send + 'static,
    R: Serialize + serde::de::DeserializeOwned,
{
    Process::builder()
        .name(name)
        .start_method(method)
        .accept_fork_with_threads(true)
        .target(f, arg)
}

#[test]
fn names_and_parent_as_in_python() {
    for method in METHODS {
        let p = named("Alice", method, who_am_i, ());
        p.start().unwrap();
        let (name, parent_pid, parent_name) = join_within(&p, WATCHDOG).unwrap();
        assert_eq!(name, "Alice");
        assert_eq!(parent_pid, Some(std::process::id()));
        assert_eq!(parent_name.as_deref(), Some("MainProcess"));
    }
    let p = Process::new(square, 1);
    assert!(p.name().starts_with("Process-"), "{}", p.name());
}

/// Starts a child named "Bob" with each method from this process, and one without a name;
/// returns what each "Bob" said of itself and its parent, the unnamed one's name, and this
/// process's own name after all that.
fn starts_grandchildren(_: ()) -> (Vec<(String, Option<String>)>, String, String) {
    let bobs = METHODS
        .iter()
        .map(|&method| {
            let p = named("Bob", method, who_am_i, ());
            p.start().unwrap();
            let (name, _, parent_name) = join_within(&p, WATCHDOG).unwrap();
            (name, parent_name)
        })
        .collect();
    let unnamed = Process::new(square, 1).name().to_owned();
    (bobs, unnamed, ipc_core::current_process().name)
}

#[test]
fn a_grandchild_knows_its_parent_by_name() {
    for method in METHODS {
        let p = named("Alice", method, starts_grandchildren, ());
        p.start().unwrap();
        let (bobs, unnamed, me) = join_within(&p, WATCHDOG).unwrap();
        for (i, (name, parent)) in bobs.iter().enumerate() {
            assert_eq!(name, "Bob", "{method:?}, grandchild {i}");
            assert_eq!(
                parent.as_deref(),
                Some("Alice"),
                "{method:?}, grandchild {i}"
            );
        }
        assert_eq!(bobs.len(), METHODS.len());
        // A child's children are named after its own identity: `Process-N:1`.
        assert!(
            unnamed.starts_with("Process-") && unnamed.contains(':'),
            "{method:?}: {unnamed}"
        );
        assert_eq!(me, "Alice", "{method:?}");
    }
}

#[test]
fn active_children_lists_running_ones_and_reaps_the_rest() {
    let p = process(StartMethod::ForkServer, sleeps, 600_000);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    assert!(ipc_core::active_children().iter().any(|c| c.pid == pid));
    p.kill().unwrap();
    let deadline = Instant::now() + WATCHDOG;
    while ipc_core::active_children().iter().any(|c| c.pid == pid) {
        assert!(Instant::now() < deadline, "watchdog");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Reaped by active_children, the outcome is still there for join.
    assert!(matches!(
        join_within(&p, WATCHDOG),
        Err(JoinError::Signaled { signal: 9 })
    ));
}

fn active_pids(_: ()) -> Vec<u32> {
    ipc_core::active_children().iter().map(|c| c.pid).collect()
}

#[test]
fn a_fork_child_does_not_see_its_parents_children() {
    // Other tests start children concurrently: whatever they are, none is the fork child's.
    let sibling = process(StartMethod::ForkServer, sleeps, 600_000);
    sibling.start().unwrap();
    let child = process(StartMethod::Fork, active_pids, ());
    child.start().unwrap();
    let seen = join_within(&child, WATCHDOG).unwrap();
    sibling.kill().unwrap();
    let _ = join_within(&sibling, WATCHDOG);
    assert!(
        seen.is_empty(),
        "the fork child listed its parent's children {seen:?}"
    );
}

#[derive(Serialize, Deserialize)]
struct Summer {
    upto: u64,
}

impl Runnable for Summer {
    type Output = (u64, String);
    fn run(self) -> (u64, String) {
        ((1..=self.upto).sum(), ipc_core::current_process().name)
    }
}

#[test]
fn the_runnable_form_runs_with_each_method() {
    for method in METHODS {
        let p = Process::builder()
            .name("summer")
            .start_method(method)
            .accept_fork_with_threads(true)
            .runnable(Summer { upto: 10 });
        p.start().unwrap();
        assert_eq!(
            join_within(&p, WATCHDOG).unwrap(),
            (55, "summer".to_string())
        );
    }
}

#[test]
fn global_default_method_is_forkserver() {
    // Read-only: changing the global default would race with the other tests.
    assert_eq!(ipc_core::get_start_method(), StartMethod::ForkServer);
    assert_eq!(
        Process::new(square, 1).start_method(),
        StartMethod::ForkServer
    );
}

// ---- Daemons die with their parent, however it dies. ----

fn method_from_env() -> StartMethod {
    match std::env::var("IPC_TEST_METHOD").as_deref() {
        Ok("fork") => StartMethod::Fork,
        Ok("spawn") => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    }
}

/// Child role: starts a daemon that would sleep forever, prints its pid, and waits to be killed.
#[test]
#[ignore]
fn role_daemon_parent() {
    let method = method_from_env();
    let daemon = Process::builder()
        .daemon(true)
        .start_method(method)
        .accept_fork_with_threads(true)
        .target(sleeps, 3_600_000);
    daemon.start().unwrap();
    let other = Process::builder()
        .start_method(method)
        .accept_fork_with_threads(true)
        .target(sleeps, WATCHDOG.as_millis() as u64);
    other.start().unwrap();
    println!("NON_DAEMON_PID {}", other.pid().unwrap());
    println!("DAEMON_PID {}", daemon.pid().unwrap());
    std::thread::sleep(WATCHDOG);
}

#[test]
fn a_daemon_dies_when_its_parent_is_killed() {
    for (method, name) in [
        (StartMethod::Fork, "fork"),
        (StartMethod::Spawn, "spawn"),
        (StartMethod::ForkServer, "forkserver"),
    ] {
        let _ = method;
        let mut parent = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "role_daemon_parent", "--ignored", "--nocapture"])
            .env("IPC_TEST_METHOD", name)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = parent.stdout.take().unwrap();
        let mut pid = None;
        let mut non_daemon = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(p) = line.strip_prefix("NON_DAEMON_PID ") {
                non_daemon = ProcessIdentity::of_pid(p.trim().parse::<u32>().unwrap()).unwrap();
            }
            if let Some(p) = line.strip_prefix("DAEMON_PID ") {
                pid = Some(p.trim().parse::<u32>().unwrap());
                break;
            }
        }
        let daemon = ProcessIdentity::of_pid(pid.expect("the parent role printed no pid"))
            .expect("/proc is readable")
            .expect("the daemon runs");
        assert!(daemon.is_alive());
        parent.kill().unwrap();
        parent.wait().unwrap();
        let deadline = Instant::now() + WATCHDOG;
        while daemon.is_alive() {
            assert!(
                Instant::now() < deadline,
                "{name}: the daemon outlived its parent"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // A non-daemon child outlives its parent, as in Python; then it is ours to clean up.
        let non_daemon = non_daemon.expect("the non-daemon child runs");
        let survived = non_daemon.is_alive();
        // SAFETY: kill has no memory effects; the identity was alive just above, and the
        // process is an orphan this test started.
        unsafe { libc::kill(non_daemon.pid() as i32, libc::SIGKILL) };
        assert!(
            survived,
            "{name}: the non-daemon child died with its parent"
        );
    }
}

// ---- The fork server dies: its children's status is lost, not waited for forever. ----

/// The fork server among this process's children (its environment names its role).
fn find_fork_server() -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat[stat.rfind(')')? + 1..]
                .split_ascii_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let is_server = environ
                .split(|&b| b == 0)
                .any(|var| var == b"IPC_CORE_ROLE=forkserver");
            (ppid == me && is_server).then_some(pid)
        })
}

/// Child role: kills its own fork server while a child of it runs.
#[test]
#[ignore]
fn role_fork_server_killed() {
    let p = process(StartMethod::ForkServer, sleeps_then_exits, 500);
    p.start().unwrap();
    let server = find_fork_server().expect("a fork server runs");
    // SAFETY: kill has no memory effects; `server` is our own child process.
    assert_eq!(unsafe { libc::kill(server as i32, libc::SIGKILL) }, 0);
    // The orphaned child still runs; join waits for it, then says its status is lost.
    match join_within(&p, WATCHDOG) {
        Err(JoinError::StatusLost) => {}
        other => panic!("expected StatusLost, got {other:?}"),
    }
    assert!(!p.is_alive());
    assert_eq!(p.exit_code(), None);
    // The next start brings up a new server.
    let q = process(StartMethod::ForkServer, square, 5);
    q.start().unwrap();
    assert_eq!(join_within(&q, WATCHDOG).unwrap(), 25);
    println!("ROLE_OK");
}

#[test]
fn a_dead_fork_server_loses_status_and_is_replaced() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "role_fork_server_killed",
            "--ignored",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: the role did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        status.success() && out.contains("ROLE_OK"),
        "{status}\n{out}"
    );
}

#[test]
fn process_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Process<u32>>();
    check::<Process<Vec<String>>>();
}

fn sleep_forever(_: ()) {
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[test]
fn terminate_from_another_thread_while_joining() {
    let p = std::sync::Arc::new(ipc_core::Process::new(sleep_forever, ()));
    p.start().unwrap();
    let joiner = {
        let p = std::sync::Arc::clone(&p);
        std::thread::spawn(move || p.join_timeout(std::time::Duration::from_secs(60)))
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    // A join in progress must not keep another thread from signalling the child.
    p.terminate().unwrap();
    let r = joiner.join().unwrap();
    assert!(
        matches!(r, Err(ipc_core::JoinError::Signaled { signal: 15 })),
        "{r:?}"
    );
    assert_eq!(p.exit_code(), Some(-15));
}

#[test]
fn a_runnable_is_named_after_its_type() {
    let p = Process::from_runnable(Summer { upto: 3 });
    assert!(p.name().starts_with("Summer-"), "{}", p.name());
    p.start().unwrap();
    let (sum, name) = join_within(&p, WATCHDOG).unwrap();
    assert_eq!(sum, 6);
    assert_eq!(name, p.name());
}

fn my_start_method(_: ()) -> StartMethod {
    ipc_core::get_start_method()
}

#[test]
fn a_child_keeps_the_start_method_that_started_it() {
    for method in METHODS {
        let p = process(method, my_start_method, ());
        p.start().unwrap();
        assert_eq!(join_within(&p, WATCHDOG).unwrap(), method);
    }
}

fn sleeps_then_marks(path: String) {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(path, b"done").unwrap();
}

/// Child role: a program with `init` that starts a non-daemon child and returns at once.
#[test]
#[ignore]
fn role_returns_with_a_child_running() {
    let Ok(path) = std::env::var("IPC_TEST_MARK") else {
        return;
    };
    ipc_core::init();
    let p = Process::new(sleeps_then_marks, path);
    p.start().unwrap();
    // Returning ends the process: the exit hook of `init` joins the child first.
}

#[test]
fn a_program_waits_for_its_non_daemon_children_at_exit() {
    let path = std::env::temp_dir().join(format!("ipc-test-mark-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "role_returns_with_a_child_running",
            "--ignored",
            "--test-threads=1",
        ])
        .env("IPC_TEST_MARK", &path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(s) = parent.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: the program did not exit"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success());
    // The child wrote its mark before the program's exit completed.
    let mark = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(mark.unwrap(), b"done");
}

#[test]
fn interrupt_sends_sigint() {
    for method in METHODS {
        let p = process(method, sleeps, WATCHDOG.as_millis() as u64);
        p.start().unwrap();
        p.interrupt().unwrap();
        assert!(matches!(
            join_within(&p, WATCHDOG),
            Err(JoinError::Signaled { signal: 2 })
        ));
        assert_eq!(p.exit_code(), Some(-2));
    }
}

fn waits_for_parent(mark: String) {
    let parent = ipc_core::parent_process().expect("started by a parent");
    // The parent is alive for now: a short join times out.
    if parent.join_timeout(Duration::from_millis(10)) {
        std::fs::write(&mark, b"parent ended too early").unwrap();
        return;
    }
    // Tell the parent it may end now.
    std::fs::write(format!("{mark}.ready"), b"").unwrap();
    let ended = parent.join_timeout(WATCHDOG);
    std::fs::write(&mark, if ended { &b"joined"[..] } else { b"timed out" }).unwrap();
}

/// Child role: starts a child that joins this process, then returns at once.
#[test]
#[ignore]
fn role_parent_of_a_joiner() {
    let Ok(mark) = std::env::var("IPC_TEST_MARK") else {
        return;
    };
    let ready = format!("{mark}.ready");
    let p = Process::new(waits_for_parent, mark);
    p.start().unwrap();
    // End only once the child has seen this process alive.
    let deadline = Instant::now() + WATCHDOG;
    while std::fs::metadata(&ready).is_err() {
        assert!(
            Instant::now() < deadline,
            "watchdog: the child never got ready"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = std::fs::remove_file(&ready);
}

#[test]
fn a_child_can_join_its_parent() {
    let mark = std::env::temp_dir().join(format!("ipc-test-parent-join-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "role_parent_of_a_joiner",
            "--ignored",
            "--test-threads=1",
        ])
        .env("IPC_TEST_MARK", &mark)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WATCHDOG;
    let text = loop {
        if let Ok(t) = std::fs::read(&mark) {
            if !t.is_empty() {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: the child never wrote its mark"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&mark);
    assert_eq!(String::from_utf8_lossy(&text), "joined");
}
