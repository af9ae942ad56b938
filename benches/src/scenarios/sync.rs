//! `ours.*` lock, event and value scenarios of ipc-sync, and their peers: `raw_sync`'s mutex
//! and a process-shared robust pthread mutex through `libc`.
//!
//! Two-process scenarios fork one child after creating the shared objects (anonymous
//! segments, inherited by the child), start both sides on a shared flag, and time until both
//! are done.

use std::time::Instant;

use ipc_core::{RawValue, SharedMemory};
use ipc_sync::{Event, Lock, Mutex, Value};

use crate::{Config, Scenario, fork_child};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ours.lock_uncontended",
            unit: "ns",
            higher_is_better: false,
            run: lock_uncontended,
        },
        Scenario {
            name: "ours.lock_contended_2p",
            unit: "ops/s",
            higher_is_better: true,
            run: lock_contended_2p,
        },
        Scenario {
            name: "ours.event_rtt",
            unit: "µs",
            higher_is_better: false,
            run: event_rtt,
        },
        Scenario {
            name: "ours.value_locked_incr",
            unit: "ops/s",
            higher_is_better: true,
            run: value_locked_incr,
        },
        Scenario {
            name: "ours.value_atomic_incr",
            unit: "ops/s",
            higher_is_better: true,
            run: value_atomic_incr,
        },
        Scenario {
            name: "raw_sync.mutex_uncontended",
            unit: "ns",
            higher_is_better: false,
            run: raw_sync_uncontended,
        },
        Scenario {
            name: "raw_sync.mutex_contended_2p",
            unit: "ops/s",
            higher_is_better: true,
            run: raw_sync_contended_2p,
        },
        Scenario {
            name: "pthread.robust_uncontended",
            unit: "ns",
            higher_is_better: false,
            run: pthread_uncontended,
        },
        Scenario {
            name: "pthread.robust_contended_2p",
            unit: "ops/s",
            higher_is_better: true,
            run: pthread_contended_2p,
        },
    ]
}

/// Runs `body` in this process and in a forked child at once (both released by one shared
/// flag) and returns the seconds until both finished.
fn two_processes(body: impl Fn() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let go = RawValue::new(0u32)?;
    let child = fork_child(|| {
        while go.get() == 0 {
            std::hint::spin_loop();
        }
        body()
    })?;
    let start = Instant::now();
    go.set(1);
    body()?;
    child.wait()?;
    Ok(start.elapsed().as_secs_f64())
}

fn lock_uncontended(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(5_000_000u32, 500_000);
    let lock = Lock::new()?;
    let start = Instant::now();
    for _ in 0..n {
        let g = lock.lock().map_err(|_| anyhow::anyhow!("owner died"))?;
        std::hint::black_box(&g);
    }
    Ok(Some(start.elapsed().as_nanos() as f64 / f64::from(n)))
}

fn lock_contended_2p(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(1_000_000u32, 100_000);
    // The lock and its counter share a segment, as the peers' do.
    let counter = Mutex::new(0u64)?;
    let secs = two_processes(|| {
        for _ in 0..n {
            *counter.lock().map_err(|_| anyhow::anyhow!("owner died"))? += 1;
        }
        Ok(())
    })?;
    let total = *counter.lock().map_err(|_| anyhow::anyhow!("owner died"))?;
    anyhow::ensure!(total == 2 * u64::from(n), "lost updates");
    Ok(Some(2.0 * f64::from(n) / secs))
}

fn event_rtt(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(20_000u32, 2_000);
    let ping = Event::new()?;
    let pong = Event::new()?;
    let child = fork_child(|| {
        for _ in 0..n {
            ping.wait();
            ping.clear();
            pong.set();
        }
        Ok(())
    })?;
    let start = Instant::now();
    for _ in 0..n {
        ping.set();
        pong.wait();
        pong.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    child.wait()?;
    Ok(Some(secs * 1e6 / f64::from(n)))
}

fn value_locked_incr(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(1_000_000u32, 100_000);
    let value = Value::new(0u64)?;
    let secs = two_processes(|| {
        for _ in 0..n {
            value
                .lock()
                .map_err(|_| anyhow::anyhow!("owner died"))?
                .update(|v| *v += 1);
        }
        Ok(())
    })?;
    anyhow::ensure!(value.get() == 2 * u64::from(n), "lost updates");
    Ok(Some(2.0 * f64::from(n) / secs))
}

fn value_atomic_incr(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(20_000_000u32, 2_000_000);
    let value = Value::new(0u64)?;
    let start = Instant::now();
    for _ in 0..n {
        value.fetch_add(1);
    }
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(value.load() == u64::from(n), "lost updates");
    Ok(Some(f64::from(n) / secs))
}

/// A `raw_sync` mutex (a process-shared pthread mutex) in an anonymous segment, with a `u64`
/// counter beside it.
struct RawSyncMutex {
    _shm: SharedMemory,
    lock: Box<dyn raw_sync::locks::LockImpl>,
}

impl RawSyncMutex {
    fn new() -> anyhow::Result<Self> {
        use raw_sync::locks::{LockInit, Mutex};
        let shm = SharedMemory::anonymous(4096)?;
        let base = shm.as_ptr();
        // SAFETY: the segment is 4096 bytes, page-aligned and zeroed: the lock goes at its
        // start and its data (a u64 counter) at offset 2048, beyond the lock's size.
        let (lock, used) = unsafe { Mutex::new(base, base.add(2048)) }
            .map_err(|e| anyhow::anyhow!("raw_sync mutex: {e}"))?;
        anyhow::ensure!(used <= 2048, "raw_sync mutex too large");
        Ok(Self { _shm: shm, lock })
    }

    fn incr(&self) -> anyhow::Result<()> {
        let g = self
            .lock
            .lock()
            .map_err(|e| anyhow::anyhow!("raw_sync lock: {e}"))?;
        let p = (*g).cast::<u64>();
        // SAFETY: `p` is the 8-aligned counter slot inside the segment, written only under
        // the lock.
        unsafe { *p += 1 };
        Ok(())
    }

    fn count(&self) -> anyhow::Result<u64> {
        let g = self
            .lock
            .lock()
            .map_err(|e| anyhow::anyhow!("raw_sync lock: {e}"))?;
        // SAFETY: as in `incr`.
        Ok(unsafe { *(*g).cast::<u64>() })
    }
}

fn raw_sync_uncontended(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(5_000_000u32, 500_000);
    let m = RawSyncMutex::new()?;
    let start = Instant::now();
    for _ in 0..n {
        let g = m.lock.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
        std::hint::black_box(&g);
    }
    Ok(Some(start.elapsed().as_nanos() as f64 / f64::from(n)))
}

fn raw_sync_contended_2p(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(1_000_000u32, 100_000);
    let m = RawSyncMutex::new()?;
    let secs = two_processes(|| {
        for _ in 0..n {
            m.incr()?;
        }
        Ok(())
    })?;
    anyhow::ensure!(m.count()? == 2 * u64::from(n), "lost updates");
    Ok(Some(2.0 * f64::from(n) / secs))
}

/// A `PTHREAD_PROCESS_SHARED` + `PTHREAD_MUTEX_ROBUST` mutex and a counter in an anonymous
/// segment: the robust lock the C library offers.
struct RobustPthread {
    shm: SharedMemory,
}

impl RobustPthread {
    fn new() -> anyhow::Result<Self> {
        let shm = SharedMemory::anonymous(4096)?;
        let m = shm.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: `attr` is initialised before use and destroyed after; `m` points at zeroed,
        // page-aligned shared memory large enough for a pthread_mutex_t.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            anyhow::ensure!(
                libc::pthread_mutexattr_init(&mut attr) == 0,
                "mutexattr_init"
            );
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            let r = libc::pthread_mutex_init(m, &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
            anyhow::ensure!(r == 0, "pthread_mutex_init: {r}");
        }
        Ok(Self { shm })
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.shm.as_ptr().cast()
    }

    fn counter(&self) -> *mut u64 {
        // SAFETY: offset 2048 is inside the 4096-byte segment, past the mutex.
        unsafe { self.shm.as_ptr().add(2048) }.cast()
    }

    fn lock(&self) -> anyhow::Result<()> {
        // SAFETY: the mutex was initialised in `new` and lives as long as `self`.
        let r = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        match r {
            0 => Ok(()),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex after EOWNERDEAD.
                unsafe { libc::pthread_mutex_consistent(self.mutex()) };
                Ok(())
            }
            e => anyhow::bail!("pthread_mutex_lock: {e}"),
        }
    }

    fn unlock(&self) {
        // SAFETY: called by the holder after `lock`.
        unsafe { libc::pthread_mutex_unlock(self.mutex()) };
    }
}

fn pthread_uncontended(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(5_000_000u32, 500_000);
    let m = RobustPthread::new()?;
    let start = Instant::now();
    for _ in 0..n {
        m.lock()?;
        m.unlock();
    }
    Ok(Some(start.elapsed().as_nanos() as f64 / f64::from(n)))
}

fn pthread_contended_2p(cfg: &Config) -> anyhow::Result<Option<f64>> {
    let n = cfg.pick(1_000_000u32, 100_000);
    let m = RobustPthread::new()?;
    let secs = two_processes(|| {
        for _ in 0..n {
            m.lock()?;
            // SAFETY: the counter is written only under the mutex.
            unsafe { *m.counter() += 1 };
            m.unlock();
        }
        Ok(())
    })?;
    m.lock()?;
    // SAFETY: read under the mutex.
    let total = unsafe { *m.counter() };
    m.unlock();
    anyhow::ensure!(total == 2 * u64::from(n), "pthread robust: lost updates");
    Ok(Some(2.0 * f64::from(n) / secs))
}
