//! Micro-benchmarks of ipc-core's segment and futex operations, in one process.
//!
//! `cargo bench -p benches --bench segment`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use ipc_core::raw::futex::{self, Futex};
use ipc_core::{RawValue, SharedMemory};
use shared_memory::ShmemConf;

fn segments(c: &mut Criterion) {
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Elements(1));
    g.bench_function("anonymous_create_4k", |b| {
        b.iter(|| black_box(SharedMemory::anonymous(4096).expect("anonymous segment")))
    });
    g.bench_function("named_create_open_4k", |b| {
        b.iter(|| {
            let created = SharedMemory::create_named(4096).expect("named segment");
            let name = created.name().expect("named");
            let opened = SharedMemory::builder(name).open().expect("open");
            black_box((&created, &opened));
        })
    });
    g.bench_function("shared_memory_crate_create_open_4k", |b| {
        b.iter(|| {
            let created = ShmemConf::new().size(4096).create().expect("create");
            let opened = ShmemConf::new()
                .os_id(created.get_os_id())
                .open()
                .expect("open");
            black_box((&created, &opened));
        })
    });
    g.finish();
}

fn futexes(c: &mut Criterion) {
    let mut g = c.benchmark_group("futex");
    g.throughput(Throughput::Elements(1));
    let block = SharedMemory::anonymous(4096).expect("anonymous segment");
    // SAFETY: the segment is 4096 zeroed, page-aligned bytes; `Futex` is `#[repr(C)]`, 8 bytes,
    // valid for every bit pattern, and only accessed atomically; `block` outlives `f`.
    let f = unsafe { &*block.as_ptr().cast::<Futex>() };
    g.bench_function("wake_one_no_waiters", |b| {
        b.iter(|| black_box(f.wake_one()))
    });
    g.bench_function("wake_syscall_no_waiters", |b| {
        b.iter(|| black_box(futex::wake(f.word(), 1)))
    });
    g.bench_function("store_and_wake_all_no_waiters", |b| {
        let mut v = 0u32;
        b.iter(|| {
            v = v.wrapping_add(1);
            f.store_and_wake_all(black_box(v));
        })
    });
    g.finish();
}

fn raw_values(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_value");
    g.throughput(Throughput::Elements(1));
    let value = RawValue::new(0u64).expect("raw value");
    g.bench_function("fetch_add_u64", |b| {
        b.iter(|| black_box(value.fetch_add(1)))
    });
    g.bench_function("get_u64", |b| b.iter(|| black_box(value.get())));
    g.finish();
}

/// criterion's macro generates an undocumented public function.
mod group {
    #![allow(missing_docs, unreachable_pub)]
    criterion::criterion_group!(benches, super::segments, super::futexes, super::raw_values);
}

criterion_main!(group::benches);
