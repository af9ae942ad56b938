//! Child roles dispatched before `main`.
//!
//! Some processes this crate starts are the current executable run again (the cleanup tracker;
//! later the spawn start method). Such a child is told its role by the `IPC_CORE_ROLE`
//! environment variable, and a constructor placed in `.init_array` runs before `main` — before
//! the test harness too, so this works inside `cargo test` binaries and doctests that have no
//! `main` of their own — and hands control to the role's code, which never returns to `main`.

/// The environment variable that names a child's role.
pub(crate) const ROLE_ENV: &str = "IPC_CORE_ROLE";

extern "C" fn dispatch() {
    crate::process::fork::register_atfork();
    // Read this process's identity while descriptors are certainly available; a failure is
    // not cached, so `ProcessIdentity::current` asks again later.
    crate::liveness::warm_cache(crate::platform::getpid());
    let Some(role) = std::env::var_os(ROLE_ENV) else {
        return;
    };
    // SAFETY: constructors run before `main`, while the process is still single-threaded, so
    // nothing can read the environment concurrently.
    unsafe { std::env::remove_var(ROLE_ENV) };
    if role == crate::tracker::ROLE {
        crate::tracker::run();
    }
    if role == crate::process::spawn::ROLE {
        crate::process::spawn::run();
    }
    if role == crate::process::forkserver::ROLE {
        crate::process::forkserver::run();
    }
    // An unknown role: let `main` run, as if the variable were not set.
}

// Written by hand: an ELF `.init_array` entry, which the C runtime's startup runs before `main`
// (neither std nor rustix offers a constructor). Not under Miri, which interprets only the
// pure-memory unit tests and has no `/proc`, no `pthread_atfork` and no children to dispatch.
#[cfg(not(miri))]
#[used]
#[unsafe(link_section = ".init_array")]
static DISPATCH: extern "C" fn() = dispatch;

/// Keeps the constructor linked into the final executable: called by every code path that
/// re-executes the current binary, so the object holding `DISPATCH` is always pulled in.
pub(crate) fn ensure_linked() {
    #[cfg(not(miri))]
    std::hint::black_box(&DISPATCH);
}

/// Prepares this process to start children with the library's start methods.
///
/// Call it first in `main`, as a Python script guards its entry point with
/// `if __name__ == "__main__"`. Children that re-execute this binary are dispatched to their role
/// before `main` runs; `init` keeps that dispatcher linked into the executable. A re-executed
/// child that reaches `init` anyway (its dispatcher was not run) exits at once with code 1 and a
/// message, so its parent gets a clear error instead of a second copy of the program.
///
/// `init` also registers what Python's `multiprocessing` does at interpreter exit: when `main`
/// returns (or `std::process::exit` runs), daemon children still running are terminated
/// (SIGTERM) and every other child started through [`Process`](crate::Process) is joined, so a
/// program does not end while its non-daemon children still work.
///
/// ```
/// // First thing in `main`:
/// ipc_core::init();
/// ```
pub fn init() {
    ensure_linked();
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // `at_exit` never unwinds (it catches panics).
        crate::platform::at_exit(at_exit);
    });
    if let Some(role) = std::env::var_os(ROLE_ENV) {
        eprintln!(
            "ipc-core: this process was started as a {role:?} child but its role dispatcher did              not run; exiting"
        );
        std::process::exit(1);
    }
}

extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(crate::process::finish_children_at_exit);
}
