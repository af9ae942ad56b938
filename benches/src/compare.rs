//! The comparison `--markdown` prints before the full table: for each path (a kind of work,
//! such as "wake a sleeping process and back"), ours against the best peer measured in the
//! same run and against the hardware figure of the same kind.
//!
//! Ratios are speed factors, so that above 1 is always better for the first figure: for a
//! time, `theirs / ours`; for a rate, `ours / theirs`.
//!
//! ```
//! use benches::report::Outcome;
//! let rows = vec![
//!     ("ours.event_rtt", Outcome::measured(&[10.0], "µs")),
//!     ("python.event_rtt", Outcome::measured(&[20.0], "µs")),
//!     ("eventfd.pingpong_rtt", Outcome::measured(&[5.0], "µs")),
//!     ("limit.futex_rtt", Outcome::measured(&[4.0], "µs")),
//! ];
//! let md = benches::compare::render_comparison(&rows);
//! assert!(md.contains("| `ours.event_rtt` 10.00 µs | `eventfd.pingpong_rtt` 5.000 µs | 0.50× |"));
//! ```

use std::fmt::Write as _;

use crate::report::{Outcome, format_figure};

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
        label: "round trip, busy-polling receivers",
        ours: &["ours.pipe_rtt"],
        peers: &[
            "iceoryx2.pubsub_rtt",
            "iceoryx2.reqres_rtt",
            "eventfd.pingpong_rtt_busy",
            "pipe.pingpong_rtt_busy",
            "unix.pingpong_rtt_busy",
        ],
        limit: Some("limit.pingpong_rtt"),
    },
    Path {
        label: "stream of u64 messages",
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
        label: "SPSC ring of u64",
        ours: &["ours.spsc_u64"],
        peers: &["crossbeam.u64_threads"],
        limit: Some("limit.spsc_u64"),
    },
    Path {
        label: "lock and unlock, uncontended",
        ours: &["ours.lock_uncontended"],
        peers: &["raw_sync.mutex_uncontended", "pthread.robust_uncontended"],
        limit: None,
    },
    Path {
        label: "lock and unlock, two processes contending",
        ours: &["ours.lock_contended_2p"],
        peers: &["raw_sync.mutex_contended_2p", "pthread.robust_contended_2p"],
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

/// A figure in a unit family's base (seconds, or the rate as is), and whether lower is better.
fn normalise(median: f64, unit: &str) -> (f64, bool) {
    match unit {
        "ns" => (median * 1e-9, true),
        "µs" => (median * 1e-6, true),
        "ms" => (median * 1e-3, true),
        "s" => (median, true),
        _ => (median, false),
    }
}

/// The speed factor of `a` over `b` (above 1: `a` is faster), when their units compare.
///
/// ```
/// use benches::compare::speed_factor;
/// assert_eq!(speed_factor((2.0, "µs"), (4.0, "µs")), Some(2.0));
/// let f = speed_factor((1.0, "µs"), (500.0, "ns")).unwrap();
/// assert!((f - 0.5).abs() < 1e-9);
/// assert_eq!(speed_factor((3.0, "GB/s"), (1.5, "GB/s")), Some(2.0));
/// assert_eq!(speed_factor((3.0, "GB/s"), (1.5, "µs")), None);
/// assert_eq!(speed_factor((3.0, "ops/s"), (1.5, "GB/s")), None);
/// ```
pub fn speed_factor(a: (f64, &str), b: (f64, &str)) -> Option<f64> {
    let (x, x_time) = normalise(a.0, a.1);
    let (y, y_time) = normalise(b.0, b.1);
    if x_time != y_time || (!x_time && a.1 != b.1) || x <= 0.0 || y <= 0.0 {
        return None;
    }
    Some(if x_time { y / x } else { x / y })
}

fn measured<'a>(rows: &'a [(&str, Outcome)], name: &str) -> Option<(f64, &'a str)> {
    rows.iter().find_map(|(n, o)| match o {
        Outcome::Measured { median, unit, .. } if *n == name => Some((*median, *unit)),
        _ => None,
    })
}

fn cell(name: &str, fig: (f64, &str)) -> String {
    format!("`{name}` {} {}", format_figure(fig.0), fig.1)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"))
}

/// The comparison table (Markdown). A path none of whose scenarios ran is left out; a column
/// without a figure shows `—`.
pub fn render_comparison(rows: &[(&str, Outcome)]) -> String {
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
            .fold(None::<(&str, (f64, &str))>, |best, cand| match best {
                Some(b) if speed_factor(b.1, cand.1).is_none_or(|f| f >= 1.0) => Some(b),
                _ => Some(cand),
            });
        let limit = path.limit.and_then(|n| measured(rows, n).map(|f| (n, f)));
        if ours.is_none() && best.is_none() && limit.is_none() {
            continue;
        }
        let show =
            |x: Option<(&str, (f64, &str))>| x.map_or_else(|| "—".to_owned(), |(n, f)| cell(n, f));
        let factor = |a: Option<(&str, (f64, &str))>, b: Option<(&str, (f64, &str))>| {
            ratio(a.zip(b).and_then(|(a, b)| speed_factor(a.1, b.1)))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            path.label,
            show(ours),
            show(best),
            factor(ours, best),
            show(limit),
            factor(ours, limit),
            factor(best, limit),
        );
    }
    out
}

/// The payload sweeps as one Markdown table: a row per sweep (`pipe.rtt`, `iceoryx2.stream`,
/// …), a column per size, medians in the sweep's unit. Empty when nothing was swept.
///
/// ```
/// use benches::report::Outcome;
/// let rows = vec![
///     ("pipe.rtt@8B", Outcome::measured(&[3.0], "µs")),
///     ("pipe.rtt@4MiB", Outcome::measured(&[2000.0], "µs")),
/// ];
/// let md = benches::compare::render_sweeps(&rows);
/// assert!(md.contains("| `pipe.rtt` (µs) | 3.000 |"));
/// assert!(md.trim_end().ends_with("| 2,000 |"));
/// ```
pub fn render_sweeps(rows: &[(&str, Outcome)]) -> String {
    use crate::sweep::{SIZES, size_label, split_name};
    let mut bases: Vec<(&str, &str)> = Vec::new();
    for (name, outcome) in rows {
        if let (base, Some(_)) = split_name(name) {
            let unit = match outcome {
                Outcome::Measured { unit, .. } => unit,
                _ => "",
            };
            match bases.iter_mut().find(|(b, _)| *b == base) {
                Some((_, u)) if u.is_empty() => *u = unit,
                Some(_) => {}
                None => bases.push((base, unit)),
            }
        }
    }
    if bases.is_empty() {
        return String::new();
    }
    let mut out = String::from("| sweep |");
    for size in SIZES {
        let _ = write!(out, " {} |", size_label(size));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(SIZES.len()));
    out.push('\n');
    for (base, unit) in bases {
        let _ = write!(out, "| `{base}` ({unit}) |");
        for size in SIZES {
            let name = format!("{base}@{}", size_label(size));
            let figure = match rows.iter().find(|(n, _)| *n == name) {
                Some((_, Outcome::Measured { median, .. })) => format_figure(*median),
                Some((_, Outcome::Failed(_))) => "failed".to_owned(),
                _ => "—".to_owned(),
            };
            let _ = write!(out, " {figure} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_peer_is_the_fastest_in_either_direction() {
        let rows = vec![
            (
                "ours.lock_contended_2p",
                Outcome::measured(&[10.0], "ops/s"),
            ),
            (
                "raw_sync.mutex_contended_2p",
                Outcome::measured(&[20.0], "ops/s"),
            ),
            (
                "pthread.robust_contended_2p",
                Outcome::measured(&[15.0], "ops/s"),
            ),
            ("ours.start_fork", Outcome::measured(&[0.4], "ms")),
            ("python.start_fork", Outcome::measured(&[1.6], "ms")),
            ("raw.fork_exit_wait", Outcome::measured(&[200.0], "µs")),
            ("iceoryx2.u64", Outcome::Failed("broken".into())),
        ];
        let md = render_comparison(&rows);
        assert!(
            md.contains("`raw_sync.mutex_contended_2p` 20.00 ops/s | 0.50× | — |"),
            "{md}"
        );
        assert!(md.contains("`python.start_fork` 1.600 ms | 4.00× | `raw.fork_exit_wait` 200.0 µs | 0.50× | 0.12× |"), "{md}");
        assert!(!md.contains("stream of u64"), "{md}");
        assert!(!md.contains("pool map"), "{md}");
    }
}
