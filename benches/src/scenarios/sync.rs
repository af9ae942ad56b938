//! `ours.*` lock, event and value scenarios of ipc-sync, and their peers: `raw_sync`'s mutex
//! and a process-shared robust pthread mutex through `libc`.
//!
//! - `*_uncontended` (ns): lock and unlock in one process.
//! - `*.lock_contended@Np` / `*.mutex_contended@Np` / `*.robust_contended@Np` (ops/s): N
//!   processes (2, 4, 8, 16) each take the lock, increment a counter under it and release it,
//!   as fast as they can. Beside the throughput each repeat reports **fairness**: each
//!   process's share of the acquisitions inside the window (fair is 1/N), the longest run of
//!   acquisitions one process made with no other process taking the lock in between, and how
//!   often per second the lock changed hands. An unfair lock that lets one process keep it
//!   shows a high throughput, a share near 1 and a streak as long as the window; what a user
//!   of a contended lock sees is the handoff rate.
//! - `ours.event_rtt` (µs): two `Event`s, one per direction: set, wait, clear; both sleep.
//! - `ours.value_locked_incr` (ops/s): two processes each do `value.get_lock()?.update(+1)`.
//! - `ours.value_atomic_incr` (ops/s): `Value::fetch_add`, one process.

use anyhow::ensure;
use ipc_core::SharedMemory;
use ipc_sync::{Event, Lock, Mutex, Value};

use crate::harness::{Echo, Member, Peer, RoundTrip, Team, WAIT_LIMIT, per_call, round_trips, timed};
use crate::primitive::{Ordering, SharedU64};
use crate::scenario::{Config, Fairness, Figure, Outcome, Quantity, Repeat, Scenario, Unit};
use crate::shm::SharedBlock;
use crate::sweep;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new("ours.lock_uncontended", Unit::Ns, lock_uncontended),
        Scenario::new("ours.event_rtt", Unit::Us, event_rtt),
        Scenario::new("ours.value_locked_incr", Unit::OpsPerSec, value_locked_incr),
        Scenario::new("ours.value_atomic_incr", Unit::OpsPerSec, value_atomic_incr),
        Scenario::new("raw_sync.mutex_uncontended", Unit::Ns, |cfg| {
            uncontended(cfg, &RawSyncMutex::new()?)
        }),
        Scenario::new("pthread.robust_uncontended", Unit::Ns, |cfg| {
            uncontended(cfg, &RobustPthread::new()?)
        }),
    ];
    for (base, make) in [
        ("ours.lock_contended", ours_lock as fn() -> anyhow::Result<Box<dyn Tallied>>),
        ("raw_sync.mutex_contended", || Ok(Box::new(RawSyncMutex::new()?))),
        ("pthread.robust_contended", || Ok(Box::new(RobustPthread::new()?))),
    ] {
        v.extend(sweep::processes(base, Unit::OpsPerSec, &PROCESSES, &PROCESSES, move |cfg, n| {
            contended(cfg, n, make()?)
        }));
    }
    v
}

/// The points of the contention sweeps.
const PROCESSES: [usize; 4] = [2, 4, 8, 16];

fn owner_died<E>(_: E) -> anyhow::Error {
    anyhow::anyhow!("a lock holder died")
}

fn lock_uncontended(cfg: &Config) -> Repeat {
    let lock = Lock::new()?;
    Ok(per_call(cfg.budget(), |_| {
        let g = lock.lock().map_err(owner_died)?;
        std::hint::black_box(&g);
        Ok(())
    })?
    .into())
}

/// What every contended lock guards: a counter and the rank of the last process that took it.
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tally {
    count: u64,
    last: u64,
}

/// A lock in shared memory guarding a [`Tally`], which forked processes share.
trait Tallied {
    /// Takes the lock, runs `f` on the tally, releases it.
    fn with(&self, f: &mut dyn FnMut(&mut Tally)) -> anyhow::Result<()>;
    /// The lock as a forked member uses it: opened through its handle, or the inherited
    /// mapping for the peers that have no handle.
    fn reopen(&self) -> anyhow::Result<Box<dyn Tallied>>;
}

fn uncontended(cfg: &Config, lock: &dyn Tallied) -> Repeat {
    Ok(per_call(cfg.budget(), |_| lock.with(&mut |t| t.count += 1))?.into())
}

fn ours_lock() -> anyhow::Result<Box<dyn Tallied>> {
    Ok(Box::new(Mutex::new(Tally::default())?))
}

impl Tallied for Mutex<Tally> {
    fn with(&self, f: &mut dyn FnMut(&mut Tally)) -> anyhow::Result<()> {
        f(&mut *self.lock().map_err(owner_died)?);
        Ok(())
    }
    fn reopen(&self) -> anyhow::Result<Box<dyn Tallied>> {
        Ok(Box::new(Mutex::<Tally>::open(&self.handle())?))
    }
}

/// A member of a contention team: takes the lock as fast as it can and keeps score.
struct Contender {
    lock: Box<dyn Tallied>,
    rank: u64,
    taken: u64,
    streak: u64,
    longest: u64,
    handoffs: u64,
    measuring: bool,
}

impl Member for Contender {
    fn step(&mut self) -> anyhow::Result<Option<u64>> {
        let (rank, mut handed) = (self.rank, false);
        self.lock.with(&mut |t| {
            t.count += 1;
            handed = t.last != rank;
            t.last = rank;
        })?;
        self.taken += 1;
        if self.measuring {
            if handed {
                self.handoffs += 1;
                self.streak = 1;
            } else {
                self.streak += 1;
            }
            self.longest = self.longest.max(self.streak);
        }
        Ok(Some(1))
    }

    fn window(&mut self, open: bool) {
        self.measuring = open;
    }

    fn finish(self) -> anyhow::Result<Vec<u64>> {
        Ok(vec![self.taken, self.longest, self.handoffs])
    }
}

/// `n` processes contending for `lock`: throughput and fairness.
fn contended(cfg: &Config, n: usize, lock: Box<dyn Tallied>) -> Repeat {
    // Ranks start at 1: the tally's `last` starts at 0, so the first acquisition is a handoff.
    let team = Team::fork(n, |rank| {
        Ok(Contender {
            lock: lock.reopen()?,
            rank: rank as u64 + 1,
            taken: 0,
            streak: 0,
            longest: 0,
            handoffs: 0,
            measuring: false,
        })
    })?;
    let report = team.measure(cfg.sweep_budget())?;
    let mut total = 0;
    lock.with(&mut |t| total = t.count)?;
    let taken: u64 = report.members.iter().map(|m| m.words[0]).sum();
    ensure!(taken == total, "{taken} acquisitions, the counter reads {total}");
    let in_window = report.in_window(0..n);
    ensure!(in_window > 0, "no acquisition inside the window");
    let shares = report.members.iter().map(|m| m.in_window as f64 / in_window as f64);
    let fairness = Fairness {
        min_share: shares.clone().fold(1.0, f64::min),
        max_share: shares.fold(0.0, f64::max),
        longest_streak: report.members.iter().map(|m| m.words[1]).max().unwrap_or(0),
        handoffs_per_sec: report.members.iter().map(|m| m.words[2]).sum::<u64>() as f64
            / report.secs,
    };
    Ok(Outcome::Measured(Figure {
        quantity: Quantity::PerSecond(in_window as f64 / report.secs),
        fairness: Some(fairness),
    }))
}

/// Either side of the event ping-pong: the parent publishes the request number in a shared
/// word and sets `ping`, the child waits, checks it, clears `ping` and sets `pong`.
struct Events<'a> {
    ping: Event,
    pong: Event,
    seq: &'a SharedU64,
}

const STOP: u64 = u64::MAX;

fn wait(e: &Event) -> anyhow::Result<()> {
    ensure!(e.wait_timeout(WAIT_LIMIT), "the event was not set within {WAIT_LIMIT:?}");
    Ok(())
}

impl RoundTrip for Events<'_> {
    fn round(&mut self, i: u64, _: bool) -> anyhow::Result<()> {
        // ORDERING: Relaxed; `set` publishes it and `wait` acquires it.
        self.seq.store(i, Ordering::Relaxed);
        self.ping.set();
        wait(&self.pong)?;
        self.pong.clear();
        Ok(())
    }

    fn stop(&mut self, _: u64) -> anyhow::Result<()> {
        // ORDERING: Relaxed, as above.
        self.seq.store(STOP, Ordering::Relaxed);
        self.ping.set();
        Ok(())
    }
}

impl Echo for Events<'_> {
    fn serve(&mut self, i: u64) -> anyhow::Result<bool> {
        wait(&self.ping)?;
        self.ping.clear();
        // ORDERING: Relaxed, ordered after `wait` (see `round`).
        match self.seq.load(Ordering::Relaxed) {
            STOP => Ok(false),
            v => {
                ensure!(v == i, "request {v}, expected {i}");
                self.pong.set();
                Ok(true)
            }
        }
    }
}

fn event_rtt(cfg: &Config) -> Repeat {
    let block = SharedBlock::new(8)?;
    let seq = block.u64_at(0)?;
    let (ping, pong) = (Event::new()?, Event::new()?);
    let (hp, hq) = (ping.handle(), pong.handle());
    let mut parent = Events { ping, pong, seq };
    Ok(round_trips(Peer::Process, cfg.budget(), &mut parent, || {
        Ok(Events {
            ping: Event::open(&hp)?,
            pong: Event::open(&hq)?,
            seq,
        })
    })?
    .into())
}

/// A member incrementing a shared `Value` under its lock.
struct Incrementer {
    value: Value<u64>,
    done: u64,
}

impl Member for Incrementer {
    fn step(&mut self) -> anyhow::Result<Option<u64>> {
        self.value.get_lock().map_err(owner_died)?.update(|v| *v += 1);
        self.done += 1;
        Ok(Some(1))
    }
    fn finish(self) -> anyhow::Result<Vec<u64>> {
        Ok(vec![self.done])
    }
}

fn value_locked_incr(cfg: &Config) -> Repeat {
    let value = Value::new(0u64)?;
    let handle = value.handle();
    let team = Team::fork(2, |_| {
        Ok(Incrementer {
            value: Value::open(&handle)?,
            done: 0,
        })
    })?;
    let report = team.measure(cfg.budget())?;
    let done: u64 = report.members.iter().map(|m| m.words[0]).sum();
    ensure!(value.get() == done, "{done} increments, the value reads {}", value.get());
    Ok(Quantity::PerSecond(report.in_window(0..2) as f64 / report.secs).into())
}

fn value_atomic_incr(cfg: &Config) -> Repeat {
    const BURST: u64 = 256;
    let value = Value::new(0u64)?;
    let mut done = 0;
    let w = timed(cfg.budget(), |_| {
        for _ in 0..BURST {
            value.fetch_add(1);
        }
        done += BURST;
        Ok(BURST)
    })?;
    ensure!(value.load() == done, "lost updates");
    Ok(Quantity::PerSecond(w.rate()).into())
}

/// A `raw_sync` mutex (a process-shared pthread mutex) at the start of an anonymous segment,
/// its [`Tally`] at offset 2048. Forked members use the inherited mapping (`raw_sync` has no
/// handle to reopen it by).
struct RawSyncMutex {
    shm: std::rc::Rc<SharedMemory>,
    lock: Box<dyn raw_sync::locks::LockImpl>,
}

impl RawSyncMutex {
    fn new() -> anyhow::Result<Self> {
        use raw_sync::locks::{LockInit, Mutex};
        let shm = SharedMemory::anonymous(4096)?;
        let base = shm.as_ptr();
        // SAFETY: the segment is 4096 bytes, page-aligned and zeroed: the lock goes at its
        // start and its data (a `Tally`) at offset 2048, beyond the lock's size.
        let (lock, used) = unsafe { Mutex::new(base, base.add(2048)) }
            .map_err(|e| anyhow::anyhow!("raw_sync mutex: {e}"))?;
        ensure!(used <= 2048, "raw_sync mutex too large");
        Ok(Self {
            shm: std::rc::Rc::new(shm),
            lock,
        })
    }
}

impl Tallied for RawSyncMutex {
    fn with(&self, f: &mut dyn FnMut(&mut Tally)) -> anyhow::Result<()> {
        let g = self
            .lock
            .lock()
            .map_err(|e| anyhow::anyhow!("raw_sync lock: {e}"))?;
        // SAFETY: the data pointer is the 8-aligned `Tally` slot inside the segment, which
        // lives as long as `self`; it is accessed only under the lock.
        f(unsafe { &mut *(*g).cast::<Tally>() });
        Ok(())
    }
    fn reopen(&self) -> anyhow::Result<Box<dyn Tallied>> {
        use raw_sync::locks::{LockInit, Mutex};
        let base = self.shm.as_ptr();
        // SAFETY: the lock was initialised at `base` by `new` and the segment is still mapped
        // (the Rc keeps it); `from_existing` only attaches.
        let (lock, _) = unsafe { Mutex::from_existing(base, base.add(2048)) }
            .map_err(|e| anyhow::anyhow!("raw_sync mutex: {e}"))?;
        Ok(Box::new(Self {
            shm: self.shm.clone(),
            lock,
        }))
    }
}

/// A `PTHREAD_PROCESS_SHARED` + `PTHREAD_MUTEX_ROBUST` mutex at the start of an anonymous
/// segment, its [`Tally`] at offset 2048: the robust lock the C library offers. Forked members
/// use the inherited mapping.
#[derive(Clone)]
struct RobustPthread {
    shm: std::rc::Rc<SharedMemory>,
}

impl RobustPthread {
    fn new() -> anyhow::Result<Self> {
        let shm = SharedMemory::anonymous(4096)?;
        let m = shm.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: `attr` is initialised before use and destroyed after; `m` points at zeroed,
        // page-aligned shared memory large enough for a pthread_mutex_t.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            ensure!(libc::pthread_mutexattr_init(&mut attr) == 0, "mutexattr_init");
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            let r = libc::pthread_mutex_init(m, &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
            ensure!(r == 0, "pthread_mutex_init: {r}");
        }
        Ok(Self {
            shm: std::rc::Rc::new(shm),
        })
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.shm.as_ptr().cast()
    }
}

impl Tallied for RobustPthread {
    fn with(&self, f: &mut dyn FnMut(&mut Tally)) -> anyhow::Result<()> {
        // SAFETY: the mutex was initialised in `new` and lives as long as `self`.
        match unsafe { libc::pthread_mutex_lock(self.mutex()) } {
            0 => {}
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex after EOWNERDEAD.
                unsafe { libc::pthread_mutex_consistent(self.mutex()) };
            }
            e => anyhow::bail!("pthread_mutex_lock: {e}"),
        }
        // SAFETY: offset 2048 is inside the 4096-byte segment, 8-aligned, past the mutex; the
        // tally is accessed only under the mutex, which we hold.
        f(unsafe { &mut *self.shm.as_ptr().add(2048).cast::<Tally>() });
        // SAFETY: we hold the mutex (locked above).
        unsafe { libc::pthread_mutex_unlock(self.mutex()) };
        Ok(())
    }
    fn reopen(&self) -> anyhow::Result<Box<dyn Tallied>> {
        Ok(Box::new(self.clone()))
    }
}
