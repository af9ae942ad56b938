//! `pipe()` and `Connection`: framing, streaming of messages larger than the ring, and peers
//! that exit or are killed.

use std::time::Duration;

use ipc_core::Placement;
use ipc_queue::{Connection, ConnectionHandle, RecvError, SendError, pipe, pipe_with_capacity};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn values_and_bytes_round_trip() {
    let (mut a, mut b) = pipe().unwrap();
    a.send(&vec![1, 2, 3]).unwrap();
    a.send(&("x".to_string(), 2.5f64)).unwrap();
    a.send_bytes(b"").unwrap();
    assert_eq!(b.recv::<Vec<i32>>().unwrap(), [1, 2, 3]);
    assert_eq!(b.recv::<(String, f64)>().unwrap(), ("x".to_string(), 2.5));
    assert_eq!(b.recv_bytes().unwrap(), b"");
    assert!(!b.poll().unwrap());
    assert!(!b.poll_timeout(Duration::from_millis(5)).unwrap());
    b.send_bytes(b"back").unwrap();
    assert_eq!(a.recv_bytes().unwrap(), b"back");
}

#[test]
fn recv_bytes_into_uses_the_callers_buffer() {
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(b"hello world").unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        b.recv_bytes_into(&mut small),
        Err(RecvError::BufferTooSmall { needed: 11 })
    ));
    let mut buf = [0u8; 64];
    let n = b.recv_bytes_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello world");
}

/// Small messages of every length from 0 to 40 bytes, sent and received one by one through
/// rings of 128 and 384 bytes, so that their chunks start at every offset, next to the ring's
/// end too: those of up to 16 bytes are written in one burst of stores unless they would wrap,
/// and read as two words, the others (and those that would wrap) word by word; each arrives
/// whole, and a sent message waits before nothing.
#[test]
fn small_messages_of_every_length_at_every_offset_arrive_whole() {
    // Two rings (a power of two and not); each message is received into the caller's buffer
    // and into a vector in turn.
    for capacity in [128, 384] {
        let (mut a, mut b) = pipe_with_capacity(&Placement::Anonymous, capacity, true).unwrap();
        let mut buf = [0u8; 64];
        for round in 0..50u32 {
            for len in 0..=40usize {
                let msg: Vec<u8> = (0..len)
                    .map(|i| (round as usize * 41 + len + i) as u8)
                    .collect();
                let at = format!("capacity {capacity}, round {round}, length {len}");
                a.send_bytes(&msg).unwrap();
                if (round as usize + len) % 2 == 0 {
                    let n = b.recv_bytes_into(&mut buf).unwrap();
                    assert_eq!(&buf[..n], &msg[..], "{at}");
                } else {
                    assert_eq!(b.recv_bytes().unwrap(), msg, "{at}");
                }
                assert!(!b.poll().unwrap(), "{at}: a second message");
            }
        }
    }
}

/// Serde values whose encodings take 1 to 40 bytes (a `Vec<u8>`: its length, then its
/// bytes), sent one after the other through rings of 128 and 384 bytes: those of up to 16
/// bytes go out as one burst unless they would wrap, the others word by word; each arrives
/// whole, at every offset of the ring.
#[test]
fn values_of_every_encoded_length_at_every_offset_arrive_whole() {
    for capacity in [128, 384] {
        let (mut a, mut b) = pipe_with_capacity(&Placement::Anonymous, capacity, true).unwrap();
        for round in 0..50u32 {
            for len in 0..40usize {
                let value: Vec<u8> = (0..len).map(|i| (round as usize + i) as u8).collect();
                let at = format!("capacity {capacity}, round {round}, {len} bytes");
                a.send(&value).unwrap();
                assert_eq!(b.recv::<Vec<u8>>().unwrap(), value, "{at}");
                assert!(!b.poll().unwrap(), "{at}: a second message");
            }
        }
    }
}

/// A small value sent into a full ring waits for room like any message: with a timeout it
/// gives `Timeout` and sends nothing; once messages are read it goes.
#[test]
fn a_small_value_into_a_full_ring_waits_for_room() {
    let (mut a, mut b) = pipe_with_capacity(&Placement::Anonymous, 128, true).unwrap();
    let mut sent = 0u64;
    while a.send_timeout(&sent, Duration::from_millis(20)).is_ok() {
        sent += 1;
        assert!(sent < 100, "a ring of 128 bytes took {sent} values");
    }
    assert!(matches!(
        a.send_timeout(&u64::MAX, Duration::from_millis(1)),
        Err(SendError::Timeout)
    ));
    // Two of the values (one byte each) free room for `u64::MAX` (ten).
    assert!(sent >= 2, "a ring of 128 bytes took {sent} values");
    assert_eq!(b.recv::<u64>().unwrap(), 0);
    assert_eq!(b.recv::<u64>().unwrap(), 1);
    a.send_timeout(&u64::MAX, Duration::from_secs(10)).unwrap();
    for want in 2..sent {
        assert_eq!(b.recv::<u64>().unwrap(), want);
    }
    assert_eq!(b.recv::<u64>().unwrap(), u64::MAX);
    assert!(!b.poll().unwrap());
}

#[test]
fn messages_larger_than_the_ring_stream_through_it() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = pipe_with_capacity(&Placement::Anonymous, 4096, true).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        let expected = big.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..3 {
                a.send_bytes(&big).unwrap();
            }
            a
        });
        for _ in 0..3 {
            assert!(b.recv_bytes().unwrap() == expected);
        }
        drop(t.join().unwrap());
        assert!(matches!(b.recv_bytes(), Err(RecvError::Disconnected)));
    });
}

#[test]
fn simplex_ends_refuse_the_other_direction() {
    let (mut r, mut w) = ipc_queue::pipe_simplex().unwrap();
    assert!(matches!(r.send_bytes(b"x"), Err(SendError::NotWritable)));
    assert!(matches!(w.recv_bytes(), Err(RecvError::NotReadable)));
    w.send(&7u8).unwrap();
    assert_eq!(r.recv::<u8>().unwrap(), 7);
}

#[test]
#[ignore]
fn child_echoes() {
    let handle: ConnectionHandle = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    while let Ok(v) = c.recv::<Vec<u64>>() {
        c.send(&v).unwrap();
    }
}

#[test]
fn echo_across_processes_then_eof_when_the_child_is_killed() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut parent, child_end) = pipe().unwrap();
        let mut child = ipc_testkit::spawn("child_echoes", &child_end.handle());
        for i in 0..200u64 {
            let v: Vec<u64> = (0..i).collect();
            parent.send(&v).unwrap();
            assert_eq!(parent.recv::<Vec<u64>>().unwrap(), v);
        }
        // The child has attached (it answered): our copy of its end may go.
        drop(child_end);
        child.kill();
        assert!(matches!(
            parent.recv::<Vec<u64>>(),
            Err(RecvError::Disconnected)
        ));
        // Sending into a pipe whose reader is dead fails once the ring is full.
        let mut r = Ok(());
        for _ in 0..100_000 {
            r = parent.send_bytes(&[0u8; 1024]);
            if r.is_err() {
                break;
            }
        }
        assert!(matches!(r, Err(SendError::Disconnected)));
    });
}

/// A message that says who sent it and which one it is, with a body whose every byte depends on
/// both, so that a torn or interleaved message cannot pass for a whole one.
fn message(sender: u32, seq: u32, ring: usize) -> Vec<u8> {
    // Mostly small, sometimes larger than the ring (streamed through it in pieces); sender
    // `LARGE` sends only messages larger than the ring, so that it is nearly always in the
    // middle of one.
    let len = if sender == LARGE || seq % 97 == 13 {
        ring * 3 + (seq as usize % 7)
    } else {
        8 + (seq as usize * 31 + sender as usize) % 300
    };
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    let salt = sender.wrapping_mul(0x9e37_79b9) ^ seq.wrapping_mul(0x85eb_ca6b);
    m.extend((8..len).map(|i| (salt as usize).wrapping_add(i * 131) as u8));
    m
}

/// Checks a received message is whole; returns `(sender, seq)`.
fn check_message(m: &[u8], ring: usize) -> (u32, u32) {
    assert!(m.len() >= 8, "a message of {} bytes", m.len());
    let sender = u32::from_le_bytes(m[..4].try_into().unwrap());
    let seq = u32::from_le_bytes(m[4..8].try_into().unwrap());
    assert!(
        m == message(sender, seq, ring),
        "message {sender}/{seq} is torn or interleaved"
    );
    (sender, seq)
}

const SHARED_RING: usize = 4096;
/// The sender id whose messages are all larger than the ring.
const LARGE: u32 = 7;

#[test]
#[ignore]
fn child_sends_on_a_shared_end() {
    let (handle, sender, n): (ConnectionHandle, u32, u32) = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    for seq in 0..n {
        c.send_bytes(&message(sender, seq, SHARED_RING)).unwrap();
    }
}

#[test]
#[ignore]
fn child_sends_on_a_shared_end_forever() {
    let (handle, sender): (ConnectionHandle, u32) = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    for seq in 0.. {
        if c.send_bytes(&message(sender, seq, SHARED_RING)).is_err() {
            return;
        }
    }
}

/// Receives until every one of `senders` has delivered `n` messages (each checked whole, once,
/// in order per sender); messages of `extra` senders are checked whole and in order, counted.
fn receive_all(rx: &mut Connection, senders: &[u32], n: u32, next: &mut [u32]) {
    while senders.iter().any(|&s| next[s as usize] < n) {
        let m = rx.recv_bytes().unwrap();
        let (s, seq) = check_message(&m, SHARED_RING);
        assert!(
            seq >= next[s as usize],
            "sender {s}: message {seq} twice or out of order"
        );
        // A killed sender may lose the one message it was sending, no more.
        assert!(
            seq <= next[s as usize] + 1,
            "sender {s}: messages lost before {seq}"
        );
        next[s as usize] = seq + 1;
    }
}

#[test]
fn several_processes_send_on_one_end_and_every_message_arrives_whole_once() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut rx, tx) = pipe_with_capacity(&Placement::Anonymous, SHARED_RING, true).unwrap();
        let n = 1500;
        let handle = tx.handle();
        let mut kids: Vec<_> = (0..4u32)
            .map(|s| ipc_testkit::spawn("child_sends_on_a_shared_end", &(handle.clone(), s, n)))
            .collect();
        // Our own copy of the end sends too, concurrently with the children.
        let mine = std::thread::spawn(move || {
            let mut tx = tx;
            for seq in 0..n {
                tx.send_bytes(&message(4, seq, SHARED_RING)).unwrap();
            }
            tx
        });
        let mut next = vec![0u32; 5];
        receive_all(&mut rx, &[0, 1, 2, 3, 4], n, &mut next);
        assert!(next.iter().all(|&k| k == n), "{next:?}");
        for k in &mut kids {
            assert!(k.wait(LIMIT).success());
        }
        drop(mine.join().unwrap());
        assert!(matches!(rx.recv_bytes(), Err(RecvError::Disconnected)));
    });
}

#[test]
fn a_sender_killed_mid_stream_loses_at_most_its_message_and_the_others_keep_going() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut rx, tx) = pipe_with_capacity(&Placement::Anonymous, SHARED_RING, true).unwrap();
        let handle = tx.handle();
        drop(tx);
        let n = 2000;
        let mut victim = ipc_testkit::spawn(
            "child_sends_on_a_shared_end_forever",
            &(handle.clone(), LARGE),
        );
        let mut others: Vec<_> = (1..3u32)
            .map(|s| ipc_testkit::spawn("child_sends_on_a_shared_end", &(handle.clone(), s, n)))
            .collect();
        let mut next = vec![0u32; 8];
        // Let the victim deliver a good number, then kill it, most likely mid-message.
        receive_all(&mut rx, &[LARGE], 100, &mut next);
        victim.kill();
        receive_all(&mut rx, &[1, 2], n, &mut next);
        assert_eq!(&next[1..3], &[n, n]);
        for o in &mut others {
            assert!(o.wait(LIMIT).success());
        }
        // Whatever the victim had in flight arrives whole or not at all, then the pipe ends.
        loop {
            match rx.recv_bytes() {
                Ok(m) => {
                    let (s, seq) = check_message(&m, SHARED_RING);
                    assert_eq!(s, LARGE);
                    assert!(seq >= next[LARGE as usize]);
                    next[LARGE as usize] = seq + 1;
                }
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    });
}

#[test]
fn several_receivers_on_one_end_each_get_whole_messages_and_none_twice() {
    ipc_testkit::watchdog(LIMIT, || {
        let (rx, mut tx) = pipe_with_capacity(&Placement::Anonymous, SHARED_RING, true).unwrap();
        let n = 3000u32;
        let handle = rx.handle();
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let mut r = Connection::open(&handle).unwrap();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match r.recv_bytes() {
                            Ok(m) => {
                                let (s, seq) = check_message(&m, SHARED_RING);
                                assert_eq!(s, 9);
                                if seq == u32::MAX {
                                    return got;
                                }
                                got.push(seq);
                            }
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        for seq in 0..n {
            tx.send_bytes(&message(9, seq, SHARED_RING)).unwrap();
        }
        for _ in 0..3 {
            tx.send_bytes(&message(9, u32::MAX, SHARED_RING)).unwrap();
        }
        let mut all: Vec<u32> = receivers
            .into_iter()
            .flat_map(|r| {
                let got = r.join().unwrap();
                // Each receiver sees the sender's order.
                assert!(got.windows(2).all(|w| w[0] < w[1]));
                got
            })
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    });
}

#[test]
#[ignore]
fn child_receives_forever_and_counts() {
    let (handle, counter): (ConnectionHandle, ipc_core::ObjectHandle) = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    let counter = ipc_core::RawArray::<u64>::open(&counter).unwrap();
    loop {
        let m = c.recv_bytes().unwrap();
        let (_, seq) = check_message(&m, SHARED_RING);
        // The count is the next sequence number expected: the child saw every one before it.
        assert_eq!(counter.get(0), Some(u64::from(seq)));
        counter.set(0, u64::from(seq) + 1).unwrap();
    }
}

#[test]
fn a_receiver_killed_mid_message_costs_at_most_that_message() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut tx, mut rx) =
            pipe_with_capacity(&Placement::Anonymous, SHARED_RING, true).unwrap();
        let counter = ipc_core::RawArray::<u64>::new(1).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_receives_forever_and_counts",
            &(rx.handle(), counter.handle()),
        );
        // The sender goes on until no receiver is left, so that the child is in the middle of
        // the stream whenever it is killed (a bounded stream could all be read before the kill).
        let sender = std::thread::spawn(move || {
            let mut seq = 0u32;
            loop {
                match tx.send_bytes(&message(LARGE, seq, SHARED_RING)) {
                    Ok(()) => seq += 1,
                    Err(e) => return (e, seq),
                }
            }
        });
        // The child reads alone until it has had a good number of messages (each larger than
        // the ring, so it is nearly always in the middle of one); then it is killed.
        while counter.get(0) < Some(50) {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill();
        let seen = counter.get(0).unwrap() as u32;
        // Our handle of the same end takes over: the rest of the message the child was reading
        // is skipped, and every later message arrives whole, in order.
        let first = check_message(&rx.recv_bytes().unwrap(), SHARED_RING).1;
        assert!(
            first == seen || first == seen + 1,
            "first message {first} after the child saw {seen}"
        );
        for seq in first + 1..first + 200 {
            assert_eq!(check_message(&rx.recv_bytes().unwrap(), SHARED_RING).1, seq);
        }
        // With the last receiver gone, the sender is told so.
        drop(rx);
        let (err, sent) = sender.join().unwrap();
        assert!(matches!(err, SendError::Disconnected), "{err}");
        assert!(sent >= first + 199, "{sent} sent");
    });
}

#[test]
fn readable_and_writable_say_what_an_end_can_do() {
    let (a, b) = ipc_queue::pipe().unwrap();
    assert!(a.readable() && a.writable() && b.readable() && b.writable());
    let (r, w) = ipc_queue::pipe_simplex().unwrap();
    assert!(r.readable() && !r.writable());
    assert!(!w.readable() && w.writable());
    // A handle opened elsewhere keeps what its end can do.
    let r2 = ipc_queue::Connection::open(&r.handle()).unwrap();
    assert!(r2.readable() && !r2.writable());
}

/// For ThreadSanitizer (CI runs `threads_*`): the two ends of one pipe (one mapping) in two
/// threads, messages small and larger than the ring (streamed in chunks) both ways, and two
/// threads sending on clones of one end. A missing ordering on head or tail, or a plain copy
/// over ring bytes the other thread writes, is a reported race.
#[test]
fn threads_pipe_ends_round_trip_between_threads() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = pipe_with_capacity(&Placement::Anonymous, 1024, true).unwrap();
        let n = 300u32;
        let echo = std::thread::spawn(move || {
            for _ in 0..n {
                let m = b.recv_bytes().unwrap();
                b.send_bytes(&m).unwrap();
            }
            b
        });
        for i in 0..n {
            let len = if i % 10 == 0 {
                5000
            } else {
                (i % 100) as usize + 1
            };
            let m: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
            a.send_bytes(&m).unwrap();
            assert_eq!(a.recv_bytes().unwrap(), m);
        }
        let mut b = echo.join().unwrap();
        // Two senders on clones of one end, one receiver.
        let senders: Vec<_> = (0..2u32)
            .map(|s| {
                let mut c = a.try_clone().unwrap();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        c.send(&(s, i, vec![s as u8; (i % 50) as usize])).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u32; 2];
        for _ in 0..400 {
            let (s, i, body): (u32, u32, Vec<u8>) = b.recv().unwrap();
            assert_eq!(i, next[s as usize]);
            assert_eq!(body, vec![s as u8; (i % 50) as usize]);
            next[s as usize] += 1;
        }
        for t in senders {
            t.join().unwrap();
        }
    });
}

#[test]
fn a_thousand_handles_share_one_end_and_a_full_table_is_an_open_error() {
    // The default table takes 1,024 handles per direction (Python has no such limit; we take
    // at least as many as a Pool(1000) would need).
    let (mut a, b) = pipe().unwrap();
    let mut clones: Vec<Connection> = (0..1000)
        .map(|i| {
            b.try_clone()
                .unwrap_or_else(|e| panic!("clone {i} could not attach: {e}"))
        })
        .collect();
    for (i, c) in clones.iter_mut().enumerate().step_by(37) {
        c.send(&(i as u64)).unwrap();
        assert_eq!(a.recv::<u64>().unwrap(), i as u64);
        a.send(&(i as u64 + 1)).unwrap();
        assert_eq!(c.recv::<u64>().unwrap(), i as u64 + 1);
    }
    drop(clones);

    // A table of three per direction: both ends and one more handle, then a clear error.
    let (_x, y) = ipc_queue::PipeBuilder::new()
        .participants(3)
        .create()
        .unwrap();
    let y2 = y.try_clone().unwrap();
    match y.try_clone() {
        Err(ipc_queue::OpenError::TooManyParticipants { limit: 3 }) => {}
        other => panic!("expected TooManyParticipants, got {other:?}"),
    }
    // An entry freed by a dropped handle is taken again.
    drop(y2);
    assert!(y.try_clone().is_ok());
}
