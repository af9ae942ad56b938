//! Helpers for multi-process tests: a child is an `#[ignore]` test of the same binary, re-run
//! with `--exact NAME --ignored`, receiving its inputs through environment variables.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The environment variable carrying a child's input.
pub const INPUT: &str = "IPC_TEST_INPUT";

/// Hex of the codec encoding of `value`.
pub fn to_hex<T: Serialize>(value: &T) -> String {
    ipc_core::codec::encode(value)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes what `to_hex` produced.
pub fn from_hex<T: DeserializeOwned>(hex: &str) -> T {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    ipc_core::codec::decode(&bytes).unwrap()
}

/// The input a child test received, if it runs as a child.
pub fn child_input<T: DeserializeOwned>() -> Option<T> {
    std::env::var(INPUT).ok().map(|h| from_hex(&h))
}

/// Starts the ignored test `name` of this binary as a child process with `input`, its stdout
/// piped.
pub fn spawn_child<T: Serialize>(name: &str, input: &T) -> KilledOnDrop {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INPUT, to_hex(input))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    KilledOnDrop(Some(child))
}

/// A child process that is killed and reaped if the test ends early.
pub struct KilledOnDrop(pub Option<Child>);

impl KilledOnDrop {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Reads stdout lines until one holds `prefix`; returns the rest of that line, leaving the
    /// pipe for further reads.
    pub fn read_tagged_keep(&mut self, prefix: &str) -> String {
        use std::io::Read;
        let out = self.child().stdout.as_mut().unwrap();
        let mut line = Vec::new();
        loop {
            let mut byte = [0u8; 1];
            let n = out.read(&mut byte).unwrap();
            assert!(n > 0, "child exited before printing `{prefix}`");
            if byte[0] != b'\n' {
                line.push(byte[0]);
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            if let Some(at) = text.find(prefix) {
                return text.trim_end()[at + prefix.len()..].to_owned();
            }
        }
    }

    /// Reads stdout lines until one starts with `prefix`; returns the rest of that line.
    pub fn read_tagged(&mut self, prefix: &str) -> String {
        let out = self.child().stdout.take().unwrap();
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap();
            assert!(n > 0, "child exited before printing `{prefix}`");
            // The harness prints `test NAME ... ` before the test's own output, on the same line.
            if let Some(at) = line.find(prefix) {
                let rest = line.trim_end()[at + prefix.len()..].to_owned();
                // Keep draining in the background so the child never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                        sink.clear();
                    }
                });
                return rest;
            }
        }
    }

    /// Waits for the child with a watchdog; panics if it does not exit in `limit`.
    pub fn wait_success(mut self, limit: Duration) {
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "child failed: {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("watchdog: child did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn kill9(&mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every millisecond until it holds or `limit` passes; returns the time it took.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Whether `python3` can run.
pub fn have_python() -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
