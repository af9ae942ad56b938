//! # ipc-sync
//!
//! Cross-process synchronisation in shared memory: `Lock`, `RLock`, `Mutex<T>`, `Semaphore`,
//! `BoundedSemaphore`, `Event`, `Condition`, `Barrier`, and the synchronised `Value<T>` and
//! `Array<T>` — robust when a holder dies.
//!
//! This crate is being built; it exports nothing yet. The blocking primitive it will use is
//! [`ipc_core::futex`].
