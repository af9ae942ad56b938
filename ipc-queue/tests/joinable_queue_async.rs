//! `JoinableQueue::join_async` and `join_timeout_async` across real processes, on three
//! executors (tokio current-thread, tokio multi-thread, `futures::executor`): the join completes
//! when a child has done every task, it ends with the same errors as `join` when the child is
//! killed holding a task or no consumer is left, and a dropped join leaves the queue as it was.

use std::time::Duration;

use ipc_core::ObjectHandle;
use ipc_queue::{JoinError, JoinableQueue, Queue};
use ipc_testkit::{on_every_executor, pending_after_one_poll};

/// The watchdog of every test: far above any expected run time.
const LIMIT: Duration = Duration::from_secs(60);

/// Child: gets tasks from Q and marks each done, until killed.
#[test]
#[ignore = "child role"]
fn child_does_tasks() {
    let handle: ObjectHandle = ipc_testkit::arg();
    let mut q = JoinableQueue::<u64>::open(&handle).unwrap();
    loop {
        q.get().unwrap();
        q.task_done().unwrap();
    }
}

/// Child: gets one task from Q, tells READY which, and waits to be killed.
#[test]
#[ignore = "child role"]
fn child_takes_one_task_and_hangs() {
    let (handle, ready): (ObjectHandle, ObjectHandle) = ipc_testkit::arg();
    let mut q = JoinableQueue::<u64>::open(&handle).unwrap();
    let task = q.get().unwrap();
    Queue::<u64>::open(&ready).unwrap().put(task).unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn join_async_completes_once_a_child_has_done_every_task() {
    on_every_executor(LIMIT, || async {
        let mut q = JoinableQueue::<u64>::new(8).unwrap();
        // Nothing to wait for: ready at once.
        q.join_async().await.unwrap();
        for i in 0..3 {
            q.put_async(i).await.unwrap();
        }
        {
            let mut join = std::pin::pin!(q.join_async());
            // No consumer yet: pending.
            assert!(pending_after_one_poll(join.as_mut()));
        }
        let mut child = ipc_testkit::spawn("child_does_tasks", &q.handle());
        for i in 3..100 {
            q.put_async(i).await.unwrap();
        }
        q.join_async().await.unwrap();
        assert_eq!(q.unfinished_tasks(), 0);
        q.put_async(100).await.unwrap();
        q.join_timeout_async(LIMIT).await.unwrap();
        child.kill();
    });
}

#[test]
fn join_async_counts_the_task_of_a_killed_consumer_as_lost() {
    on_every_executor(LIMIT, || async {
        let mut q = JoinableQueue::<u64>::new(8).unwrap();
        let mut ready = Queue::<u64>::new(2).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_takes_one_task_and_hangs",
            &(q.handle(), ready.handle()),
        );
        for i in 0..3 {
            q.put(i).unwrap();
        }
        let taken = ready.get_async().await.unwrap();
        for _ in 0..2 {
            assert_ne!(q.get_async().await.unwrap(), taken);
            q.task_done().unwrap();
        }
        // The child lives and holds its task: the join waits.
        assert_eq!(
            q.join_timeout_async(Duration::from_millis(50)).await,
            Err(JoinError::Timeout { unfinished: 1 })
        );
        {
            // Dropped while it waits: it leaves the count as it was.
            let mut join = Box::pin(q.join_async());
            assert!(pending_after_one_poll(join.as_mut()));
        }
        assert_eq!(q.unfinished_tasks(), 1);
        {
            let mut join = std::pin::pin!(q.join_async());
            assert!(pending_after_one_poll(join.as_mut()));
            child.kill();
            assert_eq!(join.await, Err(JoinError::TasksLost { lost: 1 }));
        }
        // Written off, the queue goes on.
        q.task_done().unwrap();
        q.join_async().await.unwrap();
    });
}

#[test]
fn join_async_reports_tasks_no_live_consumer_can_take() {
    on_every_executor(LIMIT, || async {
        let mut q = JoinableQueue::<u64>::new(8).unwrap();
        let mut ready = Queue::<u64>::new(2).unwrap();
        let mut child = ipc_testkit::spawn(
            "child_takes_one_task_and_hangs",
            &(q.handle(), ready.handle()),
        );
        for i in 0..3 {
            q.put(i).unwrap();
        }
        ready.get_async().await.unwrap();
        // This handle gets no more; the only consumer is the child.
        q.close_receiving();
        let mut join = std::pin::pin!(q.join_async());
        assert!(pending_after_one_poll(join.as_mut()));
        child.kill();
        assert_eq!(join.await, Err(JoinError::Disconnected { unfinished: 3 }));
    });
}

#[test]
fn a_runtime_timeout_around_join_async_leaves_the_queue_joinable() {
    ipc_testkit::watchdog(LIMIT, || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut q = JoinableQueue::<u64>::new(8).unwrap();
                q.put(1).unwrap();
                let r = tokio::time::timeout(Duration::from_millis(20), q.join_async()).await;
                assert!(r.is_err(), "one task is unfinished");
                let mut child = ipc_testkit::spawn("child_does_tasks", &q.handle());
                let r = tokio::time::timeout(LIMIT, q.join_async()).await;
                assert_eq!(r.unwrap(), Ok(()));
                child.kill();
            })
    });
}
