//! Calling a function of this executable in another process: the one mechanism behind
//! [`Process`](super::Process), pools and managers.
//!
//! A function travels as its offset from an anchor function of this crate. Every process that
//! runs the same executable has the anchor at some address (ASLR moves the whole image), and the
//! function at the same offset from it, so `anchor + offset` is the function's address there.
//! A reference pairs two offsets: a monomorphic *trampoline* (which decodes the input, calls the
//! function and encodes the output, so its type is fixed per `kind`) and the user's function.
//!
//! References may cross shared memory, which another process of the same user could write. So
//! that no byte pattern there can make a process jump to an arbitrary address, each reference
//! carries a keyed hash (SipHash-2-4, from the `siphasher` crate) of its kind and offsets under
//! a random [`FnKey`] that only the parties of one pool, manager or process tree hold (it
//! travels over their private start channels). [`FnRef::resolve`] checks the tag before it
//! gives back any address; callers transmute the trampoline address to the type its `kind`
//! stands for, which is sound because only [`FnRef::new`] (an `unsafe fn` whose contract is
//! exactly that pairing) can produce a valid tag.
//!
//! | field   | meaning                                                         |
//! |---------|-----------------------------------------------------------------|
//! | `kind`  | which trampoline type `tramp` is (chosen by the caller, per key) |
//! | `tramp` | offset of the trampoline from the anchor                         |
//! | `func`  | offset of the user function from the anchor (0 if none)          |
//! | `tag`   | SipHash-2-4 of `kind, tramp, func` under the key                 |

use std::fmt;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher24;

/// The reference point for offsets: its address moves with the executable under ASLR, so
/// `f - anchor` is the same in every process running this executable.
#[inline(never)]
fn anchor() -> usize {
    std::hint::black_box(0x1bc0_4e11)
}

fn anchor_addr() -> usize {
    anchor as fn() -> usize as usize
}

/// A function's offset from the anchor.
fn offset_of(addr: usize) -> i64 {
    addr.wrapping_sub(anchor_addr()) as isize as i64
}

/// The address at `offset` from the anchor in this process.
fn address_of(offset: i64) -> usize {
    anchor_addr().wrapping_add(offset as isize as usize)
}

/// The secret that authenticates function references: random, held by the processes of one
/// pool, manager or process tree. Its `Debug` output hides it.
///
/// ```
/// use ipc_core::process::FnKey;
///
/// let a = FnKey::random();
/// assert_ne!(format!("{a:?}"), "");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnKey(u64, u64);

impl fmt::Debug for FnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnKey(..)")
    }
}

impl FnKey {
    /// 128 bits from the kernel's random source.
    pub fn random() -> Self {
        let bits = crate::platform::random_u128();
        Self(bits as u64, (bits >> 64) as u64)
    }

    fn tag(&self, kind: u8, tramp: i64, func: i64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.0, self.1);
        h.write_u8(kind);
        h.write_i64(tramp);
        h.write_i64(func);
        h.finish()
    }
}

/// A function reference whose tag does not check out under the key it was presented with (made
/// under another key, for another kind, or forged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadFnRef;

impl fmt::Display for BadFnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "refused a function reference whose tag does not check out (made under another key \
             or for another kind of call, or forged)",
        )
    }
}

impl std::error::Error for BadFnRef {}

/// An authenticated reference to a trampoline and a function of this executable, callable in
/// another process that runs the same executable: the one mechanism behind
/// [`Process`](super::Process), pools and managers.
///
/// A function travels as its offset from an anchor function of this crate (the same in every
/// process running the executable, whatever ASLR did). A reference pairs a monomorphic
/// trampoline (whose type is fixed per `kind`) with the user's function, and carries a
/// SipHash-2-4 tag of both under a random [`FnKey`] that only the parties of one pool, manager
/// or process tree hold. [`resolve`](Self::resolve) checks the tag before it gives back any
/// address, so bytes another process wrote into shared memory cannot make this process jump
/// anywhere; only [`new`](Self::new), an `unsafe fn` whose contract is the pairing of trampoline
/// and function, can make a valid tag.
///
/// ```
/// use ipc_core::process::{FnKey, FnRef};
///
/// type Tramp = fn(usize, u32) -> u32;
/// fn call_u32(f: usize, x: u32) -> u32 {
///     // SAFETY: kind 7 references are made below only with a `fn(u32) -> u32`.
///     let f = unsafe { std::mem::transmute::<usize, fn(u32) -> u32>(f) };
///     f(x)
/// }
/// fn double(x: u32) -> u32 {
///     2 * x
/// }
///
/// let key = FnKey::random();
/// // SAFETY: kind 7 pairs a `Tramp` with the `fn(u32) -> u32` it expects.
/// let r = unsafe { FnRef::new(&key, 7, call_u32 as Tramp as usize, double as fn(u32) -> u32 as usize) };
/// let (t, f) = r.resolve(&key, 7)?;
/// // SAFETY: the tag checked out for kind 7, so `t` is a `Tramp` (see `FnRef::new`).
/// let t = unsafe { std::mem::transmute::<usize, Tramp>(t) };
/// assert_eq!(t(f, 21), 42);
/// assert!(r.resolve(&key, 8).is_err());
/// assert!(r.resolve(&FnKey::random(), 7).is_err());
/// # Ok::<(), ipc_core::process::BadFnRef>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FnRef {
    kind: u8,
    tramp: i64,
    func: i64,
    tag: u64,
}

impl FnRef {
    /// A reference to the trampoline at `tramp` and the function at `func` (addresses in this
    /// process; `func` may be 0), tagged under `key` for `kind`.
    ///
    /// # Safety
    /// Whoever resolves references of this `kind` under this `key` transmutes the trampoline
    /// address to one function-pointer type and calls it with `func`: `tramp` must be the address
    /// of a function of exactly that type, and `func` whatever that trampoline expects (a
    /// function of the type it transmutes `func` to, or 0 if it ignores it).
    pub unsafe fn new(key: &FnKey, kind: u8, tramp: usize, func: usize) -> Self {
        let (tramp, func) = (
            offset_of(tramp),
            if func == 0 { 0 } else { offset_of(func) },
        );
        Self {
            kind,
            tramp,
            func,
            tag: key.tag(kind, tramp, func),
        }
    }

    /// The kind it was made for.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// Checks the tag under `key` for `kind`, then gives back the trampoline's and the
    /// function's addresses in this process (the function's is 0 if it was made with 0).
    pub fn resolve(&self, key: &FnKey, kind: u8) -> Result<(usize, usize), BadFnRef> {
        if self.kind != kind || key.tag(self.kind, self.tramp, self.func) != self.tag {
            return Err(BadFnRef);
        }
        let func = if self.func == 0 {
            0
        } else {
            address_of(self.func)
        };
        Ok((address_of(self.tramp), func))
    }

    /// The same reference with its function moved `delta` bytes and tagged again: a reference
    /// its holder made to a place that is not a function. Only for testing that a child
    /// refuses what does not resolve to code.
    pub(crate) fn skewed(self, key: &FnKey, delta: i64) -> Self {
        let func = self.func.wrapping_add(delta);
        Self {
            func,
            tag: key.tag(self.kind, self.tramp, func),
            ..self
        }
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
///
/// ```
/// let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
/// assert_eq!(ipc_core::process::panic_message(&*p), "boom 1");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not a string".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tramp(f: usize, x: u64) -> u64 {
        // SAFETY: the tests pair this trampoline with `fn(u64) -> u64` only.
        let f = unsafe { std::mem::transmute::<usize, fn(u64) -> u64>(f) };
        f(x)
    }

    fn inc(x: u64) -> u64 {
        x + 1
    }

    fn make(key: &FnKey) -> FnRef {
        // SAFETY: kind 1 pairs `tramp` with a `fn(u64) -> u64`.
        unsafe {
            FnRef::new(
                key,
                1,
                tramp as fn(usize, u64) -> u64 as usize,
                inc as fn(u64) -> u64 as usize,
            )
        }
    }

    #[test]
    fn a_reference_resolves_only_under_its_key_and_kind() {
        let key = FnKey::random();
        let r = make(&key);
        let (t, f) = r.resolve(&key, 1).unwrap();
        // SAFETY: kind 1 is a `fn(usize, u64) -> u64` (see `make`).
        let t = unsafe { std::mem::transmute::<usize, fn(usize, u64) -> u64>(t) };
        assert_eq!(t(f, 41), 42);
        assert_eq!(r.resolve(&key, 2), Err(BadFnRef));
        assert_eq!(r.resolve(&FnKey::random(), 1), Err(BadFnRef));
    }

    #[test]
    fn a_forged_offset_or_tag_is_refused() {
        let key = FnKey::random();
        let mut r = make(&key);
        r.func += 16;
        assert_eq!(r.resolve(&key, 1), Err(BadFnRef));
        let mut r = make(&key);
        r.tag ^= 1;
        assert_eq!(r.resolve(&key, 1), Err(BadFnRef));
        let r = make(&key);
        let bytes = crate::codec::encode(&r).unwrap();
        assert_eq!(crate::codec::decode::<FnRef>(&bytes).unwrap(), r);
    }
}
