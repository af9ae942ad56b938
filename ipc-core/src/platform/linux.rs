//! Linux syscalls: memfd, POSIX shared memory, futex, /proc liveness, getrandom.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
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
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len)?;
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
            word.as_ptr(),
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
    let count = count.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access its memory.
    let ret = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count) };
    if ret < 0 { 0 } else { ret as usize }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`, clock ticks since boot), or
/// `None` if no such process exists (or it is a zombie already reaped).
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `after` starts at field 3 (state); field 22 is 19 further on.
    fields.nth(18)?.parse().ok()
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

/// 128 bits from the kernel's random source.
pub(crate) fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n <= 0 {
            // getrandom cannot fail on Linux >= 3.17 except EINTR; fall back to the clock.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            return t ^ (u128::from(getpid()) << 64);
        }
        filled += n as usize;
    }
    u128::from_ne_bytes(buf)
}
