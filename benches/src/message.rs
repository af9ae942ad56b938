//! The messages every payload scenario moves, and how senders and receivers handle them.
//!
//! A [`Pattern`] is pseudo-random bytes with the message index stamped at both ends, so a
//! receiver can check every message cheaply (stamps and a strided sample) and the last one
//! completely. An [`Outbox`] is a sender's buffer, restamped for each message; an [`Inbox`] a
//! receiver's, checked as each message lands and kept for the complete check at the end.

use anyhow::ensure;

/// One mebibyte, the payload of the `*_1mib` scenarios.
pub const MIB: usize = 1 << 20;

/// The contents of every message of one size: deterministic pseudo-random bytes, with the
/// message index stamped into the first 8 bytes and its complement into the last 8 (for
/// messages of 16 bytes or more).
///
/// ```
/// let p = benches::message::Pattern::new(64);
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

/// A sender's message buffer: the pattern, restamped for each message.
///
/// ```
/// let mut out = benches::message::Outbox::new(64);
/// let mut inbox = benches::message::Inbox::new(64);
/// inbox.buf().copy_from_slice(out.message(3));
/// inbox.check(3)?;
/// inbox.check_last(4)?;
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Outbox {
    pattern: Pattern,
    buf: Vec<u64>,
}

/// Eight-aligned storage for `len` bytes (so that a message can be viewed as a `Pod` type).
fn words(len: usize) -> Vec<u64> {
    vec![0; len.div_ceil(8)]
}

impl Outbox {
    /// A buffer for messages of `size` bytes.
    pub fn new(size: usize) -> Self {
        let pattern = Pattern::new(size);
        let mut buf = words(pattern.len());
        bytemuck::cast_slice_mut(&mut buf)[..pattern.len()].copy_from_slice(pattern.reference());
        Self { pattern, buf }
    }

    /// Message `i`.
    #[inline]
    pub fn message(&mut self, i: u64) -> &[u8] {
        let bytes = &mut bytemuck::cast_slice_mut(&mut self.buf)[..self.pattern.len()];
        self.pattern.stamp(bytes, i);
        bytes
    }

    /// Message `i` as a `T` of exactly the message's size.
    pub fn message_as<T: bytemuck::Pod>(&mut self, i: u64) -> &T {
        bytemuck::from_bytes(self.message(i))
    }
}

/// A receiver's message buffer: each message is checked as it lands, the newest one is kept for
/// a complete check at the end.
#[derive(Debug, Clone)]
pub struct Inbox {
    pattern: Pattern,
    buf: Vec<u64>,
}

impl Inbox {
    /// A buffer for messages of `size` bytes.
    pub fn new(size: usize) -> Self {
        let pattern = Pattern::new(size);
        let buf = words(pattern.len());
        Self { pattern, buf }
    }

    /// The pattern messages follow.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// The buffer to receive into.
    #[inline]
    pub fn buf(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.buf)[..self.pattern.len()]
    }

    /// The buffer as a `T` of exactly the message's size.
    pub fn buf_as<T: bytemuck::Pod>(&mut self) -> &mut T {
        bytemuck::from_bytes_mut(self.buf())
    }

    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.buf)[..self.pattern.len()]
    }

    /// Checks that the buffer holds message `i` (stamps and a sample).
    #[inline]
    pub fn check(&self, i: u64) -> anyhow::Result<()> {
        self.pattern.check(self.bytes(), i)
    }

    /// Checks the buffer completely against the newest of `received` messages.
    pub fn check_last(&self, received: u64) -> anyhow::Result<()> {
        ensure!(received > 0, "nothing arrived");
        self.pattern.check_fully(self.bytes(), received - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
