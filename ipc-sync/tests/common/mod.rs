//! Helpers for multi-process tests: a child is an `#[ignore]` test of the same binary, re-run
//! with `--exact <name> --ignored`; objects travel as hex-encoded handles in environment
//! variables.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The longest any test waits for anything before it fails instead of hanging.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(60);

/// Encodes an object (its handle) for a child's environment.
pub(crate) fn encode<T: Serialize>(value: &T) -> String {
    let bytes = ipc_core::codec::encode(value).expect("encode handle");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes an object passed by [`encode`] in the environment variable `var`.
pub(crate) fn from_env<T: DeserializeOwned>(var: &str) -> T {
    let hex = std::env::var(var).unwrap_or_else(|_| panic!("{var} not set"));
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    ipc_core::codec::decode(&bytes).expect("decode handle")
}

/// A child process running the ignored test `name`; killed and reaped on drop.
pub(crate) struct ChildTest {
    child: Option<Child>,
    name: &'static str,
}

impl ChildTest {
    /// Starts the ignored test `name` with the given environment.
    pub(crate) fn start(name: &'static str, env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: Some(cmd.spawn().expect("spawn child test")),
            name,
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits (at most [`WATCHDOG`]) and asserts that the child test passed.
    pub(crate) fn join(mut self) {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(status.success(), "child `{}` failed: {status}", self.name);
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child `{}` still running after the watchdog", self.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGSTOP and returns once the kernel reports every thread of the child stopped
    /// (or panics after [`WATCHDOG`]).
    pub(crate) fn stop(&self) {
        let pid = self.pid();
        signal(pid, libc::SIGSTOP);
        let deadline = Instant::now() + WATCHDOG;
        while !all_threads_stopped(pid) {
            assert!(Instant::now() < deadline, "child {pid} did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends SIGCONT.
    pub(crate) fn resume(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// SIGKILLs the child and reaps it.
    pub(crate) fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for ChildTest {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, sig: i32) {
    assert_ne!(pid, 0);
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether every thread of `pid` is in the stopped state (`T`) according to `/proc`.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        if stat[close + 1..].split_ascii_whitespace().next() != Some("T") {
            return false;
        }
        any = true;
    }
    any
}

/// Lowers this process's descriptor limit and opens `/dev/null` until `EMFILE`, so that no
/// further descriptor (not even one to read `/proc`) can be opened. Returns the descriptors
/// (keep them open). Panics if the limit is not reached.
pub(crate) fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_cur.min(64);
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open /dev/null: {e}"),
        }
        assert!(files.len() < 4096, "the descriptor limit was not reached");
    }
    let proc_read = std::fs::File::open("/proc/self/stat");
    assert_eq!(
        proc_read.err().and_then(|e| e.raw_os_error()),
        Some(libc::EMFILE),
        "/proc must be unreadable for the scenario to mean anything"
    );
    files
}

/// The lock word (`LockState`'s first 8 bytes) naming the running process `pid`, with its true
/// start-time tag: a live holder.
pub(crate) fn live_holder_word(pid: u32) -> [u8; 8] {
    let id = ipc_core::ProcessIdentity::of_pid(pid)
        .expect("/proc is readable")
        .expect("the process runs");
    (u64::from(id.pid()) | (u64::from(id.start_tag()) << 32)).to_ne_bytes()
}

/// The pid named by a lock word read with [`peek`].
pub(crate) fn holder_pid(word: &[u8]) -> u32 {
    u32::from_ne_bytes(word[..4].try_into().expect("a lock word")) & 0x3fff_ffff
}

/// Polls `cond` every 2 ms until it holds; panics (naming `what`) after [`WATCHDOG`].
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !cond() {
        assert!(Instant::now() < deadline, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `f` on a thread and returns its result, or panics after [`WATCHDOG`].
pub(crate) fn with_watchdog<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG)
        .expect("watchdog: the operation did not finish")
}

/// Overwrites bytes of an object's shared state, as a hostile or buggy peer could: `offset`
/// counts from the start of the payload (the state).
pub(crate) fn poke(handle: &ipc_core::ObjectHandle, offset: usize, bytes: &[u8]) {
    let shm = ipc_core::SharedMemory::attach(&handle.segment).expect("attach");
    let payload = ipc_core::raw::header::payload_offset(64);
    // SAFETY: the tests poke state words (atomics) and never while a guard of the object lends
    // its data out.
    unsafe { shm.write_unguarded(payload + offset, bytes) }.expect("write");
}

/// Reads bytes of an object's shared state.
pub(crate) fn peek(handle: &ipc_core::ObjectHandle, offset: usize, len: usize) -> Vec<u8> {
    let shm = ipc_core::SharedMemory::attach(&handle.segment).expect("attach");
    let payload = ipc_core::raw::header::payload_offset(64);
    let mut buf = vec![0u8; len];
    // SAFETY: as in `poke`.
    unsafe { shm.read_unguarded(payload + offset, &mut buf) }.expect("read");
    buf
}
