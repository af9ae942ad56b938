//! Functions across hosts: what the master sends (an authenticated
//! [`ipc_core::process::FnRef`] to a trampoline and the user's function, tagged under the
//! receiving host's key) and what a worker process of a host runs.
//!
//! The master keeps each function as a [`TaskFn`], a trampoline paired with the user's function
//! by a safe, typed constructor. When it hands a chunk to a host it tags the pair under that
//! host's key (a fresh [`FnKey`] the host received at its handshake), so a reference made for one
//! host is refused by every other, and bytes from a peer that took no part in the handshake
//! cannot make a host jump anywhere. The host checks the tag before it queues the chunk, and the
//! worker process that runs it checks it again: the host's key reaches its workers through the
//! pool's initializer, which travels over the workers' private start channel.

use std::sync::OnceLock;

use ipc_core::codec;
use ipc_core::process::{FnKey, FnRef};
use ipc_pool::raw::map_chunk;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::wire::RemoteFailure;

/// Decodes a chunk's input, runs the user's function over it, encodes the output into `out`.
type Trampoline = fn(usize, &[u8], &mut Vec<u8>) -> Result<(), String>;

/// Decodes an initializer's argument and runs it.
type InitTrampoline = fn(usize, &[u8]) -> Result<(), String>;

/// References whose trampoline is a [`Trampoline`].
const KIND_CHUNK: u8 = 1;
/// References whose trampoline is an [`InitTrampoline`].
const KIND_INIT: u8 = 2;

/// A trampoline paired with the function it calls, in this process; only the typed
/// constructors below make one, so the pairing is always right. (Public only as the cluster
/// pool's `ChunkPool::Func`, which users get from `ChunkPool::map_func`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskFn {
    kind: u8,
    tramp: usize,
    func: usize,
}

impl TaskFn {
    /// `fn(A) -> R` over a chunk: input `Vec<A>`, output `Vec<R>`.
    pub(crate) fn map<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Self {
        Self {
            kind: KIND_CHUNK,
            tramp: map_tramp::<A, R> as Trampoline as usize,
            func: f as usize,
        }
    }

    /// `fn(A, B) -> R` over a chunk: input `Vec<(A, B)>`, output `Vec<R>`.
    pub(crate) fn star<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
        f: fn(A, B) -> R,
    ) -> Self {
        Self {
            kind: KIND_CHUNK,
            tramp: star_tramp::<A, B, R> as Trampoline as usize,
            func: f as usize,
        }
    }

    /// `fn(A)` run once per worker process: input `A`.
    pub(crate) fn init<A: DeserializeOwned>(f: fn(A)) -> Self {
        Self {
            kind: KIND_INIT,
            tramp: init_tramp::<A> as InitTrampoline as usize,
            func: f as usize,
        }
    }

    /// The reference a host holding `key` can call.
    pub(crate) fn tag(&self, key: &FnKey) -> FnRef {
        // SAFETY: `kind` names the trampoline type `tramp` has (`KIND_CHUNK`: `Trampoline`,
        // `KIND_INIT`: `InitTrampoline`), and `func` is the function that trampoline transmutes
        // its first argument to: the constructors above are the only way to make a `TaskFn`,
        // and each pairs a trampoline instance with a function of its type parameters.
        unsafe { FnRef::new(key, self.kind, self.tramp, self.func) }
    }
}

/// Whether `r` is a chunk reference made under `key` (checked by a host before it queues it).
pub(crate) fn check_chunk(r: &FnRef, key: &FnKey) -> bool {
    r.resolve(key, KIND_CHUNK).is_ok()
}

/// Runs the chunk function `r` on `input` into `out`, after checking its tag under `key`.
pub(crate) fn call_chunk(
    r: &FnRef,
    key: &FnKey,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RemoteFailure> {
    let (tramp, f) = r
        .resolve(key, KIND_CHUNK)
        .map_err(|_| RemoteFailure::BadFunction)?;
    // SAFETY: the tag checked out for `KIND_CHUNK` under this host's key, and only
    // `TaskFn::tag` (whose `TaskFn` pairs a `Trampoline` with its function) makes such
    // references; every host runs the same build (the handshake checks the build id), so the
    // offsets name that trampoline and function here too.
    let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
    tramp(f, input, out).map_err(RemoteFailure::Codec)
}

fn call_init(r: &FnRef, key: &FnKey, input: &[u8]) -> Result<(), RemoteFailure> {
    let (tramp, f) = r
        .resolve(key, KIND_INIT)
        .map_err(|_| RemoteFailure::BadFunction)?;
    // SAFETY: as in `call_chunk`, for `KIND_INIT` and `InitTrampoline`.
    let tramp = unsafe { std::mem::transmute::<usize, InitTrampoline>(tramp) };
    tramp(f, input).map_err(RemoteFailure::Codec)
}

fn map_tramp<A: DeserializeOwned, R: Serialize>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: `f` was made from an `fn(A) -> R` in `TaskFn::map`, the only constructor that
    // pairs it with this trampoline, and authenticated by `call_chunk`; fn pointers are
    // address-sized.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    map_chunk(input, out, f)
}

fn star_tramp<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(A, B) -> R` made by `TaskFn::star`.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) };
    map_chunk(input, out, |(a, b): (A, B)| f(a, b))
}

fn init_tramp<A: DeserializeOwned>(f: usize, input: &[u8]) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(A)` made by `TaskFn::init`.
    let f = unsafe { std::mem::transmute::<usize, fn(A)>(f) };
    let arg: A = codec::decode(input).map_err(|e| format!("initializer argument: {e}"))?;
    f(arg);
    Ok(())
}

/// The host's key in each of its worker processes, set by [`init_worker`].
static WORKER_KEY: OnceLock<FnKey> = OnceLock::new();
/// Why the cluster's initializer could not run in this worker (a reference or argument that
/// does not check out): every chunk then fails with it, rather than the worker panicking on
/// bytes from the network.
static INIT_FAILED: OnceLock<RemoteFailure> = OnceLock::new();

/// What every worker process of a host starts with: the host's key, and the cluster's own
/// initializer if the master set one.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct WorkerInit {
    pub(crate) key: FnKey,
    pub(crate) user: Option<(FnRef, Bytes)>,
}

/// The initializer of a host's pool: keeps the key, then runs the cluster's initializer (a
/// panic there is the user's, and fails the pool's build as in `ipc_pool`).
pub(crate) fn init_worker(init: WorkerInit) {
    let _ = WORKER_KEY.set(init.key);
    if let Some((r, arg)) = init.user {
        if let Err(e) = call_init(&r, &init.key, &arg.0) {
            let _ = INIT_FAILED.set(e);
        }
    }
}

/// One chunk, as a host hands it to its pool.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChunkTask {
    pub(crate) func: FnRef,
    pub(crate) input: Bytes,
}

/// What a host's pool runs for each chunk, in a worker process.
pub(crate) fn run_chunk(task: ChunkTask) -> Result<Bytes, RemoteFailure> {
    if let Some(e) = INIT_FAILED.get() {
        return Err(e.clone());
    }
    let key = WORKER_KEY.get().ok_or(RemoteFailure::BadFunction)?;
    let mut out = Vec::new();
    call_chunk(&task.func, key, &task.input.0, &mut out)?;
    Ok(Bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        u64::from(x) * 2
    }

    fn add(a: u32, b: u32) -> u32 {
        a + b
    }

    #[test]
    fn a_reference_runs_under_its_host_key_only() {
        let key = FnKey::random();
        let r = TaskFn::map(double).tag(&key);
        assert!(check_chunk(&r, &key));
        let mut out = Vec::new();
        call_chunk(&r, &key, &codec::encode(&vec![1u32, 2]).unwrap(), &mut out).unwrap();
        assert_eq!(codec::decode::<Vec<u64>>(&out).unwrap(), [2, 4]);
        let other = FnKey::random();
        assert!(!check_chunk(&r, &other));
        assert!(matches!(
            call_chunk(&r, &other, &[], &mut out),
            Err(RemoteFailure::BadFunction)
        ));
    }

    #[test]
    fn star_and_bad_input() {
        let key = FnKey::random();
        let r = TaskFn::star(add).tag(&key);
        let mut out = Vec::new();
        call_chunk(
            &r,
            &key,
            &codec::encode(&vec![(1u32, 2u32)]).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(codec::decode::<Vec<u32>>(&out).unwrap(), [3]);
        assert!(matches!(
            call_chunk(&r, &key, &[0xff, 0xff, 0xff], &mut out),
            Err(RemoteFailure::Codec(_))
        ));
    }

    #[test]
    fn an_init_reference_is_not_a_chunk_reference() {
        fn setup(_: u8) {}
        let key = FnKey::random();
        let r = TaskFn::init(setup).tag(&key);
        assert!(!check_chunk(&r, &key));
        assert!(call_init(&r, &key, &codec::encode(&1u8).unwrap()).is_ok());
    }
}
