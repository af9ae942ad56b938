//! Test-only helpers of the workspace's integration tests: every crate's `tests/` uses these,
//! as a `[dev-dependencies]` entry, instead of a copy of its own. Never published; no library
//! code depends on it. See the README for what each module is for.
//!
//! A multi-process test runs its child roles as `#[ignore]`d tests of the same binary:
//!
//! ```no_run
//! use ipc_testkit::{Role, arg, spawn};
//!
//! #[test]
//! #[ignore = "child role"]
//! fn child_doubles() {
//!     let n: u64 = arg();
//!     println!("DOUBLE {}", 2 * n);
//! }
//!
//! #[test]
//! fn a_child_doubles() {
//!     let child: Role = spawn("child_doubles", &21u64);
//!     assert_eq!(child.expect_line("DOUBLE ", ipc_testkit::WATCHDOG), "42");
//!     child.join();
//! }
//! ```

pub mod command;
pub mod executor;
pub mod fds;
pub mod leftovers;
pub mod process;
pub mod role;
pub mod wait;

pub use command::{example_bin, have_command, have_python, output_within};
pub use executor::{
    assert_idle, block_on, counting_pending, counting_polls, cpu_time, on_every_executor,
    on_one_thread_executors, pending_after_one_poll, poll_once, runtime, wait_for_count,
};
pub use fds::{exhaust_descriptors, raise_fd_limit};
pub use leftovers::{
    TAG, assert_no_new_shm, assert_no_orphan_segments, assert_no_tagged_processes, orphan_segments,
    processes_running, shm_names, spills_holding, tagged_processes, unique, wait_until_no_spills,
};
pub use role::{
    INPUT, Role, RoleBuilder, arg, child_input, decode, encode, from_env, role, spawn,
    spawn_with_env,
};
pub use wait::{WATCHDOG, Watchdog, eventually, wait_until, wait_until_none_left, watchdog};
