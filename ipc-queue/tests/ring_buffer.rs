//! The SPSC ring: in one process with threads, and across processes, with peers killed.

mod common;

use std::time::Duration;

use ipc_core::ObjectHandle;
use ipc_queue::{Consumer, GetError, Producer, PutError, RingBuffer, TryGetError, TryPutError};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn fifo_across_threads_single_and_slices() {
    common::watchdog(LIMIT, || {
        let (mut tx, mut rx) = RingBuffer::<u64>::new(64).unwrap();
        let n = 200_000u64;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < n {
                if i % 3 == 0 {
                    let chunk: Vec<u64> = (i..(i + 17).min(n)).collect();
                    let mut done = 0;
                    while done < chunk.len() {
                        done += tx.push_slice(&chunk[done..]).unwrap();
                    }
                    i += chunk.len() as u64;
                } else {
                    tx.push_blocking(i).unwrap();
                    i += 1;
                }
            }
        });
        let mut expected = 0;
        let mut buf = [0u64; 23];
        while expected < n {
            if expected % 2 == 0 {
                let got = rx.pop_blocking().unwrap();
                assert_eq!(got, expected);
                expected += 1;
            } else {
                let k = rx.pop_slice(&mut buf).unwrap();
                for &v in &buf[..k] {
                    assert_eq!(v, expected);
                    expected += 1;
                }
            }
        }
        t.join().unwrap();
        // The producer is gone and the ring is empty.
        assert!(matches!(rx.pop_blocking(), Err(GetError::Disconnected)));
    });
}

#[test]
fn full_and_empty_are_reported() {
    let (mut tx, mut rx) = RingBuffer::<u32>::new(2).unwrap();
    assert!(matches!(rx.pop(), Err(TryGetError::Empty)));
    tx.push(1).unwrap();
    tx.push(2).unwrap();
    match tx.push(3) {
        Err(TryPutError::Full(v)) => assert_eq!(v, 3),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(matches!(
        tx.push_timeout(3, Duration::from_millis(5)),
        Err(PutError::Timeout(3))
    ));
    assert!(matches!(rx.pop_timeout(Duration::from_millis(1)), Ok(1)));
    assert_eq!(rx.len(), 1);
}

#[test]
fn zero_capacity_is_refused() {
    assert!(RingBuffer::<u64>::new(0).is_err());
}

#[test]
fn wrong_type_is_refused() {
    let (tx, _rx) = RingBuffer::<u64>::new(4).unwrap();
    assert!(Consumer::<u32>::open(&tx.handle()).is_err());
}

#[test]
#[ignore]
fn child_produces() {
    let (handle, n): (ObjectHandle, u64) = common::arg();
    let mut tx = Producer::<u64>::open(&handle).unwrap();
    for i in 0..n {
        tx.push_blocking(i).unwrap();
    }
}

#[test]
fn across_processes_then_disconnected() {
    common::watchdog(LIMIT, || {
        let (tx, mut rx) = RingBuffer::<u64>::new(128).unwrap();
        let handle = tx.handle();
        let n = 100_000u64;
        let mut child = common::spawn("child_produces", &(handle, n));
        // Our own producer would keep the ring connected.
        drop(tx);
        let mut sum = 0u64;
        for i in 0..n {
            let v = rx.pop_blocking().unwrap();
            assert_eq!(v, i);
            sum += v;
        }
        assert_eq!(sum, n * (n - 1) / 2);
        assert!(child.wait(LIMIT));
        assert!(matches!(rx.pop_blocking(), Err(GetError::Disconnected)));
    });
}

#[test]
#[ignore]
fn child_consumes_forever() {
    let handle: ObjectHandle = common::arg();
    let mut rx = Consumer::<u64>::open(&handle).unwrap();
    loop {
        let _ = rx.pop_blocking();
    }
}

#[test]
fn killed_consumer_disconnects_the_producer() {
    common::watchdog(LIMIT, || {
        let (mut tx, rx) = RingBuffer::<u64>::new(4).unwrap();
        let mut child = common::spawn("child_consumes_forever", &tx.handle());
        drop(rx);
        // Once the child has attached and consumed something, kill it.
        tx.push_blocking(1).unwrap();
        while tx.push(2).is_ok() {}
        tx.push_blocking(3).unwrap();
        child.kill();
        let mut result = Ok(());
        for i in 0..100 {
            result = tx.push_blocking(i);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(PutError::Disconnected(_))));
    });
}

#[test]
#[ignore]
fn child_produces_forever() {
    let handle: ObjectHandle = common::arg();
    let mut tx = Producer::<u64>::open(&handle).unwrap();
    let mut i = 0u64;
    loop {
        let _ = tx.push_blocking(i);
        i += 1;
    }
}

#[test]
fn killed_producer_disconnects_the_consumer_after_the_last_value() {
    common::watchdog(LIMIT, || {
        let (tx, mut rx) = RingBuffer::<u64>::new(16).unwrap();
        let mut child = common::spawn("child_produces_forever", &tx.handle());
        drop(tx);
        // Values arrive in order, with no gaps, until the producer dies.
        let mut next = 0;
        while next < 1000 {
            assert_eq!(rx.pop_blocking().unwrap(), next);
            next += 1;
        }
        child.kill();
        loop {
            match rx.pop_blocking() {
                Ok(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                Err(GetError::Disconnected) => break,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    });
}
