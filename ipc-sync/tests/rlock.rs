//! `ReentrantLock` (`RLock`): re-entry, exclusion of other threads and processes, owner death,
//! and release by a non-owner.

mod common;

use std::time::Duration;

use common::poke;
use ipc_sync::{Event, LockTimeoutError, NotOwner, RLock, TryLockError};
use ipc_testkit::{WATCHDOG, encode, from_env, spawn_with_env, watchdog};

#[test]
fn reenters_on_the_same_thread_and_excludes_others() {
    let rl = RLock::new().unwrap();
    let a = rl.lock().unwrap();
    let b = rl.try_lock().unwrap();
    let c = rl.lock_timeout(Duration::from_millis(1)).unwrap();
    assert_eq!(rl.depth(), 3);
    let h = rl.handle();
    let other = std::thread::spawn(move || {
        let rl = RLock::open(&h).unwrap();
        matches!(rl.try_lock(), Err(TryLockError::WouldBlock))
            && matches!(
                rl.lock_timeout(Duration::from_millis(30)),
                Err(LockTimeoutError::TimedOut)
            )
    });
    assert!(other.join().unwrap());
    drop(c);
    drop(b);
    assert_eq!(rl.depth(), 1);
    a.unlock().unwrap();
    assert!(!rl.is_locked());
}

#[test]
fn release_by_non_owner_is_an_error() {
    let rl = RLock::new().unwrap();
    let g = rl.lock().unwrap();
    // A peer overwrites the owning thread id.
    poke(&rl.handle(), 16, &u32::MAX.to_ne_bytes());
    assert_eq!(g.unlock(), Err(NotOwner));
    // Nothing was released.
    assert!(rl.is_locked());
}

/// Child: takes the lock twice, then waits to be killed.
#[test]
#[ignore = "child role"]
fn child_hold_twice() {
    let rl: RLock = from_env("RLOCK");
    let held: Event = from_env("HELD");
    let _a = rl.lock().unwrap();
    let _b = rl.lock().unwrap();
    held.set();
    std::thread::sleep(WATCHDOG);
}

#[test]
fn killed_owner_hands_over_with_owner_died() {
    let rl = RLock::new().unwrap();
    let held = Event::new().unwrap();
    let mut child = spawn_with_env(
        "child_hold_twice",
        &[("RLOCK", encode(&rl)), ("HELD", encode(&held))],
    );
    assert!(held.wait_timeout(WATCHDOG));
    assert!(matches!(rl.try_lock(), Err(TryLockError::WouldBlock)));
    let h = rl.handle();
    let waiter = std::thread::spawn(move || {
        let rl = RLock::open(&h).unwrap();
        let g = match rl.lock_timeout(WATCHDOG) {
            Err(LockTimeoutError::OwnerDied(died)) => died.into_inner(),
            _ => return None,
        };
        g.make_consistent();
        let depth = rl.depth();
        drop(g);
        Some((depth, rl.is_locked()))
    });
    std::thread::sleep(Duration::from_millis(30));
    child.kill();
    // The new owner starts at depth 1, and one release frees the lock.
    assert_eq!(
        watchdog(WATCHDOG, move || waiter.join().unwrap()),
        Some((1, false))
    );
}
