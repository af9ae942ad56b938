//! The cleanup tracker: removes the names of named segments whose creator died.
//!
//! Python's `resource_tracker` in spirit, with its best-known bug avoided (CPython gh-82300):
//! only segments this process *created and owns* are registered, never ones it merely opened,
//! so the tracker never unlinks a segment that another live process owns.
//!
//! The first time a process creates a named segment it starts a tracker: the same executable,
//! re-executed with `IPC_CORE_ROLE=tracker` (dispatched before `main` by the constructor in
//! `role.rs`), whose standard input is one end of a Unix socket pair. Registrations go into a
//! table in an anonymous shared segment that creator and tracker both map (one slot per name:
//! a state word and the name), so registering costs two plain stores and no system call, and
//! the tracker sleeps until it is needed. Names that do not fit the table travel over the
//! socket instead (`R <name>` / `U <name>` lines). When the creator exits — normally, by panic,
//! or by SIGKILL — the kernel closes its end of the socket, the tracker reads end-of-file,
//! unlinks every name still registered in the table or over the socket, and exits. The tracker
//! ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT and runs in a process group of its own, so that
//! a signal aimed at its creator's group does not stop it before it has cleaned up.
//!
//! ## A tracker that dies
//!
//! Before each registration, unregistration and named creation the creator checks its end of
//! the socket (one `poll`, no wait): a tracker that has died (SIGKILLed by someone) shows as a
//! hung-up socket. The creator then starts a new tracker on the *same* table — so every name
//! registered before the death is still covered — and sends it again the names that went over
//! the old socket. What remains uncovered is the time between the tracker's death and the
//! creator's next use of the tracker: if the creator is killed in that window, its names stay.
//!
//! ## Table slots
//!
//! | bytes   | field                                                    |
//! |---------|----------------------------------------------------------|
//! | 0..4    | state: 0 free, 1 registered (atomic; written by the creator only) |
//! | 4..8    | name length (at most 248)                                |
//! | 8..256  | name bytes                                               |
//!
//! The creator writes the length and the name, then stores state 1 with Release; it frees a slot
//! by storing 0. The tracker reads the table only after the creator is gone (Acquire), bounds
//! every length, and skips anything that is not a valid name: the table is shared memory and is
//! treated as untrusted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};

use crate::platform;
use crate::primitive::{AtomicU32, Ordering};
use crate::raw::os::ForkLocal;

/// The environment variable value naming the tracker role.
pub(crate) const ROLE: &str = "tracker";
/// The environment variable telling the tracker where the creator's table is (`pid:fd`).
const TABLE_ENV: &str = "IPC_CORE_TRACKER_TABLE";

const SLOTS: usize = 1024;
const SLOT: usize = 256;
const NAME_MAX: usize = SLOT - 8;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

struct Table {
    map: MmapRaw,
    _file: File,
    slots: HashMap<String, usize>,
    free: Vec<usize>,
}

impl Table {
    fn state(&self, slot: usize) -> &AtomicU32 {
        debug_assert!(slot < SLOTS);
        // SAFETY: slot < SLOTS, so the word lies inside the SLOTS * SLOT mapping, 4-aligned
        // (mappings are page-aligned, SLOT is a multiple of 4); the creator only writes it
        // atomically, and the mapping lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(slot * SLOT).cast()) }
    }

    fn register(&mut self, name: &str) -> bool {
        if name.len() > NAME_MAX || self.slots.contains_key(name) {
            return false;
        }
        let Some(slot) = self.free.pop() else {
            return false;
        };
        let base = slot * SLOT;
        let len = (name.len() as u32).to_ne_bytes();
        // SAFETY: base + 8 + name.len() <= base + SLOT <= the mapping's length; the slot is free
        // (state 0), so the tracker ignores these bytes until the Release store below.
        unsafe {
            let p = self.map.as_mut_ptr().add(base);
            std::ptr::copy_nonoverlapping(len.as_ptr(), p.add(4), 4);
            std::ptr::copy_nonoverlapping(name.as_ptr(), p.add(8), name.len());
        }
        // ORDERING: Release, pairs with the Acquire in `run`: the length and name are written
        // before the slot counts as registered.
        self.state(slot).store(1, Ordering::Release);
        self.slots.insert(name.to_owned(), slot);
        true
    }

    fn unregister(&mut self, name: &str) -> bool {
        let Some(slot) = self.slots.remove(name) else {
            return false;
        };
        // ORDERING: Release, pairs with the Acquire in `run`; nothing is published, the slot is
        // only withdrawn.
        self.state(slot).store(0, Ordering::Release);
        self.free.push(slot);
        true
    }
}

struct Conn {
    /// The process that started this tracker: a forked child must start its own.
    owner_pid: u32,
    stream: Option<UnixStream>,
    table: Option<Table>,
    /// Names registered over the socket (too long for the table), to send again to a
    /// replacement tracker.
    long_names: std::collections::HashSet<String>,
}

impl Conn {
    /// Whether the tracker at the other end of the socket has gone (its end is closed). The
    /// tracker never writes after its acknowledgement, so any readable state means end-of-file.
    fn tracker_gone(&self) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        let events = libc::POLLIN | libc::POLLRDHUP;
        match platform::poll(&[(stream.as_raw_fd(), events)], Some(Duration::ZERO)) {
            Ok(revents) => revents.first().is_some_and(|&r| r != 0),
            Err(_) => false,
        }
    }
}

/// This process's connection to its tracker; a fork child starts with none (see [`ForkLocal`]).
static CONN: ForkLocal<Option<Conn>> = ForkLocal::new(|| None);

fn start() -> Conn {
    let table = platform::memfd_create("ipc-tracker", (SLOTS * SLOT) as u64)
        .and_then(|file| Ok((MmapOptions::new().len(SLOTS * SLOT).map_raw(&file)?, file)))
        .ok()
        .map(|(map, file)| Table {
            map,
            _file: file,
            slots: HashMap::new(),
            free: (0..SLOTS).rev().collect(),
        });
    launch(table, std::collections::HashSet::new())
}

/// Starts a tracker process on `table` (a fresh one, or the one a dead tracker was watching)
/// and sends it `long_names`.
fn launch(table: Option<Table>, long_names: std::collections::HashSet<String>) -> Conn {
    let owner_pid = platform::getpid();
    let Ok((mut ours, theirs)) = UnixStream::pair() else {
        return Conn {
            owner_pid,
            stream: None,
            table: None,
            long_names,
        };
    };
    crate::role::ensure_linked();
    // `/proc/self/exe` names this very executable even if its file was replaced or deleted
    // since it started. The tracker gets a process group of its own, so that a signal aimed at
    // ours (Ctrl-C, Ctrl-\, `kill -9 -PGID`) does not take it down with its creator.
    let mut cmd = Command::new("/proc/self/exe");
    cmd.env(crate::role::ROLE_ENV, ROLE)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .process_group(0);
    if let Some(t) = &table {
        cmd.env(TABLE_ENV, format!("{owner_pid}:{}", t._file.as_raw_fd()));
    }
    let Ok(child) = cmd.spawn() else {
        return Conn {
            owner_pid,
            stream: None,
            table: None,
            long_names,
        };
    };
    // The tracker outlives us by design; it is reaped by init when it exits.
    drop(child);
    // The tracker maps the table through /proc while we live, then says so with one byte.
    let mut ack = [0u8; 1];
    let acked = ours.set_read_timeout(Some(STARTUP_TIMEOUT)).is_ok()
        && ours.read_exact(&mut ack).is_ok()
        && ack[0] == b'K';
    // Without an acknowledgement the table is not watched: names then go over the socket.
    let (table, unwatched) = if acked {
        (table, Vec::new())
    } else {
        let names = table
            .map(|t| t.slots.into_keys().collect())
            .unwrap_or_default();
        (None, names)
    };
    let mut conn = Conn {
        owner_pid,
        stream: Some(ours),
        table,
        long_names: std::collections::HashSet::new(),
    };
    for name in long_names.into_iter().chain(unwatched) {
        send_line(&mut conn, &format!("R {name}\n"));
        conn.long_names.insert(name);
    }
    conn
}

fn with_conn(f: impl FnOnce(&mut Conn)) {
    let mut guard = CONN.lock();
    let pid = platform::getpid();
    if guard.as_ref().is_none_or(|c| c.owner_pid != pid) {
        // A forked child inherits its parent's connection and table: leave those to the parent
        // and start a tracker of its own.
        *guard = Some(start());
    } else if guard.as_ref().is_some_and(Conn::tracker_gone) {
        // Our tracker died: a new one takes over the same table and the long names.
        if let Some(old) = guard.take() {
            *guard = Some(launch(old.table, old.long_names));
        }
    }
    if let Some(conn) = guard.as_mut() {
        f(conn);
    }
}

fn send_line(conn: &mut Conn, line: &str) {
    if let Some(stream) = conn.stream.as_mut() {
        if send_nosignal(stream, line.as_bytes()).is_err() {
            conn.stream = None;
        }
    }
}

fn send_nosignal(stream: &mut UnixStream, bytes: &[u8]) -> std::io::Result<()> {
    // MSG_NOSIGNAL keeps a dead tracker from raising SIGPIPE in this process.
    platform::send_all_nosignal(std::os::fd::AsFd::as_fd(stream), bytes)?;
    stream.flush()
}

/// Starts this process's tracker now if it has none yet, so that a name created right after
/// is registered with a couple of stores rather than after a process start.
pub(crate) fn ensure_started() {
    with_conn(|_| {});
}

/// Registers a name this process created and owns.
pub(crate) fn register(name: &str) {
    with_conn(|conn| {
        if !conn.table.as_mut().is_some_and(|t| t.register(name)) {
            send_line(conn, &format!("R {name}\n"));
            conn.long_names.insert(name.to_owned());
        }
    });
}

/// Unregisters a name (it was unlinked, or ownership was given up).
pub(crate) fn unregister(name: &str) {
    with_conn(|conn| {
        if !conn.table.as_mut().is_some_and(|t| t.unregister(name)) {
            send_line(conn, &format!("U {name}\n"));
            conn.long_names.remove(name);
        }
    });
}

/// Maps the creator's table named by `pid:fd`, through `/proc` (the creator is alive: it waits
/// for our acknowledgement).
fn map_table(spec: &str) -> Option<MmapRaw> {
    let (pid, fd) = spec.split_once(':')?;
    let (pid, fd): (u32, i32) = (pid.parse().ok()?, fd.parse().ok()?);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .ok()?;
    if file.metadata().ok()?.len() < (SLOTS * SLOT) as u64 {
        return None;
    }
    MmapOptions::new().len(SLOTS * SLOT).map_raw(&file).ok()
}

/// The names registered in the table, read once the creator is gone.
fn table_names(map: &MmapRaw) -> Vec<String> {
    let mut names = Vec::new();
    for slot in 0..SLOTS {
        // SAFETY: slot < SLOTS keeps the word inside the mapping (checked to be SLOTS * SLOT
        // bytes in `map_table`), 4-aligned.
        let state = unsafe { AtomicU32::from_ptr(map.as_mut_ptr().add(slot * SLOT).cast()) };
        // ORDERING: Acquire, pairs with the Release in `Table::register`: the name bytes are
        // complete when the state says registered.
        if state.load(Ordering::Acquire) != 1 {
            continue;
        }
        let mut head = [0u8; 4];
        let mut name = [0u8; NAME_MAX];
        // SAFETY: both ranges lie inside slot `slot` of the mapping; the creator is gone, and any
        // bytes are acceptable (the length is bounded and the name validated below).
        unsafe {
            let p = map.as_ptr().add(slot * SLOT);
            std::ptr::copy_nonoverlapping(p.add(4), head.as_mut_ptr(), 4);
            std::ptr::copy_nonoverlapping(p.add(8), name.as_mut_ptr(), NAME_MAX);
        }
        let len = u32::from_ne_bytes(head) as usize;
        if len == 0 || len > NAME_MAX {
            continue;
        }
        if let Ok(s) = std::str::from_utf8(&name[..len]) {
            if !s.contains('/') && !s.contains('\0') {
                names.push(s.to_owned());
            }
        }
    }
    names
}

/// The tracker's main loop; runs in the tracker process and never returns.
pub(crate) fn run() -> ! {
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
    ] {
        platform::ignore_signal(sig);
    }
    // SAFETY: fd 0 is the socket the creator passed as our standard input; nothing else in this
    // process owns it.
    let mut input = unsafe { UnixStream::from_raw_fd(0) };
    let table = std::env::var(TABLE_ENV)
        .ok()
        .and_then(|spec| map_table(&spec));
    if table.is_some() {
        let _ = input.write_all(b"K");
    } else {
        // Without a table every name comes over the socket; tell the creator so by not acking
        // (it times out and falls back). Closing our write side would be EOF for it, so say N.
        let _ = input.write_all(b"N");
    }
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
    if let Some(map) = &table {
        names.extend(table_names(map));
    }
    for name in &names {
        let _ = platform::shm_unlink(name);
    }
    std::process::exit(0);
}

/// In a freshly forked child: closes the connection inherited from the parent without a word to
/// its tracker, so that the parent's tracker still sees end-of-file when the parent dies, however
/// long this child lives. The child starts its own tracker if it creates named segments.
#[inline]
pub(crate) fn forget_inherited() {
    // A parent thread that held it at the fork leaves it open here: the parent's tracker then
    // sees end-of-file once this child has ended too.
    if let Some(mut guard) = CONN.try_lock_inherited() {
        *guard = None;
    }
}
