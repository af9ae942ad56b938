//! `wait()` over queues, connections and ring consumers.

use std::time::Duration;

use ipc_queue::{Connection, ConnectionHandle, Queue, RingBuffer, pipe, wait};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn reports_ready_objects_and_times_out() {
    let mut q = Queue::<u32>::new(4).unwrap();
    let (mut tx, mut rx) = RingBuffer::<u8>::new(4).unwrap();
    let (mut a, mut b) = pipe().unwrap();
    assert!(
        wait(
            &mut [&mut q, &mut rx, &mut b],
            Some(Duration::from_millis(2))
        )
        .is_empty()
    );
    tx.push(1).unwrap();
    q.put(3).unwrap();
    let ready = wait(&mut [&mut q, &mut rx, &mut b], Some(Duration::from_secs(5)));
    assert_eq!(ready, [0, 1]);
    a.send(&1u8).unwrap();
    let ready = wait(&mut [&mut b], None);
    assert_eq!(ready, [0]);
}

#[test]
fn wakes_on_another_thread_sending() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = pipe().unwrap();
        let mut q = Queue::<u32>::new(4).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            a.send(&"late").unwrap();
            a
        });
        let ready = wait(&mut [&mut q, &mut b], None);
        assert_eq!(ready, [1]);
        assert_eq!(b.recv::<String>().unwrap(), "late");
        drop(t.join().unwrap());
    });
}

#[test]
#[ignore]
fn child_sends_then_exits() {
    let handle: ConnectionHandle = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    c.send(&42u32).unwrap();
}

#[test]
fn wakes_on_another_process_and_reports_eof() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, b) = pipe().unwrap();
        let mut child = ipc_testkit::spawn("child_sends_then_exits", &b.handle());
        let ready = wait(&mut [&mut a], None);
        assert_eq!(ready, [0]);
        assert_eq!(a.recv::<u32>().unwrap(), 42);
        assert!(child.wait(LIMIT).success());
        drop(b);
        // Every sender gone: ready, and the receive says so at once.
        assert_eq!(wait(&mut [&mut a], None), [0]);
        assert!(a.recv::<u32>().is_err());
    });
}
