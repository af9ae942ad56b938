//! # ipc-pool
//!
//! Process pools composed from the lower crates: `Pool`, `AsyncResult`, an executor, worker
//! supervision, zero-copy chunked map, and the `Manager`.
//!
//! This crate is being built; it exports nothing yet.
