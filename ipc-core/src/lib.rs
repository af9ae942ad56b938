//! # ipc-core
//!
//! The base of the workspace: shared-memory segments, the validated segment header, typed raw
//! values and arrays, futex wait/wake, process liveness, the codec, and the cleanup tracker.
//!
//! | Python `multiprocessing`                       | `ipc_core`                                    |
//! |------------------------------------------------|-----------------------------------------------|
//! | `shared_memory.SharedMemory(name, create, size)` | [`SharedMemory::builder`]`(name).size(n).create()` / `.open()` |
//! | `SharedMemory(create=True, size=n)` (random name) | [`SharedMemory::create_named`]              |
//! | `shm.unlink()`                                 | [`SharedMemory::unlink`] (automatic on drop for the owner) |
//! | `sharedctypes.RawValue('i', 5)`                | [`RawValue::new`]`(5i32)`                       |
//! | `sharedctypes.RawArray('d', 10)`               | [`RawArray::<f64>::new`]`(10)`                  |
//! | `resource_tracker`                             | automatic for named segments this process created |
//! | `Process(target, args)`, `start`, `join`       | [`Process::new`]`(f, arg)`, `start`, `join`; async: [`Process::join_async`] |
//!
//! ```
//! use ipc_core::{RawArray, RawValue, SharedMemory};
//!
//! let value = RawValue::new(5u64)?;
//! value.fetch_add(10);
//! assert_eq!(value.get(), 15);
//!
//! let array = RawArray::from_slice(&[1.0f64, 2.0, 3.0])?;
//! array.set(0, 0.5)?;
//! assert_eq!(array.to_vec(), [0.5, 2.0, 3.0]);
//!
//! let seg = SharedMemory::create_named(64)?;   // visible in /dev/shm as seg.name()
//! assert!(seg.name().unwrap().starts_with("ipc-"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every object segment starts with a header (see [`raw::header`]) that `open` validates: a
//! segment that is not ours, of another layout version, of another type, truncated, or still
//! initialising past a timeout each gives its own [`OpenError`]. [`raw`] holds the building
//! blocks for shared objects of your own.

pub mod codec;
mod error;
mod liveness;
mod platform;
mod primitive;
pub mod process;
pub mod raw;
mod raw_array;
mod raw_value;
mod role;
mod segment;
mod tracker;

pub use error::{CreateError, OpenError};
pub use liveness::{Liveness, ProcessIdentity};
pub use raw::object::{ObjectHandle, Placement};
pub use raw::pod::AtomicInt;
// The building blocks under their earlier paths, for code written before `raw` existed.
pub use process::{
    ActiveChild, CurrentProcess, JoinError, ParentProcess, Process, ProcessBuilder, Runnable,
    SignalError, StartError, StartMethod, active_children, cpu_count, current_process,
    get_start_method, parent_process, set_start_method,
};
#[doc(hidden)]
pub use raw::{ObjectSegment, TypeFingerprint, atomic, futex, header, pod};
pub use raw_array::{IndexOutOfBounds, RawArray};
pub use raw_value::RawValue;
pub use role::init;

/// 128 bits from the kernel's random source (`getrandom`), for keys and unguessable names.
///
/// ```
/// assert_ne!(ipc_core::random_u128(), ipc_core::random_u128());
/// ```
pub fn random_u128() -> u128 {
    platform::random_u128()
}
pub use segment::{
    AccessError, NAME_PREFIX, OutOfBounds, SegmentHandle, SharedMemory, SharedMemoryBuilder,
    random_name,
};
