//! Child processes for multi-process tests: the test binary re-executed to run one `#[ignore]`d
//! role test, with its input in an environment variable.
#![allow(dead_code, unreachable_pub)]

pub mod asynch;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that carries a child's input.
pub const ARG_ENV: &str = "IPC_QUEUE_TEST_ARG";

/// Hex-encodes a value with the workspace codec.
pub fn encode<T: serde::Serialize>(value: &T) -> String {
    let bytes = ipc_core::codec::encode(value).expect("encodable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes the child's input.
pub fn arg<T: serde::de::DeserializeOwned>() -> T {
    let hex = std::env::var(ARG_ENV).expect("child input");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    ipc_core::codec::decode(&bytes).expect("decodable input")
}

/// A running child role; killed and reaped on drop.
pub struct Role {
    child: Child,
}

/// Starts the `#[ignore]` test `name` of this binary as a child process.
pub fn spawn<T: serde::Serialize>(name: &str, input: &T) -> Role {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ARG_ENV, encode(input))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child");
    Role { child }
}

impl Role {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (at most `limit`, a watchdog) and returns whether the child succeeded.
    pub fn wait(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            if Instant::now() >= end {
                self.kill();
                panic!("child did not finish within the watchdog limit");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than `limit` (a watchdog, not a
/// timing assertion: the limit is far above any expected run time).
pub fn watchdog<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("watchdog: the test hung")
}

/// Raises this process's soft limit on open descriptors to its hard limit (each handle attached
/// to a segment holds a descriptor; tests that attach thousands of handles need more than the
/// usual soft limit of 1,024). Returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    lim.rlim_cur
}

/// The names in `/dev/shm` of spill segments (large serde messages of a queue) whose first
/// bytes hold `marker`: a test puts messages that start with a marker of its own and so finds
/// its own spills, whatever other tests or programs create meanwhile.
pub fn spills_holding(marker: &[u8]) -> Vec<String> {
    use std::io::Read;
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(ipc_core::NAME_PREFIX) {
                return None;
            }
            let mut head = vec![0u8; 4096];
            let n = std::fs::File::open(e.path()).ok()?.read(&mut head).ok()?;
            let head = &head[..n];
            let ours =
                head.starts_with(b"IPCQSPL1") && head.windows(marker.len()).any(|w| w == marker);
            ours.then_some(name)
        })
        .collect()
}

/// Waits (at most `limit`, a watchdog) until no spill segment holding `marker` is left in
/// `/dev/shm`; panics with the names left otherwise.
pub fn wait_until_no_spills(marker: &[u8], limit: Duration) {
    let end = Instant::now() + limit;
    loop {
        let left = spills_holding(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < end,
            "spill segments left in /dev/shm: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
