//! `pipe.*`, `unix.*` and `eventfd.*`: the kernel's byte streams and counters between two
//! processes, with their default buffer sizes (64 KiB for a pipe; the socket defaults for an
//! `AF_UNIX` `SOCK_STREAM` pair).
//!
//! - `*.rtt@SIZE` (µs): the parent writes a message, the child reads it whole, checks it and
//!   writes it back, the parent reads and checks the reply. `*.pingpong_rtt` is the 8-byte
//!   point with the full budget; `*_busy` polls non-blocking receiving ends in a spin loop.
//! - `*.stream@SIZE` (GB/s): the child writes messages as fast as the stream takes them, the
//!   parent reads each whole message and checks it; `*.1mib` is the 1 MiB point with the full
//!   budget.
//! - `eventfd.pingpong_rtt` (µs): two `eventfd`s, one per direction; each side writes 1 and
//!   reads the other's counter, sleeping in `read`. `eventfd.pingpong_rtt_busy` polls
//!   `EFD_NONBLOCK` descriptors.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, bail, ensure};

use crate::harness::{
    Echo, Patience, Peer, Recv, RoundTrip, Sink, Source, poll, round_trips, stream,
};
use crate::message::{Inbox, MIB, Outbox, Pattern};
use crate::scenario::{Config, Repeat, Scenario, Unit};
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("pipe.pingpong_rtt", Unit::Us, |cfg| {
            rtt(cfg.budget(), pipes()?, 8)
        }),
        Scenario::new("unix.pingpong_rtt", Unit::Us, |cfg| {
            rtt(cfg.budget(), sockets()?, 8)
        }),
        Scenario::new("pipe.pingpong_rtt_busy", Unit::Us, |cfg| {
            rtt(cfg.budget(), busy(pipes()?)?, 8)
        }),
        Scenario::new("unix.pingpong_rtt_busy", Unit::Us, |cfg| {
            rtt(cfg.budget(), busy(sockets()?)?, 8)
        }),
        Scenario::new("pipe.1mib", Unit::GbPerSec, |cfg| {
            stream_of(cfg.budget(), pipes()?, MIB)
        }),
        Scenario::new("unix.1mib", Unit::GbPerSec, |cfg| {
            stream_of(cfg.budget(), sockets()?, MIB)
        }),
        Scenario::new("eventfd.pingpong_rtt", Unit::Us, |cfg| eventfd_rtt(cfg, false)),
        Scenario::new("eventfd.pingpong_rtt_busy", Unit::Us, |cfg| {
            eventfd_rtt(cfg, true)
        }),
    ];
    v.extend(sweep::payload("pipe.rtt", Unit::Us, |cfg: &Config, size| {
        rtt(cfg.sweep_budget(), pipes()?, size)
    }));
    v.extend(sweep::payload("pipe.stream", Unit::GbPerSec, |cfg: &Config, size| {
        stream_of(cfg.sweep_budget(), pipes()?, size)
    }));
    v.extend(sweep::payload("unix.rtt", Unit::Us, |cfg: &Config, size| {
        rtt(cfg.sweep_budget(), sockets()?, size)
    }));
    v.extend(sweep::payload("unix.stream", Unit::GbPerSec, |cfg: &Config, size| {
        stream_of(cfg.sweep_budget(), sockets()?, size)
    }));
    v
}

/// One process's ends of a two-way byte stream.
#[derive(Debug)]
struct Ends {
    rx: File,
    tx: File,
}

/// The parent's ends and the child's.
type Pair = (Ends, Ends);

/// Two pipes, one per direction.
fn pipes() -> anyhow::Result<Pair> {
    let (a_rx, b_tx) = pipe()?;
    let (b_rx, a_tx) = pipe()?;
    Ok((Ends { rx: a_rx, tx: a_tx }, Ends { rx: b_rx, tx: b_tx }))
}

fn pipe() -> anyhow::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(rx), File::from(tx)))
}

/// A connected `AF_UNIX` stream socket pair.
fn sockets() -> anyhow::Result<Pair> {
    let (a, b) = UnixStream::pair().context("socketpair")?;
    let a_rx = File::from(OwnedFd::from(a));
    let a_tx = a_rx.try_clone()?;
    let b_rx = File::from(OwnedFd::from(b));
    let b_tx = b_rx.try_clone()?;
    Ok((Ends { rx: a_rx, tx: a_tx }, Ends { rx: b_rx, tx: b_tx }))
}

/// Makes both receiving ends non-blocking, for the busy-polling variants. (A socket's two ends
/// of one process share one open file, so its sending end becomes non-blocking too; writes then
/// poll as reads do.)
fn busy((a, b): Pair) -> anyhow::Result<Pair> {
    for f in [&a.rx, &b.rx] {
        nonblocking(f)?;
    }
    Ok((a, b))
}

fn nonblocking(f: &File) -> anyhow::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        bail!("fcntl(O_NONBLOCK): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a whole buffer; `Ok(false)` on a clean end of stream before its first byte. On a
/// non-blocking descriptor (the busy receivers) it polls.
fn read_message(rx: &mut File, buf: &mut [u8]) -> anyhow::Result<bool> {
    let mut filled = 0;
    let mut patience = Patience::new();
    while filled < buf.len() {
        match rx.read(&mut buf[filled..]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => patience.idle("the stream")?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => bail!("the stream ended inside a message ({filled} of {} bytes)", buf.len()),
            Ok(n) => filled += n,
        }
    }
    Ok(true)
}

/// Writes a whole buffer, polling while a non-blocking socket is full.
fn write_message(tx: &mut File, mut buf: &[u8]) -> anyhow::Result<()> {
    let mut patience = Patience::new();
    while !buf.is_empty() {
        match tx.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => patience.idle("room")?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
            Ok(0) => bail!("the stream refused to take more"),
            Ok(n) => buf = &buf[n..],
        }
    }
    Ok(())
}

/// The index that asks the echoing child to stop.
const STOP: u64 = u64::MAX;

/// Either side of a round trip of `size`-byte messages: the parent sends and checks the echo,
/// the child checks and echoes.
struct Bounce {
    ends: Ends,
    out: Outbox,
    inbox: Inbox,
}

impl Bounce {
    fn new(ends: Ends, size: usize) -> Self {
        Self {
            ends,
            out: Outbox::new(size),
            inbox: Inbox::new(size),
        }
    }
}

impl RoundTrip for Bounce {
    fn round(&mut self, i: u64, last: bool) -> anyhow::Result<()> {
        write_message(&mut self.ends.tx, self.out.message(i))?;
        ensure!(
            read_message(&mut self.ends.rx, self.inbox.buf())?,
            "the child closed the stream"
        );
        if last {
            self.inbox.check_last(i + 1)
        } else {
            self.inbox.check(i)
        }
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        write_message(&mut self.ends.tx, self.out.message(STOP))
    }
}

impl Echo for Bounce {
    fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
        ensure!(
            read_message(&mut self.ends.rx, self.inbox.buf())?,
            "the parent closed the stream"
        );
        if Pattern::index(self.inbox.buf()) == Some(STOP) {
            return Ok(false);
        }
        self.inbox.check(i)?;
        write_message(&mut self.ends.tx, self.inbox.buf())?;
        Ok(true)
    }
}

/// Round trips of `size`-byte messages through `ends`.
fn rtt(budget: std::time::Duration, (ours, theirs): Pair, size: usize) -> Repeat {
    let mut parent = Bounce::new(ours, size);
    Ok(round_trips(Peer::Process, budget, &mut parent, move || {
        Ok(Bounce::new(theirs, size))
    })?
    .into())
}

/// The child's side of a stream: writes each message whole.
struct Writer {
    tx: File,
    out: Outbox,
}

impl Source for Writer {
    fn send(&mut self, i: u64) -> anyhow::Result<u64> {
        write_message(&mut self.tx, self.out.message(i))?;
        Ok(1)
    }

    /// Closes the stream: the parent reads its end.
    fn finish(self, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The parent's side of a stream: reads and checks each message whole.
struct Reader {
    rx: File,
    inbox: Inbox,
}

impl Sink for Reader {
    fn recv(&mut self, next: u64) -> anyhow::Result<Recv> {
        if !read_message(&mut self.rx, self.inbox.buf())? {
            return Ok(Recv::End);
        }
        self.inbox.check(next)?;
        Ok(Recv::Got(1))
    }

    fn check_last(&mut self, received: u64) -> anyhow::Result<()> {
        self.inbox.check_last(received)
    }
}

/// A stream of `size`-byte messages from the child to the parent.
fn stream_of(budget: std::time::Duration, (ours, theirs): Pair, size: usize) -> Repeat {
    let mut reader = Reader {
        rx: ours.rx,
        inbox: Inbox::new(size),
    };
    // The stream ends when every descriptor of the child's end is closed: this process keeps
    // none (a socket's receiving end is the same socket as its sending end).
    let Ends { rx: unused, tx } = theirs;
    drop(unused);
    Ok(stream(Peer::Process, budget, size as u64, &mut reader, move || {
        Ok(Writer {
            tx,
            out: Outbox::new(size),
        })
    })?
    .into())
}

fn eventfd(nonblocking: bool) -> anyhow::Result<File> {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, flags) };
    if fd < 0 {
        bail!("eventfd: {}", std::io::Error::last_os_error());
    }
    // SAFETY: eventfd succeeded, so `fd` is open and owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// One side of the eventfd ping-pong: it writes to `tx` and reads `rx`'s counter, which must
/// read exactly 1 (one write since the last read), or [`EVENTFD_STOP`].
struct Counters {
    rx: File,
    tx: File,
}

const EVENTFD_STOP: u64 = 2;

impl Counters {
    /// Reads the counter: blocking, or polling a non-blocking descriptor.
    fn read(&mut self) -> anyhow::Result<u64> {
        let mut b = [0u8; 8];
        poll("an eventfd", || match self.rx.read(&mut b) {
            Ok(8) => Ok(Some(u64::from_le_bytes(b))),
            Ok(n) => bail!("an eventfd read returned {n} bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    fn write(&mut self, v: u64) -> anyhow::Result<()> {
        self.tx.write_all(&v.to_le_bytes())?;
        Ok(())
    }
}

impl RoundTrip for Counters {
    fn round(&mut self, _: u64, _: bool) -> anyhow::Result<()> {
        self.write(1)?;
        let n = self.read()?;
        ensure!(n == 1, "the pong counter read {n}, expected 1");
        Ok(())
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        self.write(EVENTFD_STOP)
    }
}

impl Echo for Counters {
    fn serve(&mut self, _: u64) -> anyhow::Result<bool> {
        match self.read()? {
            1 => {
                self.write(1)?;
                Ok(true)
            }
            EVENTFD_STOP => Ok(false),
            n => bail!("the ping counter read {n}, expected 1"),
        }
    }
}

/// Ping-pong through two eventfds.
fn eventfd_rtt(cfg: &Config, busy: bool) -> Repeat {
    let (ping, pong) = (eventfd(busy)?, eventfd(busy)?);
    let mut parent = Counters {
        rx: pong.try_clone()?,
        tx: ping.try_clone()?,
    };
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, move || {
        Ok(Counters { rx: ping, tx: pong })
    })?
    .into())
}
