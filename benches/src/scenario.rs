//! What a scenario is: a name, a unit, and a function that performs one repeat and returns its
//! [`Outcome`]: a measured [`Figure`], or the reason it was skipped (a peer is missing). An error
//! fails the scenario.
//!
//! ```
//! use benches::{Config, Outcome, Quantity, Scenario, Unit};
//!
//! let s = Scenario::new("demo.rtt", Unit::Us, |_: &Config| Ok(Quantity::Seconds(2e-6).into()));
//! let Outcome::Measured(figure) = s.run(&Config { quick: true })? else { unreachable!() };
//! assert_eq!(s.unit.value_of(figure.quantity)?, 2.0);
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use anyhow::bail;
use serde::{Serialize, Serializer};

/// Settings shared by every scenario.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shorter runs (a few minutes for everything).
    pub quick: bool,
}

impl Config {
    /// Picks `full` normally and `quick` under `--quick`.
    ///
    /// ```
    /// let cfg = benches::Config { quick: true };
    /// assert_eq!(cfg.pick(1000, 10), 10);
    /// ```
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }

    /// How long the measured window of a time-bounded repeat lasts (1 s, or 150 ms under
    /// `--quick`); a tenth of it again is spent warming up first.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = benches::Config { quick: false };
    /// assert_eq!(cfg.budget(), Duration::from_secs(1));
    /// ```
    pub fn budget(&self) -> Duration {
        self.pick(Duration::from_millis(1000), Duration::from_millis(150))
    }

    /// The measured window of one point of a sweep (200 ms, or 80 ms under `--quick`): a sweep
    /// has many points, and each settles quickly.
    ///
    /// ```
    /// let cfg = benches::Config { quick: true };
    /// assert!(cfg.sweep_budget() < cfg.budget());
    /// ```
    pub fn sweep_budget(&self) -> Duration {
        self.pick(Duration::from_millis(200), Duration::from_millis(80))
    }
}

/// The unit a scenario reports in. Times are better when lower, rates when higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Nanoseconds per operation.
    Ns,
    /// Microseconds per operation.
    Us,
    /// Milliseconds per operation.
    Ms,
    /// Messages per second.
    MsgsPerSec,
    /// Gigabytes (10⁹ bytes) per second.
    GbPerSec,
    /// Operations per second.
    OpsPerSec,
    /// Tasks per second.
    TasksPerSec,
}

impl Unit {
    /// Every unit, for parsing.
    pub const ALL: [Unit; 7] = [
        Unit::Ns,
        Unit::Us,
        Unit::Ms,
        Unit::MsgsPerSec,
        Unit::GbPerSec,
        Unit::OpsPerSec,
        Unit::TasksPerSec,
    ];

    /// The symbol printed after a figure (`ns`, `µs`, `GB/s`, …).
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "µs",
            Unit::Ms => "ms",
            Unit::MsgsPerSec => "msgs/s",
            Unit::GbPerSec => "GB/s",
            Unit::OpsPerSec => "ops/s",
            Unit::TasksPerSec => "tasks/s",
        }
    }

    /// The unit whose symbol is `s`.
    ///
    /// ```
    /// use benches::Unit;
    /// assert_eq!(Unit::parse("µs"), Some(Unit::Us));
    /// assert_eq!(Unit::parse("parsecs"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.symbol() == s)
    }

    /// Seconds per unit for the time units, `None` for rates.
    pub fn seconds(self) -> Option<f64> {
        match self {
            Unit::Ns => Some(1e-9),
            Unit::Us => Some(1e-6),
            Unit::Ms => Some(1e-3),
            _ => None,
        }
    }

    /// Whether a larger figure is better (a rate) or worse (a time).
    pub fn higher_is_better(self) -> bool {
        self.seconds().is_none()
    }

    /// The figure of `q` in this unit: a time for the time units, a rate (of bytes for
    /// `GB/s`) for the others.
    ///
    /// ```
    /// use benches::{Quantity, Unit};
    /// assert_eq!(Unit::Us.value_of(Quantity::Seconds(0.5))?, 500_000.0);
    /// assert_eq!(Unit::GbPerSec.value_of(Quantity::PerSecond(3e9))?, 3.0);
    /// assert!(Unit::Ms.value_of(Quantity::PerSecond(1.0)).is_err());
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn value_of(self, q: Quantity) -> anyhow::Result<f64> {
        match (self.seconds(), q) {
            (Some(s), Quantity::Seconds(t)) => Ok(t / s),
            (None, Quantity::PerSecond(r)) if self == Unit::GbPerSec => Ok(r / 1e9),
            (None, Quantity::PerSecond(r)) => Ok(r),
            _ => bail!("a {q:?} cannot be reported in {self}"),
        }
    }

    /// The quantity a figure in this unit stands for (the inverse of [`value_of`](Self::value_of)).
    pub fn quantity(self, value: f64) -> Quantity {
        match self.seconds() {
            Some(s) => Quantity::Seconds(value * s),
            None if self == Unit::GbPerSec => Quantity::PerSecond(value * 1e9),
            None => Quantity::PerSecond(value),
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.symbol())
    }
}

/// What one repeat measured, before it is put into the scenario's [`Unit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Seconds per operation (a latency or a cost).
    Seconds(f64),
    /// Operations, messages or bytes per second.
    PerSecond(f64),
}

/// How evenly a contended lock was shared, in one repeat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fairness {
    /// The smallest share of the acquisitions any one process made (a fraction; fair is 1/N).
    pub min_share: f64,
    /// The largest share.
    pub max_share: f64,
    /// The most acquisitions one process made in a row, no other process taking the lock in
    /// between.
    pub longest_streak: u64,
    /// How often per second the lock passed from one process to another.
    pub handoffs_per_sec: f64,
}

/// One repeat's figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    /// What was measured.
    pub quantity: Quantity,
    /// For contended locks: how evenly the processes got the lock.
    pub fairness: Option<Fairness>,
}

/// What one repeat of a scenario returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A figure.
    Measured(Figure),
    /// The scenario cannot run here; the reason (e.g. "python3 not found on PATH").
    Skipped(String),
}

impl Outcome {
    /// A skip with its reason.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Outcome::Skipped(reason.into())
    }
}

impl From<Quantity> for Outcome {
    fn from(quantity: Quantity) -> Self {
        Outcome::Measured(Figure {
            quantity,
            fairness: None,
        })
    }
}

/// The result of one repeat.
pub type Repeat = anyhow::Result<Outcome>;

/// One benchmark scenario.
#[derive(Clone)]
pub struct Scenario {
    /// The stable name, `group.what` (e.g. `limit.pingpong_rtt`), or `group.what@POINT` for a
    /// point of a sweep.
    pub name: String,
    /// The unit of the figure.
    pub unit: Unit,
    /// Whether `--quick` runs it (a sweep keeps fewer points under `--quick`).
    pub quick: bool,
    run: Rc<dyn Fn(&Config) -> Repeat>,
}

impl Scenario {
    /// A scenario whose repeats `run` performs.
    pub fn new(
        name: impl Into<String>,
        unit: Unit,
        run: impl Fn(&Config) -> Repeat + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            unit,
            quick: true,
            run: Rc::new(run),
        }
    }

    /// Leaves this scenario out of `--quick` runs.
    pub fn full_only(mut self) -> Self {
        self.quick = false;
        self
    }

    /// Performs one repeat.
    pub fn run(&self, cfg: &Config) -> Repeat {
        (self.run)(cfg)
    }
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("unit", &self.unit)
            .field("quick", &self.quick)
            .finish_non_exhaustive()
    }
}

/// The repeat of a scenario whose peer was not compiled in (`--features peers`).
pub fn without_peers() -> Repeat {
    Ok(Outcome::skipped("built without --features peers"))
}
