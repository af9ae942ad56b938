//! The one place that names atomic types: std's normally, loom's under `--cfg loom`, so the lock
//! and semaphore state machines written against these names can be model-checked.
//!
//! The atomics are `#[repr(transparent)]` newtypes that dereference to the real type, so that
//! the workspace's `disallowed-types` lint catches any direct use elsewhere while this facade
//! stays the single switch between std and loom.
#![allow(clippy::disallowed_types)]
#![allow(unused_imports, unreachable_pub, dead_code)]

#[cfg(loom)]
use core::ops::Deref;

#[cfg(loom)]
use loom::sync::atomic as inner;

// Normally the workspace's shared-memory atomics from ipc-core (the same newtypes, so they pass
// to `ipc_core::futex`); under loom, loom's behind the same names.
#[cfg(not(loom))]
pub(crate) use ipc_core::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{Ordering, fence};

#[cfg(loom)]
macro_rules! facade {
    ($name:ident, $int:ty, $($path:tt)+) => {
        #[doc = concat!("A `", stringify!($name), "`, std's or loom's (see the module docs).")]
        #[repr(transparent)]
        #[derive(Debug)]
        pub(crate) struct $name($($path)+::$name);

        impl $name {
            #[doc = concat!("A new `", stringify!($name), "`.")]
            pub(crate) fn new(v: $int) -> Self {
                Self(<$($path)+::$name>::new(v))
            }
        }

        impl Deref for $name {
            type Target = $($path)+::$name;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}

#[cfg(loom)]
facade!(AtomicU32, u32, inner);
#[cfg(loom)]
facade!(AtomicU64, u64, inner);

/// Process-private caches (never in shared memory, never model-checked): always std's.
pub(crate) mod private {
    use core::ops::Deref;

    facade_std!(AtomicU32, u32);
    facade_std!(AtomicU64, u64);

    macro_rules! facade_std {
        ($name:ident, $int:ty) => {
            #[doc = concat!("A std `", stringify!($name), "` for process-private statics.")]
            #[repr(transparent)]
            #[derive(Debug)]
            pub(crate) struct $name(core::sync::atomic::$name);

            impl $name {
                #[doc = concat!("A new `", stringify!($name), "`.")]
                pub(crate) const fn new(v: $int) -> Self {
                    Self(core::sync::atomic::$name::new(v))
                }
            }

            impl Deref for $name {
                type Target = core::sync::atomic::$name;

                fn deref(&self) -> &Self::Target {
                    &self.0
                }
            }
        };
    }
    use facade_std;
}

/// Yields inside a spin loop: a loom yield under the model, a CPU hint otherwise.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
