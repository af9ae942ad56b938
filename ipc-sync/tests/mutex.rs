//! `Mutex<T>` across processes: the guarded value, and a holder killed mid-update.

use std::time::Duration;

use ipc_sync::{Event, LockTimeoutError, Mutex};
use ipc_testkit::{WATCHDOG, encode, exhaust_descriptors, from_env, spawn_with_env, watchdog};

#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Account {
    a: u64,
    b: u64,
}

/// Child: moves 5 from `a` to `b` halfway, then waits to be killed with the lock held.
#[test]
#[ignore = "child role"]
fn child_half_transfer() {
    let m: Mutex<Account> = from_env("MUTEX");
    let held: Event = from_env("HELD");
    let mut g = m.lock().unwrap();
    g.a -= 5;
    held.set();
    std::thread::sleep(WATCHDOG);
    g.b += 5;
}

#[test]
fn killed_mid_update_reports_owner_died_with_the_half_done_value() {
    let m = Mutex::new(Account { a: 100, b: 0 }).unwrap();
    let held = Event::new().unwrap();
    let mut child = spawn_with_env(
        "child_half_transfer",
        &[("MUTEX", encode(&m)), ("HELD", encode(&held))],
    );
    assert!(held.wait_timeout(WATCHDOG));
    // While the holder lives, waiting ends at the timeout.
    assert!(matches!(
        m.lock_timeout(Duration::from_millis(40)),
        Err(LockTimeoutError::TimedOut)
    ));
    assert!(matches!(
        m.try_lock(),
        Err(ipc_sync::TryLockError::WouldBlock)
    ));
    child.kill();
    let h = m.handle();
    let repaired = watchdog(WATCHDOG, move || {
        let m = Mutex::<Account>::open(&h).unwrap();
        match m.lock_timeout(Duration::from_secs(30)) {
            Err(LockTimeoutError::OwnerDied(e)) => {
                let mut g = e.into_inner();
                // The invariant a + b == 100 is broken: repair it.
                assert_eq!(*g, Account { a: 95, b: 0 });
                g.b = 100 - g.a;
                g.make_consistent();
                true
            }
            _ => false,
        }
    });
    assert!(repaired);
    assert_eq!(*m.lock_timeout(WATCHDOG).unwrap(), Account { a: 95, b: 5 });
}

/// Child: adds 1 to each field `N` times.
#[test]
#[ignore = "child role"]
fn child_add() {
    let m: Mutex<Account> = from_env("MUTEX");
    for _ in 0..1000 {
        let mut g = m.lock_timeout(WATCHDOG).unwrap();
        g.a += 1;
        g.b += 1;
    }
}

#[test]
fn two_processes_update_under_the_lock() {
    let m = Mutex::new(Account { a: 0, b: 0 }).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| spawn_with_env("child_add", &[("MUTEX", encode(&m))]))
        .collect();
    for k in kids {
        k.join();
    }
    assert_eq!(*m.lock().unwrap(), Account { a: 2000, b: 2000 });
}

#[test]
fn wrong_type_is_refused() {
    let m = Mutex::new(7u32).unwrap();
    assert!(Mutex::<u64>::open(&m.handle()).is_err());
    assert!(Mutex::<u32>::open(&m.handle()).is_ok());
    assert!(ipc_sync::Value::<u32>::open(&m.handle()).is_err());
}

/// Child: locks the mutex, runs out of descriptors (so `/proc` cannot be read), then checks
/// from this same process that nobody takes the lock from it: `try_lock` says `WouldBlock`, a
/// `lock_timeout` from another thread times out.
#[test]
#[ignore = "child role"]
fn child_hold_at_descriptor_limit() {
    let m: Mutex<u64> = from_env("MUTEX");
    let mut g = m.lock().unwrap();
    *g = 1;
    let files = exhaust_descriptors();
    match m.try_lock() {
        Err(ipc_sync::TryLockError::WouldBlock) => {}
        Ok(_) => panic!("try_lock handed out a second guard"),
        Err(ipc_sync::TryLockError::OwnerDied(_)) => {
            panic!("try_lock took a live holder (this process) for dead")
        }
        Err(_) => panic!("unexpected try_lock error"),
    }
    let other = std::thread::scope(|s| {
        s.spawn(|| match m.lock_timeout(Duration::from_millis(300)) {
            Err(LockTimeoutError::TimedOut) => "timed out",
            Ok(_) => "locked",
            Err(LockTimeoutError::OwnerDied(_)) => "owner died",
            Err(_) => "other",
        })
        .join()
        .unwrap()
    });
    assert_eq!(other, "timed out");
    *g += 1;
    drop(g);
    drop(files);
    // Released by its holder: the next lock is clean and sees the holder's writes.
    assert_eq!(*m.lock().unwrap(), 2);
}

#[test]
fn a_holder_at_its_descriptor_limit_is_not_robbed() {
    let m = Mutex::new(0u64).unwrap();
    spawn_with_env("child_hold_at_descriptor_limit", &[("MUTEX", encode(&m))]).join();
    assert_eq!(*m.lock_timeout(WATCHDOG).unwrap(), 2);
    assert!(!m.is_poisoned());
}
