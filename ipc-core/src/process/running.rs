//! The parent's view of a started child: its result channel, and how its end is learnt.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::child::{tag, take_frame};
use super::exit::Status;
use crate::platform;

/// How long a join polls for the end of a child that has sent its final report before it
/// sleeps: what a process of some tens of MB takes to tear its memory down once it has sent
/// its result. A second sleep costs a wake-up (tens of µs on a virtual machine); a child that
/// ends sooner ends the poll sooner, and the poll yields the CPU between checks.
const EXIT_SPIN: Duration = Duration::from_millis(1);

/// The size of the reads that follow a read which filled its buffer.
const LARGE_READ: usize = 64 * 1024;

/// How the parent learns that the child ended.
pub(super) enum Watch {
    /// Our own child (fork, spawn): reaped with `waitpid`, its pidfd polled.
    Child,
    /// A fork-server child: the server writes the raw wait status to this pipe.
    Server(File),
    /// A fork-server child whose server died: its end is seen on its pidfd, its status is lost.
    Orphan,
}

/// What the child reported on its channel.
#[derive(Debug)]
pub(super) enum Report {
    Result(Vec<u8>),
    Panic(String),
    ArgDecode(String),
    ResultEncode(String),
    BadFunction(String),
    Ready,
    /// The child decoded its argument.
    Decoded,
}

pub(super) struct Running {
    pub(super) pid: u32,
    /// The child's pidfd until `Process::start` moves it to the process's sentinel, which
    /// outlives this (both live in the same `Process`); `pidfd_raw` stays valid meanwhile.
    pub(super) pidfd: Option<OwnedFd>,
    pidfd_raw: Option<RawFd>,
    channel: UnixStream,
    channel_open: bool,
    buf: Vec<u8>,
    watch: Watch,
    pub(super) reports: Vec<Report>,
    pub(super) corrupted: bool,
    pub(super) status: Option<Status>,
}

impl Running {
    pub(super) fn new(
        pid: u32,
        pidfd: Option<OwnedFd>,
        channel: UnixStream,
        watch: Watch,
    ) -> io::Result<Self> {
        // The channel is read with `MSG_DONTWAIT` (no flag to set on it).
        if let Watch::Server(pipe) = &watch {
            platform::set_nonblocking(pipe.as_raw_fd())?;
        }
        Ok(Self {
            pid,
            pidfd_raw: pidfd.as_ref().map(AsRawFd::as_raw_fd),
            pidfd,
            channel,
            channel_open: true,
            buf: Vec::new(),
            watch,
            reports: Vec::new(),
            corrupted: false,
            status: None,
        })
    }

    /// Reads whatever the channel holds now.
    fn drain(&mut self) {
        // A small first read: each stack page this writes while a forked child lives is a
        // copy-on-write fault. A read that fills its buffer is followed by larger reads straight
        // into `buf`; one that does not emptied the socket (a stream socket's read takes all it
        // holds, up to the buffer), so the next would find nothing.
        let mut chunk = [0u8; 256];
        let mut filled = false;
        while self.channel_open {
            let read = if filled {
                let len = self.buf.len();
                self.buf.resize(len + LARGE_READ, 0);
                let read = platform::recv_nowait(self.channel.as_fd(), &mut self.buf[len..]);
                self.buf.truncate(len + *read.as_ref().unwrap_or(&0));
                read.map(|n| (n, n == LARGE_READ))
            } else {
                let read = platform::recv_nowait(self.channel.as_fd(), &mut chunk);
                if let Ok(n) = read {
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                read.map(|n| (n, n == chunk.len()))
            };
            match read {
                Ok((0, _)) => self.channel_open = false,
                Ok((_, true)) => filled = true,
                Ok((_, false)) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.channel_open = false,
            }
        }
        loop {
            match take_frame(&mut self.buf) {
                Ok(Some((t, payload))) => {
                    let text = |bytes: Vec<u8>| {
                        String::from_utf8(bytes)
                            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
                    };
                    let report = match t {
                        tag::RESULT => Report::Result(payload),
                        tag::PANIC => Report::Panic(text(payload)),
                        tag::ARG_DECODE => Report::ArgDecode(text(payload)),
                        tag::RESULT_ENCODE => Report::ResultEncode(text(payload)),
                        tag::BAD_FUNCTION => Report::BadFunction(text(payload)),
                        tag::READY => Report::Ready,
                        tag::DECODED => Report::Decoded,
                        _ => {
                            self.corrupted = true;
                            continue;
                        }
                    };
                    self.reports.push(report);
                }
                Ok(None) => break,
                Err(_) => {
                    self.corrupted = true;
                    self.buf.clear();
                    self.channel_open = false;
                    break;
                }
            }
        }
    }

    /// Checks (without blocking) whether the child has ended.
    fn check_status(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match &mut self.watch {
            Watch::Child => {
                if let Some(raw) = platform::try_wait(self.pid)? {
                    self.status = Some(Status::from_raw(raw));
                }
            }
            Watch::Orphan => {
                let ended = match self.pidfd_raw {
                    Some(fd) => {
                        platform::poll(&[(fd, libc::POLLIN)], Some(Duration::ZERO))?[0] != 0
                    }
                    None => !platform::pid_exists(self.pid),
                };
                if ended {
                    self.status = Some(Status::Lost);
                }
            }
            Watch::Server(pipe) => {
                let mut raw = [0u8; 4];
                match pipe.read(&mut raw) {
                    Ok(4) => self.status = Some(Status::from_raw(i32::from_le_bytes(raw))),
                    // End of file (or a torn status, which a pipe never gives for 4 bytes): the
                    // server died without reporting. The child may still run: watch its pidfd.
                    Ok(_) => {
                        self.watch = Watch::Orphan;
                        return self.check_status();
                    }
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if self.status.is_some() && !self.has_final_report() {
            // The child is gone: everything it sent is in the socket buffer now. (A child sends
            // nothing after its final report, so once that is in, there is nothing to read.)
            self.drain();
        }
        Ok(())
    }

    /// Waits until the child has ended, or until `deadline` (`None`: no deadline).
    ///
    /// A child whose final report has arrived is on its way out: its end is first awaited by
    /// polling for up to [`EXIT_SPIN`], yielding the CPU between checks, and only then by
    /// sleeping, so that a join right after the result does not pay a second wake-up.
    ///
    /// Each round polls first: a channel with news or an ended child makes the poll return at
    /// once, and a child that has neither (one just started) would only make a read and a
    /// `waitpid` before the poll fail.
    pub(super) fn wait(&mut self, deadline: Option<Instant>) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        let mut spun = false;
        loop {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ended = self.poll(timeout)?;
            self.drain();
            // A final report that has just arrived comes from a child that has not ended (its
            // end did not wake the poll): straight to the poll for its end, whose first step
            // is a yield, rather than a `waitpid` bound to find it alive.
            if !spun && !ended && self.has_final_report() {
                spun = true;
                let until = Instant::now() + EXIT_SPIN;
                let until = deadline.map_or(until, |d| d.min(until));
                while Instant::now() < until {
                    std::thread::yield_now();
                    self.check_status()?;
                    if self.status.is_some() {
                        return Ok(true);
                    }
                }
                continue;
            }
            self.check_status()?;
            if self.status.is_some() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Waits for a readable channel or the child's end, at most `timeout`. Returns whether the
    /// child may have ended: its end's descriptor is ready, or it has none to poll.
    fn poll(&self, timeout: Option<Duration>) -> io::Result<bool> {
        // A negative descriptor is left out of the poll. No allocation: every page the parent
        // writes while a forked child lives is a copy-on-write fault.
        let channel = if self.channel_open {
            self.channel.as_raw_fd()
        } else {
            -1
        };
        let (end, timeout) = match &self.watch {
            Watch::Child | Watch::Orphan => match self.pidfd_raw {
                Some(fd) => (fd, timeout),
                // Without a pidfd, wake in slices to re-check with waitpid.
                None => {
                    let slice = Duration::from_millis(10);
                    (-1, Some(timeout.map_or(slice, |t| t.min(slice))))
                }
            },
            Watch::Server(pipe) => (pipe.as_raw_fd(), timeout),
        };
        let mut revents = [0; 2];
        platform::poll_into(
            &[(channel, libc::POLLIN), (end, libc::POLLIN)],
            &mut revents,
            timeout,
        )?;
        Ok(end < 0 || revents[1] != 0)
    }

    /// The descriptors whose readiness means news, for a wait that is not a blocking `poll`
    /// (`Process::join_async`): the result channel while it is open, and what shows the child's
    /// end (its pidfd, or the fork server's status pipe). The second is `None` where the end
    /// can only be polled (no pidfd): then the waiter asks again in short slices.
    pub(super) fn watch_fds(&self) -> (Option<RawFd>, Option<RawFd>) {
        let channel = self.channel_open.then(|| self.channel.as_raw_fd());
        let end = match &self.watch {
            Watch::Child | Watch::Orphan => self.pidfd_raw,
            Watch::Server(pipe) => Some(pipe.as_raw_fd()),
        };
        (channel, end)
    }

    /// Whether the child's end is known.
    pub(super) fn ended(&self) -> bool {
        self.status.is_some()
    }

    /// Non-blocking refresh.
    pub(super) fn refresh(&mut self) -> io::Result<()> {
        self.drain();
        self.check_status()
    }

    /// Sends `sig` unless the child is known to have ended.
    pub(super) fn signal(&mut self, sig: i32) -> io::Result<()> {
        self.refresh()?;
        if self.status.is_some() {
            return Ok(());
        }
        let r = match self.pidfd_raw {
            Some(fd) => platform::pidfd_send_signal(fd, sig),
            None => platform::kill(self.pid, sig),
        };
        match r {
            // Ended between our check and the signal.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// Whether a report that ends the child's story has arrived (see
    /// [`take_final_report`](Self::take_final_report)).
    fn has_final_report(&self) -> bool {
        self.reports
            .iter()
            .any(|r| !matches!(r, Report::Ready | Report::Decoded))
    }

    /// The first report of a given kind that ends the child's story (anything but `Ready` and
    /// `Decoded`).
    pub(super) fn take_final_report(&mut self) -> Option<Report> {
        let i = self
            .reports
            .iter()
            .position(|r| !matches!(r, Report::Ready | Report::Decoded))?;
        Some(self.reports.remove(i))
    }

    /// Waits until the child has decoded its argument, or ended, or closed its channel (so its
    /// argument is no longer needed in this process).
    pub(super) fn wait_decoded(&mut self) -> io::Result<()> {
        loop {
            self.drain();
            if self.reports.iter().any(|r| !matches!(r, Report::Ready)) || !self.channel_open {
                return Ok(());
            }
            self.check_status()?;
            if self.status.is_some() {
                return Ok(());
            }
            self.poll(None)?;
        }
    }
}
