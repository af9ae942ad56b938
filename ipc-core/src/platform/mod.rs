//! Operating-system calls, kept in one place so a port touches only this folder.
//!
//! Linux is the tested platform; `linux.rs` holds every syscall the crate makes. A port to another
//! system provides the same functions in a sibling file.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-core supports Linux only for now; see platform/mod.rs for what a port needs");
