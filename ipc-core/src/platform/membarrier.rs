//! `membarrier(2)`: a full memory barrier on every running thread of the processes that
//! registered for it, the heavy side of [`raw::barrier`](crate::raw::barrier).

use std::io;

use rustix::thread::{MembarrierCommand, membarrier, membarrier_query};

/// Registers this process for expedited global barriers, if the kernel supports them. After it
/// returns `Ok`, a [`membarrier_global`] anywhere on the machine runs a full barrier on each of
/// this process's running threads before it returns. A forked child must register again.
pub(crate) fn membarrier_register() -> io::Result<()> {
    let supported = membarrier_query();
    if !supported.contains_command(MembarrierCommand::GlobalExpedited)
        || !supported.contains_command(MembarrierCommand::RegisterGlobalExpedited)
    {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(membarrier(MembarrierCommand::RegisterGlobalExpedited)?)
}

/// Runs a full memory barrier on every running thread of every registered process (and is one
/// on the calling thread). `Err` where the kernel lacks the command (then no process could
/// register either) or a filter refuses it. The slow system-wide `MEMBARRIER_CMD_GLOBAL` is not
/// a fallback: it waits for an RCU grace period, milliseconds before every sleep.
pub(crate) fn membarrier_global() -> io::Result<()> {
    Ok(membarrier(MembarrierCommand::GlobalExpedited)?)
}
