//! The ring's async forms (`Producer::push_async`, `Consumer::pop_async`, their timeout forms,
//! `Consumer::stream`) across real processes, on three executors (tokio current-thread, tokio
//! multi-thread, `futures::executor`): they complete when a child process acts, they cancel
//! cleanly when dropped at each of their await points, a producer SIGKILLed while 1,000 tasks
//! await (one ring each) ends every await with `Disconnected`, a killed consumer ends a push,
//! and an idle awaiting process uses almost no CPU.

use std::sync::Arc;

use std::time::Duration;

use futures::StreamExt;
use ipc_core::ObjectHandle;
use ipc_core::raw::atomic::{AtomicU32, Ordering};
use ipc_queue::{Consumer, GetError, Producer, PutError, Queue, RingBuffer, TryGetError};
use ipc_testkit::{
    assert_idle, counting_pending, counting_polls, cpu_time, on_every_executor,
    pending_after_one_poll, wait_for_count,
};

/// The watchdog of every test: far above any expected run time.
const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Child roles.

/// Pushes its low half on the child's producer end.
const PUSH: u64 = 1 << 32;
/// Pops one value from the child's consumer end.
const POP: u64 = 2 << 32;
/// What the child puts on OUT once it holds both ends.
const ATTACHED: u64 = u64::MAX;

/// Child: takes over TX (the producer of ring "to parent") and RX (the consumer of ring "to
/// child"), says so on OUT, then for each command on CMD (until every sender is gone) pushes on
/// TX (`PUSH`) or pops from RX (`POP`), and puts the value pushed or popped on OUT.
#[test]
#[ignore = "child role"]
fn child_serve() {
    let (mut tx, mut rx, cmd, out): (Producer<u64>, Consumer<u64>, ObjectHandle, ObjectHandle) =
        ipc_testkit::arg();
    let mut cmd = Queue::<u64>::open_consumer(&cmd).unwrap();
    let mut out = Queue::<u64>::open_producer(&out).unwrap();
    out.put(ATTACHED).unwrap();
    loop {
        match cmd.get() {
            Ok(c) if c & !0xffff_ffff == PUSH => {
                tx.push_blocking(c & 0xffff_ffff).unwrap();
                out.put(c & 0xffff_ffff).unwrap();
            }
            Ok(c) if c & !0xffff_ffff == POP => out.put(rx.pop_blocking().unwrap()).unwrap(),
            Ok(c) => panic!("unknown command {c:#x}"),
            Err(GetError::Disconnected) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Two rings served by a `child_serve` child: the parent pops from `rx` what the child
/// pushes, and pushes on `tx` what the child pops.
struct Served {
    tx: Producer<u64>,
    rx: Consumer<u64>,
    cmd: Queue<u64>,
    out: Queue<u64>,
    child: ipc_testkit::Role,
}

impl Served {
    fn new(capacity: usize) -> Self {
        let (tx, child_rx) = RingBuffer::<u64>::new(capacity).unwrap();
        let (child_tx, rx) = RingBuffer::<u64>::new(capacity).unwrap();
        let mut cmd = Queue::<u64>::new(4).unwrap();
        let mut out = Queue::<u64>::new(4).unwrap();
        cmd.close_receiving();
        // Serialising the ends hands them over to the child; ours go inert.
        let child = ipc_testkit::spawn(
            "child_serve",
            &(&child_tx, &child_rx, cmd.handle(), out.handle()),
        );
        assert_eq!(out.get().unwrap(), ATTACHED);
        // Closed once the child is attached (closed earlier, a get could find no producer
        // alive before the child attaches, and rightly end).
        out.close();
        drop((child_tx, child_rx));
        Self {
            tx,
            rx,
            cmd,
            out,
            child,
        }
    }

    /// Ends the child (its command queue disconnects) and checks that it succeeded.
    fn finish(self) {
        let Self {
            tx,
            rx,
            cmd,
            out,
            mut child,
        } = self;
        drop(cmd);
        assert!(child.wait(LIMIT).success(), "the child failed");
        drop((tx, rx, out));
    }
}

/// Has the child push `v`; returns once it has.
fn child_pushes(cmd: &mut Queue<u64>, out: &mut Queue<u64>, v: u64) {
    cmd.put(PUSH | v).unwrap();
    assert_eq!(out.get().unwrap(), v);
}

/// Has the child pop one value; returns it once it has.
fn child_pops(cmd: &mut Queue<u64>, out: &mut Queue<u64>) -> u64 {
    cmd.put(POP).unwrap();
    out.get().unwrap()
}

/// Child: takes over every producer of TXS, pushes 0..N on each, then waits to be killed.
#[test]
#[ignore = "child role"]
fn child_push_n_then_hang() {
    ipc_testkit::raise_fd_limit();
    let (txs, n): (Vec<Producer<u64>>, u64) = ipc_testkit::arg();
    let mut txs = txs;
    for tx in &mut txs {
        for i in 0..n {
            tx.push_blocking(i).unwrap();
        }
    }
    loop {
        std::thread::park();
    }
}

/// Child: takes over the producer TX, pushes 0..N, then exits (dropping it).
#[test]
#[ignore = "child role"]
fn child_push_n() {
    let (mut tx, n): (Producer<u64>, u64) = ipc_testkit::arg();
    for i in 0..n {
        tx.push_blocking(i).unwrap();
    }
}

/// Child: takes over the consumer RX, pops N values, then waits to be killed.
#[test]
#[ignore = "child role"]
fn child_pop_n_then_hang() {
    let (mut rx, n): (Consumer<u64>, u64) = ipc_testkit::arg();
    for _ in 0..n {
        rx.pop_blocking().unwrap();
    }
    loop {
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------------------------
// Completing when a child acts.

#[test]
fn pop_async_completes_when_a_child_pushes() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(4);
        {
            let mut fut = std::pin::pin!(s.rx.pop_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(PUSH | 42).unwrap();
            assert_eq!(fut.await.unwrap(), 42);
        }
        assert_eq!(s.out.get().unwrap(), 42);
        {
            let mut fut = std::pin::pin!(s.rx.pop_timeout_async(LIMIT));
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(PUSH | 43).unwrap();
            assert_eq!(fut.await.unwrap(), 43);
        }
        assert_eq!(s.out.get().unwrap(), 43);
        s.finish();
    });
}

#[test]
fn push_async_waits_on_a_full_ring_until_a_child_pops() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(2);
        s.tx.push(1).unwrap();
        s.tx.push(2).unwrap();
        {
            let mut fut = std::pin::pin!(s.tx.push_async(3));
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(POP).unwrap();
            fut.await.unwrap();
        }
        assert_eq!(s.out.get().unwrap(), 1);
        {
            let mut fut = std::pin::pin!(s.tx.push_timeout_async(4, LIMIT));
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(POP).unwrap();
            fut.await.unwrap();
        }
        assert_eq!(s.out.get().unwrap(), 2);
        assert_eq!(child_pops(&mut s.cmd, &mut s.out), 3);
        assert_eq!(child_pops(&mut s.cmd, &mut s.out), 4);
        s.finish();
    });
}

// ---------------------------------------------------------------------------------------------
// Cancellation at every await point.

#[test]
fn a_dropped_pop_async_pops_nothing_at_any_await_point() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(4);
        // Dropped before its first poll.
        drop(s.rx.pop_async());
        // Dropped while armed on an empty ring.
        {
            let mut fut = Box::pin(s.rx.pop_async());
            assert!(pending_after_one_poll(fut.as_mut()));
        }
        // Dropped after its wake-up, before the poll that would have popped.
        {
            let mut fut = Box::pin(s.rx.pop_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            child_pushes(&mut s.cmd, &mut s.out, 7);
        }
        assert_eq!(s.rx.len(), 1);
        assert_eq!(s.rx.pop().unwrap(), 7);
        // A dropped wait consumed no wake-up a later one needs.
        {
            drop(Box::pin(s.rx.pop_async()));
            let mut fut = std::pin::pin!(s.rx.pop_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            s.cmd.put(PUSH | 8).unwrap();
            assert_eq!(fut.await.unwrap(), 8);
            assert_eq!(s.out.get().unwrap(), 8);
        }
        assert!(matches!(
            s.rx.pop_timeout_async(Duration::from_millis(30)).await,
            Err(GetError::Timeout)
        ));
        // The losing arm of a `select`, dropped pending.
        match futures::future::select(Box::pin(s.rx.pop_async()), Box::pin(async {})).await {
            futures::future::Either::Right(((), pop)) => drop(pop),
            futures::future::Either::Left(_) => panic!("the ring is empty"),
        }
        child_pushes(&mut s.cmd, &mut s.out, 9);
        assert_eq!(
            s.rx.pop().unwrap(),
            9,
            "nothing was popped by the dropped futures"
        );
        s.finish();
    });
}

#[test]
fn a_dropped_push_async_pushes_nothing_at_any_await_point() {
    on_every_executor(LIMIT, || async {
        let mut s = Served::new(1);
        s.tx.push(1).unwrap();
        drop(s.tx.push_async(2));
        {
            let mut fut = Box::pin(s.tx.push_async(3));
            assert!(pending_after_one_poll(fut.as_mut()));
        }
        // Dropped after its wake-up (the child popped), before the poll that would have pushed.
        {
            let mut fut = Box::pin(s.tx.push_async(4));
            assert!(pending_after_one_poll(fut.as_mut()));
            assert_eq!(child_pops(&mut s.cmd, &mut s.out), 1);
        }
        // Nothing was pushed: the one slot is free.
        s.tx.push(5).unwrap();
        assert!(matches!(
            s.tx.push_timeout_async(6, Duration::from_millis(30)).await,
            Err(PutError::Timeout(6))
        ));
        match futures::future::select(Box::pin(s.tx.push_async(7)), Box::pin(async {})).await {
            futures::future::Either::Right(((), push)) => drop(push),
            futures::future::Either::Left(_) => panic!("the ring is full"),
        }
        assert_eq!(child_pops(&mut s.cmd, &mut s.out), 5);
        // The ring is empty again: the next push goes through at once, and is the next popped.
        s.tx.push(10).unwrap();
        assert_eq!(child_pops(&mut s.cmd, &mut s.out), 10);
        s.finish();
    });
}

// ---------------------------------------------------------------------------------------------
// Killed peers.

#[test]
fn a_killed_producer_ends_1000_pop_awaits_with_disconnected() {
    assert!(
        ipc_testkit::raise_fd_limit() > 4100,
        "the descriptor limit is too low for this test"
    );
    on_every_executor(LIMIT, || async {
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..1000)
            .map(|_| RingBuffer::<u64>::new(4).unwrap())
            .unzip();
        let mut child = ipc_testkit::spawn("child_push_n_then_hang", &(&txs, 1u64));
        // Each ring's first value: the child holds every producer.
        for rx in &mut rxs {
            assert_eq!(rx.pop_blocking().unwrap(), 0);
        }
        drop(txs);
        let pending = Arc::new(AtomicU32::new(0));
        let p = Arc::clone(&pending);
        let killer = std::thread::spawn(move || {
            wait_for_count(LIMIT, &p, 1000);
            child.kill();
        });
        let results = futures::future::join_all(rxs.iter_mut().map(|rx| {
            let pending = Arc::clone(&pending);
            async move { counting_pending(rx.pop_async(), &pending).await }
        }))
        .await;
        killer.join().unwrap();
        assert_eq!(results.len(), 1000);
        for r in results {
            assert!(matches!(r, Err(GetError::Disconnected)), "{r:?}");
        }
    });
}

#[test]
fn a_killed_consumer_ends_push_async_with_disconnected() {
    on_every_executor(LIMIT, || async {
        let (mut tx, rx) = RingBuffer::<u64>::new(2).unwrap();
        let mut child = ipc_testkit::spawn("child_pop_n_then_hang", &(&rx, 1u64));
        // Fill the ring; the third push waits for the child's pop, so the child holds the
        // consumer role by then, and the inert original can go.
        tx.push_async(1).await.unwrap();
        tx.push_async(2).await.unwrap();
        tx.push_async(3).await.unwrap();
        drop(rx);
        let mut fut = std::pin::pin!(tx.push_async(4));
        assert!(pending_after_one_poll(fut.as_mut()));
        child.kill();
        assert!(matches!(fut.await, Err(PutError::Disconnected(4))));
    });
}

#[test]
fn the_stream_ends_when_the_producer_is_killed() {
    on_every_executor(LIMIT, || async {
        let (tx, mut rx) = RingBuffer::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_push_n_then_hang", &(vec![&tx], 10u64));
        let mut stream = rx.stream();
        for i in 0..10 {
            assert_eq!(stream.next().await.unwrap().unwrap(), i);
        }
        // The child took the producer over: the inert original can go.
        drop(tx);
        let mut next = std::pin::pin!(stream.next());
        assert!(pending_after_one_poll(next.as_mut()));
        child.kill();
        assert!(next.await.is_none(), "Disconnected ends the stream");
        assert!(stream.next().await.is_none(), "and it stays ended");
    });
}

#[test]
fn the_stream_ends_when_the_producer_exits() {
    on_every_executor(LIMIT, || async {
        let (tx, mut rx) = RingBuffer::<u64>::new(4).unwrap();
        let mut child = ipc_testkit::spawn("child_push_n", &(&tx, 100u64));
        let mut stream = rx.stream();
        assert_eq!(stream.next().await.unwrap().unwrap(), 0);
        // The inert original counts the producer present until it drops: the child has taken
        // the role over by now.
        drop(tx);
        let rest: Vec<u64> = stream.map(Result::unwrap).collect().await;
        assert_eq!(rest, (1..100).collect::<Vec<_>>());
        assert!(child.wait(LIMIT).success());
        assert!(matches!(rx.pop_async().await, Err(GetError::Disconnected)));
        assert!(matches!(rx.pop(), Err(TryGetError::Empty)));
    });
}

// ---------------------------------------------------------------------------------------------
// No busy polling.

/// Child: tasks await a pop on each empty ring of RXS and a push on each full ring of TXS,
/// while the parent holds the other ends; over one second of that the tasks must be polled
/// about once per slice per ring, not more (`assert_idle`).
#[test]
#[ignore = "child role"]
fn child_idle_awaiting() {
    let (rxs, txs): (Vec<Consumer<u64>>, Vec<Producer<u64>>) = ipc_testkit::arg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pending = Arc::new(AtomicU32::new(0));
    let polls = Arc::new(AtomicU32::new(0));
    let n = (rxs.len() + txs.len()) as u32;
    for mut rx in rxs {
        let (pending, polls) = (Arc::clone(&pending), Arc::clone(&polls));
        rt.spawn(async move {
            let _ = counting_polls(counting_pending(rx.pop_async(), &pending), &polls).await;
        });
    }
    for mut tx in txs {
        while tx.push(0).is_ok() {}
        let (pending, polls) = (Arc::clone(&pending), Arc::clone(&polls));
        rt.spawn(async move {
            let _ = counting_polls(counting_pending(tx.push_async(1), &pending), &polls).await;
        });
    }
    wait_for_count(LIMIT, &pending, n);
    // ORDERING: Relaxed, a counter of the tasks' polls; it publishes nothing.
    let polls0 = polls.load(Ordering::Relaxed);
    let (cpu0, wall0) = (cpu_time(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    // ORDERING: Relaxed, as above.
    let polled = polls.load(Ordering::Relaxed) - polls0;
    // Every ring is a word of its own.
    assert_idle(&format!("idle awaiting ({n} rings)"), polled, n, cpu, wall);
    rt.shutdown_background();
}

#[test]
fn an_idle_awaiting_process_uses_almost_no_cpu() {
    // Every ring is a word of its own: the idle cost is per ring (a liveness check per slice).
    let (to_child, from_parent): (Vec<_>, Vec<_>) =
        (0..4).map(|_| RingBuffer::<u64>::new(4).unwrap()).unzip();
    let (to_parent, from_child): (Vec<_>, Vec<_>) =
        (0..4).map(|_| RingBuffer::<u64>::new(4).unwrap()).unzip();
    let mut child = ipc_testkit::spawn("child_idle_awaiting", &(&from_parent, &to_parent));
    assert!(child.wait(LIMIT).success(), "the child failed");
    drop((to_child, from_parent, to_parent, from_child));
}
