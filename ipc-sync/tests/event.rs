//! `Event` across processes.

use std::time::Duration;

use ipc_core::Placement;
use ipc_sync::Event;
use ipc_testkit::{WATCHDOG, encode, from_env, spawn_with_env};

/// Child: waits for `GO`, then sets `DONE`.
#[test]
#[ignore = "child role"]
fn child_wait_then_answer() {
    let go: Event = from_env("GO");
    let done: Event = from_env("DONE");
    assert!(go.wait_timeout(WATCHDOG));
    done.set();
}

#[test]
fn set_wakes_a_waiting_process() {
    let go = Event::new().unwrap();
    let done = Event::new().unwrap();
    let child = spawn_with_env(
        "child_wait_then_answer",
        &[("GO", encode(&go)), ("DONE", encode(&done))],
    );
    assert!(!done.wait_timeout(Duration::from_millis(30)));
    go.set();
    assert!(done.wait_timeout(WATCHDOG));
    child.join();
}

#[test]
fn clear_and_named() {
    let e = Event::create(&Placement::NamedRandom).unwrap();
    let f = Event::open_named(e.name().unwrap()).unwrap();
    assert!(!f.try_wait());
    e.set();
    assert!(f.is_set());
    f.clear();
    assert!(!e.is_set());
    assert!(!e.wait_deadline(std::time::Instant::now()));
}
