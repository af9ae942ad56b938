//! The child's side: finding the target function, running it, reporting its outcome.
//!
//! Every start method ends in [`run`]: the target runs under `catch_unwind`, and a panic's
//! message goes to the parent from its payload (where panics abort, from a panic hook installed
//! first, so that it arrives before the abort); the result travels back through the codec,
//! standard output is flushed, and the process ends with `_exit` and Python's exit code (0
//! success, 1 panic or error).

use std::cell::Cell;
use std::io::IoSlice;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;

use crate::primitive::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::fn_ref::{FnKey, FnRef, panic_message};
use crate::codec;
use crate::liveness::ProcessIdentity;
use crate::platform;

/// Frames larger than this are refused as corrupted.
pub(super) const MAX_FRAME: usize = 1 << 31;

/// Message tags on the result channel (child to parent).
pub(super) mod tag {
    /// Spawned child: binary and function resolved, running.
    pub(crate) const READY: u8 = b'S';
    /// The encoded result.
    pub(crate) const RESULT: u8 = b'R';
    /// The panic message.
    pub(crate) const PANIC: u8 = b'P';
    /// The argument could not be decoded.
    pub(crate) const ARG_DECODE: u8 = b'A';
    /// The result could not be encoded.
    pub(crate) const RESULT_ENCODE: u8 = b'E';
    /// The binary or the function identity did not check out.
    pub(crate) const BAD_FUNCTION: u8 = b'F';
    /// Fork server reply: request accepted; payload is the child's pid.
    pub(crate) const OK: u8 = b'K';
    /// The argument is decoded (its handles attached): the parent may drop its copy.
    pub(crate) const DECODED: u8 = b'D';
}

/// Writes one frame (tag, little-endian u32 length, payload) in one write. (A child's reports go
/// out through `send_raw`, which copies nothing.)
pub(super) fn write_frame(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.extend_from_slice(&frame_head(tag, len));
    frame.extend_from_slice(payload);
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one frame (blocking); `Ok(None)` at a clean end of stream.
pub(super) fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// Splits one complete frame off the front of `buf`, if it holds one.
pub(super) fn take_frame(buf: &mut Vec<u8>) -> Result<Option<(u8, Vec<u8>)>, &'static str> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME {
        return Err("frame too long");
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    let tag = buf[0];
    let payload = if buf.len() == 5 + len {
        // The frame is all the buffer holds (the usual case): its bytes become the payload.
        let mut payload = std::mem::take(buf);
        payload.drain(..5);
        payload
    } else {
        let payload = buf[5..5 + len].to_vec();
        buf.drain(..5 + len);
        payload
    };
    Ok(Some((tag, payload)))
}

/// What running the target gave.
pub(super) enum Outcome {
    /// The result, encoded into the first this many bytes of the slice the trampoline was
    /// given, or (`None`) into the buffer, when it did not fit the slice.
    Returned(Option<usize>),
    /// The argument bytes did not decode as `A`.
    ArgDecode(String),
    /// The result did not encode.
    ResultEncode(String),
}

/// A monomorphic entry point: decodes `A`, reports `DECODED` on the channel it is given (a
/// descriptor, or -1 for none), calls the `fn(A) -> R` at `func`, encodes `R` into the slice it is
/// given or, when it outgrows that, into the buffer (see [`codec::encode_spilling`]).
pub(super) type Trampoline =
    fn(usize, &[u8], RawFd, &mut [MaybeUninit<u8>], &mut Vec<u8>) -> Outcome;

/// The room on a child's stack for its encoded result (a larger one goes to the heap).
const RESULT_ROOM: usize = 256;

/// The trampoline for `fn(A) -> R`.
pub(super) fn trampoline<A: DeserializeOwned, R: Serialize>(
    func: usize,
    arg: &[u8],
    decoded_to: RawFd,
    small: &mut [MaybeUninit<u8>],
    big: &mut Vec<u8>,
) -> Outcome {
    // SAFETY: `func` is the address of a `fn(A) -> R` of this very binary: taken with `f as
    // usize` by `Process::new`, which paired it with this instantiation of the trampoline; in a
    // re-executed child it was rebuilt from an offset after checking the binary is the same file
    // and that the address lies in its executable mapping. Both addresses travel together.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    let arg: A = match codec::decode_inline(arg) {
        Ok(a) => a,
        Err(e) => return Outcome::ArgDecode(e.to_string()),
    };
    // Every handle in the argument is attached now: the parent need not keep its copy.
    if decoded_to >= 0 {
        send_raw(decoded_to, tag::DECODED, &[]);
    }
    let r = f(arg);
    match codec::encode_spilling(&r, small, big) {
        Ok(len) => Outcome::Returned(len),
        Err(e) => Outcome::ResultEncode(e.to_string()),
    }
}

/// The identity of the running executable: device, inode, modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ExeId {
    dev: u64,
    ino: u64,
    mtime_ns: i64,
}

impl ExeId {
    pub(super) fn current() -> io::Result<Self> {
        let (dev, ino, mtime_ns) = platform::exe_identity()?;
        Ok(Self { dev, ino, mtime_ns })
    }
}

/// Checks that `expected` is this binary; a clear message otherwise.
pub(super) fn check_exe(expected: &ExeId) -> Result<(), String> {
    let here = ExeId::current().map_err(|e| format!("cannot identify the executable: {e}"))?;
    if &here != expected {
        return Err(format!(
            "the child runs another binary than its parent (parent {expected:?}, child {here:?})"
        ));
    }
    Ok(())
}

/// The kind of [`FnRef`] a process start uses: the trampoline is a [`Trampoline`].
pub(super) const KIND_PROCESS: u8 = 0;

/// The key of the references this process puts in its children's start requests: drawn once
/// per process (a forked child draws its own), sent with each request over the private start
/// channel.
pub(super) fn process_key() -> FnKey {
    use std::sync::Mutex;
    static KEY: Mutex<Option<(u32, FnKey)>> = Mutex::new(None);
    let pid = platform::getpid();
    // A forked child of a multi-threaded parent may find the lock held by a thread that does
    // not exist here: it then uses a fresh key without caching it.
    let Ok(mut guard) = KEY.try_lock() else {
        return FnKey::random();
    };
    match *guard {
        Some((p, key)) if p == pid => key,
        _ => {
            let key = FnKey::random();
            *guard = Some((pid, key));
            key
        }
    }
}

/// What a re-executed child (spawn, fork server) is asked to run.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Request {
    pub(super) exe: ExeId,
    /// The trampoline (a [`Trampoline`]) and the target function.
    pub(super) target: FnRef,
    /// The key `target` is tagged under.
    pub(super) key: FnKey,
    pub(super) info: ChildInfo,
    pub(super) daemon: bool,
    pub(super) arg: Vec<u8>,
}

impl Request {
    /// Resolves the trampoline and the function; the binary must already have been checked.
    pub(super) fn resolve(&self) -> Result<(Trampoline, usize), String> {
        let (t, f) = self
            .target
            .resolve(&self.key, KIND_PROCESS)
            .map_err(|e| e.to_string())?;
        for (addr, what) in [(t, "entry point"), (f, "target function")] {
            if !platform::is_executable_address(addr) {
                return Err(format!(
                    "the {what} identity (address {addr:#x}) does not resolve to code of this \
                     executable"
                ));
            }
        }
        // SAFETY: the tag checked out for `KIND_PROCESS`, which `spawn::request` makes only
        // from a `Trampoline` (`FnRef::new`'s contract); the binary is the same file (checked
        // by the caller) and the address lies in its executable mapping.
        let t = unsafe { std::mem::transmute::<usize, Trampoline>(t) };
        Ok((t, f))
    }
}

/// Who a child is, as a request to a re-executed child carries it: its name and its parent. The
/// child reads it as a [`Current`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ChildInfo {
    pub(super) name: String,
    /// Python's `_identity` path (`1`, `1:2`…), the suffix of default child names.
    pub(super) identity: String,
    pub(super) parent: ProcessIdentity,
    pub(super) parent_name: String,
    /// The start method that started this child: its own children default to it, as a Python
    /// child keeps the context that started it.
    pub(super) method: super::StartMethod,
}

impl ChildInfo {
    /// The owned form of `who`, for a request to a re-executed child.
    pub(super) fn of(who: &Current<'_>) -> Self {
        Self {
            name: who.name.to_owned(),
            identity: who.identity.to_owned(),
            parent: who.parent,
            parent_name: who.parent_name.to_owned(),
            method: who.method,
        }
    }
}

/// Who a child is, as `current_process` and `parent_process` read it: a [`ChildInfo`] whose text
/// is borrowed. A forked child's borrows the `Process` that started it (see `fork::start`), so
/// that neither process allocates or frees anything to describe it: every heap page either
/// writes while both live is a copy-on-write fault.
#[derive(Debug, Clone, Copy)]
pub(super) struct Current<'a> {
    pub(super) name: &'a str,
    pub(super) identity: &'a str,
    pub(super) parent: ProcessIdentity,
    pub(super) parent_name: &'a str,
    pub(super) method: super::StartMethod,
}

impl Current<'static> {
    /// The description a re-executed child gets from its request, for the life of the process.
    fn leaked(info: ChildInfo) -> &'static Self {
        let info: &'static ChildInfo = Box::leak(Box::new(info));
        Box::leak(Box::new(Current {
            name: &info.name,
            identity: &info.identity,
            parent: info.parent,
            parent_name: &info.parent_name,
            method: info.method,
        }))
    }
}

/// This process as a child: where its [`Current`] is (a pointer as `usize`; 0 in a program's
/// first process). Atomics, not a lock: a forked child of a multi-threaded parent must not wait on
/// a lock another thread held at the fork.
static CURRENT_INFO: AtomicUsize = AtomicUsize::new(0);

/// Children created so far by this process (for the default names).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The channel the panic hook reports on (-1: none). Set only where panics abort, where that
/// hook is installed: a forked child writes no page it need not (each is a copy-on-write fault).
static PANIC_CHANNEL: AtomicI32 = AtomicI32::new(-1);

/// This process's description, if it was started as a child.
pub(super) fn current_info() -> Option<&'static Current<'static>> {
    // ORDERING: Acquire, pairs with the Release store in `set_current`; publishes the pointee.
    let p = CURRENT_INFO.load(Ordering::Acquire);
    if p == 0 {
        return None;
    }
    // SAFETY: a non-zero value is the address of a `Current<'static>` that lives as long as the
    // process (`set_current`'s contract).
    Some(unsafe { &*(p as *const Current<'static>) })
}

#[inline]
fn set_current(info: &'static Current<'static>) {
    super::set_start_method(info.method);
    // ORDERING: Release, pairs with the Acquire load in `current_info`; publishes the pointee.
    // The previous description (the parent's, in a forked child) is left as it is: another
    // thread of the parent may have held a reference at the fork.
    CURRENT_INFO.store(std::ptr::from_ref(info) as usize, Ordering::Release);
    // ORDERING: Relaxed: a counter for names, ordered with nothing else.
    COUNTER.store(0, Ordering::Relaxed);
}

/// The next child number of this process.
pub(super) fn next_child_number() -> u64 {
    // ORDERING: Relaxed: only uniqueness matters, which the read-modify-write gives.
    COUNTER.fetch_add(1, Ordering::Relaxed) + 1
}

thread_local! {
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
}

/// Set in a spawned child until its first report, which then goes out behind a `READY` frame in
/// the same write (see [`defer_ready`]).
static READY_PENDING: AtomicBool = AtomicBool::new(false);

/// Makes this child's first report (`DECODED`, or whatever ends it before that) carry its
/// `READY`: the parent's start waits for both, and two frames in one write wake it once.
pub(super) fn defer_ready() {
    // ORDERING: Relaxed: stored before the target runs, on the thread that runs it; read by
    // `send_raw` on that thread (or on threads the target spawns later: the spawn orders it).
    READY_PENDING.store(true, Ordering::Relaxed);
}

/// A frame's head: its tag and the little-endian `u32` length of its payload.
fn frame_head(tag: u8, len: u32) -> [u8; 5] {
    let [a, b, c, d] = len.to_le_bytes();
    [tag, a, b, c, d]
}

/// Sends one frame on the child's channel: its head and payload in one `sendmsg`, without the C
/// library's code or a copy (a forked child takes a page fault for each page of code or data it
/// touches first).
#[inline(always)]
fn send_raw(fd: i32, tag: u8, payload: &[u8]) {
    // SAFETY: `fd` is the channel this child owns for its whole life (never closed before
    // `_exit`), so it is open for the call.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    // A payload too long for a frame is not sent: the parent reports a child that ended without
    // its result (a frame over `MAX_FRAME` would be refused anyway).
    let Ok(len) = u32::try_from(payload.len()) else {
        return;
    };
    let head = frame_head(tag, len);
    // ORDERING: Relaxed (both): see `defer_ready`; the swap lets exactly one report carry the
    // `READY`. The load first: a forked child (never pending) writes no page it need not.
    if READY_PENDING.load(Ordering::Relaxed) && READY_PENDING.swap(false, Ordering::Relaxed) {
        let ready = frame_head(tag::READY, 0);
        let parts = &mut [
            IoSlice::new(&ready),
            IoSlice::new(&head),
            IoSlice::new(payload),
        ];
        // A parent gone before this child was ready: nobody waits for its work (as when the
        // `READY` went out on its own and failed).
        if platform::send_parts_nosignal(sock, parts).is_err() {
            platform::exit_now(1);
        }
        return;
    }
    let _ = platform::send_parts_nosignal(sock, &mut [IoSlice::new(&head), IoSlice::new(payload)]);
}

/// Runs the target in this child and ends the process; never returns. `info` lives as long as the
/// process (a forked child's borrows its parent's `Process`, see [`Current`]), and the result is
/// encoded on the stack when it fits: a forked child that
/// allocates nothing runs none of the allocator's code and writes none of its pages, each of
/// which would be a fault (see `fork.rs`).
// Inlined into each start method's child branch: a forked child takes a page fault (and maps
// sixteen pages) for each 64 KiB window of code it runs first, so its path is kept together.
#[inline(always)]
pub(super) fn run(
    channel: UnixStream,
    info: &'static Current<'static>,
    trampoline: Trampoline,
    func: usize,
    arg: &[u8],
) -> ! {
    set_current(info);
    let fd = channel.as_raw_fd();
    // The channel lives until `_exit`; forget the owner so no path closes it early.
    std::mem::forget(channel);
    // The parent waits for `DECODED` before it lets its copy of the argument go where the child
    // opens the argument's segments through the parent's descriptors (a re-executed or
    // fork-server child); a forked child has its own copies, and its parent does not wait, so
    // it is not woken for nothing.
    let decoded_to = if info.method == super::StartMethod::Fork {
        -1
    } else {
        fd
    };
    // Where panics unwind, no hook of ours reports them and `PANIC_CHANNEL` and `IN_TARGET` stay
    // unwritten (in a forked child, each page's first write is a fault): the payload carries
    // the message.
    let hooked = cfg!(panic = "abort");
    if hooked {
        // ORDERING: Relaxed: read by the panic hook on this same thread, or on a thread this
        // one spawns later (the spawn orders it).
        PANIC_CHANNEL.store(fd, Ordering::Relaxed);
        // A panic ends the process before any unwinding: the hook is the last word.
        install_panic_hook();
        IN_TARGET.with(|t| t.set(true));
    }
    let mut small = [MaybeUninit::<u8>::uninit(); RESULT_ROOM];
    let mut big = Vec::new();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        trampoline(func, arg, decoded_to, &mut small, &mut big)
    }));
    // Still set if no hook of ours reported the panic.
    let unreported = !hooked || IN_TARGET.with(|t| t.replace(false));
    // The report goes last, once standard output is flushed: the parent, woken by it, then
    // finds the child already on its way out rather than waits through the flush.
    // What goes to the parent: the result (its length in `small`, or `None` when it is in
    // `big`) or a message; nothing for a panic a hook of ours reported.
    let (code, tag, report) = match outcome {
        Ok(Outcome::Returned(len)) => (0, tag::RESULT, Some(Ok(len))),
        Ok(Outcome::ArgDecode(msg)) => {
            if may_lock_stdio() {
                eprintln!("process: cannot decode the argument: {msg}");
            }
            (1, tag::ARG_DECODE, Some(Err(msg)))
        }
        Ok(Outcome::ResultEncode(msg)) => {
            if may_lock_stdio() {
                eprintln!("process: cannot encode the result: {msg}");
            }
            (1, tag::RESULT_ENCODE, Some(Err(msg)))
        }
        // The process's panic hook (the user's, or the default one) has printed the message;
        // the parent gets it from the payload.
        Err(payload) => (
            1,
            tag::PANIC,
            unreported.then(|| Err(panic_message(&*payload))),
        ),
    };
    flush_stdout();
    match report {
        Some(Ok(Some(len))) => {
            // Never more than `small` holds, whatever a trampoline says.
            let len = len.min(small.len());
            // SAFETY: the trampoline encoded the result into the first `len` bytes of `small`
            // (`Outcome::Returned(Some(len))`, from `codec::encode_spilling`), so they are
            // written, and `len` is within `small`.
            let bytes = unsafe { std::slice::from_raw_parts(small.as_ptr().cast::<u8>(), len) };
            send_raw(fd, tag, bytes);
        }
        Some(Ok(None)) => send_raw(fd, tag, &big),
        Some(Err(msg)) => send_raw(fd, tag, msg.as_bytes()),
        None => {}
    }
    platform::exit_now(code)
}

/// [`run`] for a re-executed or fork-server child, from its request (a fresh process allocates
/// at no extra cost: its pages are its own).
pub(super) fn run_request(
    channel: UnixStream,
    req: Request,
    trampoline: Trampoline,
    func: usize,
) -> ! {
    run(
        channel,
        Current::leaked(req.info),
        trampoline,
        func,
        &req.arg,
    )
}

/// Where panics abort: a hook that sends the message of a panic in the target to the parent
/// before the process's own hook runs.
fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TARGET.with(|t| t.replace(false)) {
            let msg = panic_message(info.payload());
            // ORDERING: Relaxed: stored before this thread entered the target (see `run`).
            let fd = PANIC_CHANNEL.load(Ordering::Relaxed);
            if fd >= 0 {
                send_raw(fd, tag::PANIC, msg.as_bytes());
            }
        }
        default_hook(info);
    }));
}

/// Set in a child forked from a multi-threaded parent: another thread may have held the
/// standard output lock at the fork, so this process must not take it on its own account.
static FORKED_WITH_THREADS: AtomicBool = AtomicBool::new(false);

/// Records, in a freshly forked child, whether the parent had other threads.
#[inline]
pub(super) fn set_forked_with_threads(threads: bool) {
    // ORDERING: Relaxed: written and read by this child's only thread.
    FORKED_WITH_THREADS.store(threads, Ordering::Relaxed);
}

fn may_lock_stdio() -> bool {
    // ORDERING: Relaxed: written and read by this child's only thread.
    !FORKED_WITH_THREADS.load(Ordering::Relaxed)
}

/// Flushes standard output, unless that could deadlock (standard error is unbuffered: only
/// standard output can hold anything).
#[inline]
fn flush_stdout() {
    if may_lock_stdio() {
        let _ = io::stdout().flush();
    }
}

/// Arms the parent-death signal for a daemon child whose parent is `parent`; exits at once if
/// that parent is already gone (it died before the signal was armed).
pub(super) fn arm_daemon(parent: u32) {
    if platform::set_parent_death_kill().is_err() || platform::getppid() != parent {
        platform::exit_now(1);
    }
}
