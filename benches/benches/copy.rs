//! Copying 1 MiB: plain memory, and in and out of a shared segment (the copies the
//! `limit.ring_1mib` scenario makes), in one process.
//!
//! `cargo bench -p benches --bench copy`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use ipc_core::SharedMemory;

const MIB: usize = 1 << 20;

fn copies(c: &mut Criterion) {
    let mut g = c.benchmark_group("copy_1mib");
    g.throughput(Throughput::Bytes(MIB as u64));
    let src: Vec<u8> = (0..MIB).map(|i| (i * 31 + 7) as u8).collect();
    let mut dst = vec![0u8; MIB];
    let seg = SharedMemory::anonymous(MIB).expect("anonymous segment");

    g.bench_function("memcpy", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)));
    });
    g.bench_function("into_segment", |b| {
        b.iter(|| seg.write(0, black_box(&src)).expect("in bounds"));
    });
    g.bench_function("out_of_segment", |b| {
        b.iter(|| seg.read(0, black_box(&mut dst)).expect("in bounds"));
    });
    g.finish();

    seg.read(0, &mut dst).expect("in bounds");
    assert_eq!(dst, src, "the segment holds what was written");
}

/// criterion's macro generates an undocumented public function.
mod group {
    #![allow(missing_docs, unreachable_pub)]
    criterion::criterion_group!(benches, super::copies);
}

criterion_main!(group::benches);
