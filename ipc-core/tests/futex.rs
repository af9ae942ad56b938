//! Futex wait/wake between two processes through a shared segment.

use std::time::{Duration, Instant};

use ipc_core::raw::futex::{self, Futex, WaitResult};
use ipc_core::{ObjectHandle, RawArray};
use ipc_testkit::{child_input, spawn};

/// Word 0: the parent's signal; word 1: the child's acknowledgement.
fn words(a: &RawArray<u32>) -> (&Futex, &Futex) {
    let p = a.as_ptr();
    // SAFETY: the array holds 4 u32 (16 bytes, 8-aligned) for as long as `a` lives; Futex is two
    // atomic u32 words (#[repr(C)], valid for any bits), so two Futexes cover words 0..4.
    unsafe { (&*p.cast::<Futex>(), &*p.add(2).cast::<Futex>()) }
}

#[test]
#[ignore = "child role of futex_wakes_across_processes"]
fn child_waits_then_acks() {
    let Some(handle) = child_input::<ObjectHandle>() else {
        return;
    };
    let a = RawArray::<u32>::open(&handle).unwrap();
    let (signal, ack) = words(&a);
    // A timed wait that nobody ends: it returns at its deadline.
    let start = Instant::now();
    assert!(
        signal
            .wait_while(|v| v == 0, Some(start + Duration::from_millis(10)))
            .is_err()
    );
    ack.store_and_wake_all(1);
    // Then wait, without a deadline, for the parent's signal.
    let v = signal.wait_while(|v| v == 0, None).unwrap();
    assert_eq!(v, 42);
    ack.store_and_wake_all(2);
}

#[test]
fn futex_wakes_across_processes() {
    let a = RawArray::<u32>::new(4).unwrap();
    let child = spawn("child_waits_then_acks", &a.handle());
    let (signal, ack) = words(&a);
    let watchdog = Some(Instant::now() + Duration::from_secs(60));
    assert_eq!(ack.wait_while(|v| v == 0, watchdog), Ok(1));
    // Give the child time to fall asleep so the wake path (not the fast path) is exercised.
    std::thread::sleep(Duration::from_millis(50));
    signal.store_and_wake_all(42);
    assert_eq!(ack.wait_while(|v| v < 2, watchdog), Ok(2));
    child.join();
}

#[test]
fn raw_wait_on_a_mismatched_value_returns_at_once() {
    let a = RawArray::<u32>::new(4).unwrap();
    let word = words(&a).0.word();
    assert_eq!(futex::wait(word, 1, None), WaitResult::ValueChanged);
    let past = Instant::now() - Duration::from_millis(1);
    assert_eq!(futex::wait(word, 0, Some(past)), WaitResult::TimedOut);
    assert_eq!(futex::wake(word, 1), 0);
}
