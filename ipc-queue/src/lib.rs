//! # ipc-queue
//!
//! The data path between processes: a lock-free SPSC ring, the MPMC `Queue<T>`,
//! `JoinableQueue`, `SimpleQueue`, `Pipe`/`Connection` and `wait()`, all in shared memory.
//!
//! This crate is being built; it exports nothing yet.
