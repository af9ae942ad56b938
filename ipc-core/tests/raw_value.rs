//! `RawValue<T>`: typed values, atomics across processes, type checks on open.

use bytemuck::{Pod, Zeroable};
use ipc_core::{ObjectHandle, OpenError, Placement, RawValue};
use ipc_testkit::{child_input, spawn};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Point3 {
    x: f64,
    y: f64,
    z: f64,
}

#[test]
fn get_set_and_atomics() {
    let v = RawValue::new(5i32).unwrap();
    assert_eq!(v.get(), 5);
    v.set(-7);
    assert_eq!(v.fetch_add(10), -7);
    assert_eq!(v.fetch_sub(1), 3);
    assert_eq!(v.swap(100), 2);
    assert_eq!(v.compare_exchange(100, 1), Ok(100));
    assert_eq!(v.compare_exchange(100, 2), Err(1));
    assert_eq!(v.fetch_max(50), 1);
    assert_eq!(v.fetch_min(-3), 50);
    assert_eq!(v.get(), -3);
}

#[test]
fn larger_pod_types_copy_in_and_out() {
    let p = Point3 {
        x: 1.0,
        y: 2.0,
        z: 3.0,
    };
    let v = RawValue::new(p).unwrap();
    assert_eq!(v.get(), p);
    v.set(Point3 { x: -1.0, ..p });
    let w = RawValue::<Point3>::open(&v.handle()).unwrap();
    assert_eq!(w.get().x, -1.0);
}

#[test]
fn wrong_type_is_refused_with_both_names() {
    let v = RawValue::new(1u64).unwrap();
    let err = RawValue::<u32>::open(&v.handle()).unwrap_err();
    let OpenError::IncompatibleLayout { expected, found } = &err else {
        panic!("expected IncompatibleLayout, got {err:?}");
    };
    assert_eq!(expected.name, "RawValue<u32>");
    assert_eq!(found.name, "RawValue<u64>");
    assert!(err.to_string().contains("RawValue<u64>"));
    // Same size, different type: still refused.
    assert!(RawValue::<i64>::open(&v.handle()).is_err());
    assert!(RawValue::<f64>::open(&v.handle()).is_err());
    // An array is not a value.
    assert!(ipc_core::RawArray::<u64>::open(&v.handle()).is_err());
}

#[test]
fn named_value_opens_by_name() {
    let v = RawValue::create(&Placement::NamedRandom, 42u16).unwrap();
    let name = v.name().unwrap().to_owned();
    let w = RawValue::<u16>::open_named(&name).unwrap();
    assert_eq!(w.get(), 42);
    drop(w);
    drop(v);
    assert!(matches!(
        RawValue::<u16>::open_named(&name),
        Err(OpenError::NotFound { .. })
    ));
}

#[test]
fn value_serialises_as_its_handle() {
    let v = RawValue::new(9u8).unwrap();
    let bytes = ipc_core::codec::encode(&v).unwrap();
    let w: RawValue<u8> = ipc_core::codec::decode(&bytes).unwrap();
    w.set(10);
    assert_eq!(v.get(), 10);
}

const INCREMENTS: u64 = 20_000;

#[test]
#[ignore = "child role of two_processes_increment_without_losing_any"]
fn child_increments() {
    let Some(handle) = child_input::<ObjectHandle>() else {
        return;
    };
    let v = RawValue::<u64>::open(&handle).unwrap();
    for _ in 0..INCREMENTS {
        v.fetch_add(1);
    }
}

#[test]
fn two_processes_increment_without_losing_any() {
    let v = RawValue::new(0u64).unwrap();
    let a = spawn("child_increments", &v.handle());
    let b = spawn("child_increments", &v.handle());
    for _ in 0..INCREMENTS {
        v.fetch_add(1);
    }
    a.join();
    b.join();
    assert_eq!(v.get(), 3 * INCREMENTS);
}

/// A handle whose sending side was dropped before the receiver opened it: the sender still
/// runs, so the error says the handle was dropped (and what to do), not that the creator died.
#[test]
fn a_handle_dropped_before_it_is_opened_is_named_as_such() {
    let v = RawValue::new(7u32).unwrap();
    let handle = RawValue::<u32>::open(&v.handle()).unwrap().handle();
    let err = RawValue::<u32>::open(&handle).expect_err("its descriptor is closed");
    assert!(
        matches!(err, OpenError::HandleClosed { pid, .. } if pid == std::process::id()),
        "{err}"
    );
    let pid = std::process::id();
    assert!(
        err.to_string().starts_with(&format!(
            "the handle of this anonymous segment was dropped by the process it came from (pid {pid}, descriptor "
        )),
        "{err}"
    );
    assert_eq!(v.get(), 7, "the value itself is untouched");
}
