//! The async forms of `Connection` (`send_async`, `recv_async`, the bytes and timeout forms,
//! `stream`) and its blocking iterator, across real processes and on three executors (tokio
//! current-thread, tokio multi-thread, `futures::executor`): they complete when a peer acts,
//! they cancel cleanly when dropped at each of their await points (waiting for an end, for room,
//! for a chunk, halfway through a message larger than the ring), a peer SIGKILLed while 1,000
//! tasks await ends every await with `Disconnected`, and an idle awaiting process uses almost
//! no CPU.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipc_core::raw::atomic::{AtomicU32, Ordering};
use ipc_core::{ObjectHandle, Placement, SharedMemory};
use ipc_queue::{
    Connection, ConnectionHandle, PipeBuilder, RecvError, SendError, pipe_with_capacity,
};
use ipc_testkit::{
    assert_idle, counting_polls, cpu_time, on_every_executor, poll_once, runtime, wait_until,
};

const LIMIT: Duration = Duration::from_secs(120);
/// The ring of the pipes below: messages above half of it stream through in chunks.
const RING: usize = 4096;
/// The bytes before a segment's payload.
const PAYLOAD: usize = 256;

/// A pipe with small rings: `(end 0, end 1)`; end 0 sends on direction 0, which end 1 reads.
fn small_pipe() -> (Connection, Connection) {
    pipe_with_capacity(&Placement::Anonymous, RING, true).unwrap()
}

/// A message of `n` bytes that says which it is.
fn message(tag: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| tag ^ (i as u8).wrapping_mul(31)).collect()
}

/// The counters of direction 0 of a pipe (the direction end 0 sends on): the waiters on its
/// chunks, on its room, on its send end and on its receive end, and the two end claim words.
/// Offsets of `pipe.rs`'s `#[repr(C)]` `Direction`, every field on its own 128-byte line.
#[derive(Debug, PartialEq, Eq)]
struct Dir0 {
    items_waiters: u32,
    space_waiters: u32,
    send_waiters: u32,
    recv_waiters: u32,
    send_claim: u64,
    recv_claim: u64,
}

/// The bit of a signal's waiter word that holds its barrier kind, not a count.
const SIGNAL_KIND_BIT: u32 = 1 << 31;

fn dir0(handle: &ObjectHandle) -> Dir0 {
    let shm = SharedMemory::attach(&handle.segment).expect("attach");
    let mut b = vec![0u8; 768];
    // SAFETY: a diagnostic read of atomics that peers may be writing: a torn value only fails
    // the assertion that reads it.
    unsafe { shm.read_unguarded(PAYLOAD, &mut b) }.expect("read");
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    Dir0 {
        // The top bit of a signal's count marks its barrier kind (a pipe's data and room
        // signals are asymmetric, see `signal.rs`); the count is the rest.
        items_waiters: u32_at(256 + 4) & !SIGNAL_KIND_BIT,
        space_waiters: u32_at(384 + 4) & !SIGNAL_KIND_BIT,
        send_waiters: u32_at(512 + 12) & !SIGNAL_KIND_BIT,
        recv_waiters: u32_at(640 + 12) & !SIGNAL_KIND_BIT,
        send_claim: u64_at(512),
        recv_claim: u64_at(640),
    }
}

/// Nothing waits on direction 0 and nobody holds its ends.
fn idle() -> Dir0 {
    Dir0 {
        items_waiters: 0,
        space_waiters: 0,
        send_waiters: 0,
        recv_waiters: 0,
        send_claim: 0,
        recv_claim: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Child roles.

/// Child: echoes every message it receives on the end it is given, until the other end goes.
#[test]
#[ignore = "child role"]
fn child_echo_bytes() {
    let handle: ConnectionHandle = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    while let Ok(m) = c.recv_bytes() {
        c.send_bytes(&m).unwrap();
    }
}

/// Child: sends `0..n` and exits.
#[test]
#[ignore = "child role"]
fn child_send_values() {
    let (handle, n): (ConnectionHandle, u32) = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    for i in 0..n {
        c.send(&i).unwrap();
    }
}

/// Child: attaches to the end it is given, says so (sends "ready" on it, or receives one
/// message if it cannot send), then holds it until it is killed.
#[test]
#[ignore = "child role"]
fn child_holds_an_end() {
    let handle: ConnectionHandle = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    if c.writable() {
        c.send_bytes(b"ready").unwrap();
    } else {
        c.recv_bytes().unwrap();
    }
    std::thread::sleep(LIMIT);
}

// ---------------------------------------------------------------------------------------------
// Completion, with a child process as the peer.

#[test]
fn async_round_trips_through_a_child_small_and_larger_than_the_ring() {
    on_every_executor(LIMIT, || async {
        let (mut a, b) = small_pipe();
        let mut child = ipc_testkit::spawn("child_echo_bytes", &b.handle());
        // Ours is dropped once the child has echoed once (attached, it is a peer of its own).
        let mut b = Some(b);
        for (tag, n) in [
            (1u8, 0usize),
            (2, 10),
            (3, RING / 2),
            (4, 3 * RING + 17),
            (5, 100_000),
        ] {
            let m = message(tag, n);
            a.send_bytes_async(&m).await.unwrap();
            assert!(a.recv_bytes_async().await.unwrap() == m, "message {tag}");
            drop(b.take());
        }
        a.send_async(&(7u32, "seven".to_string())).await.unwrap();
        assert_eq!(
            a.recv_async::<(u32, String)>().await.unwrap(),
            (7, "seven".into())
        );
        a.send_timeout_async(&vec![9u64; 2000], LIMIT)
            .await
            .unwrap();
        assert_eq!(
            a.recv_timeout_async::<Vec<u64>>(LIMIT).await.unwrap(),
            vec![9u64; 2000]
        );
        a.send_bytes_timeout_async(&message(8, 5000), LIMIT)
            .await
            .unwrap();
        assert!(a.recv_bytes_timeout_async(LIMIT).await.unwrap() == message(8, 5000));
        // A value encoded larger than the ring: its bytes stay in the handle's buffer while
        // the send waits for room, poll after poll.
        let big = message(10, 3 * RING + 5);
        a.send_async(&big).await.unwrap();
        assert!(a.recv_async::<Vec<u8>>().await.unwrap() == big);
        // Our end gone: the child's receive returns `Disconnected` and it exits.
        drop(a);
        assert!(child.wait(LIMIT).success());
    });
}

#[test]
fn stream_yields_what_a_child_sends_and_ends_when_it_exits() {
    on_every_executor(LIMIT, || async {
        let (mut r, w) = ipc_queue::pipe_simplex().unwrap();
        let mut child = ipc_testkit::spawn("child_send_values", &(w.handle(), 500u32));
        // Ours goes once the child has sent (attached, it is the sender until it exits).
        assert_eq!(r.recv_async::<u32>().await.unwrap(), 0);
        drop(w);
        let got: Vec<u32> = r.stream::<u32>().map(Result::unwrap).collect().await;
        assert_eq!(got, (1..500).collect::<Vec<_>>());
        assert!(child.wait(LIMIT).success());
        assert!(matches!(
            r.recv_async::<u32>().await,
            Err(RecvError::Disconnected)
        ));
    });
}

#[test]
fn stream_bytes_and_iter_end_on_disconnected() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut r, w) = ipc_queue::pipe_simplex().unwrap();
        let mut child = ipc_testkit::spawn("child_send_values", &(w.handle(), 300u32));
        assert_eq!(r.recv::<u32>().unwrap(), 0);
        drop(w);
        let got: Vec<u32> = r.iter::<u32>().map(Result::unwrap).collect();
        assert_eq!(got, (1..300).collect::<Vec<_>>());
        assert!(child.wait(LIMIT).success());
        assert_eq!(r.iter::<u32>().count(), 0);

        let (mut r, mut w) = small_pipe();
        let big = message(3, 5 * RING);
        let b2 = big.clone();
        let t = std::thread::spawn(move || {
            w.send_bytes(b"one").unwrap();
            w.send_bytes(&b2).unwrap();
        });
        let all: Vec<Vec<u8>> =
            futures::executor::block_on(r.stream_bytes().map(Result::unwrap).collect::<Vec<_>>());
        t.join().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], b"one");
        assert!(all[1] == big);
        let mut s = r.stream_bytes();
        assert!(futures::executor::block_on(s.next()).is_none());
        assert!(futures::stream::FusedStream::is_terminated(&s));
    });
}

#[test]
fn a_runtimes_timeout_on_recv_takes_nothing() {
    ipc_testkit::watchdog(LIMIT, || {
        runtime().block_on(async {
            let (mut a, mut b) = small_pipe();
            let r = tokio::time::timeout(Duration::from_millis(20), b.recv_bytes_async()).await;
            assert!(r.is_err());
            assert_eq!(dir0(a.handle().segment()), idle());
            a.send_bytes_async(b"later").await.unwrap();
            assert_eq!(b.recv_bytes_async().await.unwrap(), b"later");
            assert!(matches!(
                b.recv_bytes_timeout_async(Duration::from_millis(10)).await,
                Err(RecvError::Timeout)
            ));
            assert_eq!(dir0(a.handle().segment()), idle());
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Cancellation at each await point.

#[test]
fn a_recv_dropped_while_it_waits_for_a_message_or_for_the_end_takes_nothing() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = small_pipe();
        let mut b2 = b.try_clone().unwrap();
        let seg = a.handle().segment().clone();
        // `b` waits for a chunk, holding the receive end; `b2` waits for the end.
        let mut first = Box::pin(b.recv_bytes_async());
        assert!(poll_once(first.as_mut()).is_pending());
        let d = dir0(&seg);
        assert_ne!(d.recv_claim, 0, "the first holds the end");
        assert_eq!(d.items_waiters, 1);
        let mut second = Box::pin(b2.recv_bytes_async());
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(dir0(&seg).recv_waiters, 1);
        drop(second);
        assert_eq!(dir0(&seg).recv_waiters, 0);
        drop(first);
        let d = dir0(&seg);
        assert_eq!((d.items_waiters, d.recv_claim), (0, 0));
        // Nothing was consumed, and the end is free for either handle.
        a.send_bytes(b"x").unwrap();
        a.send_bytes(b"y").unwrap();
        futures::executor::block_on(async {
            assert_eq!(b2.recv_bytes_async().await.unwrap(), b"x");
            assert_eq!(b.recv_bytes_async().await.unwrap(), b"y");
        });
        assert_eq!(dir0(&seg), idle());
    });
}

#[test]
fn a_recv_dropped_mid_message_leaves_the_rest_to_the_next_receive_async_or_blocking() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = small_pipe();
        let seg = a.handle().segment().clone();
        let big = message(9, 4 * RING + 5);
        for round in 0..2 {
            let mut send = Box::pin(a.send_bytes_async(&big));
            // The sender fills the ring and waits for room.
            assert!(poll_once(send.as_mut()).is_pending());
            assert_eq!(dir0(&seg).space_waiters, 1);
            // The receiver takes what is there and waits for more: dropped there.
            {
                let mut recv = Box::pin(b.recv_bytes_async());
                assert!(poll_once(recv.as_mut()).is_pending());
                assert_eq!(dir0(&seg).items_waiters, 1);
            }
            let d = dir0(&seg);
            assert_eq!(d.items_waiters, 0);
            assert_ne!(d.recv_claim, 0, "the handle keeps the end for the rest");
            let got = if round == 0 {
                // An async receive continues the message.
                futures::executor::block_on(async {
                    let (s, r) = futures::future::join(send, b.recv_bytes_async()).await;
                    s.unwrap();
                    r.unwrap()
                })
            } else {
                // A blocking receive continues it too.
                std::thread::scope(|sc| {
                    sc.spawn(|| futures::executor::block_on(send).unwrap());
                    b.recv_bytes().unwrap()
                })
            };
            assert!(got == big, "round {round}: the message arrives whole");
            assert_eq!(dir0(&seg), idle());
        }
        // A receive that times out mid-message keeps it the same way.
        let t = std::thread::scope(|sc| {
            let mut send = Box::pin(a.send_bytes_async(&big));
            assert!(poll_once(send.as_mut()).is_pending());
            assert!(matches!(
                b.recv_bytes_timeout(Duration::from_millis(5)),
                Err(RecvError::Timeout)
            ));
            assert_ne!(dir0(&seg).recv_claim, 0);
            sc.spawn(|| futures::executor::block_on(send).unwrap());
            futures::executor::block_on(b.recv_bytes_async()).unwrap()
        });
        assert!(t == big);
        // Dropping the handle gives the rest up; the next receiver skips it.
        let mut b2 = b.try_clone().unwrap();
        let mut a2 = a.try_clone().unwrap();
        std::thread::scope(|sc| {
            let mut send = Box::pin(a.send_bytes_async(&big));
            assert!(poll_once(send.as_mut()).is_pending());
            {
                let mut recv = Box::pin(b.recv_bytes_async());
                assert!(poll_once(recv.as_mut()).is_pending());
            }
            drop(b);
            sc.spawn(move || {
                futures::executor::block_on(send).unwrap();
                a2.send_bytes(b"next").unwrap();
            });
            assert_eq!(b2.recv_bytes().unwrap(), b"next");
        });
        assert_eq!(dir0(&seg), idle());
    });
}

#[test]
fn a_send_dropped_while_it_waits_for_the_end_or_for_room_sends_nothing() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = small_pipe();
        let mut a2 = a.try_clone().unwrap();
        let seg = b.handle().segment().clone();
        // Fill the ring with whole messages.
        let small = message(1, 1000);
        let mut queued = 0;
        while a.send_bytes_timeout(&small, Duration::ZERO).is_ok() {
            queued += 1;
        }
        assert!(queued > 0);
        // Waiting for room (holding the end), then waiting for the end.
        // (What is left of the ring is less than a header and 100 bytes.)
        let first_message = message(2, 100);
        let mut first = Box::pin(a.send_bytes_async(&first_message));
        assert!(poll_once(first.as_mut()).is_pending());
        let d = dir0(&seg);
        assert_ne!(d.send_claim, 0);
        assert_eq!(d.space_waiters, 1);
        let mut second = Box::pin(a2.send_async(&vec![0u8; 100]));
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(dir0(&seg).send_waiters, 1);
        drop(second);
        drop(first);
        let d = dir0(&seg);
        assert_eq!((d.space_waiters, d.send_waiters, d.send_claim), (0, 0, 0));
        // The timeout forms: nothing sent either.
        futures::executor::block_on(async {
            assert!(matches!(
                a.send_bytes_timeout_async(&[0u8; 100], Duration::from_millis(5))
                    .await,
                Err(SendError::Timeout)
            ));
        });
        for _ in 0..queued {
            assert!(b.recv_bytes().unwrap() == small);
        }
        assert!(!b.poll().unwrap(), "neither dropped send sent anything");
        a.send_bytes(b"after").unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"after");
        assert_eq!(dir0(&seg), idle());
    });
}

#[test]
fn a_send_dropped_mid_message_is_not_delivered_and_the_stream_stays_whole() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = small_pipe();
        let seg = b.handle().segment().clone();
        a.send_bytes(b"before").unwrap();
        {
            let big = message(5, 10 * RING);
            let mut send = Box::pin(a.send_bytes_async(&big));
            // Part of the message is out; the rest waits for room. Dropped there.
            assert!(poll_once(send.as_mut()).is_pending());
            assert_ne!(dir0(&seg).send_claim, 0);
        }
        assert_eq!(dir0(&seg).send_claim, 0, "the end is free");
        assert_eq!(b.recv_bytes().unwrap(), b"before");
        std::thread::scope(|sc| {
            // The receiver takes the prefix, then drops it at the next first chunk.
            let t = sc.spawn(|| futures::executor::block_on(b.recv_bytes_async()).unwrap());
            a.send_bytes(b"after").unwrap();
            assert_eq!(t.join().unwrap(), b"after");
        });
        // Or after a slice, if no message follows: then the next one arrives whole.
        {
            let big = message(6, 10 * RING);
            let mut send = Box::pin(a.send_bytes_async(&big));
            assert!(poll_once(send.as_mut()).is_pending());
        }
        let mut recv = Box::pin(b.recv_bytes_async());
        assert!(poll_once(recv.as_mut()).is_pending());
        std::thread::scope(|sc| {
            let t = sc.spawn(|| futures::executor::block_on(recv).unwrap());
            // Long after the receiver gave the prefix up (no timing depends on it).
            std::thread::sleep(Duration::from_millis(100));
            futures::executor::block_on(a.send_async(&"whole")).unwrap();
            assert_eq!(
                ipc_core::codec::decode::<String>(&t.join().unwrap()).unwrap(),
                "whole"
            );
        });
        assert_eq!(dir0(&seg), idle());
    });
}

#[test]
fn an_async_receive_that_times_out_mid_message_keeps_it_for_the_next_receive() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = small_pipe();
        let seg = a.handle().segment().clone();
        let big = message(4, 6 * RING + 3);
        let got = std::thread::scope(|sc| {
            let mut send = Box::pin(a.send_bytes_async(&big));
            assert!(poll_once(send.as_mut()).is_pending());
            futures::executor::block_on(async {
                assert!(matches!(
                    b.recv_bytes_timeout_async(Duration::from_millis(5)).await,
                    Err(RecvError::Timeout)
                ));
                // Likewise a value receive (the same message, continued, then decoded).
                assert!(matches!(
                    b.recv_timeout_async::<Vec<u8>>(Duration::from_millis(5))
                        .await,
                    Err(RecvError::Timeout)
                ));
            });
            assert_ne!(dir0(&seg).recv_claim, 0, "the handle keeps the end");
            sc.spawn(|| futures::executor::block_on(send).unwrap());
            futures::executor::block_on(b.recv_bytes_async()).unwrap()
        });
        assert!(got == big);
        assert_eq!(dir0(&seg), idle());
    });
}

#[test]
fn a_dropped_stream_keeps_a_half_read_message_for_the_next_receive() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = small_pipe();
        let big = message(2, 3 * RING);
        a.send_bytes(b"one").unwrap();
        let mut send = Box::pin(a.send_bytes_async(&big));
        assert!(poll_once(send.as_mut()).is_pending());
        {
            let mut s = b.stream_bytes();
            let one = futures::executor::block_on(s.next()).unwrap().unwrap();
            assert_eq!(one, b"one");
            assert!(poll_once(Pin::new(&mut s.next())).is_pending());
        }
        std::thread::scope(|sc| {
            sc.spawn(|| futures::executor::block_on(send).unwrap());
            assert!(b.recv_bytes().unwrap() == big);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// A thousand tasks and a killed peer.

/// A pipe whose end 0 is held by a child (`child_holds_an_end`, attached once it has sent
/// "ready"); returns the child and end 1 (ours). Our own end 0 is dropped, so the child is the
/// only sender of direction 0 and the only receiver of direction 1.
fn pipe_with_a_child_peer() -> (ipc_testkit::Role, Connection) {
    let (a, mut b) = PipeBuilder::new()
        .capacity(RING)
        .participants(2048)
        .create()
        .unwrap();
    let child = ipc_testkit::spawn("child_holds_an_end", &a.handle());
    assert_eq!(b.recv_bytes_timeout(LIMIT).unwrap(), b"ready");
    drop(a);
    (child, b)
}

#[test]
fn a_sender_killed_while_1000_tasks_await_ends_every_await_with_disconnected() {
    ipc_testkit::raise_fd_limit();
    let (mut child, b) = pipe_with_a_child_peer();
    let seg = b.handle().segment().clone();
    let rt = runtime();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let mut c = b.try_clone().unwrap();
            rt.spawn(async move {
                if i % 2 == 0 {
                    c.recv_bytes_async().await.map(drop)
                } else {
                    c.recv_async::<u64>().await.map(drop)
                }
            })
        })
        .collect();
    // One task holds the receive end and waits for a chunk, the others wait for the end.
    wait_until(LIMIT, "1000 tasks await", || {
        let d = dir0(&seg);
        d.items_waiters == 1 && d.recv_waiters == 999
    });
    child.kill();
    let results = ipc_testkit::watchdog(LIMIT, move || {
        rt.block_on(async move {
            let mut r = Vec::new();
            for t in tasks {
                r.push(t.await.unwrap());
            }
            r
        })
    });
    let disconnected = results
        .iter()
        .filter(|r| matches!(r, Err(RecvError::Disconnected)))
        .count();
    assert_eq!(
        disconnected,
        1000,
        "{:?}",
        results
            .iter()
            .find(|r| !matches!(r, Err(RecvError::Disconnected)))
    );
    let d = dir0(&seg);
    assert_eq!((d.items_waiters, d.recv_waiters, d.recv_claim), (0, 0, 0));
}

#[test]
fn a_receiver_killed_while_1000_tasks_await_ends_every_send_with_disconnected() {
    ipc_testkit::raise_fd_limit();
    let (mut child, b) = pipe_with_a_child_peer();
    let rt = runtime();
    let started = Arc::new(ipc_core::raw::atomic::AtomicU32::new(0));
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let mut c = b.try_clone().unwrap();
            let started = Arc::clone(&started);
            rt.spawn(async move {
                // ORDERING: Relaxed, a progress counter for the watchdog loop below.
                started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i % 2 == 0 {
                    c.send_bytes_async(&message(1, 600)).await
                } else {
                    // Larger than the ring: streams, and waits for room mid-message.
                    c.send_async(&vec![7u8; 3 * RING]).await
                }
            })
        })
        .collect();
    wait_until(LIMIT, "1000 tasks started", || {
        // ORDERING: Relaxed, as above.
        started.load(std::sync::atomic::Ordering::Relaxed) == 1000
    });
    child.kill();
    let results = ipc_testkit::watchdog(LIMIT, move || {
        rt.block_on(async move {
            let mut r = Vec::new();
            for t in tasks {
                r.push(t.await.unwrap());
            }
            r
        })
    });
    let sent = results.iter().filter(|r| r.is_ok()).count();
    let disconnected = results
        .iter()
        .filter(|r| matches!(r, Err(SendError::Disconnected)))
        .count();
    // The few that fitted the ring before it filled are sent; every other ends Disconnected.
    assert_eq!(sent + disconnected, 1000);
    assert!(sent * 600 <= RING, "{sent} sent");
}

// ---------------------------------------------------------------------------------------------
// No busy polling.

/// Child: 1,000 tasks await a pipe whose live sender (the parent) sends nothing (receives), and
/// 500 more await room on a full ring whose live receiver reads nothing (sends), and a stream;
/// over one second of that the tasks must be polled about once per slice per awaited word, not
/// more (`assert_idle`).
#[test]
#[ignore = "child role"]
fn child_idle_awaiting() {
    ipc_testkit::raise_fd_limit();
    let (recv_end, send_end): (ConnectionHandle, ConnectionHandle) = ipc_testkit::arg();
    let rx = Connection::open(&recv_end).unwrap();
    let mut tx = Connection::open(&send_end).unwrap();
    // Fill the ring the parent never reads.
    while tx.send_bytes_timeout(&[0u8; 512], Duration::ZERO).is_ok() {}
    let rt = runtime();
    let polls = Arc::new(AtomicU32::new(0));
    for i in 0..1500 {
        let polls = Arc::clone(&polls);
        if i < 1000 {
            let mut c = rx.try_clone().unwrap();
            rt.spawn(async move {
                let receive = async {
                    if i == 0 {
                        let mut s = c.stream_bytes();
                        while s.next().await.is_some() {}
                    } else {
                        let _ = c.recv_bytes_async().await;
                    }
                };
                counting_polls(receive, &polls).await
            });
        } else {
            let mut c = tx.try_clone().unwrap();
            rt.spawn(async move {
                let _ = counting_polls(c.send_bytes_async(&[1u8; 100]), &polls).await;
            });
        }
    }
    // Let them settle into their waits (spins, first registrations).
    std::thread::sleep(Duration::from_millis(300));
    // ORDERING: Relaxed, a counter of the tasks' polls; it publishes nothing.
    let polls0 = polls.load(Ordering::Relaxed);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    // ORDERING: Relaxed, as above.
    let polled = polls.load(Ordering::Relaxed) - polls0;
    // Four words: each end's claim (the tasks that wait for an end) and, for the one task
    // that holds each end, the ring's items and room.
    assert_idle("idle awaiting", polled, 4, cpu, wall);
    rt.shutdown_background();
}

#[test]
fn an_idle_awaiting_process_uses_almost_no_cpu() {
    // The child receives on `a`'s pipe (we hold its sender) and sends on `d`'s (we hold its
    // receiver); neither of us acts.
    let (a, b) = PipeBuilder::new().participants(2048).create().unwrap();
    let (c, d) = PipeBuilder::new()
        .capacity(RING)
        .participants(2048)
        .create()
        .unwrap();
    let mut child = ipc_testkit::spawn("child_idle_awaiting", &(b.handle(), c.handle()));
    assert!(
        child.wait(LIMIT).success(),
        "the child measured busy polling (see its stderr)"
    );
    drop((a, b, c, d));
}

/// A value whose `Serialize` fails.
struct Refused;

impl serde::Serialize for Refused {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}

/// An awaited send of a value that cannot be encoded gives `Encode`, sends nothing, and the
/// handle sends the next value as usual (its buffer, where values are encoded, reused).
#[test]
fn an_awaited_send_that_cannot_encode_sends_nothing() {
    on_every_executor(LIMIT, || async {
        let (mut a, mut b) = small_pipe();
        let err = a.send_async(&(1u32, Refused)).await.unwrap_err();
        assert!(matches!(err, SendError::Encode(_)), "{err}");
        assert!(!b.poll().unwrap(), "nothing was sent");
        a.send_async(&(2u32, "two".to_string())).await.unwrap();
        assert_eq!(b.recv::<(u32, String)>().unwrap(), (2, "two".into()));
        assert!(!b.poll().unwrap());
    });
}
