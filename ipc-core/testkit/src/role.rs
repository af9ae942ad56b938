//! Child roles: the test binary re-executed to run one `#[ignore]`d test, with its inputs
//! hex-encoded (the workspace codec) in environment variables.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::leftovers::TAG;
use crate::wait::WATCHDOG;

/// The environment variable that carries a child's input (see [`RoleBuilder::input`]).
pub const INPUT: &str = "IPC_TEST_INPUT";

/// Hex of the codec encoding of `value`: an object (its handle) for a child's environment.
pub fn encode<T: Serialize>(value: &T) -> String {
    let bytes = ipc_core::codec::encode(value).expect("encode a child's input");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes what [`encode`] produced.
pub fn decode<T: DeserializeOwned>(hex: &str) -> T {
    assert!(hex.len() % 2 == 0, "odd hex input");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    ipc_core::codec::decode(&bytes).expect("decode a child's input")
}

/// The value passed by [`RoleBuilder::env_encoded`] in the environment variable `var`; panics if
/// it is not set.
pub fn from_env<T: DeserializeOwned>(var: &str) -> T {
    let hex = std::env::var(var).unwrap_or_else(|_| panic!("{var} not set"));
    decode(&hex)
}

/// The input this process received, if it runs as a child role (`None` when the harness runs
/// the ignored test by itself, as `cargo test -- --ignored` does).
pub fn child_input<T: DeserializeOwned>() -> Option<T> {
    std::env::var(INPUT).ok().map(|hex| decode(&hex))
}

/// The input of this child role; panics if it runs other than as a child.
pub fn arg<T: DeserializeOwned>() -> T {
    from_env(INPUT)
}

/// Starts the ignored test `name` of this binary as a child with `input`.
pub fn spawn<T: Serialize>(name: &str, input: &T) -> Role {
    role(name).input(input).spawn()
}

/// Starts the ignored test `name` of this binary as a child with the environment variables
/// `env` (values made by [`encode`], read with [`from_env`]).
pub fn spawn_with_env(name: &str, env: &[(&str, String)]) -> Role {
    env.iter()
        .fold(role(name), |b, (var, value)| b.env(var, value))
        .spawn()
}

/// A child role to configure: the ignored test `name` of this binary (or of [`RoleBuilder::exe`]).
pub fn role(name: &str) -> RoleBuilder {
    RoleBuilder {
        name: name.to_owned(),
        exe: None,
        env: Vec::new(),
        log_stderr: false,
    }
}

/// How to start a child role; [`RoleBuilder::spawn`] starts it.
#[derive(Debug)]
pub struct RoleBuilder {
    name: String,
    exe: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    log_stderr: bool,
}

impl RoleBuilder {
    /// Runs the test of another executable (another build of the test binary).
    pub fn exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.exe = Some(exe.into());
        self
    }

    /// The input the child reads with [`arg`] or [`child_input`].
    pub fn input<T: Serialize>(self, value: &T) -> Self {
        self.env(INPUT, encode(value))
    }

    /// An environment variable holding `value` encoded, read with [`from_env`].
    pub fn env_encoded<T: Serialize>(self, var: &str, value: &T) -> Self {
        self.env(var, encode(value))
    }

    /// A plain environment variable.
    pub fn env(mut self, var: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((var.into(), value.into()));
        self
    }

    /// Tags the child (and whatever it starts, which inherits its environment) for
    /// [`crate::tagged_processes`].
    pub fn tag(self, tag: &str) -> Self {
        self.env(TAG, tag)
    }

    /// Collects the child's stderr and repeats it, prefixed, into this test's own output (which
    /// the harness shows for a failing test) instead of letting it through to the terminal.
    pub fn log_stderr(mut self) -> Self {
        self.log_stderr = true;
        self
    }

    /// Starts the child.
    pub fn spawn(self) -> Role {
        let exe = match self.exe {
            Some(exe) => exe,
            None => std::env::current_exe().expect("current_exe"),
        };
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            &self.name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(if self.log_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        for (var, value) in self.env {
            cmd.env(var, value);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn child role `{}`: {e}", self.name));
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                for l in s.lines().filter(|l| !l.trim().is_empty()) {
                    eprintln!("[child] {l}");
                }
            });
        }
        Role {
            child,
            name: self.name,
            lines,
        }
    }
}

/// Reads `out` line by line on a thread of its own, onto the returned channel; once the channel
/// is dropped it keeps draining, so that the child (or a process that inherited the pipe) never
/// blocks on it or meets a closed pipe.
fn read_lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// A running child role; killed and reaped when dropped (a test that fails early leaves no
/// process behind).
#[derive(Debug)]
pub struct Role {
    child: Child,
    name: String,
    lines: mpsc::Receiver<String>,
}

impl Role {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`, a watchdog) for a line of the child's stdout holding `prefix`;
    /// returns the rest of that line, trimmed. Earlier lines are passed over; later ones stay for
    /// the next call. The harness prints `test NAME ... ` before the test's own output on the
    /// same line, so the prefix may stand anywhere in the line.
    pub fn expect_line(&self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].trim().to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "watchdog: `{}` printed no `{prefix}` within {limit:?}",
                        self.name
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("`{}` exited before printing `{prefix}`", self.name)
                }
            }
        }
    }

    /// For a failing test's message: whether the child has exited (waiting at most `limit` for
    /// it to), with its status, and the lines of its stdout not yet read. Never panics.
    pub fn report(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let state = status.map_or_else(
            || format!("still running after {limit:?}"),
            |s| format!("exited ({s})"),
        );
        let lines: Vec<String> = self.lines.try_iter().collect();
        format!("`{}` {state}; its unread output: {lines:?}", self.name)
    }

    /// Waits (at most `limit`, a watchdog: past it the child is killed and the test fails) for
    /// the child to exit; its status.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("watchdog: `{}` did not exit within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (at most [`WATCHDOG`]) and asserts that the child test passed.
    pub fn join(mut self) {
        let status = self.wait(WATCHDOG);
        assert!(status.success(), "child `{}` failed: {status}", self.name);
    }

    /// SIGKILLs the child and reaps it (nothing happens if it is reaped already).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Sends SIGSTOP and returns once the kernel reports every thread of the child stopped
    /// (or panics after [`WATCHDOG`]).
    pub fn stop(&self) {
        let pid = self.pid();
        self.signal(libc::SIGSTOP);
        let deadline = Instant::now() + WATCHDOG;
        while !all_threads_stopped(pid) {
            assert!(Instant::now() < deadline, "child {pid} did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends SIGCONT.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        let pid = self.pid();
        // SAFETY: kill has no memory-safety preconditions; the pid is our child, not yet reaped
        // (only `wait` and `kill`, which take `&mut self`, reap it).
        let r = unsafe { libc::kill(pid as i32, sig) };
        assert_eq!(
            r,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.kill();
    }
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
