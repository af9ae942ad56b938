//! The `ForkServer` start method: a single-threaded server process forks children on request.
//!
//! The server is this executable run again with `IPC_CORE_ROLE=forkserver` (dispatched before
//! `main`, so it never runs the program's own code and never starts a thread), started the first
//! time a process asks for it, and shared by every later request of that process. A request
//! carries the same [`Request`] as the spawn method, plus two descriptors passed with
//! `SCM_RIGHTS`: the child's end of the result channel, and the write end of a status pipe. The
//! server checks the function identity, forks, replies with the child's pid, and — being the
//! child's real parent — reaps it (SIGCHLD through a signalfd) and writes its raw wait status to
//! the status pipe, so the requester learns the exit code Python would report.
//!
//! The server watches its requester through the request socket: when the requester dies (the
//! socket reads end-of-file), the server kills its daemon children and exits. Daemon children
//! arm `PR_SET_PDEATHSIG` against the server, which covers the server's own death.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::Target;
use super::child::{self, ChildInfo, ExeId, Request, tag};
use super::exit::StartError;
use super::fn_ref::FnRef;
use super::running::{Running, Watch};
use super::spawn;
use crate::liveness::ProcessIdentity;
use crate::platform;
use crate::raw::os::ForkLocal;

/// The role name.
pub(crate) const ROLE: &str = "forkserver";

struct Conn {
    /// The process that started this server: a forked child must start its own.
    owner_pid: u32,
    stream: UnixStream,
    server_pid: u32,
}

/// This process's connection to its fork server; a fork child starts with none (see
/// [`ForkLocal`]).
static SERVER: ForkLocal<Option<Conn>> = ForkLocal::new(|| None);

/// In a freshly forked child: closes the inherited connection to the parent's server, so the
/// server still sees end-of-file when the parent dies.
#[inline]
pub(super) fn forget_inherited() {
    // A parent thread that held it at the fork (mid-request) leaves it open here.
    if let Some(mut guard) = SERVER.try_lock_inherited() {
        *guard = None;
    }
}

fn connect() -> Result<Conn, StartError> {
    let (mut ours, theirs) = UnixStream::pair()?;
    let server_pid = spawn::exec_role(ROLE, theirs.as_raw_fd())?;
    drop(theirs);
    let hello = crate::codec::encode(&(ExeId::current()?, ProcessIdentity::current()?))
        .map_err(StartError::Encode)?;
    let failed = |message: String| {
        let _ = platform::kill(server_pid, libc::SIGKILL);
        let _ = reap(server_pid);
        StartError::ForkServer { message }
    };
    if let Err(e) = child::write_frame(&mut ours, b'H', &hello) {
        return Err(failed(format!("cannot reach the new server: {e}")));
    }
    match child::read_frame(&mut ours) {
        Ok(Some((tag::OK, _))) => Ok(Conn {
            owner_pid: platform::getpid(),
            stream: ours,
            server_pid,
        }),
        Ok(Some((tag::BAD_FUNCTION, msg))) => {
            Err(failed(String::from_utf8_lossy(&msg).into_owned()))
        }
        Ok(_) => Err(failed("the server ended before it was ready".into())),
        Err(e) => Err(failed(format!("the server failed to start: {e}"))),
    }
}

/// Reaps a server that ended, without blocking on one that did not.
fn reap(pid: u32) -> io::Result<()> {
    for _ in 0..100 {
        if platform::try_wait(pid)?.is_some() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(tag);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

pub(super) fn start(target: &Target, info: ChildInfo, daemon: bool) -> Result<Running, StartError> {
    let req = spawn::request(target, info, daemon)?;
    let payload = crate::codec::encode(&req).map_err(StartError::Encode)?;
    let message = frame(b'Q', &payload);
    let (ours, theirs) = UnixStream::pair()?;
    let (status_r, status_w) = platform::pipe()?;
    let reply = {
        let mut guard = SERVER.lock();
        let me = platform::getpid();
        let mut attempt = 0;
        loop {
            if guard.as_ref().is_none_or(|c| c.owner_pid != me) {
                *guard = Some(connect()?);
            }
            let Some(conn) = guard.as_mut() else {
                continue;
            };
            let sent = platform::send_with_fds(
                conn.stream.as_raw_fd(),
                &message,
                &[theirs.as_raw_fd(), status_w.as_raw_fd()],
            );
            match sent {
                Ok(()) => {}
                Err(e) if attempt == 0 => {
                    // The server died since the last request: start a new one, once.
                    let _ = e;
                    if let Some(old) = guard.take() {
                        let _ = reap(old.server_pid);
                    }
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(StartError::Io(e)),
            }
            match read_request(&mut conn.stream) {
                Ok(Some(reply)) => break reply,
                other => {
                    let server = guard.take();
                    if let Some(old) = server {
                        let _ = reap(old.server_pid);
                    }
                    let message = match other {
                        Err(e) => format!("the server failed: {e}"),
                        _ => "the server died while handling the request".into(),
                    };
                    return Err(StartError::ForkServer { message });
                }
            }
        }
    };
    drop(theirs);
    drop(status_w);
    match reply {
        (tag::OK, pid, mut fds) if pid.len() == 4 => {
            let pid = u32::from_le_bytes([pid[0], pid[1], pid[2], pid[3]]);
            // The server opened the child's pidfd before it could reap the child, so the pidfd
            // names this very process even if it has ended (and its pid been reused) by now.
            let pidfd = fds.pop();
            Ok(Running::new(pid, pidfd, ours, Watch::Server(status_r))?)
        }
        (tag::BAD_FUNCTION, msg, _) => Err(StartError::BadFunction {
            message: String::from_utf8_lossy(&msg).into_owned(),
        }),
        _ => Err(StartError::ForkServer {
            message: "malformed reply".into(),
        }),
    }
}

/// One request: its tag, its payload, and the descriptors sent with it.
type Incoming = (u8, Vec<u8>, Vec<OwnedFd>);

/// Reads one request frame and the descriptors sent with it; `None` at end of stream.
fn read_request(conn: &mut UnixStream) -> io::Result<Option<Incoming>> {
    let mut head = [0u8; 5];
    let (n, fds) = platform::recv_with_fds(conn.as_raw_fd(), &mut head)?;
    if n == 0 {
        return Ok(None);
    }
    conn.read_exact(&mut head[n..])?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > child::MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
    }
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload)?;
    Ok(Some((head[0], payload, fds)))
}

/// The server's main loop, run by the role dispatcher before `main`; never returns.
pub(crate) fn run() -> ! {
    let Some(fd) = std::env::var(spawn::FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        platform::exit_now(1)
    };
    // SAFETY: constructors run before `main`, single-threaded: nothing reads the environment.
    unsafe { std::env::remove_var(spawn::FD_ENV) };
    let _ = platform::set_cloexec(fd);
    // SAFETY: the requester handed us this descriptor and nothing else in this image owns it.
    let mut conn = unsafe { UnixStream::from_raw_fd(fd) };
    // A Ctrl-C aimed at the terminal's process group is for the program, not for its server
    // (as in Python's forkserver); children get the default action back.
    platform::ignore_signal(libc::SIGINT);
    platform::ignore_signal(libc::SIGPIPE);
    let hello = match child::read_frame(&mut conn) {
        Ok(Some((b'H', bytes))) => crate::codec::decode::<(ExeId, ProcessIdentity)>(&bytes),
        _ => platform::exit_now(1),
    };
    let Ok((exe, _requester)) = hello else {
        platform::exit_now(1)
    };
    if let Err(message) = child::check_exe(&exe) {
        let _ = child::write_frame(&mut conn, tag::BAD_FUNCTION, message.as_bytes());
        platform::exit_now(1);
    }
    let sigchld = match platform::sigchld_fd() {
        Ok(fd) => fd,
        Err(e) => {
            let msg = format!("cannot watch children: {e}");
            let _ = child::write_frame(&mut conn, tag::BAD_FUNCTION, msg.as_bytes());
            platform::exit_now(1)
        }
    };
    if child::write_frame(&mut conn, tag::OK, &[]).is_err() {
        platform::exit_now(1);
    }
    let server_pid = platform::getpid();
    // Offsets already checked against this image's code: (trampoline, function) -> addresses.
    let mut resolved: HashMap<FnRef, (child::Trampoline, usize)> = HashMap::new();
    // pid -> (status pipe, daemon)
    let mut children: HashMap<u32, (File, bool)> = HashMap::new();
    loop {
        let fds = [
            (conn.as_raw_fd(), libc::POLLIN),
            (sigchld.as_raw_fd(), libc::POLLIN),
        ];
        let Ok(revents) = platform::poll(&fds, None) else {
            break;
        };
        if revents[1] != 0 {
            let mut info = [0u8; 128];
            while platform::read_fd(sigchld.as_raw_fd(), &mut info).is_ok_and(|n| n > 0) {}
            while let Some((pid, raw)) = platform::try_wait_any() {
                if let Some((mut pipe, _)) = children.remove(&pid) {
                    let _ = pipe.write_all(&raw.to_le_bytes());
                }
            }
        }
        if revents[0] != 0 {
            let (t, payload, mut fds) = match read_request(&mut conn) {
                Ok(Some(r)) => r,
                // The requester died or broke the protocol.
                _ => break,
            };
            let reply = if t != b'Q' || fds.len() != 2 {
                Err("malformed request".to_owned())
            } else {
                crate::codec::decode::<Request>(&payload)
                    .map_err(|e| format!("malformed request: {e}"))
                    .and_then(|req| {
                        let key = req.target;
                        match resolved.get(&key) {
                            Some(&r) => Ok((req, r)),
                            None => {
                                let r = req.resolve()?;
                                resolved.insert(key, r);
                                Ok((req, r))
                            }
                        }
                    })
            };
            let (req, (trampoline, func)) = match reply {
                Ok(r) => r,
                Err(message) => {
                    if child::write_frame(&mut conn, tag::BAD_FUNCTION, message.as_bytes()).is_err()
                    {
                        break;
                    }
                    continue;
                }
            };
            let status_w = File::from(fds.pop().expect("two descriptors"));
            let channel = UnixStream::from(fds.pop().expect("two descriptors"));
            // SAFETY: the server is single-threaded (it runs before `main` and starts no thread),
            // so the child may run arbitrary code.
            match unsafe { platform::fork() } {
                Ok(0) => {
                    drop(conn);
                    drop(sigchld);
                    drop(status_w);
                    drop(children);
                    platform::unblock_all_signals();
                    platform::default_signal(libc::SIGINT);
                    platform::default_signal(libc::SIGCHLD);
                    if req.daemon {
                        child::arm_daemon(server_pid);
                    }
                    child::run_request(channel, req, trampoline, func)
                }
                Ok(pid) => {
                    drop(channel);
                    children.insert(pid, (status_w, req.daemon));
                    // The child is not reaped before SIGCHLD is handled (below, in this loop),
                    // so its pidfd cannot name another process: hand it to the requester.
                    let reply = frame(tag::OK, &pid.to_le_bytes());
                    let sent = match platform::pidfd_open(pid) {
                        Ok(pidfd) => {
                            platform::send_with_fds(conn.as_raw_fd(), &reply, &[pidfd.as_raw_fd()])
                        }
                        Err(_) => conn.write_all(&reply),
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let message = format!("fork failed: {e}");
                    if child::write_frame(&mut conn, tag::BAD_FUNCTION, message.as_bytes()).is_err()
                    {
                        break;
                    }
                }
            }
        }
    }
    // The requester is gone: its daemon children go with it.
    for (&pid, (_, daemon)) in &children {
        if *daemon {
            let _ = platform::kill(pid, libc::SIGKILL);
        }
    }
    platform::exit_now(0)
}
