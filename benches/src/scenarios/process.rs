//! `ours.start_*` and `raw.*`: the cost of starting a process and collecting its result.
//!
//! - `ours.start_fork`, `ours.start_spawn`, `ours.start_forkserver` (ms): [`Process::start`] of a
//!   no-op child with that start method, then [`Process::join`] returning its result (a `u32`).
//!   Compare with `python.start_fork`, `python.start_spawn`, `python.start_forkserver`.
//! - `raw.fork_exit_wait` (ms): `fork()`, `_exit(0)` in the child, `waitpid` in the parent: the
//!   bare call under `ours.start_fork`. The child runs nothing else (no death signal, no pin:
//!   [`fork_bare`]), as a child of `Process` arms nothing.
//! - `raw.reexec_wait` (ms): this executable run again (`/proc/self/exe`, as the spawn method
//!   runs it) that exits from a constructor before `main`, waited for: the floor under
//!   `ours.start_spawn`.
//! - `raw.fork_result_wait` (ms): the bare form of a start that returns a result, the floor of
//!   `ours.start_fork`: a socket pair; `fork`; the child sends a 6-byte result frame
//!   (`MSG_NOSIGNAL`) and `_exit(0)`s; the parent opens the child's pidfd (the sentinel), polls
//!   the socket with it, reads the result, then waits for the end as a join does (a yield, then
//!   `waitpid` without blocking, for up to 1 ms; then `waitpid`).
//! - `raw.fork_result_wait_code8` (ms): `raw.fork_result_wait` whose child first reads one byte
//!   of each of eight 64 KiB windows of the C library's code, spread over it (found in
//!   `/proc/self/maps` before the timing starts). `fork` does not copy the page-table entries of
//!   code, so each window a fresh child touches first is a page fault that maps it; paired with
//!   `raw.fork_result_wait`, the difference ÷ 8 is what one window of code costs a forked child.
//! - `ours.start_spawn_200mb`, `raw.reexec_wait_200mb` (ms): the same two while this process
//!   holds 200 MB of written heap (allocated and written before the timing starts): what a
//!   start costs from a process with a large heap, where a `fork` before the `exec` would copy
//!   every page-table entry of it.
//!
//! `ipc-bench` is single-threaded, so the `Fork` method runs without accepting any risk.

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ipc_core::{Process, StartMethod};

use crate::harness::{fork_bare, per_call};
use crate::scenario::{Config, Repeat, Scenario, Unit};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("ours.start_fork", Unit::Ms, |cfg| start_join(cfg, StartMethod::Fork)),
        Scenario::new("ours.start_spawn", Unit::Ms, |cfg| start_join(cfg, StartMethod::Spawn)),
        Scenario::new("ours.start_forkserver", Unit::Ms, |cfg| {
            start_join(cfg, StartMethod::ForkServer)
        }),
        Scenario::new("raw.fork_exit_wait", Unit::Ms, fork_exit_wait),
        Scenario::new("raw.reexec_wait", Unit::Ms, reexec_wait),
        Scenario::new("raw.fork_result_wait", Unit::Ms, |cfg| fork_result_wait(cfg, &[])),
        Scenario::new("raw.fork_result_wait_code8", Unit::Ms, |cfg| {
            fork_result_wait(cfg, &code_windows(8)?)
        }),
        Scenario::new("ours.start_spawn_200mb", Unit::Ms, |cfg| {
            with_heap(|| start_join(cfg, StartMethod::Spawn))
        }),
        Scenario::new("raw.reexec_wait_200mb", Unit::Ms, |cfg| {
            with_heap(|| reexec_wait(cfg))
        }),
    ]
}

/// The heap the `_200mb` scenarios hold while they start processes.
const HEAP_BYTES: usize = 200 << 20;

/// Runs `run` while this process holds [`HEAP_BYTES`] of heap, every page of it written (so
/// mapped) before `run` starts its timing.
fn with_heap(run: impl FnOnce() -> Repeat) -> Repeat {
    let heap = vec![1u8; HEAP_BYTES];
    let r = run();
    std::hint::black_box(&heap);
    r
}

/// The environment variable that makes a re-executed `ipc-bench` exit before `main`.
const EXIT_AT_ONCE: &str = "IPC_BENCH_EXIT_AT_ONCE";

extern "C" fn exit_at_once() {
    if std::env::var_os(EXIT_AT_ONCE).is_some() {
        // SAFETY: `_exit` has no preconditions; nothing of this fresh process needs cleaning up.
        unsafe { libc::_exit(0) };
    }
}

/// Runs before `main` in every run of a binary that links this module.
#[used]
#[unsafe(link_section = ".init_array")]
static EXIT_AT_ONCE_HOOK: extern "C" fn() = exit_at_once;

fn noop(x: u32) -> u32 {
    x + 1
}

fn start_join(cfg: &Config, method: StartMethod) -> Repeat {
    Ok(per_call(cfg.budget(), |_| {
        let p = Process::builder().start_method(method).target(noop, 41);
        p.start()
            .with_context(|| format!("start with {method:?}"))?;
        let r = p.join().with_context(|| format!("join with {method:?}"))?;
        ensure!(r == 42, "the child returned {r}");
        Ok(())
    })?
    .into())
}

fn fork_exit_wait(cfg: &Config) -> Repeat {
    Ok(per_call(cfg.budget(), |_| fork_bare(|| 0)?.wait())?.into())
}

/// One address in each of `count` 64 KiB windows of the C library's code, spread evenly over
/// its executable mapping.
fn code_windows(count: usize) -> anyhow::Result<Vec<usize>> {
    const WINDOW: usize = 64 << 10;
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    let (start, end) = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            let name = path.rsplit('/').next()?;
            if perms != "r-xp" || !name.starts_with("libc.so") {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
        })
        .next()
        .context("no executable mapping of the C library (libc.so) in /proc/self/maps")?;
    let first = start.div_ceil(WINDOW);
    let windows = end / WINDOW - first;
    ensure!(
        windows >= count,
        "the C library's code spans {windows} whole 64 KiB windows, fewer than {count}"
    );
    Ok((0..count)
        .map(|i| (first + i * windows / count) * WINDOW + WINDOW / 2)
        .collect())
}

/// `raw.fork_result_wait`, whose child first reads one byte at each address of `touch`.
fn fork_result_wait(cfg: &Config, touch: &[usize]) -> Repeat {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const FRAME: &[u8; 6] = b"R\x01\0\0\0\x2a";
    Ok(per_call(cfg.budget(), |_| {
        let (mut ours, theirs) = UnixStream::pair()?;
        let mut child = fork_bare(|| {
            for &at in touch {
                // SAFETY: `at` lies inside the C library's executable (readable) mapping, found
                // in /proc/self/maps; the library stays loaded for the life of the process.
                std::hint::black_box(unsafe { std::ptr::read_volatile(at as *const u8) });
            }
            // SAFETY: `theirs` is open in the child; `FRAME` is a valid buffer of its length.
            let sent = unsafe {
                libc::send(
                    theirs.as_raw_fd(),
                    FRAME.as_ptr().cast(),
                    FRAME.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            i32::from(sent != FRAME.len() as isize)
        })?;
        drop(theirs);
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.pid(), 0) };
        ensure!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just opened by this process and is owned by nothing else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut fds = [
            libc::pollfd { fd: ours.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a valid array of two pollfds for the call.
        while unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            ensure!(e.kind() == std::io::ErrorKind::Interrupted, "poll: {e}");
        }
        let mut got = [0u8; 6];
        ours.read_exact(&mut got)?;
        ensure!(&got == FRAME, "the child sent {got:?}");
        let until = Instant::now() + Duration::from_millis(1);
        while Instant::now() < until {
            std::thread::yield_now();
            if child.try_wait()? {
                return Ok(());
            }
        }
        child.wait()
    })?
    .into())
}

fn reexec_wait(cfg: &Config) -> Repeat {
    Ok(per_call(cfg.budget(), |_| {
        let status = Command::new("/proc/self/exe")
            .env(EXIT_AT_ONCE, "1")
            .status()
            .context("re-executing ipc-bench")?;
        ensure!(status.success(), "the re-executed binary failed: {status}");
        Ok(())
    })?
    .into())
}
