//! `Lock` across real processes: exclusion, timeouts, and a holder killed by SIGKILL.

mod common;

use std::time::Duration;

use common::{ChildTest, encode, from_env, poke, with_watchdog};
use ipc_core::Placement;
use ipc_sync::{Event, Lock, LockTimeoutError, TryLockError, Value};

/// Child: takes the lock, says so, then waits to be killed (or released).
#[test]
#[ignore = "child role"]
fn child_hold_lock() {
    let lock: Lock = from_env("LOCK");
    let held: Event = from_env("HELD");
    let release: Event = from_env("RELEASE");
    let g = lock.lock().unwrap_or_else(|e| e.into_inner());
    held.set();
    assert!(release.wait_timeout(common::WATCHDOG));
    drop(g);
}

fn hold_in_child(lock: &Lock) -> (ChildTest, Event) {
    let held = Event::new().unwrap();
    let release = Event::new().unwrap();
    let child = ChildTest::start(
        "child_hold_lock",
        &[
            ("LOCK", encode(lock)),
            ("HELD", encode(&held)),
            ("RELEASE", encode(&release)),
        ],
    );
    assert!(
        held.wait_timeout(common::WATCHDOG),
        "child never took the lock"
    );
    (child, release)
}

#[test]
fn other_process_excludes_and_releases() {
    let lock = Lock::new().unwrap();
    let (child, release) = hold_in_child(&lock);
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(
        lock.lock_timeout(Duration::from_millis(60)),
        Err(LockTimeoutError::TimedOut)
    ));
    release.set();
    let g = with_watchdog({
        let h = lock.handle();
        move || Lock::open(&h).unwrap().lock().is_ok()
    });
    assert!(g, "a released lock is clean");
    child.join();
    assert!(!lock.is_locked());
}

#[test]
fn killed_holder_wakes_blocked_waiter_with_owner_died() {
    let lock = Lock::new().unwrap();
    let (child, _release) = hold_in_child(&lock);
    let h = lock.handle();
    // A waiter blocks in another thread before the holder dies.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lock = Lock::open(&h).unwrap();
        tx.send(()).unwrap();
        match lock.lock() {
            Ok(_) => "clean",
            Err(died) => {
                let g = died.into_inner();
                g.make_consistent();
                "owner died"
            }
        }
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    child.kill();
    let outcome = with_watchdog(move || waiter.join().unwrap());
    assert_eq!(outcome, "owner died");
    // Made consistent: the next holder is clean.
    assert!(lock.lock().is_ok());
    assert!(!lock.is_poisoned());
}

#[test]
fn owner_died_persists_until_made_consistent() {
    let lock = Lock::new().unwrap();
    let (child, _release) = hold_in_child(&lock);
    child.kill();
    // try_lock sees the dead holder at once.
    match lock.try_lock() {
        Err(TryLockError::OwnerDied(e)) => drop(e.into_inner()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(lock.is_poisoned());
    match lock.lock_timeout(Duration::from_secs(5)) {
        Err(LockTimeoutError::OwnerDied(e)) => e.into_inner().make_consistent(),
        other => panic!("expected OwnerDied again, got {other:?}"),
    }
    assert!(lock.try_lock().is_ok());
}

#[test]
fn recycled_pid_is_not_taken_for_the_holder() {
    // The word names a running process (init, pid 1) with a start time that is not its own:
    // the pid was recycled, so the holder is gone.
    let lock = Lock::new().unwrap();
    let h = lock.handle();
    poke(&h, 0, &1u32.to_ne_bytes());
    poke(&h, 8, &u64::MAX.to_ne_bytes());
    let got = with_watchdog(move || {
        let lock = Lock::open(&h).unwrap();
        matches!(
            lock.lock_timeout(Duration::from_secs(20)),
            Err(LockTimeoutError::OwnerDied(_))
        )
    });
    assert!(got);
}

#[test]
fn live_foreign_holder_times_out() {
    // The word names a running process with its real start time: a live holder, so waiting
    // ends at the deadline, not earlier and not never.
    let lock = Lock::new().unwrap();
    let parent = ipc_core::ProcessIdentity::of_pid(1)
        .expect("/proc is readable")
        .expect("pid 1 runs");
    let h = lock.handle();
    poke(&h, 0, &1u32.to_ne_bytes());
    poke(&h, 8, &parent.start_time().to_ne_bytes());
    assert!(matches!(
        lock.lock_timeout(Duration::from_millis(120)),
        Err(LockTimeoutError::TimedOut)
    ));
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
}

/// Child: increments the shared value under the lock `N` times.
#[test]
#[ignore = "child role"]
fn child_increment() {
    let lock: Lock = from_env("LOCK");
    let value: Value<u64> = from_env("VALUE");
    let n: u64 = std::env::var("N").unwrap().parse().unwrap();
    for _ in 0..n {
        let _g = lock.lock().unwrap();
        // A non-atomic read-modify-write: only the lock keeps it exact.
        let v = value.load();
        value.store(v + 1);
    }
}

#[test]
fn processes_increment_exactly() {
    let lock = Lock::new().unwrap();
    let value = Value::new(0u64).unwrap();
    let n = 2000u64;
    let children: Vec<_> = (0..3)
        .map(|_| {
            ChildTest::start(
                "child_increment",
                &[
                    ("LOCK", encode(&lock)),
                    ("VALUE", encode(&value)),
                    ("N", n.to_string()),
                ],
            )
        })
        .collect();
    for c in children {
        c.join();
    }
    assert_eq!(value.load(), 3 * n);
}

#[test]
fn named_lock_opens_by_name_and_rejects_other_kinds() {
    let lock = Lock::create(&Placement::NamedRandom).unwrap();
    let name = lock.name().unwrap().to_owned();
    let same = Lock::open_named(&name).unwrap();
    let _g = same.lock().unwrap();
    assert!(lock.is_locked());
    assert!(Event::open_named(&name).is_err());
    assert!(Value::<u64>::open(&lock.handle()).is_err());
}
