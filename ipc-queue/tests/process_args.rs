//! Handles passed to a `Process` belong to the child: the parent's copy is closed once the
//! child has attached, so Python's "pass the writer to the child, close it in the parent, read
//! until EOF" ends with `Disconnected` when the child is done.

use std::time::Duration;

use ipc_core::{Process, StartMethod};
use ipc_queue::{Connection, Queue, RecvError, pipe_simplex, wait};

fn write_three(mut w: Connection) {
    for i in 0..3u32 {
        w.send(&i).unwrap();
    }
}

fn put_three(mut q: Queue<u64>) {
    for i in 0..3 {
        q.put(i).unwrap();
    }
}

#[test]
fn reading_until_eof_ends_when_the_child_is_done() {
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let (mut r, w) = pipe_simplex().unwrap();
        let p = Process::builder()
            .start_method(method)
            .target(write_three, w);
        p.start().unwrap();
        let mut got = Vec::new();
        loop {
            // `wait` first, as Python's `connection.wait([r])` does: it must come back when
            // there is a message and when the writer has gone.
            let ready = wait(&mut [&mut r], Some(Duration::from_secs(60)));
            assert_eq!(
                ready,
                [0],
                "{method:?}: wait timed out with the writer alive"
            );
            match r.recv::<u32>() {
                Ok(v) => got.push(v),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("{method:?}: {e}"),
            }
        }
        assert_eq!(got, [0, 1, 2], "{method:?}");
        p.join().unwrap();
    }
}

#[test]
fn a_queue_moved_to_a_child_disconnects_its_reader_when_the_child_ends() {
    let mut q = Queue::<u64>::new(8).unwrap();
    let producer = Queue::<u64>::open_producer(&q.handle()).unwrap();
    q.close();
    let p = Process::new(put_three, producer);
    p.start().unwrap();
    let mut got = Vec::new();
    loop {
        match q.get_timeout(Duration::from_secs(60)) {
            Ok(v) => got.push(v),
            Err(ipc_queue::GetError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [0, 1, 2]);
    p.join().unwrap();
}

fn exit_at_once(_: ()) {}

fn send_then_sleep(mut w: Connection) {
    w.send(&7u32).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// Python's `connection.wait([conn, p.sentinel])`: a process's end wakes the wait like a
/// message does, and a message wakes it while the process lives.
#[test]
fn wait_takes_a_process_sentinel_beside_a_connection() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The writer stays open here, so only the child's end can make the wait return.
        let (mut r, _w) = pipe_simplex().unwrap();
        let p = Process::new(exit_at_once, ());
        p.start().unwrap();
        let mut sentinel = p.sentinel().expect("a started child has a sentinel");
        let ready = wait(&mut [&mut r, &mut sentinel], None);
        assert_eq!(ready, [1], "only the sentinel is ready");
        p.join().unwrap();

        let (mut r, w) = pipe_simplex().unwrap();
        let p = Process::new(send_then_sleep, w);
        p.start().unwrap();
        let mut sentinel = p.sentinel().expect("a started child has a sentinel");
        let ready = wait(&mut [&mut r, &mut sentinel], None);
        assert_eq!(ready, [0], "the message, while the child sleeps");
        assert_eq!(r.recv::<u32>().unwrap(), 7);
        p.kill().unwrap();
        let ready = wait(&mut [&mut sentinel], None);
        assert_eq!(ready, [0]);
        let _ = p.join();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("watchdog: wait on a sentinel hung");
}

fn square_one(mut q: Queue<u64>) {
    let x = q.get().unwrap();
    q.put(x * x).unwrap();
}

fn finish_one(mut q: ipc_queue::JoinableQueue<u64>) {
    q.get().unwrap();
    q.task_done().unwrap();
}

fn shout(mut q: ipc_queue::SimpleQueue<String>) {
    let s = q.get().unwrap();
    q.put(s.to_uppercase()).unwrap();
}

fn say_hello(mut c: Connection) {
    c.send(&"hello").unwrap();
}

/// `Process` takes its argument; `try_clone` leaves the caller a handle of its own, as
/// Python's `Process(args=(q,))` leaves the caller its `q`. Every shared object of the crate
/// clones (ring ends are single roles and do not).
#[test]
fn a_clone_passed_to_a_process_leaves_the_caller_its_own() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut q = Queue::<u64>::new(4).unwrap();
        q.put(9).unwrap();
        let p = Process::new(square_one, q.try_clone().unwrap());
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(q.get().unwrap(), 81);

        let mut j = ipc_queue::JoinableQueue::<u64>::new(4).unwrap();
        j.put(1).unwrap();
        let p = Process::new(finish_one, j.try_clone().unwrap());
        p.start().unwrap();
        j.join_timeout(Duration::from_secs(60)).unwrap();
        p.join().unwrap();

        let mut s = ipc_queue::SimpleQueue::<String>::new().unwrap();
        s.put("quiet".into()).unwrap();
        let p = Process::new(shout, s.try_clone().unwrap());
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(s.get().unwrap(), "QUIET");

        let (mut r, w) = pipe_simplex().unwrap();
        let p = Process::new(say_hello, w.try_clone().unwrap());
        p.start().unwrap();
        // Python's pattern: close the parent's writer, read until EOF.
        drop(w);
        assert_eq!(r.recv::<String>().unwrap(), "hello");
        assert!(matches!(r.recv::<String>(), Err(RecvError::Disconnected)));
        p.join().unwrap();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("watchdog: a cloned handle's child hung");
}
