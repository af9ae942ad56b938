//! `--plot DIR`: SVG charts of the payload sweeps, drawn with `plotters`' SVG backend (no
//! fonts or system libraries needed: text is left to the SVG viewer).
//!
//! Every measured scenario named `group.what@SIZE` is a point of the line `group.what`.
//! `latency.svg` holds the time units (converted to µs), `throughput.svg` the `GB/s` ones; both
//! axes are logarithmic. The hardware figures of the same kind (`limit.pingpong_rtt`,
//! `limit.ring_1mib`, `limit.memcpy_1mib`), when measured, are dashed horizontal lines.
//!
//! ```
//! use benches::report::Outcome;
//! let rows = vec![
//!     ("pipe.rtt@8B", Outcome::measured(&[3.0], "µs")),
//!     ("pipe.rtt@64B", Outcome::measured(&[3.5], "µs")),
//!     ("pipe.pingpong_rtt", Outcome::measured(&[3.0], "µs")),
//! ];
//! let lines = benches::plot::series(&rows, benches::plot::Kind::Latency);
//! assert_eq!(lines.len(), 1);
//! assert_eq!(lines[0].points, [(8.0, 3.0), (64.0, 3.5)]);
//! let svg = benches::plot::render_svg("latency", benches::plot::Kind::Latency, &lines, &[])?;
//! assert!(svg.starts_with("<svg") && svg.contains("pipe.rtt"));
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::Outcome;
use crate::sweep::split_name;

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

/// Which chart a unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Round-trip times, drawn in µs.
    Latency,
    /// Bytes per second, drawn in GB/s.
    Throughput,
}

impl Kind {
    /// The factor that turns a figure in `unit` into this chart's unit, or `None` if the unit
    /// does not belong to this chart.
    ///
    /// ```
    /// use benches::plot::Kind;
    /// assert_eq!(Kind::Latency.factor("ns"), Some(1e-3));
    /// assert_eq!(Kind::Throughput.factor("GB/s"), Some(1.0));
    /// assert_eq!(Kind::Throughput.factor("µs"), None);
    /// ```
    pub fn factor(self, unit: &str) -> Option<f64> {
        match (self, unit) {
            (Kind::Latency, "ns") => Some(1e-3),
            (Kind::Latency, "µs") => Some(1.0),
            (Kind::Latency, "ms") => Some(1e3),
            (Kind::Latency, "s") => Some(1e6),
            (Kind::Throughput, "GB/s") => Some(1.0),
            _ => None,
        }
    }

    fn file(self) -> &'static str {
        match self {
            Kind::Latency => "latency.svg",
            Kind::Throughput => "throughput.svg",
        }
    }

    fn y_label(self) -> &'static str {
        match self {
            Kind::Latency => "round trip (µs, median)",
            Kind::Throughput => "throughput (GB/s, median)",
        }
    }
}

/// One line of a chart: a sweep's base name and its (size in bytes, figure) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The base name (`pipe.rtt`).
    pub name: String,
    /// (payload bytes, median in the chart's unit), by increasing size.
    pub points: Vec<(f64, f64)>,
}

/// The lines of one chart: the measured sized scenarios whose unit belongs to `kind`, grouped
/// by base name in order of first appearance.
pub fn series(rows: &[(&str, Outcome)], kind: Kind) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for (name, outcome) in rows {
        let (base, Some(size)) = split_name(name) else {
            continue;
        };
        let Outcome::Measured { median, unit, .. } = outcome else {
            continue;
        };
        let Some(factor) = kind.factor(unit) else {
            continue;
        };
        let y = median * factor;
        if !(y.is_finite() && y > 0.0) {
            continue;
        }
        match out.iter_mut().find(|s| s.name == base) {
            Some(s) => s.points.push((size as f64, y)),
            None => out.push(Series {
                name: base.to_owned(),
                points: vec![(size as f64, y)],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The hardware figures drawn as dashed horizontal lines: (scenario, chart).
const REFERENCES: [(&str, Kind); 3] = [
    ("limit.pingpong_rtt", Kind::Latency),
    ("limit.ring_1mib", Kind::Throughput),
    ("limit.memcpy_1mib", Kind::Throughput),
];

/// The measured `REFERENCES` of `kind` in `rows`, in the chart's unit.
///
/// ```
/// use benches::report::Outcome;
/// use benches::plot::{Kind, references};
/// let rows = vec![("limit.pingpong_rtt", Outcome::measured(&[120.0], "ns"))];
/// assert_eq!(references(&rows, Kind::Latency), [("limit.pingpong_rtt".to_owned(), 0.12)]);
/// assert!(references(&rows, Kind::Throughput).is_empty());
/// ```
pub fn references(rows: &[(&str, Outcome)], kind: Kind) -> Vec<(String, f64)> {
    REFERENCES
        .iter()
        .filter(|(_, k)| *k == kind)
        .filter_map(|(name, _)| {
            rows.iter().find_map(|(n, o)| match o {
                Outcome::Measured { median, unit, .. } if n == name => {
                    Some(((*name).to_owned(), median * kind.factor(unit)?))
                }
                _ => None,
            })
        })
        .collect()
}

/// Draws one chart as an SVG document: payload size against the figure, log-log, one line per
/// series, and a dashed horizontal line per reference figure (name, value).
pub fn render_svg(
    title: &str,
    kind: Kind,
    lines: &[Series],
    refs: &[(String, f64)],
) -> anyhow::Result<String> {
    let all = lines
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .chain(refs.iter().flat_map(|(_, y)| {
            let (a, b) = (
                crate::sweep::SIZES[0] as f64,
                crate::sweep::SIZES[crate::sweep::SIZES.len() - 1] as f64,
            );
            [(a, *y), (b, *y)]
        }));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    anyhow::ensure!(x0 <= x1, "nothing to plot for {title}");
    // Some room around the data, and never an empty range.
    let (x0, x1) = (x0 / 1.5, x1 * 1.5);
    let (y0, y1) = (y0 / 2.0, y1 * 2.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 600)).into_drawing_area();
        let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("plotting {title}: {e:?}");
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(
                    crate::sweep::SIZES
                        .iter()
                        .map(|&s| s as f64)
                        .filter(|s| (x0..=x1).contains(s))
                        .collect(),
                ),
                (y0..y1).log_scale(),
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("payload (bytes)")
            .y_desc(kind.y_label())
            .x_label_formatter(&|x| crate::sweep::size_label(x.round() as usize))
            .y_label_formatter(&|y| crate::report::format_figure(*y))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, line) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()].to_rgba();
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    line.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| err(&e))?;
        }
        for (name, y) in refs {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, *y), (x1, *y)],
                    8,
                    6,
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| err(&e))?
                .label(format!("{name} (hardware)"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(match kind {
                Kind::Latency => SeriesLabelPosition::UpperLeft,
                Kind::Throughput => SeriesLabelPosition::LowerRight,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// Writes `latency.svg` and `throughput.svg` into `dir` (created if missing) for the sweeps in
/// `rows`; returns the files written (a chart without any measured sweep is not written).
/// `subtitle` goes under each title (the machine and date).
pub fn write_charts(
    dir: &Path,
    rows: &[(&str, Outcome)],
    subtitle: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for kind in [Kind::Latency, Kind::Throughput] {
        let lines = series(rows, kind);
        if lines.is_empty() {
            continue;
        }
        let what = match kind {
            Kind::Latency => "round trip against payload size",
            Kind::Throughput => "one-way throughput against payload size",
        };
        let refs = references(rows, kind);
        let svg = render_svg(&format!("{what} — {subtitle}"), kind, &lines, &refs)?;
        let path = dir.join(kind.file());
        std::fs::write(&path, svg).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_skipped_and_foreign_units_stay_off_the_chart() {
        let rows = vec![
            ("a.rtt@8B", Outcome::measured(&[1000.0], "ns")),
            ("a.rtt@16B", Outcome::Failed("broken".into())),
            ("a.rtt@64B", Outcome::Skipped("no peer".into())),
            ("a.stream@8B", Outcome::measured(&[0.5], "GB/s")),
            ("a.count@8B", Outcome::measured(&[5.0], "msgs/s")),
            ("b.rtt@4MiB", Outcome::measured(&[2.0], "ms")),
            ("b.rtt@1KiB", Outcome::measured(&[4.0], "µs")),
        ];
        let lat = series(&rows, Kind::Latency);
        assert_eq!(
            lat,
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
        let thr = series(&rows, Kind::Throughput);
        assert_eq!(thr.len(), 1);
        assert_eq!(thr[0].name, "a.stream");
    }

    #[test]
    fn charts_are_written_as_svg_files() {
        let dir = std::env::temp_dir().join(format!("ipc-bench-plot-{}", std::process::id()));
        let rows = vec![
            ("x.rtt@8B", Outcome::measured(&[2.0], "µs")),
            ("x.rtt@1MiB", Outcome::measured(&[200.0], "µs")),
            ("y.rtt@8B", Outcome::measured(&[20.0], "µs")),
            ("x.stream@8B", Outcome::measured(&[0.01], "GB/s")),
            ("x.stream@1MiB", Outcome::measured(&[10.0], "GB/s")),
        ];
        let files = write_charts(&dir, &rows, "test machine").unwrap();
        assert_eq!(files.len(), 2);
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("x.rtt") || svg.contains("x.stream"));
            assert!(svg.contains("<polyline") || svg.contains("<path"));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(write_charts(&dir, &[], "empty").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
