//! The `Spawn` start method: the current executable, run again with `IPC_CORE_ROLE=spawn`.
//!
//! The child's constructor (see `role.rs`) dispatches to [`run`] before `main`. The parent sends
//! a [`Request`] on a socket the child inherits (its number in `IPC_CORE_FD`): the identity of the
//! binary, the offsets of the entry point and of the target from an anchor function, the child's
//! name, and the encoded argument. The child checks the binary and the offsets (reporting why it
//! refuses, if it does), runs the target and reports the outcome on the same socket; its ready
//! report goes out with its first other one (the argument decoded), in one write.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::Target;
use super::child::{self, ChildInfo, Request, tag};
use super::exit::StartError;
use super::fn_ref::FnRef;
use super::running::{Report, Running, Watch};
use crate::platform;

/// The role name.
pub(crate) const ROLE: &str = "spawn";

/// The environment variable carrying the inherited socket's number.
pub(super) const FD_ENV: &str = "IPC_CORE_FD";

/// How long a spawned child may take to report ready before it is killed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn request(target: &Target, info: ChildInfo, daemon: bool) -> io::Result<Request> {
    let key = child::process_key();
    // SAFETY: `KIND_PROCESS` pairs a `Trampoline` (the entry point `Process` chose for `A` and
    // `R`) with the `fn(A) -> R` it expects; a test skew only makes the child refuse.
    let target_ref = unsafe {
        FnRef::new(
            &key,
            child::KIND_PROCESS,
            target.trampoline as usize,
            target.func,
        )
    };
    let target_ref = match target.func_skew {
        0 => target_ref,
        skew => target_ref.skewed(&key, skew),
    };
    Ok(Request {
        exe: child::ExeId::current()?,
        target: target_ref,
        key,
        info,
        daemon,
        arg: target.arg.clone(),
    })
}

/// Runs the current executable with `role`, giving it a copy of `fd` (its number in
/// `IPC_CORE_FD`); returns the child's pid, which the caller reaps. The parent's page tables
/// are not copied (see [`platform::spawn_self`]).
pub(super) fn exec_role(role: &str, fd: i32) -> io::Result<u32> {
    crate::role::ensure_linked();
    platform::spawn_self(&[(crate::role::ROLE_ENV, role)], fd, FD_ENV)
}

pub(super) fn start(target: &Target, info: ChildInfo, daemon: bool) -> Result<Running, StartError> {
    let req = request(target, info, daemon)?;
    let payload = crate::codec::encode(&req).map_err(StartError::Encode)?;
    let (ours, theirs) = UnixStream::pair()?;
    let pid = exec_role(ROLE, theirs.as_raw_fd())?;
    drop(theirs);
    let pidfd = platform::pidfd_open(pid).ok();
    let mut ours = ours;
    // A child that died at once closes its end: the write fails, and the wait below reports it.
    let _ = child::write_frame(&mut ours, b'Q', &payload);
    let mut running = Running::new(pid, pidfd, ours, Watch::Child)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        running.refresh()?;
        if let Some(i) = running
            .reports
            .iter()
            .position(|r| matches!(r, Report::Ready | Report::BadFunction(_)))
        {
            if let Report::BadFunction(message) = running.reports.remove(i) {
                let _ = running.wait(None);
                return Err(StartError::BadFunction { message });
            }
            return Ok(running);
        }
        if let Some(status) = running.status {
            return Err(StartError::ChildDied {
                exit_code: status.exit_code(),
            });
        }
        if Instant::now() >= deadline {
            let _ = running.signal(libc::SIGKILL);
            let _ = running.wait(None);
            return Err(StartError::ChildDied {
                exit_code: running.status.and_then(|s| s.exit_code()),
            });
        }
        running.wait(Some(
            (Instant::now() + Duration::from_millis(50)).min(deadline),
        ))?;
    }
}

/// The spawned child's entry, run by the role dispatcher before `main`; never returns.
pub(crate) fn run() -> ! {
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        eprintln!("ipc-core: spawned child without its channel");
        platform::exit_now(1)
    };
    // SAFETY: constructors run before `main`, single-threaded: nothing reads the environment.
    unsafe { std::env::remove_var(FD_ENV) };
    // As in any Rust program (std ignores SIGPIPE before `main`, which this child never runs).
    platform::ignore_signal(libc::SIGPIPE);
    // SAFETY: the parent handed us this descriptor (its number in IPC_CORE_FD) and nothing else
    // in this fresh image owns it.
    let mut channel = unsafe { UnixStream::from_raw_fd(fd) };
    // Close-on-exec again, so that programs this child runs do not inherit the channel.
    let _ = platform::set_cloexec(fd);
    let req: Request = match child::read_frame(&mut channel) {
        Ok(Some((b'Q', bytes))) => match crate::codec::decode(&bytes) {
            Ok(r) => r,
            Err(_) => platform::exit_now(1),
        },
        // The parent died, or sent nothing sensible.
        _ => platform::exit_now(1),
    };
    // A daemon dies with its parent. Armed here, after the exec; a parent that died before
    // this is caught by the check of the parent's pid.
    if req.daemon {
        child::arm_daemon(req.info.parent.pid());
    }
    let resolved = child::check_exe(&req.exe).and_then(|()| req.resolve());
    let (trampoline, func) = match resolved {
        Ok(r) => r,
        Err(message) => {
            eprintln!("ipc-core: {message}");
            let _ = child::write_frame(&mut channel, tag::BAD_FUNCTION, message.as_bytes());
            platform::exit_now(1)
        }
    };
    // `READY` goes out with the first report (`DECODED`, once the argument is decoded): the
    // parent's start waits for both.
    child::defer_ready();
    child::run_request(channel, req, trampoline, func)
}
