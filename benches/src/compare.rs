//! The comparison `--markdown` prints before the full table: for each path (a kind of work,
//! such as "wake a sleeping process and back"), ours against the best peer measured in the
//! same run and against the hardware figure of the same kind.
//!
//! Ratios are speed factors, so that above 1 is always better for the first figure: for a
//! time, `theirs / ours`; for a rate, `ours / theirs`.
//!
//! Where the run measured a pair (ours in alternation with its limit), "ours vs limit" is the
//! median of the paired ratios rather than the ratio of the two medians.
//!
//! ```
//! use benches::report::{Row, Summary};
//! use benches::Unit;
//! let m = |x: f64| Summary::of(&[x], &[], Unit::Us);
//! let rows = vec![
//!     Row::new("ours.event_rtt", m(10.0)),
//!     Row::new("python.event_rtt", m(20.0)),
//!     Row::new("eventfd.pingpong_rtt", m(5.0)),
//!     Row::new("limit.futex_rtt", m(4.0)),
//! ];
//! let md = benches::compare::render_comparison(&rows, &[]);
//! assert!(md.contains("| `ours.event_rtt` 10.00 µs | `eventfd.pingpong_rtt` 5.000 µs | 0.50× |"));
//! ```

use std::fmt::Write as _;

use crate::pairs::PairSummary;
use crate::report::{Row, Summary, format_figure, measured};
use crate::scenario::Unit;
use crate::sweep::{Point, split_name};

/// One kind of work and the scenarios that do it.
#[derive(Debug, Clone, Copy)]
pub struct Path {
    /// What is measured, in words.
    pub label: &'static str,
    /// Our scenarios for it (the first measured one is used).
    pub ours: &'static [&'static str],
    /// The peers; the best measured one is compared.
    pub peers: &'static [&'static str],
    /// The hardware figure of the same kind, if there is one.
    pub limit: Option<&'static str>,
}

/// The paths compared, in order.
pub const PATHS: &[Path] = &[
    Path {
        label: "wake a sleeping process and back",
        ours: &["ours.event_rtt"],
        peers: &[
            "eventfd.pingpong_rtt",
            "pipe.pingpong_rtt",
            "unix.pingpong_rtt",
            "iceoryx2.event_rtt",
            "ipc_channel.pingpong_rtt",
            "python.event_rtt",
            "python.pipe_rtt",
        ],
        limit: Some("limit.futex_rtt"),
    },
    Path {
        label: "wake an awaiting task and back (tokio on both sides)",
        ours: &[
            "ours.async_event_rtt",
            "ours.async_queue_rtt",
            "ours.async_pipe_rtt",
        ],
        peers: &["tokio.mpsc_rtt"],
        limit: Some("limit.futex_rtt"),
    },
    Path {
        label: "round trip, busy-polling receivers",
        ours: &["ours.pipe_rtt"],
        peers: &[
            "iceoryx2.pubsub_rtt",
            "iceoryx2.reqres_rtt",
            "eventfd.pingpong_rtt_busy",
            "pipe.pingpong_rtt_busy",
            "unix.pingpong_rtt_busy",
        ],
        limit: Some("limit.duplex_rtt"),
    },
    Path {
        label: "stream of u64 messages, one call per message",
        ours: &["ours.queue_u64"],
        peers: &["iceoryx2.u64", "ipc_channel.u64", "python.queue_small"],
        limit: Some("limit.spsc_u64"),
    },
    Path {
        label: "1 MiB messages, copied in and out",
        ours: &["ours.queue_1mib", "ours.pipe_1mib"],
        peers: &[
            "iceoryx2.1mib_copy",
            "unix.1mib",
            "pipe.1mib",
            "ipc_channel.1mib_bytes",
            "ipc_channel.1mib_shmem",
        ],
        limit: Some("limit.ring_1mib"),
    },
    Path {
        label: "1 MiB messages, written into the slot and read in place",
        ours: &["ours.loan_1mib"],
        peers: &["iceoryx2.1mib_loan"],
        limit: Some("limit.ring_1mib_inplace"),
    },
    Path {
        label: "SPSC ring of u64, push/pop per message",
        ours: &["ours.ring_u64"],
        peers: &["crossbeam.u64_threads"],
        limit: Some("limit.spsc_u64"),
    },
    Path {
        label: "SPSC ring of u64, slices of 256",
        ours: &["ours.ring_u64_batch"],
        peers: &[],
        limit: Some("limit.spsc_u64_batch"),
    },
    Path {
        label: "lock and unlock, uncontended",
        ours: &["ours.lock_uncontended"],
        peers: &["raw_sync.mutex_uncontended", "pthread.robust_uncontended"],
        limit: None,
    },
    Path {
        label: "lock and unlock, two processes contending",
        ours: &["ours.lock_contended@2p"],
        peers: &["raw_sync.mutex_contended@2p", "pthread.robust_contended@2p"],
        limit: None,
    },
    Path {
        label: "locked increment of a shared value, two processes",
        ours: &["ours.value_locked_incr"],
        peers: &["python.value_locked_incr"],
        limit: None,
    },
    Path {
        label: "pool map, default chunks",
        ours: &["ours.pool_map"],
        peers: &["python.pool_map"],
        limit: None,
    },
    Path {
        label: "pool map, one task per message",
        ours: &["ours.pool_map_chunk1"],
        peers: &["python.pool_map_chunk1"],
        limit: None,
    },
    Path {
        label: "pool apply round trip",
        ours: &["ours.pool_apply_rtt"],
        peers: &["python.pool_apply_rtt"],
        limit: None,
    },
    Path {
        label: "manager dict set round trip",
        ours: &["ours.manager_dict_set_rtt"],
        peers: &["python.manager_dict_set_rtt"],
        limit: None,
    },
    Path {
        label: "start and join a process, fork",
        ours: &["ours.start_fork"],
        peers: &["python.start_fork"],
        limit: Some("raw.fork_exit_wait"),
    },
    Path {
        label: "start and join a process, spawn",
        ours: &["ours.start_spawn"],
        peers: &["python.start_spawn"],
        limit: Some("raw.reexec_wait"),
    },
    Path {
        label: "start and join a process, forkserver",
        ours: &["ours.start_forkserver"],
        peers: &["python.start_forkserver"],
        limit: Some("raw.fork_exit_wait"),
    },
    Path {
        label: "create and open a named segment",
        ours: &["core.segment_create_open"],
        peers: &["shared_memory.create_open", "python.shm_create_attach"],
        limit: None,
    },
];

/// The speed factor of `a` over `b` (above 1: `a` is faster), when their units compare.
///
/// ```
/// use benches::compare::speed_factor;
/// use benches::Unit;
/// assert_eq!(speed_factor((2.0, Unit::Us), (4.0, Unit::Us)), Some(2.0));
/// let f = speed_factor((1.0, Unit::Us), (500.0, Unit::Ns)).unwrap();
/// assert!((f - 0.5).abs() < 1e-9);
/// assert_eq!(speed_factor((3.0, Unit::GbPerSec), (1.5, Unit::GbPerSec)), Some(2.0));
/// assert_eq!(speed_factor((3.0, Unit::GbPerSec), (1.5, Unit::Us)), None);
/// assert_eq!(speed_factor((3.0, Unit::OpsPerSec), (1.5, Unit::GbPerSec)), None);
/// ```
pub fn speed_factor(a: (f64, Unit), b: (f64, Unit)) -> Option<f64> {
    if a.0 <= 0.0 || b.0 <= 0.0 {
        return None;
    }
    match (a.1.seconds(), b.1.seconds()) {
        (Some(x), Some(y)) => Some(b.0 * y / (a.0 * x)),
        (None, None) if a.1 == b.1 => Some(a.0 / b.0),
        _ => None,
    }
}

type Fig = (f64, Unit);

fn cell(name: &str, fig: Fig) -> String {
    format!("`{name}` {} {}", format_figure(fig.0), fig.1)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"))
}

/// The speed factor of `ours` over `limit` from their paired rounds, if measured.
fn paired_factor(pairs: &[PairSummary], ours: &str, limit: &str) -> Option<f64> {
    let p = pairs.iter().find(|p| p.ours == ours && p.limit == limit)?;
    Some(if p.unit.higher_is_better() {
        p.ratio.median
    } else {
        1.0 / p.ratio.median
    })
}

/// The comparison table (Markdown). A path none of whose scenarios ran is left out; a column
/// without a figure shows `—`.
pub fn render_comparison(rows: &[Row], pairs: &[PairSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| path | ours | best peer | ours vs peer | hardware limit | ours vs limit | peer vs limit |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---|---:|---:|");
    for path in PATHS {
        let ours = path
            .ours
            .iter()
            .find_map(|n| measured(rows, n).map(|f| (*n, f)));
        let best = path
            .peers
            .iter()
            .filter_map(|n| measured(rows, n).map(|f| (*n, f)))
            .fold(None::<(&str, Fig)>, |best, cand| match best {
                Some(b) if speed_factor(b.1, cand.1).is_none_or(|f| f >= 1.0) => Some(b),
                _ => Some(cand),
            });
        let limit = path.limit.and_then(|n| measured(rows, n).map(|f| (n, f)));
        if ours.is_none() && best.is_none() && limit.is_none() {
            continue;
        }
        let show = |x: Option<(&str, Fig)>| x.map_or_else(|| "—".to_owned(), |(n, f)| cell(n, f));
        let factor = |a: Option<(&str, Fig)>, b: Option<(&str, Fig)>| {
            ratio(a.zip(b).and_then(|(a, b)| speed_factor(a.1, b.1)))
        };
        let ours_vs_limit = match ours.zip(limit) {
            Some(((o, _), (l, _))) => paired_factor(pairs, o, l)
                .map(|f| format!("{f:.2}× (paired)"))
                .unwrap_or_else(|| factor(ours, limit)),
            None => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            path.label,
            show(ours),
            show(best),
            factor(ours, best),
            show(limit),
            ours_vs_limit,
            factor(best, limit),
        );
    }
    out
}

/// The sweeps as Markdown tables, one per axis (payload sizes, numbers of processes): a row
/// per sweep (`pipe.rtt`, `ours.queue_mpmc`, …), a column per point, medians in the sweep's
/// unit. Empty when nothing was swept.
///
/// ```
/// use benches::report::{Row, Summary};
/// use benches::Unit;
/// let rows = vec![
///     Row::new("pipe.rtt@8B", Summary::of(&[3.0], &[], Unit::Us)),
///     Row::new("pipe.rtt@4MiB", Summary::of(&[2000.0], &[], Unit::Us)),
///     Row::new("ours.queue_mpmc@2p", Summary::of(&[5e6], &[], Unit::MsgsPerSec)),
/// ];
/// let md = benches::compare::render_sweeps(&rows);
/// assert!(md.contains("| `pipe.rtt` (µs) | 3.000 |"));
/// assert!(md.contains("| 2,000 |"));
/// assert!(md.contains("| sweep | 2p |"));
/// ```
pub fn render_sweeps(rows: &[Row]) -> String {
    let mut out = String::new();
    for bytes in [true, false] {
        let on_axis = |p: &Point| matches!(p, Point::Bytes(_)) == bytes;
        let mut bases: Vec<(&str, Option<Unit>)> = Vec::new();
        let mut points: Vec<Point> = Vec::new();
        for row in rows {
            let (base, Some(point)) = split_name(&row.name) else {
                continue;
            };
            if !on_axis(&point) {
                continue;
            }
            if !points.contains(&point) {
                points.push(point);
            }
            let unit = row.summary.figure().map(|f| f.1);
            match bases.iter_mut().find(|(b, _)| *b == base) {
                Some((_, u)) if u.is_none() => *u = unit,
                Some(_) => {}
                None => bases.push((base, unit)),
            }
        }
        if bases.is_empty() {
            continue;
        }
        points.sort();
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("| sweep |");
        for p in &points {
            let _ = write!(out, " {} |", p.label());
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(points.len()));
        out.push('\n');
        for (base, unit) in bases {
            let unit = unit.map_or("", Unit::symbol);
            let _ = write!(out, "| `{base}` ({unit}) |");
            for p in &points {
                let name = format!("{base}@{}", p.label());
                let figure = match rows.iter().find(|r| r.name == name).map(|r| &r.summary) {
                    Some(Summary::Measured { median, .. }) => format_figure(*median),
                    Some(Summary::Failed { .. }) => "failed".to_owned(),
                    _ => "—".to_owned(),
                };
                let _ = write!(out, " {figure} |");
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_peer_is_the_fastest_in_either_direction() {
        let m = |x: f64, u: Unit| Summary::of(&[x], &[], u);
        let rows = vec![
            Row::new("ours.lock_contended@2p", m(10.0, Unit::OpsPerSec)),
            Row::new("raw_sync.mutex_contended@2p", m(20.0, Unit::OpsPerSec)),
            Row::new("pthread.robust_contended@2p", m(15.0, Unit::OpsPerSec)),
            Row::new("ours.start_fork", m(0.4, Unit::Ms)),
            Row::new("python.start_fork", m(1.6, Unit::Ms)),
            Row::new("raw.fork_exit_wait", m(200.0, Unit::Us)),
            Row::new("iceoryx2.u64", Summary::failed("broken")),
        ];
        let md = render_comparison(&rows, &[]);
        assert!(
            md.contains("`raw_sync.mutex_contended@2p` 20.00 ops/s | 0.50× | — |"),
            "{md}"
        );
        assert!(md.contains("`python.start_fork` 1.600 ms | 4.00× | `raw.fork_exit_wait` 200.0 µs | 0.50× | 0.12× |"), "{md}");
        assert!(!md.contains("stream of u64"), "{md}");
        assert!(!md.contains("pool map"), "{md}");
    }
}
