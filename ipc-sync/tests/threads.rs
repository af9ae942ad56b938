//! One object shared by several threads of one process: the lock's orderings make every write
//! under it visible to the next holder. CI also runs these under ThreadSanitizer, which sees
//! the plain (non-atomic) accesses a `Mutex<T>` guard makes and would report a data race if
//! an acquire or a release were missing.

use std::sync::Barrier;

use ipc_sync::{Mutex, Value};

const THREADS: u64 = 4;
const ROUNDS: u64 = if cfg!(miri) { 10 } else { 5_000 };

#[test]
fn a_mutex_guard_excludes_other_threads() {
    let m = Mutex::new(0u64).unwrap();
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                start.wait();
                for _ in 0..ROUNDS {
                    let mut g = m.lock().unwrap();
                    // A plain read-modify-write: only the lock keeps it exact.
                    *g += 1;
                }
            });
        }
    });
    assert_eq!(*m.lock().unwrap(), THREADS * ROUNDS);
}

#[test]
fn a_value_updated_under_its_lock_loses_nothing() {
    let v = Value::new(0u64).unwrap();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let mut g = v.get_lock().unwrap();
                    g.update(|x| *x += 1);
                }
            });
        }
    });
    assert_eq!(v.get(), THREADS * ROUNDS);
}
