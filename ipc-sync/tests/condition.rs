//! `Condition` across processes: `wait_for` a predicate, `notify_all`, timeouts.

mod common;

use std::time::Duration;

use common::{live_holder_word, poke};
use ipc_sync::{Condition, Lock, LockTimeoutError, RLock, Value};
use ipc_testkit::{WATCHDOG, encode, from_env, spawn_with_env, wait_until, watchdog};

/// Child: waits until the value reaches 3, then sets it to 100.
#[test]
#[ignore = "child role"]
fn child_wait_for_three() {
    let cond: Condition = from_env("COND");
    let v: Value<u32> = from_env("VALUE");
    let g = cond.lock_timeout(WATCHDOG).unwrap();
    let (g, ok) = g.wait_for(|| v.load() >= 3, Some(WATCHDOG)).unwrap();
    assert!(ok);
    v.store(100);
    g.notify_all();
}

#[test]
fn waiters_see_the_predicate_become_true() {
    let cond = Condition::new().unwrap();
    let v = Value::new(0u32).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            spawn_with_env(
                "child_wait_for_three",
                &[("COND", encode(&cond)), ("VALUE", encode(&v))],
            )
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(10));
        let g = cond.lock_timeout(WATCHDOG).unwrap();
        v.fetch_add(1);
        g.notify_all();
    }
    let g = cond.lock_timeout(WATCHDOG).unwrap();
    let (_g, ok) = g.wait_for(|| v.load() == 100, Some(WATCHDOG)).unwrap();
    assert!(ok);
    drop(_g);
    for k in kids {
        k.join();
    }
}

#[test]
fn wait_timeout_without_notify() {
    let cond = Condition::new().unwrap();
    let g = cond.lock().unwrap();
    let (g, notified) = g.wait_timeout(Duration::from_millis(20)).unwrap();
    assert!(!notified);
    g.notify();
    drop(g);
    assert!(!cond.is_locked());
}

/// Child: does nothing until killed.
#[test]
#[ignore = "child role"]
fn child_idle() {
    std::thread::sleep(WATCHDOG);
}

#[test]
fn wait_timeout_ends_by_its_deadline_while_a_stopped_process_holds_the_lock() {
    // While this process waits, the condition's lock word comes to name a live process that
    // does not run (a SIGSTOPped child): taking the lock back is bounded by the deadline too.
    let cond = Condition::new().unwrap();
    let idle = spawn_with_env("child_idle", &[]);
    idle.stop();
    let word = live_holder_word(idle.pid());
    let h = cond.handle();
    let r = watchdog(WATCHDOG, move || {
        let cond = Condition::open(&h).unwrap();
        let g = cond.lock_timeout(WATCHDOG).unwrap();
        poke(&h, 0, &word);
        match g.wait_timeout(Duration::from_millis(200)) {
            Err(LockTimeoutError::TimedOut) => "timed out",
            Ok(_) => "relocked",
            Err(_) => "other",
        }
    });
    assert_eq!(r, "timed out");
    // The same for `wait_for` with a timeout.
    poke(&cond.handle(), 0, &[0; 8]);
    let h = cond.handle();
    let r = watchdog(WATCHDOG, move || {
        let cond = Condition::open(&h).unwrap();
        let g = cond.lock_timeout(WATCHDOG).unwrap();
        poke(&h, 0, &word);
        match g.wait_for(|| false, Some(Duration::from_millis(200))) {
            Err(LockTimeoutError::TimedOut) => "timed out",
            Ok(_) => "relocked",
            Err(_) => "other",
        }
    });
    assert_eq!(r, "timed out");
}

/// Child: says it waits (under the lock, so once the parent sees the count under the lock the
/// child is registered), waits once, and counts the return in `WOKEN`.
#[test]
#[ignore = "child role"]
fn child_wait_once_and_count() {
    let cond: Condition = from_env("COND");
    let waiting: Value<u32> = from_env("WAITING");
    let woken: Value<u32> = from_env("WOKEN");
    let g = cond.lock_timeout(WATCHDOG).unwrap();
    waiting.fetch_add(1);
    let (g, _) = g.wait_timeout(WATCHDOG).unwrap();
    woken.fetch_add(1);
    drop(g);
}

/// Waits until `n` children wait on `cond` (checked under its lock).
fn wait_for_waiters(cond: &Condition, waiting: &Value<u32>, n: u32) {
    wait_until(WATCHDOG, "children wait on the condition", || {
        let _g = cond.lock_timeout(WATCHDOG).unwrap();
        waiting.load() >= n
    });
}

#[test]
fn notify_n_wakes_exactly_n_waiting_processes() {
    let cond = Condition::new().unwrap();
    let waiting = Value::new(0u32).unwrap();
    let woken = Value::new(0u32).unwrap();
    let env = [
        ("COND", encode(&cond)),
        ("WAITING", encode(&waiting)),
        ("WOKEN", encode(&woken)),
    ];
    let kids: Vec<_> = (0..4)
        .map(|_| spawn_with_env("child_wait_once_and_count", &env))
        .collect();
    wait_for_waiters(&cond, &waiting, 4);
    cond.lock_timeout(WATCHDOG).unwrap().notify_n(2);
    wait_until(WATCHDOG, "two waiters return", || woken.load() >= 2);
    // The other two keep waiting: many of their sleep slices end meanwhile (each re-checks its
    // slot), and none of them returns.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(woken.load(), 2);
    cond.lock_timeout(WATCHDOG).unwrap().notify();
    wait_until(WATCHDOG, "a third waiter returns", || woken.load() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(woken.load(), 3);
    cond.lock_timeout(WATCHDOG).unwrap().notify_all();
    for k in kids {
        k.join();
    }
    assert_eq!(woken.load(), 4);
}

#[test]
fn a_waiter_killed_while_waiting_does_not_swallow_a_notification() {
    let cond = Condition::new().unwrap();
    let waiting = Value::new(0u32).unwrap();
    let woken = Value::new(0u32).unwrap();
    let env = [
        ("COND", encode(&cond)),
        ("WAITING", encode(&waiting)),
        ("WOKEN", encode(&woken)),
    ];
    // The first waiter (the oldest, the one a notify goes to first) is killed while it waits.
    let mut first = spawn_with_env("child_wait_once_and_count", &env);
    wait_for_waiters(&cond, &waiting, 1);
    let second = spawn_with_env("child_wait_once_and_count", &env);
    wait_for_waiters(&cond, &waiting, 2);
    first.kill();
    cond.lock_timeout(WATCHDOG).unwrap().notify();
    second.join();
    assert_eq!(woken.load(), 1);
}

#[test]
fn a_notify_goes_to_the_threads_that_wait_not_to_the_notifiers_next_wait() {
    // Ping-pong on one condition: each side notifies, then waits itself. Its own later wait
    // must not take the notification it just gave.
    let cond = Condition::new().unwrap();
    let turn = Value::new(0u32).unwrap();
    let h = (cond.try_clone().unwrap(), turn.try_clone().unwrap());
    let other = std::thread::spawn(move || {
        let (cond, turn) = h;
        let mut g = cond.lock_timeout(WATCHDOG).unwrap();
        for i in 0..200u32 {
            while turn.load() != 2 * i + 1 {
                g = g.wait_timeout(WATCHDOG).unwrap().0;
            }
            turn.store(2 * i + 2);
            g.notify();
        }
    });
    let mut g = cond.lock_timeout(WATCHDOG).unwrap();
    for i in 0..200u32 {
        while turn.load() != 2 * i {
            g = g.wait_timeout(WATCHDOG).unwrap().0;
        }
        turn.store(2 * i + 1);
        g.notify();
    }
    drop(g);
    watchdog(WATCHDOG, move || other.join().unwrap());
    assert_eq!(turn.load(), 400);
}

#[test]
fn a_condition_on_a_supplied_rlock_releases_every_level_while_it_waits() {
    let rlock = RLock::new().unwrap();
    let cond = Condition::with_lock(&rlock).unwrap();
    let flag = Value::new(0u32).unwrap();
    assert!(Condition::open(&cond.handle()).is_err());
    let h = (cond.try_clone().unwrap(), flag.try_clone().unwrap());
    let outer = rlock.lock().unwrap();
    let g = cond.lock_timeout(WATCHDOG).unwrap();
    assert_eq!(rlock.depth(), 2);
    let notifier = std::thread::spawn(move || {
        let (cond, flag) = h;
        // Gets the lock only if the waiter released both levels.
        let g = cond.lock_timeout(WATCHDOG).unwrap();
        flag.store(1);
        g.notify();
    });
    let (g, ok) = g.wait_for(|| flag.load() == 1, Some(WATCHDOG)).unwrap();
    assert!(ok);
    assert_eq!(rlock.depth(), 2, "both levels are restored");
    drop(g);
    assert_eq!(rlock.depth(), 1);
    drop(outer);
    assert!(!rlock.is_locked());
    watchdog(WATCHDOG, move || notifier.join().unwrap());
}

#[test]
fn a_condition_on_a_supplied_lock_excludes_the_locks_holders() {
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(&lock).unwrap();
    {
        let _g = cond.lock().unwrap();
        assert!(lock.try_lock().is_err());
    }
    let _g = lock.lock().unwrap();
    assert!(cond.try_lock().is_err());
}
