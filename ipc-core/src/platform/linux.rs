//! Linux syscalls: memfd, POSIX shared memory, futex, /proc liveness, getrandom, processes.
//!
//! The calls go through `rustix` (raw system calls, typed flags, owned descriptors, `Errno`).
//! A few stay on `libc`, each marked where it is made, because rustix has no form of them fit
//! for a program linked with libc, or none that this code can call soundly:
//! `fork`, `_exit`, `pthread_atfork` and `atexit` (libc's own process and thread bookkeeping),
//! signal dispositions, masks and `signalfd`, `sysconf`, the duplication of a descriptor number
//! another process named (rustix borrows descriptors, and this one may name nothing), and the
//! futex calls on a bare address (rustix's take a `&AtomicU32`, which must point at live memory).
//!
//! Functions that take a descriptor as an `i32` borrow it for the one call: their callers hold
//! it open for that long (a descriptor of their own, or one inherited across fork or exec).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::{Errno, FdFlags};
use rustix::process::Signal;
use rustix::process::{Pid, Resource, Rlimit, WaitOptions};
use rustix::thread::futex;
use rustix::time::Timespec;

use crate::primitive::{AtomicU32, AtomicUsize, Ordering};

/// A negative descriptor names nothing (`EBADF`); `BorrowedFd` cannot hold -1.
fn check_fd(fd: i32) -> io::Result<()> {
    if fd < 0 {
        Err(Errno::BADF.into())
    } else {
        Ok(())
    }
}

/// A positive process id (`InvalidInput` for 0, or one that does not fit a `pid_t`).
fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .filter(|p| p.as_raw_nonzero().get() > 0)
        .ok_or_else(|| io::ErrorKind::InvalidInput.into())
}

/// A signal number as rustix's `Signal`: the named signals only (`InvalidInput` otherwise;
/// rustix sends the libc-reserved real-time signals only through an `unsafe` constructor, and
/// nothing here sends them).
fn to_signal(sig: i32) -> io::Result<Signal> {
    Signal::from_named_raw(sig).ok_or_else(|| io::ErrorKind::InvalidInput.into())
}

/// A relative timeout as a `Timespec` (seconds saturated at `i64::MAX`).
fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// An anonymous memory file of `len` bytes; freed by the kernel with its last fd and mapping.
pub(crate) fn memfd_create(debug_name: &str, len: u64) -> io::Result<File> {
    let cname = CString::new(debug_name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let fd = rustix::fs::memfd_create(
        cname.as_c_str(),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::fs::ftruncate(&fd, len)?;
    // Fix the size for good: a peer that reopens the memfd cannot shrink it under the other
    // mappings (which would turn their next access into SIGBUS).
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(File::from(fd))
}

fn shm_path(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// `shm_open(O_CREAT | O_EXCL | O_RDWR, 0600)`: fails with `AlreadyExists` if the name is taken.
/// Close-on-exec, as every descriptor rustix's `shm::open` returns.
pub(crate) fn shm_create(name: &str) -> io::Result<File> {
    let path = shm_path(name)?;
    let flags = rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR;
    let fd = rustix::shm::open(path.as_c_str(), flags, Mode::from_raw_mode(0o600))?;
    Ok(File::from(fd))
}

/// `shm_open(O_RDWR)` of an existing name (close-on-exec).
pub(crate) fn shm_open(name: &str) -> io::Result<File> {
    let path = shm_path(name)?;
    let fd = rustix::shm::open(path.as_c_str(), rustix::shm::OFlags::RDWR, Mode::empty())?;
    Ok(File::from(fd))
}

/// `shm_unlink`: removes the name; existing mappings stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name)?;
    Ok(rustix::shm::unlink(path.as_c_str())?)
}

/// Device and inode of an open file: the identity of a memfd across processes.
pub(crate) fn file_identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// The size of an open file (`fstat`; lighter than std's `statx` with every field).
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    let st = rustix::fs::fstat(file)?;
    Ok(st.st_size.max(0) as u64)
}

/// Duplicates a descriptor of this process (close-on-exec).
///
/// On `libc`: rustix's `fcntl_dupfd_cloexec` takes a `BorrowedFd`, whose contract (the number
/// names a descriptor held open for the borrow) this function cannot promise: `fd` comes from a
/// handle another process serialised, and may name nothing here or something else entirely.
/// The caller checks what it got (device and inode).
pub(crate) fn dup_fd(fd: i32) -> io::Result<File> {
    // SAFETY: F_DUPFD_CLOEXEC on any integer is harmless; an invalid fd yields EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(new) })
}

/// Outcome of a futex wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWait {
    /// Woken by a wake call, or spuriously, or by a signal: the caller re-checks its condition.
    Woken,
    /// The word did not hold the expected value when the kernel checked it.
    ValueChanged,
    /// The relative timeout passed.
    TimedOut,
}

fn futex_wait_result(r: Result<(), Errno>) -> FutexWait {
    match r {
        Ok(()) => FutexWait::Woken,
        Err(Errno::AGAIN) => FutexWait::ValueChanged,
        Err(Errno::TIMEDOUT) => FutexWait::TimedOut,
        Err(_) => FutexWait::Woken,
    }
}

/// `FUTEX_WAIT` (shared, not private) on `word` while it equals `expected`, for at most `timeout`
/// (measured by the kernel on CLOCK_MONOTONIC).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait {
    let ts = timeout.map(timespec);
    futex_wait_result(futex::wait(
        word,
        futex::Flags::empty(),
        expected,
        ts.as_ref(),
    ))
}

/// `FUTEX_WAIT` on the 32-bit word at `addr`. The kernel only reads the address (an unmapped
/// one gives `EFAULT`, reported as a spurious wake), so any value is memory-safe.
///
/// On `libc`: rustix's `futex::wait` takes a `&AtomicU32`, and a reference must point at live
/// memory, which `addr` need not (a reactor probes words whose mapping may be gone).
pub(crate) fn futex_wait_at(
    addr: *const u32,
    expected: u32,
    timeout: Option<Duration>,
) -> FutexWait {
    let ts;
    let ts_ptr = match timeout {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: the kernel only reads the word at `addr` (an unmapped address is EFAULT, never a
    // fault in this process). `ts_ptr` is null or points at `ts`, which lives until the call
    // returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if ret == 0 {
        return FutexWait::Woken;
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    futex_wait_result(Err(Errno::from_raw_os_error(errno)))
}

/// `FUTEX_WAKE` (shared) of up to `count` waiters on `word`; returns how many were woken.
pub(crate) fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    let count = count.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}

/// `FUTEX_WAKE` (shared) of up to `count` waiters on the word at `addr`.
///
/// On `libc`, for the reason given at [`futex_wait_at`].
pub(crate) fn futex_wake_at(addr: *const u32, count: u32) -> usize {
    let count = count.min(i32::MAX as u32);
    // SAFETY: FUTEX_WAKE only uses the address as a key (an unmapped one gives EFAULT); it
    // never reads or writes memory through it.
    let ret = unsafe { libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, count) };
    if ret < 0 { 0 } else { ret as usize }
}

/// Outcome of a `futex_waitv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWaitv {
    /// One of the words was woken (or a signal interrupted the sleep): re-check.
    Woken,
    /// One of the words did not hold its expected value when the kernel checked.
    ValueChanged,
    /// The deadline passed.
    TimedOut,
    /// The kernel has no `futex_waitv` (before Linux 5.16), or refused this many words (more
    /// than [`FUTEX_WAITV_MAX`]): nothing slept.
    Unsupported,
}

/// The most words one `futex_waitv` takes (the kernel's `FUTEX_WAITV_MAX`).
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// The absolute `CLOCK_MONOTONIC` time `left` from now (seconds saturated at `i64::MAX`).
pub(crate) fn monotonic_after(left: Duration) -> Timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let nsec = now.tv_nsec.max(0) as u64 + u64::from(left.subsec_nanos());
    let sec = (now.tv_sec.max(0) as u64)
        .saturating_add(left.as_secs())
        .saturating_add(nsec / 1_000_000_000)
        .min(i64::MAX as u64);
    Timespec {
        tv_sec: sec as i64,
        tv_nsec: (nsec % 1_000_000_000) as _,
    }
}

/// `futex_waitv` (Linux 5.16+): sleeps until one of `words` is woken or no longer holds its
/// expected value, or `timeout` passes (measured on CLOCK_MONOTONIC; `None`: no limit).
pub(crate) fn futex_waitv(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> FutexWaitv {
    if words.is_empty() || words.len() > FUTEX_WAITV_MAX {
        return FutexWaitv::Unsupported;
    }
    let records: Vec<futex::Wait> = words
        .iter()
        .map(|(word, expected)| {
            let mut w = futex::Wait::new();
            w.val = u64::from(*expected);
            w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            // No FUTEX2_PRIVATE: the shared kind, so that a waker in another process reaches
            // the sleeper.
            w.flags = futex::WaitFlags::SIZE_U32;
            w
        })
        .collect();
    // The timeout is absolute on the clock named below.
    let abs = timeout.map(monotonic_after);
    match futex::waitv(
        &records,
        futex::WaitvFlags::empty(),
        abs.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        Ok(_) => FutexWaitv::Woken,
        Err(Errno::AGAIN) => FutexWaitv::ValueChanged,
        Err(Errno::TIMEDOUT) => FutexWaitv::TimedOut,
        Err(Errno::NOSYS | Errno::INVAL) => FutexWaitv::Unsupported,
        Err(_) => FutexWaitv::Woken,
    }
}

/// What the kernel says of a process id, as [`process_start_time`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidState {
    /// A process with this pid runs (or is stopped); it started at this time (clock ticks since
    /// boot, field 22 of `/proc/<pid>/stat`).
    Running(u64),
    /// The kernel says no such process runs: `kill(pid, 0)` or `/proc/<pid>` gave `ESRCH` or
    /// `ENOENT`, or the process is a zombie (it has exited and only waits to be reaped).
    Gone,
}

/// The state of process `pid`, as the kernel reports it.
///
/// `Ok(Gone)` only when the kernel says so (`ESRCH`, `ENOENT`, a zombie); every other failure
/// (`EMFILE`, `ENFILE`, `EACCES`, `ENOMEM`, an unreadable or unparsable `stat`) is an `Err`,
/// which callers must treat as *alive, ask again later*. Makes no allocation: the path and the
/// file are handled in stack buffers (so it also works in a fork child).
pub(crate) fn process_start_time(pid: u32) -> io::Result<PidState> {
    let raw_pid = to_pid(pid)?;
    // kill(pid, 0) needs no descriptor: ESRCH settles "gone" even at the fd limit. EPERM means
    // the process exists (another user's), which /proc then describes.
    match rustix::process::test_kill_process(raw_pid) {
        Ok(()) | Err(Errno::PERM) => {}
        Err(Errno::SRCH) => return Ok(PidState::Gone),
        Err(e) => return Err(e.into()),
    }
    // "/proc/<pid>/stat\0" in a stack buffer.
    let mut path = [0u8; 32];
    let mut len = 0;
    for b in b"/proc/" {
        path[len] = *b;
        len += 1;
    }
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[len] = digits[d];
        len += 1;
    }
    for b in b"/stat" {
        path[len] = *b;
        len += 1;
    }
    // path[len] is already 0: at most 6 + 10 + 5 of the 32 bytes are used.
    let path = CStr::from_bytes_until_nul(&path).map_err(|_| io::ErrorKind::InvalidInput)?;
    let fd = match rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::SRCH) => return Ok(PidState::Gone),
        Err(e) => return Err(e.into()),
    };
    let mut buf = [0u8; 1024];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::io::read(&fd, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::INTR) => continue,
            // The process went away while we read its file.
            Err(Errno::SRCH | Errno::NOENT) => return Ok(PidState::Gone),
            Err(e) => return Err(e.into()),
        }
    }
    drop(fd);
    parse_stat(&buf[..filled]).ok_or_else(|| io::Error::other("unparsable /proc/<pid>/stat"))
}

/// Parses the state (field 3) and start time (field 22) of a `/proc/<pid>/stat` line.
fn parse_stat(stat: &[u8]) -> Option<PidState> {
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = fields.next()?;
    if state == b"Z" || state == b"X" || state == b"x" {
        return Some(PidState::Gone);
    }
    // After the state (field 3), field 22 is 19 further on.
    let field = fields.nth(18)?;
    let mut v: u64 = 0;
    if field.is_empty() {
        return None;
    }
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(PidState::Running(v))
}

/// This process's id, cached: 0 until first asked, reset in a forked child by the `atfork`
/// handler that `role.rs` registers before `main` ([`forget_pid`]).
static PID: AtomicU32 = AtomicU32::new(0);

/// The calling process's id (a system call only the first time in each process).
pub(crate) fn getpid() -> u32 {
    // ORDERING: Relaxed, the value is the same for every thread of the process; a stale 0 only
    // costs a system call.
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
            // ORDERING: Relaxed, as above.
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Forgets the cached pid: called in a forked child, right after the fork, by the `atfork`
/// handler (`process::fork::forget_pid_in_child`). Async-signal-safe: one atomic store.
#[inline(always)]
pub(crate) fn forget_pid() {
    // ORDERING: Relaxed, the child is single-threaded at this point.
    PID.store(0, Ordering::Relaxed);
}

/// Registers `handler` to run in every fork child, right after the fork.
///
/// On `libc`: `pthread_atfork` is libc's own bookkeeping (its `fork` runs the handlers), not a
/// system call, so rustix has no form of it.
///
/// # Safety
/// `handler` must only do what is async-signal-safe (store to atomics): it runs in a child of a
/// possibly multi-threaded process, where other threads' locks may be held forever.
pub(crate) unsafe fn on_fork_child(handler: extern "C" fn()) {
    // SAFETY: `handler` is an `extern "C"` function (a panic in it aborts, it cannot unwind into
    // libc); the caller promises it is async-signal-safe.
    unsafe { libc::pthread_atfork(None, None, Some(handler)) };
}

/// The calling thread's kernel thread id.
pub(crate) fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Registers `handler` to run at normal process exit (`exit`, or `main` returning).
///
/// On `libc`: `atexit` is libc's exit bookkeeping, not a system call; rustix has no form of it.
pub(crate) fn at_exit(handler: extern "C" fn()) {
    // SAFETY: atexit only stores the function pointer; `handler` is an `extern "C"` function
    // with no arguments, and a panic in it aborts instead of unwinding into libc.
    unsafe { libc::atexit(handler) };
}

/// 128 bits from the kernel's random source (`getrandom`, retried on `EINTR`; `/dev/urandom`
/// on a kernel without the call).
pub(crate) fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) if n > 0 => {
                filled += n;
                continue;
            }
            Err(Errno::INTR) => continue,
            _ => {}
        }
        use std::io::Read;
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut buf))
            .is_ok()
        {
            break;
        }
        // No source of randomness at all: names are still unique (pid and clock), only not
        // secret.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return t ^ (u128::from(getpid()) << 64);
    }
    u128::from_ne_bytes(buf)
}

// ---- Processes: fork, wait, signals, descriptors passing. ----

/// `fork()`.
///
/// On `libc`: libc's `fork` runs the `pthread_atfork` handlers and resets its own state (the
/// cached tid, its locks) in the child; rustix only offers the raw system call
/// (`runtime::kernel_fork`), in a module that is hidden, unstable and meant for programs
/// without libc.
///
/// # Safety
/// In the child only async-signal-safe operations are sound if the parent had other threads.
pub(crate) unsafe fn fork() -> io::Result<u32> {
    // SAFETY: the caller upholds the post-fork restrictions.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid as u32)
    }
}

/// Runs this very executable (`/proc/self/exe`) again with `vars` added to (or replacing in) the
/// environment, handing it the descriptor `keep` under a number it finds in the variable
/// `keep_var`; returns the child's pid, which the caller must reap.
///
/// On `libc`: `posix_spawn`, which glibc implements with `clone(CLONE_VM | CLONE_VFORK)`, so the
/// parent's page tables are never copied (a `fork` followed by `exec` copies them first: in a
/// process with a large heap that copy is most of the start's cost). rustix offers no
/// `posix_spawn`. The descriptor reaches the child through a file action that duplicates it
/// onto a number this call reserves (a close-on-exec copy of `keep`, made here and closed on
/// return), so the child's copy under that number is not close-on-exec and no descriptor the
/// child inherits is replaced; a `dup2` onto the same number, which clears the flag only from
/// glibc 2.29 on, is not needed. As std's `Command` does, the child starts with no signal
/// blocked and with SIGPIPE at its default action.
pub(crate) fn spawn_self(vars: &[(&str, &str)], keep: i32, keep_var: &str) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    check_fd(keep)?;
    // SAFETY: `keep` is not negative, and the caller holds it open for the call (module docs);
    // the borrow ends with this statement.
    let reserved = rustix::io::fcntl_dupfd_cloexec(unsafe { BorrowedFd::borrow_raw(keep) }, 0)?;
    let number = reserved.as_raw_fd();
    let number_text = number.to_string();
    let vars: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .chain(std::iter::once((keep_var, number_text.as_str())))
        .collect();
    let nul = |e: std::ffi::NulError| io::Error::new(io::ErrorKind::InvalidInput, e);
    let path = CString::new("/proc/self/exe").map_err(nul)?;
    let mut env: Vec<CString> = Vec::new();
    for (name, value) in std::env::vars_os() {
        if vars.iter().any(|(n, _)| name.as_bytes() == n.as_bytes()) {
            continue;
        }
        let mut entry = name.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        env.push(CString::new(entry).map_err(nul)?);
    }
    for (name, value) in &vars {
        env.push(CString::new(format!("{name}={value}")).map_err(nul)?);
    }
    let argv = [path.as_ptr().cast_mut(), std::ptr::null_mut()];
    let envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let check = |rc: libc::c_int| match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    };
    let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    let mut attr = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: `actions` and `attr` are initialised by their `_init` calls before any other use
    // and destroyed exactly once below, whatever happened in between. `path`, `argv` and `envp`
    // are NUL-terminated C strings and NULL-terminated arrays of them, alive for the call;
    // `posix_spawn` copies nothing it keeps and returns the child's pid through `pid`. The
    // signal sets are initialised by `sigemptyset` before they are read.
    unsafe {
        check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        if let Err(e) = check(libc::posix_spawnattr_init(attr.as_mut_ptr())) {
            libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
            return Err(e);
        }
        let result = (|| {
            check(libc::posix_spawn_file_actions_adddup2(
                actions.as_mut_ptr(),
                keep,
                number,
            ))?;
            let mut none = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            check(libc::posix_spawnattr_setsigmask(
                attr.as_mut_ptr(),
                none.as_ptr(),
            ))?;
            let mut pipe = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(pipe.as_mut_ptr());
            libc::sigaddset(pipe.as_mut_ptr(), libc::SIGPIPE);
            check(libc::posix_spawnattr_setsigdefault(
                attr.as_mut_ptr(),
                pipe.as_ptr(),
            ))?;
            let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            check(libc::posix_spawnattr_setflags(
                attr.as_mut_ptr(),
                flags as _,
            ))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            ))?;
            Ok(pid as u32)
        })();
        libc::posix_spawnattr_destroy(attr.as_mut_ptr());
        libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
        // The child has its copy now (or failed to start): the reserved number goes.
        drop(reserved);
        result
    }
}

/// Ends the process at once with `code`, without running exit handlers (as a forked child must).
///
/// On `libc`: rustix's `exit_group` lives in its `runtime` module, which is hidden, unstable
/// and meant for programs without libc.
#[inline]
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// The parent process id (0 if the parent is outside this pid namespace).
pub(crate) fn getppid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}

/// Asks for SIGKILL when the parent (thread) exits; returns an error if prctl fails.
pub(crate) fn set_parent_death_kill() -> io::Result<()> {
    Ok(rustix::process::set_parent_process_death_signal(Some(
        Signal::KILL,
    ))?)
}

/// Sends `sig` (a named signal; 0 only checks that the process exists) to process `pid`.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = to_pid(pid)?;
    if sig == 0 {
        return Ok(rustix::process::test_kill_process(pid)?);
    }
    Ok(rustix::process::kill_process(pid, to_signal(sig)?)?)
}

/// `waitpid(pid, WNOHANG)`: `Some(raw status)` once the child has ended (and is reaped).
pub(crate) fn try_wait(pid: u32) -> io::Result<Option<i32>> {
    let pid = to_pid(pid)?;
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(ended) => return Ok(ended.map(|(_, status)| status.as_raw())),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `waitpid(-1, WNOHANG)`: one ended child of this process, as `(pid, raw status)`.
pub(crate) fn try_wait_any() -> Option<(u32, i32)> {
    match rustix::process::waitpid(None, WaitOptions::NOHANG) {
        Ok(Some((pid, status))) => Some((pid.as_raw_nonzero().get() as u32, status.as_raw())),
        _ => None,
    }
}

/// A pidfd for `pid`: readable once the process has ended (close-on-exec).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = to_pid(pid)?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// `poll` on `fds` (fd, events) for at most `timeout` (`None`: forever); returns the `revents`.
/// A negative descriptor is ignored (its `revents` is 0), as `poll(2)` does.
pub(crate) fn poll(fds: &[(i32, i16)], timeout: Option<Duration>) -> io::Result<Vec<i16>> {
    let mut revents = vec![0; fds.len()];
    poll_into(fds, &mut revents, timeout)?;
    Ok(revents)
}

/// [`poll`] with the `revents` written into `revents` (as long as `fds`), allocating nothing for
/// up to four descriptors. An interrupted poll leaves every `revents` 0.
pub(crate) fn poll_into(
    fds: &[(i32, i16)],
    revents: &mut [i16],
    timeout: Option<Duration>,
) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags};
    const ON_STACK: usize = 4;
    revents.fill(0);
    let live = || fds.iter().filter(|&&(fd, _)| fd >= 0);
    let to_poll_fd = |&(fd, events): &(i32, i16)| {
        // SAFETY: `fd` is not negative, and the caller holds it open for the call (module
        // docs); the borrow ends when the `PollFd`s are dropped at the end of this function.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // `as _`: the flags are `u16` on rustix's raw backend and `c_short` on its libc backend
        // (the one it uses under Miri).
        PollFd::from_borrowed_fd(fd, PollFlags::from_bits_retain(events as _))
    };
    let count = live().count();
    let mut on_heap: Vec<PollFd<'_>>;
    let mut on_stack: [PollFd<'_>; ON_STACK];
    let pfds: &mut [PollFd<'_>] = match live().next() {
        None => &mut [],
        Some(first) if count <= ON_STACK => {
            // The slots past `count` repeat the first descriptor and are not polled.
            let mut each = live();
            on_stack = std::array::from_fn(|_| to_poll_fd(each.next().unwrap_or(first)));
            &mut on_stack[..count]
        }
        Some(_) => {
            on_heap = live().map(to_poll_fd).collect();
            &mut on_heap
        }
    };
    let ts = timeout.map(timespec);
    match rustix::event::poll(pfds, ts.as_ref()) {
        Ok(_) => {}
        Err(Errno::INTR) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let mut polled = pfds.iter();
    for (r, &(fd, _)) in revents.iter_mut().zip(fds) {
        if fd >= 0 {
            *r = polled.next().map_or(0, |p| p.revents().bits() as i16);
        }
    }
    Ok(())
}

/// Waits at most `timeout` (`None`: forever) until one of `fds` is readable or hung up; returns
/// whether one is (`false` on timeout, on an interrupting signal, or on an error).
pub(crate) fn poll_readable(fds: &[i32], timeout: Option<Duration>) -> bool {
    let readable = rustix::event::PollFlags::IN.bits() as i16;
    let set: Vec<(i32, i16)> = fds.iter().map(|&fd| (fd, readable)).collect();
    poll(&set, timeout).is_ok_and(|revents| revents.iter().any(|&r| r != 0))
}

/// Sets the descriptor flags of `fd` (close-on-exec or not).
fn set_fd_flags(fd: i32, flags: FdFlags) -> io::Result<()> {
    check_fd(fd)?;
    // SAFETY: `fd` is not negative, and the caller holds it open for the call (module docs);
    // the borrow ends with this statement.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(rustix::io::fcntl_setfd(fd, flags)?)
}

/// The number of threads of this process: one, without a system call, where the C library says
/// this process has never started a second thread ([`never_threaded`]); otherwise the link count
/// of `/proc/self/task`, which is two plus the number of threads (one `stat`, no file to read),
/// or field 20 of `/proc/self/stat`.
pub(crate) fn thread_count() -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    if never_threaded() {
        return Ok(1);
    }
    if let Ok(meta) = std::fs::metadata("/proc/self/task") {
        if meta.nlink() > 2 {
            return Ok((meta.nlink() - 2) as usize);
        }
    }
    thread_count_from_stat()
}

/// Whether glibc's `__libc_single_threaded` (glibc 2.32 and later; looked up once with `dlsym`,
/// so that an older or another C library only means `false`) says this process has never created
/// a thread. glibc sets it to zero before it creates the first thread and never back: a second
/// thread's existence is ordered after that write, for whichever thread asks, because the first
/// one was created by the only thread there was. A thread created without the C library (a raw
/// `clone`) is not seen; nothing in this workspace, or in the standard library, creates one.
fn never_threaded() -> bool {
    #[cfg(target_env = "gnu")]
    {
        /// The flag's address: `usize::MAX` until looked up, 0 if there is none. No lock (a
        /// `OnceLock` another thread held at a fork would stay taken in the child): two threads
        /// that look it up at once find the same address.
        static FLAG: AtomicUsize = AtomicUsize::new(usize::MAX);
        // ORDERING: Relaxed, the value is the same for every thread; a stale `usize::MAX` only
        // costs a second lookup.
        let mut addr = FLAG.load(Ordering::Relaxed);
        if addr == usize::MAX {
            // SAFETY: `dlsym` with `RTLD_DEFAULT` and a NUL-terminated name only looks the
            // symbol up; a missing one is a null pointer.
            addr = unsafe {
                libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) as usize
            };
            // ORDERING: Relaxed, as above.
            FLAG.store(addr, Ordering::Relaxed);
        }
        if addr != 0 {
            // SAFETY: the address is glibc's `char __libc_single_threaded`, a global that lives
            // as long as the process. glibc writes it (zero) only as it creates a thread: while
            // this process has one thread nothing writes it, and once it has more it reads zero
            // to every thread (see above). The volatile read keeps the compiler from assuming it
            // unchanged between calls.
            return unsafe { std::ptr::read_volatile(addr as *const libc::c_char) } != 0;
        }
    }
    false
}

fn thread_count_from_stat() -> io::Result<usize> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut file = File::open("/proc/self/stat")?;
    let mut len = 0;
    loop {
        let n = file.read(&mut buf[len..])?;
        if n == 0 || len + n == buf.len() {
            len += n;
            break;
        }
        len += n;
    }
    let stat = std::str::from_utf8(&buf[..len]).map_err(|_| io::ErrorKind::InvalidData)?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or(io::ErrorKind::InvalidData)?;
    // `after` starts at field 3 (state); field 20 is 17 further on.
    after
        .split_ascii_whitespace()
        .nth(17)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("no thread count in /proc/self/stat"))
}

/// The number of online CPUs.
///
/// On `libc`: `sysconf(_SC_NPROCESSORS_ONLN)` is computed by libc (from `/sys`), not a system
/// call; rustix has no form of it.
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as usize } else { 1 }
}

/// Device, inode and modification time (ns) of the running executable.
pub(crate) fn exe_identity() -> io::Result<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe")?;
    Ok((
        meta.dev(),
        meta.ino(),
        meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
    ))
}

/// Whether `addr` lies in an executable segment of the main program (the executable, where the
/// dynamic loader mapped it).
///
/// On `libc`: `dl_iterate_phdr` walks the loader's own list of loaded objects, in memory: no
/// system call, no descriptor (so no EMFILE), where reading `/proc/self/maps` took a descriptor
/// and a dozen reads, the kernel formatting every mapping each time (a tenth of a spawned
/// child's start). glibc and musl both report the main program first; only that object is
/// looked at, and only its loadable segments with execute permission.
pub(crate) fn is_executable_address(addr: usize) -> bool {
    struct Query {
        addr: usize,
        found: bool,
    }
    unsafe extern "C" fn main_program(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `dl_phdr_info` for the duration of the call,
        // and `data` is the `Query` below, borrowed by nothing else while the walk runs.
        let (info, query) = unsafe { (&*info, &mut *data.cast::<Query>()) };
        let phdrs = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the object, mapped
            // for as long as the object is loaded (the main program: the whole process).
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let base = info.dlpi_addr as usize;
        query.found = phdrs.iter().any(|ph| {
            let lo = base.wrapping_add(ph.p_vaddr as usize);
            ph.p_type == libc::PT_LOAD
                && ph.p_flags & libc::PF_X != 0
                && query.addr >= lo
                && query.addr - lo < ph.p_memsz as usize
        });
        // Non-zero ends the walk: the main program is the first object.
        1
    }
    let mut query = Query { addr, found: false };
    // SAFETY: the callback matches the signature `dl_iterate_phdr` calls, and `data` points to
    // `query`, alive and otherwise unused until the call returns.
    unsafe { libc::dl_iterate_phdr(Some(main_program), (&raw mut query).cast()) };
    query.found
}

/// Sends `data` on a Unix stream socket with up to four descriptors attached (SCM_RIGHTS).
pub(crate) fn send_with_fds(sock: i32, data: &[u8], fds: &[i32]) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    if fds.is_empty() || fds.len() > 4 || data.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    check_fd(sock)?;
    for &fd in fds {
        check_fd(fd)?;
    }
    // SAFETY: `sock` is not negative, and the caller holds it open for the call (module docs).
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    let borrowed: Vec<BorrowedFd<'_>> = fds
        .iter()
        // SAFETY: each descriptor is not negative, and the caller holds it open for the call
        // (module docs); the borrows end with `borrowed`, at the end of this function.
        .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let n = loop {
        match rustix::net::sendmsg(
            sock,
            &[io::IoSlice::new(data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => break n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The descriptors went with the first byte; the rest is plain data.
    send_all_nosignal(sock, &data[n..])
}

/// Sends all of `data` on a socket with `MSG_NOSIGNAL` (a closed peer is `EPIPE`, not SIGPIPE),
/// retrying on `EINTR`.
pub(crate) fn send_all_nosignal(sock: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    send_parts_nosignal(sock, &mut [io::IoSlice::new(data)])
}

/// Sends all of `parts`, in order, on a socket with `MSG_NOSIGNAL`, retrying on `EINTR`: one
/// `sendmsg` when the socket takes it all (a frame's head and payload go out without being
/// copied together first).
#[inline]
pub(crate) fn send_parts_nosignal(
    sock: BorrowedFd<'_>,
    mut parts: &mut [io::IoSlice<'_>],
) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendFlags};
    // Drops leading empty parts: with nothing to send, nothing is sent.
    io::IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        let mut control = SendAncillaryBuffer::default();
        match rustix::net::sendmsg(sock, parts, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => io::IoSlice::advance_slices(&mut parts, n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Closes `fd` with the system call itself, not through the C library: a forked child that
/// calls no function of the C library it has not run since the fork takes no page fault on its
/// code.
#[inline]
pub(crate) fn close_now(fd: OwnedFd) {
    use std::os::fd::IntoRawFd;
    // SAFETY: `fd` is owned, so open and closed by nothing else; taking it out of its owner
    // means it is closed exactly once, here.
    unsafe { rustix::io::close(fd.into_raw_fd()) };
}

/// Receives up to `buf.len()` bytes from a socket without waiting (`MSG_DONTWAIT`, so the
/// descriptor needs no non-blocking flag): `WouldBlock` when nothing is there, 0 at end of
/// stream.
pub(crate) fn recv_nowait(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::net::recv(sock, buf, rustix::net::RecvFlags::DONTWAIT)?.0)
}

/// Receives up to `buf.len()` bytes and the descriptors attached (close-on-exec) from a Unix
/// stream socket. Returns the byte count (0 at end of stream) and the descriptors.
pub(crate) fn recv_with_fds(sock: i32, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    check_fd(sock)?;
    // SAFETY: `sock` is not negative, and the caller holds it open for the call (module docs).
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    // Room for twelve descriptors; the kernel closes any beyond (MSG_CTRUNC).
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(12))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [io::IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg.bytes,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut received = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            received.extend(fds);
        }
    }
    Ok((n, received))
}

/// A signalfd delivering SIGCHLD, with SIGCHLD blocked for normal delivery (single-threaded
/// callers only).
///
/// On `libc`: rustix has no `signalfd`, and blocks signals only through its `runtime` module
/// (with the kernel's signal set, not libc's).
pub(crate) fn sigchld_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for these calls.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
    }
    // SAFETY: `set` is valid; the old mask is not needed.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `set` is valid; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unblocks every signal (a forked child of a server that blocked SIGCHLD).
///
/// On `libc`, for the reason given at [`sigchld_fd`].
pub(crate) fn unblock_all_signals() {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is valid; the old mask is not needed.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Restores the default action of `sig`.
///
/// On `libc`: rustix changes signal actions only through its `runtime` module, which bypasses
/// libc's own handling of them.
pub(crate) fn default_signal(sig: i32) {
    // SAFETY: installing SIG_DFL has no preconditions.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Sends `sig` (a named signal) through a pidfd (no pid-reuse race).
pub(crate) fn pidfd_send_signal(pidfd: i32, sig: i32) -> io::Result<()> {
    let sig = to_signal(sig)?;
    check_fd(pidfd)?;
    // SAFETY: `pidfd` is not negative, and the caller holds it open for the call (module docs).
    let pidfd = unsafe { BorrowedFd::borrow_raw(pidfd) };
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// Sets `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: i32) -> io::Result<()> {
    check_fd(fd)?;
    // SAFETY: `fd` is not negative, and the caller holds it open for the call (module docs).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = rustix::fs::fcntl_getfl(fd)?;
    Ok(rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK)?)
}

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(File, File)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((File::from(r), File::from(w)))
}

/// Sets close-on-exec on `fd`.
pub(crate) fn set_cloexec(fd: i32) -> io::Result<()> {
    set_fd_flags(fd, FdFlags::CLOEXEC)
}

/// Ignores `sig`.
///
/// On `libc`, for the reason given at [`default_signal`].
pub(crate) fn ignore_signal(sig: i32) {
    // SAFETY: installing SIG_IGN has no preconditions.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// Reads from a raw descriptor; returns the byte count or an error.
pub(crate) fn read_fd(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    check_fd(fd)?;
    // SAFETY: `fd` is not negative, and the caller holds it open for the call (module docs).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(rustix::io::read(fd, buf)?)
}

/// Whether a process `pid` exists (zombies included): `false` only when `kill(pid, 0)` says
/// `ESRCH`; any other answer (success, `EPERM`, an invalid pid) counts as existing.
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = to_pid(pid) else {
        return true;
    };
    rustix::process::test_kill_process(pid) != Err(Errno::SRCH)
}

/// `madvise(MADV_DONTFORK)` on a mapping: children forked later do not inherit it.
pub(crate) fn dont_fork(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: MADV_DONTFORK changes only what fork copies; `addr..addr+len` is a mapping the
    // caller owns (a page-aligned mmap), and no memory is read or written.
    Ok(unsafe { rustix::mm::madvise(addr.cast(), len, rustix::mm::Advice::LinuxDontFork) }?)
}

/// `RLIM_INFINITY` as the `u64` the functions below report and take.
const RLIM_INFINITY: u64 = u64::MAX;

/// The soft and hard limits of open descriptors (`RLIMIT_NOFILE`).
pub(crate) fn fd_limits() -> io::Result<(u64, u64)> {
    let r = rustix::process::getrlimit(Resource::Nofile);
    Ok((
        r.current.unwrap_or(RLIM_INFINITY),
        r.maximum.unwrap_or(RLIM_INFINITY),
    ))
}

/// Sets the soft limit of open descriptors (at most the hard limit).
pub(crate) fn set_fd_soft_limit(soft: u64, hard: u64) -> io::Result<()> {
    let limit = |v: u64| (v != RLIM_INFINITY).then_some(v);
    // Raising the soft limit up to the hard one needs no privilege.
    Ok(rustix::process::setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit(soft.min(hard)),
            maximum: limit(hard),
        },
    )?)
}

/// How many descriptors this process has open (entries of `/proc/self/fd`).
pub(crate) fn open_fd_count() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::{is_executable_address, poll_into};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Each descriptor's `revents` lands in its own slot, on the stack (up to four) and on the
    /// heap (more), with negative descriptors skipped wherever they stand.
    #[test]
    fn poll_into_reports_each_descriptor_in_its_slot() {
        let pairs: Vec<_> = (0..6)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
            .collect();
        // Every second pair has something to read.
        for (i, (tx, _)) in pairs.iter().enumerate() {
            if i % 2 == 0 {
                std::io::Write::write_all(&mut &*tx, b"x").unwrap();
            }
        }
        let readable = |i: usize| i % 2 == 0;
        for len in [1, 2, 4, 5, 6] {
            for skipped in [None, Some(0), Some(len - 1)] {
                let fds: Vec<(i32, i16)> = (0..len)
                    .map(|i| match skipped {
                        Some(s) if s == i => (-1, libc::POLLIN),
                        _ => (pairs[i].1.as_raw_fd(), libc::POLLIN),
                    })
                    .collect();
                let mut revents = vec![-1; len];
                poll_into(&fds, &mut revents, Some(Duration::ZERO)).unwrap();
                for (i, &r) in revents.iter().enumerate() {
                    let want = readable(i) && skipped != Some(i);
                    assert_eq!(
                        r != 0,
                        want,
                        "{len} descriptors, {skipped:?} skipped, slot {i}"
                    );
                }
            }
        }
        let mut none = [-1i16; 2];
        poll_into(
            &[(-1, libc::POLLIN), (-1, libc::POLLIN)],
            &mut none,
            Some(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(none, [0, 0]);
    }

    #[inline(never)]
    fn code_of_this_executable() -> u32 {
        std::hint::black_box(7)
    }

    static DATA_OF_THIS_EXECUTABLE: u64 = 7;

    #[test]
    fn only_code_of_the_executable_is_executable() {
        let f = code_of_this_executable as fn() -> u32 as usize;
        assert!(is_executable_address(f), "a function of this binary");
        assert!(is_executable_address(
            is_executable_address as fn(usize) -> bool as usize
        ));
        let heap = Box::new(0u64);
        assert!(
            !is_executable_address(&*heap as *const u64 as usize),
            "the heap"
        );
        let stack = 0u64;
        assert!(
            !is_executable_address(&raw const stack as usize),
            "the stack"
        );
        assert!(
            !is_executable_address(&raw const DATA_OF_THIS_EXECUTABLE as usize),
            "read-only data of this binary"
        );
        // Code, but of a shared library (libc), not of the executable.
        let getpid = libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize;
        assert!(!is_executable_address(getpid), "libc's code");
        assert!(!is_executable_address(0));
        assert!(!is_executable_address(usize::MAX));
        assert!(!is_executable_address(f.wrapping_add(1 << 62)));
    }
}
