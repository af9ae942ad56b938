//! Sweeps: one scenario per point, named `group.what@POINT`.
//!
//! - **Payload sweeps** ([`payload`]): the point is a message size, 8 B and then the powers of 4
//!   from 16 B to 4 MiB ([`SIZES`]), written `@8B` … `@4MiB`.
//! - **Process sweeps** ([`processes`]): the point is a number of processes (producers and as
//!   many consumers, pool workers, processes contending for a lock, manager clients), written
//!   `@4p`. A sweep may keep fewer points under `--quick`.
//!
//! [`split_name`] recovers the base name and the point from a scenario name, which is how the
//! tables and charts put each sweep on one line.
//!
//! ```
//! use benches::sweep::{Point, payload, split_name};
//! use benches::{Config, Quantity, Unit};
//!
//! let v = payload("demo.stream", Unit::GbPerSec, |_: &Config, size| {
//!     Ok(Quantity::PerSecond(size as f64).into())
//! });
//! assert_eq!(v.len(), benches::sweep::SIZES.len());
//! assert_eq!(v[0].name, "demo.stream@8B");
//! assert_eq!(split_name(&v[10].name), ("demo.stream", Some(Point::Bytes(4 << 20))));
//! assert_eq!(split_name("ours.queue_mpmc@16p"), ("ours.queue_mpmc", Some(Point::Procs(16))));
//! ```

use crate::scenario::{Config, Repeat, Scenario, Unit};

/// The payload sizes of a sweep, in bytes: 8 B, then 16 B to 4 MiB in powers of 4.
pub const SIZES: [usize; 11] = [
    8,
    16,
    64,
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
];

/// Where on its axis a sweep point lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Point {
    /// A payload of this many bytes.
    Bytes(usize),
    /// This many processes.
    Procs(usize),
}

impl Point {
    /// The label in scenario names: `8B`, `64KiB`, `4MiB`, `16p`.
    pub fn label(self) -> String {
        match self {
            Point::Bytes(size) => size_label(size),
            Point::Procs(n) => format!("{n}p"),
        }
    }

    /// The point as a number (bytes or processes), for charts.
    pub fn value(self) -> usize {
        match self {
            Point::Bytes(v) | Point::Procs(v) => v,
        }
    }

    /// Parses a label (`8B`, `16KiB`, `4p`); `None` if it is not one.
    ///
    /// ```
    /// use benches::sweep::Point;
    /// assert_eq!(Point::parse("64KiB"), Some(Point::Bytes(65536)));
    /// assert_eq!(Point::parse("16p"), Some(Point::Procs(16)));
    /// assert_eq!(Point::parse("p"), None);
    /// ```
    pub fn parse(label: &str) -> Option<Point> {
        if let Some(n) = label.strip_suffix('p') {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                return n.parse().ok().map(Point::Procs);
            }
            return None;
        }
        parse_size(label).map(Point::Bytes)
    }
}

/// One scenario per entry of [`SIZES`], named `BASE@8B` … `BASE@4MiB`; `run` gets the size.
pub fn payload<F>(base: &str, unit: Unit, run: F) -> Vec<Scenario>
where
    F: Fn(&Config, usize) -> Repeat + Clone + 'static,
{
    SIZES
        .iter()
        .map(|&size| {
            let run = run.clone();
            Scenario::new(format!("{base}@{}", size_label(size)), unit, move |cfg| {
                run(cfg, size)
            })
        })
        .collect()
}

/// One scenario per entry of `points`, named `BASE@1p`, `BASE@2p`, …; `run` gets the number.
/// Points not in `quick` are left out of `--quick` runs.
///
/// ```
/// use benches::{Config, Quantity, Unit};
/// let v = benches::sweep::processes("demo.lock", Unit::OpsPerSec, &[2, 4, 8], &[2, 8],
///     |_: &Config, n| Ok(Quantity::PerSecond(n as f64).into()));
/// assert_eq!(v[1].name, "demo.lock@4p");
/// assert!(v[0].quick && !v[1].quick && v[2].quick);
/// ```
pub fn processes<F>(
    base: &str,
    unit: Unit,
    points: &[usize],
    quick: &[usize],
    run: F,
) -> Vec<Scenario>
where
    F: Fn(&Config, usize) -> Repeat + Clone + 'static,
{
    points
        .iter()
        .map(|&n| {
            let run = run.clone();
            let s = Scenario::new(format!("{base}@{n}p"), unit, move |cfg| run(cfg, n));
            if quick.contains(&n) { s } else { s.full_only() }
        })
        .collect()
}

/// The label of a size as used in scenario names: `8B`, `64KiB`, `4MiB`.
///
/// ```
/// use benches::sweep::size_label;
/// assert_eq!(size_label(8), "8B");
/// assert_eq!(size_label(1024), "1KiB");
/// assert_eq!(size_label(4 << 20), "4MiB");
/// assert_eq!(size_label(1000), "1000B");
/// ```
pub fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{}MiB", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{}KiB", size >> 10)
    } else {
        format!("{size}B")
    }
}

/// Parses a size label (`8B`, `16KiB`, `4MiB`); `None` if it is not one.
///
/// ```
/// use benches::sweep::parse_size;
/// assert_eq!(parse_size("64KiB"), Some(65536));
/// assert_eq!(parse_size("8B"), Some(8));
/// assert_eq!(parse_size("8"), None);
/// assert_eq!(parse_size("KiB"), None);
/// ```
pub fn parse_size(label: &str) -> Option<usize> {
    let (digits, shift) = if let Some(d) = label.strip_suffix("MiB") {
        (d, 20)
    } else if let Some(d) = label.strip_suffix("KiB") {
        (d, 10)
    } else {
        (label.strip_suffix('B')?, 0)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(1 << shift)
}

/// Splits `group.what@POINT` into `("group.what", Some(point))`; other names come back whole
/// with `None`.
///
/// ```
/// use benches::sweep::{Point, split_name};
/// assert_eq!(split_name("pipe.stream@64KiB"), ("pipe.stream", Some(Point::Bytes(65536))));
/// assert_eq!(split_name("pipe.pingpong_rtt"), ("pipe.pingpong_rtt", None));
/// assert_eq!(split_name("odd@name"), ("odd@name", None));
/// ```
pub fn split_name(name: &str) -> (&str, Option<Point>) {
    match name.rsplit_once('@') {
        Some((base, label)) => match Point::parse(label) {
            Some(point) => (base, Some(point)),
            None => (name, None),
        },
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sweep_name_splits_back_into_its_point() {
        let v = payload("demo.rtt", Unit::Us, |_: &Config, size| {
            Ok(crate::Quantity::Seconds(size as f64).into())
        });
        let cfg = Config { quick: true };
        assert_eq!(v.len(), SIZES.len());
        for (s, &size) in v.iter().zip(SIZES.iter()) {
            assert_eq!(split_name(&s.name), ("demo.rtt", Some(Point::Bytes(size))));
            assert_eq!(s.name, format!("demo.rtt@{}", size_label(size)));
            assert_eq!(
                s.run(&cfg).unwrap(),
                crate::Quantity::Seconds(size as f64).into()
            );
        }
        for n in [1, 2, 64] {
            let label = Point::Procs(n).label();
            assert_eq!(Point::parse(&label), Some(Point::Procs(n)));
        }
    }

    #[test]
    fn sizes_are_8_bytes_then_powers_of_4_up_to_4_mib() {
        assert_eq!(SIZES[0], 8);
        for w in SIZES[1..].windows(2) {
            assert_eq!(w[1], w[0] * 4);
        }
        assert_eq!(*SIZES.last().unwrap(), 4 << 20);
    }

    #[test]
    fn labels_round_trip() {
        for size in SIZES.iter().copied().chain([1000, 3 << 10, 5 << 20]) {
            assert_eq!(parse_size(&size_label(size)), Some(size));
        }
        assert_eq!(parse_size("99999999999999999999MiB"), None);
        assert_eq!(parse_size("-1B"), None);
    }
}
