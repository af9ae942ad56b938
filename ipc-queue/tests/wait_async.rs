//! `wait_async` (the async form of `wait`, Python's `multiprocessing.connection.wait`) over
//! queues, connections and process sentinels, with child processes as the peers, on three
//! executors: it reports the ready objects, times out, cancels cleanly, ends for 1,000 tasks
//! when their sender is SIGKILLed, and an idle awaiting process uses almost no CPU.

use std::future::Future;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use ipc_core::raw::atomic::{AtomicU32, Ordering};
use ipc_core::{ObjectHandle, SharedMemory};
use ipc_queue::{
    Connection, ConnectionHandle, PipeBuilder, Queue, Waitable, pipe, wait_async,
    wait_timeout_async,
};
use ipc_testkit::{assert_idle, counting_polls, cpu_time, on_every_executor, runtime, wait_until};

const LIMIT: Duration = Duration::from_secs(120);
/// The bytes before a segment's payload.
const PAYLOAD: usize = 256;

/// The waiters on the chunks of direction 0 of a pipe (the one end 1 receives): see
/// `connection_async.rs` for the layout.
fn items_waiters(handle: &ObjectHandle) -> u32 {
    let shm = SharedMemory::attach(&handle.segment).expect("attach");
    let mut b = [0u8; 4];
    // SAFETY: a diagnostic read of an atomic counter; a torn value only fails an assertion.
    unsafe { shm.read_unguarded(PAYLOAD + 256 + 4, &mut b) }.expect("read");
    // The top bit holds the signal's barrier kind (asymmetric on a pipe), not a count.
    u32::from_ne_bytes(b) & !(1 << 31)
}

/// A pidfd of `pid` (readable once the process has ended), as `Process::sentinel` gives.
fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

// ---------------------------------------------------------------------------------------------
// Child roles.

/// Child: says "ready" on the end it is given, sends 42 once "go" arrives on it, then exits.
#[test]
#[ignore = "child role"]
fn child_sends_on_go() {
    let handle: ConnectionHandle = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    c.send(&"ready").unwrap();
    assert_eq!(c.recv::<String>().unwrap(), "go");
    c.send(&42u32).unwrap();
}

/// Child: says "ready" on the end it is given, then holds it until killed.
#[test]
#[ignore = "child role"]
fn child_holds_an_end() {
    let handle: ConnectionHandle = ipc_testkit::arg();
    let mut c = Connection::open(&handle).unwrap();
    c.send_bytes(b"ready").unwrap();
    std::thread::sleep(LIMIT);
}

// ---------------------------------------------------------------------------------------------

#[test]
fn reports_the_object_a_child_makes_ready_and_then_its_end() {
    on_every_executor(LIMIT, || async {
        let mut q = Queue::<u32>::new(4).unwrap();
        let (mut a, b) = pipe().unwrap();
        let mut child = ipc_testkit::spawn("child_sends_on_go", &b.handle());
        // Attached: from now on a sender is alive until the child exits; ours can go.
        assert_eq!(a.recv_timeout::<String>(LIMIT).unwrap(), "ready");
        drop(b);
        let sentinel = pidfd(child.pid() as i32);
        let mut fd = sentinel.as_fd();
        {
            let mut objects: [&mut (dyn Waitable + Send); 3] = [&mut q, &mut a, &mut fd];
            assert!(
                wait_timeout_async(&mut objects, Duration::from_millis(10))
                    .await
                    .is_empty()
            );
        }
        a.send(&"go").unwrap();
        {
            let mut objects: [&mut (dyn Waitable + Send); 2] = [&mut q, &mut a];
            assert_eq!(wait_async(&mut objects, None).await, [1]);
        }
        assert_eq!(a.recv::<u32>().unwrap(), 42);
        // Then the child ends: its sentinel is ready, and the connection is too (every sender
        // gone: a receive returns at once), found after a slice as by `wait`.
        let mut objects: [&mut (dyn Waitable + Send); 2] = [&mut a, &mut fd];
        assert_eq!(wait_async(&mut objects[1..], None).await, [0]);
        assert!(child.wait(LIMIT).success());
        assert_eq!(wait_async(&mut objects[..1], None).await, [0]);
        // A queue with a value.
        q.put(1).unwrap();
        assert_eq!(wait_async(&mut [&mut q], None).await, [0]);
    });
}

#[test]
fn a_dropped_wait_leaves_no_waiter_and_loses_no_wake_up() {
    ipc_testkit::watchdog(LIMIT, || {
        let (mut a, mut b) = pipe().unwrap();
        let mut b2 = b.try_clone().unwrap();
        let seg = a.handle().segment().clone();
        {
            let mut objects = [&mut b];
            let mut fut = wait_async(&mut objects, None);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
            assert_eq!(items_waiters(&seg), 1);
        }
        assert_eq!(items_waiters(&seg), 0);
        // A waiter on another handle still gets the next message's wake-up.
        std::thread::scope(|sc| {
            let t = sc.spawn(|| futures::executor::block_on(wait_async(&mut [&mut b2], None)));
            a.send(&1u8).unwrap();
            assert_eq!(t.join().unwrap(), [0]);
        });
        assert_eq!(b.recv::<u8>().unwrap(), 1, "the wait consumed nothing");
        assert_eq!(items_waiters(&seg), 0);
    });
}

#[test]
fn a_runtimes_timeout_composes_with_wait_async() {
    ipc_testkit::watchdog(LIMIT, || {
        runtime().block_on(async {
            let (_a, mut b) = pipe().unwrap();
            let seg = b.handle().segment().clone();
            let r =
                tokio::time::timeout(Duration::from_millis(20), wait_async(&mut [&mut b], None))
                    .await;
            assert!(r.is_err());
            // End 1 receives direction 0.
            assert_eq!(items_waiters(&seg), 0);
        })
    });
}

#[test]
fn a_sender_killed_while_1000_tasks_wait_reports_it_to_every_one() {
    ipc_testkit::raise_fd_limit();
    let (a, mut b) = PipeBuilder::new().participants(2048).create().unwrap();
    let seg = a.handle().segment().clone();
    let mut child = ipc_testkit::spawn("child_holds_an_end", &a.handle());
    assert_eq!(b.recv_bytes_timeout(LIMIT).unwrap(), b"ready");
    drop(a);
    let rt = runtime();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let mut c = b.try_clone().unwrap();
            rt.spawn(async move {
                let mut q = Queue::<u32>::new(1).unwrap();
                let mut objects: [&mut (dyn Waitable + Send); 2] = [&mut q, &mut c];
                wait_async(&mut objects, None).await
            })
        })
        .collect();
    wait_until(LIMIT, "1000 tasks wait", || items_waiters(&seg) == 1000);
    child.kill();
    let results = ipc_testkit::watchdog(LIMIT, move || {
        rt.block_on(async move {
            let mut r = Vec::new();
            for t in tasks {
                r.push(t.await.unwrap());
            }
            r
        })
    });
    assert!(results.iter().all(|r| r == &[1]), "{results:?}");
    assert_eq!(items_waiters(&seg), 0);
    // And the receive says so at once.
    assert!(b.recv::<u8>().is_err());
}

/// Child: 1,000 tasks wait on a connection whose live sender (the parent) sends nothing, with
/// an empty queue and the parent's pidfd beside it; over one second the tasks must be polled
/// about once per slice per awaited word, not more (`assert_idle`). (Each *distinct* word
/// awaited costs one wake-up per slice, as for every async form: 1,000 tasks on 1,000
/// different queues would cost 50,000 a second.)
#[test]
#[ignore = "child role"]
fn child_idle_waiting() {
    ipc_testkit::raise_fd_limit();
    let handle: ConnectionHandle = ipc_testkit::arg();
    let conn = Connection::open(&handle).unwrap();
    let queue = Queue::<u32>::new(1).unwrap();
    // SAFETY: getppid has no preconditions.
    let parent = Arc::new(pidfd(unsafe { libc::getppid() }));
    let rt = runtime();
    let polls = Arc::new(AtomicU32::new(0));
    for _ in 0..1000 {
        let mut c = conn.try_clone().unwrap();
        let mut q = queue.try_clone().unwrap();
        let parent = Arc::clone(&parent);
        let polls = Arc::clone(&polls);
        rt.spawn(async move {
            let mut fd = parent.as_fd();
            let mut objects: [&mut (dyn Waitable + Send); 3] = [&mut q, &mut c, &mut fd];
            counting_polls(wait_async(&mut objects, None), &polls).await
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    // ORDERING: Relaxed, a counter of the tasks' polls; it publishes nothing.
    let polls0 = polls.load(Ordering::Relaxed);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    // ORDERING: Relaxed, as above.
    let polled = polls.load(Ordering::Relaxed) - polls0;
    // Two words (the queue's and the connection's); the descriptor wakes nobody.
    assert_idle("idle waiting", polled, 2, cpu, wall);
    rt.shutdown_background();
}

#[test]
fn an_idle_waiting_process_uses_almost_no_cpu() {
    let (a, b) = PipeBuilder::new().participants(2048).create().unwrap();
    let mut child = ipc_testkit::spawn("child_idle_waiting", &b.handle());
    assert!(
        child.wait(LIMIT).success(),
        "the child measured busy polling (see its stderr)"
    );
    drop((a, b));
}
