//! `Queue`'s async forms (`put_async`, `get_async`, their timeout forms, `stream`) and its
//! blocking iterator, across real processes, on three executors (tokio current-thread, tokio
//! multi-thread, `futures::executor`): they complete when a child process acts, they cancel
//! cleanly when dropped at each of their await points, a producer SIGKILLed while 1,000 tasks
//! await ends every await with `Disconnected`, and an idle awaiting process uses almost no CPU.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipc_core::ObjectHandle;
use ipc_queue::{GetError, PutError, Queue, Serde, TryGetError};
use ipc_testkit::{
    assert_idle, counting_pending, counting_polls, cpu_time, on_every_executor,
    pending_after_one_poll, wait_for_count,
};

/// The watchdog of every test: far above any expected run time.
const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Child roles.

/// What `child_serve` does for one command.
const PUT: u64 = 1 << 32;
/// Gets one value from the data queue and puts it on the output queue.
const GET: u64 = 2 << 32;
/// What the child puts on OUT once it holds its handles.
const ATTACHED: u64 = u64::MAX;

/// Child: says it is attached on OUT, then for each command on CMD (until every sender is
/// gone) either puts its low half on the data queue Q (`PUT`) or gets one value from Q
/// (`GET`); after each command it puts the value put or got on OUT, so that the parent knows
/// the command is done.
#[test]
#[ignore = "child role"]
fn child_serve() {
    let (q, cmd, out): (ObjectHandle, ObjectHandle, ObjectHandle) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open(&q).unwrap();
    let mut cmd = Queue::<u64>::open_consumer(&cmd).unwrap();
    let mut out = Queue::<u64>::open_producer(&out).unwrap();
    out.put(ATTACHED).unwrap();
    loop {
        match cmd.get() {
            Ok(c) if c & !0xffff_ffff == PUT => {
                q.put(c & 0xffff_ffff).unwrap();
                out.put(c & 0xffff_ffff).unwrap();
            }
            Ok(c) if c & !0xffff_ffff == GET => out.put(q.get().unwrap()).unwrap(),
            Ok(c) => panic!("unknown command {c:#x}"),
            Err(GetError::Disconnected) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A data queue served by a `child_serve` child, with the parent's ends of its command and
/// output queues.
struct Served {
    q: Queue<u64>,
    cmd: Queue<u64>,
    out: Queue<u64>,
    child: ipc_testkit::Role,
}

impl Served {
    fn new(capacity: usize) -> Self {
        let q = Queue::<u64>::new(capacity).unwrap();
        let mut cmd = Queue::<u64>::new(4).unwrap();
        let mut out = Queue::<u64>::new(4).unwrap();
        cmd.close_receiving();
        let child = ipc_testkit::spawn("child_serve", &(q.handle(), cmd.handle(), out.handle()));
        // Closed once the child is attached (closed earlier, a get could find no producer
        // alive before the child attaches, and rightly end).
        assert_eq!(out.get().unwrap(), ATTACHED);
        out.close();
        Self { q, cmd, out, child }
    }

    /// Has the child put `v` on the data queue; returns once it has.
    fn child_puts(&mut self, v: u64) {
        child_puts(&mut self.cmd, &mut self.out, v);
    }

    /// Has the child get one value from the data queue; returns it once it has.
    fn child_gets(&mut self) -> u64 {
        child_gets(&mut self.cmd, &mut self.out)
    }

    /// Ends the child (its command queue disconnects) and checks that it succeeded.
    fn finish(self) {
        let Self {
            q,
            cmd,
            out,
            mut child,
        } = self;
        drop(cmd);
        assert!(child.wait(LIMIT).success(), "the child failed");
        drop((q, out));
    }
}

/// [`Served::child_puts`] on the fields, while the data queue is borrowed.
fn child_puts(cmd: &mut Queue<u64>, out: &mut Queue<u64>, v: u64) {
    cmd.put(PUT | v).unwrap();
    assert_eq!(out.get().unwrap(), v);
}

/// [`Served::child_gets`] on the fields, while the data queue is borrowed.
fn child_gets(cmd: &mut Queue<u64>, out: &mut Queue<u64>) -> u64 {
    cmd.put(GET).unwrap();
    out.get().unwrap()
}

/// Child: attaches to Q as its producer, puts 0 (so the parent knows it is attached), then
/// waits to be killed.
#[test]
#[ignore = "child role"]
fn child_put_one_then_hang() {
    let q: ObjectHandle = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_producer(&q).unwrap();
    q.put(0).unwrap();
    loop {
        std::thread::park();
    }
}

/// Child: puts 0..N on Q as its producer, then waits to be killed.
#[test]
#[ignore = "child role"]
fn child_put_n_then_hang() {
    let (q, n): (ObjectHandle, u64) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_producer(&q).unwrap();
    for i in 0..n {
        q.put(i).unwrap();
    }
    loop {
        std::thread::park();
    }
}

/// Child: puts 0..N on Q as its producer, then exits.
#[test]
#[ignore = "child role"]
fn child_put_n() {
    let (q, n): (ObjectHandle, u64) = ipc_testkit::arg();
    let mut q = Queue::<u64>::open_producer(&q).unwrap();
    for i in 0..n {
        q.put(i).unwrap();
    }
}

/// A queue whose only producer is a `child_put_one_then_hang` child, attached: the parent's
/// own handle is closed for putting once the child's first put has arrived (closed earlier, a
/// get could find no producer alive before the child attaches, and rightly end).
fn queue_fed_by_a_hanging_child(participants: usize) -> (Queue<u64>, ipc_testkit::Role) {
    let mut q = Queue::<u64>::builder(4)
        .participants(participants)
        .create()
        .unwrap();
    let child = ipc_testkit::spawn("child_put_one_then_hang", &q.handle());
    assert_eq!(q.get().unwrap(), 0, "the child's first put");
    q.close();
    (q, child)
}

/// Takes the first value a child producer puts (so that the child is attached), then closes
/// the parent's handle for putting: from then on the child is the only producer.
async fn first_then_close(q: &mut Queue<u64>) {
    assert_eq!(q.get_async().await.unwrap(), 0);
    q.close();
}

// ---------------------------------------------------------------------------------------------
// Completing when a child acts.

#[test]
fn get_async_completes_when_a_child_puts() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(4);
        {
            let mut fut = std::pin::pin!(s.q.get_async());
            // Empty: pending (spun, then armed).
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(PUT | 42).unwrap();
            assert_eq!(fut.await.unwrap(), 42);
        }
        assert_eq!(s.out.get().unwrap(), 42);
        // The timeout form too, and a value already there.
        s.child_puts(43);
        assert_eq!(s.q.get_timeout_async(LIMIT).await.unwrap(), 43);
        s.finish();
    });
}

#[test]
fn put_async_waits_on_a_full_queue_until_a_child_gets() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(2);
        s.q.try_put(1).unwrap();
        s.q.try_put(2).unwrap();
        {
            let mut fut = std::pin::pin!(s.q.put_async(3));
            // Full: pending.
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(GET).unwrap();
            fut.await.unwrap();
        }
        assert_eq!(s.out.get().unwrap(), 1);
        {
            let mut fut = std::pin::pin!(s.q.put_timeout_async(4, LIMIT));
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(GET).unwrap();
            fut.await.unwrap();
        }
        assert_eq!(s.out.get().unwrap(), 2);
        assert_eq!(s.q.get_async().await.unwrap(), 3);
        assert_eq!(s.q.get_async().await.unwrap(), 4);
        s.finish();
    });
}

// ---------------------------------------------------------------------------------------------
// Cancellation at every await point.

#[test]
fn a_dropped_get_async_takes_no_message_at_any_await_point() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(4);
        // Dropped before its first poll.
        drop(s.q.get_async());
        // Dropped while armed on an empty queue.
        {
            let mut fut = Box::pin(s.q.get_async());
            assert!(pending_after_one_poll(fut.as_mut()));
        }
        // Dropped after its wake-up, before the poll that would have taken the message.
        {
            let mut fut = Box::pin(s.q.get_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            child_puts(&mut s.cmd, &mut s.out, 7);
        }
        // The message is still there, for the next get.
        assert_eq!(s.q.len(), 1);
        assert_eq!(s.q.try_get().unwrap(), 7);
        // A dropped wait consumed no wake-up another one needs: a new await completes when the
        // child puts.
        {
            let mut fut = Box::pin(s.q.get_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            drop(fut);
            let mut fut = std::pin::pin!(s.q.get_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(PUT | 8).unwrap();
            assert_eq!(fut.await.unwrap(), 8);
            assert_eq!(s.out.get().unwrap(), 8);
        }
        // The timeout forms end with `Timeout`, taking nothing.
        assert!(matches!(
            s.q.get_timeout_async(Duration::from_millis(30)).await,
            Err(GetError::Timeout)
        ));
        assert!(s.q.is_empty());
        s.finish();
    });
}

#[test]
fn a_dropped_put_async_claims_no_slot_at_any_await_point() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(1);
        s.q.try_put(1).unwrap();
        // Dropped before its first poll.
        drop(s.q.put_async(2));
        // Dropped while armed on a full queue.
        {
            let mut fut = Box::pin(s.q.put_async(3));
            assert!(pending_after_one_poll(fut.as_mut()));
        }
        assert_eq!(s.q.len(), 1);
        // Dropped after its wake-up (the child freed the slot), before the poll that would have
        // claimed it.
        {
            let mut fut = Box::pin(s.q.put_async(4));
            assert!(pending_after_one_poll(fut.as_mut()));
            assert_eq!(child_gets(&mut s.cmd, &mut s.out), 1);
        }
        // No slot was claimed, no value put: the queue is empty and the slot free.
        assert!(s.q.is_empty());
        assert!(matches!(s.q.try_get(), Err(TryGetError::Empty)));
        s.q.try_put(5).unwrap();
        // The timeout form ends with `Timeout` and hands the value back.
        assert!(matches!(
            s.q.put_timeout_async(6, Duration::from_millis(30)).await,
            Err(PutError::Timeout(6))
        ));
        // Cancelled by a combinator: the losing arm of a `select`, dropped pending.
        match futures::future::select(Box::pin(s.q.put_async(7)), Box::pin(async {})).await {
            futures::future::Either::Right(((), put)) => drop(put),
            futures::future::Either::Left(_) => panic!("the queue is full"),
        }
        assert_eq!(s.child_gets(), 5);
        assert!(s.q.is_empty(), "the dropped puts put nothing");
        s.finish();
    });
}

#[test]
fn a_runtime_timeout_around_get_async_loses_nothing() {
    ipc_testkit::watchdog(LIMIT, || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut s = Served::new(4);
                for _ in 0..3 {
                    let r = tokio::time::timeout(Duration::from_millis(20), s.q.get_async()).await;
                    assert!(r.is_err(), "nothing was put");
                }
                s.child_puts(9);
                let r = tokio::time::timeout(LIMIT, s.q.get_async()).await;
                assert_eq!(r.unwrap().unwrap(), 9);
                s.finish();
            })
    });
}

/// Child: puts one large serde value on Q (a spill), then exits.
#[test]
#[ignore = "child role"]
fn child_get_one_serde() {
    let q: ObjectHandle = ipc_testkit::arg();
    let mut q = Queue::<String, Serde>::open_consumer(&q).unwrap();
    let _ = q.get_timeout(LIMIT).unwrap();
}

#[test]
fn a_dropped_serde_put_async_leaves_no_spill_segment() {
    let marker = format!("queue-async-spill-{}", std::process::id());
    let m = marker.clone();
    on_every_executor(LIMIT, move || {
        let marker = m.clone();
        async move {
            let mut q = Queue::<String, Serde>::new(1).unwrap();
            q.try_put("fills the one slot".into()).unwrap();
            let big = format!("{marker}{}", "x".repeat(1 << 20));
            // Encoded (and spilled) at the first poll, then dropped while it waits.
            {
                let mut fut = Box::pin(q.put_async(big.clone()));
                assert!(pending_after_one_poll(fut.as_mut()));
            }
            ipc_testkit::wait_until_no_spills(marker.as_bytes(), LIMIT);
            // A child frees the slot while a second one waits: that one goes through.
            let mut child = ipc_testkit::spawn("child_get_one_serde", &q.handle());
            q.put_async(big.clone()).await.unwrap();
            assert!(child.wait(LIMIT).success());
            assert_eq!(q.get_async().await.unwrap(), big);
        }
    });
    ipc_testkit::wait_until_no_spills(marker.as_bytes(), LIMIT);
}

// ---------------------------------------------------------------------------------------------
// A killed producer.

#[test]
fn a_killed_producer_ends_1000_get_awaits_with_disconnected() {
    assert!(
        ipc_testkit::raise_fd_limit() > 2100,
        "the descriptor limit is too low for this test"
    );
    on_every_executor(LIMIT, || async {
        let (q, mut child) = queue_fed_by_a_hanging_child(1100);
        // Handles opened one by one, each its own mapping: 1,000 words, spread over the
        // reactor's shards.
        let handles: Vec<Queue<u64>> = (0..1000)
            .map(|_| Queue::<u64>::open_consumer(&q.handle()).unwrap())
            .collect();
        let pending = Arc::new(ipc_core::raw::atomic::AtomicU32::new(0));
        let p = Arc::clone(&pending);
        // Killed once every task awaits.
        let killer = std::thread::spawn(move || {
            wait_for_count(LIMIT, &p, 1000);
            child.kill();
        });
        let results = futures::future::join_all(handles.into_iter().map(|mut h| {
            let pending = Arc::clone(&pending);
            async move { counting_pending(h.get_async(), &pending).await }
        }))
        .await;
        killer.join().unwrap();
        assert_eq!(results.len(), 1000);
        for r in results {
            assert!(matches!(r, Err(GetError::Disconnected)), "{r:?}");
        }
        drop(q);
    });
}

#[test]
fn a_killed_producer_ends_1000_spawned_tasks_with_disconnected() {
    assert!(
        ipc_testkit::raise_fd_limit() > 2100,
        "the descriptor limit is too low for this test"
    );
    let (q, mut child) = queue_fed_by_a_hanging_child(1100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pending = Arc::new(ipc_core::raw::atomic::AtomicU32::new(0));
    // Clones of one handle share its mapping: the tasks await one word, one registration.
    let getter = Queue::<u64>::open_consumer(&q.handle()).unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let mut h = getter.try_clone().unwrap();
            let pending = Arc::clone(&pending);
            rt.spawn(async move { counting_pending(h.get_async(), &pending).await })
        })
        .collect();
    wait_for_count(LIMIT, &pending, 1000);
    child.kill();
    ipc_testkit::watchdog(LIMIT, move || {
        rt.block_on(async move {
            for t in tasks {
                let r = t.await.unwrap();
                assert!(matches!(r, Err(GetError::Disconnected)), "{r:?}");
            }
        })
    });
}

#[test]
fn the_stream_ends_when_the_producer_is_killed() {
    on_every_executor(LIMIT, || async {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_put_n_then_hang", &(q.handle(), 10u64));
        first_then_close(&mut q).await;
        let mut stream = q.stream();
        for i in 1..10 {
            assert_eq!(stream.next().await.unwrap().unwrap(), i);
        }
        let mut next = std::pin::pin!(stream.next());
        assert!(pending_after_one_poll(next.as_mut()));
        child.kill();
        assert!(next.await.is_none(), "Disconnected ends the stream");
        assert!(stream.next().await.is_none(), "and it stays ended");
    });
}

#[test]
fn the_stream_and_the_iterator_end_when_the_producer_exits() {
    on_every_executor(LIMIT, || async {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_put_n", &(q.handle(), 100u64));
        first_then_close(&mut q).await;
        let got: Vec<u64> = q.stream().map(Result::unwrap).collect().await;
        assert_eq!(got, (1..100).collect::<Vec<_>>());
        assert!(child.wait(LIMIT).success());
    });
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_put_n", &(q.handle(), 100u64));
        assert_eq!(q.get().unwrap(), 0);
        q.close();
        let got: Vec<u64> = q.iter().map(Result::unwrap).collect();
        assert_eq!(got, (1..100).collect::<Vec<_>>());
        assert!(child.wait(LIMIT).success());
    });
}

#[test]
fn the_iterator_ends_when_the_producer_is_killed() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_put_n_then_hang", &(q.handle(), 10u64));
        assert_eq!(q.get().unwrap(), 0);
        q.close();
        let mut it = q.iter();
        for i in 1..10 {
            assert_eq!(it.next().unwrap().unwrap(), i);
        }
        child.kill();
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    });
}

// ---------------------------------------------------------------------------------------------
// No busy polling.

/// Child: N tasks await a get on an empty queue (EMPTY) and N a put on a full one (FULL,
/// filled here), while the parent keeps both alive; over one second of that the tasks must be
/// polled about once per slice per awaited word, not more (`assert_idle`). With SEPARATE, each
/// task has a handle opened on its own (its own mapping, so every task awaits a word of its
/// own, each with its own slice timer: the idle cost then grows with the number of tasks);
/// otherwise the tasks' handles are clones of one (one mapping, one word per queue).
#[test]
#[ignore = "child role"]
fn child_idle_awaiting() {
    let (empty, full, separate, n): (ObjectHandle, ObjectHandle, bool, u64) = ipc_testkit::arg();
    assert!(ipc_testkit::raise_fd_limit() > 2 * n + 100);
    let mut filler = Queue::<u64>::open_producer(&full).unwrap();
    while filler.try_put(0).is_ok() {}
    let getter = Queue::<u64>::open_consumer(&empty).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pending = Arc::new(ipc_core::raw::atomic::AtomicU32::new(0));
    let polls = Arc::new(ipc_core::raw::atomic::AtomicU32::new(0));
    for i in 0..2 * n {
        let (pending, polls) = (Arc::clone(&pending), Arc::clone(&polls));
        if i % 2 == 0 {
            let mut q = if separate {
                Queue::<u64>::open_consumer(&empty).unwrap()
            } else {
                getter.try_clone().unwrap()
            };
            rt.spawn(async move {
                let _ = counting_polls(counting_pending(q.get_async(), &pending), &polls).await;
            });
        } else {
            let mut q = if separate {
                Queue::<u64>::open_producer(&full).unwrap()
            } else {
                filler.try_clone().unwrap()
            };
            rt.spawn(async move {
                let _ = counting_polls(counting_pending(q.put_async(i), &pending), &polls).await;
            });
        }
    }
    wait_for_count(LIMIT, &pending, 2 * n as u32);
    // ORDERING: Relaxed, a counter of the tasks' polls; it publishes nothing.
    let polls0 = polls.load(ipc_core::raw::atomic::Ordering::Relaxed);
    let (cpu0, wall0) = (cpu_time(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    // ORDERING: Relaxed, as above.
    let polled = polls.load(ipc_core::raw::atomic::Ordering::Relaxed) - polls0;
    // One word per queue, or one per task's own mapping.
    let words = if separate { 2 * n as u32 } else { 2 };
    let what = format!("idle awaiting ({} tasks, separate {separate})", 2 * n);
    assert_idle(&what, polled, words, cpu, wall);
    rt.shutdown_background();
}

/// Runs `child_idle_awaiting` with `n` tasks on each queue.
fn idle_child(separate: bool, n: u64) {
    assert!(
        ipc_testkit::raise_fd_limit() > 2 * n + 100,
        "the descriptor limit is too low for this test"
    );
    let participants = n as usize + 100;
    let empty = Queue::<u64>::builder(4)
        .participants(participants)
        .create()
        .unwrap();
    let full = Queue::<u64>::builder(4)
        .participants(participants)
        .create()
        .unwrap();
    let mut child = ipc_testkit::spawn(
        "child_idle_awaiting",
        &(empty.handle(), full.handle(), separate, n),
    );
    assert!(child.wait(LIMIT).success(), "the child failed");
    drop((empty, full));
}

#[test]
fn an_idle_awaiting_process_uses_almost_no_cpu() {
    idle_child(false, 1000);
}

/// An awaited get or put whose timeout is shorter than its first poll's spin ends at the
/// timeout, not after the spin (an hour here).
#[test]
fn an_awaited_timeout_shorter_than_the_spin_ends_the_wait() {
    ipc_testkit::watchdog(LIMIT, || {
        const HOUR: Duration = Duration::from_secs(3600);
        let t = Duration::from_millis(5);
        let mut q = Queue::<u64>::new(4).unwrap();
        q.set_spin(HOUR);
        let got = futures::executor::block_on(q.get_timeout_async(t));
        assert!(matches!(got, Err(GetError::Timeout)));
        for i in 0..4 {
            q.put(i).unwrap();
        }
        let put = futures::executor::block_on(q.put_timeout_async(7, t));
        assert!(matches!(put, Err(PutError::Timeout(7))));
    });
}

/// An awaited get's first-poll spin, as long as a `Duration` can be and without a timeout,
/// still checks the producers once per slice: with every producer gone it ends with
/// `Disconnected` instead of spinning for ever.
#[test]
fn the_longest_awaited_spin_still_sees_the_producers_go() {
    ipc_testkit::watchdog(LIMIT, || {
        let mut q = Queue::<u64>::new(4).unwrap();
        let mut getter = Queue::<u64>::open_consumer(&q.handle()).unwrap();
        q.close();
        getter.set_spin(Duration::MAX);
        let got = futures::executor::block_on(getter.get_async());
        assert!(matches!(got, Err(GetError::Disconnected)));
    });
}
