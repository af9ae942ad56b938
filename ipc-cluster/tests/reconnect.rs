//! A connection between two nodes cut while both live: zenoh opens a new transport, and what was
//! in flight on the old one is sent again, so a pipe delivers every message once, in order, a
//! pool's map finishes with every result, and a queue's remote puts and gets are each done once. The cut is made by a TCP relay between the nodes that
//! closes the connections it carries (as a network that drops a connection does).
#![cfg(feature = "zenoh")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::*;
use ipc_cluster::{ClusterConnection, ClusterPool, ClusterQueue, Node};
use ipc_core::atomic::{AtomicU64, Ordering};
use ipc_testkit::{Watchdog, assert_no_tagged_processes, eventually, unique};

/// A TCP relay from a port of its own to `target`, which can cut every connection it carries.
struct Relay {
    port: u16,
    carried: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let carried: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let c = Arc::clone(&carried);
        // Ends with the test binary (it blocks in `accept`).
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                // As zenoh's own sockets: no Nagle delay on small messages.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let mut list = c.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Self { port, carried }
    }

    fn endpoint(&self) -> String {
        format!("tcp/127.0.0.1:{}", self.port)
    }

    /// Closes every connection carried now (both sides see the connection reset or closed).
    fn cut(&self) {
        for s in self.carried.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until either closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// A pipe between two nodes joined through a relay: `a` on the listening node, `b` on the one
/// that connects through the relay.
struct RelayedPipe {
    relay: Relay,
    a: ClusterConnection,
    b: ClusterConnection,
    _nodes: (Node, Node),
}

fn relayed_pipe() -> RelayedPipe {
    let (a_node, endpoint) = master_node();
    let relay = Relay::start(port_of(&endpoint));
    let b_node = Node::builder().connect(relay.endpoint()).open().unwrap();
    let [a, b] = pipe_between(&a_node, &b_node, &unique("p"), Duration::from_secs(20));
    RelayedPipe {
        relay,
        a: a.unwrap(),
        b: b.unwrap(),
        _nodes: (a_node, b_node),
    }
}

fn square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(200));
    x * x
}

#[test]
#[ignore = "a worker host, started by the tests of this file"]
fn host_role() {
    common::host_role();
}

#[test]
fn a_pipe_cut_mid_stream_delivers_every_message_once_in_order() {
    let _w = Watchdog::arm(Duration::from_secs(120), "pipe across a cut");
    // The nodes bound first, so that they outlive the ends (bindings drop in reverse order).
    let RelayedPipe {
        _nodes,
        relay,
        a,
        b,
    } = relayed_pipe();
    let n = 3000u32;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..n {
                a.send(&i).unwrap();
                if i == n / 3 {
                    relay.cut();
                }
            }
        });
        s.spawn(|| {
            for i in 0..n {
                b.send(&(i, vec![i as u8; 300])).unwrap();
                if i == n / 2 {
                    relay.cut();
                }
            }
        });
        // Every message arrives, once and in order, across both cuts.
        for i in 0..n {
            let got = b.recv_timeout::<u32>(Duration::from_secs(20));
            assert_eq!(got.unwrap_or_else(|e| panic!("message {i}: {e}")), i);
        }
        for i in 0..n {
            let got = a.recv_timeout::<(u32, Vec<u8>)>(Duration::from_secs(20));
            let (j, v) = got.unwrap_or_else(|e| panic!("message {i} back: {e}"));
            assert_eq!((j, v.len(), v[0]), (i, 300, i as u8));
        }
    });
    assert!(a.peer_alive() && b.peer_alive());
}

#[test]
fn a_pipe_end_dropped_as_its_connection_is_cut_still_delivers_what_it_sent() {
    let _w = Watchdog::arm(Duration::from_secs(120), "dropped end across a cut");
    // The nodes bound first, so that they outlive the ends (bindings drop in reverse order).
    let RelayedPipe {
        _nodes,
        relay,
        a,
        b,
    } = relayed_pipe();
    // The connection fails, the end sends and is dropped at once: what it sent went to the
    // failing transport, and only the dropped end can send it again.
    relay.cut();
    for i in 0..100u32 {
        a.send(&i).unwrap();
    }
    drop(a);
    for i in 0..100u32 {
        let got = b.recv_timeout::<u32>(Duration::from_secs(20));
        assert_eq!(got.unwrap_or_else(|e| panic!("message {i}: {e}")), i);
    }
    assert!(matches!(
        b.recv_timeout::<u32>(Duration::from_secs(20)),
        Err(ipc_cluster::PipeRecvError::Gone)
    ));
}

#[test]
fn a_map_whose_host_connection_is_cut_finishes_with_every_result() {
    let _w = Watchdog::arm(Duration::from_secs(120), "map across a cut");
    let tag = unique("tag");
    let job = unique("job");
    let (node, endpoint) = master_node();
    let relay = Relay::start(port_of(&endpoint));
    let mut host = spawn_host(&relay.endpoint(), &job, "behind-relay", 2, &tag);
    let mut pool = ClusterPool::builder()
        .job(&job)
        .min_hosts(1)
        .build(&node)
        .unwrap();
    let n = 4000u64;
    let got = std::thread::scope(|s| {
        let map = s.spawn(|| pool.map(square, 0..n));
        // Cut twice while chunks and results are on the way.
        for done in [n / 4, n / 2] {
            let reached = eventually(Duration::from_secs(60), || {
                pool.hosts().iter().any(|h| h.items_done >= done)
            });
            assert!(reached.is_some(), "the host never did {done} tasks");
            relay.cut();
        }
        map.join().unwrap()
    });
    let got = got.unwrap_or_else(|e| panic!("{e:?}; {}", host.report(Duration::from_secs(2))));
    assert_eq!(got, (0..n).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(pool.hosts().len(), 1, "the host stayed the same host");
    pool.join();
    assert!(host.wait(Duration::from_secs(30)).success());
    assert_no_tagged_processes(&tag);
}

#[test]
fn remote_queue_calls_cut_mid_query_are_each_done_once() {
    let _w = Watchdog::arm(Duration::from_secs(120), "queue across a cut");
    let (owner_node, endpoint) = master_node();
    let relay = Relay::start(port_of(&endpoint));
    let name = unique("q");
    let owner = ClusterQueue::<u64>::create(&owner_node, &name, 8).unwrap();
    let other = Node::builder().connect(relay.endpoint()).open().unwrap();
    let remote = ClusterQueue::<u64>::open(&other, &name, Duration::from_secs(20)).unwrap();
    let n = 1500u64;
    // Remote puts, owner gets; then (once the owner has every item: both take from the one
    // queue) owner puts, remote gets; the relay cuts the connection every 300 calls, while
    // calls are in flight.
    let progress = AtomicU64::new(0);
    let halfway = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..2 * n {
                if i == n {
                    halfway.wait();
                }
                if i < n {
                    remote.put(i).unwrap();
                } else {
                    let got = remote.get_timeout(Duration::from_secs(20));
                    assert_eq!(got.unwrap_or_else(|e| panic!("get {i}: {e}")), i);
                }
                // ORDERING: a counter only read to time the cuts; it guards no other memory.
                progress.store(i, Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            for i in 0..2 * n {
                if i == n {
                    halfway.wait();
                }
                if i < n {
                    let got = owner.get_timeout(Duration::from_secs(20));
                    assert_eq!(got.unwrap_or_else(|e| panic!("owner get {i}: {e}")), i);
                } else {
                    owner.put_timeout(i, Duration::from_secs(20)).unwrap();
                }
            }
        });
        for k in 1..10 {
            let at = k * 2 * n / 10;
            let reached = eventually(Duration::from_secs(30), || {
                // ORDERING: see the store.
                progress.load(Ordering::Relaxed) >= at
            });
            assert!(reached.is_some(), "no progress to {at}");
            relay.cut();
        }
    });
    assert!(
        owner.get_timeout(Duration::from_millis(300)).is_err(),
        "a put was done twice"
    );
}
