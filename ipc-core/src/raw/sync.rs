//! The workspace's one atomic facade: the atomics, [`fence`], [`Ordering`], [`spin_hint`],
//! [`look_pause`], [`quick_look_pause`], [`CachePadded`] and [`Backoff`] that every algorithm
//! on shared memory is written against.
//!
//! | build          | `AtomicU32`, `AtomicU64`, ..., `fence`                   | [`private`]     |
//! |----------------|----------------------------------------------------------|-----------------|
//! | normal         | the shared-memory atomics of [`atomic`](super::atomic) (std's, `#[repr(transparent)]`) | std's |
//! | `--cfg loom`   | loom's, behind the same names                            | std's           |
//!
//! ## Why one facade
//!
//! A lock, a semaphore or a ring index is a state machine over a few atomic words. Written
//! against these names, the same source file runs on shared memory in the library and on loom's
//! model atomics in a loom test, so the model checks the code that ships, not a copy of it. If
//! every crate kept its own facade (the workspace had four), each would have to agree with the
//! others on the wrapper types (the futex calls of [`futex`](super::futex) take the types of
//! [`atomic`](super::atomic), so a facade that named std's own types would not pass them) and
//! on how loom is switched on; one facade in the lowest crate settles both. The workspace's
//! `clippy.toml` disallows the std atomic types, so a direct use anywhere else is a lint error.
//!
//! Process-private statics (a cached identity, a fork generation) are never in shared memory
//! and never model-checked: they take [`private`]'s atomics, which stay std's under loom (and
//! have `const fn new`, which loom's do not).
//!
//! ## How a crate's loom tests use it
//!
//! 1. The crate names atomics only through this module, usually by a one-line
//!    `primitive.rs`: `pub(crate) use ipc_core::raw::sync::*;`.
//! 2. The algorithm lives in files that name nothing but `crate::primitive` (and a trait for
//!    whatever blocks or asks the kernel, which the test replaces with a model).
//! 3. `tests/loom.rs` includes those files with `#[path = "../src/..."] mod ...;` and runs them
//!    under `loom::model`. The test is built with `RUSTFLAGS="--cfg loom"`, which reaches
//!    `ipc-core` too (it must be a dependency of the crate in loom builds as well), so the
//!    names here are loom's:
//!
//!    ```text
//!    RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p <crate> --release --test loom
//!    ```
//!
//! Loom's atomics live on the heap of the model, not in a mapping: a model allocates the state
//! struct (and any slots) with `new` (not `const` under loom), and the `from_ptr` views of a
//! mapping exist only in normal builds. Code that builds in both uses what the two share:
//! `new`, the std methods (through `Deref` normally), `Default` and `Debug`. `ipc-core` itself always uses the std-backed atomics of
//! [`atomic`](super::atomic), since its syscall layer is outside any model.
//!
//! ```
//! use ipc_core::raw::sync::{AtomicU32, CachePadded, Ordering};
//!
//! let head = CachePadded::new(AtomicU32::new(0));
//! // ORDERING: Relaxed, a single-threaded example.
//! head.fetch_add(1, Ordering::Relaxed);
//! // ORDERING: Relaxed, as above.
//! assert_eq!(head.load(Ordering::Relaxed), 1);
//! ```

pub use crossbeam_utils::{Backoff, CachePadded};

#[cfg(not(loom))]
pub use super::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
    AtomicU32, AtomicU64, AtomicUsize,
};
#[cfg(not(loom))]
pub use core::sync::atomic::{Ordering, fence};

#[cfg(loom)]
pub use loom::sync::atomic::{Ordering, fence};

#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
    AtomicU32, AtomicU64, AtomicUsize,
};

/// Atomics for process-private statics (caches, counters, flags that never sit in shared memory
/// and are never part of a model): std's in every build, with `const fn new`.
///
/// ```
/// use ipc_core::raw::sync::{Ordering, private::AtomicU64};
///
/// static CALLS: AtomicU64 = AtomicU64::new(0);
/// // ORDERING: Relaxed, a counter that publishes nothing.
/// CALLS.fetch_add(1, Ordering::Relaxed);
/// ```
pub mod private {
    pub use super::super::atomic::{
        AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16,
        AtomicU32, AtomicU64, AtomicUsize,
    };
    pub use std::sync::atomic::AtomicPtr;
}

/// The body of a spin loop: a CPU hint normally, a yield to the model's scheduler under loom (a
/// model that spins without yielding never ends).
///
/// ```
/// ipc_core::raw::sync::spin_hint();
/// ```
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// The time a waiter leaves between two looks at a word another process is about to write
/// ([`look_pause`]): about what a cache line takes to cross between cores.
pub const LOOK_PERIOD: std::time::Duration = std::time::Duration::from_nanos(60);

/// The time a waiter leaves between two looks at a word whose writer publishes with stores
/// back to back ([`quick_look_pause`]): as short as a spin hint allows on a core whose hint is
/// slow, a few hints on one whose hint is fast.
pub const QUICK_LOOK_PERIOD: std::time::Duration = std::time::Duration::from_nanos(25);

/// The body of a loop that watches a word another process writes: [`spin_hint`]s for about
/// [`LOOK_PERIOD`] (the count calibrated once per process, since one hint takes 9 ns on some
/// cores and 23 ns on others; under loom, one yield).
///
/// A waiter that looks more often than a line can travel only pulls the line away from a
/// writer in the middle of its stores, and each pull costs the writer another round trip of the
/// line before its next store: a queue's slot takes a claim, a value and a commit, each a write
/// of the line its consumer watches. On a 2-vCPU Xeon whose hint takes 9 ns, a busy
/// `Connection` round trip (`ipc-bench`'s `ours.pipe_rtt`, builds run back to back, before its
/// chunks went out as one burst) took 347–357 ns looking after every hint, 337–343 ns every 4,
/// 327–350 ns every 8 (about 70 ns), 381–396 ns every 16, and 334–336 ns with this calibration
/// (which came to 8 hints there, 70 ns a look).
///
/// ```
/// ipc_core::raw::sync::look_pause();
/// ```
#[inline]
pub fn look_pause() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    for _ in 0..hints_per_look().0 {
        core::hint::spin_loop();
    }
}

/// [`look_pause`] for [`QUICK_LOOK_PERIOD`]: for a word whose writer publishes with stores back
/// to back (a `Connection` chunk of up to 16 bytes is one burst of four stores), so that a look
/// has nothing to interrupt and the waiter should see the word as soon as it can.
///
/// On a 2-vCPU EPYC whose hint takes 23 ns, a busy `Connection` round trip (`ours.pipe_rtt`,
/// three hints a look against one, alternated runs of one build) took 191–213 ns against
/// 141–146 ns while the two vCPUs shared a core, 588–598 ns against 553–567 ns while they did
/// not; a `Queue<u64>` stream, whose slots take three writes, went the other way (15.1–15.5 M
/// against 13.0 M messages/s), so queues keep [`look_pause`].
///
/// ```
/// ipc_core::raw::sync::quick_look_pause();
/// ```
#[inline]
pub fn quick_look_pause() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    for _ in 0..hints_per_look().1 {
        core::hint::spin_loop();
    }
}

/// How many spin hints make a [`LOOK_PERIOD`] here (the low byte) and a [`QUICK_LOOK_PERIOD`]
/// (the next byte); 0 until measured.
#[cfg(not(loom))]
static HINTS_PER_LOOK: private::AtomicU32 = private::AtomicU32::new(0);

#[cfg(not(loom))]
#[inline]
fn hints_per_look() -> (u32, u32) {
    // ORDERING: Relaxed, tuning figures that order nothing; a thread that finds 0 measures them
    // again, and any thread's measure will do.
    let n = match HINTS_PER_LOOK.load(Ordering::Relaxed) {
        0 => calibrate_look(),
        n => n,
    };
    (n & 0xff, n >> 8)
}

/// Times spin hints (the best of three short runs, so that a run cut by preemption does not
/// count) and stores how many make a [`LOOK_PERIOD`] and a [`QUICK_LOOK_PERIOD`], each between
/// 1 and 16.
#[cfg(not(loom))]
#[cold]
fn calibrate_look() -> u32 {
    const PROBE: u32 = 64;
    let mut best = u128::MAX;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        for _ in 0..PROBE {
            core::hint::spin_loop();
        }
        best = best.min(start.elapsed().as_nanos());
    }
    let hints = |period: std::time::Duration| {
        let period = period.as_nanos() * u128::from(PROBE);
        ((period + best / 2) / best.max(1)).clamp(1, 16) as u32
    };
    let n = hints(LOOK_PERIOD) | hints(QUICK_LOOK_PERIOD) << 8;
    // ORDERING: Relaxed, as in `hints_per_look`.
    HINTS_PER_LOOK.store(n, Ordering::Relaxed);
    n
}
