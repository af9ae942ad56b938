//! Paired measurement: each `ours.*` scenario that has a hardware limit (`limit.*`, or `raw.*`
//! for process start) is run in alternation with it, in short blocks (one repeat each, the
//! order swapped every round), and the ratio of each adjacent pair is taken. On a machine whose
//! speed changes from one second to the next (a virtual machine whose vCPUs move, another job
//! starting) a ratio of two medians taken minutes apart means little; the median of paired
//! ratios, with their range, does.
//!
//! The ratio is ours ÷ limit in the scenario's unit: for a rate, the share of the limit we
//! reach (1 is the limit); for a time, how many times the limit's time we take (1 is the limit).
//!
//! A pair may also name a *floor*: the bare form of ours' own protocol (`Queue`'s claimed slots
//! with nothing around them, `Connection`'s chunks with nothing around them, a fork whose child
//! returns a result on a socket pair and is watched through its pidfd), run in the same
//! rounds, between ours and the limit. Its two ratios, floor ÷ limit and ours ÷ floor, split
//! ours ÷ limit into what the protocol costs and what ours adds to it, each taken round by round,
//! so that both halves come from the same few seconds of a machine whose speed moves.
//!
//! ```
//! use benches::pairs::{PAIRS, Target};
//! let ring = PAIRS.iter().find(|p| p.ours == "ours.ring_u64").unwrap();
//! assert_eq!(ring.limit, "limit.spsc_u64");
//! assert!(Target::AtLeast(0.9).met(0.95));
//! assert!(!Target::AtMost(1.3).met(1.5));
//! ```

use serde::Serialize;

use crate::scenario::Unit;

/// What a ratio should reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// A rate: at least this share of the limit.
    AtLeast(f64),
    /// A time: at most this multiple of the limit.
    AtMost(f64),
}

impl Target {
    /// Whether `ratio` meets the target.
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(t) => ratio >= t,
            Target::AtMost(t) => ratio <= t,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtLeast(t) => write!(f, "≥ {t}×"),
            Target::AtMost(t) => write!(f, "≤ {t}×"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One of our scenarios and the limit it is measured against.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// Our scenario.
    pub ours: &'static str,
    /// Its limit: the same work with the least code the hardware allows.
    pub limit: &'static str,
    /// What the pair measures, in words.
    pub what: &'static str,
    /// What the ratio should reach, where the project has set a target.
    pub target: Option<Target>,
    /// The bare form of ours' own protocol, run in the same rounds (see the module docs).
    pub floor: Option<&'static str>,
}

/// Every pair, in report order. A limit may serve several of ours.
pub const PAIRS: &[Pair] = &[
    Pair {
        ours: "ours.ring_u64",
        limit: "limit.spsc_u64",
        what: "RingBuffer<u64>, push/pop per message",
        target: Some(Target::AtLeast(0.9)),
        floor: None,
    },
    Pair {
        ours: "ours.ring_u64_batch",
        limit: "limit.spsc_u64_batch",
        what: "RingBuffer<u64>, slices of 256",
        target: Some(Target::AtLeast(0.9)),
        floor: None,
    },
    Pair {
        ours: "ours.queue_u64",
        limit: "limit.spsc_u64",
        what: "Queue<u64> 1 → 1, put/get",
        target: Some(Target::AtLeast(0.8)),
        floor: Some("limit.mpmc_claimed_u64"),
    },
    Pair {
        ours: "limit.mpmc_u64",
        limit: "limit.spsc_u64",
        what: "the bare MPMC queue (one CAS per put and get) against the bare SPSC ring",
        target: None,
        floor: None,
    },
    Pair {
        ours: "limit.mpmc_claimed_u64",
        limit: "limit.spsc_u64",
        what: "the bare MPMC queue with claimed slots (Queue's protocol, three CASes per put and get) against the bare SPSC ring",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.pipe_rtt",
        limit: "limit.duplex_rtt",
        what: "Connection round trip of a u64, busy",
        target: Some(Target::AtMost(1.3)),
        floor: Some("limit.chunk_claimed_rtt"),
    },
    Pair {
        ours: "limit.chunk_rtt",
        limit: "limit.duplex_rtt",
        what: "the bare chunk protocol of a Connection against the bare two-line round trip",
        target: None,
        floor: None,
    },
    Pair {
        ours: "limit.chunk_claimed_rtt",
        limit: "limit.chunk_rtt",
        what: "the chunk protocol with the end claims, positions and sleeper looks a Connection whose ends may be shared must add, against the bare chunk protocol",
        target: None,
        floor: None,
    },
    Pair {
        ours: "limit.duplex_rtt",
        limit: "limit.pingpong_rtt",
        what: "the bare two-line round trip against one line both sides write",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.pipe_rtt_sleeping",
        limit: "limit.futex_rtt",
        what: "Connection round trip of a u64, sleeping",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.event_rtt",
        limit: "limit.futex_rtt",
        what: "Event set/wait round trip",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.async_event_rtt",
        limit: "limit.futex_rtt",
        what: "Event set/wait_async round trip under tokio",
        target: Some(Target::AtMost(1.0)),
        floor: Some("limit.futex_relay_rtt"),
    },
    Pair {
        ours: "limit.futex_relay_rtt",
        limit: "limit.futex_rtt",
        what: "the bare futex round trip with each side woken by a thread of its own (an awaiting task's two wake-ups) against the bare futex round trip",
        target: None,
        floor: None,
    },
    Pair {
        ours: "eventfd.pingpong_rtt",
        limit: "limit.futex_rtt",
        what: "two eventfds, each side asleep in a read (the fd a runtime polls) against the bare futex round trip",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.queue_rtt",
        limit: "limit.futex_rtt",
        what: "Queue put/get round trip of a u64",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.async_queue_rtt",
        limit: "limit.futex_rtt",
        what: "Queue put_async/get_async round trip under tokio",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.async_pipe_rtt",
        limit: "limit.futex_rtt",
        what: "Connection send/recv_async round trip under tokio",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.pool_apply_rtt",
        limit: "limit.futex_rtt",
        what: "Pool.apply round trip (two hand-overs)",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.queue_1mib",
        limit: "limit.ring_1mib",
        what: "Queue of 1 MiB, copied in and out",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.pipe_1mib",
        limit: "limit.ring_1mib",
        what: "Connection of 1 MiB, copied in and out",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.loan_1mib",
        limit: "limit.ring_1mib_inplace",
        what: "Queue of 1 MiB, loaned and read in place",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.start_fork",
        limit: "raw.fork_exit_wait",
        what: "process start and join, fork",
        target: Some(Target::AtMost(1.3)),
        floor: Some("raw.fork_result_wait"),
    },
    Pair {
        ours: "raw.fork_result_wait",
        limit: "raw.fork_exit_wait",
        what: "a bare fork that returns a 6-byte result against the bare fork (two floors)",
        target: None,
        floor: None,
    },
    Pair {
        ours: "raw.fork_result_wait_code8",
        limit: "raw.fork_result_wait",
        what: "that floor whose child first touches eight windows of code (each window: the \
               difference / 8)",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.start_spawn",
        limit: "raw.reexec_wait",
        what: "process start and join, spawn",
        target: Some(Target::AtMost(1.3)),
        floor: None,
    },
    Pair {
        ours: "ours.start_spawn_200mb",
        limit: "raw.reexec_wait_200mb",
        what: "process start and join, spawn, from a process holding 200 MB of heap",
        target: None,
        floor: None,
    },
    Pair {
        ours: "ours.start_forkserver",
        limit: "raw.fork_exit_wait",
        what: "process start and join, forkserver",
        target: None,
        floor: None,
    },
];

/// The pair whose `ours` is `name`.
pub fn pair_of(name: &str) -> Option<&'static Pair> {
    PAIRS.iter().find(|p| p.ours == name)
}

/// The summary of a pair's rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairSummary {
    /// Our scenario.
    pub ours: &'static str,
    /// Its limit.
    pub limit: &'static str,
    /// What the pair measures.
    pub what: &'static str,
    /// The unit of both.
    pub unit: Unit,
    /// The median of our figures over the rounds.
    pub ours_median: f64,
    /// The median of the limit's figures over the rounds.
    pub limit_median: f64,
    /// ours ÷ limit, round by round: median, smallest and largest.
    pub ratio: Spread,
    /// How many rounds.
    pub rounds: usize,
    /// The target, if one is set.
    pub target: Option<Target>,
    /// Whether the median ratio meets it.
    pub meets: Option<bool>,
    /// The floor's figures from the same rounds, if the pair has one and it ran.
    pub floor: Option<FloorSummary>,
}

/// A floor's figures from the rounds of its pair (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorSummary {
    /// The floor scenario.
    pub name: &'static str,
    /// The median of its figures over the rounds.
    pub median: f64,
    /// floor ÷ limit, round by round: what the protocol alone costs against the limit.
    pub of_limit: Spread,
    /// ours ÷ floor, round by round: what ours adds to its protocol.
    pub ours_of_floor: Spread,
}

/// A median with its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (none for no values).
    ///
    /// ```
    /// let s = benches::pairs::Spread::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
    /// assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    /// ```
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

impl Pair {
    /// Summarises paired rounds: `(ours, limit)` figures, one pair per round.
    ///
    /// ```
    /// use benches::pairs::PAIRS;
    /// let s = PAIRS[0].summarise(benches::Unit::MsgsPerSec, &[(90.0, 100.0), (40.0, 50.0), (95.0, 100.0)]).unwrap();
    /// assert_eq!(s.ratio.median, 0.9);
    /// assert_eq!(s.ratio.min, 0.8);
    /// assert_eq!(s.meets, Some(true));
    /// ```
    pub fn summarise(&self, unit: Unit, rounds: &[(f64, f64)]) -> Option<PairSummary> {
        let ours: Vec<f64> = rounds.iter().map(|r| r.0).collect();
        let limit: Vec<f64> = rounds.iter().map(|r| r.1).collect();
        let ratios: Vec<f64> = rounds.iter().map(|(o, l)| o / l).collect();
        let ratio = Spread::of(&ratios)?;
        Some(PairSummary {
            ours: self.ours,
            limit: self.limit,
            what: self.what,
            unit,
            ours_median: Spread::of(&ours)?.median,
            limit_median: Spread::of(&limit)?.median,
            ratio,
            rounds: rounds.len(),
            target: self.target,
            meets: self.target.map(|t| t.met(ratio.median)),
            floor: None,
        })
    }

    /// Summarises paired rounds with the floor's figure of each round: `(ours, limit, floor)`.
    ///
    /// ```
    /// use benches::pairs::pair_of;
    /// let pipe = pair_of("ours.pipe_rtt").unwrap();
    /// let s = pipe
    ///     .summarise_with_floor(benches::Unit::Ns, &[(150.0, 100.0, 120.0), (300.0, 200.0, 200.0)])
    ///     .unwrap();
    /// assert_eq!(s.ratio.median, 1.5);
    /// let floor = s.floor.unwrap();
    /// assert_eq!(floor.name, "limit.chunk_claimed_rtt");
    /// assert_eq!((floor.of_limit.min, floor.of_limit.max), (1.0, 1.2));
    /// assert_eq!((floor.ours_of_floor.min, floor.ours_of_floor.max), (1.25, 1.5));
    /// ```
    pub fn summarise_with_floor(
        &self,
        unit: Unit,
        rounds: &[(f64, f64, f64)],
    ) -> Option<PairSummary> {
        let pairs: Vec<(f64, f64)> = rounds.iter().map(|&(o, l, _)| (o, l)).collect();
        let mut summary = self.summarise(unit, &pairs)?;
        let floors: Vec<f64> = rounds.iter().map(|r| r.2).collect();
        let of_limit: Vec<f64> = rounds.iter().map(|(_, l, f)| f / l).collect();
        let ours_of_floor: Vec<f64> = rounds.iter().map(|(o, _, f)| o / f).collect();
        summary.floor = Some(FloorSummary {
            name: self.floor?,
            median: Spread::of(&floors)?.median,
            of_limit: Spread::of(&of_limit)?,
            ours_of_floor: Spread::of(&ours_of_floor)?,
        });
        Some(summary)
    }
}
