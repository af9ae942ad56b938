//! A `Connection`'s own cost, in one thread: a `u64` sent and received at once (the ring never
//! fills, nobody waits), blocking and awaited, so that what the async forms add to a call that
//! need not wait shows beside the blocking call. The round trip between processes is
//! `ipc-bench`'s `ours.pipe_rtt` and `ours.async_pipe_rtt`.
//!
//! `cargo bench -p benches --bench connection`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use ipc_queue::Connection;

/// `iters` rounds of `round` (a send and a receive) awaited under a current-thread tokio
/// runtime, timed inside the runtime so that its `block_on` is not counted.
fn awaited<F: AsyncFnMut(u64)>(rt: &tokio::runtime::Runtime, iters: u64, mut round: F) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            round(i).await;
        }
        start.elapsed()
    })
}

fn one_thread(c: &mut Criterion) {
    let (mut a, mut b): (Connection, Connection) = ipc_queue::pipe().expect("pipe");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("connection_one_thread");
    let mut i = 0u64;
    g.bench_function("send_recv_u64", |bch| {
        bch.iter(|| {
            a.send(&i).expect("send");
            i = i.wrapping_add(1);
            black_box(b.recv::<u64>().expect("recv"))
        });
    });
    let mut buf = [0u8; 8];
    g.bench_function("send_bytes_recv_bytes_into_8", |bch| {
        bch.iter(|| {
            a.send_bytes(&black_box(i).to_ne_bytes()).expect("send");
            black_box(b.recv_bytes_into(&mut buf).expect("recv"))
        });
    });
    g.bench_function("send_async_recv_u64", |bch| {
        bch.iter_custom(|iters| {
            awaited(&rt, iters, async |i| {
                a.send_async(&i).await.expect("send");
                black_box(b.recv::<u64>().expect("recv"));
            })
        });
    });
    g.bench_function("send_recv_async_u64", |bch| {
        bch.iter_custom(|iters| {
            awaited(&rt, iters, async |i| {
                a.send(&i).expect("send");
                black_box(b.recv_async::<u64>().await.expect("recv"));
            })
        });
    });
    g.bench_function("send_async_recv_async_u64", |bch| {
        bch.iter_custom(|iters| {
            awaited(&rt, iters, async |i| {
                a.send_async(&i).await.expect("send");
                black_box(b.recv_async::<u64>().await.expect("recv"));
            })
        });
    });
    g.finish();
    assert!(!b.poll().expect("poll"), "every value was received");
}

/// criterion's macro generates an undocumented public function.
mod group {
    #![allow(missing_docs, unreachable_pub)]
    criterion::criterion_group!(benches, super::one_thread);
}

criterion_main!(group::benches);
