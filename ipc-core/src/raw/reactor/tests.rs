//! Unit tests of the reactor: firing on a change, a wake, a deadline; withdrawal; dedup;
//! shards past 127 words; descriptors.

use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use super::{Registration, words};
use crate::primitive::{AtomicU32, Ordering};
use crate::raw::futex;

/// The longest any test waits for a wake before it fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A waker that counts its wakes and lets a test wait for them.
#[derive(Default)]
struct Count {
    n: Mutex<u32>,
    cv: Condvar,
}

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.n.lock().unwrap() += 1;
        self.cv.notify_all();
    }
}

impl Count {
    fn waker() -> (Arc<Self>, Waker) {
        let c = Arc::new(Self::default());
        let w = Waker::from(Arc::clone(&c));
        (c, w)
    }

    /// Waits until woken at least `n` times; panics after the watchdog.
    fn wait_for(&self, n: u32) {
        let deadline = Instant::now() + WATCHDOG;
        let mut g = self.n.lock().unwrap();
        while *g < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "not woken {n} times within the watchdog");
            g = self.cv.wait_timeout(g, left).unwrap().0;
        }
    }

    fn get(&self) -> u32 {
        *self.n.lock().unwrap()
    }
}

fn far() -> Instant {
    Instant::now() + WATCHDOG
}

fn entries_of(word: &AtomicU32) -> usize {
    words::current().waiters_on(word.as_ptr() as usize)
}

#[test]
fn fires_when_the_word_changes_and_is_woken() {
    let word = Box::new(AtomicU32::new(0));
    let (c, w) = Count::waker();
    let mut reg = Registration::new();
    reg.arm(&word, 0, far(), &w);
    // ORDERING: Relaxed, the test only needs the value to change.
    word.store(1, Ordering::Relaxed);
    futex::wake(&word, 1);
    c.wait_for(1);
    assert_eq!(entries_of(&word), 0, "a fired registration is gone");
}

#[test]
fn fires_at_once_when_the_word_already_differs() {
    // Nobody wakes the word: only the kernel's comparison can fire it.
    let word = Box::new(AtomicU32::new(5));
    let (c, w) = Count::waker();
    let mut reg = Registration::new();
    reg.arm(&word, 4, far(), &w);
    c.wait_for(1);
}

#[test]
fn fires_at_the_deadline() {
    let word = Box::new(AtomicU32::new(0));
    let (c, w) = Count::waker();
    let mut reg = Registration::new();
    let start = Instant::now();
    reg.arm(&word, 0, start + Duration::from_millis(20), &w);
    c.wait_for(1);
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn timer_fires_at_the_deadline() {
    let (c, w) = Count::waker();
    let mut reg = Registration::new();
    let start = Instant::now();
    reg.arm_timer(start + Duration::from_millis(10), &w);
    c.wait_for(1);
    assert!(start.elapsed() >= Duration::from_millis(10));
}

#[test]
fn a_withdrawn_registration_is_never_woken() {
    let word = Box::new(AtomicU32::new(0));
    let (c, w) = Count::waker();
    let mut reg = Registration::new();
    reg.arm(&word, 0, Instant::now() + Duration::from_millis(30), &w);
    reg.disarm();
    assert_eq!(entries_of(&word), 0);
    // ORDERING: Relaxed, as above.
    word.store(1, Ordering::Relaxed);
    futex::wake(&word, 1);
    // A second registration elsewhere, later than the first's deadline: when it fires, the
    // first (withdrawn) would have fired long before.
    let (c2, w2) = Count::waker();
    let mut other = Registration::new();
    other.arm_timer(Instant::now() + Duration::from_millis(60), &w2);
    c2.wait_for(1);
    assert_eq!(c.get(), 0);
}

#[test]
fn many_registrations_of_one_word_share_one_entry_and_all_fire() {
    let word = Box::new(AtomicU32::new(0));
    let counts: Vec<_> = (0..1000).map(|_| Count::waker()).collect();
    let mut regs: Vec<Registration> = (0..1000).map(|_| Registration::new()).collect();
    for (reg, (_, w)) in regs.iter_mut().zip(&counts) {
        reg.arm(&word, 0, far(), w);
    }
    let key = words::Key {
        addr: word.as_ptr() as usize,
        expected: 0,
    };
    assert_eq!(words::current().waiters_of(key), 1000);
    // ORDERING: Relaxed, as above.
    word.store(1, Ordering::Relaxed);
    futex::wake(&word, 1);
    for (c, _) in &counts {
        c.wait_for(1);
    }
}

#[test]
fn re_arming_the_same_word_updates_in_place() {
    let word = Box::new(AtomicU32::new(0));
    let (c1, w1) = Count::waker();
    let (c2, w2) = Count::waker();
    let mut reg = Registration::new();
    reg.arm(&word, 0, far(), &w1);
    reg.arm(&word, 0, far(), &w2);
    assert_eq!(entries_of(&word), 1);
    // ORDERING: Relaxed, as above.
    word.store(1, Ordering::Relaxed);
    futex::wake(&word, 1);
    c2.wait_for(1);
    assert_eq!(c1.get(), 0, "the replaced waker is not called");
}

#[test]
fn more_words_than_one_call_takes_spread_over_shards() {
    let n = 3 * words::SHARD_WORDS + 5;
    let words_: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
    let counts: Vec<_> = (0..n).map(|_| Count::waker()).collect();
    let mut regs: Vec<Registration> = (0..n).map(|_| Registration::new()).collect();
    for i in 0..n {
        regs[i].arm(&words_[i], 0, far(), &counts[i].1);
    }
    // Change every word, last first: each registration fires on its own word.
    for i in (0..n).rev() {
        // ORDERING: Relaxed, as above.
        words_[i].store(1, Ordering::Relaxed);
        futex::wake(&words_[i], 1);
    }
    for (c, _) in &counts {
        c.wait_for(1);
    }
    assert!(words::current().shard_count() >= 4);
}

#[test]
fn a_later_registration_with_an_earlier_deadline_interrupts_the_sleep() {
    let word = Box::new(AtomicU32::new(0));
    let (_c1, w1) = Count::waker();
    let mut far_reg = Registration::new();
    far_reg.arm(&word, 0, far(), &w1);
    // Give the thread time to fall asleep until the far deadline.
    std::thread::sleep(Duration::from_millis(20));
    let (c2, w2) = Count::waker();
    let mut near = Registration::new();
    near.arm(&word, 0, Instant::now() + Duration::from_millis(10), &w2);
    c2.wait_for(1);
}

#[test]
fn a_readable_descriptor_fires() {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    let (a, mut b) = UnixStream::pair().unwrap();
    let (c, w) = Count::waker();
    let mut reg = Registration::new();
    reg.arm_fd(a.as_fd(), far(), &w);
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(c.get(), 0);
    b.write_all(b"x").unwrap();
    c.wait_for(1);
}

#[test]
fn futex_waiter_counts_itself_while_pending_and_withdraws_on_drop() {
    use super::FutexWaiter;
    use crate::raw::futex::Futex;
    let f = Futex::new(0);
    let (_c, w) = Count::waker();
    let mut cx = std::task::Context::from_waker(&w);
    let mut waiter = FutexWaiter::new(&f);
    assert!(
        waiter
            .poll_wait_while(|v| v == 0, None, &mut cx)
            .is_pending()
    );
    // ORDERING: Relaxed, a snapshot in a single-threaded test.
    assert_eq!(f.waiters.load(Ordering::Relaxed), 1);
    drop(waiter);
    // ORDERING: Relaxed, as above.
    assert_eq!(f.waiters.load(Ordering::Relaxed), 0);
}

#[test]
fn sliced_registrations_of_one_word_wake_one_task_per_slice() {
    let word = Box::new(AtomicU32::new(0));
    let counts: Vec<_> = (0..100).map(|_| Count::waker()).collect();
    let mut regs: Vec<Registration> = (0..100).map(|_| Registration::new()).collect();
    let slice = Duration::from_millis(20);
    let start = Instant::now();
    for (reg, (_, w)) in regs.iter_mut().zip(&counts) {
        reg.arm_sliced(&word, 0, None, slice, w);
    }
    // The oldest is woken first, then the next oldest (the woken ones do not arm again).
    counts[0].0.wait_for(1);
    counts[1].0.wait_for(1);
    std::thread::sleep(3 * slice);
    // At most one wake per slice that went by (a ratio, whatever the scheduler did), not one
    // per task.
    let woken: u32 = counts.iter().map(|(c, _)| c.get()).sum();
    let slices = (start.elapsed().as_nanos() / slice.as_nanos()) as u32;
    assert!(woken <= slices + 1, "{woken} wakes in {slices} slices");
    // A change wakes every task still registered.
    // ORDERING: Relaxed, the test only needs the value to change.
    word.store(1, Ordering::Relaxed);
    futex::wake(&word, 1);
    for (c, _) in &counts {
        c.wait_for(1);
    }
}

#[test]
fn a_sliced_registration_keeps_its_own_deadline() {
    let word = Box::new(AtomicU32::new(0));
    let (old, w_old) = Count::waker();
    let (c, w) = Count::waker();
    let mut first = Registration::new();
    first.arm_sliced(&word, 0, None, WATCHDOG, &w_old);
    let mut reg = Registration::new();
    reg.arm_sliced(
        &word,
        0,
        Some(Instant::now() + Duration::from_millis(10)),
        WATCHDOG,
        &w,
    );
    c.wait_for(1);
    assert_eq!(old.get(), 0);
}
