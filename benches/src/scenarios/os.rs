//! `pipe.*` and `unix.*`: the kernel's byte streams between two processes, with their default
//! buffer sizes (64 KiB for a pipe; the socket defaults for an `AF_UNIX` `SOCK_STREAM` pair).
//!
//! - `*.pingpong_rtt` (µs): the parent writes an 8-byte counter, the child reads it, checks it
//!   and writes back the next value; blocking reads on both sides.
//! - `*.1mib` (GB/s): the child writes 1 MiB messages (each stamped with its index) as fast as
//!   the stream takes them; the parent reads each into its own buffer and checks it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use anyhow::{Context, bail, ensure};

use super::limit::{MIB, check_message, check_message_fully, reference_message, stamp_message};
use crate::primitive::Ordering;
use crate::shm::{LINE, SharedBlock};
use crate::{Config, Scenario, fork_child};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
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
    ]
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

/// Reads a whole buffer; `Ok(false)` on a clean end of stream before its first byte.
fn read_message(rx: &mut File, buf: &mut [u8]) -> anyhow::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match rx.read(&mut buf[filled..]) {
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
