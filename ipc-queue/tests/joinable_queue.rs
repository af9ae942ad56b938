//! `JoinableQueue` and `SimpleQueue`, in one process and across processes.

use std::time::Duration;

use ipc_core::ObjectHandle;
use ipc_queue::{JoinError, JoinableQueue, Queue, Serde, SimpleQueue};

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
    let handle: ObjectHandle = ipc_testkit::arg();
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
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = JoinableQueue::<String, Serde>::new(8).unwrap();
        let mut child = ipc_testkit::spawn("child_works_through_tasks", &q.handle());
        for i in 0..500 {
            q.put(format!("task {i}")).unwrap();
        }
        q.join().unwrap();
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

#[test]
#[ignore]
fn child_takes_one_task_and_hangs() {
    let (handle, ready): (ObjectHandle, ObjectHandle) = ipc_testkit::arg();
    let mut q = JoinableQueue::<u64>::open(&handle).unwrap();
    let task = q.get().unwrap();
    Queue::<u64>::open(&ready).unwrap().put(task).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// Python's `join` waits for ever once a consumer is killed holding a task; ours counts that
/// task as lost and says how many, once nothing else can finish.
#[test]
fn join_counts_the_tasks_of_a_killed_consumer_as_lost() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = JoinableQueue::<u64>::new(8).unwrap();
        let mut ready = Queue::<u64>::new(2).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_takes_one_task_and_hangs",
            &(q.handle(), ready.handle()),
        );
        for i in 0..3 {
            q.put(i).unwrap();
        }
        let taken = ready.get().unwrap();
        // The parent does the two others.
        for _ in 0..2 {
            assert_ne!(q.get().unwrap(), taken);
            q.task_done().unwrap();
        }
        // The child lives and holds its task: join waits.
        assert_eq!(
            q.join_timeout(Duration::from_millis(100)),
            Err(JoinError::Timeout { unfinished: 1 })
        );
        child.kill();
        assert_eq!(q.join(), Err(JoinError::TasksLost { lost: 1 }));
        // Written off, the queue goes on.
        q.task_done().unwrap();
        q.join().unwrap();
        q.put(7).unwrap();
        assert_eq!(q.get().unwrap(), 7);
        q.task_done().unwrap();
        q.join().unwrap();
    });
}

/// Tasks that wait with no consumer alive to take them: `join` says so instead of waiting.
#[test]
fn join_reports_tasks_no_live_consumer_can_take() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = JoinableQueue::<u64>::new(8).unwrap();
        let mut ready = Queue::<u64>::new(2).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_takes_one_task_and_hangs",
            &(q.handle(), ready.handle()),
        );
        for i in 0..3 {
            q.put(i).unwrap();
        }
        ready.get().unwrap();
        // This handle gets no more; the only consumer is the child, which is killed.
        q.close_receiving();
        child.kill();
        assert_eq!(q.join(), Err(JoinError::Disconnected { unfinished: 3 }));
    });
}
