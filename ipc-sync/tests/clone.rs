//! `try_clone` on every object: a second handle of the same object, so that passing one to a
//! `Process` (which consumes its argument) leaves the caller its own, as Python's
//! `Process(args=(lock,))` does.

use std::time::Duration;

use ipc_core::{JoinError, Process};
use ipc_sync::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, RLock, Semaphore, Value,
};

/// Every wait in these tests is bounded by this watchdog.
const WATCHDOG: Duration = Duration::from_secs(60);

type Objects = (
    Lock,
    RLock,
    Mutex<u64>,
    Semaphore,
    BoundedSemaphore,
    Event,
    Condition,
    Barrier,
    Value<u64>,
    Array<u32>,
    Value<u64>,
);

/// The child's side: uses each handle it was given.
fn use_every_object(objects: Objects) -> u32 {
    let (lock, rlock, mutex, sem, bounded, event, cond, barrier, value, array, on_lock) = objects;
    drop(lock.lock_timeout(WATCHDOG).unwrap());
    drop(rlock.lock_timeout(WATCHDOG).unwrap());
    *mutex.lock_timeout(WATCHDOG).unwrap() += 1;
    sem.release().unwrap();
    bounded.acquire_timeout(WATCHDOG);
    value.fetch_add(1);
    array.fetch_add(1, 1).unwrap();
    on_lock.set(on_lock.get() + 1);
    cond.lock_timeout(WATCHDOG).unwrap().notify_all();
    event.set();
    barrier.wait_timeout(WATCHDOG).unwrap()
}

/// Joins under the watchdog; a child still running then is killed and the test fails.
fn join<R: serde::Serialize + for<'de> serde::Deserialize<'de>>(p: &Process<R>) -> R {
    match p.join_timeout(WATCHDOG) {
        Err(JoinError::Timeout) => {
            let _ = p.kill();
            let _ = p.join();
            panic!("watchdog: the child did not end");
        }
        other => other.unwrap(),
    }
}

#[test]
fn try_clone_leaves_the_caller_its_own_handle_of_every_object() {
    let lock = Lock::new().unwrap();
    let rlock = RLock::new().unwrap();
    let mutex = Mutex::new(0u64).unwrap();
    let sem = Semaphore::new(0).unwrap();
    let bounded = BoundedSemaphore::new(1).unwrap();
    let event = Event::new().unwrap();
    let cond = Condition::new().unwrap();
    let barrier = Barrier::new(2).unwrap();
    let value = Value::new(0u64).unwrap();
    let array = Array::<u32>::new(2).unwrap();
    let on_lock = Value::with_lock(0u64, &lock).unwrap();
    let p = Process::new(
        use_every_object,
        (
            lock.try_clone().unwrap(),
            rlock.try_clone().unwrap(),
            mutex.try_clone().unwrap(),
            sem.try_clone().unwrap(),
            bounded.try_clone().unwrap(),
            event.try_clone().unwrap(),
            cond.try_clone().unwrap(),
            barrier.try_clone().unwrap(),
            value.try_clone().unwrap(),
            array.try_clone().unwrap(),
            on_lock.try_clone().unwrap(),
        ),
    );
    p.start().unwrap();
    // The caller's handles all work while and after the child uses its own.
    let mine = barrier.wait_timeout(WATCHDOG).unwrap();
    let theirs = join(&p);
    assert_eq!(mine + theirs, 1);
    assert!(event.wait_timeout(WATCHDOG));
    assert!(sem.acquire_timeout(WATCHDOG));
    bounded.release().unwrap();
    assert_eq!(*mutex.lock().unwrap(), 1);
    assert_eq!(value.load(), 1);
    assert_eq!(array.to_vec(), [0, 1]);
    assert_eq!(on_lock.get(), 1);
    assert!(lock.try_lock().is_ok() && rlock.try_lock().is_ok() && cond.try_lock().is_ok());
}

#[test]
fn a_clone_outlives_the_handle_it_came_from() {
    let named = Value::create(&ipc_sync::Placement::NamedRandom, 7u32).unwrap();
    let anonymous = Event::new().unwrap();
    let (v, e) = (named.try_clone().unwrap(), anonymous.try_clone().unwrap());
    drop(anonymous);
    e.set();
    assert!(e.is_set());
    // The clone of a named object does not own the name: the original does.
    assert_eq!(v.name(), named.name());
    v.store(8);
    assert_eq!(named.load(), 8);
}
