//! Operating-system calls, kept in one place so a port touches only this folder.
//!
//! Linux is the tested platform; `linux.rs` holds the syscalls of segments, futexes, liveness
//! and processes, `waitv.rs` those of the reactor's waiter threads (`futex_waitv`, probes,
//! the descriptor watcher's doorbell), and `membarrier.rs` the heavy side of the asymmetric
//! barrier. They call the kernel through `rustix`; the few calls that stay on `libc`, and why,
//! are listed at the top of `linux.rs` and marked where they are made. A port to another system
//! provides the same functions in sibling files.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;
#[cfg(target_os = "linux")]
mod membarrier;
#[cfg(target_os = "linux")]
pub(crate) use membarrier::*;
#[cfg(target_os = "linux")]
mod waitv;
#[cfg(target_os = "linux")]
pub(crate) use waitv::*;

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-core supports Linux only for now; see platform/mod.rs for what a port needs");
