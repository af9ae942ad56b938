//! `JoinableQueue` and `SimpleQueue`, in one process and across processes.

mod common;

use std::time::Duration;

use ipc_core::ObjectHandle;
use ipc_queue::{JoinableQueue, Serde, SimpleQueue};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn join_waits_for_every_task_done() {
    let mut q = JoinableQueue::<u64>::new(4).unwrap();
    q.put(1).unwrap();
    assert!(q.join_timeout(Duration::from_millis(5)).is_err());
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.unfinished_tasks(), 1);
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap();
    assert!(q.task_done().is_err());
}

#[test]
fn joinable_and_plain_queues_do_not_mix() {
    let q = JoinableQueue::<u64>::new(4).unwrap();
    assert!(ipc_queue::Queue::<u64>::open(&q.handle()).is_err());
    assert!(JoinableQueue::<u64>::open(&q.handle()).is_ok());
}

#[test]
#[ignore]
fn child_works_through_tasks() {
    let handle: ObjectHandle = common::arg();
    let mut q = JoinableQueue::<String, Serde>::open(&handle).unwrap();
    loop {
        match q.get() {
            Ok(s) => {
                assert!(s.starts_with("task"));
                q.task_done().unwrap();
            }
            Err(_) => return,
        }
    }
}

#[test]
fn join_returns_once_a_child_has_done_every_task() {
    common::watchdog(LIMIT, || {
        let mut q = JoinableQueue::<String, Serde>::new(8).unwrap();
        let mut child = common::spawn("child_works_through_tasks", &q.handle());
        for i in 0..500 {
            q.put(format!("task {i}")).unwrap();
        }
        q.join();
        assert_eq!(q.unfinished_tasks(), 0);
        child.kill();
    });
}

#[test]
fn simple_queue_round_trip() {
    let mut q = SimpleQueue::<(u8, String)>::new().unwrap();
    assert!(q.is_empty());
    q.put((1, "a".into())).unwrap();
    let mut other = SimpleQueue::<(u8, String)>::open(&q.handle()).unwrap();
    assert_eq!(other.get().unwrap(), (1, "a".to_string()));
    q.close();
}
