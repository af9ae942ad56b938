//! `Queue<T>`: semantics in one process, then across processes with producers and consumers
//! SIGKILLed mid-stream.

use std::collections::HashSet;
use std::time::Duration;

use ipc_core::{ObjectHandle, Placement, SharedMemory};
use ipc_queue::{GetError, PutError, Queue, Serde, TryGetError, TryPutError};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn fifo_full_empty() {
    let mut q = Queue::<u64>::new(3).unwrap();
    assert_eq!(q.capacity(), 3);
    assert!(q.is_empty());
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
    for i in 0..3 {
        q.try_put(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.len(), 3);
    match q.try_put(9) {
        Err(TryPutError::Full(v)) => assert_eq!(v, 9),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(matches!(
        q.put_timeout(9, Duration::from_millis(5)),
        Err(PutError::Timeout(9))
    ));
    for i in 0..3 {
        assert_eq!(q.get().unwrap(), i);
    }
    assert!(matches!(
        q.get_timeout(Duration::from_millis(5)),
        Err(GetError::Timeout)
    ));
    // Wrap around many laps.
    for i in 0..1000u64 {
        q.put(i).unwrap();
        assert_eq!(q.try_get().unwrap(), i);
    }
}

/// Python's `Queue(maxsize=1)` is full after one put, and so is ours, in both encodings, across
/// handles and across laps of the two slots underneath.
#[test]
fn a_queue_of_one_is_full_after_one_put() {
    let mut q = Queue::<u64>::new(1).unwrap();
    assert_eq!(q.capacity(), 1);
    let mut other = Queue::<u64>::open(&q.handle()).unwrap();
    for lap in 0..10u64 {
        q.try_put(lap).unwrap();
        assert!(q.is_full());
        assert_eq!(q.len(), 1);
        assert!(matches!(other.try_put(99), Err(TryPutError::Full(99))));
        assert!(matches!(
            other.put_timeout(99, Duration::from_millis(5)),
            Err(PutError::Timeout(99))
        ));
        assert_eq!(other.get().unwrap(), lap);
        assert!(!q.is_full());
    }
    let mut s = Queue::<String, Serde>::new(1).unwrap();
    s.put("one".into()).unwrap();
    assert!(matches!(s.try_put("two".into()), Err(TryPutError::Full(_))));
    assert_eq!(s.get().unwrap(), "one");
    s.put("two".into()).unwrap();
    assert_eq!(s.get().unwrap(), "two");
}

#[test]
fn structs_travel_by_placement() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Point {
        x: f64,
        y: f64,
        tag: [u8; 16],
    }
    let mut q = Queue::<Point>::new(4).unwrap();
    let p = Point {
        x: 1.5,
        y: -2.0,
        tag: *b"0123456789abcdef",
    };
    q.put(p).unwrap();
    assert_eq!(q.get().unwrap(), p);
}

#[test]
fn open_validates_the_type() {
    let q = Queue::<u64>::new(4).unwrap();
    assert!(Queue::<u32>::open(&q.handle()).is_err());
    assert!(Queue::<u64, Serde>::open(&q.handle()).is_err());
    assert!(Queue::<u64>::open(&q.handle()).is_ok());
    assert!(Queue::<u64>::new(0).is_err());
}

#[test]
fn mpmc_threads_deliver_each_message_once() {
    ipc_testkit::watchdog(LIMIT, || {
        let q = Queue::<u64>::new(16).unwrap();
        let h = q.handle();
        let producers = 3u64;
        let per = 20_000u64;
        let mut threads = Vec::new();
        for p in 0..producers {
            // Attach here: the anonymous segment is reachable while the creator's handle lives.
            let mut q = Queue::<u64>::open_producer(&h).unwrap();
            threads.push(std::thread::spawn(move || {
                for i in 0..per {
                    q.put((p << 32) | i).unwrap();
                }
                Vec::new()
            }));
        }
        for _ in 0..3 {
            let mut q = Queue::<u64>::open_consumer(&h).unwrap();
            threads.push(std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut last = [None; 3];
                loop {
                    match q.get() {
                        Ok(v) => {
                            // Per producer, each consumer sees increasing sequence numbers.
                            let p = (v >> 32) as usize;
                            let i = v & 0xffff_ffff;
                            assert!(last[p].is_none_or(|l| l < i));
                            last[p] = Some(i);
                            got.push(v);
                        }
                        Err(GetError::Disconnected) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        // The creator puts nothing: it gives up its producer role, then its handle.
        drop(q);
        let mut all = HashSet::new();
        let mut total = 0;
        for t in threads {
            for v in t.join().unwrap() {
                assert!(all.insert(v), "delivered twice: {v:#x}");
                total += 1;
            }
        }
        assert_eq!(total, producers * per);
    });
}

#[test]
fn serde_values_small_and_larger_than_a_slot() {
    let mut q = Queue::<(u32, String), Serde>::new(2).unwrap();
    q.put((1, "small".into())).unwrap();
    let big = "x".repeat(10_000);
    q.put((2, big.clone())).unwrap();
    assert_eq!(q.get().unwrap(), (1, "small".to_string()));
    assert_eq!(q.get().unwrap(), (2, big));
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

#[test]
fn serde_type_mismatch_is_a_decode_error_not_a_panic() {
    let mut q = Queue::<String, Serde>::new(2).unwrap();
    let h = q.handle();
    let mut other = Queue::<String, Serde>::open(&h).unwrap();
    other.put("hello".into()).unwrap();
    assert_eq!(q.get().unwrap(), "hello");
}

#[test]
fn a_100_mib_message() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<Vec<u64>, Serde>::new(2).unwrap();
        let n = 100 * 1024 * 1024 / 8;
        let v: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        q.put(v.clone()).unwrap();
        let got = q.get().unwrap();
        assert_eq!(got.len(), n);
        assert!(got == v);
    });
}

/// A marker no other test or program puts in its messages: this test's spills hold it.
fn marker(test: &str) -> String {
    format!(
        "{test}-{}-{:x}",
        std::process::id(),
        ipc_core::random_u128()
    )
}

#[test]
fn the_last_handle_to_drop_removes_every_spill() {
    let m = marker("last-drop");
    let mut q = Queue::<String, Serde>::new(4).unwrap();
    let mut other = q.try_clone().unwrap();
    for i in 0..3 {
        q.put(format!("{m}{i}{}", "y".repeat(1000))).unwrap();
    }
    assert_eq!(ipc_testkit::spills_holding(m.as_bytes()).len(), 3);
    assert_eq!(other.get().unwrap().len(), m.len() + 1001);
    assert_eq!(ipc_testkit::spills_holding(m.as_bytes()).len(), 2);
    drop(q);
    // `other` still holds the queue: nothing is removed yet.
    assert_eq!(ipc_testkit::spills_holding(m.as_bytes()).len(), 2);
    drop(other);
    assert!(ipc_testkit::spills_holding(m.as_bytes()).is_empty());
}

#[test]
#[ignore]
fn child_puts_big_then_holds_the_queue() {
    let (handle, ready, m): (ObjectHandle, ObjectHandle, String) = ipc_testkit::arg();
    let mut q = Queue::<String, Serde>::open(&handle).unwrap();
    for i in 0..2 {
        q.put(format!("{m}child{i}{}", "c".repeat(2000))).unwrap();
    }
    Queue::<u64>::open(&ready).unwrap().put(1).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// The last handle of a queue is SIGKILLed with large messages inside (put by this process and
/// by the dead one): their spill segments go all the same, through the watch this process left
/// when its own handle dropped first.
#[test]
fn a_killed_last_holder_leaves_no_spill_segments() {
    ipc_testkit::watchdog(LIMIT, || {
        let m = marker("killed-last-holder");
        let mut q = Queue::<String, Serde>::new(8).unwrap();
        for i in 0..3 {
            q.put(format!("{m}parent{i}{}", "p".repeat(2000))).unwrap();
        }
        let mut ready = Queue::<u64>::new(1).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_puts_big_then_holds_the_queue",
            &(q.handle(), ready.handle(), m.clone()),
        );
        ready.get().unwrap();
        assert_eq!(ipc_testkit::spills_holding(m.as_bytes()).len(), 5);
        // This process lets go first; the child holds the last handle, and is killed.
        drop(q);
        child.kill();
        ipc_testkit::wait_until_no_spills(m.as_bytes(), LIMIT);
    });
}

#[test]
#[ignore]
fn child_puts_forever() {
    let (handle, id): (ObjectHandle, u64) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_producer(&handle).unwrap();
    let mut i = 0u64;
    loop {
        q.put((id << 32) | i).unwrap();
        i += 1;
    }
}

#[test]
#[ignore]
fn child_puts_n() {
    let (handle, id, n): (ObjectHandle, u64, u64) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_producer(&handle).unwrap();
    for i in 0..n {
        q.put((id << 32) | i).unwrap();
    }
}

/// Receives until `Disconnected`, checking each producer's sequence is gap-free and
/// duplicate-free; returns the count per producer.
fn drain_checked(q: &mut Queue<u64>, next: &mut [u64]) {
    loop {
        match q.get() {
            Ok(v) => {
                let p = (v >> 32) as usize;
                let i = v & 0xffff_ffff;
                assert_eq!(i, next[p], "producer {p}: out of order, lost or duplicated");
                next[p] += 1;
            }
            Err(GetError::Disconnected) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn producer_killed_mid_stream_loses_at_most_one_and_the_queue_keeps_working() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(8).unwrap();
        let h = q.handle();
        let n = 20_000;
        let mut victim = ipc_testkit::spawn("child_puts_forever", &(h.clone(), 0u64));
        let mut others: Vec<_> = (1..3u64)
            .map(|id| ipc_testkit::spawn("child_puts_n", &(h.clone(), id, n)))
            .collect();
        let mut next = vec![0u64; 3];
        // Wait until the victim has delivered a good number, then kill it mid-stream.
        while next[0] < 2000 {
            let v = q.get().unwrap();
            let p = (v >> 32) as usize;
            assert_eq!(v & 0xffff_ffff, next[p]);
            next[p] += 1;
        }
        victim.kill();
        // Every handle that will ever put is attached now: this one stops being a producer.
        q.close();
        drain_checked(&mut q, &mut next);
        for o in &mut others {
            assert!(o.wait(LIMIT).success());
        }
        // The survivors' messages all arrived, exactly once and in order.
        assert_eq!(next[1], n);
        assert_eq!(next[2], n);
        assert!(next[0] >= 2000);
    });
}

#[test]
#[ignore]
fn child_loans_and_holds() {
    let handle: ObjectHandle = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_producer(&handle).unwrap();
    let loan = q.loan().unwrap();
    // Holds the claimed slot (Writing) until killed.
    std::thread::sleep(LIMIT);
    drop(loan);
}

/// A producer SIGKILLed while it holds the slot at the head (a loan, Writing), with no consumer
/// looking: the ring fills behind it, the next put recovers the dead slot a lap later and
/// writes its message there, so the slot at the head is Full a lap ahead before any consumer
/// has moved the head. A consumer then skips the dead position and gets every message in
/// order (it used to report the queue corrupted).
#[test]
fn a_dead_producers_slot_refilled_by_a_producer_a_lap_later_is_skipped() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let cap = q.capacity() as u64;
        let mut child = ipc_testkit::spawn("child_loans_and_holds", &q.handle());
        // The loan's claim moves the tail: one position taken, nothing to read.
        ipc_testkit::wait_until(LIMIT, "the child's loan", || q.len() == 1);
        child.kill();
        // Positions 1 .. cap - 1, then position cap on the dead slot, recovered by this put.
        for i in 0..cap {
            q.put_timeout(i, LIMIT)
                .unwrap_or_else(|e| panic!("put {i} past the dead loan: {e}"));
        }
        assert_eq!(
            q.len(),
            cap as usize,
            "the skipped position counts for nothing"
        );
        assert!(q.is_full());
        for i in 0..cap {
            assert_eq!(q.get_timeout(LIMIT).unwrap(), i);
        }
        assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
        // The queue goes on working across the slot.
        for i in 0..3 * cap {
            q.put(i).unwrap();
            assert_eq!(q.get().unwrap(), i);
        }
    });
}

#[test]
fn every_producer_killed_gives_disconnected() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let h = q.handle();
        let mut kids: Vec<_> = (0..3u64)
            .map(|id| ipc_testkit::spawn("child_puts_forever", &(h.clone(), id)))
            .collect();
        let mut next = vec![0u64; 3];
        while next.iter().any(|&n| n < 100) {
            let v = q.get().unwrap();
            let p = (v >> 32) as usize;
            assert_eq!(v & 0xffff_ffff, next[p]);
            next[p] += 1;
        }
        q.close();
        for k in &mut kids {
            k.kill();
        }
        drain_checked(&mut q, &mut next);
        // And it stays disconnected.
        assert!(matches!(q.get(), Err(GetError::Disconnected)));
    });
}

/// A timeout shorter than the spin ends the wait at the timeout, not after the spin: with an
/// hour's spin, a get on an empty queue, a put on a full small queue and on a full large one
/// (whose wait looks less often), and a pop from an empty ring all return `Timeout`.
#[test]
fn a_timeout_shorter_than_the_spin_ends_the_wait() {
    ipc_testkit::watchdog(LIMIT, || {
        const HOUR: Duration = Duration::from_secs(3600);
        let t = Duration::from_millis(5);
        let mut empty = Queue::<u64>::new(4).unwrap();
        empty.set_spin(HOUR);
        assert!(matches!(empty.get_timeout(t), Err(GetError::Timeout)));
        for capacity in [4u64, 1024] {
            let mut q = Queue::<u64>::new(capacity as usize).unwrap();
            q.set_spin(HOUR);
            for i in 0..capacity {
                q.put(i).unwrap();
            }
            assert!(matches!(q.put_timeout(7, t), Err(PutError::Timeout(7))));
        }
        let (_tx, mut rx) = ipc_queue::RingBuffer::<u64>::new(4).unwrap();
        rx.set_spin(HOUR);
        assert!(matches!(rx.pop_timeout(t), Err(GetError::Timeout)));
    });
}

/// A spin as long as a `Duration` can be ("spin until ready") is taken as a very long spin: a
/// call with a timeout returns at its timeout instead of overflowing the clock, on a queue
/// (empty and full, small and large), a ring and a pipe.
#[test]
fn the_longest_spin_still_ends_at_the_timeout() {
    ipc_testkit::watchdog(LIMIT, || {
        let t = Duration::from_millis(5);
        let mut empty = Queue::<u64>::new(4).unwrap();
        empty.set_spin(Duration::MAX);
        assert!(matches!(empty.get_timeout(t), Err(GetError::Timeout)));
        for capacity in [4u64, 1024] {
            let mut q = Queue::<u64>::new(capacity as usize).unwrap();
            q.set_spin(Duration::MAX);
            for i in 0..capacity {
                q.put(i).unwrap();
            }
            assert!(matches!(q.put_timeout(7, t), Err(PutError::Timeout(7))));
        }
        let (_tx, mut rx) = ipc_queue::RingBuffer::<u64>::new(4).unwrap();
        rx.set_spin(Duration::MAX);
        assert!(matches!(rx.pop_timeout(t), Err(GetError::Timeout)));
        let (_a, mut b) = ipc_queue::pipe().unwrap();
        b.set_spin(Duration::MAX);
        assert!(matches!(
            b.recv_timeout::<u64>(t),
            Err(ipc_queue::RecvError::Timeout)
        ));
    });
}

/// A spin longer than a slice still checks the peers once per slice, as a sleep does: with a
/// spin of `Duration::MAX` and no timeout, a get with every producer gone and a put on a full
/// queue (small and large) with every consumer gone end with `Disconnected` instead of
/// spinning for ever, and so does a ring's pop once its producer is gone.
#[test]
fn the_longest_spin_still_sees_the_peers_go() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut getter = Queue::<u64>::open_consumer(&q.handle()).unwrap();
        q.close_receiving();
        q.close();
        getter.set_spin(Duration::MAX);
        assert!(matches!(getter.get(), Err(GetError::Disconnected)));
        for capacity in [4u64, 1024] {
            let mut q = Queue::<u64>::new(capacity as usize).unwrap();
            let mut putter = Queue::<u64>::open_producer(&q.handle()).unwrap();
            for i in 0..capacity {
                putter.put(i).unwrap();
            }
            q.close_receiving();
            q.close();
            putter.set_spin(Duration::MAX);
            assert!(matches!(putter.put(7), Err(PutError::Disconnected(7))));
        }
        let (tx, mut rx) = ipc_queue::RingBuffer::<u64>::new(4).unwrap();
        drop(tx);
        rx.set_spin(Duration::MAX);
        assert!(matches!(rx.pop_blocking(), Err(GetError::Disconnected)));
    });
}

#[test]
#[ignore]
fn child_gets_in_order() {
    let (handle, n): (ObjectHandle, u64) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_consumer(&handle).unwrap();
    for i in 0..n {
        assert_eq!(q.get().unwrap(), i);
    }
}

/// A put that finds a queue of 128 messages or more full looks for room less often than other
/// waits (`RawQueue::spin_full`); it still takes the room as its consumer, another process,
/// frees it, in order and losing nothing; gives up at its deadline with its value back; and
/// learns that the consumer has gone.
#[test]
fn a_put_on_a_full_large_queue_takes_room_times_out_and_sees_the_consumer_go() {
    ipc_testkit::watchdog(LIMIT, || {
        const CAP: u64 = 1024;
        let n = 200_000u64;
        let mut q = Queue::<u64>::new(CAP as usize).unwrap();
        for i in 0..CAP {
            q.put(i).unwrap();
        }
        // A consumer (this handle) is alive but takes nothing.
        assert!(matches!(
            q.put_timeout(CAP, Duration::from_millis(2)),
            Err(PutError::Timeout(v)) if v == CAP
        ));
        q.close_receiving();
        let mut child = ipc_testkit::spawn("child_gets_in_order", &(q.handle(), n));
        for i in CAP..n {
            q.put(i).unwrap();
        }
        assert!(
            child.wait(LIMIT).success(),
            "a message was lost or out of order"
        );
        // Nobody reads any more: the queue fills, and the put that waits for room learns so.
        let mut r = Ok(());
        for i in 0..=CAP {
            r = q.put(i);
            if r.is_err() {
                break;
            }
        }
        assert!(matches!(r, Err(PutError::Disconnected(_))));
    });
}

#[test]
#[ignore]
fn child_gets_forever() {
    let handle: ObjectHandle = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_consumer(&handle).unwrap();
    loop {
        let _ = q.get();
    }
}

#[test]
fn consumer_killed_makes_put_fail_instead_of_blocking() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_gets_forever", &q.handle());
        q.close_receiving();
        // The child is attached once it has taken something from a full queue.
        for i in 0..8 {
            q.put(i).unwrap();
        }
        child.kill();
        let mut r = Ok(());
        for i in 0..16 {
            r = q.put(i);
            if r.is_err() {
                break;
            }
        }
        assert!(matches!(r, Err(PutError::Disconnected(_))));
    });
}

#[test]
fn loans_commit_in_place_and_a_dropped_loan_is_skipped() {
    let mut q = Queue::<[u64; 1024]>::new(4).unwrap();
    let mut loan = q.loan().unwrap();
    loan.as_bytes_mut()[..8].copy_from_slice(&7u64.to_ne_bytes());
    loan.commit();
    // A loan given up publishes nothing.
    drop(q.loan().unwrap());
    let mut loan = q.loan().unwrap();
    loan.write(&[9u64; 1024]);
    loan.commit();
    {
        let sample = q.get_sample().unwrap();
        assert_eq!(sample.read()[0], 7);
    }
    let mut out = [0u64; 1024];
    q.get_into(&mut out).unwrap();
    assert_eq!(out, [9u64; 1024]);
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
    q.put_from(&[1u64; 1024]).unwrap();
    assert_eq!(q.get().unwrap()[1023], 1);
}

const MARK: u64 = 1 << 40;

/// A loan given up at the head while another handle fills the queue behind it: the next put
/// takes the freed slot a lap on before any get has moved past it. Gets skip the given-up
/// position and return every message in order (they used to report the queue corrupted).
#[test]
fn a_loan_given_up_at_the_head_and_refilled_a_lap_later_is_skipped() {
    let mut q = Queue::<u64>::new(4).unwrap();
    let cap = q.capacity() as u64;
    let mut other = Queue::<u64>::open(&q.handle()).unwrap();
    let loan = q.loan().unwrap();
    for i in 0..cap - 1 {
        other.put(i).unwrap();
    }
    drop(loan);
    other.put(cap - 1).unwrap();
    assert_eq!(q.len(), cap as usize);
    for i in 0..cap {
        assert_eq!(q.get().unwrap(), i);
    }
    assert!(matches!(q.try_get(), Err(TryGetError::Empty)));
}

#[test]
#[ignore]
fn child_counts_marked() {
    let (handle, counter): (ObjectHandle, ObjectHandle) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_consumer(&handle).unwrap();
    let counter = ipc_core::RawArray::<u64>::open(&counter).unwrap();
    let mut last = None;
    loop {
        match q.get() {
            Ok(v) => {
                if v >= MARK {
                    // Marked messages come from one producer in order: no gap, no repeat.
                    if let Some(l) = last {
                        assert_eq!(v, l + 1);
                    }
                    last = Some(v);
                    counter.fetch_add(0, 1).unwrap();
                }
            }
            Err(GetError::Disconnected) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn consumer_killed_mid_stream_leaves_the_queue_working_for_the_others() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(8).unwrap();
        let counter = ipc_core::RawArray::<u64>::new(1).unwrap();
        let h = q.handle();
        let mut victim = ipc_testkit::spawn("child_gets_forever", &h);
        let mut survivor =
            ipc_testkit::spawn("child_counts_marked", &(h.clone(), counter.handle()));
        q.close_receiving();
        for i in 0..20_000 {
            q.put(i).unwrap();
        }
        victim.kill();
        // Whatever slot the victim held is recovered: every later message reaches the survivor.
        let m = 20_000u64;
        for i in 0..m {
            q.put(MARK + i).unwrap();
        }
        drop(q);
        assert!(survivor.wait(LIMIT).success());
        assert_eq!(counter.get(0), Some(m));
    });
}

#[test]
fn a_queue_travels_as_an_argument() {
    let mut q = Queue::<u64>::new(4).unwrap();
    let bytes = ipc_core::codec::encode(&q).unwrap();
    let mut again: Queue<u64> = ipc_core::codec::decode(&bytes).unwrap();
    again.put(3).unwrap();
    assert_eq!(q.get().unwrap(), 3);
    let s = Queue::<String, Serde>::new(4).unwrap();
    let bytes = ipc_core::codec::encode(&s).unwrap();
    assert!(ipc_core::codec::decode::<Queue<String, Serde>>(&bytes).is_ok());
    assert!(ipc_core::codec::decode::<Queue<u64>>(&bytes).is_err());
}

/// Counts messages until the queue reports that no producer is left.
fn count_until_disconnected(mut q: Queue<u64>) -> Result<u64, String> {
    let mut n = 0;
    loop {
        match q.get_timeout(std::time::Duration::from_secs(30)) {
            Ok(_) => n += 1,
            Err(ipc_queue::GetError::Disconnected) => return Ok(n),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn a_consumer_passed_to_a_child_keeps_its_role_and_sees_the_close() {
    let mut q = Queue::<u64>::new(8).unwrap();
    let consumer = Queue::<u64>::open_consumer(&q.handle()).unwrap();
    let child = ipc_core::Process::new(count_until_disconnected, consumer);
    child.start().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    // The last handle that could put closes: the child's blocking get ends.
    q.close();
    let got = child
        .join_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(got, Ok(2));
}

#[test]
fn a_full_participant_table_is_an_open_error_and_a_larger_one_can_be_asked_for() {
    // Each attached handle holds a descriptor of the segment.
    assert!(
        ipc_testkit::raise_fd_limit() > 2100,
        "the descriptor limit is too low for this test"
    );
    let q = Queue::<u64>::builder(4).participants(3).create().unwrap();
    let _a = Queue::<u64>::open(&q.handle()).unwrap();
    let b = Queue::<u64>::open(&q.handle()).unwrap();
    match Queue::<u64>::open(&q.handle()) {
        Err(ipc_queue::OpenError::TooManyParticipants { limit: 3 }) => {}
        other => panic!("expected TooManyParticipants, got {other:?}"),
    }
    // An entry freed by a dropped handle is reused.
    drop(b);
    assert!(Queue::<u64>::open(&q.handle()).is_ok());
    assert!(Queue::<u64>::builder(4).participants(0).create().is_err());
    let big = Queue::<u64>::builder(4)
        .participants(5000)
        .create()
        .unwrap();
    let handles: Vec<_> = (0..2000)
        .map(|_| Queue::<u64>::open(&big.handle()).unwrap())
        .collect();
    assert_eq!(handles.len(), 2000);
}

#[test]
fn hundreds_of_handles_attach_to_one_queue() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut handles: Vec<_> = (0..300)
            .map(|i| {
                Queue::<u64>::open(&q.handle())
                    .unwrap_or_else(|e| panic!("handle {i} could not attach: {e}"))
            })
            .collect();
        for (i, h) in handles.iter_mut().enumerate() {
            h.put(i as u64).unwrap();
            assert_eq!(q.get().unwrap(), i as u64);
        }
    });
}

/// Forks (from a single-threaded child role) with the queue's participant table full: the fork
/// child cannot claim an entry of its own, so its inherited handle must refuse to act instead
/// of claiming slots under its parent's id (which a peer would judge by the parent's life).
#[test]
#[ignore]
fn child_forks_with_a_full_table() {
    let q = Queue::<u64>::builder(4).participants(16).create().unwrap();
    let mut extra = Vec::new();
    loop {
        match Queue::<u64>::open(&q.handle()) {
            Ok(h) => extra.push(h),
            Err(ipc_queue::OpenError::TooManyParticipants { limit }) => {
                assert_eq!(limit, 16);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(extra.len() + 1, 16);
    let mut q = q;
    // SAFETY: this role runs alone in its process (one test, one thread); the child only
    // calls the queue and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match (q.try_put(1), q.try_get()) {
            (Err(TryPutError::NotAttached(1)), Err(TryGetError::NotAttached)) => 0,
            _ => 1,
        };
        // SAFETY: ends the fork child without running the parent's destructors twice.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status),
        "the fork child did not exit normally"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the fork child put a message under its parent's participant id"
    );
}

#[test]
fn a_fork_child_without_an_entry_of_its_own_refuses_to_act() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut role = ipc_testkit::spawn("child_forks_with_a_full_table", &());
        assert!(role.wait(LIMIT).success());
    });
}

#[test]
fn a_held_sample_is_never_recovered_by_another_handle_of_the_same_process() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<[u64; 64]>::new(2).unwrap();
        q.put([1; 64]).unwrap();
        q.put([2; 64]).unwrap();
        let h = q.handle();
        let sample = q.get_sample().unwrap();
        assert_eq!(sample.read(), [1; 64]);
        // Another handle wants the held slot for a new message: the queue is full (one slot
        // held by the sample, one full), and its waits pass several recovery slices. The
        // sample's claimer is alive, so the slot is left alone.
        let waiter = std::thread::spawn(move || {
            let mut other = Queue::<[u64; 64]>::open(&h).unwrap();
            let timed_out = matches!(
                other.put_timeout([3; 64], Duration::from_millis(200)),
                Err(PutError::Timeout(_))
            );
            let full = matches!(other.try_put([3; 64]), Err(TryPutError::Full(_)));
            (timed_out, full, other)
        });
        let (timed_out, full, mut other) = waiter.join().unwrap();
        assert!(timed_out && full, "a live sample's slot was taken");
        assert_eq!(sample.as_bytes(), bytemuck::bytes_of(&[1u64; 64]));
        drop(sample);
        other.put([3; 64]).unwrap();
        assert_eq!(q.get().unwrap(), [2; 64]);
        assert_eq!(q.get().unwrap(), [3; 64]);
    });
}
/// Forgets a sample (or a loan) taken by a second handle, drops that handle, churns its
/// participant entry `churn` times, and checks the queue keeps working past the slot.
fn forgotten_claim_is_reclaimed(loan: bool, churn: usize) {
    let mut q = Queue::<u64>::new(2).unwrap();
    let h = q.handle();
    let mut b = Queue::<u64>::open(&h).unwrap();
    if loan {
        std::mem::forget(b.loan().unwrap());
    } else {
        q.put(1).unwrap();
        std::mem::forget(b.get_sample().unwrap());
    }
    drop(b);
    // Other handles take the freed entry again and again (each claim is a new generation);
    // the last one stays attached.
    let mut holders = Vec::new();
    for _ in 0..churn {
        holders.clear();
        holders.push(Queue::<u64>::open(&h).unwrap());
    }
    for i in 0..20u64 {
        q.put_timeout(i, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("put {i} past the forgotten slot: {e}"));
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), i);
    }
}

#[test]
fn a_forgotten_sample_is_reclaimed_once_its_handle_drops() {
    ipc_testkit::watchdog(LIMIT, || forgotten_claim_is_reclaimed(false, 0));
}

#[test]
fn a_forgotten_loan_is_reclaimed_once_its_handle_drops() {
    ipc_testkit::watchdog(LIMIT, || forgotten_claim_is_reclaimed(true, 0));
}

/// The non-blocking put recovers a full queue's tail slot whose reader is gone (here a sample
/// forgotten by a handle since dropped) instead of reporting the queue full.
#[test]
fn try_put_recovers_a_gone_readers_slot_at_the_tail() {
    let mut q = Queue::<u64>::new(2).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let mut b = Queue::<u64>::open(&q.handle()).unwrap();
    std::mem::forget(b.get_sample().unwrap());
    drop(b);
    q.try_put(3).unwrap();
    assert!(matches!(q.try_put(4), Err(TryPutError::Full(4))));
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
}

#[test]
fn a_forgotten_sample_stays_reclaimable_after_its_entry_changed_hands_512_times() {
    ipc_testkit::watchdog(LIMIT, || forgotten_claim_is_reclaimed(false, 512));
}

/// Rewrites the record of the inline message `marker` (a `String` in a serde queue) into a
/// spilled record naming `name`, as a hostile peer could.
fn forge_spill_record(q: &Queue<String, Serde>, marker: &str, name: &str) {
    let seg = SharedMemory::attach(&q.handle().segment).unwrap();
    let mut image = vec![0u8; seg.len()];
    // SAFETY: nobody holds a loan or sample of this queue.
    unsafe { seg.read_unguarded(0, &mut image) }.unwrap();
    let at = image
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the marker is in a slot");
    // The record: [len u32][kind u32][postcard: 1-byte length, then the string].
    let record = at - 1 - 8;
    let mut forged = Vec::new();
    forged.extend_from_slice(&(name.len() as u32).to_ne_bytes());
    forged.extend_from_slice(&1u32.to_ne_bytes()); // spilled
    forged.extend_from_slice(name.as_bytes());
    // SAFETY: as above.
    unsafe { seg.write_unguarded(record, &forged) }.unwrap();
}

#[test]
fn a_forged_spill_name_is_refused_and_nothing_is_unlinked() {
    ipc_testkit::watchdog(LIMIT, forged_spill_names_are_refused);
}

fn forged_spill_names_are_refused() {
    // Two live named segments a hostile slot might name: another object, and a plain segment
    // (as Python's `SharedMemory` makes).
    let object = Queue::<u64>::create(&Placement::NamedRandom, 4).unwrap();
    let object_name = object
        .handle()
        .segment
        .name()
        .expect("a named segment")
        .to_string();
    let plain = SharedMemory::create_named(4096).unwrap();
    let plain_name = plain.name().unwrap().to_string();
    for victim in [&object_name, &plain_name] {
        let mut q = Queue::<String, Serde>::new(4).unwrap();
        q.put("MARKER-forged-spill".into()).unwrap();
        forge_spill_record(&q, "MARKER-forged-spill", victim);
        assert!(
            matches!(q.get(), Err(GetError::Corrupted)),
            "a forged spill record was accepted"
        );
        assert!(
            SharedMemory::builder(victim).open().is_ok(),
            "the receiver unlinked `{victim}`"
        );
        // The last handle's clean-up of unread spills refuses it too.
        q.put("MARKER-forged-spill".into()).unwrap();
        forge_spill_record(&q, "MARKER-forged-spill", victim);
        drop(q);
        assert!(
            SharedMemory::builder(victim).open().is_ok(),
            "the last handle's clean-up unlinked `{victim}`"
        );
    }
    // A genuine spill of another queue is refused as well, and stays for its own receiver.
    let mut a = Queue::<String, Serde>::new(4).unwrap();
    a.put("z".repeat(1000)).unwrap();
    let seg = SharedMemory::attach(&a.handle().segment).unwrap();
    let mut image = vec![0u8; seg.len()];
    // SAFETY: nobody holds a loan or sample of `a`.
    unsafe { seg.read_unguarded(0, &mut image) }.unwrap();
    let at = image
        .windows(4)
        .position(|w| w == ipc_core::NAME_PREFIX.as_bytes())
        .expect("the spill's name is in a slot");
    let len = u32::from_ne_bytes(image[at - 8..at - 4].try_into().unwrap()) as usize;
    let spill_name = std::str::from_utf8(&image[at..at + len])
        .unwrap()
        .to_string();
    let mut b = Queue::<String, Serde>::new(4).unwrap();
    b.put("MARKER-forged-spill".into()).unwrap();
    forge_spill_record(&b, "MARKER-forged-spill", &spill_name);
    assert!(matches!(b.get(), Err(GetError::Corrupted)));
    assert_eq!(a.get().unwrap(), "z".repeat(1000));
}

/// Python raises `ValueError` on `put` after `close()`; so does ours, with the value back.
#[test]
fn put_after_close_is_refused() {
    let mut q = Queue::<u64>::new(4).unwrap();
    q.put(1).unwrap();
    q.close();
    assert!(matches!(q.try_put(2), Err(TryPutError::Closed(2))));
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    assert!(matches!(q.loan(), Err(PutError::Closed(()))));
    // Getting still works: close only ends this handle's putting.
    assert_eq!(q.get().unwrap(), 1);
    let mut s = Queue::<String, Serde>::new(4).unwrap();
    s.close();
    assert!(matches!(s.put("x".repeat(1000)), Err(PutError::Closed(_))));
    // A handle opened to get only does not put either, and one opened to put does not get.
    let mut c = Queue::<u64>::open_consumer(&q.handle()).unwrap();
    assert!(matches!(c.try_put(4), Err(TryPutError::Closed(4))));
    let mut p = Queue::<u64>::open_producer(&q.handle()).unwrap();
    p.put(5).unwrap();
    assert!(matches!(p.try_get(), Err(TryGetError::Closed)));
    assert_eq!(c.get().unwrap(), 5);
}

/// Python 3.13's `Queue.shutdown()`: puts fail at once, gets drain what is there, then fail.
#[test]
fn shutdown_refuses_puts_and_drains_gets() {
    let mut q = Queue::<u64>::new(4).unwrap();
    let mut other = Queue::<u64>::open(&q.handle()).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(!other.is_shut_down());
    q.shutdown(false);
    assert!(other.is_shut_down());
    assert!(matches!(other.put(3), Err(PutError::ShutDown(3))));
    assert!(matches!(other.try_put(3), Err(TryPutError::ShutDown(3))));
    assert_eq!(other.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(other.get(), Err(GetError::ShutDown)));
    assert!(matches!(q.try_get(), Err(TryGetError::ShutDown)));
    // A later immediate shutdown makes it immediate; nothing goes back to open.
    q.shutdown(true);
    assert!(q.is_shut_down());
}

/// `shutdown(immediate=True)`: what is in the queue is discarded (spill segments too), gets fail
/// at once, and a joinable queue counts the discarded messages as done.
#[test]
fn immediate_shutdown_discards_and_fails_gets_at_once() {
    let mut q = Queue::<String, Serde>::new(4).unwrap();
    let marker = "immediate-shutdown-spill";
    let big = format!("{marker}{}", "s".repeat(5000));
    q.put(big.clone()).unwrap();
    q.put("small".into()).unwrap();
    let spills = ipc_testkit::spills_holding(marker.as_bytes());
    assert_eq!(spills.len(), 1);
    q.shutdown(true);
    assert!(matches!(q.get(), Err(GetError::ShutDown)));
    assert!(matches!(q.put(big), Err(PutError::ShutDown(_))));
    for name in spills {
        assert!(
            !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
            "{name} left after an immediate shutdown"
        );
    }
    let mut j = ipc_queue::JoinableQueue::<u64>::new(4).unwrap();
    j.put(1).unwrap();
    j.put(2).unwrap();
    j.put(3).unwrap();
    assert_eq!(j.get().unwrap(), 1);
    j.shutdown(true);
    // Two discarded, one taken and not yet done.
    assert_eq!(j.unfinished_tasks(), 1);
    j.task_done().unwrap();
    assert_eq!(j.unfinished_tasks(), 0);
}

#[test]
#[ignore]
fn child_gets_until_shut_down() {
    let handle: ObjectHandle = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_consumer(&handle).unwrap();
    loop {
        match q.get() {
            Ok(_) => {}
            Err(GetError::ShutDown) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A shutdown wakes every blocked caller, in this process and in others: a get blocked on an
/// empty queue, a put blocked on a full one.
#[test]
fn shutdown_wakes_blocked_callers_everywhere() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(1).unwrap();
        let h = q.handle();
        let mut child = ipc_testkit::spawn("child_gets_until_shut_down", &h);
        let mut getter = Queue::<u64>::open(&h).unwrap();
        let mut putter = Queue::<u64>::open(&h).unwrap();
        putter.put(0).unwrap();
        // Let the child take it, then the queue is empty: the child and `getter` block.
        while !q.is_empty() {
            std::thread::yield_now();
        }
        putter.put(1).unwrap();
        // Full again unless the child got it; fill it for the blocked put below.
        let _ = putter.try_put(2);
        let g = std::thread::spawn(move || {
            let mut out = None;
            while out.is_none() {
                match getter.get() {
                    Ok(_) => {}
                    Err(e) => out = Some(e),
                }
            }
            out.unwrap()
        });
        let p = std::thread::spawn(move || {
            loop {
                match putter.put(3) {
                    Ok(()) => {}
                    Err(e) => return e,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        q.shutdown(false);
        assert!(matches!(g.join().unwrap(), GetError::ShutDown));
        assert!(matches!(p.join().unwrap(), PutError::ShutDown(3)));
        assert!(
            child.wait(LIMIT).success(),
            "the child's blocked get did not end with ShutDown"
        );
    });
}

/// For ThreadSanitizer (CI runs `threads_*`): one queue, one mapping (the handles are
/// `try_clone`s), producers and consumers in threads of this process. A missing ordering on a
/// slot word, or a plain copy over a slot another thread writes, is a reported race; each
/// message arrives exactly once.
#[test]
fn threads_one_queue_shared_by_threads_delivers_each_message_once() {
    ipc_testkit::watchdog(LIMIT, || {
        let q = Queue::<[u64; 4]>::new(8).unwrap();
        let (producers, per) = (2u64, 5_000u64);
        let mut handles = Vec::new();
        for p in 0..producers {
            let mut h = q.try_clone().unwrap();
            handles.push(std::thread::spawn(move || {
                for i in 0..per {
                    let v = (p << 32) | i;
                    h.put([v, !v, v ^ 0x5555, v.rotate_left(7)]).unwrap();
                }
                Vec::new()
            }));
        }
        for _ in 0..2 {
            let mut h = q.try_clone().unwrap();
            h.close();
            handles.push(std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    // Every producer's handle drops when it is done: then `Disconnected`.
                    match h.get() {
                        Ok([v, a, b, c]) => {
                            assert_eq!([a, b, c], [!v, v ^ 0x5555, v.rotate_left(7)]);
                            got.push(v);
                        }
                        Err(GetError::Disconnected) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        drop(q);
        let mut all = HashSet::new();
        for h in handles {
            for v in h.join().unwrap() {
                assert!(all.insert(v), "delivered twice: {v:#x}");
            }
        }
        assert_eq!(all.len() as u64, producers * per);
    });
}

/// For ThreadSanitizer: serde records and spill segments between threads, and a joinable
/// queue's counts (`task_done` in the consumers, `join` here).
#[test]
fn threads_serde_and_joinable_queues_between_threads() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = ipc_queue::JoinableQueue::<String, Serde>::new(4).unwrap();
        let n = 400usize;
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let mut h = q.try_clone().unwrap();
                h.close();
                std::thread::spawn(move || {
                    let mut count = 0;
                    while let Ok(s) = h.get() {
                        let (i, body) = s.split_once(':').unwrap();
                        let i: usize = i.parse().unwrap();
                        assert_eq!(body.len(), if i % 10 == 0 { 2000 } else { 10 });
                        h.task_done().unwrap();
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        for i in 0..n {
            let len = if i % 10 == 0 { 2000 } else { 10 };
            q.put(format!("{i}:{}", "x".repeat(len))).unwrap();
        }
        q.join().unwrap();
        q.shutdown(false);
        let total: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(total, n);
    });
}
