//! `Condition` across processes: `wait_for` a predicate, `notify_all`, timeouts.

mod common;

use std::time::Duration;

use common::{ChildTest, encode, from_env};
use ipc_sync::{Condition, LockTimeoutError, Value};

/// Child: waits until the value reaches 3, then sets it to 100.
#[test]
#[ignore = "child role"]
fn child_wait_for_three() {
    let cond: Condition = from_env("COND");
    let v: Value<u32> = from_env("VALUE");
    let g = cond.lock_timeout(common::WATCHDOG).unwrap();
    let (g, ok) = g
        .wait_for(|| v.load() >= 3, Some(common::WATCHDOG))
        .unwrap();
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
            ChildTest::start(
                "child_wait_for_three",
                &[("COND", encode(&cond)), ("VALUE", encode(&v))],
            )
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(10));
        let g = cond.lock_timeout(common::WATCHDOG).unwrap();
        v.fetch_add(1);
        g.notify_all();
    }
    let g = cond.lock_timeout(common::WATCHDOG).unwrap();
    let (_g, ok) = g
        .wait_for(|| v.load() == 100, Some(common::WATCHDOG))
        .unwrap();
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
    std::thread::sleep(common::WATCHDOG);
}

#[test]
fn wait_timeout_ends_by_its_deadline_while_a_stopped_process_holds_the_lock() {
    // While this process waits, the condition's lock word comes to name a live process that
    // does not run (a SIGSTOPped child): taking the lock back is bounded by the deadline too.
    let cond = Condition::new().unwrap();
    let idle = ChildTest::start("child_idle", &[]);
    idle.stop();
    let word = common::live_holder_word(idle.pid());
    let h = cond.handle();
    let r = common::with_watchdog(move || {
        let cond = Condition::open(&h).unwrap();
        let g = cond.lock_timeout(common::WATCHDOG).unwrap();
        common::poke(&h, 0, &word);
        match g.wait_timeout(Duration::from_millis(200)) {
            Err(LockTimeoutError::TimedOut) => "timed out",
            Ok(_) => "relocked",
            Err(_) => "other",
        }
    });
    assert_eq!(r, "timed out");
    // The same for `wait_for` with a timeout.
    common::poke(&cond.handle(), 0, &[0; 8]);
    let h = cond.handle();
    let r = common::with_watchdog(move || {
        let cond = Condition::open(&h).unwrap();
        let g = cond.lock_timeout(common::WATCHDOG).unwrap();
        common::poke(&h, 0, &word);
        match g.wait_for(|| false, Some(Duration::from_millis(200))) {
            Err(LockTimeoutError::TimedOut) => "timed out",
            Ok(_) => "relocked",
            Err(_) => "other",
        }
    });
    assert_eq!(r, "timed out");
}
