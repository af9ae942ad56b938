//! The async forms (`lock_async`, `acquire_async`, `wait_async`, ...) across real processes,
//! on three executors (tokio current-thread, tokio multi-thread, `futures::executor`): they
//! complete when a peer acts, they cancel cleanly when dropped at each of their await points,
//! a peer SIGKILLed while 1,000 tasks await ends every await as it ends a blocking call, and an
//! idle awaiting process uses almost no CPU.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipc_core::raw::atomic::AtomicU32;
use std::time::Duration;

use common::{holder_pid, live_holder_word, peek, poke};
use ipc_sync::{
    Barrier, BarrierWaitError, Condition, Event, Lock, LockTimeoutError, Mutex, RLock, Semaphore,
};
use ipc_testkit::{
    Role, WATCHDOG, assert_idle, counting_polls, cpu_time, encode, from_env, on_every_executor,
    on_one_thread_executors, pending_after_one_poll, runtime, spawn_with_env, wait_until, watchdog,
};

// ---------------------------------------------------------------------------------------------
// Child roles.

/// Child: takes LOCK, sets HELD, holds it until RELEASE is set (or it is killed).
#[test]
#[ignore = "child role"]
fn child_hold_lock() {
    let lock: Lock = from_env("LOCK");
    let held: Event = from_env("HELD");
    let release: Event = from_env("RELEASE");
    let g = match lock.lock_timeout(WATCHDOG) {
        Ok(g) => g,
        Err(LockTimeoutError::OwnerDied(e)) => e.into_inner(),
        Err(e) => panic!("{e}"),
    };
    held.set();
    assert!(release.wait_timeout(WATCHDOG));
    drop(g);
}

/// Starts `child_hold_lock` on `lock` and waits until it holds it; returns the child and the
/// event that makes it release.
fn hold_in_child(lock: &Lock) -> (Role, Event) {
    let held = Event::new().unwrap();
    let release = Event::new().unwrap();
    let child = spawn_with_env(
        "child_hold_lock",
        &[
            ("LOCK", encode(lock)),
            ("HELD", encode(&held)),
            ("RELEASE", encode(&release)),
        ],
    );
    assert!(held.wait_timeout(WATCHDOG), "the child never took the lock");
    (child, release)
}

/// Child: sets EVENT once GO is set.
#[test]
#[ignore = "child role"]
fn child_set_event() {
    let event: Event = from_env("EVENT");
    let go: Event = from_env("GO");
    assert!(go.wait_timeout(WATCHDOG));
    event.set();
}

/// Child: waits at BARRIER (and is killed there, or passes).
#[test]
#[ignore = "child role"]
fn child_wait_at_barrier() {
    let b: Barrier = from_env("BARRIER");
    let _ = b.wait_timeout(WATCHDOG);
}

// ---------------------------------------------------------------------------------------------
// Lock, Mutex, RLock.

#[test]
fn lock_async_completes_when_another_process_releases() {
    let lock = Lock::new().unwrap();
    let handle = lock.handle();
    on_every_executor(WATCHDOG, move || {
        let lock = Lock::open(&handle).unwrap();
        async move {
            let (child, release) = hold_in_child(&lock);
            let mut fut = std::pin::pin!(lock.lock_async());
            // Held by the child: pending (spun, then armed).
            assert!(pending_after_one_poll(fut.as_mut()));
            release.set();
            let g = fut.await.expect("a released lock is clean");
            drop(g);
            child.join();
        }
    });
}

#[test]
fn lock_timeout_async_times_out_and_dropped_waits_take_nothing() {
    let lock = Arc::new(Lock::new().unwrap());
    let (child, release) = hold_in_child(&lock);
    let l = Arc::clone(&lock);
    on_every_executor(WATCHDOG, move || {
        let l = Arc::clone(&l);
        async move {
            assert!(matches!(
                l.lock_timeout_async(Duration::from_millis(30)).await,
                Err(LockTimeoutError::TimedOut)
            ));
            // A future dropped while it waits (here, one poll in).
            let mut fut = Box::pin(l.lock_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            drop(fut);
        }
    });
    // A runtime's own timeout.
    let l = Arc::clone(&lock);
    watchdog(WATCHDOG, move || {
        runtime().block_on(async move {
            let r = tokio::time::timeout(Duration::from_millis(30), l.lock_async()).await;
            assert!(r.is_err(), "the lock is held by the child");
        })
    });
    // Nothing was taken by the dropped waits: the child still holds, then releases.
    assert_ne!(holder_pid(&peek(&lock.handle(), 0, 8)), 0);
    release.set();
    child.join();
    assert!(lock.try_lock().is_ok(), "nobody else holds it");
    assert!(!lock.is_poisoned());
}

#[test]
fn killed_holder_ends_1000_awaits_one_of_them_with_owner_died() {
    let lock = Arc::new(Lock::new().unwrap());
    let (mut child, _release) = hold_in_child(&lock);
    let done = Arc::new(AtomicU32::new(0));
    let died = Arc::new(AtomicU32::new(0));
    let (l, d, dd) = (Arc::clone(&lock), Arc::clone(&done), Arc::clone(&died));
    let rt = runtime();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (l, d, dd) = (Arc::clone(&l), Arc::clone(&d), Arc::clone(&dd));
            rt.spawn(async move {
                let g = match l.lock_async().await {
                    Ok(g) => g,
                    Err(e) => {
                        // ORDERING: Relaxed, a counter read after the tasks were joined.
                        dd.fetch_add(1, Ordering::Relaxed);
                        let g = e.into_inner();
                        g.make_consistent();
                        g
                    }
                };
                // ORDERING: Relaxed, as above.
                d.fetch_add(1, Ordering::Relaxed);
                drop(g);
            })
        })
        .collect();
    // Let every task reach its wait, then kill the holder.
    std::thread::sleep(Duration::from_millis(100));
    // ORDERING: Relaxed, a snapshot: nobody can have the lock while the child holds it.
    assert_eq!(done.load(Ordering::Relaxed), 0);
    child.kill();
    watchdog(WATCHDOG, move || {
        rt.block_on(async move {
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    assert_eq!(done.load(Ordering::Relaxed), 1000);
    assert_eq!(
        died.load(Ordering::Relaxed),
        1,
        "made consistent by the first"
    );
    assert!(!lock.is_locked());
}

#[test]
fn mutex_lock_async_guards_the_value() {
    let m = Mutex::new(0u64).unwrap();
    let mh = m.handle();
    on_every_executor(WATCHDOG, move || {
        let m = Mutex::<u64>::open(&mh).unwrap();
        async move {
            *m.lock_async().await.unwrap() += 1;
        }
    });
    assert_eq!(*m.lock().unwrap(), 3);
}

#[test]
fn rlock_lock_async_re_enters_on_the_owning_thread() {
    let rl = RLock::new().unwrap();
    let rh = rl.handle();
    on_one_thread_executors(move || {
        let rl = RLock::open(&rh).unwrap();
        async move {
            let outer = rl.lock_async().await.unwrap();
            let inner = rl.lock_timeout_async(Duration::ZERO).await.unwrap();
            assert_eq!(rl.depth(), 2);
            drop(inner);
            drop(outer);
            assert!(!rl.is_locked());
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Semaphore.

/// The waiter count of a semaphore (its second word).
fn semaphore_waiters(s: &Semaphore) -> u32 {
    u32::from_ne_bytes(peek(&s.handle(), 4, 4).try_into().unwrap())
}

#[test]
fn acquire_async_waits_for_a_release_from_another_thread() {
    let s = Semaphore::new(0).unwrap();
    let h = s.handle();
    on_every_executor(WATCHDOG, move || {
        let s = Semaphore::open(&h).unwrap();
        let releaser = Semaphore::open(&h).unwrap();
        async move {
            let mut fut = std::pin::pin!(s.acquire_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                releaser.release().unwrap();
            });
            fut.await;
            t.join().unwrap();
            assert_eq!(s.value(), 0);
        }
    });
}

#[test]
fn dropped_acquire_takes_no_permit_and_leaves_no_waiter() {
    let s = Arc::new(Semaphore::new(0).unwrap());
    let s2 = Arc::clone(&s);
    on_every_executor(WATCHDOG, move || {
        let s = Arc::clone(&s2);
        async move {
            assert!(!s.acquire_timeout_async(Duration::from_millis(20)).await);
            let mut fut = Box::pin(s.acquire_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            assert_eq!(semaphore_waiters(&s), 1, "counted while it waits");
            drop(fut);
        }
    });
    assert_eq!(semaphore_waiters(&s), 0);
    s.release().unwrap();
    assert_eq!(s.value(), 1, "nobody took the permit");
}

// ---------------------------------------------------------------------------------------------
// Event.

/// The waiter count of an event (its second word).
fn event_waiters(e: &Event) -> u32 {
    u32::from_ne_bytes(peek(&e.handle(), 4, 4).try_into().unwrap())
}

#[test]
fn wait_async_wakes_when_another_process_sets_the_event() {
    on_every_executor(WATCHDOG, || async {
        let event = Event::new().unwrap();
        let go = Event::new().unwrap();
        let child = spawn_with_env(
            "child_set_event",
            &[("EVENT", encode(&event)), ("GO", encode(&go))],
        );
        let mut fut = std::pin::pin!(event.wait_async());
        assert!(pending_after_one_poll(fut.as_mut()));
        assert_eq!(event_waiters(&event), 1);
        go.set();
        fut.await;
        assert_eq!(event_waiters(&event), 0);
        child.join();
    });
}

#[test]
fn dropped_event_wait_leaves_no_waiter() {
    let e = Arc::new(Event::new().unwrap());
    let e2 = Arc::clone(&e);
    on_every_executor(WATCHDOG, move || {
        let e = Arc::clone(&e2);
        async move {
            assert!(!e.wait_timeout_async(Duration::from_millis(20)).await);
            let mut fut = Box::pin(e.wait_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            drop(fut);
        }
    });
    assert_eq!(event_waiters(&e), 0);
}

#[test]
fn thousand_tasks_wake_on_one_set_from_another_process() {
    let event = Arc::new(Event::new().unwrap());
    let go = Event::new().unwrap();
    let child = spawn_with_env(
        "child_set_event",
        &[("EVENT", encode(&*event)), ("GO", encode(&go))],
    );
    let rt = runtime();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let e = Arc::clone(&event);
            rt.spawn(async move { e.wait_async().await })
        })
        .collect();
    wait_until(WATCHDOG, "1000 tasks wait", || {
        event_waiters(&event) == 1000
    });
    go.set();
    watchdog(WATCHDOG, move || {
        rt.block_on(async move {
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    child.join();
    assert_eq!(event_waiters(&event), 0);
}

#[test]
fn thousand_timed_waits_end_on_an_event_whose_setter_was_killed() {
    // The only process that would set the event is killed: every await ends at its timeout.
    let event = Arc::new(Event::new().unwrap());
    let go = Event::new().unwrap();
    let mut child = spawn_with_env(
        "child_set_event",
        &[("EVENT", encode(&*event)), ("GO", encode(&go))],
    );
    let rt = runtime();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let e = Arc::clone(&event);
            rt.spawn(async move { e.wait_timeout_async(Duration::from_millis(300)).await })
        })
        .collect();
    child.kill();
    let set = watchdog(WATCHDOG, move || {
        rt.block_on(async move {
            let mut set = 0;
            for t in tasks {
                set += u32::from(t.await.unwrap());
            }
            set
        })
    });
    assert_eq!(set, 0);
    assert_eq!(event_waiters(&event), 0, "no waiter count left raised");
}

// ---------------------------------------------------------------------------------------------
// Condition.

#[test]
fn condition_wait_async_is_notified_by_another_thread() {
    let cond = Condition::new().unwrap();
    let h = cond.handle();
    on_every_executor(WATCHDOG, move || {
        let cond = Condition::open(&h).unwrap();
        let notifier = Condition::open(&h).unwrap();
        async move {
            let g = cond.lock_async().await.unwrap();
            let t = std::thread::spawn(move || {
                // Notifies once the waiter has released the lock (it holds it until then).
                let g = notifier.lock_timeout(WATCHDOG).unwrap();
                g.notify();
            });
            let (g, notified) = g.wait_timeout_async(WATCHDOG).await.unwrap();
            assert!(notified);
            drop(g);
            t.join().unwrap();
        }
    });
}

#[test]
fn a_dropped_condition_wait_gives_its_ticket_back() {
    watchdog(WATCHDOG, || {
        futures::executor::block_on(async {
            let cond = Condition::new().unwrap();
            // A waits, then is dropped before any notification.
            let a = cond.lock_async().await.unwrap().wait_async();
            let mut a = Box::pin(a);
            assert!(pending_after_one_poll(a.as_mut()));
            drop(a);
            // B waits; one notification must reach B, not A's abandoned ticket.
            let b = cond
                .lock_async()
                .await
                .unwrap()
                .wait_timeout_async(WATCHDOG);
            let mut b = Box::pin(b);
            assert!(pending_after_one_poll(b.as_mut()));
            cond.lock().unwrap().notify();
            let (g, notified) = b.await.unwrap();
            assert!(notified);
            drop(g);
        })
    });
}

#[test]
fn a_notification_that_reached_a_dropped_wait_is_handed_on() {
    watchdog(WATCHDOG, || {
        futures::executor::block_on(async {
            let cond = Condition::new().unwrap();
            let a = Box::pin(cond.lock_async().await.unwrap().wait_async());
            let b = Box::pin(
                cond.lock_async()
                    .await
                    .unwrap()
                    .wait_timeout_async(WATCHDOG),
            );
            // notify(1) goes to the oldest waiter, A; A is dropped without seeing it.
            cond.lock().unwrap().notify();
            drop(a);
            let (g, notified) = b.await.unwrap();
            assert!(notified, "A's notification was handed on to B");
            drop(g);
        })
    });
}

#[test]
fn a_condition_wait_dropped_while_taking_the_lock_back_takes_nothing() {
    watchdog(WATCHDOG, || {
        futures::executor::block_on(async {
            let cond = Condition::new().unwrap();
            let mut a = Box::pin(cond.lock_async().await.unwrap().wait_async());
            assert!(pending_after_one_poll(a.as_mut()));
            let g = cond.lock().unwrap();
            g.notify();
            // Notified, but the lock is ours: A now waits for it.
            assert!(pending_after_one_poll(a.as_mut()));
            drop(a);
            drop(g);
            assert!(cond.try_lock().is_ok());
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Barrier.

#[test]
fn barrier_wait_async_passes_with_a_child_process() {
    on_every_executor(WATCHDOG, || async {
        let b = Barrier::new(2).unwrap();
        let child = spawn_with_env("child_wait_at_barrier", &[("BARRIER", encode(&b))]);
        let i = b.wait_timeout_async(WATCHDOG).await.unwrap();
        assert!(i < 2);
        child.join();
        assert!(!b.is_broken());
    });
}

#[test]
fn dropping_an_arrived_barrier_wait_breaks_the_barrier() {
    on_every_executor(WATCHDOG, || async {
        let b = Barrier::new(2).unwrap();
        let mut fut = Box::pin(b.wait_async());
        assert!(pending_after_one_poll(fut.as_mut()));
        assert_eq!(b.n_waiting(), 1);
        drop(fut);
        assert!(b.is_broken(), "a party that leaves breaks the barrier");
        b.reset();
        // With a runtime's timeout, the same.
        if tokio::runtime::Handle::try_current().is_ok() {
            let r = tokio::time::timeout(Duration::from_millis(20), b.wait_async()).await;
            assert!(r.is_err());
            assert!(b.is_broken());
        }
    });
}

#[test]
fn a_barrier_wait_dropped_before_it_arrived_changes_nothing() {
    let b = Barrier::new(2).unwrap();
    let h = b.handle();
    // The internal lock (the state's first word) held by a live process that does not run
    // (this one, as a stopped party would be): the wait cannot arrive.
    let me = std::process::id();
    poke(&h, 0, &live_holder_word(me));
    watchdog(WATCHDOG, move || {
        futures::executor::block_on(async {
            let b = <Barrier>::open(&h).unwrap();
            let mut fut = Box::pin(b.wait_async());
            assert!(pending_after_one_poll(fut.as_mut()));
            drop(fut);
            assert!(!b.is_broken());
            assert_eq!(b.n_waiting(), 0);
        })
    });
    poke(&b.handle(), 0, &[0; 8]);
    assert!(!b.is_broken());
}

#[test]
fn a_party_killed_while_1000_tasks_wait_breaks_the_barrier() {
    // 1000 tasks, the child, and one party that never comes.
    let b = Arc::new(Barrier::new(1002).unwrap());
    let mut child = spawn_with_env("child_wait_at_barrier", &[("BARRIER", encode(&*b))]);
    wait_until(WATCHDOG, "the child waits", || b.n_waiting() == 1);
    let rt = runtime();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let b = Arc::clone(&b);
            rt.spawn(async move { b.wait_async().await })
        })
        .collect();
    wait_until(WATCHDOG, "1001 parties wait", || b.n_waiting() == 1001);
    child.kill();
    let results = watchdog(WATCHDOG, move || {
        rt.block_on(async move {
            let mut r = Vec::new();
            for t in tasks {
                r.push(t.await.unwrap());
            }
            r
        })
    });
    let died = results
        .iter()
        .filter(|r| matches!(r, Err(BarrierWaitError::PeerDied { .. })))
        .count();
    let broken = results
        .iter()
        .filter(|r| matches!(r, Err(BarrierWaitError::Broken)))
        .count();
    assert!(died >= 1, "a party noticed the death");
    assert_eq!(died + broken, 1000, "{results:?}");
    assert!(b.is_broken());
}

// ---------------------------------------------------------------------------------------------
// No busy polling.

/// Child: 1,000 tasks await a lock held by the parent, an event never set, a semaphore never
/// released and a barrier that never fills; over one second of that the tasks must be polled
/// about once per slice per awaited word, not more (`assert_idle`).
#[test]
#[ignore = "child role"]
fn child_idle_awaiting() {
    let lock = Arc::new(from_env::<Lock>("LOCK"));
    let event = Arc::new(Event::new().unwrap());
    let sem = Arc::new(Semaphore::new(0).unwrap());
    let barrier = Arc::new(Barrier::new(1000).unwrap());
    let rt = runtime();
    let polls = Arc::new(AtomicU32::new(0));
    for i in 0..1000 {
        let (l, e, s, b) = (
            Arc::clone(&lock),
            Arc::clone(&event),
            Arc::clone(&sem),
            Arc::clone(&barrier),
        );
        let polls = Arc::clone(&polls);
        rt.spawn(async move {
            let wait = async {
                match i % 4 {
                    0 => drop(l.lock_async().await),
                    1 => e.wait_async().await,
                    2 => s.acquire_async().await,
                    _ => drop(b.wait_async().await),
                }
            };
            counting_polls(wait, &polls).await
        });
    }
    // Let them settle into their waits (spins, first registrations).
    std::thread::sleep(Duration::from_millis(300));
    // ORDERING: Relaxed, a counter of the tasks' polls; it publishes nothing.
    let polls0 = polls.load(Ordering::Relaxed);
    let (cpu0, wall0) = (cpu_time(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    // ORDERING: Relaxed, as above.
    let polled = polls.load(Ordering::Relaxed) - polls0;
    // Four words: the lock's, the event's, the semaphore's and the barrier's.
    assert_idle("idle awaiting", polled, 4, cpu, wall);
    rt.shutdown_background();
}

#[test]
fn an_idle_awaiting_process_uses_almost_no_cpu() {
    let lock = Lock::new().unwrap();
    let _g = lock.lock().unwrap();
    spawn_with_env("child_idle_awaiting", &[("LOCK", encode(&lock))]).join();
}
