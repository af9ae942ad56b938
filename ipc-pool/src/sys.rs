//! Linux calls of this crate: poll over pidfds, for noticing a worker's death at once.

use std::io;
use std::time::Duration;

/// Waits until one of `fds` is readable or `timeout` passes; returns the readable indices. The
/// caller keeps the descriptors open for the call.
pub(crate) fn poll_raw_readable(
    fds: &[std::os::fd::RawFd],
    timeout: Duration,
) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs for the call's duration; a
    // descriptor closed meanwhile only yields POLLNVAL.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Vec::new());
        }
        return Err(e);
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}
