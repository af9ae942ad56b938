//! `Barrier` across processes: passing, arrival indices, abort, reset, and a party killed while
//! the others wait.

mod common;

use std::time::Duration;

use common::{holder_pid, live_holder_word, peek, poke};
use ipc_testkit::{WATCHDOG, encode, from_env, spawn_with_env, wait_until, watchdog};
use std::sync::OnceLock;

use ipc_sync::{Barrier, BarrierAction, BarrierResetError, BarrierWaitError, Value};

/// Child: waits at the barrier twice and records its arrival indices.
#[test]
#[ignore = "child role"]
fn child_pass_twice() {
    let b: Barrier = from_env("BARRIER");
    let seen: Value<u64> = from_env("SEEN");
    for _ in 0..2 {
        let i = b.wait_timeout(WATCHDOG).unwrap();
        seen.fetch_add(1 << (8 * i));
    }
}

#[test]
fn three_processes_pass_with_distinct_indices() {
    let b = Barrier::new(3).unwrap();
    let seen = Value::new(0u64).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            spawn_with_env(
                "child_pass_twice",
                &[("BARRIER", encode(&b)), ("SEEN", encode(&seen))],
            )
        })
        .collect();
    for _ in 0..2 {
        let i = b.wait_timeout(WATCHDOG).unwrap();
        seen.fetch_add(1 << (8 * i));
    }
    for k in kids {
        k.join();
    }
    // Each index 0, 1, 2 was handed out once per round.
    assert_eq!(seen.load(), 0x02_02_02);
    assert!(!b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

/// Child: waits at the barrier (and is killed there).
#[test]
#[ignore = "child role"]
fn child_wait_forever() {
    let b: Barrier = from_env("BARRIER");
    let _ = b.wait_timeout(WATCHDOG);
}

#[test]
fn a_party_killed_while_waiting_breaks_the_barrier() {
    let b = Barrier::new(3).unwrap();
    let mut child = spawn_with_env("child_wait_forever", &[("BARRIER", encode(&b))]);
    let h = b.handle();
    let waiter = std::thread::spawn(move || <Barrier>::open(&h).unwrap().wait_timeout(WATCHDOG));
    // Wait until both the child and the thread wait, then kill the child.
    wait_until(WATCHDOG, "two parties wait", || b.n_waiting() >= 2);
    child.kill();
    let r = watchdog(WATCHDOG, move || waiter.join().unwrap());
    assert!(
        matches!(
            r,
            Err(BarrierWaitError::PeerDied { .. } | BarrierWaitError::Broken)
        ),
        "{r:?}"
    );
    assert!(b.is_broken());
    assert_eq!(b.wait_timeout(WATCHDOG), Err(BarrierWaitError::Broken));
    b.reset();
    assert!(!b.is_broken());
}

#[test]
fn abort_and_reset_release_waiters() {
    let b = Barrier::new(2).unwrap();
    let h = b.handle();
    let waiter = std::thread::spawn(move || <Barrier>::open(&h).unwrap().wait_timeout(WATCHDOG));
    wait_until(WATCHDOG, "a party waits", || b.n_waiting() >= 1);
    b.reset();
    assert_eq!(
        watchdog(WATCHDOG, move || waiter.join().unwrap()),
        Err(BarrierWaitError::Broken)
    );
    assert!(!b.is_broken());

    let h = b.handle();
    let waiter = std::thread::spawn(move || <Barrier>::open(&h).unwrap().wait_timeout(WATCHDOG));
    wait_until(WATCHDOG, "a party waits", || b.n_waiting() >= 1);
    b.abort();
    assert_eq!(
        watchdog(WATCHDOG, move || waiter.join().unwrap()),
        Err(BarrierWaitError::Broken)
    );
    assert!(b.is_broken());
    b.reset();

    // After the reset the barrier works again.
    let h = b.handle();
    let other = std::thread::spawn(move || <Barrier>::open(&h).unwrap().wait_timeout(WATCHDOG));
    let mine = b.wait_timeout(WATCHDOG).unwrap();
    let theirs = watchdog(WATCHDOG, move || other.join().unwrap()).unwrap();
    assert_eq!(mine + theirs, 1);
    assert_eq!(b.parties(), 2);
    assert!(Barrier::new(0).is_err());
}

/// Child: waits at the barrier once; it must pass.
#[test]
#[ignore = "child role"]
fn child_wait_once() {
    let b: Barrier = from_env("BARRIER");
    b.wait_timeout(WATCHDOG).unwrap();
}

#[test]
fn a_stopped_party_does_not_break_the_barrier() {
    let b = Barrier::new(3).unwrap();
    let child = spawn_with_env("child_wait_once", &[("BARRIER", encode(&b))]);
    let h = b.handle();
    let waiter = std::thread::spawn(move || <Barrier>::open(&h).unwrap().wait_timeout(WATCHDOG));
    wait_until(WATCHDOG, "two parties wait", || b.n_waiting() >= 2);
    child.stop();
    // Many liveness checks of the waiting thread pass while the party is stopped: it is alive.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!b.is_broken());
    child.resume();
    assert!(b.wait_timeout(WATCHDOG).is_ok());
    assert!(watchdog(WATCHDOG, move || waiter.join().unwrap()).is_ok());
    child.join();
}

/// Child: resets the barrier again and again (each reset takes its internal lock) until `STOP`.
#[test]
#[ignore = "child role"]
fn child_reset_loop() {
    let b: Barrier = from_env("BARRIER");
    let started: Value<u64> = from_env("SEEN");
    started.store(1);
    while started.load() == 1 {
        for _ in 0..1000 {
            b.reset();
        }
    }
}

#[test]
fn a_stopped_holder_of_the_internal_lock_does_not_outlast_wait_timeout() {
    let b = Barrier::new(2).unwrap();
    let started = Value::new(0u64).unwrap();
    let child = spawn_with_env(
        "child_reset_loop",
        &[("BARRIER", encode(&b)), ("SEEN", encode(&started))],
    );
    wait_until(WATCHDOG, "the child resets", || started.load() == 1);
    // Stop the child until it is stopped inside a reset, holding the internal lock.
    let h = b.handle();
    wait_until(
        WATCHDOG,
        "the child stopped holding the internal lock",
        || {
            child.stop();
            if holder_pid(&peek(&h, 0, 8)) == child.pid() {
                return true;
            }
            child.resume();
            false
        },
    );
    // It cannot arrive (the lock is held by a live process that does not run), so the timeout
    // ends the call and breaks the barrier.
    let h2 = b.handle();
    let r = watchdog(WATCHDOG, move || {
        <Barrier>::open(&h2)
            .unwrap()
            .wait_timeout(Duration::from_millis(200))
    });
    assert_eq!(r, Err(BarrierWaitError::TimedOut));
    assert!(b.is_broken());
    // `abort` takes no lock either.
    watchdog(WATCHDOG, move || <Barrier>::open(&h).unwrap().abort());
    child.resume();
    started.store(2);
    child.join();
    b.reset();
    assert!(!b.is_broken());
}

/// Child: does nothing until killed.
#[test]
#[ignore = "child role"]
fn child_idle() {
    std::thread::sleep(WATCHDOG);
}

#[test]
fn a_waiting_party_times_out_while_a_stopped_process_holds_the_internal_lock() {
    // A party waits; then the internal lock is held by a live process that does not run (its
    // word names a SIGSTOPped child). The waiter's deadline still ends its call, and breaks the
    // barrier, without the lock.
    let b = Barrier::new(2).unwrap();
    let idle = spawn_with_env("child_idle", &[]);
    idle.stop();
    let h = b.handle();
    let waiter = std::thread::spawn(move || {
        <Barrier>::open(&h)
            .unwrap()
            .wait_timeout(Duration::from_millis(300))
    });
    wait_until(WATCHDOG, "a party waits", || b.n_waiting() >= 1);
    poke(&b.handle(), 0, &live_holder_word(idle.pid()));
    assert_eq!(
        watchdog(WATCHDOG, move || waiter.join().unwrap()),
        Err(BarrierWaitError::TimedOut)
    );
    assert!(b.is_broken());
    // Free the lock again (as if the stopped holder had finished) and reset.
    poke(&b.handle(), 0, &[0; 8]);
    b.reset();
    assert!(!b.is_broken());
}

/// The trip counter of this process's `CountTrips` (set before the process waits).
static TRIPS: OnceLock<Value<u64>> = OnceLock::new();

/// Counts each trip in the shared `TRIPS` value.
struct CountTrips;

impl BarrierAction for CountTrips {
    fn run() {
        if let Some(trips) = TRIPS.get() {
            trips.fetch_add(1);
        }
    }
}

const ROUNDS: u64 = 20;

/// One party of the action test: waits `ROUNDS` times; after each pass the action has run once
/// more (it runs before any party returns); counts the rounds it was the last to arrive.
fn pass_rounds_with_action(b: &Barrier<CountTrips>, last: &Value<u64>) {
    let trips = TRIPS.get().unwrap();
    for round in 0..ROUNDS {
        let i = b.wait_timeout(WATCHDOG).unwrap();
        assert!(
            trips.load() > round,
            "the action ran before the party returned"
        );
        if i == b.parties() - 1 {
            last.fetch_add(1);
        }
    }
}

/// Child: a party of `the_action_runs_once_per_trip_in_the_last_party`.
#[test]
#[ignore = "child role"]
fn child_pass_rounds_with_action() {
    let b: Barrier<CountTrips> = from_env("BARRIER");
    let last: Value<u64> = from_env("LAST");
    let _ = TRIPS.set(from_env("TRIPS"));
    pass_rounds_with_action(&b, &last);
}

#[test]
fn the_action_runs_once_per_trip_in_the_last_party() {
    let b = Barrier::builder(3).action::<CountTrips>().build().unwrap();
    let trips = Value::new(0u64).unwrap();
    let last = Value::new(0u64).unwrap();
    // A barrier of another action (or of none) does not open this one.
    assert!(<Barrier>::open(&b.handle()).is_err());
    let env = [
        ("BARRIER", encode(&b)),
        ("LAST", encode(&last)),
        ("TRIPS", encode(&trips)),
    ];
    let kids: Vec<_> = (0..2)
        .map(|_| spawn_with_env("child_pass_rounds_with_action", &env))
        .collect();
    let _ = TRIPS.set(trips.try_clone().unwrap());
    pass_rounds_with_action(&b, &last);
    for k in kids {
        k.join();
    }
    assert_eq!(trips.load(), ROUNDS);
    assert_eq!(last.load(), ROUNDS);
}

/// An action that panics.
struct Panics;

impl BarrierAction for Panics {
    fn run() {
        panic!("the action failed");
    }
}

#[test]
fn an_action_that_panics_breaks_the_barrier() {
    let b = Barrier::builder(2).action::<Panics>().build().unwrap();
    let other = b.try_clone().unwrap();
    let t = std::thread::spawn(move || other.wait_timeout(WATCHDOG));
    let mine = b.wait_timeout(WATCHDOG);
    let theirs = watchdog(WATCHDOG, move || t.join().unwrap());
    let mut results = [mine, theirs];
    results.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        results,
        [
            Err(BarrierWaitError::ActionFailed),
            Err(BarrierWaitError::Broken)
        ]
    );
    assert!(b.is_broken());
    b.reset();
    assert!(!b.is_broken());
}

/// Child: waits with the barrier's default timeout (and must time out: nobody else comes).
#[test]
#[ignore = "child role"]
fn child_wait_with_default_timeout() {
    let b: Barrier = from_env("BARRIER");
    assert_eq!(b.timeout(), Some(Duration::from_millis(100)));
    assert_eq!(b.wait(), Err(BarrierWaitError::TimedOut));
}

#[test]
fn wait_uses_the_default_timeout_given_at_creation() {
    let b = Barrier::builder(3)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    // The timeout is in the barrier's segment: a child (or `open`) has it too.
    assert_eq!(
        <Barrier>::open(&b.handle()).unwrap().timeout(),
        Some(Duration::from_millis(100))
    );
    spawn_with_env(
        "child_wait_with_default_timeout",
        &[("BARRIER", encode(&b))],
    )
    .join();
    assert!(b.is_broken());
    b.reset();
    assert_eq!(Barrier::new(2).unwrap().timeout(), None);
}

#[test]
fn reset_timeout_returns_by_its_deadline_while_a_stopped_process_holds_the_internal_lock() {
    let b = Barrier::new(2).unwrap();
    let idle = spawn_with_env("child_idle", &[]);
    idle.stop();
    // The internal lock's word names a live process that does not run.
    poke(&b.handle(), 0, &live_holder_word(idle.pid()));
    let h = b.handle();
    let r = watchdog(WATCHDOG, move || {
        <Barrier>::open(&h)
            .unwrap()
            .reset_timeout(Duration::from_millis(200))
    });
    assert_eq!(r, Err(BarrierResetError::TimedOut));
    poke(&b.handle(), 0, &[0; 8]);
    assert_eq!(b.reset_timeout(WATCHDOG), Ok(()));
}

/// Set in the child of `a_last_party_killed_inside_the_action_breaks_the_barrier`.
static STALLED: OnceLock<Value<u64>> = OnceLock::new();

/// An action that says it runs, then never ends (until the process is killed).
struct Stall;

impl BarrierAction for Stall {
    fn run() {
        if let Some(stalled) = STALLED.get() {
            stalled.store(1);
            std::thread::sleep(WATCHDOG);
        }
    }
}

/// Child: arrives last at a `Barrier<Stall>` and stalls in the action.
#[test]
#[ignore = "child role"]
fn child_arrive_last_and_stall() {
    let b: Barrier<Stall> = from_env("BARRIER");
    let _ = STALLED.set(from_env("STALLED"));
    let _ = b.wait_timeout(WATCHDOG);
}

#[test]
fn a_last_party_killed_inside_the_action_breaks_the_barrier() {
    let b = Barrier::builder(2).action::<Stall>().build().unwrap();
    let stalled = Value::new(0u64).unwrap();
    let other = b.try_clone().unwrap();
    let waiter = std::thread::spawn(move || other.wait_timeout(WATCHDOG));
    wait_until(WATCHDOG, "a party waits", || b.n_waiting() >= 1);
    let mut child = spawn_with_env(
        "child_arrive_last_and_stall",
        &[("BARRIER", encode(&b)), ("STALLED", encode(&stalled))],
    );
    wait_until(WATCHDOG, "the action runs", || stalled.load() == 1);
    child.kill();
    let r = watchdog(WATCHDOG, move || waiter.join().unwrap());
    assert!(matches!(r, Err(BarrierWaitError::PeerDied { .. })), "{r:?}");
    assert!(b.is_broken());
    // The dead party held the internal lock: the next reset takes it over.
    assert_eq!(b.reset_timeout(WATCHDOG), Ok(()));
    assert!(!b.is_broken());
}
