//! Pool behaviour with real worker processes: results, panics, SIGKILLed workers, initializer
//! failure, timeouts, dropping with tasks in flight, max tasks per child, imap laziness.

use std::collections::HashSet;
use std::time::Duration;

use ipc_core::{ObjectHandle, ProcessIdentity, RawValue};
use ipc_pool::{BuildError, Executor, GetTimeoutError, MapError, Pool, SharedSlice, TaskError};
use ipc_testkit::{block_on, eventually, spills_holding};

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: i32, b: i32) -> i32 {
    a + b
}

fn pid_of_worker(_: u32) -> u32 {
    std::process::id()
}

fn panics_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not allowed");
    x
}

/// Records its pid in the shared value, then sleeps far longer than any test waits.
fn report_pid_and_hang(v: ObjectHandle) -> u32 {
    let v = RawValue::<u32>::open(&v).expect("open value");
    v.set(std::process::id());
    std::thread::sleep(Duration::from_secs(300));
    0
}

/// Records its pid in the shared value it was given.
fn report_pid(v: RawValue<u32>) -> u32 {
    v.set(std::process::id());
    std::process::id()
}

/// A shared object passed by value to `apply_async`, `map_async` or `imap` is reopened by the
/// worker through the caller's descriptor of that very handle: the pool keeps the argument
/// until the task has ended, or the worker would find it closed (the call returned long before
/// the task ran).
#[test]
fn a_shared_value_passed_by_value_to_a_task_reaches_the_worker() {
    let pool = Pool::new(2).unwrap();
    let value = RawValue::new(0u32).unwrap();
    // A busy pool, so that the task waits after the call returned.
    let busy = pool.map_async(sleep_ms, vec![50; 4]).unwrap();
    let r = pool
        .apply_async(report_pid, RawValue::open(&value.handle()).unwrap())
        .unwrap();
    let pid = r
        .get_timeout(Duration::from_secs(60))
        .expect("the task ran");
    assert_eq!(value.get(), pid);
    assert!(pool.worker_pids().contains(&pid));
    busy.get().unwrap();
    // The same through `map_async`: its items live until the map ends.
    value.set(0);
    let busy = pool.map_async(sleep_ms, vec![50; 4]).unwrap();
    let items = vec![RawValue::open(&value.handle()).unwrap()];
    let r = pool.map_async(report_pid, items).unwrap();
    let pids = r.get_timeout(Duration::from_secs(60)).expect("the map ran");
    assert_eq!(pids, [value.get()]);
    busy.get().unwrap();
    // And through `imap`: each chunk's items live until the chunk comes back.
    value.set(0);
    let busy = pool.map_async(sleep_ms, vec![50; 4]).unwrap();
    let items = vec![RawValue::open(&value.handle()).unwrap()];
    let pids: Vec<u32> = pool.imap(report_pid, items).map(Result::unwrap).collect();
    assert_eq!(pids, [value.get()]);
    busy.get().unwrap();
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn failing_init(_: ()) {
    panic!("initializer refuses");
}

fn set_marker(v: ObjectHandle) {
    RawValue::<u32>::open(&v).expect("open").fetch_add(1);
}

fn double_all(xs: &mut [f64]) {
    for x in xs {
        *x *= 2.0;
    }
}

#[test]
fn map_squares_in_order() {
    let pool = Pool::new(3).unwrap();
    assert_eq!(
        pool.map(square, [1, 2, 3, 4, 5]).unwrap(),
        [1, 4, 9, 16, 25]
    );
    let big: Vec<u64> = (0..10_000).collect();
    let out = pool.map(square, big.clone()).unwrap();
    assert_eq!(out, big.iter().map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(pool.map_chunksize(square, 0..100u64, 1).unwrap().len(), 100);
    assert!(pool.map(square, Vec::<u64>::new()).unwrap().is_empty());
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

/// Inputs and results of every size a task's bytes travel by: inputs short enough to be kept
/// in place in the worker and longer ones, results small enough for the worker's result ring
/// and larger ones for the result queue, chunks of one item and of several.
#[test]
fn map_of_small_and_large_values_in_chunks_of_one_and_more() {
    let pool = Pool::new(2).unwrap();
    let words: Vec<String> = (0..200).map(|i| "ab".repeat(i % 70)).collect();
    let want: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
    for chunksize in [1, 3, 64] {
        let out = pool.map_chunksize(shout, words.clone(), chunksize).unwrap();
        assert_eq!(out, want, "chunksize {chunksize}");
    }
    let out = pool.map_chunksize(square, 0..1000u64, 1).unwrap();
    assert_eq!(out, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f32,
    y: f32,
}

fn flip(p: Point) -> Point {
    Point { x: p.y, y: p.x }
}

#[test]
fn map_of_serde_values_and_of_pod_structs() {
    let pool = Pool::new(2).unwrap();
    let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    let out = pool.map(shout, words.clone()).unwrap();
    assert_eq!(
        out,
        words.iter().map(|w| w.to_uppercase()).collect::<Vec<_>>()
    );
    let pts: Vec<Point> = (0..1000)
        .map(|i| Point {
            x: i as f32,
            y: -(i as f32),
        })
        .collect();
    let flipped = pool.map_pod(flip, &pts).unwrap();
    assert_eq!(flipped.len(), 1000);
    assert!(
        flipped
            .iter()
            .zip(&pts)
            .all(|(f, p)| f.x == p.y && f.y == p.x)
    );
    assert!(pool.map_pod(flip, &[]).unwrap().is_empty());
}

#[test]
fn apply_starmap_and_async() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    let r = pool.starmap_async(add, [(5, 5)]).unwrap();
    assert_eq!(r.get().unwrap(), [10]);
    let r = pool.map_async(square, [2, 3]).unwrap();
    r.wait();
    assert!(r.ready());
    assert_eq!(r.successful(), Some(true));
    assert_eq!(r.get().unwrap(), [4, 9]);
}

/// The items of one task run in one worker, so a task of the whole input reports one pid.
fn pids_of_tasks(pool: &Pool, chunksize: usize) -> HashSet<u32> {
    pool.map_async_with(pid_of_worker, 0..64u32, Some(chunksize), |_| {}, |_| {})
        .unwrap()
        .get()
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn map_and_starmap_async_take_chunksize_callback_and_error_callback() {
    let pool = Pool::new(2).unwrap();
    let timeout = Duration::from_secs(30);

    // map_async with a chunksize: the results in order, the callback given the same vector.
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    let r = pool
        .map_async_with(
            square,
            1..=10u64,
            Some(3),
            move |v| tx.send(Ok(v.clone())).unwrap(),
            move |e| tx2.send(Err(e.clone())).unwrap(),
        )
        .unwrap();
    let expected: Vec<u64> = (1..=10u64).map(square).collect();
    assert_eq!(r.get().unwrap(), expected);
    assert_eq!(rx.recv_timeout(timeout).unwrap(), Ok(expected));
    assert!(rx.try_recv().is_err(), "exactly one of the callbacks runs");

    // A failing task: the error callback, with the structured error, and not the callback.
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    let r = pool
        .map_async_with(
            panics_on_three,
            1..=5u32,
            Some(1),
            move |v| tx.send(Ok(v.clone())).unwrap(),
            move |e| tx2.send(Err(e.clone())).unwrap(),
        )
        .unwrap();
    assert!(r.get().is_err());
    match rx.recv_timeout(timeout).unwrap() {
        Err(TaskError::Panicked { message, .. }) => {
            assert!(message.contains("three is not allowed"), "{message}")
        }
        other => panic!("expected the error callback with a panic, got {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "exactly one of the callbacks runs");

    // starmap_async with a chunksize and its callback.
    let (tx, rx) = std::sync::mpsc::channel();
    let pairs: Vec<(i32, i32)> = (0..9).map(|i| (i, 10 * i)).collect();
    let sums: Vec<i32> = pairs.iter().map(|&(a, b)| a + b).collect();
    let r = pool
        .starmap_async_with(
            add,
            pairs.clone(),
            Some(4),
            move |v| tx.send(v.clone()).unwrap(),
            |_| {},
        )
        .unwrap();
    assert_eq!(r.get().unwrap(), sums);
    assert_eq!(rx.recv_timeout(timeout).unwrap(), sums);

    // starmap and imap_unordered with a chunksize.
    assert_eq!(pool.starmap_chunksize(add, pairs, 2).unwrap(), sums);
    let mut got: Vec<u64> = pool
        .imap_unordered_chunksize(square, 0..20u64, 4)
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..20u64).map(square).collect::<Vec<_>>());

    // The chunksize is the unit of work: one task of all 64 items runs in one worker.
    assert_eq!(pids_of_tasks(&pool, 64).len(), 1);
}

#[test]
fn callbacks_run_in_the_parent() {
    let pool = Pool::new(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    let r = pool
        .apply_async_with(
            square,
            4,
            move |v| tx.send(Ok(*v)).unwrap(),
            move |e| tx2.send(Err(e.to_string())).unwrap(),
        )
        .unwrap();
    assert_eq!(r.get().unwrap(), 16);
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(16));
    let (tx, rx) = std::sync::mpsc::channel();
    let r = pool
        .apply_async_with(
            panics_on_three,
            3,
            |_| {},
            move |e| tx.send(e.clone()).unwrap(),
        )
        .unwrap();
    assert!(r.get().is_err());
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        TaskError::Panicked { .. }
    ));
}

#[test]
fn a_panicking_task_fails_alone_and_the_worker_survives() {
    let pool = Pool::new(1).unwrap();
    let before = pool.worker_pids();
    let err = pool.apply(panics_on_three, 3).unwrap_err();
    match err {
        TaskError::Panicked {
            message,
            pid,
            location,
        } => {
            // Python's RemoteTraceback: what, in which worker, where.
            assert!(message.contains("three is not allowed"));
            assert_eq!(vec![pid], before);
            let location = location.expect("the panic's location");
            assert!(location.contains("pool.rs"), "{location}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    let err = pool.map(panics_on_three, 0..10).unwrap_err();
    // Python's chunksize for 10 items on 1 worker is 3: the failed chunk is items 3..6.
    assert_eq!(err.index, 3);
    let per_item: Vec<Result<u32, MapError>> = pool.imap(panics_on_three, 0..6).collect();
    assert_eq!(per_item.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(per_item[3].as_ref().unwrap_err().index, 3);
    assert_eq!(*per_item[5].as_ref().unwrap(), 5);
    assert_eq!(pool.worker_pids(), before, "the worker lived on");
}

#[test]
fn a_sigkilled_worker_fails_its_task_and_is_replaced() {
    let pool = Pool::new(2).unwrap();
    let marker = RawValue::new(0u32).unwrap();
    let doomed = pool
        .apply_async(report_pid_and_hang, marker.handle())
        .unwrap();
    // Other work keeps flowing meanwhile.
    let others = pool.map_async(sleep_ms, vec![20; 20]).unwrap();
    assert!(
        eventually(Duration::from_secs(60), || marker.get() != 0).is_some(),
        "task never started"
    );
    let victim = marker.get();
    assert!(pool.worker_pids().contains(&victim));
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert_eq!(rc, 0);
    match doomed.get_timeout(Duration::from_secs(60)) {
        Err(GetTimeoutError::Failed(TaskError::WorkerDied {
            pid,
            exit_code,
            cause,
        })) => {
            assert_eq!(pid, victim);
            assert_eq!(exit_code, Some(-9));
            assert!(cause.contains("signal 9"), "cause: {cause}");
        }
        Err(GetTimeoutError::Timeout(_)) => panic!("the pool hung on a dead worker"),
        other => panic!("expected WorkerDied, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        others
            .get_timeout(Duration::from_secs(60))
            .map_err(|e| e.to_string())
            .unwrap()
            .len(),
        20
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            let pids = pool.worker_pids();
            pids.len() == 2 && !pids.contains(&victim)
        })
        .is_some()
    );
    assert_eq!(pool.map(square, 0..50).unwrap().len(), 50);
}

/// A callback that panics (in the parent's result thread) neither keeps its own result from
/// the caller nor stops the pool from answering later tasks.
#[test]
fn a_panicking_callback_keeps_its_result_and_the_pool_answers_on() {
    let pool = Pool::new(1).unwrap();
    let r = pool
        .apply_async_with(square, 3, |_| panic!("callback refuses"), |_| {})
        .unwrap();
    match r.get_timeout(Duration::from_secs(60)) {
        Ok(v) => assert_eq!(v, 9),
        Err(GetTimeoutError::Timeout(_)) => panic!("the result of a panicking callback was lost"),
        Err(e) => panic!("failed: {e}"),
    }
    let later = pool.apply_async(square, 4).unwrap();
    match later.get_timeout(Duration::from_secs(60)) {
        Ok(v) => assert_eq!(v, 16),
        Err(GetTimeoutError::Timeout(_)) => panic!("the result thread died with the callback"),
        Err(e) => panic!("failed: {e}"),
    }
    assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);
}

#[test]
fn get_timeout_hands_the_result_back() {
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(sleep_ms, 300).unwrap();
    let r = match r.get_timeout(Duration::from_millis(10)) {
        Err(GetTimeoutError::Timeout(t)) => t.0,
        other => panic!("expected a timeout, got {:?}", other.map(|_| ())),
    };
    assert_eq!(
        r.get_timeout(Duration::from_secs(60))
            .map_err(|e| e.to_string())
            .unwrap(),
        300
    );
}

#[test]
fn a_failing_initializer_fails_the_build() {
    let err = Pool::builder()
        .processes(2)
        .initializer(failing_init, ())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("initializer"), "{err}");
}

#[test]
fn the_initializer_runs_once_per_worker() {
    let count = RawValue::new(0u32).unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(set_marker, count.handle())
        .build()
        .unwrap();
    assert_eq!(count.get(), 2);
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}

fn long_text(n: usize) -> String {
    "x".repeat(n)
}

/// Records its pid in the shared value, then returns after `ms` milliseconds.
fn report_pid_and_sleep((v, ms): (ObjectHandle, u64)) -> u32 {
    RawValue::<u32>::open(&v)
        .expect("open value")
        .set(std::process::id());
    std::thread::sleep(Duration::from_millis(ms));
    7
}

/// Counts its runs in the shared value, then kills its worker (SIGKILL: it ends at once).
fn count_and_die(v: ObjectHandle) -> u32 {
    RawValue::<u32>::open(&v).expect("open value").fetch_add(1);
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(std::process::id() as i32, libc::SIGKILL) };
    std::process::abort()
}

/// A blocking `apply` is answered by its worker directly (a reply slot in shared memory): a
/// worker SIGKILLed while its caller waits there must still fail the call, not hang it.
#[test]
fn a_blocking_apply_whose_worker_is_killed_fails_with_worker_died() {
    let pool = std::sync::Arc::new(Pool::new(2).unwrap());
    let marker = RawValue::new(0u32).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (p, h) = (std::sync::Arc::clone(&pool), marker.handle());
    std::thread::spawn(move || {
        let _ = tx.send(p.apply(report_pid_and_hang, h));
    });
    assert!(
        eventually(Duration::from_secs(60), || marker.get() != 0).is_some(),
        "task never started"
    );
    let victim = marker.get();
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Err(TaskError::WorkerDied { pid, exit_code, .. })) => {
            assert_eq!(pid, victim);
            assert_eq!(exit_code, Some(-9));
        }
        Ok(other) => panic!("expected WorkerDied, got {other:?}"),
        Err(_) => panic!("apply hung on a dead worker"),
    }
    // The pool carries on, answering directly again.
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
}

/// What does not fit a reply slot, or is not a value, takes the result queue; callers beyond
/// the slots' number take it too; every caller gets its own answer.
#[test]
fn apply_answers_large_results_failures_and_more_callers_than_slots() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(long_text, 10_000).unwrap().len(), 10_000);
    assert_eq!(pool.apply(long_text, 400).unwrap().len(), 400);
    match pool.apply(panics_on_three, 3) {
        Err(TaskError::Panicked { message, .. }) => {
            assert!(message.contains("three is not allowed"), "{message}")
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    std::thread::scope(|s| {
        for t in 0..80u64 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..20 {
                    let x = t * 1000 + i;
                    assert_eq!(pool.apply(square, x).unwrap(), x * x);
                }
            });
        }
    });
}

/// A worker that answered a task in its reply slot and then died running the next one: the
/// answered task keeps its value, the next one fails with the worker's death and is not run
/// again. (The order in which the death notice comes before the caller's own bookkeeping of
/// its answer is built by hand in the unit tests of `pool/death.rs`.)
#[test]
fn a_task_answered_directly_survives_the_death_of_its_worker_and_the_next_task_fails() {
    let pool = std::sync::Arc::new(Pool::new(1).unwrap());
    for _ in 0..3 {
        let (marker, runs) = (RawValue::new(0u32).unwrap(), RawValue::new(0u32).unwrap());
        let (p, h) = (std::sync::Arc::clone(&pool), marker.handle());
        let answered = std::thread::spawn(move || p.apply(report_pid_and_sleep, (h, 20)));
        assert!(
            eventually(Duration::from_secs(60), || marker.get() != 0).is_some(),
            "task never started"
        );
        // Queued behind the running task, on the pool's only worker.
        let doomed = pool.apply_async(count_and_die, runs.handle()).unwrap();
        assert_eq!(answered.join().unwrap().unwrap(), 7);
        match doomed.get_timeout(Duration::from_secs(60)) {
            Err(GetTimeoutError::Failed(TaskError::WorkerDied { pid, .. })) => {
                assert_eq!(pid, marker.get())
            }
            Err(GetTimeoutError::Timeout(_)) => panic!("the pool hung on a dead worker"),
            other => panic!("expected WorkerDied, got {:?}", other.map(|_| ())),
        }
        assert_eq!(runs.get(), 1, "the task its worker died running ran again");
    }
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

/// Counts its run in the shared array, then kills its worker if it is item 5.
fn count_and_abort_on_five((runs, i): (ObjectHandle, usize)) -> usize {
    let runs = ipc_core::RawArray::<u32>::open(&runs).expect("open array");
    runs.fetch_add(i, 1).expect("index");
    if i == 5 {
        std::process::abort();
    }
    i
}

/// Small results come back on the worker's own result ring: a worker that dies in the middle
/// of a batch has its earlier results delivered (not lost, not run again), the task it was
/// running fails, and the rest run on its replacement, each once.
#[test]
fn a_worker_dying_mid_batch_keeps_the_results_it_gave_and_fails_only_its_task() {
    let pool = Pool::new(1).unwrap();
    let runs = ipc_core::RawArray::<u32>::new(12).unwrap();
    let items: Vec<(ObjectHandle, usize)> = (0..12).map(|i| (runs.handle(), i)).collect();
    let per_item: Vec<Result<usize, MapError>> = pool
        .imap_chunksize(count_and_abort_on_five, items, 1)
        .collect();
    for (i, r) in per_item.iter().enumerate() {
        match (i, r) {
            (5, Err(e)) => assert!(
                matches!(e.error, TaskError::WorkerDied { .. }),
                "item 5: {e:?}"
            ),
            (5, Ok(v)) => panic!("item 5 returned {v}"),
            (i, r) => assert_eq!(r.as_ref().ok(), Some(&i), "item {i}"),
        }
    }
    assert_eq!(runs.to_vec(), vec![1; 12], "every item runs exactly once");
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: HashSet<u32> = (0..6)
        .map(|i| pool.apply(pid_of_worker, i).unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        3,
        "6 tasks at 2 per child need 3 workers: {pids:?}"
    );
}

#[test]
fn dropping_a_pool_with_tasks_in_flight_leaves_no_worker() {
    let pool = Pool::new(2).unwrap();
    let pending = pool.apply_async(sleep_ms, 60_000).unwrap();
    let queued = pool.map_async(sleep_ms, vec![60_000; 4]).unwrap();
    let pids = pool.worker_pids();
    std::thread::sleep(Duration::from_millis(50));
    drop(pool);
    assert!(matches!(pending.get(), Err(TaskError::Terminated)));
    assert!(queued.get().is_err());
    for pid in pids {
        let gone = eventually(Duration::from_secs(10), || {
            matches!(ProcessIdentity::of_pid(pid), Ok(None))
        })
        .is_some();
        assert!(gone, "worker {pid} outlived its pool");
    }
}

#[test]
fn close_and_join_finish_submitted_work() {
    let mut pool = Pool::new(2).unwrap();
    let r = pool.map_async(sleep_ms, vec![10; 6]).unwrap();
    pool.close();
    assert!(
        pool.apply_async(square, 1).is_err(),
        "a closed pool refuses tasks"
    );
    pool.join();
    assert_eq!(r.get().unwrap().len(), 6);
}

#[test]
fn imap_is_lazy_and_handles_an_endless_iterator() {
    let pool = Pool::new(2).unwrap();
    let firsts: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(10)
        .map(Result::unwrap)
        .collect();
    assert_eq!(firsts, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0u64..20)
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, (0u64..20).map(|x| x * x).collect::<Vec<_>>());
    let chunked: Vec<u64> = pool
        .imap_chunksize(square, 0u64..25, 4)
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked.len(), 25);
}

#[test]
fn map_chunks_mut_works_in_place() {
    let pool = Pool::new(2).unwrap();
    let mut data = SharedSlice::from_slice(&(0..1000).map(f64::from).collect::<Vec<_>>()).unwrap();
    pool.map_chunks_mut(&mut data, 64, double_all).unwrap();
    assert!(data.iter().enumerate().all(|(i, x)| *x == 2.0 * i as f64));
}

#[test]
fn executor_futures_can_be_awaited() {
    let ex = Executor::new(2).unwrap();
    let fut = ex.submit(square, 11).unwrap();
    assert_eq!(block_on(fut).unwrap(), 121);
    let all: Result<Vec<u64>, _> = ex.map(square, [1, 2, 3]).collect();
    assert_eq!(all.unwrap(), [1, 4, 9]);
    let slow = ex.submit(sleep_ms, 20).unwrap();
    ex.shutdown(true, false);
    assert_eq!(slow.get().unwrap(), 20);
}

#[test]
fn a_fork_pool_is_refused_at_build_with_a_clear_error() {
    let r = Pool::builder()
        .processes(2)
        .start_method(ipc_core::StartMethod::Fork)
        .build();
    let err = r.expect_err("a pool with the Fork start method must not build");
    assert!(matches!(err, BuildError::ForkStartMethod), "{err:?}");
    assert!(err.to_string().contains("ForkServer"), "{err}");
}

fn return_at_once(_: ()) {}

#[test]
fn a_process_that_ended_at_once_can_still_be_watched() {
    use ipc_core::process::Supervisor;
    use std::sync::Arc;
    for method in [
        ipc_core::StartMethod::ForkServer,
        ipc_core::StartMethod::Spawn,
    ] {
        let p = Arc::new(
            ipc_core::Process::builder()
                .start_method(method)
                .target(return_at_once, ()),
        );
        p.start().unwrap();
        let pid = p.pid().unwrap();
        // Wait until the child has ended and, for the fork server, been reaped by the server: a
        // pidfd looked up by pid now would fail (or name a process that reused the pid).
        if method == ipc_core::StartMethod::ForkServer {
            assert!(
                eventually(Duration::from_secs(10), || matches!(
                    ProcessIdentity::of_pid(pid),
                    Ok(None)
                ))
                .is_some(),
                "the child did not end"
            );
        }
        let sup = Supervisor::new().unwrap();
        sup.watch(1, Arc::clone(&p)).unwrap();
        let exit = sup.next_exit(Duration::from_secs(10)).expect("an exit");
        assert_eq!((exit.id, exit.pid, exit.exit_code), (1, pid, Some(0)));
    }
}

#[test]
fn zero_processes_or_zero_tasks_per_child_is_an_error() {
    // Python: ValueError("Number of processes must be at least 1").
    assert!(matches!(
        Pool::new(0),
        Err(BuildError::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pool::builder().processes(1).max_tasks_per_child(0).build(),
        Err(BuildError::InvalidArgument { .. })
    ));
    assert!(matches!(
        Executor::new(0),
        Err(BuildError::InvalidArgument { .. })
    ));
}

#[test]
fn every_submission_after_terminate_is_refused_at_the_call() {
    let mut pool = Pool::new(1).unwrap();
    pool.terminate();
    assert!(matches!(
        pool.map_async(square, [1u64, 2]),
        Err(ipc_pool::SubmitError::Closed)
    ));
    assert!(matches!(
        pool.starmap_async(add, [(1, 2)]),
        Err(ipc_pool::SubmitError::Closed)
    ));
    assert!(matches!(
        pool.apply_async(square, 3),
        Err(ipc_pool::SubmitError::Closed)
    ));
    assert!(pool.map(square, [1u64]).is_err());
}

#[test]
fn a_pool_of_two_hundred_workers_maps_like_python() {
    // Python runs Pool(200); so must we (each worker holds an entry in the shared result
    // queue's participant table, which is sized for them).
    let pool = Pool::new(200).unwrap();
    assert_eq!(pool.worker_pids().len(), 200);
    let out = pool.map(square, 0..2000u64).unwrap();
    assert_eq!(out, (0..2000u64).map(square).collect::<Vec<_>>());
}

#[test]
#[ignore = "child role of a_big_pool_fits_a_default_descriptor_limit"]
fn role_big_pool_under_1024_descriptors() {
    if std::env::var("IPC_TEST_BIG_POOL").is_err() {
        return;
    }
    // The common default soft limit; the hard limit stays as it is.
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    if r.rlim_max < 4096 {
        println!("RESULT skipped");
        return;
    }
    r.rlim_cur = 1024;
    // SAFETY: lowering the soft limit has no memory effects.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    let pool = Pool::new(256).unwrap();
    let out = pool.map(square, 0..1000u64).unwrap();
    assert_eq!(out.len(), 1000);
    println!("RESULT ok");
}

#[test]
fn a_big_pool_fits_a_default_descriptor_limit() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "role_big_pool_under_1024_descriptors",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IPC_TEST_BIG_POOL", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("RESULT "), "{text}");
}

/// Holds its task far longer than any test waits; its argument is large enough to travel in a
/// spill segment of its own (the task queue's slots hold 512 bytes).
fn hold_big(s: String) -> usize {
    std::thread::sleep(Duration::from_secs(300));
    s.len()
}

/// Python's pool leaves nothing behind after `terminate()`; ours neither, whatever the order of
/// terminate, drop and a worker's death: the task queues' large arguments (spill segments)
/// still queued when the workers die all go.
#[test]
fn terminate_with_queued_big_tasks_leaves_no_spill_segments() {
    for how in ["terminate", "drop", "a worker killed, then terminate"] {
        let m = format!(
            "pool-spill-{}-{:x}-",
            std::process::id(),
            ipc_core::random_u128()
        );
        let spills = || spills_holding(m.as_bytes());
        let mut pool = Pool::new(2).unwrap();
        let pending: Vec<_> = (0..20)
            .map(|i| {
                pool.apply_async(hold_big, format!("{m}{i:02}{}", "a".repeat(2000)))
                    .unwrap()
            })
            .collect();
        // Every task is handed out at once (the credit is above 10 per worker); the two the
        // workers took have had their segments removed already.
        assert!(
            eventually(Duration::from_secs(60), || spills().len() == 18).is_some(),
            "{how}: {} spills",
            spills().len()
        );
        match how {
            "terminate" => pool.terminate(),
            "drop" => drop(pool),
            _ => {
                let victim = pool.worker_pids()[0];
                // SAFETY: kill(2) has no memory-safety preconditions.
                assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
                pool.terminate();
            }
        }
        drop(pending);
        assert!(
            eventually(Duration::from_secs(60), || spills().is_empty()).is_some(),
            "{how}: spill segments left in /dev/shm: {:?}",
            spills()
        );
    }
}

fn abort_worker(_: u32) -> u32 {
    std::process::abort()
}

#[test]
fn a_pool_whose_workers_keep_dying_gives_up_with_pool_broken() {
    let pool = Pool::new(1).unwrap();
    // Every task kills the worker that runs it, so no worker ever finishes one: after a few
    // replacements the pool gives up instead of respawning for ever.
    let doomed: Vec<_> = (0..20)
        .map(|i| pool.apply_async(abort_worker, i).unwrap())
        .collect();
    let mut died = 0;
    let mut broken = 0;
    for r in doomed {
        match r.get_timeout(Duration::from_secs(60)) {
            Err(GetTimeoutError::Failed(TaskError::WorkerDied { exit_code, .. })) => {
                assert_eq!(exit_code, Some(-libc::SIGABRT));
                died += 1;
            }
            Err(GetTimeoutError::Failed(TaskError::PoolBroken { reason })) => {
                assert!(reason.contains("keep dying"), "reason: {reason}");
                broken += 1;
            }
            Err(GetTimeoutError::Timeout(_)) => panic!("the pool hung respawning workers"),
            other => panic!(
                "expected WorkerDied or PoolBroken, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    assert!(died >= 1, "no task failed with the death of its worker");
    assert!(broken >= 1, "the pool never gave up ({died} deaths)");
    // A task submitted after the pool gave up fails at once, with the same reason.
    match pool.apply(square, 3) {
        Err(TaskError::PoolBroken { reason }) => {
            assert!(reason.contains("keep dying"), "{reason}")
        }
        other => panic!("expected PoolBroken, got {other:?}"),
    }
}
