//! `--plot DIR`: SVG charts of the sweeps, drawn with `plotters`' SVG backend (no fonts or
//! system libraries needed: text is left to the SVG viewer).
//!
//! Every measured scenario named `group.what@POINT` is a point of the line `group.what`.
//!
//! - Payload sweeps: `latency.svg` holds the time units (in µs), `throughput.svg` the `GB/s`
//!   ones, both axes logarithmic, with the hardware figures of the same kind
//!   (`limit.pingpong_rtt`, `limit.ring_1mib`, `limit.memcpy_1mib`) as dashed lines.
//! - Process sweeps: one chart per unit, `processes-<unit>.svg` (`processes-msgs_s.svg` for the
//!   queue, `processes-tasks_s.svg` for `Pool.map`, `processes-us.svg` for the `apply` and
//!   manager round trips, `processes-ops_s.svg` for the locks), against the number of processes
//!   on a logarithmic axis; and `processes-fairness.svg`: each lock's smallest share of the
//!   acquisitions divided by the fair share 1/N (1 is fair, 0 is a starved process).
//!
//! ```
//! use benches::report::{Row, Summary};
//! use benches::Unit;
//! let rows = vec![
//!     Row::new("pipe.rtt@8B", Summary::of(&[3.0], &[], Unit::Us)),
//!     Row::new("pipe.rtt@64B", Summary::of(&[3.5], &[], Unit::Us)),
//!     Row::new("pipe.pingpong_rtt", Summary::of(&[3.0], &[], Unit::Us)),
//! ];
//! let charts = benches::plot::charts(&rows, "test machine");
//! assert_eq!(charts.len(), 1);
//! assert_eq!(charts[0].lines[0].points, [(8.0, 3.0), (64.0, 3.5)]);
//! let svg = charts[0].render()?;
//! assert!(svg.starts_with("<svg") && svg.contains("pipe.rtt"));
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::{Row, Summary, measured};
use crate::scenario::Unit;
use crate::sweep::{Point, SIZES, size_label, split_name};

/// Line colours, distinct on white and in print.
const COLORS: [RGBColor; 10] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x00, 0x00, 0x00),
];

/// One line of a chart: a sweep's base name and its (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The base name (`pipe.rtt`).
    pub name: String,
    /// (point, figure), by increasing point.
    pub points: Vec<(f64, f64)>,
}

/// One chart: its file, its axes and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The file name in the `--plot` directory.
    pub file: String,
    /// The title (with the machine).
    pub title: String,
    /// What the x axis shows.
    pub x_desc: &'static str,
    /// What the y axis shows.
    pub y_desc: String,
    /// Whether the x axis counts bytes (labels `8B`, `1KiB`) or processes.
    pub bytes: bool,
    /// Whether the y axis is logarithmic.
    pub log_y: bool,
    /// The lines.
    pub lines: Vec<Series>,
    /// Dashed horizontal reference lines: (label, y).
    pub refs: Vec<(String, f64)>,
}

/// The hardware figures drawn on the payload charts: (scenario, time chart or not).
const REFERENCES: [(&str, bool); 3] = [
    ("limit.pingpong_rtt", true),
    ("limit.ring_1mib", false),
    ("limit.memcpy_1mib", false),
];

/// The figure of `s` in a payload chart's unit: µs for the latency chart, GB/s for the
/// throughput chart.
fn payload_value(unit: Unit, median: f64, latency: bool) -> Option<f64> {
    match (latency, unit) {
        (true, Unit::Ns) => Some(median / 1e3),
        (true, Unit::Us) => Some(median),
        (true, Unit::Ms) => Some(median * 1e3),
        (false, Unit::GbPerSec) => Some(median),
        _ => None,
    }
}

/// Adds a point to the line `base` of `lines`.
fn add(lines: &mut Vec<Series>, base: &str, x: f64, y: f64) {
    if !(y.is_finite() && y > 0.0) {
        return;
    }
    match lines.iter_mut().find(|s| s.name == base) {
        Some(s) => s.points.push((x, y)),
        None => lines.push(Series {
            name: base.to_owned(),
            points: vec![(x, y)],
        }),
    }
}

/// A file-name slug of a unit: `µs` → `us`, `msgs/s` → `msgs_s`.
fn slug(unit: Unit) -> String {
    unit.symbol().replace('µ', "u").replace('/', "_")
}

/// Every chart the measured sweeps in `rows` make (a chart without a line is left out).
/// `machine` goes into each title.
pub fn charts(rows: &[Row], machine: &str) -> Vec<Chart> {
    let mut out = Vec::new();
    // Payload sweeps.
    for latency in [true, false] {
        let mut lines = Vec::new();
        for row in rows {
            let (base, Some(Point::Bytes(size))) = split_name(&row.name) else {
                continue;
            };
            let Some((median, unit)) = row.summary.figure() else {
                continue;
            };
            if let Some(y) = payload_value(unit, median, latency) {
                add(&mut lines, base, size as f64, y);
            }
        }
        if lines.is_empty() {
            continue;
        }
        let refs = REFERENCES
            .iter()
            .filter(|(_, time)| *time == latency)
            .filter_map(|(name, _)| {
                let (median, unit) = measured(rows, name)?;
                Some((
                    format!("{name} (hardware)"),
                    payload_value(unit, median, latency)?,
                ))
            })
            .collect();
        let (file, what, y) = if latency {
            (
                "latency.svg",
                "round trip against payload size",
                "round trip (µs, median)",
            )
        } else {
            (
                "throughput.svg",
                "one-way throughput against payload size",
                "throughput (GB/s, median)",
            )
        };
        out.push(Chart {
            file: file.to_owned(),
            title: format!("{what} — {machine}"),
            x_desc: "payload (bytes)",
            y_desc: y.to_owned(),
            bytes: true,
            log_y: true,
            lines: sorted(lines),
            refs,
        });
    }
    // Process sweeps, one chart per unit.
    let mut units: Vec<Unit> = Vec::new();
    let mut fairness = Vec::new();
    for row in rows {
        if let (base, Some(Point::Procs(n))) = split_name(&row.name) {
            if let Summary::Measured {
                unit, fairness: f, ..
            } = &row.summary
            {
                if !units.contains(unit) {
                    units.push(*unit);
                }
                if let Some(f) = f {
                    add(&mut fairness, base, n as f64, f.min_share * n as f64);
                }
            }
        }
    }
    for unit in units {
        let mut lines = Vec::new();
        for row in rows {
            if let (base, Some(Point::Procs(n))) = split_name(&row.name) {
                if let Some((median, u)) = row.summary.figure() {
                    if u == unit {
                        add(&mut lines, base, n as f64, median);
                    }
                }
            }
        }
        out.push(Chart {
            file: format!("processes-{}.svg", slug(unit)),
            title: format!("{unit} against the number of processes — {machine}"),
            x_desc: "processes (or workers, clients; producers = consumers for queues)",
            y_desc: format!("{unit}, median"),
            bytes: false,
            log_y: true,
            lines: sorted(lines),
            refs: Vec::new(),
        });
    }
    if !fairness.is_empty() {
        out.push(Chart {
            file: "processes-fairness.svg".to_owned(),
            title: format!("lock fairness against the number of processes — {machine}"),
            x_desc: "processes contending",
            y_desc: "smallest share ÷ fair share 1/N (median)".to_owned(),
            bytes: false,
            log_y: false,
            lines: sorted(fairness),
            refs: vec![("fair".to_owned(), 1.0)],
        });
    }
    out
}

fn sorted(mut lines: Vec<Series>) -> Vec<Series> {
    for s in &mut lines {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

impl Chart {
    /// The chart as an SVG document.
    pub fn render(&self) -> anyhow::Result<String> {
        let xs = self.lines.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .lines
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.refs.iter().map(|r| r.1));
        let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        anyhow::ensure!(x0 <= x1, "nothing to plot for {}", self.file);
        let (x0, x1) = (x0 / 1.5, x1 * 1.5);
        let keys: Vec<f64> = if self.bytes {
            SIZES.iter().map(|&s| s as f64).collect()
        } else {
            let mut k: Vec<f64> = self
                .lines
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .collect();
            k.sort_by(f64::total_cmp);
            k.dedup();
            k
        };
        let keys = keys.into_iter().filter(|k| (x0..=x1).contains(k)).collect();
        let bytes = self.bytes;
        let x_label = move |x: &f64| {
            if bytes {
                size_label(x.round() as usize)
            } else {
                format!("{}", x.round() as u64)
            }
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (960, 600)).into_drawing_area();
            let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("plotting {}: {e:?}", self.file);
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut builder = ChartBuilder::on(&root);
            builder
                .caption(&self.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(72);
            let x_axis = (x0..x1).log_scale().with_key_points(keys);
            if self.log_y {
                let y_axis = (y0 / 2.0..y1 * 2.0).log_scale();
                let chart = builder
                    .build_cartesian_2d(x_axis, y_axis)
                    .map_err(|e| err(&e))?;
                let y_label = |y: &f64| crate::report::format_figure(*y);
                self.draw(chart, (x0, x1), &x_label, &y_label)
                    .map_err(|e| err(&e))?;
            } else {
                let y_axis = 0.0..(y1 * 1.2).max(1.2);
                let chart = builder
                    .build_cartesian_2d(x_axis, y_axis)
                    .map_err(|e| err(&e))?;
                let y_label = |y: &f64| format!("{y:.1}");
                self.draw(chart, (x0, x1), &x_label, &y_label)
                    .map_err(|e| err(&e))?;
            }
            root.present().map_err(|e| err(&e))?;
        }
        Ok(svg)
    }

    /// Draws the mesh, the lines, the references and the legend on `chart`.
    fn draw<'a, DB, X, Y>(
        &self,
        mut chart: ChartContext<'a, DB, Cartesian2d<X, Y>>,
        (x0, x1): (f64, f64),
        x_label: &dyn Fn(&f64) -> String,
        y_label: &dyn Fn(&f64) -> String,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend + 'a,
        X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(&self.y_desc)
            .x_label_formatter(x_label)
            .y_label_formatter(y_label)
            .draw()?;
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()].to_rgba();
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )?;
        }
        for (name, y) in &self.refs {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, *y), (x1, *y)],
                    8,
                    6,
                    BLACK.stroke_width(1),
                ))?
                .label(name.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
    }
}

/// Writes every chart of `rows` into `dir` (created if missing); returns the files written.
pub fn write_charts(dir: &Path, rows: &[Row], machine: &str) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for chart in charts(rows, machine) {
        let svg = chart.render()?;
        let path = dir.join(&chart.file);
        std::fs::write(&path, svg).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Fairness;

    fn m(x: f64, unit: Unit) -> Summary {
        Summary::of(&[x], &[], unit)
    }

    #[test]
    fn failed_skipped_and_foreign_units_stay_off_the_chart() {
        let rows = vec![
            Row::new("a.rtt@8B", m(1000.0, Unit::Ns)),
            Row::new("a.rtt@16B", Summary::failed("broken")),
            Row::new("a.rtt@64B", Summary::skipped("no peer")),
            Row::new("a.stream@8B", m(0.5, Unit::GbPerSec)),
            Row::new("a.count@8B", m(5.0, Unit::MsgsPerSec)),
            Row::new("b.rtt@4MiB", m(2.0, Unit::Ms)),
            Row::new("b.rtt@1KiB", m(4.0, Unit::Us)),
        ];
        let c = charts(&rows, "m");
        let lat = &c[0];
        assert_eq!(lat.file, "latency.svg");
        assert_eq!(
            lat.lines,
            [
                Series {
                    name: "a.rtt".into(),
                    points: vec![(8.0, 1.0)]
                },
                Series {
                    name: "b.rtt".into(),
                    points: vec![(1024.0, 4.0), ((4 << 20) as f64, 2000.0)]
                },
            ]
        );
        assert_eq!(c[1].file, "throughput.svg");
        assert_eq!(c[1].lines.len(), 1);
        assert_eq!(c[1].lines[0].name, "a.stream");
    }

    #[test]
    fn process_sweeps_get_a_chart_per_unit_and_locks_a_fairness_chart() {
        let fair = Fairness {
            min_share: 0.25,
            max_share: 0.75,
            longest_streak: 10,
            handoffs_per_sec: 1.0,
        };
        let rows = vec![
            Row::new("q.mpmc@1p", m(10.0, Unit::MsgsPerSec)),
            Row::new("q.mpmc@4p", m(20.0, Unit::MsgsPerSec)),
            Row::new("l.lock@2p", Summary::of(&[5.0], &[fair], Unit::OpsPerSec)),
        ];
        let files: Vec<String> = charts(&rows, "m").into_iter().map(|c| c.file).collect();
        assert_eq!(
            files,
            [
                "processes-msgs_s.svg",
                "processes-ops_s.svg",
                "processes-fairness.svg"
            ]
        );
        let c = charts(&rows, "m");
        assert_eq!(c[2].lines[0].points, [(2.0, 0.5)]);
    }

    #[test]
    fn charts_are_written_as_svg_files() {
        let dir = std::env::temp_dir().join(format!("ipc-bench-plot-{}", std::process::id()));
        let rows = vec![
            Row::new("x.rtt@8B", m(2.0, Unit::Us)),
            Row::new("x.rtt@1MiB", m(200.0, Unit::Us)),
            Row::new("y.rtt@8B", m(20.0, Unit::Us)),
            Row::new("x.stream@8B", m(0.01, Unit::GbPerSec)),
            Row::new("x.stream@1MiB", m(10.0, Unit::GbPerSec)),
            Row::new("z.map@1p", m(10.0, Unit::TasksPerSec)),
            Row::new("z.map@64p", m(5.0, Unit::TasksPerSec)),
        ];
        let files = write_charts(&dir, &rows, "test machine").unwrap();
        assert_eq!(files.len(), 3);
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("<polyline") || svg.contains("<path"));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(write_charts(&dir, &[], "empty").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
