//! `ClusterQueue`: an owner's queue put to and got from other nodes; `Gone` when the owner is
//! SIGKILLed.
#![cfg(feature = "zenoh")]

mod common;

use std::time::Duration;

use common::*;
use ipc_cluster::{ClusterQueue, Node, QueueGetError, QueuePutError};
use ipc_testkit::{Watchdog, assert_no_tagged_processes, unique};

fn item(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k + i) as u8).collect()
}

#[test]
fn the_owner_and_a_remote_node_share_the_queue() {
    let _w = Watchdog::arm(Duration::from_secs(60), "owner and remote");
    let (owner_node, endpoint) = master_node();
    let name = unique("q");
    let owner = ClusterQueue::<Vec<u8>>::create(&owner_node, &name, 64).unwrap();
    assert!(owner.is_owner() && owner.local_handle().is_some());
    let other = Node::builder().connect(endpoint).open().unwrap();
    let remote = ClusterQueue::<Vec<u8>>::open(&other, &name, Duration::from_secs(20)).unwrap();
    assert!(!remote.is_owner());
    for i in 0..20 {
        remote.put(item(i, 8)).unwrap();
    }
    for i in 0..20 {
        assert_eq!(owner.get().unwrap(), item(i, 8));
    }
    owner.put(item(7, 1 << 20)).unwrap();
    assert!(remote.get().unwrap() == item(7, 1 << 20));
    assert!(matches!(
        remote.get_timeout(Duration::from_millis(50)),
        Err(QueueGetError::Timeout)
    ));
    // A get waiting remotely is served by a later put.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| remote.get_timeout(Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(50));
        owner.put(item(9, 8)).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), item(9, 8));
    });
    let local = ipc_queue::Queue::<Vec<u8>, ipc_queue::Serde>::open(&owner.local_handle().unwrap());
    let mut local = local.unwrap();
    remote.put(item(3, 100)).unwrap();
    assert_eq!(local.get().unwrap(), item(3, 100));
    assert!(matches!(
        ClusterQueue::<u8>::open(&other, "no-such-queue", Duration::from_millis(100)),
        Err(ipc_cluster::QueueError::NoOwner { .. })
    ));
}

#[test]
#[ignore = "a queue owner, started by the tests of this file"]
fn owner_role() {
    let Some(spec) = child_spec() else { return };
    let node = Node::builder()
        .listen(spec_get(&spec, "listen").unwrap())
        .open()
        .unwrap();
    let _q = ClusterQueue::<u64>::create(&node, &spec_get(&spec, "name").unwrap(), 16).unwrap();
    println!("OWNER-READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_killed_owner_gives_gone() {
    let _w = Watchdog::arm(Duration::from_secs(60), "killed owner");
    let tag = unique("tag");
    let name = unique("q");
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut owner = spawn_role(
        "owner_role",
        &format!("listen={endpoint};name={name}"),
        &tag,
    );
    owner.expect_line("OWNER-READY", Duration::from_secs(30));
    let node = Node::builder().connect(endpoint).open().unwrap();
    let q = ClusterQueue::<u64>::open(&node, &name, Duration::from_secs(20)).unwrap();
    for i in 0..16 {
        q.put(i).unwrap();
    }
    // Full: a put waits (at the owner, in slices).
    assert!(matches!(
        q.put_timeout(99, Duration::from_millis(50)),
        Err(QueuePutError::Timeout(99))
    ));
    for i in 0..16 {
        assert_eq!(q.get().unwrap(), i);
    }
    std::thread::scope(|s| {
        // Blocked in `get` on an empty queue, with no timeout, when the owner dies.
        let waiter = s.spawn(|| q.get());
        std::thread::sleep(Duration::from_millis(100));
        owner.kill();
        assert!(matches!(waiter.join().unwrap(), Err(QueueGetError::Gone)));
    });
    assert!(matches!(q.put(5), Err(QueuePutError::Gone(5))));
    assert!(matches!(q.get(), Err(QueueGetError::Gone)));
    assert_no_tagged_processes(&tag);
}
