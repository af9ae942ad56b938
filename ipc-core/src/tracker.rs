//! The cleanup tracker: removes the names of named segments whose creator died.
//!
//! Python's `resource_tracker` in spirit, with its best-known bug avoided (CPython gh-82300):
//! only segments this process *created and owns* are registered, never ones it merely opened,
//! so the tracker never unlinks a segment that another live process owns.
//!
//! The first time a process creates a named segment it starts a tracker: the same executable,
//! re-executed with `IPC_CORE_ROLE=tracker` (dispatched before `main` by the constructor in
//! `role.rs`), whose standard input is one end of a Unix socket pair. The creator writes
//! `R <name>` when it creates a segment and `U <name>` when it unlinks one. When the creator
//! exits — normally, by panic, or by SIGKILL — the kernel closes its end, the tracker reads
//! end-of-file, unlinks every name still registered, and exits. The tracker ignores SIGINT,
//! SIGTERM and SIGHUP so that a Ctrl-C aimed at the process group does not stop it before it has
//! cleaned up.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::platform;

/// The environment variable value naming the tracker role.
pub(crate) const ROLE: &str = "tracker";

struct Conn {
    /// The process that started this tracker: a forked child must start its own.
    owner_pid: u32,
    stream: Option<UnixStream>,
}

static CONN: Mutex<Option<Conn>> = Mutex::new(None);

fn start() -> Option<UnixStream> {
    let (ours, theirs) = UnixStream::pair().ok()?;
    let exe = std::env::current_exe().ok()?;
    crate::role::ensure_linked();
    let child = Command::new(exe)
        .env(crate::role::ROLE_ENV, ROLE)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    // The tracker outlives us by design; it is reaped by init when it exits.
    drop(child);
    Some(ours)
}

fn send(line: &str) {
    let mut guard = match CONN.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let pid = platform::getpid();
    if guard.as_ref().is_none_or(|c| c.owner_pid != pid) {
        // A forked child inherits its parent's connection: leave that one to the parent
        // (forgetting it without closing would keep the parent's tracker waiting on us).
        if let Some(old) = guard.take() {
            if let Some(s) = old.stream {
                drop(s);
            }
        }
        *guard = Some(Conn {
            owner_pid: pid,
            stream: start(),
        });
    }
    if let Some(conn) = guard.as_mut() {
        if let Some(stream) = conn.stream.as_mut() {
            if send_nosignal(stream, line.as_bytes()).is_err() {
                conn.stream = None;
            }
        }
    }
}

fn send_nosignal(stream: &mut UnixStream, bytes: &[u8]) -> std::io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        // SAFETY: the pointer and length describe the unsent tail of `bytes`; MSG_NOSIGNAL keeps
        // a dead tracker from raising SIGPIPE in this process.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes[sent..].as_ptr().cast(),
                bytes.len() - sent,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        sent += n as usize;
    }
    stream.flush()
}

/// Registers a name this process created and owns.
pub(crate) fn register(name: &str) {
    send(&format!("R {name}\n"));
}

/// Unregisters a name (it was unlinked, or ownership was given up).
pub(crate) fn unregister(name: &str) {
    send(&format!("U {name}\n"));
}

/// The tracker's main loop; runs in the tracker process and never returns.
pub(crate) fn run() -> ! {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: installing SIG_IGN has no preconditions; the tracker is single-threaded here.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // SAFETY: fd 0 is the socket the creator passed as our standard input; nothing else in this
    // process owns it.
    let input = unsafe { UnixStream::from_raw_fd(0) };
    let mut names = std::collections::HashSet::new();
    let reader = BufReader::new(input);
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let Ok(line) = std::str::from_utf8(&line) else {
            continue;
        };
        if let Some(name) = line.strip_prefix("R ") {
            names.insert(name.to_owned());
        } else if let Some(name) = line.strip_prefix("U ") {
            names.remove(name);
        }
    }
    for name in &names {
        let _ = platform::shm_unlink(name);
    }
    std::process::exit(0);
}

/// In a freshly forked child: closes the connection inherited from the parent without a word to
/// its tracker, so that the parent's tracker still sees end-of-file when the parent dies, however
/// long this child lives. The child starts its own tracker if it creates named segments.
pub(crate) fn forget_inherited() {
    if let Ok(mut guard) = CONN.try_lock() {
        if guard
            .as_ref()
            .is_some_and(|c| c.owner_pid != platform::getpid())
        {
            *guard = None;
        }
    }
}
