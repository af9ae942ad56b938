//! Single-process costs of the primitives' fast paths (the two-process figures are in
//! `ipc-bench`).

#![allow(missing_docs)] // criterion_group! generates an undocumented function
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipc_sync::{Event, Lock, Mutex, ReentrantLock, Semaphore, Value};

fn fast_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    g.throughput(Throughput::Elements(1));

    let lock = Lock::new().unwrap();
    g.bench_function("lock_unlock", |b| b.iter(|| drop(lock.lock())));

    let rl = ReentrantLock::new().unwrap();
    g.bench_function("rlock_unlock", |b| b.iter(|| drop(rl.lock())));

    let m = Mutex::new(0u64).unwrap();
    g.bench_function("mutex_incr", |b| {
        b.iter(|| {
            if let Ok(mut v) = m.lock() {
                *v += 1;
            }
        })
    });

    let v = Value::new(0u64).unwrap();
    g.bench_function("value_fetch_add", |b| b.iter(|| v.fetch_add(1)));

    let s = Semaphore::new(1).unwrap();
    g.bench_function("semaphore_acquire_release", |b| {
        b.iter(|| {
            s.acquire();
            s.release()
        })
    });

    let e = Event::new().unwrap();
    g.bench_function("event_set_clear", |b| {
        b.iter(|| {
            e.set();
            e.clear();
        })
    });
    g.finish();
}

criterion_group!(benches, fast_paths);
criterion_main!(benches);
