//! `Condition` across processes: `wait_for` a predicate, `notify_all`, timeouts.

mod common;

use std::time::Duration;

use common::{ChildTest, encode, from_env};
use ipc_sync::{Condition, Value};

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
