//! The last line of defence against a scenario that never returns (a library call that hangs
//! where it should fail): every repeat runs under an alarm, and a repeat still running after
//! [`REPEAT_LIMIT`] ends the run with exit status 1 and the scenario's name on standard error,
//! instead of hanging it. (Every wait inside the harness is bounded by
//! [`WAIT_LIMIT`](super::WAIT_LIMIT) already; this catches the waits inside the code measured.)
//! Forked peers do not inherit the alarm, and die with the run (`PR_SET_PDEATHSIG`).

use std::time::Duration;

use crate::primitive::{Ordering, SharedU64};

/// How long one repeat may run: well beyond the Python script's own limit (300 s).
pub const REPEAT_LIMIT: Duration = Duration::from_secs(600);

/// The name of the scenario running, for the alarm's message (a signal handler may read
/// atomics, not a `String`).
static NAME: [SharedU64; 16] = [const { SharedU64::new(0) }; 16];

const PREFIX: &[u8] = b"\nipc-bench: stopping the run: this repeat has not finished within 600 s: ";

extern "C" fn on_alarm(_: libc::c_int) {
    let mut name = [0u8; 128];
    for (chunk, word) in name.chunks_exact_mut(8).zip(&NAME) {
        // ORDERING: Relaxed; stored by `arm` before `alarm` was called in this same thread.
        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    for part in [PREFIX, &name[..len], b"\n"] {
        // SAFETY: write(2) is async-signal-safe; the buffers are valid for their lengths.
        let _ = unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(1) };
}

/// Arms the alarm for a repeat of `name`.
pub(crate) fn arm(name: &str) {
    arm_for(name, REPEAT_LIMIT.as_secs() as libc::c_uint);
}

fn arm_for(name: &str, secs: libc::c_uint) {
    let mut bytes = [0u8; 128];
    let n = name.len().min(127);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    for (chunk, word) in bytes.chunks_exact(8).zip(&NAME) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // ORDERING: Relaxed; the handler runs in this thread, after these stores.
        word.store(v, Ordering::Relaxed);
    }
    let handler = on_alarm as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs an async-signal-safe handler for SIGALRM (it only reads atomics and
    // calls write and _exit); `signal` has no memory-safety preconditions beyond that.
    unsafe { libc::signal(libc::SIGALRM, handler) };
    // SAFETY: alarm only schedules a signal for this process.
    unsafe { libc::alarm(secs) };
}

/// Disarms the alarm after a repeat.
pub(crate) fn disarm() {
    // SAFETY: alarm(0) cancels a pending alarm; no preconditions.
    unsafe { libc::alarm(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_past_its_limit_ends_the_process_with_status_1() {
        // SAFETY: the child only calls async-signal-safe functions (signal, alarm, sleep,
        // and the handler's write and _exit) before it ends.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            arm_for("demo.hang", 1);
            // SAFETY: sleep has no preconditions; the alarm interrupts it.
            unsafe { libc::sleep(30) };
            // SAFETY: _exit ends the child; reaching it means the alarm did not fire.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1,
            "{status:#x}"
        );
    }
}
