//! `Value<T>` and `Array<T>` across processes, and a holder of the value's lock killed.

mod common;

use std::time::Duration;

use common::{ChildTest, encode, from_env, with_watchdog};
use ipc_sync::{Array, Event, LockTimeoutError, Value};

/// Child: Python's documentation example: adds 10 to the value and 1 to every element.
#[test]
#[ignore = "child role"]
fn child_add_ten() {
    let v: Value<i32> = from_env("VALUE");
    let a: Array<i32> = from_env("ARRAY");
    v.lock_timeout(common::WATCHDOG)
        .unwrap()
        .update(|x| *x += 10);
    a.lock_timeout(common::WATCHDOG)
        .unwrap()
        .update(|xs| xs.iter_mut().for_each(|x| *x += 1));
}

#[test]
fn child_updates_value_and_array() {
    let v = Value::new(5i32).unwrap();
    let a = Array::from_slice(&[1i32, 2, 3]).unwrap();
    ChildTest::start(
        "child_add_ten",
        &[("VALUE", encode(&v)), ("ARRAY", encode(&a))],
    )
    .join();
    assert_eq!(v.get(), 15);
    assert_eq!(a.to_vec(), [2, 3, 4]);
}

/// Child: lock-free increments.
#[test]
#[ignore = "child role"]
fn child_atomic_add() {
    let v: Value<u64> = from_env("VALUE");
    let a: Array<u32> = from_env("ARRAY");
    for _ in 0..10_000 {
        v.fetch_add(1);
        a.fetch_add(1, 1).unwrap();
    }
}

#[test]
fn atomic_increments_need_no_lock() {
    let v = Value::new(0u64).unwrap();
    let a = Array::<u32>::new(3).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            ChildTest::start(
                "child_atomic_add",
                &[("VALUE", encode(&v)), ("ARRAY", encode(&a))],
            )
        })
        .collect();
    for k in kids {
        k.join();
    }
    assert_eq!(v.load(), 20_000);
    assert_eq!(a.to_vec(), [0, 20_000, 0]);
    assert_eq!(a.compare_exchange(1, 20_000, 1).unwrap(), Ok(20_000));
    assert!(a.fetch_add(3, 1).is_err());
}

/// Child: holds the value's lock until killed.
#[test]
#[ignore = "child role"]
fn child_hold_value_lock() {
    let v: Value<u64> = from_env("VALUE");
    let held: Event = from_env("HELD");
    let mut g = v.get_lock().unwrap();
    g.set(99);
    held.set();
    std::thread::sleep(common::WATCHDOG);
}

#[test]
fn killed_holder_of_value_lock() {
    let v = Value::new(1u64).unwrap();
    let held = Event::new().unwrap();
    let child = ChildTest::start(
        "child_hold_value_lock",
        &[("VALUE", encode(&v)), ("HELD", encode(&held))],
    );
    assert!(held.wait_timeout(common::WATCHDOG));
    assert!(matches!(
        v.lock_timeout(Duration::from_millis(50)),
        Err(LockTimeoutError::TimedOut)
    ));
    let h = v.handle();
    let waiter = std::thread::spawn(move || {
        let v = Value::<u64>::open(&h).unwrap();
        match v.lock_timeout(common::WATCHDOG) {
            Err(LockTimeoutError::OwnerDied(died)) => {
                let g = died.into_inner();
                g.make_consistent();
                g.get()
            }
            _ => 0,
        }
    });
    std::thread::sleep(Duration::from_millis(30));
    child.kill();
    assert_eq!(with_watchdog(move || waiter.join().unwrap()), 99);
    // `get` and `set` work on after the repair.
    v.set(3);
    assert_eq!(v.get(), 3);
}

#[test]
fn array_bounds_and_named() {
    let a = Array::create(&ipc_core::Placement::NamedRandom, &[1u8, 2, 3]).unwrap();
    let b = Array::<u8>::open_named(a.name().unwrap()).unwrap();
    assert_eq!(b.len(), 3);
    assert!(b.set(3, 0).is_err());
    b.set(2, 9).unwrap();
    assert_eq!(a.get(2), Some(9));
    assert_eq!(a.get(3), None);
    assert!(Array::<u16>::open(&a.handle()).is_err());
    let empty = Array::<u64>::new(0).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.to_vec(), Vec::<u64>::new());
}
