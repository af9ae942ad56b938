//! In-process throughput of the SPSC ring and the MPMC queue between two threads (the
//! two-process figures are `ipc-bench`'s `ours.*` scenarios).
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipc_queue::{Queue, RingBuffer};

const N: u64 = 1 << 16;

fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(N));
    g.bench_function("spsc_u64_slices", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mut tx, mut rx) = RingBuffer::<u64>::new(4096).unwrap();
                let start = Instant::now();
                let t = std::thread::spawn(move || {
                    let batch: Vec<u64> = (0..256).collect();
                    let mut sent = 0;
                    while sent < N {
                        let k = (N - sent).min(256) as usize;
                        sent += tx.push_slice(&batch[..k]).unwrap() as u64;
                    }
                });
                let mut buf = [0u64; 256];
                let mut got = 0;
                while got < N {
                    got += rx.pop_slice(&mut buf).unwrap() as u64;
                }
                t.join().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(N));
    g.bench_function("mpmc_u64_1p1c", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut q = Queue::<u64>::new(1024).unwrap();
                let mut p = Queue::<u64>::open_producer(&q.handle()).unwrap();
                q.close();
                let start = Instant::now();
                let t = std::thread::spawn(move || {
                    for i in 0..N {
                        p.put(i).unwrap();
                    }
                });
                for _ in 0..N {
                    q.get().unwrap();
                }
                t.join().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, ring, queue);
criterion_main!(benches);
