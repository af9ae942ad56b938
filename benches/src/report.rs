//! What `ipc-bench` prints: the machine description, the aligned table and the JSON document.
//!
//! The JSON document has exactly two keys:
//!
//! ```text
//! {"machine": {"cpu": ..., "cores": ..., "kernel": ..., "rustc": ..., "profile": ...,
//!              "date": ..., "python": ..., "command": ..., "quick": ..., "repeats": ...},
//!  "scenarios": {"NAME": {"median": X, "min": Y, "max": Z, "unit": "U"},
//!                "OTHER": {"skipped": "reason"},
//!                "BROKEN": {"failed": "message"}}}
//! ```
//!
//! Scenarios appear in run order. A measured scenario has `median`, `min`, `max` and `unit`; a
//! skipped one only `skipped`; a failed one only `failed` (and `ipc-bench` exits with status 1).

use std::fmt::Write as _;

use serde::Serialize;

/// The result of running one scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every repeat produced a figure.
    Measured {
        /// The median of the repeats (the mean of the middle two for an even count).
        median: f64,
        /// The smallest figure.
        min: f64,
        /// The largest figure.
        max: f64,
        /// The unit of all three.
        unit: &'static str,
        /// How many repeats.
        repeats: usize,
    },
    /// The scenario could not run here (a peer is missing); the reason.
    Skipped(String),
    /// The scenario failed (wrong data, a dead child, a timeout); the message.
    Failed(String),
}

impl Outcome {
    /// Summarises a run's figures.
    ///
    /// ```
    /// use benches::report::Outcome;
    /// let o = Outcome::measured(&[3.0, 1.0, 2.0, 10.0], "ns");
    /// assert_eq!(o, Outcome::Measured { median: 2.5, min: 1.0, max: 10.0, unit: "ns", repeats: 4 });
    /// assert!(matches!(Outcome::measured(&[], "ns"), Outcome::Failed(_)));
    /// ```
    pub fn measured(figures: &[f64], unit: &'static str) -> Self {
        if figures.is_empty() {
            return Outcome::Failed("no figures".to_owned());
        }
        let mut v = figures.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Outcome::Measured {
            median,
            min: v[0],
            max: v[n - 1],
            unit,
            repeats: n,
        }
    }
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
            date: iso_date(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
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

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
///
/// ```
/// assert_eq!(benches::report::iso_date(0), "1970-01-01T00:00:00Z");
/// assert_eq!(benches::report::iso_date(951_782_400), "2000-02-29T00:00:00Z");
/// ```
pub fn iso_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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

/// The aligned table `ipc-bench` prints without `--json`.
///
/// ```
/// use benches::report::{Outcome, render_table};
/// let rows = vec![
///     ("limit.pingpong_rtt", Outcome::measured(&[100.0, 110.0, 90.0], "ns")),
///     ("python.pipe_rtt", Outcome::Skipped("python3 not found".into())),
/// ];
/// let t = render_table(&rows);
/// assert!(t.contains("limit.pingpong_rtt"));
/// assert!(t.contains("python3 not found"));
/// ```
pub fn render_table(rows: &[(&str, Outcome)]) -> String {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(8).max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>14}  {:>14}  {:>14}  {:<8}",
        "scenario", "median", "min", "max", "unit"
    );
    let _ = writeln!(out, "{}", "-".repeat(width + 2 + 14 * 3 + 6 + 2 + 8));
    for (name, outcome) in rows {
        match outcome {
            Outcome::Measured {
                median,
                min,
                max,
                unit,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "{name:<width$}  {:>14}  {:>14}  {:>14}  {unit:<8}",
                    format_figure(*median),
                    format_figure(*min),
                    format_figure(*max),
                );
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(out, "{name:<width$}  skipped: {why}");
            }
            Outcome::Failed(why) => {
                let _ = writeln!(out, "{name:<width$}  FAILED: {why}");
            }
        }
    }
    out
}

/// The `--markdown` table: the machine line, then one row per scenario (a skipped or failed
/// scenario says so in the median column).
///
/// ```
/// use benches::report::{Machine, Outcome, render_markdown};
/// let rows = vec![
///     ("pipe.rtt@8B", Outcome::measured(&[3.0, 2.0, 4.0], "µs")),
///     ("iceoryx2.u64", Outcome::Skipped("built without --features peers".into())),
/// ];
/// let md = render_markdown(&Machine::collect(true, 3), &rows);
/// assert!(md.contains("| `pipe.rtt@8B` | 3.000 | 2.000 | 4.000 | µs |"));
/// assert!(md.contains("| `iceoryx2.u64` | skipped: built without --features peers | | | |"));
/// ```
pub fn render_markdown(machine: &Machine, rows: &[(&str, Outcome)]) -> String {
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
    for (name, outcome) in rows {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        match outcome {
            Outcome::Measured {
                median,
                min,
                max,
                unit,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "| `{name}` | {} | {} | {} | {unit} |",
                    format_figure(*median),
                    format_figure(*min),
                    format_figure(*max)
                );
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(out, "| `{name}` | skipped: {} | | | |", cell(why));
            }
            Outcome::Failed(why) => {
                let _ = writeln!(out, "| `{name}` | FAILED: {} | | | |", cell(why));
            }
        }
    }
    out
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonOutcome<'a> {
    Measured {
        median: f64,
        min: f64,
        max: f64,
        unit: &'a str,
    },
    Skipped {
        skipped: &'a str,
    },
    Failed {
        failed: &'a str,
    },
}

/// The `--json` document (one line, scenarios in run order).
///
/// ```
/// use benches::report::{Machine, Outcome, render_json};
/// let rows = vec![("limit.memcpy_1mib", Outcome::measured(&[10.0], "GB/s"))];
/// let doc: serde_json::Value =
///     serde_json::from_str(&render_json(&Machine::collect(true, 1), &rows)).unwrap();
/// assert_eq!(doc["scenarios"]["limit.memcpy_1mib"]["median"], 10.0);
/// assert_eq!(doc["scenarios"]["limit.memcpy_1mib"]["unit"], "GB/s");
/// assert!(doc["machine"]["cores"].as_u64().unwrap() >= 1);
/// ```
pub fn render_json(machine: &Machine, rows: &[(&str, Outcome)]) -> String {
    let machine = serde_json::to_string(machine).unwrap_or_else(|_| "{}".to_owned());
    let mut out = format!("{{\"machine\":{machine},\"scenarios\":{{");
    for (i, (name, outcome)) in rows.iter().enumerate() {
        let value = match outcome {
            Outcome::Measured {
                median,
                min,
                max,
                unit,
                ..
            } => JsonOutcome::Measured {
                median: *median,
                min: *min,
                max: *max,
                unit,
            },
            Outcome::Skipped(why) => JsonOutcome::Skipped { skipped: why },
            Outcome::Failed(why) => JsonOutcome::Failed { failed: why },
        };
        if i > 0 {
            out.push(',');
        }
        let key = serde_json::to_string(name).unwrap_or_default();
        let value = serde_json::to_string(&value).unwrap_or_else(|_| "{}".to_owned());
        let _ = write!(out, "{key}:{value}");
    }
    out.push_str("}}");
    out
}
