//! Processes: Python's `multiprocessing.Process`, with the fork, spawn and forkserver start
//! methods.
//!
//! A [`Process`] runs a non-capturing `fn(A) -> R` in a child process; `A` and `R` travel through
//! the [`codec`], so handles of shared objects ([`RawValue`](crate::RawValue),
//! [`RawArray`](crate::RawArray), [`SharedMemory`](crate::SharedMemory)) pass as arguments and
//! attach in the child. [`join`](Process::join) returns the child's `R`, or why there is none:
//! its panic message, its exit code, the signal that killed it.
//!
//! | Python `multiprocessing`                          | `ipc_core`                                  |
//! |---------------------------------------------------|---------------------------------------------|
//! | `p = Process(target=f, args=(a,))`                | `let p = Process::new(f, a);`               |
//! | `Process(target=f, name="w", daemon=True)`        | `Process::builder().name("w").daemon(true).target(f, a)` |
//! | `class P(Process): def run(self)`                 | `impl Runnable for P` + [`Process::from_runnable`] |
//! | `p.start()`, `p.join()`, `p.join(timeout)`        | `p.start()?`, `p.join()?`, `p.join_timeout(d)` |
//! | `p.is_alive()`, `p.pid`, `p.name`, `p.exitcode`   | `is_alive()`, `pid()`, `name()`, `exit_code()` |
//! | `p.terminate()`, `p.kill()`                       | `terminate()`, `kill()`                     |
//! | `set_start_method("fork")`, `get_start_method()`  | [`set_start_method`]`(StartMethod::Fork)`, [`get_start_method`] |
//! | `current_process()`, `parent_process()`           | [`current_process`], [`parent_process`]     |
//! | `active_children()`, `cpu_count()`                | [`active_children`], [`cpu_count`]          |
//!
//! # Start methods
//!
//! - [`StartMethod::ForkServer`] (the default, as in Python 3.14 on Linux): a single-threaded
//!   server process, started once per process on first use, forks each child. Children start as
//!   fast as with `fork`, from a clean image that holds no locks of the caller's threads.
//! - [`StartMethod::Spawn`]: the current executable runs again and the child finds the function
//!   by its offset from an anchor function (the same in every run of the same binary); it checks
//!   that it runs the very same file as its parent and refuses otherwise.
//! - [`StartMethod::Fork`]: a plain `fork()`. It copies only the calling thread, so it is refused
//!   while the process runs several threads, unless the caller accepts the risk with
//!   [`ProcessBuilder::accept_fork_with_threads`].
//!
//! Exit codes follow Python: `None` while running, `0` success, `1` panic or error, `-N` killed
//! by signal N. Children inherit standard output and error, so a child's `println!` shows.
//!
//! # In `main`, in tests, in doctests
//!
//! The spawn and forkserver methods run the current executable again with the environment
//! variable `IPC_CORE_ROLE` set; a constructor of this crate that runs before `main` (and before
//! the test harness) takes such a process over, so `main` never runs in it. A program calls
//! [`init`](crate::init) first in `main`, which keeps that constructor linked, as a Python script
//! guards its entry point with `if __name__ == "__main__"`. Integration tests and doctests need
//! nothing at all: they use `Process` as a program does, with no `main` of their own, because
//! the constructor runs before the test harness. Under `cargo test` each test runs on its own
//! thread, so the `Fork` method is refused there unless the test accepts the risk.
//!
//! ```no_run
//! use ipc_core::Process;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let p = Process::new(square, 7);
//! p.start()?;
//! assert_eq!(p.join()?, 49);
//! assert_eq!(p.exit_code(), Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Daemons
//!
//! A daemon child dies with its parent however the parent dies, SIGKILL included. Fork and spawn
//! children arm `PR_SET_PDEATHSIG` and exit at once if their parent died before they armed it.
//! Linux ties that signal to the parent *thread*: a fork or spawn daemon also dies when the
//! thread that started it exits. Forkserver daemons are tied to the whole process: the server
//! watches the requester through its socket and kills its daemon children when the requester is
//! gone (and they arm the parent-death signal against the single-threaded server).

mod child;
mod exit;
mod fn_ref;
pub(crate) mod fork;
pub(crate) mod forkserver;
mod join_async;
mod running;
pub(crate) mod spawn;
mod supervisor;

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, EncodeError};
use crate::liveness::ProcessIdentity;
use crate::platform;
use crate::raw::os::ForkLocal;
pub use exit::{JoinError, StartError};
pub use fn_ref::{BadFnRef, FnKey, FnRef, panic_message};
use running::{Report, Running};
pub use supervisor::{ProcessExit, Supervisor};

/// How a child process is started; see the [module docs](self).
///
/// ```no_run
/// use ipc_core::{Process, StartMethod};
///
/// fn double(x: i32) -> i32 {
///     2 * x
/// }
///
/// for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
///     let p = Process::builder().start_method(method).target(double, 21);
///     p.start()?;
///     assert_eq!(p.join()?, 42);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum StartMethod {
    /// `fork()` the calling process.
    Fork,
    /// Run the current executable again.
    Spawn,
    /// Ask a single-threaded fork server to fork.
    #[default]
    ForkServer,
}

/// The longest a `join` holds the process's state at a time.
const JOIN_SLICE: Duration = Duration::from_millis(20);

/// The default start method, as a number (an atomic, not a lock: a forked child of a
/// multi-threaded parent sets it and must not wait on a lock another thread held at the fork).
static DEFAULT_METHOD: crate::primitive::AtomicU8 = crate::primitive::AtomicU8::new(0);

impl StartMethod {
    fn to_u8(self) -> u8 {
        match self {
            StartMethod::ForkServer => 0,
            StartMethod::Spawn => 1,
            StartMethod::Fork => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => StartMethod::Spawn,
            2 => StartMethod::Fork,
            _ => StartMethod::ForkServer,
        }
    }
}

/// Sets the start method of processes that do not choose one (Python's `set_start_method`).
///
/// ```
/// use ipc_core::{StartMethod, get_start_method, set_start_method};
///
/// set_start_method(StartMethod::Spawn);
/// assert_eq!(get_start_method(), StartMethod::Spawn);
/// set_start_method(StartMethod::ForkServer);
/// ```
#[inline]
pub fn set_start_method(method: StartMethod) {
    // ORDERING: Relaxed: a setting read on its own, publishing nothing else.
    DEFAULT_METHOD.store(method.to_u8(), crate::primitive::Ordering::Relaxed);
}

/// The start method of processes that do not choose one; [`StartMethod::ForkServer`] unless
/// [`set_start_method`] changed it.
///
/// ```
/// assert_eq!(ipc_core::get_start_method(), ipc_core::StartMethod::ForkServer);
/// ```
pub fn get_start_method() -> StartMethod {
    // ORDERING: Relaxed: see `set_start_method`.
    StartMethod::from_u8(DEFAULT_METHOD.load(crate::primitive::Ordering::Relaxed))
}

/// The subclass form: a serde struct whose `run` is the child's body, like Python's
/// `class MyProcess(Process): def run(self)`.
///
/// ```no_run
/// use ipc_core::{Process, Runnable};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Counter {
///     upto: u32,
/// }
///
/// impl Runnable for Counter {
///     type Output = u32;
///     fn run(self) -> u32 {
///         (1..=self.upto).sum()
///     }
/// }
///
/// let p = Process::from_runnable(Counter { upto: 4 });
/// p.start()?;
/// assert_eq!(p.join()?, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Runnable: Serialize + DeserializeOwned + Send + 'static {
    /// What `run` returns to the parent's `join`.
    type Output: Serialize + DeserializeOwned;
    /// The child's body.
    fn run(self) -> Self::Output;
}

fn run_runnable<T: Runnable>(t: T) -> T::Output {
    t.run()
}

/// What the child runs: the monomorphic entry point, the user function, the encoded argument.
struct Target {
    trampoline: child::Trampoline,
    func: usize,
    /// Added to the function's offset (only to test that a bad identity is refused).
    func_skew: i64,
    arg: Vec<u8>,
}

struct Pending {
    /// The argument itself, kept alive until the child has decoded its copy: handles of
    /// anonymous segments are reopened through this process's descriptors. Then it is dropped,
    /// so the argument belongs to the child alone (the parent's end of a pipe passed to the
    /// child is closed in the parent, as Python programs do by hand).
    keepalive: Box<dyn std::any::Any + Send>,
    trampoline: child::Trampoline,
    func: usize,
    func_skew: i64,
    arg: Result<Vec<u8>, EncodeError>,
}

#[derive(Default)]
struct State {
    pending: Option<Pending>,
    started: bool,
    running: Option<Running>,
}

struct Inner {
    name: String,
    identity: String,
    daemon: bool,
    method: StartMethod,
    accept_threads: bool,
    pid: OnceLock<u32>,
    /// The child's pidfd (readable once it has ended), from the moment it was created.
    sentinel: OnceLock<std::os::fd::OwnedFd>,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The children this process started and has not yet seen end (for `active_children`).
/// A fork child starts with none (see [`ForkLocal`]): the parent's list is never touched there,
/// only leaked (dropping it would run the destructors of the parent's arguments in the child:
/// an owned named segment would unlink its name).
static CHILDREN: ForkLocal<Vec<Arc<Inner>>> = ForkLocal::new(Vec::new);

fn lock_children() -> MutexGuard<'static, Vec<Arc<Inner>>> {
    CHILDREN.lock()
}

/// At the program's exit (the hook `init` registers): terminates the daemon children still
/// running, then waits for every child, as Python's `multiprocessing` does at interpreter exit.
pub(crate) fn finish_children_at_exit() {
    let children: Vec<Arc<Inner>> = lock_children().clone();
    for inner in children.iter().filter(|i| i.daemon) {
        if let Some(r) = inner.lock().running.as_mut() {
            let _ = r.signal(libc::SIGTERM);
        }
    }
    for inner in &children {
        if let Some(r) = inner.lock().running.as_mut() {
            let _ = r.wait(None);
        }
    }
}

fn unregister(inner: &Arc<Inner>) {
    lock_children().retain(|c| !Arc::ptr_eq(c, inner));
}

/// Options of a process before it exists: name, daemon flag, start method.
///
/// ```no_run
/// use ipc_core::{Process, StartMethod};
///
/// fn hello(who: String) {
///     println!("hello, {who}");
/// }
///
/// let p = Process::builder()
///     .name("greeter")
///     .daemon(true)
///     .start_method(StartMethod::Spawn)
///     .target(hello, "world".to_string());
/// assert_eq!(p.name(), "greeter");
/// p.start()?;
/// p.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `target` is called"]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
    method: Option<StartMethod>,
    accept_threads: bool,
}

impl ProcessBuilder {
    /// The process name (default `Process-N`, as in Python).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the child dies with its parent (default false).
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// The start method (default: [`get_start_method`] at the time of `target`).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Lets the `Fork` method fork while this process runs several threads. The child then holds
    /// a copy of every lock another thread held at the fork, forever locked: it must not touch
    /// them (allocator locks included, on some platforms). Needed for `Fork` under `cargo test`.
    pub fn accept_fork_with_threads(mut self, accept: bool) -> Self {
        self.accept_threads = accept;
        self
    }

    /// The process that will run `f(arg)`. The argument is serialised now; an argument that
    /// cannot be serialised makes `start` fail.
    pub fn target<A, R>(self, f: fn(A) -> R, arg: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned,
    {
        self.target_named(f, arg, "Process")
    }

    /// `target`, with `prefix` in the default name (`Prefix-N`).
    fn target_named<A, R>(self, f: fn(A) -> R, arg: A, prefix: &str) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned,
    {
        let trampoline: child::Trampoline = child::trampoline::<A, R>;
        let pending = Pending {
            trampoline,
            func: f as usize,
            func_skew: 0,
            arg: codec::encode(&arg),
            keepalive: Box::new(arg),
        };
        let identity = next_identity();
        let name = self.name.unwrap_or_else(|| format!("{prefix}-{identity}"));
        Process {
            inner: Arc::new(Inner {
                name,
                identity,
                daemon: self.daemon,
                method: self.method.unwrap_or_else(get_start_method),
                accept_threads: self.accept_threads,
                pid: OnceLock::new(),
                sentinel: OnceLock::new(),
                state: Mutex::new(State {
                    pending: Some(pending),
                    ..State::default()
                }),
            }),
            _result: PhantomData,
        }
    }

    /// The process that will run `runnable.run()`. Its default name is the type's name and a
    /// number (`Counter-1`), as Python names an instance of a `Process` subclass.
    pub fn runnable<T: Runnable>(self, runnable: T) -> Process<T::Output> {
        let full = std::any::type_name::<T>();
        // `crate::module::Type<Args>` -> `Type`.
        let base = full.split('<').next().unwrap_or(full);
        let short = base.rsplit("::").next().unwrap_or(base).to_owned();
        self.target_named(run_runnable::<T>, runnable, &short)
    }
}

/// Python's `_identity`: `N` for the N-th child of the first process, `1:N` for the N-th child
/// of that process's first child, and so on.
fn next_identity() -> String {
    let n = child::next_child_number();
    match child::current_info() {
        Some(info) if !info.identity.is_empty() => format!("{}:{n}", info.identity),
        _ => n.to_string(),
    }
}

/// A child process running a function, as Python's `multiprocessing.Process`.
///
/// Dropping a `Process` neither waits for nor stops its child (as in Python); a child that was
/// not joined is reaped by a later [`active_children`] call. `join` hands the result over once:
/// a second `join` returns [`JoinError::ResultMissing`], while [`exit_code`](Self::exit_code)
/// keeps reporting how the child ended.
///
/// ```no_run
/// use ipc_core::{JoinError, Process};
///
/// fn work(n: u32) -> String {
///     if n == 0 {
///         panic!("nothing to do");
///     }
///     format!("did {n} things")
/// }
///
/// let ok = Process::new(work, 3);
/// ok.start()?;
/// assert_eq!(ok.join()?, "did 3 things");
///
/// let bad = Process::new(work, 0);
/// bad.start()?;
/// match bad.join() {
///     Err(JoinError::Panicked { message }) => assert_eq!(message, "nothing to do"),
///     other => panic!("unexpected {other:?}"),
/// }
/// assert_eq!(bad.exit_code(), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a process does nothing until `start` is called"]
pub struct Process<R> {
    inner: Arc<Inner>,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.inner.name)
            .field("pid", &self.pid())
            .field("daemon", &self.inner.daemon)
            .field("method", &self.inner.method)
            .field("exit_code", &self.exit_code())
            .finish()
    }
}

/// A signal could not be sent.
///
/// ```
/// use ipc_core::{Process, SignalError};
///
/// fn idle(_: ()) {}
///
/// let p = Process::new(idle, ());
/// assert!(matches!(p.terminate(), Err(SignalError::NotStarted)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalError {
    /// The process was never started.
    NotStarted,
    /// The system call failed.
    Io(std::io::Error),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::NotStarted => write!(f, "the process was not started"),
            SignalError::Io(e) => write!(f, "cannot signal the process: {e}"),
        }
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Io(e) => Some(e),
            SignalError::NotStarted => None,
        }
    }
}

impl Process<()> {
    /// A builder for name, daemon flag and start method.
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::default()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// The process that will run `f(arg)`, with the default name and start method.
    pub fn new<A: Serialize + DeserializeOwned + Send + 'static>(f: fn(A) -> R, arg: A) -> Self {
        ProcessBuilder::default().target(f, arg)
    }

    /// The process that will run `runnable.run()` (the subclass form).
    pub fn from_runnable<T: Runnable<Output = R>>(runnable: T) -> Self {
        ProcessBuilder::default().runnable(runnable)
    }

    /// Waits for the child to end and returns its result.
    pub fn join(&self) -> Result<R, JoinError> {
        self.join_until(None)
    }

    /// Waits at most `timeout`; [`JoinError::Timeout`] if the child still runs then (it keeps
    /// running, and a later `join` can still collect it).
    #[doc(alias = "join")]
    pub fn join_timeout(&self, timeout: Duration) -> Result<R, JoinError> {
        self.join_until(Some(Instant::now() + timeout))
    }
}

impl<R> Process<R> {
    /// Starts the child. A process starts at most once: a second call is
    /// [`StartError::AlreadyStarted`].
    pub fn start(&self) -> Result<(), StartError> {
        let mut state = self.inner.lock();
        if state.started {
            return Err(StartError::AlreadyStarted);
        }
        state.started = true;
        let Some(pending) = state.pending.take() else {
            return Err(StartError::AlreadyStarted);
        };
        let target = Target {
            trampoline: pending.trampoline,
            func: pending.func,
            func_skew: pending.func_skew,
            arg: pending.arg.map_err(StartError::Encode)?,
        };
        let keepalive = pending.keepalive;
        let info = child::Current {
            name: &self.inner.name,
            identity: &self.inner.identity,
            parent: ProcessIdentity::current()?,
            parent_name: child::current_info().map_or("MainProcess", |i| i.name),
            method: self.inner.method,
        };
        let mut running = match self.inner.method {
            StartMethod::Fork => {
                fork::start(&target, info, self.inner.daemon, self.inner.accept_threads)?
            }
            StartMethod::Spawn => {
                spawn::start(&target, child::ChildInfo::of(&info), self.inner.daemon)?
            }
            StartMethod::ForkServer => {
                forkserver::start(&target, child::ChildInfo::of(&info), self.inner.daemon)?
            }
        };
        // The argument moves to the child: a forked child has its own copy of every descriptor
        // already; a re-executed or fork-server child reopens anonymous segments through our
        // descriptors, so ours stay open until it has decoded the argument.
        if self.inner.method != StartMethod::Fork {
            running.wait_decoded()?;
        }
        drop(keepalive);
        let _ = self.inner.pid.set(running.pid);
        // One pidfd per child: the sentinel owns it, `Running` keeps its number (both live
        // until this `Process` drops). A pool of hundreds of workers counts its descriptors.
        if let Some(fd) = running.pidfd.take() {
            let _ = self.inner.sentinel.set(fd);
        }
        state.running = Some(running);
        drop(state);
        lock_children().push(Arc::clone(&self.inner));
        Ok(())
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<R, JoinError>
    where
        R: DeserializeOwned,
    {
        // Wait in slices, letting go of the state between them, so that another thread can
        // `terminate`, `kill` or ask `is_alive` while this one joins.
        let state = loop {
            let mut state = self.inner.lock();
            let Some(running) = state.running.as_mut() else {
                return Err(JoinError::NotStarted);
            };
            let slice_end = Instant::now() + JOIN_SLICE;
            let this = match deadline {
                Some(d) if d <= slice_end => d,
                _ => slice_end,
            };
            if running.wait(Some(this))? {
                break state;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(JoinError::Timeout);
            }
            drop(state);
        };
        self.collect(state)
    }

    /// The result of a child that has ended (its status is known): takes its final report out
    /// of the state, forgets the child, and decodes the report.
    fn collect(&self, mut state: MutexGuard<'_, State>) -> Result<R, JoinError>
    where
        R: DeserializeOwned,
    {
        let Some(running) = state.running.as_mut() else {
            return Err(JoinError::NotStarted);
        };
        let report = running.take_final_report();
        let corrupted = running.corrupted;
        let status = running.status;
        drop(state);
        unregister(&self.inner);
        match report {
            Some(Report::Result(bytes)) => codec::decode(&bytes).map_err(JoinError::ResultDecode),
            Some(Report::Panic(message)) => Err(JoinError::Panicked { message }),
            Some(Report::ArgDecode(message)) => Err(JoinError::ArgumentDecode { message }),
            Some(Report::ResultEncode(message)) => Err(JoinError::ResultEncode { message }),
            Some(Report::BadFunction(_)) => Err(JoinError::Corrupted),
            Some(Report::Ready | Report::Decoded) | None => match status {
                Some(exit::Status::Signaled(signal)) => Err(JoinError::Signaled { signal }),
                Some(exit::Status::Exited(code)) if code != 0 => Err(JoinError::Exited { code }),
                Some(exit::Status::Lost) => Err(JoinError::StatusLost),
                _ if corrupted => Err(JoinError::Corrupted),
                _ => Err(JoinError::ResultMissing),
            },
        }
    }

    /// Whether the child has started and not yet ended.
    pub fn is_alive(&self) -> bool {
        let mut state = self.inner.lock();
        match state.running.as_mut() {
            Some(r) => {
                let _ = r.refresh();
                r.status.is_none()
            }
            None => false,
        }
    }

    /// The child's pid, once started.
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid.get().copied()
    }

    /// A descriptor that becomes readable when the child ends (its pidfd), once started:
    /// Python's `Process.sentinel`. It was obtained when the child was created (from `fork`, or
    /// from the fork server before it could reap the child), so it names this very child even if
    /// it has ended and its pid been reused since. Poll it, or duplicate it to watch the child
    /// elsewhere; it stays open as long as `self`.
    ///
    /// ```no_run
    /// use std::os::fd::AsRawFd;
    /// use ipc_core::Process;
    ///
    /// fn quick(_: ()) {}
    ///
    /// let p = Process::new(quick, ());
    /// p.start()?;
    /// let fd = p.sentinel().expect("started, on Linux 5.3 or later");
    /// let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    /// // SAFETY: one valid pollfd.
    /// assert_eq!(unsafe { libc::poll(&mut pfd, 1, 10_000) }, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sentinel(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.inner.sentinel.get().map(|fd| fd.as_fd())
    }

    /// The process name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the child is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.inner.daemon
    }

    /// The start method.
    pub fn start_method(&self) -> StartMethod {
        self.inner.method
    }

    /// Python's `exitcode`: `None` before start and while running, `0` success, `1` panic or
    /// error, the code given to `exit`, or `-N` when signal N killed the child.
    #[doc(alias = "exitcode")]
    pub fn exit_code(&self) -> Option<i32> {
        let mut state = self.inner.lock();
        let r = state.running.as_mut()?;
        let _ = r.refresh();
        r.status.and_then(|s| s.exit_code())
    }

    /// Sends SIGTERM (a no-op if the child has ended).
    pub fn terminate(&self) -> Result<(), SignalError> {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (a no-op if the child has ended).
    pub fn kill(&self) -> Result<(), SignalError> {
        self.signal(libc::SIGKILL)
    }

    /// Sends SIGINT (a no-op if the child has ended), as Python 3.14's `Process.interrupt`. A
    /// child that does not handle SIGINT ends with exit code `-2`.
    pub fn interrupt(&self) -> Result<(), SignalError> {
        self.signal(libc::SIGINT)
    }

    fn signal(&self, sig: i32) -> Result<(), SignalError> {
        let mut state = self.inner.lock();
        match state.running.as_mut() {
            Some(r) => r.signal(sig).map_err(SignalError::Io),
            None => Err(SignalError::NotStarted),
        }
    }

    /// Makes the function identity the child receives point outside the address space (far
    /// beyond any mapping), so that a test can check that an identity which does not resolve
    /// is refused. It only ever makes `start` fail.
    #[cfg(test)]
    fn corrupt_function_identity(&self) {
        if let Some(p) = self.inner.lock().pending.as_mut() {
            p.func_skew = 1 << 62;
        }
    }
}

/// This process, as Python's `current_process()` describes it; see [`current_process`].
///
/// ```
/// let me: ipc_core::CurrentProcess = ipc_core::current_process();
/// assert!(me.pid > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    /// `MainProcess` in a program's first process, the process name in a child.
    pub name: String,
    /// The pid.
    pub pid: u32,
}

/// The process that started this one (Python's `parent_process()`).
///
/// ```no_run
/// use ipc_core::Process;
///
/// fn parent_pid(_: ()) -> Option<u32> {
///     ipc_core::parent_process().map(|p| p.pid())
/// }
///
/// let p = Process::new(parent_pid, ());
/// p.start()?;
/// assert_eq!(p.join()?, Some(std::process::id()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProcess {
    /// Its name (`MainProcess` for a program's first process).
    pub name: String,
    identity: ProcessIdentity,
}

impl ParentProcess {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.identity.pid()
    }

    /// Whether it still runs.
    pub fn is_alive(&self) -> bool {
        self.identity.is_alive()
    }

    /// Waits until the parent has ended (Python's `parent_process().join()`).
    pub fn join(&self) {
        while !self.join_timeout(Duration::from_secs(3600)) {}
    }

    /// Waits at most `timeout` for the parent to end; `true` if it has.
    ///
    /// The wait sleeps on the parent's pidfd (opened, then checked against the parent's start
    /// time, so a recycled pid is never waited for); where pidfds are unavailable it polls in
    /// slices. An unanswerable liveness question counts as alive, as everywhere.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let pidfd = platform::pidfd_open(self.identity.pid()).ok();
        loop {
            if self.identity.liveness().is_dead() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let left = deadline - now;
            match &pidfd {
                Some(fd) => {
                    use std::os::fd::AsRawFd;
                    let _ = platform::poll(&[(fd.as_raw_fd(), libc::POLLIN)], Some(left));
                }
                None => std::thread::sleep(left.min(JOIN_SLICE)),
            }
        }
    }
}

/// This process: its name and pid.
///
/// ```
/// let me = ipc_core::current_process();
/// assert_eq!(me.name, "MainProcess");
/// assert_eq!(me.pid, std::process::id());
/// ```
pub fn current_process() -> CurrentProcess {
    CurrentProcess {
        name: child::current_info()
            .map_or("MainProcess", |i| i.name)
            .to_owned(),
        pid: platform::getpid(),
    }
}

/// The process that started this one through [`Process`]; `None` in a program's first process.
///
/// ```
/// assert!(ipc_core::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    child::current_info().map(|i| ParentProcess {
        name: i.parent_name.to_owned(),
        identity: i.parent,
    })
}

/// A child that [`active_children`] found running.
///
/// ```no_run
/// use ipc_core::Process;
///
/// fn nap(ms: u64) {
///     std::thread::sleep(std::time::Duration::from_millis(ms));
/// }
///
/// let p = Process::new(nap, 1000);
/// p.start()?;
/// let active = ipc_core::active_children();
/// assert!(active.iter().any(|c| Some(c.pid) == p.pid() && c.name == p.name()));
/// p.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    /// Its name.
    pub name: String,
    /// Its pid.
    pub pid: u32,
}

/// The children of this process still running; like Python's, it reaps those that ended (their
/// `join` still returns their outcome).
///
/// ```
/// // A process that started nothing has no children.
/// assert!(ipc_core::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<ActiveChild> {
    let mut children = lock_children();
    children.retain(|inner| match inner.state.try_lock() {
        Ok(mut state) => match state.running.as_mut() {
            Some(r) => {
                let _ = r.refresh();
                r.status.is_none()
            }
            None => false,
        },
        // Being joined by another thread right now: still running as far as we know.
        Err(_) => true,
    });
    children
        .iter()
        .map(|inner| ActiveChild {
            name: inner.name.clone(),
            pid: inner.pid.get().copied().unwrap_or(0),
        })
        .collect()
}

/// Makes room for `more` descriptors beyond those open now: raises this process's soft
/// `RLIMIT_NOFILE` (never above the hard limit, which needs no privilege) when the soft one is too
/// low. Returns the soft limit in force afterwards.
///
/// Every child a parent keeps costs it a few descriptors (its pidfd, its result channel, and for
/// a pool worker its task queue): a `Pool` of hundreds of workers calls this, as servers raise
/// their soft limit at start.
///
/// ```
/// let soft = ipc_core::process::reserve_descriptors(16)?;
/// assert!(soft >= 16);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn reserve_descriptors(more: u64) -> std::io::Result<u64> {
    let (soft, hard) = platform::fd_limits()?;
    let need = platform::open_fd_count()?.saturating_add(more);
    if need <= soft || hard <= soft {
        return Ok(soft);
    }
    let new = need.max(soft.saturating_mul(2)).min(hard);
    platform::set_fd_soft_limit(new, hard)?;
    Ok(new)
}

/// The number of online CPUs (Python's `cpu_count()`).
///
/// ```
/// assert!(ipc_core::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    platform::cpu_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }

    #[test]
    fn a_function_identity_that_does_not_resolve_to_code_is_refused() {
        for method in [StartMethod::Spawn, StartMethod::ForkServer] {
            let p = Process::builder().start_method(method).target(square, 3);
            p.corrupt_function_identity();
            match p.start() {
                Err(StartError::BadFunction { message }) => {
                    assert!(message.contains("does not resolve"), "{message}")
                }
                other => panic!("{method:?}: expected BadFunction, got {other:?}"),
            }
            assert!(matches!(p.join(), Err(JoinError::NotStarted)));
        }
    }
}
