//! Faults, with real processes and real SIGKILL on 127.0.0.1: a host killed mid-map, the master
//! killed, a host of another build, a pool with no host.
#![cfg(feature = "zenoh")]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::*;
use ipc_cluster::{ClusterPool, DeathCause, Node, TaskError};
use ipc_testkit::{
    Role, Watchdog, assert_no_orphan_segments, assert_no_tagged_processes, eventually, unique,
};

fn slow_double(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(30));
    2 * x
}

#[test]
#[ignore = "a worker host, started by the tests of this file"]
fn host_role() {
    common::host_role();
}

#[test]
fn a_host_sigkilled_mid_map_fails_one_chunk_and_the_map_finishes() {
    let _w = Watchdog::arm(Duration::from_secs(120), "host sigkilled mid-map");
    let since = SystemTime::now();
    let tag = unique("tag");
    let job = unique("job");
    let (node, endpoint) = master_node();
    let mut victim = spawn_host(&endpoint, &job, "victim", 1, &tag);
    let mut survivor = spawn_host(&endpoint, &job, "survivor", 1, &tag);
    let mut pool = ClusterPool::builder()
        .job(&job)
        .min_hosts(2)
        .build(&node)
        .unwrap();
    let n = 80u64;
    let results: Vec<Result<u64, ipc_cluster::MapError>> = std::thread::scope(|s| {
        let map = s.spawn(|| pool.imap(slow_double, 0..n).collect::<Vec<_>>());
        // Kill the victim once it has done some of the work (so it is mid-map).
        let started = eventually(Duration::from_secs(60), || {
            pool.hosts()
                .iter()
                .any(|h| h.name == "victim" && h.items_done >= 3)
        });
        assert!(started.is_some(), "the victim never ran a task");
        victim.kill();
        map.join().unwrap()
    });
    assert_eq!(results.len() as u64, n);
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    match &failed[0].error {
        TaskError::WorkerDied {
            host,
            pid,
            cause: DeathCause::HostLost,
        } => {
            assert_eq!(host, "victim");
            assert_eq!(*pid, victim.pid());
        }
        other => panic!("{other:?}"),
    }
    for (i, r) in results.iter().enumerate() {
        if let Ok(v) = r {
            assert_eq!(*v, 2 * i as u64);
        }
    }
    let stats = pool.hosts();
    let v = stats.iter().find(|h| h.name == "victim").unwrap();
    let s = stats.iter().find(|h| h.name == "survivor").unwrap();
    assert!(!v.alive && s.alive);
    assert_eq!(v.chunks_failed, 1);
    assert_eq!(v.items_done + s.items_done + 1, n);
    pool.close();
    pool.join();
    assert!(survivor.wait(Duration::from_secs(20)).success());
    drop(pool);
    drop(node);
    assert_no_tagged_processes(&tag);
    assert_no_orphan_segments(since);
}

#[test]
#[ignore = "a master, started by the tests of this file"]
fn master_role() {
    let Some(spec) = child_spec() else { return };
    let node = Node::builder()
        .listen(spec_get(&spec, "listen").unwrap())
        .open()
        .unwrap();
    let pool = ClusterPool::builder()
        .job(spec_get(&spec, "job").unwrap())
        .min_hosts(2)
        .build(&node)
        .unwrap();
    let mut it = pool.imap(slow_double, 0..1_000_000u64);
    for _ in 0..4 {
        it.next().unwrap().unwrap();
    }
    println!("RUNNING");
    for r in it {
        r.unwrap();
    }
}

#[test]
fn the_master_sigkilled_makes_every_host_stop_and_exit() {
    let _w = Watchdog::arm(Duration::from_secs(120), "master sigkilled");
    let since = SystemTime::now();
    let tag = unique("tag");
    let job = unique("job");
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut master = spawn_role("master_role", &format!("listen={endpoint};job={job}"), &tag);
    let mut hosts: Vec<Role> = (0..2)
        .map(|i| spawn_host(&endpoint, &job, &format!("h{i}"), 2, &tag))
        .collect();
    master.expect_line("RUNNING", Duration::from_secs(60));
    master.kill();
    for h in &mut hosts {
        // Bounded: the hosts see the master's connection close at once; the bound is generous
        // for a loaded machine, and no timing is asserted.
        let status = h.wait(Duration::from_secs(30));
        assert!(status.success(), "{status}");
        assert_eq!(
            h.expect_line("SERVE-END", Duration::from_secs(5)),
            "MasterGone"
        );
    }
    assert_no_tagged_processes(&tag);
    assert_no_orphan_segments(since);
}

/// A copy of this test binary whose GNU build id differs in one bit (same code, another build
/// as far as the handshake can tell), or, for an executable without the note, one more byte.
fn another_build() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let copy = exe.with_file_name(format!("{}-other-build", unique("cluster-test")));
    std::fs::copy(&exe, &copy).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&copy)
        .unwrap();
    match build_id_note(&mut f) {
        Some(at) => {
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(at)).unwrap();
            f.read_exact(&mut b).unwrap();
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[b[0] ^ 1]).unwrap();
        }
        None => {
            f.seek(SeekFrom::End(0)).unwrap();
            f.write_all(b"\0").unwrap();
        }
    }
    drop(f);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// The file offset of the GNU build id's first byte (64-bit little-endian ELF).
fn build_id_note(f: &mut std::fs::File) -> Option<u64> {
    let mut bytes = Vec::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_end(&mut bytes).ok()?;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (
        u64_at(0x20) as usize,
        u16::from_le_bytes([bytes[0x36], bytes[0x37]]) as usize,
        u16::from_le_bytes([bytes[0x38], bytes[0x39]]) as usize,
    );
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if u32_at(p) != 4 {
            continue;
        }
        let (off, size) = (u64_at(p + 8) as usize, u64_at(p + 32) as usize);
        let mut at = off;
        while at + 12 <= off + size {
            let (namesz, descsz, kind) =
                (u32_at(at) as usize, u32_at(at + 4) as usize, u32_at(at + 8));
            let desc = at + 12 + namesz.next_multiple_of(4);
            if kind == 3 && &bytes[at + 12..at + 16] == b"GNU\0" {
                return Some(desc as u64);
            }
            at = desc + descsz.next_multiple_of(4);
        }
    }
    None
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn a_host_of_another_build_is_refused_at_the_handshake() {
    let _w = Watchdog::arm(Duration::from_secs(120), "another build");
    let tag = unique("tag");
    let job = unique("job");
    let (node, endpoint) = master_node();
    let other = another_build();
    assert_ne!(
        ipc_cluster::BuildId::of_file(&other).unwrap(),
        ipc_cluster::BuildId::current().unwrap()
    );
    let mut stranger = spawn_role_of(
        &other,
        "host_role",
        &format!("connect={endpoint};job={job};name=stranger;processes=1"),
        &tag,
    );
    let mut pool = ClusterPool::builder().job(&job).build(&node).unwrap();
    let status = stranger.wait(Duration::from_secs(60));
    let _ = std::fs::remove_file(&other);
    assert_eq!(status.code(), Some(3));
    let err = stranger.expect_line("SERVE-ERROR", Duration::from_secs(5));
    assert!(err.contains("another build"), "{err}");
    assert!(pool.hosts().is_empty());
    // The same pool takes a host of its own build.
    let mut friend = spawn_host(&endpoint, &job, "friend", 1, &tag);
    pool.wait_for_hosts(1, Duration::from_secs(60)).unwrap();
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
    assert_eq!(pool.hosts().len(), 1);
    pool.close();
    pool.join();
    assert!(friend.wait(Duration::from_secs(20)).success());
    drop(pool);
    drop(node);
    assert_no_tagged_processes(&tag);
}

#[test]
fn without_hosts_work_fails_after_the_timeout() {
    let _w = Watchdog::arm(Duration::from_secs(60), "no hosts");
    let (node, _) = master_node();
    let pool = ClusterPool::builder()
        .job(unique("job"))
        .no_host_timeout(Duration::from_millis(200))
        .build(&node)
        .unwrap();
    match pool.apply(square, 3) {
        Err(TaskError::NoHosts { .. }) => {}
        other => panic!("{other:?}"),
    }
    match pool.map(square, 0..10u64) {
        Err(e) => assert!(matches!(e.error, TaskError::NoHosts { .. })),
        other => panic!("{other:?}"),
    }
}
