//! What a test must not leave behind: shared-memory objects and processes.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::wait::wait_until_none_left;

/// The environment variable that tags every process of one test (set by
/// [`crate::RoleBuilder::tag`], inherited by whatever the child starts), so the test can tell
/// whether any of them outlived it.
pub const TAG: &str = "IPC_TEST_TAG";

/// A fresh name for one test (a tag, a job, a marker): `prefix-` and 48 random bits in hex.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{:012x}",
        ipc_core::random_u128() as u64 & 0xffff_ffff_ffff
    )
}

/// The names in `/dev/shm` that start with one of `prefixes`.
pub fn shm_names(prefixes: &[&str]) -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most `limit`) until no name of `shm_names(prefixes)` is missing from `before`;
/// panics with the new names otherwise (cleanups after a SIGKILL are asynchronous).
pub fn assert_no_new_shm(before: &BTreeSet<String>, prefixes: &[&str], limit: Duration) {
    wait_until_none_left(limit, "left in /dev/shm", || {
        shm_names(prefixes)
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect()
    });
}

/// `ipc-*` segments in `/dev/shm` changed since `since` that no process maps or holds open.
pub fn orphan_segments(since: SystemTime) -> Vec<String> {
    let mut fresh = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let recent = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if name.starts_with(ipc_core::NAME_PREFIX) && recent {
                fresh.push(name);
            }
        }
    }
    if fresh.is_empty() {
        return fresh;
    }
    let mut held = HashSet::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let p = e.path();
            if let Ok(maps) = std::fs::read_to_string(p.join("maps")) {
                for n in &fresh {
                    if maps.contains(n.as_str()) {
                        held.insert(n.clone());
                    }
                }
            }
            if let Ok(fds) = std::fs::read_dir(p.join("fd")) {
                for fd in fds.flatten() {
                    if let Ok(t) = std::fs::read_link(fd.path()) {
                        let t = t.to_string_lossy();
                        for n in &fresh {
                            if t.contains(n.as_str()) {
                                held.insert(n.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    fresh.retain(|n| !held.contains(n));
    fresh
}

/// Asserts that no shared-memory segment created since `since` is left behind by a dead
/// process (waiting at most 10 s for the cleanup trackers, which unlink asynchronously).
pub fn assert_no_orphan_segments(since: SystemTime) {
    wait_until_none_left(
        Duration::from_secs(10),
        "shared-memory segments left behind",
        || orphan_segments(since),
    );
}

/// The names in `/dev/shm` of spill segments (large serde messages of a queue) whose first
/// bytes hold `marker`: a test puts messages that start with a marker of its own and so finds
/// its own spills, whatever other tests or programs create meanwhile.
pub fn spills_holding(marker: &[u8]) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(ipc_core::NAME_PREFIX) {
                return None;
            }
            let mut head = vec![0u8; 4096];
            let n = std::fs::File::open(e.path()).ok()?.read(&mut head).ok()?;
            let head = &head[..n];
            let ours =
                head.starts_with(b"IPCQSPL1") && head.windows(marker.len()).any(|w| w == marker);
            ours.then_some(name)
        })
        .collect()
}

/// Waits (at most `limit`, a watchdog) until no spill segment holding `marker` is left in
/// `/dev/shm`; panics with the names left otherwise.
pub fn wait_until_no_spills(marker: &[u8], limit: Duration) {
    wait_until_none_left(limit, "spill segments left in /dev/shm", || {
        spills_holding(marker)
    });
}

/// Pids of live (not zombie) processes for which `matches(/proc/<pid>)` holds.
fn live_processes(mut matches: impl FnMut(&Path) -> bool) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let path = e.path();
        if !matches(&path) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if !matches!(state, Some("Z" | "X")) {
            found.push(pid);
        }
    }
    found
}

/// Pids of live processes whose environment holds `TAG=tag`.
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("{TAG}={tag}");
    live_processes(|proc| {
        std::fs::read(proc.join("environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
    })
}

/// Asserts that no process tagged `tag` outlives the test (waiting at most 10 s for exits in
/// progress).
pub fn assert_no_tagged_processes(tag: &str) {
    wait_until_none_left(
        Duration::from_secs(10),
        "processes of this test outlived it",
        || tagged_processes(tag),
    );
}

/// Pids of live processes whose executable is `bin`.
pub fn processes_running(bin: &Path) -> Vec<u32> {
    live_processes(|proc| std::fs::read_link(proc.join("exe")).is_ok_and(|exe| exe == bin))
}
