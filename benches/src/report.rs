//! What `ipc-bench` prints: the machine description, the aligned table, the Markdown tables
//! and the JSON document.
//!
//! The JSON document is one serde type, [`Document`]:
//!
//! ```text
//! {"machine": {"cpu": ..., "cores": ..., "kernel": ..., "rustc": ..., "profile": ...,
//!              "date": ..., "python": ..., "command": ..., "quick": ..., "repeats": ..., "pin": ...},
//!  "scenarios": {"NAME": {"median": X, "min": Y, "max": Z, "unit": "U"},
//!                "LOCK@4p": {"median": X, "min": Y, "max": Z, "unit": "ops/s",
//!                            "fairness": {"min_share": ..., "max_share": ...,
//!                                         "longest_streak": ..., "handoffs_per_sec": ...}},
//!                "OTHER": {"skipped": "reason"},
//!                "BROKEN": {"failed": "message"}},
//!  "pairs": [{"ours": ..., "limit": ..., "what": ..., "unit": ..., "ours_median": ...,
//!             "limit_median": ..., "ratio": {"median": ..., "min": ..., "max": ...},
//!             "rounds": ..., "target": "≥ 0.9×" | null, "meets": true | false | null,
//!             "floor": {"name": ..., "median": ..., "of_limit": {"median": ..., "min": ...,
//!                       "max": ...}, "ours_of_floor": {...}} | null}]}
//! ```
//!
//! Scenarios appear in run order. A measured scenario has `median`, `min`, `max` and `unit`,
//! and a contended lock also `fairness` (medians over the repeats); a skipped one only
//! `skipped`; a failed one only `failed` (and `ipc-bench` exits with status 1).

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Serialize;

use crate::pairs::{PairSummary, Spread};
use crate::scenario::{Fairness, Unit};

/// What the repeats of one scenario came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Summary {
    /// Every repeat produced a figure.
    Measured {
        /// The median of the repeats (the mean of the middle two for an even count).
        median: f64,
        /// The smallest figure.
        min: f64,
        /// The largest figure.
        max: f64,
        /// The unit of all three.
        unit: Unit,
        /// How many repeats.
        #[serde(skip)]
        repeats: usize,
        /// For contended locks: the medians of each fairness figure over the repeats.
        #[serde(skip_serializing_if = "Option::is_none")]
        fairness: Option<Fairness>,
    },
    /// The scenario could not run here (a peer is missing); the reason.
    Skipped {
        /// Why.
        skipped: String,
    },
    /// The scenario failed (wrong data, a dead child, a timeout); the message.
    Failed {
        /// What went wrong.
        failed: String,
    },
}

impl Summary {
    /// Summarises a run's figures (and fairness, when every repeat has one).
    ///
    /// ```
    /// use benches::{Unit, report::Summary};
    /// let s = Summary::of(&[3.0, 1.0, 2.0, 10.0], &[], Unit::Ns);
    /// assert_eq!(s.median(), Some(2.5));
    /// assert!(matches!(s, Summary::Measured { min: 1.0, max: 10.0, repeats: 4, .. }));
    /// assert!(matches!(Summary::of(&[], &[], Unit::Ns), Summary::Failed { .. }));
    /// ```
    pub fn of(figures: &[f64], fairness: &[Fairness], unit: Unit) -> Self {
        let Some(spread) = Spread::of(figures) else {
            return Summary::failed("no figures");
        };
        let median_of = |f: fn(&Fairness) -> f64| {
            Spread::of(&fairness.iter().map(f).collect::<Vec<_>>()).map_or(0.0, |s| s.median)
        };
        let fairness =
            (!fairness.is_empty() && fairness.len() == figures.len()).then(|| Fairness {
                min_share: median_of(|f| f.min_share),
                max_share: median_of(|f| f.max_share),
                longest_streak: median_of(|f| f.longest_streak as f64) as u64,
                handoffs_per_sec: median_of(|f| f.handoffs_per_sec),
            });
        Summary::Measured {
            median: spread.median,
            min: spread.min,
            max: spread.max,
            unit,
            repeats: figures.len(),
            fairness,
        }
    }

    /// A skip with its reason.
    pub fn skipped(why: impl Into<String>) -> Self {
        Summary::Skipped {
            skipped: why.into(),
        }
    }

    /// A failure with its message.
    pub fn failed(why: impl Into<String>) -> Self {
        Summary::Failed { failed: why.into() }
    }

    /// The median, if measured.
    pub fn median(&self) -> Option<f64> {
        match self {
            Summary::Measured { median, .. } => Some(*median),
            _ => None,
        }
    }

    /// The median and its unit, if measured.
    pub fn figure(&self) -> Option<(f64, Unit)> {
        match self {
            Summary::Measured { median, unit, .. } => Some((*median, *unit)),
            _ => None,
        }
    }

    /// The median, min and max formatted, with the unit; or `skipped: …` / `FAILED: …`.
    ///
    /// ```
    /// use benches::{Unit, report::Summary};
    /// let (cells, unit) = Summary::of(&[1.0, 2.0, 3.0], &[], Unit::Us).cells().unwrap();
    /// assert_eq!((cells, unit), (["2.000".to_owned(), "1.000".to_owned(), "3.000".to_owned()], Unit::Us));
    /// assert_eq!(Summary::skipped("no peer").cells(), Err("skipped: no peer".to_owned()));
    /// ```
    pub fn cells(&self) -> Result<([String; 3], Unit), String> {
        match self {
            Summary::Measured {
                median,
                min,
                max,
                unit,
                ..
            } => Ok((
                [
                    format_figure(*median),
                    format_figure(*min),
                    format_figure(*max),
                ],
                *unit,
            )),
            Summary::Skipped { skipped } => Err(format!("skipped: {skipped}")),
            Summary::Failed { failed } => Err(format!("FAILED: {failed}")),
        }
    }

    /// Whether the scenario failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Summary::Failed { .. })
    }
}

/// One scenario's line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario's name.
    pub name: String,
    /// What its repeats came to.
    pub summary: Summary,
}

impl Row {
    /// A row (for tests and examples).
    pub fn new(name: &str, summary: Summary) -> Self {
        Row {
            name: name.to_owned(),
            summary,
        }
    }
}

/// The measured median of `name` in `rows`, with its unit.
pub fn measured(rows: &[Row], name: &str) -> Option<(f64, Unit)> {
    rows.iter().find(|r| r.name == name)?.summary.figure()
}

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// The CPUs this process may run on.
    pub cores: usize,
    /// `uname -sr -m`.
    pub kernel: String,
    /// The compiler that built this binary.
    pub rustc: String,
    /// `release` or `debug`, and the optimisation level.
    pub profile: String,
    /// When the run started, UTC, ISO 8601.
    pub date: String,
    /// The Python version used for `python.*`, or why there is none.
    pub python: String,
    /// The command line.
    pub command: String,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Repeats per scenario.
    pub repeats: usize,
    /// Where `--pin` placed the two processes and whether it took, or `"not pinned"`.
    pub pin: String,
}

impl Machine {
    /// Describes this machine and run.
    ///
    /// ```
    /// let m = benches::report::Machine::collect(true, 3);
    /// assert!(m.cores >= 1);
    /// assert!(m.date.ends_with('Z'));
    /// ```
    pub fn collect(quick: bool, repeats: usize) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let python = match crate::scenarios::python::python_version() {
            Ok(v) => v.to_owned(),
            Err(why) => format!("none: {why}"),
        };
        Machine {
            cpu,
            cores,
            kernel: kernel(),
            rustc: option_env!("IPC_BENCH_RUSTC")
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
            profile: format!(
                "{} (opt-level {})",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
                option_env!("IPC_BENCH_OPT_LEVEL").unwrap_or("?")
            ),
            date: utc_now(),
            python,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            quick,
            repeats,
            pin: "not pinned".to_owned(),
        }
    }

    /// One line describing the machine, for the heads of tables and charts.
    ///
    /// ```
    /// let m = benches::report::Machine::collect(true, 3);
    /// assert!(m.summary().contains(&m.kernel));
    /// ```
    pub fn summary(&self) -> String {
        format!(
            "{} | {} cores | {} | {} | {} | {}",
            self.cpu, self.cores, self.kernel, self.rustc, self.profile, self.date
        )
    }
}

fn kernel() -> String {
    // SAFETY: utsname is plain bytes; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".to_owned();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
///
/// ```
/// let d = benches::report::utc_now();
/// assert_eq!(d.len(), 20);
/// assert!(d.ends_with('Z') && d.as_bytes()[10] == b'T');
/// ```
pub fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A figure with about four significant digits and thousands separators for large ones.
///
/// ```
/// use benches::report::format_figure;
/// assert_eq!(format_figure(123_456_789.0), "123,456,789");
/// assert_eq!(format_figure(1234.5), "1,234");
/// assert_eq!(format_figure(123.456), "123.5");
/// assert_eq!(format_figure(1.23456), "1.235");
/// assert_eq!(format_figure(0.012345), "0.01235");
/// ```
pub fn format_figure(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a >= 1000.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{x:.3}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(3, 12) as usize;
        format!("{x:.decimals$}")
    }
}

fn ratio_cell(s: &PairSummary) -> String {
    format!(
        "{:.2}× [{:.2}–{:.2}]",
        s.ratio.median, s.ratio.min, s.ratio.max
    )
}

/// The floor's part of a pair (see [`pairs`](crate::pairs)): what the protocol alone takes of
/// the limit and what ours takes of it, in the same rounds; `—` without one.
fn floor_cell(s: &PairSummary) -> String {
    match &s.floor {
        Some(f) => format!(
            "`{}` {:.2}× [{:.2}–{:.2}] of the limit; ours {:.2}× [{:.2}–{:.2}] of it",
            f.name,
            f.of_limit.median,
            f.of_limit.min,
            f.of_limit.max,
            f.ours_of_floor.median,
            f.ours_of_floor.min,
            f.ours_of_floor.max
        ),
        None => "—".to_owned(),
    }
}

fn target_cell(s: &PairSummary) -> String {
    match (s.target, s.meets) {
        (Some(t), Some(true)) => format!("{t}: met"),
        (Some(t), _) => format!("{t}: NOT met"),
        (None, _) => "—".to_owned(),
    }
}

fn fairness_cells(f: &Fairness) -> [String; 3] {
    [
        format!("{:.0}–{:.0} %", f.min_share * 100.0, f.max_share * 100.0),
        format_figure(f.longest_streak as f64),
        format_figure(f.handoffs_per_sec),
    ]
}

/// The aligned table `ipc-bench` prints without `--json` or `--markdown`: every scenario, then
/// the pairs, then the fairness of the contended locks.
///
/// ```
/// use benches::report::{Row, Summary, render_table};
/// use benches::Unit;
/// let rows = vec![
///     Row::new("limit.pingpong_rtt", Summary::of(&[100.0, 110.0, 90.0], &[], Unit::Ns)),
///     Row::new("python.pipe_rtt", Summary::skipped("python3 not found")),
/// ];
/// let t = render_table(&rows, &[]);
/// assert!(t.contains("limit.pingpong_rtt"));
/// assert!(t.contains("python3 not found"));
/// ```
pub fn render_table(rows: &[Row], pairs: &[PairSummary]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>14}  {:>14}  {:>14}  {:<8}",
        "scenario", "median", "min", "max", "unit"
    );
    let _ = writeln!(out, "{}", "-".repeat(width + 2 + 14 * 3 + 6 + 2 + 8));
    for row in rows {
        let name = &row.name;
        let _ = match row.summary.cells() {
            Ok(([median, min, max], unit)) => writeln!(
                out,
                "{name:<width$}  {median:>14}  {min:>14}  {max:>14}  {unit:<8}"
            ),
            Err(why) => writeln!(out, "{name:<width$}  {why}"),
        };
    }
    if !pairs.is_empty() {
        let w = pairs.iter().map(|p| p.ours.len()).max().unwrap_or(0);
        let lw = pairs.iter().map(|p| p.limit.len()).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "\npairs (median of paired ratios [min–max]; a rate's ratio is the share of the limit reached, a time's the multiple of the limit's time)"
        );
        for p in pairs {
            let _ = writeln!(
                out,
                "{:<w$}  {:>12} {:<7}  {:<lw$}  {:>12}  {:<22} {}",
                p.ours,
                format_figure(p.ours_median),
                p.unit.symbol(),
                p.limit,
                format_figure(p.limit_median),
                ratio_cell(p),
                target_cell(p),
            );
            if p.floor.is_some() {
                let _ = writeln!(out, "{:<w$}  same rounds: {}", "", floor_cell(p));
            }
        }
    }
    let fair: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.summary {
            Summary::Measured {
                median,
                fairness: Some(f),
                ..
            } => Some((r, *median, f)),
            _ => None,
        })
        .collect();
    if !fair.is_empty() {
        let _ = writeln!(
            out,
            "\nfairness (medians: each process's share of the acquisitions, the longest run of one process, handoffs per second)"
        );
        for (r, median, f) in fair {
            let [shares, streak, handoffs] = fairness_cells(f);
            let _ = writeln!(
                out,
                "{:<width$}  {:>14} ops/s  shares {shares:<10}  streak {streak:>10}  handoffs {handoffs:>12}/s",
                r.name,
                format_figure(median)
            );
        }
    }
    out
}

/// The pairs as a Markdown table.
pub fn render_pairs_markdown(pairs: &[PairSummary]) -> String {
    let mut out = String::new();
    if pairs.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "| path | ours | limit | ours ÷ limit, median [min–max] | rounds | target | its protocol alone, same rounds |"
    );
    let _ = writeln!(out, "|---|---|---|---|---:|---|---|");
    for p in pairs {
        let _ = writeln!(
            out,
            "| {} | `{}` {} {} | `{}` {} {} | {} | {} | {} | {} |",
            p.what,
            p.ours,
            format_figure(p.ours_median),
            p.unit,
            p.limit,
            format_figure(p.limit_median),
            p.unit,
            ratio_cell(p),
            p.rounds,
            target_cell(p),
            floor_cell(p),
        );
    }
    out
}

/// The fairness of the contended locks as a Markdown table (empty without any).
pub fn render_fairness_markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        if let Summary::Measured {
            median,
            unit,
            fairness: Some(f),
            ..
        } = &r.summary
        {
            if out.is_empty() {
                let _ = writeln!(
                    out,
                    "| scenario | throughput | shares (min–max) | longest streak | handoffs/s |"
                );
                let _ = writeln!(out, "|---|---:|---:|---:|---:|");
            }
            let [shares, streak, handoffs] = fairness_cells(f);
            let _ = writeln!(
                out,
                "| `{}` | {} {unit} | {shares} | {streak} | {handoffs} |",
                r.name,
                format_figure(*median)
            );
        }
    }
    out
}

/// The `--markdown` table of every scenario: the machine line, then one row per scenario (a
/// skipped or failed scenario says so in the median column).
///
/// ```
/// use benches::report::{Machine, Row, Summary, render_markdown};
/// use benches::Unit;
/// let rows = vec![
///     Row::new("pipe.rtt@8B", Summary::of(&[3.0, 2.0, 4.0], &[], Unit::Us)),
///     Row::new("iceoryx2.u64", Summary::skipped("built without --features peers")),
/// ];
/// let md = render_markdown(&Machine::collect(true, 3), &rows);
/// assert!(md.contains("| `pipe.rtt@8B` | 3.000 | 2.000 | 4.000 | µs |"));
/// assert!(md.contains("| `iceoryx2.u64` | skipped: built without --features peers | | | |"));
/// ```
pub fn render_markdown(machine: &Machine, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} repeats{}; {})\n",
        machine.summary(),
        machine.repeats,
        if machine.quick { ", --quick" } else { "" },
        machine.pin
    );
    let _ = writeln!(out, "| scenario | median | min | max | unit |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for row in rows {
        let name = &row.name;
        let _ = match row.summary.cells() {
            Ok(([median, min, max], unit)) => {
                writeln!(out, "| `{name}` | {median} | {min} | {max} | {unit} |")
            }
            Err(why) => writeln!(out, "| `{name}` | {} | | | |", cell(&why)),
        };
    }
    out
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    /// Where and how.
    pub machine: &'a Machine,
    /// Every scenario, in run order.
    pub scenarios: IndexMap<&'a str, &'a Summary>,
    /// The paired measurements.
    pub pairs: &'a [PairSummary],
}

impl<'a> Document<'a> {
    /// The document of a run.
    pub fn new(machine: &'a Machine, rows: &'a [Row], pairs: &'a [PairSummary]) -> Self {
        Document {
            machine,
            scenarios: rows.iter().map(|r| (r.name.as_str(), &r.summary)).collect(),
            pairs,
        }
    }

    /// The document as one line of JSON.
    ///
    /// ```
    /// use benches::report::{Document, Machine, Row, Summary};
    /// use benches::Unit;
    /// let rows = vec![Row::new("limit.memcpy_1mib", Summary::of(&[10.0], &[], Unit::GbPerSec))];
    /// let m = Machine::collect(true, 1);
    /// let doc: serde_json::Value = serde_json::from_str(&Document::new(&m, &rows, &[]).to_json()).unwrap();
    /// assert_eq!(doc["scenarios"]["limit.memcpy_1mib"]["median"], 10.0);
    /// assert_eq!(doc["scenarios"]["limit.memcpy_1mib"]["unit"], "GB/s");
    /// assert!(doc["machine"]["cores"].as_u64().unwrap() >= 1);
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
