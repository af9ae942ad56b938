//! Building blocks for shared objects of your own: what `ipc-sync`, `ipc-queue` and `ipc-pool`
//! are made of.
//!
//! The toolkit on the crate's front page ([`SharedMemory`](crate::SharedMemory),
//! [`RawValue`](crate::RawValue), [`RawArray`](crate::RawArray), [`Process`](crate::Process))
//! is what a program uses. This module is for a library that builds a new kind of shared object
//! on the same ground, as the workspace's own crates do:
//!
//! - [`object`]: a segment that starts with the validated header ([`ObjectSegment`],
//!   [`TypeFingerprint`]), so that `open` refuses what is not yours, of another version or of
//!   another type;
//! - [`header`]: that header's layout and validation;
//! - [`atomic`]: atomics laid out for shared memory (the only ones the workspace names, so that
//!   its loom models can swap them);
//! - [`barrier`]: an asymmetric full barrier (a compiler fence on the waker's side,
//!   `membarrier` on the sleeper's), so that a waker checks for sleepers at no cost;
//! - [`futex`]: shared futex wait/wake, with a waiter count so that wakers skip the syscall
//!   when nobody sleeps;
//! - [`os`]: a handler for fork children and the calling thread's kernel id, for per-process
//!   caches of identity, and [`ForkLocal`](os::ForkLocal), process-global state a fork child
//!   never finds locked;
//! - [`pod`]: reading and writing `Pod` values in shared memory, and word-wise atomic copies for
//!   bytes another process may write at the same moment;
//! - [`reactor`]: async waiting on those futex words for any executor (the waiter threads,
//!   [`Registration`](reactor::Registration), [`FutexWaiter`](reactor::FutexWaiter)); its docs
//!   fix the workspace's convention for async forms (`x_async`) and the protocol they follow;
//! - [`sync`]: the one atomic facade the workspace's algorithms are written against (these
//!   atomics normally, loom's under `--cfg loom`), with `CachePadded`, `Backoff` and a spin hint.
//!
//! It is a documented module rather than a hidden one because a custom pool or a new primitive
//! is a use the workspace means to serve; everything here keeps the same rules as the rest
//! (shared memory is untrusted input, every `unsafe` states its contract).

pub mod atomic;
pub mod barrier;
pub mod futex;
pub mod header;
pub mod object;
pub mod os;
pub mod pod;
pub mod reactor;
pub mod sync;

pub use header::TypeFingerprint;
pub use object::ObjectSegment;
