//! Linux syscalls: memfd, POSIX shared memory, futex, /proc liveness, getrandom.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use crate::primitive::{AtomicU32, Ordering};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An anonymous memory file of `len` bytes; freed by the kernel with its last fd and mapping.
pub(crate) fn memfd_create(debug_name: &str, len: u64) -> io::Result<File> {
    let cname = CString::new(debug_name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::memfd_create(cname.as_ptr(), flags) })?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len)?;
    // Fix the size for good: a peer that reopens the memfd cannot shrink it under the other
    // mappings (which would turn their next access into SIGBUS).
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS on a memfd we own has no memory-safety preconditions.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(file)
}

fn shm_path(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// `shm_open(O_CREAT | O_EXCL | O_RDWR, 0600)`: fails with `AlreadyExists` if the name is taken.
pub(crate) fn shm_create(name: &str) -> io::Result<File> {
    let path = shm_path(name)?;
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::shm_open(path.as_ptr(), flags, 0o600) })?;
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `shm_open(O_RDWR)` of an existing name.
pub(crate) fn shm_open(name: &str) -> io::Result<File> {
    let path = shm_path(name)?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::shm_open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `shm_unlink`: removes the name; existing mappings stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name)?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    cvt(unsafe { libc::shm_unlink(path.as_ptr()) }).map(drop)
}

/// Device and inode of an open file: the identity of a memfd across processes.
pub(crate) fn file_identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// The size of an open file (`fstat`; lighter than std's `statx` with every field).
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` has room for the stat structure fstat writes; the fd is open while `file` is.
    cvt(unsafe { libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.st_size.max(0) as u64)
}

/// Duplicates a descriptor of this process (close-on-exec).
pub(crate) fn dup_fd(fd: i32) -> io::Result<File> {
    // SAFETY: F_DUPFD_CLOEXEC on any integer is harmless; an invalid fd yields EBADF.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
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

/// `FUTEX_WAIT` (shared, not private) on `word` while it equals `expected`, for at most `timeout`
/// (measured by the kernel on CLOCK_MONOTONIC).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait {
    futex_wait_at(word.as_ptr().cast_const(), expected, timeout)
}

/// `FUTEX_WAIT` on the 32-bit word at `addr`. The kernel only reads the address (an unmapped
/// one gives `EFAULT`, reported as a spurious wake), so any value is memory-safe.
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
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; the kernel only reads
    // it. `ts_ptr` is null or points at `ts`, which lives until the call returns.
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
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => FutexWait::ValueChanged,
        Some(libc::ETIMEDOUT) => FutexWait::TimedOut,
        _ => FutexWait::Woken,
    }
}

/// `FUTEX_WAKE` (shared) of up to `count` waiters on `word`; returns how many were woken.
pub(crate) fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    futex_wake_at(word.as_ptr().cast_const(), count)
}

/// `FUTEX_WAKE` (shared) of up to `count` waiters on the word at `addr`.
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

/// One record of the `futex_waitv` array (`struct futex_waitv` of the kernel's uapi).
#[repr(C)]
struct FutexWaitvRecord {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// The system call number of `futex_waitv` (the same on every architecture that has it; libc
/// does not name it on every target yet).
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// `FUTEX2_SIZE_U32`: the word is 32 bits (no `FUTEX2_PRIVATE`: the shared kind, so that a
/// waker in another process reaches the sleeper).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// `futex_waitv` (Linux 5.16+): sleeps until one of `words` is woken or no longer holds its
/// expected value, or `timeout` passes (measured on CLOCK_MONOTONIC; `None`: no limit).
pub(crate) fn futex_waitv(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> FutexWaitv {
    if words.is_empty() || words.len() > FUTEX_WAITV_MAX {
        return FutexWaitv::Unsupported;
    }
    let records: Vec<FutexWaitvRecord> = words
        .iter()
        .map(|(word, expected)| FutexWaitvRecord {
            val: u64::from(*expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // The timeout is absolute on the clock named below.
    let abs = match timeout {
        Some(left) => {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid out-pointer for the call.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let nsec = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
            let sec = (now.tv_sec as u64)
                .saturating_add(left.as_secs())
                .saturating_add(nsec / 1_000_000_000)
                .min(i64::MAX as u64);
            Some(libc::timespec {
                tv_sec: sec as libc::time_t,
                tv_nsec: (nsec % 1_000_000_000) as libc::c_long,
            })
        }
        None => None,
    };
    let abs_ptr = abs
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `records` is an array of `records.len()` (at most FUTEX_WAITV_MAX) futex_waitv
    // records whose addresses are aligned u32 words borrowed for the call (the kernel only reads
    // them and uses their addresses as keys); `abs_ptr` is null or points at `abs`, which lives
    // until the call returns.
    let ret = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            records.as_ptr(),
            records.len() as libc::c_uint,
            0 as libc::c_uint,
            abs_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if ret >= 0 {
        return FutexWaitv::Woken;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => FutexWaitv::ValueChanged,
        Some(libc::ETIMEDOUT) => FutexWaitv::TimedOut,
        Some(libc::ENOSYS | libc::EINVAL) => FutexWaitv::Unsupported,
        _ => FutexWaitv::Woken,
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
    let raw_pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    if raw_pid <= 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // kill(pid, 0) needs no descriptor: ESRCH settles "gone" even at the fd limit. EPERM means
    // the process exists (another user's), which /proc then describes.
    // SAFETY: signal 0 sends nothing; kill has no memory effects.
    if unsafe { libc::kill(raw_pid, 0) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(PidState::Gone);
        }
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
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
    // path[len] is already 0.
    // SAFETY: `path` is NUL-terminated within its 32 bytes (at most 6 + 10 + 5 bytes are used).
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => Ok(PidState::Gone),
            _ => Err(e),
        };
    }
    let mut buf = [0u8; 1024];
    let mut filled = 0;
    let read_result = loop {
        if filled == buf.len() {
            break Ok(());
        }
        // SAFETY: the pointer and length describe the unfilled tail of `buf`; `fd` is open.
        let r = unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        if r == 0 {
            break Ok(());
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break Err(e);
        }
        filled += r as usize;
    };
    // SAFETY: `fd` was opened above and is closed exactly once, here.
    unsafe { libc::close(fd) };
    if let Err(e) = read_result {
        // The process went away while we read its file.
        return match e.raw_os_error() {
            Some(libc::ESRCH) | Some(libc::ENOENT) => Ok(PidState::Gone),
            _ => Err(e),
        };
    }
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
/// handler that `role.rs` registers before `main`.
static PID: AtomicU32 = AtomicU32::new(0);

/// The calling process's id (a system call only the first time in each process).
pub(crate) fn getpid() -> u32 {
    // ORDERING: Relaxed, the value is the same for every thread of the process; a stale 0 only
    // costs a system call.
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            // ORDERING: Relaxed, as above.
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

extern "C" fn forget_pid_in_child() {
    // ORDERING: Relaxed, the child is single-threaded at this point.
    PID.store(0, Ordering::Relaxed);
}

/// Registers the fork handler that keeps the cached pid right in forked children.
pub(crate) fn register_atfork() {
    // SAFETY: the handler is an `extern "C"` function that only stores to an atomic, which is
    // async-signal-safe and therefore fine in a child right after fork.
    unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
}

/// 128 bits from the kernel's random source (`getrandom`, retried on `EINTR`; `/dev/urandom`
/// on a kernel without the call).
pub(crate) fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
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

/// Ends the process at once with `code`, without running exit handlers (as a forked child must).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// The parent process id.
pub(crate) fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Asks for SIGKILL when the parent (thread) exits; returns an error if prctl fails.
pub(crate) fn set_parent_death_kill() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG with a valid signal number has no memory effects.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// Sends `sig` to process `pid`.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    if pid <= 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: kill has no memory effects; `pid` is a single positive process id.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `waitpid(pid, WNOHANG)`: `Some(raw status)` once the child has ended (and is reaped).
pub(crate) fn try_wait(pid: u32) -> io::Result<Option<i32>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r > 0 {
            return Ok(Some(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `waitpid(-1, WNOHANG)`: one ended child of this process, as `(pid, raw status)`.
pub(crate) fn try_wait_any() -> Option<(u32, i32)> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the duration of the call.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if r > 0 {
        Some((r as u32, status))
    } else {
        None
    }
}

/// A pidfd for `pid`: readable once the process has ended.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor owned by nobody else (pidfds are close-on-exec).
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// `poll` on `fds` (fd, events) for at most `timeout` (`None`: forever); returns the `revents`.
pub(crate) fn poll(fds: &[(i32, i16)], timeout: Option<Duration>) -> io::Result<Vec<i16>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(d) => {
            // Round up, so a short positive timeout does not become a busy zero.
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    };
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structures.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![0; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents).collect())
}

/// Waits at most `timeout` (`None`: forever) until one of `fds` is readable or hung up; returns
/// whether one is (`false` on timeout, on an interrupting signal, or on an error).
pub(crate) fn poll_readable(fds: &[i32], timeout: Option<Duration>) -> bool {
    let set: Vec<(i32, i16)> = fds.iter().map(|&fd| (fd, libc::POLLIN)).collect();
    poll(&set, timeout).is_ok_and(|revents| revents.iter().any(|&r| r != 0))
}

/// Clears close-on-exec on `fd` (in a child between fork and exec: async-signal-safe).
pub(crate) fn clear_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: F_SETFD on an integer descriptor has no memory effects.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// The number of threads of this process: the link count of `/proc/self/task` is two plus the
/// number of threads (one `stat`, no file to read); field 20 of `/proc/self/stat` otherwise.
pub(crate) fn thread_count() -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata("/proc/self/task") {
        if meta.nlink() > 2 {
            return Ok((meta.nlink() - 2) as usize);
        }
    }
    thread_count_from_stat()
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

/// Whether `addr` lies in an executable mapping of the file with inode `ino` (the executable).
pub(crate) fn is_executable_address(addr: usize, ino: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|line| {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(_off), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return false;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            return false;
        };
        perms.as_bytes().get(2) == Some(&b'x')
            && inode.parse::<u64>().ok() == Some(ino)
            && (lo..hi).contains(&addr)
    })
}

/// Sends `data` on a Unix stream socket with up to four descriptors attached (SCM_RIGHTS).
pub(crate) fn send_with_fds(sock: i32, data: &[u8], fds: &[i32]) -> io::Result<()> {
    const SPACE: usize = 64;
    #[repr(C, align(8))]
    struct Cmsg([u8; SPACE]);
    if fds.is_empty() || fds.len() > 4 || data.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut cbuf = Cmsg([0; SPACE]);
    let bytes = size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    debug_assert!(space <= SPACE);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `cbuf`, which has room for one header with one int.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: `cmsg` is non-null (the control buffer is large enough) and within `cbuf`, with
    // room for `fds.len()` ints after the header.
    unsafe {
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<i32>(), fds.len());
    }
    loop {
        // SAFETY: `msg` describes `data` and `cbuf`, both alive for the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n < data.len() {
            // The descriptor went with the first byte; the rest is plain data.
            let mut rest = &data[n..];
            while !rest.is_empty() {
                // SAFETY: the pointer and length describe `rest`.
                let m = unsafe {
                    libc::send(sock, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL)
                };
                if m < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                rest = &rest[m as usize..];
            }
        }
        return Ok(());
    }
}

/// Receives up to `buf.len()` bytes and the descriptors attached (close-on-exec) from a Unix
/// stream socket. Returns the byte count (0 at end of stream) and the descriptors.
pub(crate) fn recv_with_fds(
    sock: i32,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use std::os::fd::FromRawFd;
    const SPACE: usize = 64;
    #[repr(C, align(8))]
    struct Cmsg([u8; SPACE]);
    let mut cbuf = Cmsg([0; SPACE]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = SPACE as _;
    let n = loop {
        // SAFETY: `msg` describes `buf` and `cbuf`, both alive and writable for the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut received = Vec::new();
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and points into `cbuf` as recvmsg laid it out.
        let (level, ty, len) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN is a pure computation.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            // `cmsg_len` is `usize` on glibc and `u32` on musl.
            #[allow(clippy::unnecessary_cast)]
            let count = (len as usize).saturating_sub(header) / size_of::<i32>();
            for i in 0..count {
                // SAFETY: the kernel wrote `count` descriptors after the header.
                let fd =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>().add(i)) };
                // SAFETY: the kernel installed `fd` in this process for us alone.
                received.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            }
        }
        // SAFETY: `msg` and `cmsg` are valid as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((n, received))
}

/// A signalfd delivering SIGCHLD, with SIGCHLD blocked for normal delivery (single-threaded
/// callers only).
pub(crate) fn sigchld_fd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t for these calls.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
    }
    // SAFETY: `set` is valid; the old mask is not needed.
    cvt(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: `set` is valid; -1 asks for a new descriptor.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: `fd` is new and owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Unblocks every signal (a forked child of a server that blocked SIGCHLD).
pub(crate) fn unblock_all_signals() {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is valid; the old mask is not needed.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Restores the default action of `sig`.
pub(crate) fn default_signal(sig: i32) {
    // SAFETY: installing SIG_DFL has no preconditions.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Sends `sig` through a pidfd (no pid-reuse race).
pub(crate) fn pidfd_send_signal(pidfd: i32, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo and no flags has no memory effects.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: F_GETFL on an integer descriptor has no memory effects.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: F_SETFL on an integer descriptor has no memory effects.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Sets close-on-exec on `fd`.
pub(crate) fn set_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: F_SETFD on an integer descriptor has no memory effects.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Ignores `sig`.
pub(crate) fn ignore_signal(sig: i32) {
    // SAFETY: installing SIG_IGN has no preconditions.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// Reads from a raw descriptor; returns the byte count or an error.
pub(crate) fn read_fd(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its whole length during the call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether a process `pid` exists (zombies included): `false` only when `kill(pid, 0)` says
/// `ESRCH`; any other answer (success, `EPERM`, an invalid pid) counts as existing.
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if raw <= 0 {
        return true;
    }
    // SAFETY: signal 0 sends nothing; kill has no memory effects.
    if unsafe { libc::kill(raw, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// `madvise(MADV_DONTFORK)` on a mapping: children forked later do not inherit it.
pub(crate) fn dont_fork(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: MADV_DONTFORK changes only what fork copies; `addr..addr+len` is a mapping the
    // caller owns (a page-aligned mmap), and no memory is read or written.
    cvt(unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTFORK) }).map(drop)
}

/// The soft and hard limits of open descriptors (`RLIMIT_NOFILE`).
pub(crate) fn fd_limits() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer for getrlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    // `rlim_t` is `u64` on 64-bit glibc and may be narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Ok((r.rlim_cur as u64, r.rlim_max as u64))
}

/// Sets the soft limit of open descriptors (at most the hard limit).
pub(crate) fn set_fd_soft_limit(soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft.min(hard) as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `r` is a valid rlimit; raising the soft limit up to the hard one needs no
    // privilege and has no memory effects.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }).map(drop)
}

/// How many descriptors this process has open (entries of `/proc/self/fd`).
pub(crate) fn open_fd_count() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}
