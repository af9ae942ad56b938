//! # ipc-sync
//!
//! Python's `multiprocessing` synchronisation primitives and shared ctypes, in shared memory,
//! usable from every process that holds the handle — and, unlike Python's, safe when a process
//! dies holding one: a lock whose holder was SIGKILLed is handed to the next acquirer with
//! [`OwnerDied`], a barrier a party died at breaks instead of hanging.
//!
//! | Python `multiprocessing`              | `ipc_sync`                                              |
//! |---------------------------------------|---------------------------------------------------------|
//! | `Lock()`, `acquire`, `release`, `with lock:` | [`Lock::new`], [`lock`](Lock::lock) / [`try_lock`](Lock::try_lock) / [`lock_timeout`](Lock::lock_timeout), guard drop |
//! | `RLock()`                             | [`ReentrantLock`] (alias [`RLock`])                     |
//! | (none: a lock around a value)         | [`Mutex<T>`]                                            |
//! | `Semaphore(n)`, `BoundedSemaphore(n)` | [`Semaphore::new`], [`BoundedSemaphore::new`] |
//! | `Event()`, `set`, `clear`, `is_set`, `wait(timeout)` | [`Event`]: same verbs, [`wait_timeout`](Event::wait_timeout) |
//! | `Condition()`, `Condition(lock)`, `wait`, `wait_for`, `notify(n)`, `notify_all` | [`Condition::new`], [`Condition::with_lock`]; the verbs are on its guard; `notify_n(n)` wakes exactly `n` |
//! | `Barrier(n, action, timeout)`, `wait`, `reset`, `abort`, `parties`, `n_waiting`, `broken` | [`Barrier::new`], [`Barrier::builder`] ([`BarrierAction`]); same verbs, [`reset_timeout`](Barrier::reset_timeout), [`is_broken`](Barrier::is_broken) |
//! | `Value('i', 5)`, `Value('i', 5, lock=l)`, `get_lock()`, `.value` | [`Value::new`]`(5i32)`, [`Value::with_lock`], [`get_lock`](Value::get_lock), [`get`](Value::get) / [`set`](Value::set) |
//! | `Array('i', [1, 2, 3])`, `arr[2:7]`, `arr[4:8] = xs` | [`Array::from_slice`]`(&[1, 2, 3])`, [`read_range`](Array::read_range), [`write_range`](Array::write_range) |
//! | `Process(target=f, args=(lock,))`     | `Process::new(f, lock.try_clone()?)`: every object has `try_clone` |
//!
//! Every blocking call has an async form for any executor, named `x_async` after it:
//! [`lock_async`](Lock::lock_async), [`acquire_async`](Semaphore::acquire_async),
//! [`wait_async`](Event::wait_async), [`ConditionGuard::wait_async`],
//! [`Barrier::wait_async`], and their `*_timeout_async`/`*_deadline_async` forms. (Python's
//! `asyncio` has locks and events only between coroutines of one event loop, no multiprocessing
//! ones.) Dropping such a future cancels it cleanly, so a runtime's timeout composes with it;
//! the README's "Async forms" says what each drop gives back.
//!
//! ```
//! use ipc_sync::{Event, Lock};
//!
//! let lock = Lock::new()?;
//! let done = Event::new()?;
//! futures::executor::block_on(async {
//!     let g = lock.lock_async().await.unwrap();
//!     done.set();
//!     drop(g);
//!     done.wait_async().await;
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every object lives in its own segment (anonymous by default, or named), starts with the
//! validated `ipc_core` header carrying its own type fingerprint, and serialises to its handle,
//! so it can be passed to a child process as an argument; `try_clone` gives a second handle, so
//! the caller keeps its own. Creating and opening report [`CreateError`] and [`OpenError`].
//!
//! Guards release when dropped, so a guard that is not bound to a name releases at once: the
//! guards are `#[must_use]`.
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! let lock = ipc_sync::Lock::new().unwrap();
//! lock.lock().unwrap(); // the guard is dropped here: the lock is not held on the next line
//! ```
//!
//! ```
//! use ipc_sync::{Event, Lock, Value};
//!
//! let counter = Value::new(0u64)?;
//! let lock = Lock::new()?;
//! {
//!     let _g = lock.lock().unwrap();
//!     counter.set(counter.get() + 1);
//! }
//! counter.fetch_add(1); // lock-free
//! assert_eq!(counter.get(), 2);
//!
//! let done = Event::new()?;
//! done.set();
//! assert!(done.wait_timeout(std::time::Duration::ZERO));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Design notes (the state machines, robust futex lists, why not `raw_sync`) are in the crate's
//! README.

// Under `--cfg loom` the library builds only the state machines, which `tests/loom.rs` compiles
// again from their source files; nothing in the library itself uses them then.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod array;
#[cfg(not(loom))]
mod barrier;
#[cfg(not(loom))]
mod condition;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod event;
#[cfg(not(loom))]
mod future;
#[cfg(not(loom))]
mod lock;
#[cfg(not(loom))]
mod mutex;
#[cfg(not(loom))]
mod object;
#[cfg(not(loom))]
mod os;
mod primitive;
mod raw_condition;
mod raw_lock;
mod raw_semaphore;
#[cfg(not(loom))]
mod rlock;
#[cfg(not(loom))]
mod semaphore;
#[cfg(not(loom))]
mod supplied;
mod sys;
#[cfg(not(loom))]
mod value;

#[cfg(not(loom))]
pub use array::{Array, ArrayGuard};
#[cfg(not(loom))]
pub use barrier::{Barrier, BarrierAction, BarrierBuilder, BarrierState, MAX_PARTIES, NoAction};
#[cfg(not(loom))]
pub use condition::{Condition, ConditionGuard, ConditionState};
#[cfg(not(loom))]
pub use error::{
    BarrierResetError, BarrierWaitError, LockTimeoutError, NotOwner, OwnerDied, ReleaseError,
    TryLockError,
};
#[cfg(not(loom))]
pub use event::{Event, EventState};
/// The errors of creating and opening an object, and where to create one, from `ipc_core`
/// (re-exported so that a user of this crate names them from here).
#[cfg(not(loom))]
pub use ipc_core::{CreateError, ObjectHandle, OpenError, Placement};
#[cfg(not(loom))]
pub use lock::{Lock, LockGuard};
#[cfg(not(loom))]
pub use mutex::{Mutex, MutexGuard};
pub use raw_lock::LockState;
pub use raw_semaphore::SemaphoreState;
#[cfg(not(loom))]
pub use rlock::{RLock, ReentrantLock, ReentrantLockGuard, ReentrantLockState};
#[cfg(not(loom))]
pub use semaphore::{BoundedSemaphore, Semaphore};
#[cfg(not(loom))]
pub use supplied::SuppliedLock;
#[cfg(not(loom))]
pub use value::{Value, ValueGuard};
