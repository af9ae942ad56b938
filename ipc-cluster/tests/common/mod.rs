//! Helpers for the cluster's multi-process tests. A host (or a master, or a queue owner) is an
//! `#[ignore]` test of the same binary, re-run with `--exact NAME --ignored`, told what to do
//! through environment variables; everything runs on 127.0.0.1, every wait is bounded.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use ipc_cluster::{Node, ServeOptions};

/// What a child is asked to do: `key=value;key=value`.
pub const SPEC: &str = "IPC_CLUSTER_TEST_SPEC";
/// A tag every process of one test carries in its environment (inherited by the hosts' pool
/// workers), so the test can tell whether any of them outlived it.
pub const TAG: &str = "IPC_CLUSTER_TEST_TAG";

/// A port on 127.0.0.1 that nothing listens on now, below the ephemeral range (so no outgoing
/// connection takes it meanwhile) and random (so tests running at once pick different ones).
pub fn free_port() -> u16 {
    loop {
        let port = 20_000 + (ipc_core::random_u128() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A fresh tag and job name for one test.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{:012x}",
        ipc_core::random_u128() as u64 & 0xffff_ffff_ffff
    )
}

/// The master's node, listening on a fresh port; returns it and the endpoint to connect to.
pub fn master_node() -> (Node, String) {
    let port = free_port();
    let node = Node::builder()
        .listen(format!("tcp/127.0.0.1:{port}"))
        .open()
        .expect("master node");
    (node, format!("tcp/127.0.0.1:{port}"))
}

/// Parses a spec.
pub fn spec_get(spec: &str, key: &str) -> Option<String> {
    spec.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// The spec this child runs with, if it runs as a child.
pub fn child_spec() -> Option<String> {
    std::env::var(SPEC).ok()
}

/// Starts the ignored test `role` of the executable `exe` with `spec`, tagged with `tag`.
pub fn spawn_role_of(exe: &Path, role: &str, spec: &str, tag: &str) -> Proc {
    let child = Command::new(exe)
        .args([
            "--exact",
            role,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SPEC, spec)
        .env(TAG, tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a child role");
    Proc::new(child)
}

/// Starts the ignored test `role` of this binary.
pub fn spawn_role(role: &str, spec: &str, tag: &str) -> Proc {
    spawn_role_of(&std::env::current_exe().unwrap(), role, spec, tag)
}

/// A worker host: `host_role` with this endpoint, job, name and processes.
pub fn spawn_host(endpoint: &str, job: &str, name: &str, processes: usize, tag: &str) -> Proc {
    spawn_role(
        "host_role",
        &format!("connect={endpoint};job={job};name={name};processes={processes}"),
        tag,
    )
}

/// The body of every binary's `host_role`: serve, print how it ended, exit.
pub fn host_role() {
    let Some(spec) = child_spec() else { return };
    let node = Node::builder()
        .connect(spec_get(&spec, "connect").unwrap())
        .open()
        .unwrap();
    let processes: usize = spec_get(&spec, "processes").unwrap().parse().unwrap();
    let opts = ServeOptions::new()
        .job(spec_get(&spec, "job").unwrap())
        .name(spec_get(&spec, "name").unwrap())
        .wait_master(Duration::from_secs(20));
    let code = match opts.serve(&node, processes) {
        Ok(end) => {
            println!("SERVE-END {end:?}");
            0
        }
        Err(e) => {
            println!("SERVE-ERROR {e}");
            3
        }
    };
    drop(node);
    std::process::exit(code);
}

/// A child process: its stdout lines arrive on a channel (read by a thread, so the child never
/// blocks on a full pipe); killed and reaped if the test ends early.
pub struct Proc {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn new(mut child: Child) -> Self {
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            // Forward the child's diagnostics, prefixed, for a failing test's log.
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            for l in s.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("[child] {l}");
            }
        });
        Self {
            child: Some(child),
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits (at most `limit`) for a stdout line holding `prefix`; returns the rest of it.
    pub fn expect_line(&self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("watchdog: no `{prefix}` line within {limit:?}"));
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].trim().to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("watchdog: no `{prefix}` line within {limit:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the child exited before printing `{prefix}`")
                }
            }
        }
    }

    /// Waits (at most `limit`) for the child to exit; its status.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("watchdog: the child did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let child = self.child.as_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Aborts the whole test binary if the test is still running after `limit` (its children see
/// their master's connection close and exit). Disarmed when dropped.
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    pub fn arm(limit: Duration, what: &'static str) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Pids of processes whose environment holds `TAG=tag`.
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("{TAG}={tag}");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                // A zombie has an empty environ; a live tagged process is what we look for.
                found.push(pid);
            }
        }
    }
    found
}

/// Asserts that no process of the test outlives it (waiting at most 10 s for exits in
/// progress).
pub fn assert_no_tagged_processes(tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = tagged_processes(tag);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("processes of this test outlived it: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ipc-*` segments in `/dev/shm` changed since `since` that no process maps or holds open.
fn orphan_segments(since: SystemTime) -> Vec<String> {
    let mut fresh = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let recent = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if name.starts_with(ipc_core::NAME_PREFIX) && recent {
                fresh.push(name);
            }
        }
    }
    if fresh.is_empty() {
        return fresh;
    }
    let mut held = std::collections::HashSet::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let p = e.path();
            if let Ok(maps) = std::fs::read_to_string(p.join("maps")) {
                for n in &fresh {
                    if maps.contains(n.as_str()) {
                        held.insert(n.clone());
                    }
                }
            }
            if let Ok(fds) = std::fs::read_dir(p.join("fd")) {
                for fd in fds.flatten() {
                    if let Ok(t) = std::fs::read_link(fd.path()) {
                        let t = t.to_string_lossy();
                        for n in &fresh {
                            if t.contains(n.as_str()) {
                                held.insert(n.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    fresh.retain(|n| !held.contains(n));
    fresh
}

/// Asserts that no shared-memory segment created since `since` is left behind by a dead
/// process (waiting at most 10 s for the cleanup trackers, which unlink asynchronously).
pub fn assert_no_orphan_segments(since: SystemTime) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = orphan_segments(since);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("shared-memory segments left behind: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls a future to completion on this thread (for `.await`ing an `AsyncResult`).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes; the time it took, or `None`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
