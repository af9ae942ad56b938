//! `cluster_pipe`: a connection between two nodes; `Gone` after the other end is SIGKILLed.
#![cfg(feature = "zenoh")]

mod common;

use std::time::Duration;

use common::*;
use ipc_cluster::{Node, PipeEnd, PipeRecvError, PipeSendError, cluster_pipe};
use ipc_testkit::{Watchdog, assert_no_tagged_processes, unique};

#[test]
fn two_ends_exchange_messages_in_order_both_ways() {
    let _w = Watchdog::arm(Duration::from_secs(60), "pipe both ways");
    let (a_node, endpoint) = master_node();
    let b_node = Node::builder().connect(endpoint).open().unwrap();
    let name = unique("p");
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| cluster_pipe(&b_node, &name, PipeEnd::Second, Duration::from_secs(20)));
        let a = cluster_pipe(&a_node, &name, PipeEnd::First, Duration::from_secs(20));
        (a.unwrap(), b.join().unwrap().unwrap())
    });
    for i in 0..1000u32 {
        a.send(&i).unwrap();
    }
    for i in 0..1000u32 {
        assert_eq!(b.recv::<u32>().unwrap(), i);
    }
    for len in [8usize, 1 << 10, 1 << 20, 4 << 20] {
        let v: Vec<u8> = (0..len).map(|k| (k * 13) as u8).collect();
        b.send(&v).unwrap();
        assert!(a.recv::<Vec<u8>>().unwrap() == v, "{len} bytes");
    }
    assert!(matches!(
        a.recv_timeout::<u32>(Duration::from_millis(50)),
        Err(PipeRecvError::Timeout)
    ));
    assert!(a.peer_alive() && b.peer_alive());
    // A normal close: what was sent arrives, then `Gone`.
    b.send(&"last").unwrap();
    drop(b);
    assert_eq!(a.recv::<String>().unwrap(), "last");
    assert!(matches!(a.recv::<String>(), Err(PipeRecvError::Gone)));
    assert!(matches!(a.send(&1), Err(PipeSendError::Gone)));
}

#[test]
#[ignore = "one end of a pipe, started by the tests of this file"]
fn end_role() {
    let Some(spec) = child_spec() else { return };
    let node = Node::builder()
        .connect(spec_get(&spec, "connect").unwrap())
        .open()
        .unwrap();
    let end = cluster_pipe(
        &node,
        &spec_get(&spec, "name").unwrap(),
        PipeEnd::Second,
        Duration::from_secs(20),
    )
    .unwrap();
    for i in 0..3u64 {
        end.send(&i).unwrap();
    }
    println!("SENT");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_killed_end_gives_gone_after_what_arrived() {
    let _w = Watchdog::arm(Duration::from_secs(60), "killed pipe end");
    let tag = unique("tag");
    let name = unique("p");
    let (node, endpoint) = master_node();
    let mut child = spawn_role("end_role", &format!("connect={endpoint};name={name}"), &tag);
    let a = cluster_pipe(&node, &name, PipeEnd::First, Duration::from_secs(30)).unwrap();
    child.expect_line("SENT", Duration::from_secs(30));
    child.kill();
    // A `send` that returned has handed the message to zenoh, not yet to the network: a
    // SIGKILL may lose what the killed process had not written out. What arrived comes out
    // whole and in order, then `Gone`.
    let mut got = Vec::new();
    loop {
        match a.recv::<u64>() {
            Ok(v) => got.push(v),
            Err(PipeRecvError::Gone) => break,
            Err(e) => panic!("expected the messages, then Gone: {e}"),
        }
    }
    assert!(
        got.len() <= 3 && got.iter().copied().eq(0..got.len() as u64),
        "{got:?}"
    );
    assert!(matches!(a.recv::<u64>(), Err(PipeRecvError::Gone)));
    assert!(matches!(a.send(&7u64), Err(PipeSendError::Gone)));
    assert_no_tagged_processes(&tag);
}
