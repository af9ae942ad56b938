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
    let payload = ipc_core::header::payload_offset(64);
    // SAFETY: the tests poke state words (atomics) and never while a guard of the object lends
    // its data out.
    unsafe { shm.write_unguarded(payload + offset, bytes) }.expect("write");
}

/// Reads bytes of an object's shared state.
pub(crate) fn peek(handle: &ipc_core::ObjectHandle, offset: usize, len: usize) -> Vec<u8> {
    let shm = ipc_core::SharedMemory::attach(&handle.segment).expect("attach");
    let payload = ipc_core::header::payload_offset(64);
    let mut buf = vec![0u8; len];
    // SAFETY: as in `poke`.
    unsafe { shm.read_unguarded(payload + offset, &mut buf) }.expect("read");
    buf
}
