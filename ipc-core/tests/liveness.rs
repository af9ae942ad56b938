//! Liveness: dead only when the kernel says so. A process out of descriptors (a server at its
//! `RLIMIT_NOFILE`) cannot read `/proc`, and must then judge every live process alive, itself
//! included, and cache nothing from the failed lookup.

use ipc_core::{Liveness, ProcessIdentity};
use ipc_testkit::{WATCHDOG, exhaust_descriptors, spawn};

#[test]
#[ignore = "child role of out_of_descriptors_nobody_is_judged_dead"]
fn child_out_of_descriptors() {
    let Some(parent_start) = ipc_testkit::child_input::<u64>() else {
        return;
    };
    let me = ProcessIdentity::current().expect("cached before main");
    // SAFETY: getppid has no preconditions.
    let parent = ProcessIdentity::from_parts(unsafe { libc::getppid() } as u32, parent_start);
    assert_eq!(parent.liveness(), Liveness::Alive);
    let mut files = exhaust_descriptors();

    // Live processes: the question cannot be answered, so they are not dead.
    assert_eq!(me.liveness(), Liveness::Unknown);
    assert!(me.is_alive());
    assert_eq!(parent.liveness(), Liveness::Unknown);
    assert!(
        ProcessIdentity::liveness_of_tag(me.pid(), me.start_tag()) != Liveness::Dead,
        "a live holder judged dead at the descriptor limit"
    );
    // A pid that names no process is still known dead: kill(pid, 0) needs no descriptor.
    assert_eq!(
        ProcessIdentity::from_parts(0x3fff_fff0, 1).liveness(),
        Liveness::Dead
    );

    // A fork child has no cached identity; its first lookup fails, and is not cached.
    // SAFETY: this test process runs its single test on one thread (`--test-threads=1`) and the
    // child only makes system calls and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = match ProcessIdentity::current() {
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                // Free descriptors: the next lookup must succeed with the real start time.
                files.truncate(files.len().saturating_sub(4));
                match ProcessIdentity::current() {
                    Ok(id) if id.start_time() != 0 && id.liveness() == Liveness::Alive => 0,
                    Ok(_) => 3,
                    Err(_) => 4,
                }
            }
            Err(_) => 5,
            // A start time read without a descriptor would be a bug of the test itself.
            Ok(_) => 6,
        };
        // SAFETY: `_exit` in a fork child is always sound.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 0, "fork child's identity lookup");
    drop(files);
    println!("RESULT ok");
}

#[test]
fn out_of_descriptors_nobody_is_judged_dead() {
    let me = ProcessIdentity::current().unwrap();
    let mut child = spawn("child_out_of_descriptors", &me.start_time());
    assert_eq!(child.expect_line("RESULT ", WATCHDOG), "ok");
    assert!(child.wait(WATCHDOG).success());
}

#[test]
fn a_reused_pid_and_a_zombie_are_dead() {
    // A child that has exited but is not yet reaped is a zombie: dead.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let id = ProcessIdentity::of_pid(c.id()).unwrap();
    // Wait until it has exited (a zombie), without reaping it.
    loop {
        // SAFETY: siginfo_t is plain C data, valid when zeroed.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child reapable.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                c.id(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
    }
    if let Some(id) = id {
        assert_eq!(id.liveness(), Liveness::Dead, "a zombie");
    }
    assert!(matches!(ProcessIdentity::of_pid(c.id()), Ok(None)));
    c.wait().unwrap();
    assert!(matches!(ProcessIdentity::of_pid(c.id()), Ok(None)));
    // Our own pid under another start time: a recycled pid.
    let me = ProcessIdentity::current().unwrap();
    let other = ProcessIdentity::from_parts(me.pid(), me.start_time() + 1);
    assert_eq!(other.liveness(), Liveness::Dead);
}

/// The library caches this process's id. A child forked by a plain `fork` (not by `Process`)
/// must not take its parent's id for its own: a fork handler resets the cache in every child.
#[test]
fn a_child_of_a_plain_fork_knows_its_own_pid() {
    let parent = ProcessIdentity::current().unwrap();
    // SAFETY: the child makes system calls, reads `/proc` (glibc's allocator is fork-safe) and
    // exits; it takes no lock another thread of this test process could hold.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: getpid has no preconditions.
        let real = unsafe { libc::getpid() } as u32;
        let code = match ProcessIdentity::current() {
            Ok(me) if me.pid() == real && me != parent => 0,
            Ok(_) => 1,
            Err(_) => 2,
        };
        // SAFETY: `_exit` in a fork child is always sound.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the forked child took an identity that is not its own (1) or found none (2)"
    );
    assert_eq!(ProcessIdentity::current().unwrap(), parent);
}
