//! Bounded waiting: every wait in a scenario spins, then yields, and fails after
//! [`WAIT_LIMIT`], so a lost peer fails the scenario instead of hanging the run.

use std::time::{Duration, Instant};

/// How many fruitless polls a waiter spins before it starts yielding the CPU between polls
/// (tens of microseconds). With free cores that never happens in a scenario's steady state; on a
/// machine with more runnable processes than cores it lets a descheduled peer run instead of
/// burning the rest of the time slice.
pub const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// How long any single wait inside a scenario may last before the scenario fails: generous, so
/// that a loaded machine slows a scenario down instead of failing it, and bounded, so that a
/// lost peer never hangs the run.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// `WAIT_LIMIT` from now.
pub fn deadline() -> Instant {
    Instant::now() + WAIT_LIMIT
}

/// The state of one wait made of fruitless polls: spin, then yield, and fail once
/// [`WAIT_LIMIT`] has passed since the first fruitless poll (the clock is read only every 1024
/// polls, so it costs nothing on a hot path). [`reset`](Self::reset) it after progress.
///
/// ```
/// let mut p = benches::harness::Patience::new();
/// for _ in 0..10 {
///     p.idle("nothing")?;
/// }
/// p.reset();
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Patience {
    spins: u32,
    until: Option<Instant>,
}

impl Patience {
    /// A wait that has not started.
    pub const fn new() -> Self {
        Self {
            spins: 0,
            until: None,
        }
    }

    /// Records one fruitless poll for `what`; fails once the wait has lasted [`WAIT_LIMIT`].
    #[inline]
    pub fn idle(&mut self, what: &str) -> anyhow::Result<()> {
        self.spins = self.spins.saturating_add(1);
        if self.spins < SPINS_BEFORE_YIELD {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        if self.spins % 1024 == 1 {
            let until = *self.until.get_or_insert_with(deadline);
            anyhow::ensure!(Instant::now() < until, "timed out waiting for {what}");
        }
        Ok(())
    }

    /// Progress was made: the next fruitless poll starts a new wait.
    #[inline]
    pub fn reset(&mut self) {
        self.spins = 0;
        self.until = None;
    }
}

/// Polls `ready` until it holds, as [`Patience`] does, failing once `deadline` passes.
///
/// ```
/// use std::time::{Duration, Instant};
/// use benches::harness::spin_until;
/// let mut n = 0;
/// spin_until(Instant::now() + Duration::from_secs(1), "n", || { n += 1; n > 10 })?;
/// assert!(spin_until(Instant::now(), "never", || false).is_err());
/// # Ok::<(), anyhow::Error>(())
/// ```
#[inline(always)]
pub fn spin_until(
    deadline: Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let mut spins: u32 = 0;
    loop {
        if ready() {
            return Ok(());
        }
        spins = spins.saturating_add(1);
        if spins < SPINS_BEFORE_YIELD {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        if spins % 1024 == 0 && Instant::now() >= deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
    }
}

/// Calls `f` until it yields a value (or an error), waiting as [`Patience`] does.
///
/// ```
/// let mut n = 0;
/// let v = benches::harness::poll("a value", || { n += 1; Ok((n > 3).then_some(n)) })?;
/// assert_eq!(v, 4);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[inline]
pub fn poll<T>(what: &str, mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let mut patience = Patience::new();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        patience.idle(what)?;
    }
}
