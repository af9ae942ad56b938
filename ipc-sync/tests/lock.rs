//! `Lock` across real processes: exclusion, timeouts, and a holder killed by SIGKILL.

mod common;

use std::time::Duration;

use common::{peek, poke};
use ipc_core::Placement;
use ipc_sync::{Event, Lock, LockTimeoutError, TryLockError, Value};
use ipc_testkit::{
    Role, WATCHDOG, encode, exhaust_descriptors, from_env, spawn_with_env, watchdog,
};

/// Child: takes the lock, says so, then waits to be killed (or released).
#[test]
#[ignore = "child role"]
fn child_hold_lock() {
    let lock: Lock = from_env("LOCK");
    let held: Event = from_env("HELD");
    let release: Event = from_env("RELEASE");
    let g = match lock.lock_timeout(WATCHDOG) {
        Ok(g) => g,
        Err(LockTimeoutError::OwnerDied(e)) => e.into_inner(),
        Err(e) => panic!("{e}"),
    };
    held.set();
    assert!(release.wait_timeout(WATCHDOG));
    drop(g);
}

fn hold_in_child(lock: &Lock) -> (Role, Event) {
    let held = Event::new().unwrap();
    let release = Event::new().unwrap();
    let child = spawn_with_env(
        "child_hold_lock",
        &[
            ("LOCK", encode(lock)),
            ("HELD", encode(&held)),
            ("RELEASE", encode(&release)),
        ],
    );
    assert!(held.wait_timeout(WATCHDOG), "child never took the lock");
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
    let g = watchdog(WATCHDOG, {
        let h = lock.handle();
        move || Lock::open(&h).unwrap().lock_timeout(WATCHDOG).is_ok()
    });
    assert!(g, "a released lock is clean");
    child.join();
    assert!(!lock.is_locked());
}

#[test]
fn killed_holder_wakes_blocked_waiter_with_owner_died() {
    let lock = Lock::new().unwrap();
    let (mut child, _release) = hold_in_child(&lock);
    let h = lock.handle();
    // A waiter blocks in another thread before the holder dies.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lock = Lock::open(&h).unwrap();
        tx.send(()).unwrap();
        match lock.lock_timeout(WATCHDOG) {
            Ok(_) => "clean",
            Err(LockTimeoutError::OwnerDied(died)) => {
                let g = died.into_inner();
                g.make_consistent();
                "owner died"
            }
            Err(_) => "timed out",
        }
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    child.kill();
    let outcome = watchdog(WATCHDOG, move || waiter.join().unwrap());
    assert_eq!(outcome, "owner died");
    // Made consistent: the next holder is clean.
    assert!(lock.lock_timeout(WATCHDOG).is_ok());
    assert!(!lock.is_poisoned());
}

#[test]
fn owner_died_persists_until_made_consistent() {
    let lock = Lock::new().unwrap();
    let (mut child, _release) = hold_in_child(&lock);
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

/// The lock word naming `pid` with start-time tag `tag` (the layout of `LockState`).
fn holder_word(pid: u32, tag: u32) -> [u8; 8] {
    (u64::from(pid) | (u64::from(tag) << 32)).to_ne_bytes()
}

#[test]
fn recycled_pid_is_not_taken_for_the_holder() {
    // The word names a running process (init, pid 1) with a start time that is not its own:
    // the kernel says that holder is dead (its pid was recycled), so it is taken over at once.
    let lock = Lock::new().unwrap();
    let init = ipc_core::ProcessIdentity::of_pid(1)
        .expect("/proc is readable")
        .expect("pid 1 runs");
    let h = lock.handle();
    poke(&h, 0, &holder_word(1, init.start_tag() ^ 1));
    match lock.try_lock() {
        Err(TryLockError::OwnerDied(e)) => e.into_inner().make_consistent(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    poke(&h, 0, &holder_word(1, init.start_tag().wrapping_add(7)));
    let got = watchdog(WATCHDOG, move || {
        let lock = Lock::open(&h).unwrap();
        matches!(
            lock.lock_timeout(WATCHDOG),
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
    let init = ipc_core::ProcessIdentity::of_pid(1)
        .expect("/proc is readable")
        .expect("pid 1 runs");
    let h = lock.handle();
    poke(&h, 0, &holder_word(1, init.start_tag()));
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
        let _g = lock.lock_timeout(WATCHDOG).unwrap();
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
            spawn_with_env(
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

fn outcome(
    r: Result<ipc_sync::LockGuard<'_>, LockTimeoutError<ipc_sync::LockGuard<'_>>>,
) -> &'static str {
    match r {
        Ok(_) => "locked",
        Err(LockTimeoutError::TimedOut) => "timed out",
        Err(LockTimeoutError::OwnerDied(_)) => "owner died",
        Err(_) => "other",
    }
}

#[test]
fn a_stopped_holder_keeps_its_lock() {
    let lock = Lock::new().unwrap();
    let (child, release) = hold_in_child(&lock);
    child.stop();
    // Stopped for longer than any grace period the lock ever had: a stopped process is alive.
    let h = lock.handle();
    let first = watchdog(WATCHDOG, move || {
        let lock = Lock::open(&h).unwrap();
        outcome(lock.lock_timeout(Duration::from_millis(1500)))
    });
    assert_eq!(first, "timed out");
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    // A waiter blocked while the holder is stopped gets a clean lock once it runs again and
    // unlocks.
    let h = lock.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lock = Lock::open(&h).unwrap();
        tx.send(()).unwrap();
        outcome(lock.lock_timeout(WATCHDOG))
    });
    rx.recv().unwrap();
    child.resume();
    release.set();
    assert_eq!(watchdog(WATCHDOG, move || waiter.join().unwrap()), "locked");
    child.join();
    assert!(!lock.is_poisoned());
}

/// Child: locks and unlocks in a loop until `STOP` is set.
#[test]
#[ignore = "child role"]
fn child_churn() {
    let lock: Lock = from_env("LOCK");
    let started: Event = from_env("HELD");
    let stop: Event = from_env("RELEASE");
    started.set();
    while !stop.is_set() {
        for _ in 0..1000 {
            drop(lock.lock_timeout(WATCHDOG).unwrap());
        }
    }
}

#[test]
fn a_holder_stopped_anywhere_in_lock_or_unlock_keeps_its_lock() {
    // The holder is stopped at whatever instruction it is running, again and again: inside the
    // acquiring and the releasing operation too. Whenever it is stopped holding the lock, a
    // waiter must time out; whenever the lock is free, it is clean.
    let lock = Lock::new().unwrap();
    let started = Event::new().unwrap();
    let stop = Event::new().unwrap();
    let child = spawn_with_env(
        "child_churn",
        &[
            ("LOCK", encode(&lock)),
            ("HELD", encode(&started)),
            ("RELEASE", encode(&stop)),
        ],
    );
    assert!(started.wait_timeout(WATCHDOG));
    let mut held_stops = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(3));
        child.stop();
        if lock.is_locked() {
            held_stops += 1;
            let h = lock.handle();
            let r = watchdog(WATCHDOG, move || {
                outcome(
                    Lock::open(&h)
                        .unwrap()
                        .lock_timeout(Duration::from_millis(1300)),
                )
            });
            assert_eq!(r, "timed out", "a stopped live holder lost its lock");
        } else {
            match lock.try_lock() {
                Ok(g) => drop(g),
                Err(e) => panic!("a free lock was not clean: {e:?}"),
            }
        }
        child.resume();
        if held_stops == 4 {
            break;
        }
    }
    stop.set();
    child.join();
    assert!(
        held_stops > 0,
        "the holder was never stopped holding the lock"
    );
    assert!(!lock.is_poisoned());
}

#[test]
fn an_unlock_never_releases_a_thiefs_lock() {
    // A peer overwrites the word of a held lock to name another live process (with its true
    // start time): the guard's unlock must leave that word alone.
    let lock = Lock::new().unwrap();
    let other = Lock::new().unwrap();
    let (thief, release) = hold_in_child(&other);
    let id = ipc_core::ProcessIdentity::of_pid(thief.pid())
        .expect("/proc is readable")
        .expect("the child runs");
    let word = holder_word(id.pid(), id.start_tag());
    let h = lock.handle();
    let g = lock.lock().unwrap();
    poke(&h, 0, &word);
    drop(g);
    assert_eq!(peek(&h, 0, 8), word);
    assert!(lock.is_locked());
    // The thief is alive: nobody takes it over.
    assert!(matches!(
        lock.lock_timeout(Duration::from_millis(100)),
        Err(LockTimeoutError::TimedOut)
    ));
    release.set();
    thief.join();
}

/// Child: runs out of descriptors, then forks; the fork child cannot read its own identity
/// (start time) and must not lock with an invented one.
#[test]
#[ignore = "child role"]
fn child_fork_without_identity() {
    let lock: Lock = from_env("LOCK");
    let files = exhaust_descriptors();
    // SAFETY: the fork child only tries the lock (no allocation on the paths taken: the
    // identity lookup fails with EMFILE, the timed wait sleeps) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match lock.try_lock() {
            Err(TryLockError::WouldBlock) => match lock.lock_timeout(Duration::from_millis(100)) {
                Err(LockTimeoutError::TimedOut) => 0,
                _ => 2,
            },
            _ => 1,
        };
        // SAFETY: ends the fork child without running the parent's destructors or atexit.
        unsafe { libc::_exit(code) };
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    drop(files);
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "1: try_lock locked without an identity, 2: lock_timeout did"
    );
}

#[test]
fn a_process_without_its_identity_never_locks() {
    let lock = Lock::new().unwrap();
    spawn_with_env("child_fork_without_identity", &[("LOCK", encode(&lock))]).join();
    assert!(!lock.is_locked());
    assert!(lock.try_lock().is_ok());
}

/// Child: holds the lock and forks; the fork child drops its copy of the guard.
#[test]
#[ignore = "child role"]
fn child_fork_with_guard() {
    let lock: Lock = from_env("LOCK");
    let g = lock.lock().unwrap();
    // SAFETY: the fork child only drops the guard (an identity lookup in stack buffers and a
    // compare-and-swap, no allocation) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(g);
        // SAFETY: ends the fork child without running the parent's destructors or atexit.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // The fork child is another process: its drop released nothing.
    assert!(lock.is_locked());
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    drop(g);
    assert!(!lock.is_locked());
}

#[test]
fn a_fork_child_dropping_an_inherited_guard_releases_nothing() {
    let lock = Lock::new().unwrap();
    spawn_with_env("child_fork_with_guard", &[("LOCK", encode(&lock))]).join();
    assert!(!lock.is_locked());
}

/// The core errors this crate returns are named from it, without a direct `ipc_core` import.
#[test]
fn create_and_open_errors_are_named_from_ipc_sync() {
    let named = Lock::create(&ipc_sync::Placement::NamedRandom).unwrap();
    let name = named.name().unwrap().to_owned();
    let missing: Result<Lock, ipc_sync::OpenError> = Lock::open_named("ipc-no-such-lock-here");
    assert!(matches!(missing, Err(ipc_sync::OpenError::NotFound { .. })));
    let taken: Result<Lock, ipc_sync::CreateError> =
        Lock::create(&ipc_sync::Placement::Named(name));
    assert!(matches!(
        taken,
        Err(ipc_sync::CreateError::AlreadyExists { .. })
    ));
}
