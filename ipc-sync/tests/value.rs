//! `Value<T>` and `Array<T>` across processes, and a holder of the value's lock killed.

use std::time::Duration;

use ipc_sync::{Array, Event, Lock, LockTimeoutError, RLock, Value};
use ipc_testkit::{WATCHDOG, encode, from_env, spawn_with_env, watchdog};

/// Child: Python's documentation example: adds 10 to the value and 1 to every element.
#[test]
#[ignore = "child role"]
fn child_add_ten() {
    let v: Value<i32> = from_env("VALUE");
    let a: Array<i32> = from_env("ARRAY");
    v.lock_timeout(WATCHDOG).unwrap().update(|x| *x += 10);
    a.lock_timeout(WATCHDOG)
        .unwrap()
        .update(|xs| xs.iter_mut().for_each(|x| *x += 1));
}

#[test]
fn child_updates_value_and_array() {
    let v = Value::new(5i32).unwrap();
    let a = Array::from_slice(&[1i32, 2, 3]).unwrap();
    spawn_with_env(
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
            spawn_with_env(
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
    std::thread::sleep(WATCHDOG);
}

#[test]
fn killed_holder_of_value_lock() {
    let v = Value::new(1u64).unwrap();
    let held = Event::new().unwrap();
    let mut child = spawn_with_env(
        "child_hold_value_lock",
        &[("VALUE", encode(&v)), ("HELD", encode(&held))],
    );
    assert!(held.wait_timeout(WATCHDOG));
    assert!(matches!(
        v.lock_timeout(Duration::from_millis(50)),
        Err(LockTimeoutError::TimedOut)
    ));
    let h = v.handle();
    let waiter = std::thread::spawn(move || {
        let v = Value::<u64>::open(&h).unwrap();
        match v.lock_timeout(WATCHDOG) {
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
    assert_eq!(watchdog(WATCHDOG, move || waiter.join().unwrap()), 99);
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

/// Child: holds the supplied lock through the value built on it, writes, says so, and waits to
/// be killed.
#[test]
#[ignore = "child role"]
fn child_hold_value_on_supplied_lock() {
    let v: Value<u64> = from_env("VALUE");
    let held: Event = from_env("HELD");
    let mut g = v.lock_timeout(WATCHDOG).unwrap();
    g.set(77);
    held.set();
    std::thread::sleep(WATCHDOG);
}

#[test]
fn a_value_on_a_supplied_lock_shares_it_and_reports_its_holders_death() {
    let lock = Lock::new().unwrap();
    let v = Value::with_lock(1u64, &lock).unwrap();
    let other = Value::with_lock(2u64, &lock).unwrap();
    // One lock: holding it through the lock excludes both values, and the reverse.
    {
        let _g = lock.lock().unwrap();
        assert!(v.try_lock().is_err());
        assert!(other.try_lock().is_err());
    }
    {
        let _g = v.lock().unwrap();
        assert!(lock.try_lock().is_err());
        assert!(other.try_lock().is_err());
    }
    // A plain open would take the value's unused lock: refused. With the lock it opens.
    assert!(Value::<u64>::open(&v.handle()).is_err());
    assert!(Value::<u64>::open_with_lock(&v.handle(), &RLock::new().unwrap()).is_err());
    assert_eq!(
        Value::<u64>::open_with_lock(&v.handle(), &lock)
            .unwrap()
            .get(),
        1
    );
    // The child attaches both (the value's serialised form carries the lock's handle), takes the
    // lock through the value and dies holding it: every user of the lock sees `OwnerDied`.
    let held = Event::new().unwrap();
    let mut child = spawn_with_env(
        "child_hold_value_on_supplied_lock",
        &[("VALUE", encode(&v)), ("HELD", encode(&held))],
    );
    assert!(held.wait_timeout(WATCHDOG));
    assert!(matches!(
        lock.lock_timeout(Duration::from_millis(50)),
        Err(LockTimeoutError::TimedOut)
    ));
    child.kill();
    match other.lock_timeout(WATCHDOG) {
        Err(LockTimeoutError::OwnerDied(died)) => died.into_inner().make_consistent(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(!lock.is_poisoned());
    assert_eq!(v.get(), 77);
}

#[test]
fn a_value_on_a_supplied_rlock_is_reentrant_for_its_holder() {
    let rlock = RLock::new().unwrap();
    let v = Value::with_lock(5i32, &rlock).unwrap();
    let _outer = rlock.lock().unwrap();
    // Python: `with v.get_lock(): v.value += 1` works because the default lock is an RLock.
    let mut g = v.get_lock().unwrap();
    g.update(|x| *x += 1);
    assert_eq!(v.get(), 6);
    drop(g);
    let h = v.try_clone().unwrap();
    let t = std::thread::spawn(move || h.try_lock().is_err());
    assert!(t.join().unwrap(), "another thread must not enter");
}

/// Child: writes the whole slice `2..10` to `k` under the lock, for k = 1..=2000.
#[test]
#[ignore = "child role"]
fn child_write_ranges() {
    let a: Array<u64> = from_env("ARRAY");
    for k in 1..=2000u64 {
        a.write_range(2, &[k; 8]).unwrap();
    }
}

#[test]
fn array_slices_are_read_and_written_whole_under_the_lock() {
    // Python: arr[2:10] = [k] * 8 in one process, arr[2:10] in another: never half of each.
    let a = Array::<u64>::new(12).unwrap();
    let child = spawn_with_env("child_write_ranges", &[("ARRAY", encode(&a))]);
    let mut last = 0;
    let deadline = std::time::Instant::now() + WATCHDOG;
    while last != 2000 {
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: the child's writes"
        );
        let slice = a.read_range(2..10).unwrap();
        assert!(slice.iter().all(|&x| x == slice[0]), "torn slice {slice:?}");
        assert!(slice[0] >= last, "went back from {last} to {}", slice[0]);
        last = slice[0];
        if last != 2000 {
            std::thread::yield_now();
        }
    }
    child.join();
    assert_eq!(a.read_range(..2).unwrap(), [0, 0]);
    assert_eq!(a.read_range(10..).unwrap(), [0, 0]);
    assert_eq!(a.read_range(2..=9).unwrap(), [2000; 8]);
}

#[test]
fn array_slice_bounds_are_checked() {
    let a = Array::from_slice(&[1u16, 2, 3, 4, 5]).unwrap();
    assert_eq!(a.read_range(1..3).unwrap(), [2, 3]);
    assert_eq!(a.read_range(5..).unwrap(), Vec::<u16>::new());
    for bad in [a.read_range(4..6), a.read_range(6..), a.read_range(0..=5)] {
        assert!(bad.is_err());
    }
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = a.read_range(3..1);
    assert!(reversed.is_err());
    assert!(
        a.read_range((
            std::ops::Bound::Excluded(usize::MAX),
            std::ops::Bound::Unbounded
        ))
        .is_err()
    );
    assert!(a.write_range(3, &[9, 9, 9]).is_err());
    assert!(a.write_range(usize::MAX, &[9]).is_err());
    assert_eq!(
        a.to_vec(),
        [1, 2, 3, 4, 5],
        "a refused write writes nothing"
    );
    a.write_range(3, &[8, 9]).unwrap();
    let mut g = a.lock().unwrap();
    g.write_range(0, &[7]).unwrap();
    assert_eq!(g.read_range(..).unwrap(), [7, 2, 3, 8, 9]);
    drop(g);
    // The lock-free forms, element by element atomic.
    a.store_range(1, &[20, 30]).unwrap();
    a.store(4, 90).unwrap();
    assert_eq!(a.load_range(..).unwrap(), [7, 20, 30, 8, 90]);
    assert!(a.load_range(..6).is_err() && a.store_range(4, &[1, 2]).is_err());
}
