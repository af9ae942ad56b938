//! Pool tasks as function references: what the parent sends (an authenticated
//! [`ipc_core::process::FnRef`] to a trampoline and the user's function) and what a worker runs.
//!
//! Every task trampoline has the type [`Trampoline`]: it decodes its input, calls the function
//! and encodes the output. The four shapes (`map`, `star`, `chunks`, `plain`) differ only in the
//! trampoline, and [`FnRef`]'s tag covers the pair, so a worker calls only pairs its pool's
//! parent made. Tasks cross shared memory that any process of the same user could write; the
//! tag is what keeps a forged task from making a worker jump anywhere.

use std::any::TypeId;
use std::marker::PhantomData;

use bytemuck::Pod;
use ipc_core::process::{FnKey, FnRef};
use ipc_core::{ObjectHandle, ObjectSegment, TypeFingerprint, codec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::raw::map_chunk;

/// Decodes an input, runs the user function, encodes the output into `out`.
type Trampoline = fn(usize, &[u8], &mut Vec<u8>) -> Result<(), String>;

/// The kind of every task reference: its trampoline is a [`Trampoline`].
const KIND_TASK: u8 = 1;

/// Makes a task reference.
///
/// # Safety
/// `tramp` must be one of this file's trampolines and `f` the function type it transmutes its
/// first argument to.
unsafe fn task(key: &FnKey, tramp: Trampoline, f: usize) -> FnRef {
    // SAFETY: `KIND_TASK` references always carry a `Trampoline` (the caller's contract pairs it
    // with the function it expects), which is what `Resolved::new` transmutes to.
    unsafe { FnRef::new(key, KIND_TASK, tramp as usize, f) }
}

/// `fn(A) -> R` over a chunk: input `Vec<A>`, output `Vec<R>`.
pub(crate) fn map<A: DeserializeOwned, R: Serialize>(key: &FnKey, f: fn(A) -> R) -> FnRef {
    // SAFETY: `map_tramp::<A, R>` transmutes its function to `fn(A) -> R`.
    unsafe { task(key, map_tramp::<A, R>, f as usize) }
}

/// `fn(A, B) -> R` over a chunk: input `Vec<(A, B)>`, output `Vec<R>`.
pub(crate) fn star<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    key: &FnKey,
    f: fn(A, B) -> R,
) -> FnRef {
    // SAFETY: `star_tramp::<A, B, R>` transmutes its function to `fn(A, B) -> R`.
    unsafe { task(key, star_tramp::<A, B, R>, f as usize) }
}

/// `fn(&mut [T])` over a chunk of a `SharedSlice`: input [`ChunkInput`].
pub(crate) fn chunks<T: Pod>(key: &FnKey, f: fn(&mut [T])) -> FnRef {
    // SAFETY: `chunk_tramp::<T>` transmutes its function to `fn(&mut [T])`.
    unsafe { task(key, chunk_tramp::<T>, f as usize) }
}

/// Proof that `T` is plain data: no padding, no pointers, valid for every bit pattern. Only
/// [`Plain::pod`] (a `Pod` bound) and [`Plain::number`] (one of the sealed [`Number`] types)
/// make one, so a plain map holding a `Plain<T>` may move `T`s as bytes.
pub(crate) struct Plain<T>(PhantomData<fn() -> T>);

impl<T: Pod> Plain<T> {
    /// Any `Pod` type is plain data.
    pub(crate) fn pod() -> Self {
        Self(PhantomData)
    }
}

impl<T: 'static> Plain<T> {
    /// `Some` when `T` is a primitive number. A caller generic over any serde type cannot ask
    /// for a [`Number`] bound (stable Rust has no specialisation, and the bound would narrow
    /// what it accepts), so the type is recognised at run time among the `Number` impls.
    pub(crate) fn number() -> Option<Self> {
        is_number(TypeId::of::<T>()).then_some(Self(PhantomData))
    }
}

/// The primitive numbers, which a plain `map` recognises. Private, hence sealed; the compiler
/// checks that each is `Pod`.
trait Number: Pod + 'static {}

/// The `TypeId` of a [`Number`] type (so that only `Number`s, which are `Pod`, can be listed).
fn number_id<T: Number>() -> TypeId {
    TypeId::of::<T>()
}

macro_rules! numbers {
    ($($t:ty),*) => {
        $(impl Number for $t {})*

        /// Whether `id` is the type of one of the `Number` impls above.
        fn is_number(id: TypeId) -> bool {
            false $(|| id == number_id::<$t>())*
        }
    };
}

numbers!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

/// `fn(A) -> R` over a chunk of a plain input array, into a plain output array: input
/// [`PlainInput`]. Nothing but the bounds is encoded.
pub(crate) fn plain<A: 'static, R: 'static>(
    key: &FnKey,
    f: fn(A) -> R,
    _: Plain<A>,
    _: Plain<R>,
) -> FnRef {
    // SAFETY: `plain_tramp::<A, R>` transmutes its function to `fn(A) -> R`; the `Plain`
    // proofs give the plain-data contract it relies on.
    unsafe { task(key, plain_tramp::<A, R>, f as usize) }
}

/// A task reference whose tag checked out: call it on as many inputs as come with it.
pub(crate) struct Resolved {
    tramp: Trampoline,
    f: usize,
}

impl Resolved {
    /// Checks the tag of `r` under `key` (once per batch of tasks: a keyed hash).
    pub(crate) fn new(r: &FnRef, key: &FnKey) -> Result<Self, String> {
        let (tramp, f) = r.resolve(key, KIND_TASK).map_err(|e| e.to_string())?;
        // SAFETY: the tag checked out for `KIND_TASK`, and only `task` (whose contract pairs a
        // `Trampoline` of this file with its function) makes such references under a pool's
        // key; the worker runs the same executable (ipc-core's start methods check that), so
        // the address is that trampoline here too.
        let tramp: Trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
        Ok(Self { tramp, f })
    }

    /// Runs the task on `input`, writing the encoded output into `out`.
    pub(crate) fn call(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        (self.tramp)(self.f, input, out)
    }
}

fn map_tramp<A: DeserializeOwned, R: Serialize>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: `f` was made from an `fn(A) -> R` in `map`, the only constructor that pairs it
    // with this trampoline, and authenticated by `Resolved::new`; fn pointers are address-sized.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    map_chunk(input, out, f)
}

fn star_tramp<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(A, B) -> R` made by `star`.
    let f: fn(A, B) -> R = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) };
    map_chunk(input, out, |(a, b): (A, B)| f(a, b))
}

/// The input of a chunk task: which slice, which elements.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChunkInput {
    pub(crate) array: ObjectHandle,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// The input of a plain map task: the input and output byte arrays and the element range.
#[derive(Serialize, Deserialize)]
pub(crate) struct PlainInput {
    pub(crate) input: ObjectHandle,
    pub(crate) output: ObjectHandle,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// Arrays a worker keeps attached between tasks, most recent first.
const ARRAY_CACHE: usize = 4;

/// Encoded handle with the fingerprint's hash, and the attached segment, most recent first.
type ArrayCache = Vec<(Vec<u8>, ObjectSegment)>;

thread_local! {
    /// Arrays this worker has attached, by encoded handle, so that the chunks of one job open
    /// their array once. Only the last few stay mapped, so finished jobs' memory is released.
    static ARRAYS: std::cell::RefCell<ArrayCache> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The start of the attached array `handle` of kind `kind` (`RawArray` for the pool's own
/// arrays, `SharedSlice` for a caller's slice), opened and validated on first use and cached,
/// and its length.
fn cached_array<T: Pod>(handle: &ObjectHandle, kind: &str) -> Result<(*mut T, usize), String> {
    let fp = TypeFingerprint::of::<T>(kind);
    let mut key = codec::encode(handle).map_err(|e| e.to_string())?;
    key.extend_from_slice(&fp.hash.to_le_bytes());
    ARRAYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let pos = match cache.iter().position(|(k, _)| *k == key) {
            Some(p) => p,
            None => {
                let seg = ObjectSegment::open(handle, &fp).map_err(|e| format!("array: {e}"))?;
                cache.insert(0, (key, seg));
                cache.truncate(ARRAY_CACHE);
                0
            }
        };
        let entry = cache.remove(pos);
        cache.insert(0, entry);
        let seg = &cache[0].1;
        Ok((seg.payload_ptr().cast::<T>(), seg.capacity()))
    })
}

fn plain_tramp<A: 'static, R: 'static>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(A) -> R` made by `plain`.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let task: PlainInput = codec::decode(input).map_err(|e| format!("argument: {e}"))?;
    let (sa, sr) = (size_of::<A>(), size_of::<R>());
    let (src, src_len) = cached_array::<u8>(&task.input, "RawArray")?;
    let (dst, dst_len) = cached_array::<u8>(&task.output, "RawArray")?;
    let fits = |size: usize, len: usize| {
        task.start
            .checked_add(task.len)
            .and_then(|end| end.checked_mul(size))
            .is_some_and(|b| b <= len)
    };
    if !fits(sa, src_len) || !fits(sr, dst_len) {
        return Err(format!(
            "chunk {}+{} outside the arrays",
            task.start, task.len
        ));
    }
    for i in task.start..task.start + task.len {
        // SAFETY: element i lies inside the input array (checked above); the `Plain` proofs
        // `plain` takes make any bytes a valid `A`; the parent does not write the input while
        // the job runs.
        let a = unsafe { std::ptr::read_unaligned(src.add(i * sa).cast::<A>()) };
        let r = f(a);
        // SAFETY: element i lies inside the output array (checked above), and this task is the
        // only writer of its range: the pool hands each range to one task, and the parent reads
        // the output only when every task is done.
        unsafe { std::ptr::write_unaligned(dst.add(i * sr).cast::<R>(), r) };
    }
    codec::encode_into(&(), out).map_err(|e| e.to_string())
}

fn chunk_tramp<T: Pod>(f: usize, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(&mut [T])` made by `chunks`.
    let f: fn(&mut [T]) = unsafe { std::mem::transmute::<usize, fn(&mut [T])>(f) };
    let task: ChunkInput = codec::decode(input).map_err(|e| format!("argument: {e}"))?;
    let (base, len) = cached_array::<T>(&task.array, crate::shared_slice::KIND)?;
    let ptr = match task.start.checked_add(task.len) {
        // SAFETY: `start <= len` of the validated array, so the pointer stays in bounds.
        Some(end) if end <= len => unsafe { base.add(task.start) },
        _ => {
            return Err(format!(
                "chunk {}+{} outside the array of {len}",
                task.start, task.len
            ));
        }
    };
    // SAFETY: `ptr..ptr+len` lies inside the mapped array (checked above; the mapping stays in
    // the cache while the task runs). The array is a `SharedSlice`: it has no public handle (it
    // cannot be opened, serialised or reached from a forked child), its owner lends it to the
    // map as `&mut` until every chunk is done, and the pool hands each chunk to exactly one
    // task, so no other reference to these elements exists while `f` runs.
    let chunk = unsafe { std::slice::from_raw_parts_mut(ptr, task.len) };
    f(chunk);
    codec::encode_into(&(), out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        u64::from(x) * 2
    }

    #[test]
    fn only_primitive_numbers_are_recognised_as_plain() {
        assert!(Plain::<u8>::number().is_some());
        assert!(Plain::<u64>::number().is_some());
        assert!(Plain::<isize>::number().is_some());
        assert!(Plain::<f32>::number().is_some());
        assert!(Plain::<bool>::number().is_none());
        assert!(Plain::<char>::number().is_none());
        assert!(Plain::<(u32, u32)>::number().is_none());
        assert!(Plain::<[u64; 2]>::number().is_none());
        assert!(Plain::<String>::number().is_none());
    }

    /// Runs the task `r` on `input` as a worker does: its tag checked, then the call.
    fn call(r: &FnRef, key: &FnKey, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        Resolved::new(r, key)?.call(input, out)
    }

    #[test]
    fn round_trip_in_process() {
        let key = FnKey::random();
        let r = map(&key, double);
        let mut out = Vec::new();
        call(
            &r,
            &key,
            &codec::encode(&vec![1u32, 2, 3]).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(codec::decode::<Vec<u64>>(&out).unwrap(), [2, 4, 6]);
    }

    #[test]
    fn a_reference_of_another_pool_is_refused() {
        let key = FnKey::random();
        let mut out = Vec::new();
        let other = FnKey::random();
        assert!(call(&map(&other, double), &key, &[], &mut out).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        let key = FnKey::random();
        let r = map(&key, double);
        let mut out = Vec::new();
        assert!(call(&r, &key, &[0xff, 0xff, 0xff], &mut out).is_err());
    }
}
