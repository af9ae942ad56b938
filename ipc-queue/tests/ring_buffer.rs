//! The SPSC ring: in one process with threads, and across processes, with peers killed.

use std::time::Duration;

use ipc_core::ObjectHandle;
use ipc_queue::{
    Consumer, GetError, OpenError, Producer, PutError, RingBuffer, TryGetError, TryPutError,
};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn fifo_across_threads_single_and_slices() {
    ipc_testkit::watchdog(LIMIT, || {
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
    let (mut tx, n): (Producer<u64>, u64) = ipc_testkit::arg();
    for i in 0..n {
        tx.push_blocking(i).unwrap();
    }
}

#[test]
#[ignore]
fn child_echoes_without_spinning() {
    let (mut rx, mut tx, n): (Consumer<u64>, Producer<u64>, u64) = ipc_testkit::arg();
    rx.set_spin(Duration::ZERO);
    tx.set_spin(Duration::ZERO);
    for _ in 0..n {
        let v = rx.pop_blocking().unwrap();
        tx.push_blocking(v + 1).unwrap();
    }
}

/// With no spinning, every wait of both processes goes to sleep on the futex: each message is
/// a wake-up across processes through the waker's light barrier and the sleeper's membarrier.
#[test]
fn a_ping_pong_that_sleeps_on_every_message_delivers_every_one() {
    ipc_testkit::watchdog(LIMIT, || {
        let (ping_tx, ping_rx) = RingBuffer::<u64>::new(4).unwrap();
        let (pong_tx, pong_rx) = RingBuffer::<u64>::new(4).unwrap();
        let n = 2_000u64;
        let mut child =
            ipc_testkit::spawn("child_echoes_without_spinning", &(&ping_rx, &pong_tx, n));
        drop((ping_rx, pong_tx));
        let (mut tx, mut rx) = (ping_tx, pong_rx);
        tx.set_spin(Duration::ZERO);
        rx.set_spin(Duration::ZERO);
        for i in 0..n {
            tx.push_blocking(2 * i).unwrap();
            assert_eq!(rx.pop_blocking().unwrap(), 2 * i + 1);
        }
        assert!(child.wait(LIMIT).success());
    });
}

#[test]
fn across_processes_then_disconnected() {
    ipc_testkit::watchdog(LIMIT, || {
        let (tx, mut rx) = RingBuffer::<u64>::new(128).unwrap();
        let n = 100_000u64;
        // The child becomes the producer: ours is handed over to it.
        let mut child = ipc_testkit::spawn("child_produces", &(&tx, n));
        let mut tx = Some(tx);
        let mut sum = 0u64;
        for i in 0..n {
            let v = rx.pop_blocking().unwrap();
            assert_eq!(v, i);
            sum += v;
            if i == 0 {
                // The child holds the role now; until it did, the inert original kept the
                // producer present.
                tx.take();
            }
        }
        assert_eq!(sum, n * (n - 1) / 2);
        assert!(child.wait(LIMIT).success());
        assert!(matches!(rx.pop_blocking(), Err(GetError::Disconnected)));
    });
}

#[test]
#[ignore]
fn child_consumes_forever() {
    let mut rx: Consumer<u64> = ipc_testkit::arg();
    loop {
        let _ = rx.pop_blocking();
    }
}

#[test]
fn killed_consumer_disconnects_the_producer() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut tx, rx) = RingBuffer::<u64>::new(4).unwrap();
        // The consumer end itself goes to the child (its role is handed over); the inert
        // original stays until the child has taken the role, so that until then the ring
        // counts its consumer as present.
        let mut child = ipc_testkit::spawn("child_consumes_forever", &rx);
        // Once the child has attached and consumed something, kill it.
        tx.push_blocking(1).unwrap();
        while tx.push(2).is_ok() {}
        tx.push_blocking(3).unwrap(); // room only once the child pops: it holds the role
        drop(rx);
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
    let mut tx: Producer<u64> = ipc_testkit::arg();
    let mut i = 0u64;
    loop {
        let _ = tx.push_blocking(i);
        i += 1;
    }
}

#[test]
fn killed_producer_disconnects_the_consumer_after_the_last_value() {
    ipc_testkit::watchdog(LIMIT, || {
        let (tx, mut rx) = RingBuffer::<u64>::new(16).unwrap();
        let mut child = ipc_testkit::spawn("child_produces_forever", &tx);
        // Values arrive in order, with no gaps, until the producer dies.
        assert_eq!(rx.pop_blocking().unwrap(), 0);
        drop(tx); // the child holds the role
        let mut next = 1;
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

#[test]
fn a_second_producer_or_consumer_is_refused_while_the_first_lives() {
    let (tx, rx) = RingBuffer::<u64>::new(8).unwrap();
    let h = tx.handle();
    let me = std::process::id();
    match Producer::<u64>::open(&h) {
        Err(OpenError::RoleTaken { pid }) => assert_eq!(pid, me),
        other => panic!("a second producer opened: {other:?}"),
    }
    match Consumer::<u64>::open(&h) {
        Err(OpenError::RoleTaken { pid }) => assert_eq!(pid, me),
        other => panic!("a second consumer opened: {other:?}"),
    }
    // A dropped end frees its role for the next opener.
    drop(tx);
    let mut tx = Producer::<u64>::open(&h).unwrap();
    // (`h` names the descriptor of the first handles' mapping: take a live handle's.)
    let h = tx.handle();
    drop(rx);
    let mut rx = Consumer::<u64>::open(&h).unwrap();
    tx.push(5).unwrap();
    assert_eq!(rx.pop().unwrap(), 5);
}

#[test]
#[ignore]
fn child_must_not_become_a_second_producer() {
    let (handle, parent): (ObjectHandle, u32) = ipc_testkit::arg();
    match Producer::<u64>::open(&handle) {
        Err(OpenError::RoleTaken { pid }) => assert_eq!(pid, parent),
        Err(e) => panic!("unexpected {e}"),
        Ok(mut tx) => {
            // What used to happen: a second writer of the same slots.
            for i in 0..1000 {
                let _ = tx.push(i);
            }
            panic!("a second producer opened in another process");
        }
    }
}

#[test]
fn a_producer_in_another_process_is_refused_while_ours_lives() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut tx, mut rx) = RingBuffer::<u64>::new(64).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_must_not_become_a_second_producer",
            &(tx.handle(), std::process::id()),
        );
        assert!(
            child.wait(LIMIT).success(),
            "the child became a second producer"
        );
        // Our producer and consumer are untouched.
        for i in 0..200 {
            tx.push_blocking(i).unwrap();
            assert_eq!(rx.pop_blocking().unwrap(), i);
        }
    });
}

#[test]
fn a_killed_producers_role_is_taken_over_by_the_next_opener() {
    ipc_testkit::watchdog(LIMIT, || {
        let (tx, mut rx) = RingBuffer::<u64>::new(16).unwrap();
        let handle = tx.handle();
        let mut child = ipc_testkit::spawn("child_produces_forever", &tx);
        assert_eq!(rx.pop_blocking().unwrap(), 0);
        drop(tx); // the child holds the role
        let mut next = 1;
        while next < 100 {
            assert_eq!(rx.pop_blocking().unwrap(), next);
            next += 1;
        }
        // The child holds the role while it lives.
        match Producer::<u64>::open(&handle) {
            Err(OpenError::RoleTaken { pid }) => assert_eq!(pid, child.pid()),
            other => panic!("expected RoleTaken, got {other:?}"),
        }
        child.kill();
        // The kernel says it is dead: what it pushed drains, then the ring is disconnected...
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
        // ...and the role is the next opener's.
        let mut tx = Producer::<u64>::open(&handle).unwrap();
        tx.push_blocking(u64::MAX).unwrap();
        assert_eq!(rx.pop_blocking().unwrap(), u64::MAX);
    });
}

#[test]
fn a_serialised_end_is_handed_over_and_the_original_goes_inert() {
    let (mut tx, mut rx) = RingBuffer::<u64>::new(8).unwrap();
    let h = tx.handle();
    let bytes = ipc_core::codec::encode(&tx).unwrap();
    // Serialising again gives the same hand-over (the same token).
    assert_eq!(ipc_core::codec::encode(&tx).unwrap(), bytes);
    assert!(matches!(tx.push(1), Err(TryPutError::HandedOver(1))));
    assert!(matches!(tx.push_blocking(1), Err(PutError::HandedOver(1))));
    assert!(matches!(
        Producer::<u64>::open(&h),
        Err(OpenError::RoleInTransit)
    ));
    // While the hand-over is in flight, the consumer does not see the producer as gone.
    assert!(matches!(
        rx.pop_timeout(Duration::from_millis(50)),
        Err(GetError::Timeout)
    ));
    let mut tx2: Producer<u64> = ipc_core::codec::decode(&bytes).unwrap();
    tx2.push(2).unwrap();
    assert_eq!(rx.pop().unwrap(), 2);
    // The bytes were used: a second deserialisation is refused.
    assert!(ipc_core::codec::decode::<Producer<u64>>(&bytes).is_err());
    // Dropping the inert original frees nothing.
    drop(tx);
    assert!(matches!(
        Producer::<u64>::open(&h),
        Err(OpenError::RoleTaken { .. })
    ));
    drop(tx2);
    assert!(Producer::<u64>::open(&h).is_ok());
    // The consumer travels the same way.
    let bytes = ipc_core::codec::encode(&rx).unwrap();
    assert!(matches!(rx.pop(), Err(TryGetError::HandedOver)));
    let rx2: Consumer<u64> = ipc_core::codec::decode(&bytes).unwrap();
    assert_eq!(rx2.capacity(), 8);
}

#[test]
#[ignore]
fn child_produces_on_a_handed_over_end() {
    let (mut tx, n): (Producer<u64>, u64) = ipc_testkit::arg();
    for i in 0..n {
        tx.push_blocking(i).unwrap();
    }
}

#[test]
fn a_producer_passed_to_a_child_works_there_while_the_parents_copy_is_inert() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut tx, mut rx) = RingBuffer::<u64>::new(32).unwrap();
        let n = 10_000u64;
        // Serialising `tx` into the child's input hands the role over; `tx` stays alive here.
        let mut child = ipc_testkit::spawn("child_produces_on_a_handed_over_end", &(&tx, n));
        for i in 0..n {
            assert_eq!(rx.pop_blocking().unwrap(), i);
        }
        assert!(matches!(tx.push(7), Err(TryPutError::HandedOver(7))));
        assert!(child.wait(LIMIT).success());
        assert!(matches!(rx.pop_blocking(), Err(GetError::Disconnected)));
    });
}

/// From a single-threaded child role: a fork child's copy of a held end refuses to act, and
/// acts once its parent has let the role go.
#[test]
#[ignore]
fn child_forks_with_a_held_end() {
    let (mut tx, mut rx) = RingBuffer::<u64>::new(8).unwrap();
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: this role runs alone in its process (one test, one thread); the fork child only
    // calls the ring, writes to a pipe and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Our parent holds the producer role (it waits for our byte before dropping it): we
        // may not push.
        let mut code = match tx.push(1) {
            Err(TryPutError::NotAttached(1)) => 0,
            _ => 1,
        };
        // SAFETY: writes one byte from a valid buffer to the pipe's write end.
        unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) };
        // Once it drops its producer, the role is ours.
        let mut waited = 0;
        loop {
            match tx.push(2) {
                Ok(()) => break,
                Err(TryPutError::NotAttached(_)) if waited < 60_000 => {
                    std::thread::sleep(Duration::from_millis(1));
                    waited += 1;
                }
                Err(_) => {
                    code = 2;
                    break;
                }
            }
        }
        // SAFETY: ends the fork child without running the parent's destructors twice.
        unsafe { libc::_exit(code) };
    }
    tx.push(1).unwrap();
    let mut byte = [0u8];
    // SAFETY: reads one byte into a valid buffer from the pipe's read end.
    let n = unsafe { libc::read(fds[0], byte.as_mut_ptr().cast(), 1) };
    assert_eq!(n, 1);
    drop(tx);
    assert_eq!(rx.pop_blocking().unwrap(), 1);
    assert_eq!(rx.pop_blocking().unwrap(), 2);
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

#[test]
fn a_fork_childs_copy_of_a_held_end_waits_for_the_role() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut role = ipc_testkit::spawn("child_forks_with_a_held_end", &());
        assert!(role.wait(LIMIT).success());
    });
}

#[test]
fn a_hand_over_nobody_takes_counts_as_gone_once_the_original_drops() {
    ipc_testkit::watchdog(LIMIT, || {
        let (tx, mut rx) = RingBuffer::<u64>::new(8).unwrap();
        let bytes = ipc_core::codec::encode(&tx).unwrap();
        // In flight, with the original alive: the consumer waits for the producer to come.
        assert!(matches!(
            rx.pop_timeout(Duration::from_millis(50)),
            Err(GetError::Timeout)
        ));
        // The original goes (say the child meant to take it died first): the consumer is no
        // longer kept waiting on a producer that may never come.
        drop(tx);
        assert!(matches!(rx.pop_blocking(), Err(GetError::Disconnected)));
        // The bytes still carry the role.
        let mut tx: Producer<u64> = ipc_core::codec::decode(&bytes).unwrap();
        tx.push(4).unwrap();
        assert_eq!(rx.pop_blocking().unwrap(), 4);
    });
}

/// A record of several words, so that every copy into and out of a slot spans words.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Record {
    seq: u64,
    check: u64,
    pad: [u32; 4],
}

impl Record {
    fn new(seq: u64) -> Self {
        Self {
            seq,
            check: !seq,
            pad: [seq as u32; 4],
        }
    }
}

/// For ThreadSanitizer (CI runs `threads_*`): the two ends of one ring (one mapping) in two
/// threads of this process, one value and slices at a time. A missing Release on the tail or
/// Acquire on the head, or a plain copy over a slot the other thread writes, is a reported race.
#[test]
fn threads_ring_ends_move_records_in_order() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut tx, mut rx) = RingBuffer::<Record>::new(16).unwrap();
        let n = 20_000u64;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < n {
                if i % 3 == 0 {
                    let batch: Vec<Record> = (i..(i + 5).min(n)).map(Record::new).collect();
                    i += tx.push_slice(&batch).unwrap() as u64;
                } else if tx.push(Record::new(i)).is_ok() {
                    i += 1;
                }
            }
        });
        let mut next = 0u64;
        let mut buf = [Record::new(0); 7];
        while next < n {
            let got = if next % 2 == 0 {
                rx.pop_slice(&mut buf).unwrap()
            } else {
                match rx.pop_timeout(LIMIT) {
                    Ok(r) => {
                        buf[0] = r;
                        1
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            for r in &buf[..got] {
                assert_eq!(*r, Record::new(next));
                next += 1;
            }
        }
        t.join().unwrap();
    });
}
