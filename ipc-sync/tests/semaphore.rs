//! `Semaphore` and `BoundedSemaphore` across processes, and what a dead holder's permit means.

use std::time::Duration;

use ipc_sync::{BoundedSemaphore, Event, ReleaseError, Semaphore};
use ipc_testkit::{WATCHDOG, encode, from_env, spawn_with_env, watchdog};

#[test]
fn counts_and_bounds() {
    let s = Semaphore::new(0).unwrap();
    assert!(!s.try_acquire());
    assert!(!s.acquire_timeout(Duration::from_millis(20)));
    s.release_n(3).unwrap();
    assert_eq!(s.value(), 3);
    assert!(s.try_acquire());
    assert_eq!(s.bound(), None);
    assert_eq!(s.release_n(u32::MAX - 1), Err(ReleaseError::Overflow));

    let b = BoundedSemaphore::new(2).unwrap();
    assert_eq!(b.release(), Err(ReleaseError::PastBound { bound: 2 }));
    b.acquire();
    b.acquire();
    assert!(!b.try_acquire());
    b.release().unwrap();
    b.release().unwrap();
    assert_eq!(b.release(), Err(ReleaseError::PastBound { bound: 2 }));
    assert!(BoundedSemaphore::open(&s.handle()).is_err());
    assert!(BoundedSemaphore::open(&b.handle()).is_ok());
    assert!(BoundedSemaphore::new(0).is_err());
}

/// Child: blocks in `acquire` until the parent releases.
#[test]
#[ignore = "child role"]
fn child_acquire() {
    let s: Semaphore = from_env("SEM");
    let ready: Event = from_env("READY");
    ready.set();
    assert!(s.acquire_timeout(WATCHDOG));
}

#[test]
fn release_wakes_a_blocked_process() {
    let s = Semaphore::new(0).unwrap();
    let ready = Event::new().unwrap();
    let child = spawn_with_env(
        "child_acquire",
        &[("SEM", encode(&s)), ("READY", encode(&ready))],
    );
    assert!(ready.wait_timeout(WATCHDOG));
    std::thread::sleep(Duration::from_millis(30));
    s.release().unwrap();
    child.join();
    assert_eq!(s.value(), 0);
}

/// Child: takes a permit and waits to be killed holding it.
#[test]
#[ignore = "child role"]
fn child_take_permit() {
    let s: Semaphore = from_env("SEM");
    let held: Event = from_env("HELD");
    assert!(s.acquire_timeout(WATCHDOG));
    held.set();
    std::thread::sleep(WATCHDOG);
}

#[test]
fn a_dead_holders_permit_is_lost_until_released_by_someone() {
    // Permits are not owned (as in Python and POSIX): the permit leaves with the dead process.
    let s = Semaphore::new(1).unwrap();
    let held = Event::new().unwrap();
    let mut child = spawn_with_env(
        "child_take_permit",
        &[("SEM", encode(&s)), ("HELD", encode(&held))],
    );
    assert!(held.wait_timeout(WATCHDOG));
    child.kill();
    assert_eq!(s.value(), 0);
    // A waiter with a timeout does not hang on the dead holder.
    let h = s.handle();
    let got = watchdog(WATCHDOG, move || {
        Semaphore::open(&h)
            .unwrap()
            .acquire_timeout(Duration::from_millis(100))
    });
    assert!(!got);
    // Any survivor may give the permit back.
    s.release().unwrap();
    assert!(s.try_acquire());
}
