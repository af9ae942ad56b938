//! Payload-size sweeps: one scenario per size, named `group.what@SIZE`.
//!
//! The sizes are 8 B and then the powers of 4 from 16 B to 4 MiB ([`SIZES`]); a group
//! registers a whole sweep with the [`sweep!`](macro@crate::sweep) macro, which turns a function
//! `fn(&Config, usize) -> anyhow::Result<Option<f64>>` into one [`Scenario`](crate::Scenario)
//! per size. [`split_name`] recovers the base name and the size from a scenario name, which is
//! how the charts of `--plot` put each sweep on one line.
//!
//! ```
//! fn demo(_: &benches::Config, size: usize) -> anyhow::Result<Option<f64>> {
//!     Ok(Some(size as f64))
//! }
//! let v = benches::sweep!("demo.stream", "GB/s", true, demo);
//! assert_eq!(v.len(), benches::sweep::SIZES.len());
//! assert_eq!(v[0].name, "demo.stream@8B");
//! assert_eq!(benches::sweep::split_name(v[10].name), ("demo.stream", Some(4 << 20)));
//! ```
//!
//! [`Pattern`] is the message every sized scenario moves: pseudo-random bytes with the message
//! index stamped at both ends, so a receiver can check every message cheaply (stamps and a
//! strided sample) and the last one completely.

use anyhow::ensure;

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

/// One scenario per entry of [`SIZES`], named `BASE@8B` … `BASE@4MiB`; `run` gets the size.
///
/// `run` must be a path to a function `fn(&Config, usize) -> anyhow::Result<Option<f64>>`.
#[macro_export]
macro_rules! sweep {
    ($base:literal, $unit:literal, $higher:expr, $run:path) => {
        vec![
            $crate::sweep!(@one $base, "8B", 8, $unit, $higher, $run),
            $crate::sweep!(@one $base, "16B", 16, $unit, $higher, $run),
            $crate::sweep!(@one $base, "64B", 64, $unit, $higher, $run),
            $crate::sweep!(@one $base, "256B", 256, $unit, $higher, $run),
            $crate::sweep!(@one $base, "1KiB", 1 << 10, $unit, $higher, $run),
            $crate::sweep!(@one $base, "4KiB", 4 << 10, $unit, $higher, $run),
            $crate::sweep!(@one $base, "16KiB", 16 << 10, $unit, $higher, $run),
            $crate::sweep!(@one $base, "64KiB", 64 << 10, $unit, $higher, $run),
            $crate::sweep!(@one $base, "256KiB", 256 << 10, $unit, $higher, $run),
            $crate::sweep!(@one $base, "1MiB", 1 << 20, $unit, $higher, $run),
            $crate::sweep!(@one $base, "4MiB", 4 << 20, $unit, $higher, $run),
        ]
    };
    (@one $base:literal, $label:literal, $size:expr, $unit:literal, $higher:expr, $run:path) => {
        $crate::Scenario {
            name: concat!($base, "@", $label),
            unit: $unit,
            higher_is_better: $higher,
            run: |cfg| $run(cfg, $size),
        }
    };
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

/// Splits `group.what@SIZE` into `("group.what", Some(size))`; other names come back whole
/// with `None`.
///
/// ```
/// use benches::sweep::split_name;
/// assert_eq!(split_name("pipe.stream@64KiB"), ("pipe.stream", Some(65536)));
/// assert_eq!(split_name("pipe.pingpong_rtt"), ("pipe.pingpong_rtt", None));
/// assert_eq!(split_name("odd@name"), ("odd@name", None));
/// ```
pub fn split_name(name: &str) -> (&str, Option<usize>) {
    match name.rsplit_once('@') {
        Some((base, label)) => match parse_size(label) {
            Some(size) => (base, Some(size)),
            None => (name, None),
        },
        None => (name, None),
    }
}

/// The contents of every message of one size: deterministic pseudo-random bytes, with the
/// message index stamped into the first 8 bytes and its complement into the last 8 (for
/// messages of 16 bytes or more).
///
/// ```
/// let p = benches::sweep::Pattern::new(64);
/// let mut buf = p.reference().to_vec();
/// p.stamp(&mut buf, 7);
/// p.check(&buf, 7)?;
/// p.check_fully(&buf, 7)?;
/// assert!(p.check(&buf, 8).is_err());
/// buf[20] ^= 1;
/// assert!(p.check_fully(&buf, 7).is_err());
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pattern {
    reference: Vec<u8>,
}

/// The stride of the sampled bytes [`Pattern::check`] compares (a prime, so that the samples
/// fall on every offset within a page over a long message).
const SAMPLE_STRIDE: usize = 4093;

impl Pattern {
    /// The pattern for messages of `size` bytes (at least 8).
    pub fn new(size: usize) -> Self {
        let size = size.max(8);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ size as u64;
        let reference = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Pattern { reference }
    }

    /// The unstamped contents.
    pub fn reference(&self) -> &[u8] {
        &self.reference
    }

    /// The message size in bytes.
    pub fn len(&self) -> usize {
        self.reference.len()
    }

    /// Always false: a pattern has at least 8 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Stamps message `i` into `buf` (a copy of the reference).
    pub fn stamp(&self, buf: &mut [u8], i: u64) {
        let n = buf.len();
        buf[..8].copy_from_slice(&i.to_le_bytes());
        if n >= 16 {
            buf[n - 8..].copy_from_slice(&(!i).to_le_bytes());
        }
    }

    /// Reads the index stamped at the start of a message.
    pub fn index(buf: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(buf.get(..8)?.try_into().ok()?))
    }

    /// Checks that `buf` is message `i`: its length, both stamps and every
    /// `SAMPLE_STRIDE`th byte.
    pub fn check(&self, buf: &[u8], i: u64) -> anyhow::Result<()> {
        let n = self.reference.len();
        ensure!(
            buf.len() == n,
            "message of {} bytes, expected {n}",
            buf.len()
        );
        let head = Self::index(buf).unwrap_or(u64::MAX);
        ensure!(head == i, "message {i}: leading stamp reads {head}");
        if n >= 16 {
            let tail = u64::from_le_bytes(buf[n - 8..].try_into().expect("8 bytes"));
            ensure!(tail == !i, "message {i}: trailing stamp reads {:#x}", tail);
            for at in (8..n - 8).step_by(SAMPLE_STRIDE) {
                ensure!(
                    buf[at] == self.reference[at],
                    "message {i}: byte {at} differs"
                );
            }
        }
        Ok(())
    }

    /// Checks `buf` against message `i` byte for byte.
    pub fn check_fully(&self, buf: &[u8], i: u64) -> anyhow::Result<()> {
        let mut expected = self.reference.clone();
        self.stamp(&mut expected, i);
        ensure!(
            buf == &expected[..],
            "message {i} differs from what was sent"
        );
        Ok(())
    }
}

/// How long one repeat of a sweep scenario measures: 200 ms, or 80 ms under `--quick` (a
/// sweep has many points, and each point's figure settles quickly).
///
/// ```
/// let cfg = benches::Config { quick: true };
/// assert!(benches::sweep::budget(&cfg) < cfg.budget());
/// ```
pub fn budget(cfg: &crate::Config) -> std::time::Duration {
    cfg.pick(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_millis(80),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(_: &crate::Config, size: usize) -> anyhow::Result<Option<f64>> {
        Ok(Some(size as f64))
    }

    #[test]
    fn every_sweep_name_splits_back_into_its_size() {
        let v = crate::sweep!("demo.rtt", "µs", false, demo);
        let cfg = crate::Config { quick: true };
        assert_eq!(v.len(), SIZES.len());
        for (s, &size) in v.iter().zip(SIZES.iter()) {
            assert_eq!(split_name(s.name), ("demo.rtt", Some(size)));
            assert_eq!(s.name, format!("demo.rtt@{}", size_label(size)));
            assert_eq!((s.run)(&cfg).unwrap(), Some(size as f64));
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

    #[test]
    fn patterns_catch_wrong_messages() {
        for size in [8, 16, 100, 1 << 20] {
            let p = Pattern::new(size);
            let mut a = p.reference().to_vec();
            p.stamp(&mut a, 3);
            p.check(&a, 3).unwrap();
            assert!(p.check(&a, 4).is_err());
            assert!(p.check(&a[..size - 1], 3).is_err());
            if size >= 16 {
                let mut b = a.clone();
                let last = b.len() - 1;
                b[last] ^= 0xff;
                assert!(p.check(&b, 3).is_err(), "trailing stamp, size {size}");
            }
            if size > 8 + SAMPLE_STRIDE + 8 {
                let mut c = a.clone();
                c[8 + SAMPLE_STRIDE] ^= 1;
                assert!(p.check(&c, 3).is_err(), "sampled byte, size {size}");
            }
        }
    }
}
