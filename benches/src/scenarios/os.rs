//! `pipe.*` and `unix.*`: the kernel's byte streams between two processes, with their default
//! buffer sizes (64 KiB for a pipe; the socket defaults for an `AF_UNIX` `SOCK_STREAM` pair).
//!
//! - `*.pingpong_rtt` (µs): the parent writes an 8-byte counter, the child reads it, checks it
//!   and writes back the next value; blocking reads on both sides.
//! - `*.1mib` (GB/s): the child writes 1 MiB messages (each stamped with its index) as fast as
//!   the stream takes them; the parent reads each into its own buffer and checks it.
//! - `*.rtt@SIZE` (µs) and `*.stream@SIZE` (GB/s): the payload sweep, the same two shapes with
//!   messages of every size in [`SIZES`](crate::sweep::SIZES).
//! - `*.pingpong_rtt_busy` (µs): the ping-pong with non-blocking receiving ends polled in a
//!   spin loop: the busy receiver.
//! - `eventfd.pingpong_rtt` (µs): two `eventfd`s, one per direction; each side writes 1 and
//!   reads the other's counter, sleeping in `read`. `eventfd.pingpong_rtt_busy` is the same
//!   with `EFD_NONBLOCK` descriptors polled in a spin loop: the busy receiver.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use anyhow::{Context, bail, ensure};

use super::limit::{MIB, check_message, check_message_fully, reference_message, stamp_message};
use crate::primitive::Ordering;
use crate::shm::{LINE, SharedBlock};
use crate::sweep::{self, Pattern};
use crate::{Config, Scenario, fork_child};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario {
            name: "pipe.pingpong_rtt",
            unit: "µs",
            higher_is_better: false,
            run: |cfg| pingpong_rtt(cfg, pipes),
        },
        Scenario {
            name: "unix.pingpong_rtt",
            unit: "µs",
            higher_is_better: false,
            run: |cfg| pingpong_rtt(cfg, sockets),
        },
        Scenario {
            name: "pipe.pingpong_rtt_busy",
            unit: "µs",
            higher_is_better: false,
            run: |cfg| pingpong_rtt(cfg, || busy(pipes())),
        },
        Scenario {
            name: "unix.pingpong_rtt_busy",
            unit: "µs",
            higher_is_better: false,
            run: |cfg| pingpong_rtt(cfg, || busy(sockets())),
        },
        Scenario {
            name: "pipe.1mib",
            unit: "GB/s",
            higher_is_better: true,
            run: |cfg| stream_1mib(cfg, pipes),
        },
        Scenario {
            name: "unix.1mib",
            unit: "GB/s",
            higher_is_better: true,
            run: |cfg| stream_1mib(cfg, sockets),
        },
        Scenario {
            name: "eventfd.pingpong_rtt",
            unit: "µs",
            higher_is_better: false,
            run: |cfg| eventfd_rtt(cfg, false),
        },
        Scenario {
            name: "eventfd.pingpong_rtt_busy",
            unit: "µs",
            higher_is_better: false,
            run: |cfg| eventfd_rtt(cfg, true),
        },
    ];
    v.extend(crate::sweep!("pipe.rtt", "µs", false, pipe_rtt_sized));
    v.extend(crate::sweep!(
        "pipe.stream",
        "GB/s",
        true,
        pipe_stream_sized
    ));
    v.extend(crate::sweep!("unix.rtt", "µs", false, unix_rtt_sized));
    v.extend(crate::sweep!(
        "unix.stream",
        "GB/s",
        true,
        unix_stream_sized
    ));
    v
}

fn pipe_rtt_sized(cfg: &Config, size: usize) -> anyhow::Result<Option<f64>> {
    rtt_sized(cfg, pipes, size)
}

fn unix_rtt_sized(cfg: &Config, size: usize) -> anyhow::Result<Option<f64>> {
    rtt_sized(cfg, sockets, size)
}

fn pipe_stream_sized(cfg: &Config, size: usize) -> anyhow::Result<Option<f64>> {
    stream_sized(cfg, pipes, size)
}

fn unix_stream_sized(cfg: &Config, size: usize) -> anyhow::Result<Option<f64>> {
    stream_sized(cfg, sockets, size)
}

/// One process's ends of a two-way byte stream.
#[derive(Debug)]
struct Ends {
    rx: File,
    tx: File,
}

/// Two pipes, one per direction: (parent's ends, child's ends).
fn pipes() -> anyhow::Result<(Ends, Ends)> {
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

/// A connected `AF_UNIX` stream socket pair: (parent's ends, child's ends).
fn sockets() -> anyhow::Result<(Ends, Ends)> {
    let (a, b) = UnixStream::pair().context("socketpair")?;
    let a_rx = File::from(OwnedFd::from(a));
    let a_tx = a_rx.try_clone()?;
    let b_rx = File::from(OwnedFd::from(b));
    let b_tx = b_rx.try_clone()?;
    Ok((Ends { rx: a_rx, tx: a_tx }, Ends { rx: b_rx, tx: b_tx }))
}

/// Makes both receiving ends non-blocking, for the busy-polling variants. (A socket's two
/// ends of one process share one open file, so its sending end becomes non-blocking too; an
/// 8-byte write into an empty socket buffer never has to wait.)
fn busy(ends: anyhow::Result<(Ends, Ends)>) -> anyhow::Result<(Ends, Ends)> {
    let (a, b) = ends?;
    for f in [&a.rx, &b.rx] {
        let fd = f.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own, with integer arguments only.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            bail!("fcntl(O_NONBLOCK): {}", std::io::Error::last_os_error());
        }
    }
    Ok((a, b))
}

/// Reads a whole buffer; `Ok(false)` on a clean end of stream before its first byte.
///
/// On a non-blocking descriptor (the busy receivers) it polls: spins on `EAGAIN`, then yields
/// like [`spin_until`](crate::spin_until), and fails after [`WAIT_LIMIT`](crate::WAIT_LIMIT).
fn read_message(rx: &mut File, buf: &mut [u8]) -> anyhow::Result<bool> {
    let mut filled = 0;
    let mut spins = 0u32;
    let mut deadline = None;
    while filled < buf.len() {
        match rx.read(&mut buf[filled..]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                spins = spins.saturating_add(1);
                if spins < crate::SPINS_BEFORE_YIELD {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                if spins % 1024 == 0 {
                    let limit = *deadline.get_or_insert_with(|| Instant::now() + crate::WAIT_LIMIT);
                    ensure!(Instant::now() < limit, "timed out polling the stream");
                }
            }
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => bail!(
                "stream ended inside a message ({filled} of {} bytes)",
                buf.len()
            ),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn read_u64(rx: &mut File) -> anyhow::Result<u64> {
    let mut b = [0u8; 8];
    ensure!(read_message(rx, &mut b)?, "the peer closed the stream");
    Ok(u64::from_le_bytes(b))
}

/// Ping-pong of an 8-byte counter; `u64::MAX` asks the child to send its count and exit.
fn pingpong_rtt(
    cfg: &Config,
    make: fn() -> anyhow::Result<(Ends, Ends)>,
) -> anyhow::Result<Option<f64>> {
    const STOP: u64 = u64::MAX;
    const WARMUP: u64 = 100;
    let (mut ours, theirs) = make()?;
    let child = fork_child(move || {
        let Ends { mut rx, mut tx } = theirs;
        let mut replies = 0u64;
        loop {
            let v = read_u64(&mut rx)?;
            if v == STOP {
                tx.write_all(&replies.to_le_bytes())?;
                return Ok(());
            }
            ensure!(
                v == 2 * replies + 1,
                "got {v}, expected {}",
                2 * replies + 1
            );
            tx.write_all(&(v + 1).to_le_bytes())?;
            replies += 1;
        }
    })?;
    // The child's ends were moved into the closure and are closed here now, so a dead child
    // shows up as the end of the stream.
    let budget = cfg.budget();
    let mut rounds = 0u64;
    let mut warm = 0u64;
    let mut t0 = Instant::now();
    loop {
        let serve = 2 * rounds + 1;
        ours.tx.write_all(&serve.to_le_bytes())?;
        let reply = read_u64(&mut ours.rx)?;
        ensure!(reply == serve + 1, "got {reply}, expected {}", serve + 1);
        rounds += 1;
        if warm == 0 && (rounds == WARMUP || t0.elapsed() >= budget / 10) {
            warm = rounds;
            t0 = Instant::now();
        }
        if warm > 0 && rounds % 16 == 0 && t0.elapsed() >= budget {
            break;
        }
    }
    let elapsed = t0.elapsed();
    ours.tx.write_all(&STOP.to_le_bytes())?;
    let replies = read_u64(&mut ours.rx)?;
    child.wait()?;
    ensure!(
        replies == rounds,
        "the child answered {replies} of {rounds}"
    );
    Ok(Some(elapsed.as_secs_f64() * 1e6 / (rounds - warm) as f64))
}

/// The child streams 1 MiB messages until the parent raises the stop flag in a shared block,
/// then records how many it sent and closes its end.
fn stream_1mib(
    cfg: &Config,
    make: fn() -> anyhow::Result<(Ends, Ends)>,
) -> anyhow::Result<Option<f64>> {
    let block = SharedBlock::new(2 * LINE)?;
    let stop = block.u64_at(0)?;
    let sent = block.u64_at(LINE)?;
    let reference = reference_message();
    let (mut ours, theirs) = make()?;
    let child = fork_child(|| {
        let Ends { rx, mut tx } = theirs;
        drop(rx);
        let mut msg = reference.clone();
        let mut i = 0u64;
        // ORDERING: Relaxed, a request flag; the messages travel through the stream.
        while stop.load(Ordering::Relaxed) == 0 {
            stamp_message(&mut msg, i);
            tx.write_all(&msg)?;
            i += 1;
        }
        // ORDERING: Relaxed; the parent reads it after waiting for this process to exit.
        sent.store(i, Ordering::Relaxed);
        Ok(())
    })?;
    let mut buf = vec![0u8; MIB];
    let budget = cfg.budget();
    let t0 = Instant::now();
    let mut received = 0u64;
    let mut stopping = false;
    while read_message(&mut ours.rx, &mut buf)? {
        check_message(&buf, &reference, received)?;
        received += 1;
        if !stopping && t0.elapsed() >= budget {
            // ORDERING: Relaxed, see the child's load.
            stop.store(1, Ordering::Relaxed);
            stopping = true;
        }
    }
    let elapsed = t0.elapsed();
    child.wait()?;
    // ORDERING: Relaxed; waitpid ordered the child's store before this load.
    let sent = sent.load(Ordering::Relaxed);
    ensure!(
        sent == received,
        "the child sent {sent} messages, {received} arrived"
    );
    ensure!(received > 0, "nothing was sent");
    check_message_fully(&buf, &reference, received - 1)?;
    Ok(Some(
        (received * MIB as u64) as f64 / elapsed.as_secs_f64() / 1e9,
    ))
}

/// Ping-pong of `size`-byte messages: the child reads each whole message, checks it and writes
/// it back; a message stamped `u64::MAX` stops it, and it answers with its count.
fn rtt_sized(
    cfg: &Config,
    make: fn() -> anyhow::Result<(Ends, Ends)>,
    size: usize,
) -> anyhow::Result<Option<f64>> {
    const STOP: u64 = u64::MAX;
    let pattern = Pattern::new(size);
    let (mut ours, theirs) = make()?;
    let child = fork_child(|| {
        let Ends { mut rx, mut tx } = theirs;
        let mut buf = vec![0u8; pattern.len()];
        let mut replies = 0u64;
        loop {
            ensure!(
                read_message(&mut rx, &mut buf)?,
                "the parent closed the stream"
            );
            if Pattern::index(&buf) == Some(STOP) {
                tx.write_all(&replies.to_le_bytes())?;
                return Ok(());
            }
            pattern.check(&buf, replies)?;
            tx.write_all(&buf)?;
            replies += 1;
        }
    })?;
    let budget = sweep::budget(cfg);
    let mut msg = pattern.reference().to_vec();
    let mut reply = vec![0u8; pattern.len()];
    let (mut rounds, mut warm) = (0u64, 0u64);
    let mut t0 = Instant::now();
    loop {
        pattern.stamp(&mut msg, rounds);
        ours.tx.write_all(&msg)?;
        ensure!(
            read_message(&mut ours.rx, &mut reply)?,
            "the child closed the stream"
        );
        pattern.check(&reply, rounds)?;
        rounds += 1;
        if warm == 0 && (rounds == 20 || t0.elapsed() >= budget / 10) {
            warm = rounds;
            t0 = Instant::now();
        }
        if warm > 0 && t0.elapsed() >= budget {
            break;
        }
    }
    let elapsed = t0.elapsed();
    pattern.check_fully(&reply, rounds - 1)?;
    pattern.stamp(&mut msg, STOP);
    ours.tx.write_all(&msg)?;
    let replies = read_u64(&mut ours.rx)?;
    child.wait()?;
    ensure!(
        replies == rounds,
        "the child answered {replies} of {rounds}"
    );
    Ok(Some(elapsed.as_secs_f64() * 1e6 / (rounds - warm) as f64))
}

/// The child streams `size`-byte messages until the stop flag; the parent reads each whole
/// message into its buffer and checks it.
fn stream_sized(
    cfg: &Config,
    make: fn() -> anyhow::Result<(Ends, Ends)>,
    size: usize,
) -> anyhow::Result<Option<f64>> {
    let block = SharedBlock::new(2 * LINE)?;
    let stop = block.u64_at(0)?;
    let sent = block.u64_at(LINE)?;
    let pattern = Pattern::new(size);
    let (mut ours, theirs) = make()?;
    let child = fork_child(|| {
        let Ends { rx, mut tx } = theirs;
        drop(rx);
        let mut msg = pattern.reference().to_vec();
        let mut i = 0u64;
        // ORDERING: Relaxed, a request flag; the messages travel through the stream.
        while stop.load(Ordering::Relaxed) == 0 {
            pattern.stamp(&mut msg, i);
            tx.write_all(&msg)?;
            i += 1;
        }
        // ORDERING: Relaxed; the parent reads it after waiting for this process to exit.
        sent.store(i, Ordering::Relaxed);
        Ok(())
    })?;
    let mut buf = vec![0u8; pattern.len()];
    let budget = sweep::budget(cfg);
    let t0 = Instant::now();
    let mut received = 0u64;
    let mut stopping = false;
    while read_message(&mut ours.rx, &mut buf)? {
        pattern.check(&buf, received)?;
        received += 1;
        if !stopping && t0.elapsed() >= budget {
            // ORDERING: Relaxed, see the child's load.
            stop.store(1, Ordering::Relaxed);
            stopping = true;
        }
    }
    let elapsed = t0.elapsed();
    child.wait()?;
    // ORDERING: Relaxed; waitpid ordered the child's store before this load.
    let sent = sent.load(Ordering::Relaxed);
    ensure!(
        sent == received,
        "the child sent {sent} messages, {received} arrived"
    );
    ensure!(received > 0, "nothing was sent");
    pattern.check_fully(&buf, received - 1)?;
    Ok(Some(
        (received * size as u64) as f64 / elapsed.as_secs_f64() / 1e9,
    ))
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

/// Reads an eventfd's counter: blocking, or spinning on `EAGAIN` when `busy` (the descriptor
/// is non-blocking then), with the usual deadline.
fn eventfd_read(fd: &mut File, busy: bool) -> anyhow::Result<u64> {
    let mut b = [0u8; 8];
    let mut result = Ok(());
    let deadline = Instant::now() + crate::WAIT_LIMIT;
    crate::spin_until(deadline, "an eventfd", || match fd.read(&mut b) {
        Ok(8) => true,
        Ok(n) => {
            result = Err(anyhow::anyhow!("eventfd read returned {n} bytes"));
            true
        }
        Err(e) if busy && e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
        Err(e) => {
            result = Err(e.into());
            true
        }
    })?;
    result?;
    Ok(u64::from_le_bytes(b))
}

/// Ping-pong through two eventfds; the counter each side reads must be exactly 1 (one write
/// since the last read). The child counts its replies in a shared block.
fn eventfd_rtt(cfg: &Config, busy: bool) -> anyhow::Result<Option<f64>> {
    const STOP: u64 = 2;
    let block = SharedBlock::new(LINE)?;
    let replies_out = block.u64_at(0)?;
    let (mut ping_rx, mut pong_rx) = (eventfd(busy)?, eventfd(busy)?);
    let (mut ping_tx, mut pong_tx) = (ping_rx.try_clone()?, pong_rx.try_clone()?);
    let child = fork_child(|| {
        let mut replies = 0u64;
        loop {
            match eventfd_read(&mut ping_rx, busy)? {
                1 => {}
                STOP => {
                    // ORDERING: Relaxed; the parent reads it after waiting for this process.
                    replies_out.store(replies, Ordering::Relaxed);
                    return Ok(());
                }
                n => bail!("the ping counter read {n}, expected 1"),
            }
            pong_tx.write_all(&1u64.to_le_bytes())?;
            replies += 1;
        }
    })?;
    let budget = cfg.budget();
    let (mut rounds, mut warm) = (0u64, 0u64);
    let mut t0 = Instant::now();
    loop {
        ping_tx.write_all(&1u64.to_le_bytes())?;
        let n = eventfd_read(&mut pong_rx, busy)?;
        ensure!(n == 1, "the pong counter read {n}, expected 1");
        rounds += 1;
        if warm == 0 && (rounds == 100 || t0.elapsed() >= budget / 10) {
            warm = rounds;
            t0 = Instant::now();
        }
        if warm > 0 && rounds % 16 == 0 && t0.elapsed() >= budget {
            break;
        }
    }
    let elapsed = t0.elapsed();
    ping_tx.write_all(&STOP.to_le_bytes())?;
    child.wait()?;
    // ORDERING: Relaxed; waitpid ordered the child's store before this load.
    let replies = replies_out.load(Ordering::Relaxed);
    ensure!(
        replies == rounds,
        "the child answered {replies} of {rounds}"
    );
    Ok(Some(elapsed.as_secs_f64() * 1e6 / (rounds - warm) as f64))
}
