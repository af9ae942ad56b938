//! `Supervisor`: watches any number of started [`Process`]es through their pidfds (so an exit is
//! noticed at once, not by polling seconds later) and reports each exit with Python's exit code.
//! What to do about it — fail the task a worker held, start a replacement — is the caller's
//! policy; `ipc_pool::Pool` is built on it, and so can a pool of your own.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Process;

use crate::platform;
use crate::primitive::{AtomicBool, Ordering};

/// How often the watcher picks up newly watched processes and checks for shutdown.
const SLICE: Duration = Duration::from_millis(20);
/// How long the watcher waits for an exit status after a pidfd reported the exit.
const STATUS_WAIT: Duration = Duration::from_secs(2);

impl ProcessExit {
    /// How the process ended, in words: `killed by signal 9 (SIGKILL)`, `exited with code 3`.
    pub fn describe(&self) -> String {
        Self::describe_code(self.exit_code)
    }

    /// How a process with Python's `exit_code` ended, in words (see [`describe`](Self::describe)).
    pub fn describe_code(exit_code: Option<i32>) -> String {
        match exit_code {
            Some(0) => "exited normally".into(),
            Some(code) if code < 0 => {
                let signal = -code;
                let name = match signal {
                    libc::SIGKILL => " (SIGKILL)",
                    libc::SIGTERM => " (SIGTERM)",
                    libc::SIGSEGV => " (SIGSEGV)",
                    libc::SIGABRT => " (SIGABRT)",
                    libc::SIGBUS => " (SIGBUS)",
                    _ => "",
                };
                format!("killed by signal {signal}{name}")
            }
            Some(code) => format!("exited with code {code}"),
            None => "ended (its exit status could not be learned)".into(),
        }
    }
}

/// A watched process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExit {
    /// The id the caller gave to [`Supervisor::watch`].
    pub id: u64,
    /// The process's pid.
    pub pid: u32,
    /// Python's exit code: `0` success, `1` panic or error, `N` from `exit(N)`, `-N` killed by
    /// signal N; `None` if the status could not be learned.
    pub exit_code: Option<i32>,
}

/// Exit codes of a process whose result type is erased.
trait Watched: Send + Sync {
    fn exit_code(&self) -> Option<i32>;
}

impl<R: Send> Watched for Process<R> {
    fn exit_code(&self) -> Option<i32> {
        Process::exit_code(self)
    }
}

struct Entry {
    pid: u32,
    /// The process's own pidfd (its sentinel), open as long as `process` lives: no duplicate,
    /// so a watched worker costs no extra descriptor.
    fd: RawFd,
    process: Arc<dyn Watched>,
}

struct Shared {
    watched: Mutex<HashMap<u64, Entry>>,
    stop: AtomicBool,
}

/// Watches worker processes and reports each exit at once.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ipc_core::Process;
/// use ipc_core::process::Supervisor;
///
/// fn work(_: ()) {}
///
/// let sup = Supervisor::new()?;
/// let p = Arc::new(Process::new(work, ()));
/// p.start()?;
/// sup.watch(7, Arc::clone(&p))?;
/// let exit = sup.next_exit(Duration::from_secs(10)).expect("an exit");
/// assert_eq!((exit.id, exit.exit_code), (7, Some(0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Supervisor {
    shared: Arc<Shared>,
    exits: Mutex<Receiver<ProcessExit>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.shared.watched.lock().map(|w| w.len()).unwrap_or(0);
        f.debug_struct("Supervisor").field("watched", &n).finish()
    }
}

impl Supervisor {
    /// Starts the watcher thread.
    pub fn new() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            watched: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let (tx, exits) = mpsc::channel();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ipc-pool-supervisor".into())
            .spawn(move || watch_loop(&s, &tx))?;
        Ok(Self {
            shared,
            exits: Mutex::new(exits),
            thread: Some(thread),
        })
    }

    /// Watches a started process under `id`; its exit will be reported once.
    pub fn watch<R: Send + Sync + 'static>(
        &self,
        id: u64,
        process: Arc<Process<R>>,
    ) -> std::io::Result<()> {
        let pid = process
            .pid()
            .ok_or_else(|| std::io::Error::other("the process has not been started"))?;
        // The process's own pidfd, taken when it was created: it names this very process even
        // if it has already ended (a pid looked up now might have been reused).
        let fd = process
            .sentinel()
            .ok_or_else(|| std::io::Error::other("the process has no pidfd (Linux 5.3 or later)"))?
            .as_raw_fd();
        let mut w = self
            .shared
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        w.insert(id, Entry { pid, fd, process });
        Ok(())
    }

    /// Waits at most `timeout` for the next exit.
    pub fn next_exit(&self, timeout: Duration) -> Option<ProcessExit> {
        self.exits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(timeout)
            .ok()
    }

    /// The next exit already reported, without waiting.
    pub fn try_next_exit(&self) -> Option<ProcessExit> {
        self.exits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_recv()
            .ok()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // ORDERING: Release, pairs with the Acquire in `watch_loop`.
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch_loop(shared: &Shared, tx: &Sender<ProcessExit>) {
    // ORDERING: Acquire, pairs with the Release in `Drop`.
    while !shared.stop.load(Ordering::Acquire) {
        let snapshot: Vec<(u64, u32, std::os::fd::RawFd)> = {
            let w = shared.watched.lock().unwrap_or_else(|p| p.into_inner());
            w.iter().map(|(id, e)| (*id, e.pid, e.fd)).collect()
        };
        if snapshot.is_empty() {
            std::thread::sleep(SLICE);
            continue;
        }
        let fds: Vec<(i32, i16)> = snapshot.iter().map(|s| (s.2, libc::POLLIN)).collect();
        let revents = platform::poll(&fds, Some(SLICE)).unwrap_or_default();
        let ready = revents
            .iter()
            .enumerate()
            .filter(|(_, r)| **r != 0)
            .map(|(i, _)| i);
        for i in ready.collect::<Vec<_>>() {
            let (id, pid, _) = snapshot[i];
            let entry = shared
                .watched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let Some(entry) = entry else { continue };
            // The pidfd says the process is gone; its status may take a moment to arrive (a
            // fork-server child's status comes from the server).
            let until = Instant::now() + STATUS_WAIT;
            let mut code = entry.process.exit_code();
            while code.is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
                code = entry.process.exit_code();
            }
            if tx
                .send(ProcessExit {
                    id,
                    pid,
                    exit_code: code,
                })
                .is_err()
            {
                return;
            }
        }
    }
}
