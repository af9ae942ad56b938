//! `ClusterPool` and `ClusterExecutor` over worker hosts that are real processes on 127.0.0.1.
#![cfg(feature = "zenoh")]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use ipc_cluster::{ClusterExecutor, ClusterPool, TaskError};
use ipc_testkit::{
    Role, Watchdog, assert_no_orphan_segments, assert_no_tagged_processes, block_on,
    tagged_processes, unique,
};

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: i32, b: i32) -> i32 {
    a + b
}

fn host_pid(_: u8) -> u32 {
    // The pool worker's parent's parent is the host's fork server's parent... the worker
    // reports its own pid; the test only needs it to differ from its own.
    std::process::id()
}

fn panics_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not allowed");
    x
}

#[test]
#[ignore = "a worker host, started by the tests of this file"]
fn host_role() {
    common::host_role();
}

#[test]
fn a_pool_over_three_hosts() {
    let _w = Watchdog::arm(Duration::from_secs(120), "a_pool_over_three_hosts");
    let since = SystemTime::now();
    let tag = unique("tag");
    let job = unique("job");
    let (node, endpoint) = master_node();
    let mut hosts: Vec<Role> = (0..3)
        .map(|i| spawn_host(&endpoint, &job, &format!("h{i}"), 2, &tag))
        .collect();
    let mut pool = ClusterPool::builder()
        .job(&job)
        .min_hosts(3)
        .build(&node)
        .expect("three hosts join");
    assert_eq!(pool.processes(), 6);

    let xs: Vec<u64> = (0..1000).collect();
    let want: Vec<u64> = xs.iter().map(|&x| x * x).collect();
    assert_eq!(pool.map(square, xs.clone()).unwrap(), want);
    assert_eq!(pool.map_chunksize(square, xs.clone(), 1).unwrap(), want);
    assert_eq!(
        pool.starmap(add, [(1, 2), (3, 4), (5, 6)]).unwrap(),
        [3, 7, 11]
    );
    let lazy: Vec<u64> = pool.imap(square, 0..200u64).map(Result::unwrap).collect();
    assert_eq!(lazy, want[..200]);
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..200u64)
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, want[..200]);
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    let fut = pool.apply_async(square, 9).unwrap();
    assert_eq!(block_on(fut).unwrap(), 81);
    assert_ne!(pool.apply(host_pid, 0).unwrap(), std::process::id());

    // A panic fails its own chunk, names its host, and the worker lives on.
    match pool.map_chunksize(panics_on_three, 0..6u32, 1) {
        Err(e) => {
            assert_eq!(e.index, 3);
            match e.error {
                TaskError::Panicked { host, message, .. } => {
                    assert!(host.starts_with('h'), "{host}");
                    assert!(message.contains("three is not allowed"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        Ok(v) => panic!("expected a failure, got {v:?}"),
    }
    let stats = pool.hosts();
    assert_eq!(stats.len(), 3);
    assert!(stats.iter().all(|h| h.alive && h.processes == 2));
    let done: u64 = stats.iter().map(|h| h.items_done).sum();
    assert!(done >= 2 * 1000 + 3 + 400 + 3, "{stats:?}");

    // The check below sees the hosts and their pools' worker processes.
    assert!(tagged_processes(&tag).len() >= 3 + 6);
    pool.close();
    pool.join();
    for h in &mut hosts {
        assert!(h.wait(Duration::from_secs(20)).success());
    }
    drop(pool);
    drop(node);
    assert_no_tagged_processes(&tag);
    assert_no_orphan_segments(since);
}

#[test]
fn an_executor_over_a_host() {
    let _w = Watchdog::arm(Duration::from_secs(60), "an_executor_over_a_host");
    let tag = unique("tag");
    let job = unique("job");
    let (node, endpoint) = master_node();
    let mut host = spawn_host(&endpoint, &job, "solo", 2, &tag);
    let ex = ClusterExecutor::from_pool(
        ClusterPool::builder()
            .job(&job)
            .min_hosts(1)
            .build(&node)
            .unwrap(),
    );
    let futs: Vec<_> = (0..20u64).map(|i| ex.submit(square, i).unwrap()).collect();
    let got: Vec<u64> = futs.into_iter().map(|f| block_on(f).unwrap()).collect();
    assert_eq!(got, (0..20u64).map(square).collect::<Vec<_>>());
    let all: Vec<u64> = ex.map(square, 0..50u64).map(Result::unwrap).collect();
    assert_eq!(all.len(), 50);
    ex.shutdown(true, false);
    assert!(host.wait(Duration::from_secs(20)).success());
    assert_eq!(
        host.expect_line("SERVE-END", Duration::from_secs(5)),
        "Shutdown"
    );
    drop(node);
    assert_no_tagged_processes(&tag);
}

fn reversed(mut v: Vec<u8>) -> Vec<u8> {
    v.reverse();
    v
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + len) as u8).collect()
}

#[test]
fn messages_from_8_bytes_to_16_mib() {
    let _w = Watchdog::arm(Duration::from_secs(180), "messages_from_8_bytes_to_16_mib");
    let since = SystemTime::now();
    let tag = unique("tag");
    let job = unique("job");
    let (node, endpoint) = master_node();
    let mut host = spawn_host(&endpoint, &job, "big", 2, &tag);
    let mut pool = ClusterPool::builder()
        .job(&job)
        .min_hosts(1)
        .build(&node)
        .unwrap();
    for len in [8, 1 << 10, 64 << 10, 1 << 20, 16 << 20] {
        let v = pattern(len);
        let mut want = v.clone();
        want.reverse();
        assert!(pool.apply(reversed, v).unwrap() == want, "{len} bytes");
    }
    // Several large items in flight at once, in chunks.
    let items: Vec<Vec<u8>> = (0..8).map(|i| pattern((1 << 20) + i)).collect();
    let got = pool.map_chunksize(reversed, items.clone(), 2).unwrap();
    for (g, mut w) in got.into_iter().zip(items) {
        w.reverse();
        assert!(g == w);
    }
    pool.close();
    pool.join();
    assert!(host.wait(Duration::from_secs(30)).success());
    drop(pool);
    drop(node);
    assert_no_tagged_processes(&tag);
    assert_no_orphan_segments(since);
}
