//! The measured window of a repeat: a warm-up of a tenth of the budget (untimed: page faults,
//! caches, branch predictors, a peer still waking up), then the budget itself, timed.
//!
//! The loop that drives it reports its progress (operations so far) after every operation; the
//! window reads the clock only every so many operations, as many as took about 20 µs during the
//! warm-up, so that timing costs nothing measurable even for operations of a few nanoseconds.

use std::time::{Duration, Instant};

/// How often, in time, the clock is read inside the window.
const CHECK_PERIOD: Duration = Duration::from_micros(20);

#[derive(Debug, Clone, Copy)]
enum State {
    Warming,
    Measuring { t0: Instant, at: u64 },
    Done { secs: f64, count: u64 },
}

/// A warm-up, then a timed window of `budget`.
///
/// ```
/// use std::time::Duration;
/// let mut w = benches::harness::Window::new(Duration::from_millis(5));
/// let mut n = 0;
/// while !w.tick(n) {
///     n += 1;
/// }
/// assert!(w.count() > 0 && w.count() <= n);
/// assert!(w.secs() >= 0.005);
/// ```
#[derive(Debug, Clone)]
pub struct Window {
    budget: Duration,
    warm: Duration,
    started: Instant,
    state: State,
    check_every: u64,
    next_check: u64,
}

impl Window {
    /// A window of `budget`, whose warm-up starts now.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            warm: budget / 10,
            started: Instant::now(),
            state: State::Warming,
            check_every: 1,
            next_check: 0,
        }
    }

    /// `done` operations have completed so far; returns true once the window has ended.
    #[inline]
    pub fn tick(&mut self, done: u64) -> bool {
        if done < self.next_check {
            return false;
        }
        self.poll(done)
    }

    /// Like [`tick`](Self::tick), but always reads the clock (for a loop that waits without
    /// progress).
    pub fn poll(&mut self, done: u64) -> bool {
        match self.state {
            State::Warming => {
                let now = Instant::now();
                let warmed = now - self.started;
                if warmed >= self.warm && done > 0 {
                    let per_check = done as f64 * CHECK_PERIOD.as_secs_f64() / warmed.as_secs_f64();
                    self.check_every = (per_check as u64).max(1);
                    self.state = State::Measuring { t0: now, at: done };
                }
                self.next_check = done + self.check_every;
                false
            }
            State::Measuring { t0, at } => {
                let now = Instant::now();
                if now - t0 >= self.budget && done > at {
                    self.state = State::Done {
                        secs: (now - t0).as_secs_f64(),
                        count: done - at,
                    };
                    return true;
                }
                self.next_check = done + self.check_every;
                false
            }
            State::Done { .. } => true,
        }
    }

    /// Whether the window has ended.
    pub fn ended(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }

    /// The operations inside the window (0 before it ended).
    pub fn count(&self) -> u64 {
        match self.state {
            State::Done { count, .. } => count,
            _ => 0,
        }
    }

    /// The window's length in seconds (0 before it ended).
    pub fn secs(&self) -> f64 {
        match self.state {
            State::Done { secs, .. } => secs,
            _ => 0.0,
        }
    }

    /// Operations per second inside the window.
    pub fn rate(&self) -> f64 {
        self.count() as f64 / self.secs()
    }

    /// Seconds per operation inside the window.
    pub fn per_op(&self) -> f64 {
        self.secs() / self.count() as f64
    }
}
