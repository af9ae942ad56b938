//! `membarrier(2)`: a full memory barrier on every running thread of the processes that
//! registered for it, the heavy side of [`raw::barrier`](crate::raw::barrier).

use std::io;

/// `MEMBARRIER_CMD_QUERY`: the bit set of supported commands.
const CMD_QUERY: libc::c_int = 0;
/// `MEMBARRIER_CMD_GLOBAL`: a barrier on every thread of the system (an RCU grace period: slow,
/// but needs no registration).
const CMD_GLOBAL: libc::c_int = 1;
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED`: a barrier (by IPI) on every running thread of every process
/// that registered with [`CMD_REGISTER_GLOBAL_EXPEDITED`].
const CMD_GLOBAL_EXPEDITED: libc::c_int = 2;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`: this process receives those barriers.
const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 4;

fn membarrier(cmd: libc::c_int) -> io::Result<libc::c_long> {
    // SAFETY: membarrier takes a command and two integer flags; it reads and writes no memory of
    // ours.
    let ret = unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Registers this process for expedited global barriers, if the kernel supports them. After it
/// returns `Ok`, a [`membarrier_global`] anywhere on the machine runs a full barrier on each of
/// this process's running threads before it returns. A forked child must register again.
pub(crate) fn membarrier_register() -> io::Result<()> {
    let supported = membarrier(CMD_QUERY)?;
    if supported & libc::c_long::from(CMD_GLOBAL_EXPEDITED) == 0
        || supported & libc::c_long::from(CMD_REGISTER_GLOBAL_EXPEDITED) == 0
    {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    membarrier(CMD_REGISTER_GLOBAL_EXPEDITED).map(drop)
}

/// Runs a full memory barrier on every running thread of every registered process (and is one
/// on the calling thread). Falls back to the slow system-wide command when the expedited one
/// is refused; `Err` only if neither is available.
pub(crate) fn membarrier_global() -> io::Result<()> {
    match membarrier(CMD_GLOBAL_EXPEDITED) {
        Ok(_) => Ok(()),
        Err(_) => membarrier(CMD_GLOBAL).map(drop),
    }
}
