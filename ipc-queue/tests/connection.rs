//! `pipe()` and `Connection`: framing, streaming of messages larger than the ring, and peers
//! that exit or are killed.

mod common;

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

#[test]
fn messages_larger_than_the_ring_stream_through_it() {
    common::watchdog(LIMIT, || {
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
    let handle: ConnectionHandle = common::arg();
    let mut c = Connection::open(&handle).unwrap();
    while let Ok(v) = c.recv::<Vec<u64>>() {
        c.send(&v).unwrap();
    }
}

#[test]
fn echo_across_processes_then_eof_when_the_child_is_killed() {
    common::watchdog(LIMIT, || {
        let (mut parent, child_end) = pipe().unwrap();
        let mut child = common::spawn("child_echoes", &child_end.handle());
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
