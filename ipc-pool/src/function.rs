//! Calling a parent's function in a worker: a function travels as its offset from an anchor
//! function of this crate (the same in every process running the same executable, whatever
//! ASLR did), together with a monomorphic trampoline that decodes the input, calls the function
//! and encodes the output.
//!
//! Tasks cross shared memory, which a hostile process could write. So that no byte pattern
//! there can make a worker jump to an arbitrary address, each reference carries a keyed hash
//! (SipHash-2-4) of its two offsets under a random key that the pool hands each worker through
//! its private start channel; a worker calls only references whose tag checks out.

use std::any::Any;
use std::hash::Hasher;

use bytemuck::Pod;
use ipc_core::{ObjectHandle, ObjectSegment, TypeFingerprint, codec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manager::Managed;

/// Decodes an input, runs the user function, encodes the output into `out`.
type Trampoline = fn(usize, &[u8], &mut Vec<u8>) -> Result<(), String>;

#[inline(never)]
fn anchor() {
    std::hint::black_box(());
}

fn offset(addr: usize) -> i64 {
    addr.wrapping_sub(anchor as fn() as usize) as i64
}

fn address(offset: i64) -> usize {
    (anchor as fn() as usize).wrapping_add(offset as usize)
}

/// The per-pool secret that authenticates function references.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Key(u64, u64);

impl Key {
    pub(crate) fn random() -> Self {
        let bits = ipc_core::random_u128();
        Self(bits as u64, (bits >> 64) as u64)
    }

    fn tag(&self, tramp: i64, func: i64) -> u64 {
        self.tag_kind(0, tramp, func)
    }

    fn tag_kind(&self, kind: u8, tramp: i64, func: i64) -> u64 {
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(self.0, self.1);
        h.write_u8(kind);
        h.write_i64(tramp);
        h.write_i64(func);
        h.finish()
    }
}

/// A reference to a function of the parent, callable in a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef {
    tramp: i64,
    func: i64,
    tag: u64,
}

impl FnRef {
    fn new(key: &Key, tramp: Trampoline, func: usize) -> Self {
        let (tramp, func) = (offset(tramp as usize), offset(func));
        Self {
            tramp,
            func,
            tag: key.tag(tramp, func),
        }
    }

    /// `fn(A) -> R` over a chunk: input `Vec<A>`, output `Vec<R>`.
    pub(crate) fn map<A: DeserializeOwned, R: Serialize>(key: &Key, f: fn(A) -> R) -> Self {
        Self::new(key, map_tramp::<A, R>, f as usize)
    }

    /// `fn(A, B) -> R` over a chunk: input `Vec<(A, B)>`, output `Vec<R>`.
    pub(crate) fn star<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
        key: &Key,
        f: fn(A, B) -> R,
    ) -> Self {
        Self::new(key, star_tramp::<A, B, R>, f as usize)
    }

    /// `fn(&mut [T])` over a chunk of a shared array: input `(handle, start, len)`.
    pub(crate) fn chunks<T: Pod>(key: &Key, f: fn(&mut [T])) -> Self {
        Self::new(key, chunk_tramp::<T>, f as usize)
    }

    /// `fn(A) -> R` over a chunk of a plain input array, into a plain output array: input
    /// [`PlainInput`]. Nothing but the bounds is encoded.
    ///
    /// # Safety
    /// `A` and `R` must be plain data: no padding, no pointers, valid for every bit pattern
    /// (`bytemuck::Pod`, or a primitive number).
    pub(crate) unsafe fn plain<A: 'static, R: 'static>(key: &Key, f: fn(A) -> R) -> Self {
        Self::new(key, plain_tramp::<A, R>, f as usize)
    }

    /// Runs the function on `input`, writing the encoded output into `out`; refuses a
    /// reference whose tag does not check out under `key`.
    pub(crate) fn call(&self, key: &Key, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if key.tag(self.tramp, self.func) != self.tag {
            return Err("refused a function reference with a bad tag (not from this pool)".into());
        }
        let tramp = address(self.tramp);
        // SAFETY: the tag proves (up to SipHash's strength) that this pool's parent made the
        // reference with `FnRef::new` from a real `Trampoline`; the worker runs the same
        // executable (ipc-core's start methods check that), so anchor + offset is that
        // trampoline's address here too.
        let tramp: Trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
        tramp(address(self.func), input, out)
    }
}

fn map_tramp<A: DeserializeOwned, R: Serialize>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: `f` was made from an `fn(A) -> R` in `FnRef::map`, the only constructor that pairs
    // it with this trampoline, and authenticated by the caller; fn pointers are address-sized.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let items: Vec<A> = codec::decode(input).map_err(|e| format!("argument: {e}"))?;
    let results: Vec<R> = items.into_iter().map(f).collect();
    codec::encode_into(&results, out).map_err(|e| format!("result: {e}"))
}

fn star_tramp<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(A, B) -> R` made by `FnRef::star`.
    let f: fn(A, B) -> R = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) };
    let items: Vec<(A, B)> = codec::decode(input).map_err(|e| format!("argument: {e}"))?;
    let results: Vec<R> = items.into_iter().map(|(a, b)| f(a, b)).collect();
    codec::encode_into(&results, out).map_err(|e| format!("result: {e}"))
}

/// The input of a chunk task: which array, which elements.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChunkInput {
    pub(crate) array: ObjectHandle,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// Arrays a worker keeps attached between tasks, most recent first.
const ARRAY_CACHE: usize = 4;

/// Encoded handle with the fingerprint's kind, and the attached segment, most recent first.
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

/// The input of a plain map task: the input and output byte arrays and the element range.
#[derive(Serialize, Deserialize)]
pub(crate) struct PlainInput {
    pub(crate) input: ObjectHandle,
    pub(crate) output: ObjectHandle,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

fn plain_tramp<A: 'static, R: 'static>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: as in `map_tramp`, for `fn(A) -> R` made by `FnRef::plain`.
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
        // SAFETY: element i lies inside the input array (checked above); `FnRef::plain`'s
        // contract makes any bytes a valid `A`; the parent does not write the input while the
        // job runs.
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
    // SAFETY: as in `map_tramp`, for `fn(&mut [T])` made by `FnRef::chunks`.
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

/// A reference to an operation the manager runs on stored values: build a registered object,
/// call one of its methods, or update a dict value. Authenticated like [`FnRef`], with the kind
/// of operation in the tag so that one kind cannot be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjRef {
    kind: u8,
    tramp: i64,
    func: i64,
    tag: u64,
}

type Construct = fn(&[u8]) -> Result<Box<dyn Any>, String>;
type CallObject = fn(&mut dyn Any, &[u8]) -> Result<Vec<u8>, String>;
type Update = fn(usize, Option<Vec<u8>>) -> Result<Vec<u8>, String>;

const KIND_CONSTRUCT: u8 = 1;
const KIND_CALL: u8 = 2;
const KIND_UPDATE: u8 = 3;

impl ObjRef {
    fn new(key: &Key, kind: u8, tramp: usize, func: usize) -> Self {
        let (tramp, func) = (offset(tramp), offset(func));
        Self {
            kind,
            tramp,
            func,
            tag: key.tag_kind(kind, tramp, func),
        }
    }

    /// Decodes a `T` and boxes it, in the manager.
    pub(crate) fn constructor<T: Managed>(key: &Key) -> Self {
        Self::new(
            key,
            KIND_CONSTRUCT,
            construct_tramp::<T> as Construct as usize,
            0,
        )
    }

    /// Calls `T::handle` on a boxed `T`, in the manager.
    pub(crate) fn method<T: Managed>(key: &Key) -> Self {
        Self::new(key, KIND_CALL, call_tramp::<T> as CallObject as usize, 0)
    }

    /// Applies `f` to a stored `Option<V>`, in the manager.
    pub(crate) fn updater<V: Serialize + DeserializeOwned>(
        key: &Key,
        f: fn(Option<V>) -> V,
    ) -> Self {
        Self::new(
            key,
            KIND_UPDATE,
            update_tramp::<V> as Update as usize,
            f as usize,
        )
    }

    fn check(&self, key: &Key, kind: u8) -> Result<usize, String> {
        if self.kind != kind || key.tag_kind(self.kind, self.tramp, self.func) != self.tag {
            return Err("refused an operation reference with a bad tag".into());
        }
        Ok(address(self.tramp))
    }

    pub(crate) fn construct(&self, key: &Key, init: &[u8]) -> Result<Box<dyn Any>, String> {
        let t = self.check(key, KIND_CONSTRUCT)?;
        // SAFETY: the tag (checked above, kind included) proves the parent made this reference
        // with `ObjRef::constructor` from a real `Construct` trampoline; same executable, so
        // anchor + offset is its address here.
        let t: Construct = unsafe { std::mem::transmute::<usize, Construct>(t) };
        t(init)
    }

    pub(crate) fn call_object(
        &self,
        key: &Key,
        obj: &mut dyn Any,
        request: &[u8],
    ) -> Result<Vec<u8>, String> {
        let t = self.check(key, KIND_CALL)?;
        // SAFETY: as in `construct`, for a `CallObject` trampoline made by `ObjRef::method`.
        let t: CallObject = unsafe { std::mem::transmute::<usize, CallObject>(t) };
        t(obj, request)
    }

    pub(crate) fn update(&self, key: &Key, old: Option<Vec<u8>>) -> Result<Vec<u8>, String> {
        let t = self.check(key, KIND_UPDATE)?;
        // SAFETY: as in `construct`, for an `Update` trampoline made by `ObjRef::updater`.
        let t: Update = unsafe { std::mem::transmute::<usize, Update>(t) };
        t(address(self.func), old)
    }
}

fn construct_tramp<T: Managed>(init: &[u8]) -> Result<Box<dyn Any>, String> {
    let value: T = codec::decode(init).map_err(|e| format!("initial value: {e}"))?;
    Ok(Box::new(value))
}

fn call_tramp<T: Managed>(obj: &mut dyn Any, request: &[u8]) -> Result<Vec<u8>, String> {
    let obj = obj
        .downcast_mut::<T>()
        .ok_or("the object is of another registered type")?;
    let request: T::Request = codec::decode(request).map_err(|e| format!("request: {e}"))?;
    let response = obj.handle(request);
    codec::encode(&response).map_err(|e| format!("response: {e}"))
}

fn update_tramp<V: Serialize + DeserializeOwned>(
    f: usize,
    old: Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    // SAFETY: `f` was made from an `fn(Option<V>) -> V` by `ObjRef::updater`, the only
    // constructor pairing it with this trampoline, and authenticated by the caller.
    let f: fn(Option<V>) -> V = unsafe { std::mem::transmute::<usize, fn(Option<V>) -> V>(f) };
    let old: Option<V> = match old {
        Some(bytes) => Some(codec::decode(&bytes).map_err(|e| format!("stored value: {e}"))?),
        None => None,
    };
    codec::encode(&f(old)).map_err(|e| format!("new value: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        u64::from(x) * 2
    }

    #[test]
    fn round_trip_in_process() {
        let key = Key::random();
        let r = FnRef::map(&key, double);
        let mut out = Vec::new();
        r.call(&key, &codec::encode(&vec![1u32, 2, 3]).unwrap(), &mut out)
            .unwrap();
        assert_eq!(codec::decode::<Vec<u64>>(&out).unwrap(), [2, 4, 6]);
    }

    #[test]
    fn forged_reference_is_refused() {
        let key = Key::random();
        let mut r = FnRef::map(&key, double);
        r.func += 16;
        let mut out = Vec::new();
        assert!(r.call(&key, &[], &mut out).is_err());
        let other = Key::random();
        assert!(
            FnRef::map(&other, double)
                .call(&key, &[], &mut out)
                .is_err()
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let key = Key::random();
        let r = FnRef::map(&key, double);
        let mut out = Vec::new();
        assert!(r.call(&key, &[0xff, 0xff, 0xff], &mut out).is_err());
    }
}
