//! Delivery that survives a reconnection: zenoh's reliability holds within one transport (one
//! connection between two sessions), and a transport can close and be opened again while both
//! nodes live (a connection a network drops; zenoh's TLS link, which fails now and then under
//! load). What was in flight on the closed transport, and what was published before the new one
//! carried the peer's subscriber, is lost without a word.
//!
//! So every stream of the backend that must arrive whole (a pipe's messages, a master's chunks to
//! a host, a host's results) numbers its frames, and the sender keeps each frame until the
//! receiver acknowledges it. The receiver passes frames on in number order, once; it drops a
//! duplicate and a frame that comes after a gap, and acknowledges every [`ACK_FRAMES`] frames or
//! [`ACK_BYTES`] bytes. Lost frames are sent again, in order, in two ways:
//!
//! - at once when the peer's liveliness token is withdrawn and declared again within the grace
//!   ([`super::liveliness::Change::Resumed`]): the new transport carries the peer's subscriber by
//!   then (zenoh declares subscribers ahead of tokens);
//! - otherwise by a probe: when frames have waited [`PROBE_AFTER`] with no acknowledgement, the
//!   sender sends a probe behind them; the receiver answers it with what it has, and since the
//!   probe came behind the frames on one transport, a frame before the probe that the answer
//!   does not cover was lost. This also covers a reconnection that zenoh does not report as a
//!   token's withdrawal, and it acknowledges a stream's last frames.
//!
//! The acknowledgements, answers, probes and re-sends are sent by one thread per process
//! (`ipc-cluster-resend`), which looks at every stream every [`TICK`] while one has frames
//! waiting, and sleeps otherwise. A stream whose owner drops it may linger there
//! ([`Outgoing::linger`]) until its last frames are acknowledged, as a closed TCP socket does.
//!
//! Frames (numbers are u64, little-endian): `[0][seq][payload]` data; `[1][next]` acknowledges
//! every frame below `next`; `[2][barrier]` a probe sent when the next frame would have been
//! `barrier`; `[3][next][barrier]` its answer. What one side publishes to the other's key is its
//! data and its answers about the other's data, all with congestion control `Block`: the
//! acknowledgements and answers are sent by the resend thread, never by zenoh's receiving
//! threads (a receiving thread that waited on a full queue could hold up the very traffic that
//! would empty it).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock, TryLockError, Weak};
use std::time::{Duration, Instant};

use crate::primitive::{AtomicU64, Ordering};
use zenoh::Wait;
use zenoh::bytes::ZBytes;
use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;

const DATA: u8 = 0;
const ACK: u8 = 1;
const PROBE: u8 = 2;
const ANSWER: u8 = 3;

/// The receiver acknowledges once this many frames arrived since its last acknowledgement (each
/// acknowledgement wakes the resend thread: every 32 frames cost one task per message over
/// zenoh 10–15 % of its rate, every 128 up to a tenth)...
pub(crate) const ACK_FRAMES: u32 = 128;
/// ... or this many bytes.
pub(crate) const ACK_BYTES: usize = 256 * 1024;
/// How long frames wait unacknowledged before the sender probes.
pub(crate) const PROBE_AFTER: Duration = Duration::from_millis(200);
/// How often the resend thread looks at the streams while one has frames waiting.
const TICK: Duration = Duration::from_millis(50);

fn number_frame(tag: u8, numbers: &[u64]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1 + 8 * numbers.len());
    frame.push(tag);
    for n in numbers {
        frame.extend_from_slice(&n.to_le_bytes());
    }
    frame
}

/// The frames a sender keeps until they are acknowledged, and its probe.
#[derive(Debug)]
struct Unacked {
    next: u64,
    frames: VecDeque<(u64, ZBytes)>,
    /// Since when the oldest frame kept has waited with no acknowledgement.
    waiting_since: Instant,
    /// The outstanding probe: its barrier and when it was sent.
    probe: Option<(u64, Instant)>,
}

impl Default for Unacked {
    fn default() -> Self {
        Self {
            next: 0,
            frames: VecDeque::new(),
            waiting_since: Instant::now(),
            probe: None,
        }
    }
}

/// What the resend thread is to do for a stream.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Nothing,
    Probe(u64),
    Resend,
}

impl Unacked {
    /// Numbers `payload`, keeps the frame and returns it.
    fn push(&mut self, payload: &[u8]) -> ZBytes {
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.push(DATA);
        frame.extend_from_slice(&self.next.to_le_bytes());
        frame.extend_from_slice(payload);
        let frame = ZBytes::from(frame);
        if self.frames.is_empty() {
            self.waiting_since = Instant::now();
        }
        self.frames.push_back((self.next, frame.clone()));
        self.next += 1;
        frame
    }

    /// Forgets every frame numbered below `next`.
    fn trim(&mut self, next: u64) {
        let before = self.frames.len();
        while self.frames.front().is_some_and(|&(seq, _)| seq < next) {
            self.frames.pop_front();
        }
        if self.frames.len() != before {
            self.waiting_since = Instant::now();
        }
    }

    /// What is due at `now`, given the acknowledgement heard (`acked`) and the highest probe
    /// answered (`answered`).
    fn due(&mut self, acked: u64, answered: u64, now: Instant) -> Due {
        self.trim(acked);
        if self.frames.is_empty() {
            self.probe = None;
            return Due::Nothing;
        }
        match self.probe {
            Some((barrier, _)) if answered >= barrier => {
                self.probe = None;
                // The receiver had everything before the barrier that it will ever get.
                match self.frames.front() {
                    Some(&(seq, _)) if seq < barrier => Due::Resend,
                    _ => Due::Nothing,
                }
            }
            Some((_, sent)) if now.duration_since(sent) < PROBE_AFTER => Due::Nothing,
            // An unanswered probe (lost, or its answer lost) is sent again.
            Some(_) => self.probe_now(now),
            None if now.duration_since(self.waiting_since) >= PROBE_AFTER => self.probe_now(now),
            None => Due::Nothing,
        }
    }

    fn probe_now(&mut self, now: Instant) -> Due {
        self.probe = Some((self.next, now));
        Due::Probe(self.next)
    }
}

/// The sending side of a numbered stream: a publisher on the peer's key and the frames it has
/// not acknowledged.
pub(crate) struct Outgoing {
    publisher: Publisher<'static>,
    unacked: Mutex<Unacked>,
    /// The highest acknowledgement heard, and the highest probe answered (set from zenoh's
    /// receiving threads, which must not wait for a sender blocked on a full queue).
    acked: AtomicU64,
    answered: AtomicU64,
    /// What this side is to tell the peer about the peer's stream, sent by the resend thread
    /// (zenoh's receiving threads must not wait on a full transmission queue, and a control
    /// frame must not be dropped for want of room): the acknowledgement and the answer to the
    /// latest probe, each a highest value so far, plus 1 (0: nothing to send).
    ack_due: AtomicU64,
    answer_due: [AtomicU64; 2],
}

impl Outgoing {
    /// Declares the publisher on `key` (congestion control `Block`: nothing is dropped) and
    /// enrols the stream with the resend thread.
    pub(crate) fn declare(session: &zenoh::Session, key: String) -> zenoh::Result<Arc<Self>> {
        let publisher = session
            .declare_publisher(key)
            .congestion_control(CongestionControl::Block)
            .wait()?;
        let out = Arc::new(Self {
            publisher,
            unacked: Mutex::new(Unacked::default()),
            acked: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            ack_due: AtomicU64::new(0),
            answer_due: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        resender().enrol(&out);
        Ok(out)
    }

    /// Sends `payload` as the next frame, after every frame sent before.
    pub(crate) fn send(&self, payload: &[u8]) -> zenoh::Result<()> {
        let mut unacked = self.unacked.lock().unwrap_or_else(|p| p.into_inner());
        // ORDERING: a number only, read to drop frames; the frames are this lock's.
        unacked.trim(self.acked.load(Ordering::Relaxed));
        let was_idle = unacked.frames.is_empty();
        let frame = unacked.push(payload);
        // Under the lock, so frames leave in number order.
        let sent = self.publisher.put(frame).wait();
        drop(unacked);
        if was_idle {
            resender().wake();
        }
        sent
    }

    /// Sends again, in order, every frame the peer has not acknowledged (it drops those it had):
    /// the transport to it was opened again.
    pub(crate) fn resend(&self) {
        let mut unacked = self.unacked.lock().unwrap_or_else(|p| p.into_inner());
        // ORDERING: see `send`.
        unacked.trim(self.acked.load(Ordering::Relaxed));
        unacked.probe = None;
        unacked.waiting_since = Instant::now();
        for (_, frame) in &unacked.frames {
            if self.publisher.put(frame.clone()).wait().is_err() {
                return;
            }
        }
    }

    /// Probes at once (behind every frame sent), as a stream about to be left does.
    pub(crate) fn probe_now(&self) {
        let mut unacked = self.unacked.lock().unwrap_or_else(|p| p.into_inner());
        let barrier = unacked.next;
        unacked.probe = Some((barrier, Instant::now()));
        let _ = self.publisher.put(number_frame(PROBE, &[barrier])).wait();
    }

    /// Whether the peer has acknowledged every frame.
    fn settled(&self) -> bool {
        let mut unacked = self.unacked.lock().unwrap_or_else(|p| p.into_inner());
        // ORDERING: see `send`.
        unacked.trim(self.acked.load(Ordering::Relaxed));
        unacked.frames.is_empty()
    }

    /// Keeps this stream, and `keep` (what must stay declared for it to be sent again and
    /// acknowledged: its subscribers, its token), until the peer has acknowledged every frame
    /// or `limit` has passed; then drops `keep`. For an end that is dropped while what it sent
    /// may still be lost (TCP's linger, for a stream over zenoh).
    pub(crate) fn linger(self: &Arc<Self>, keep: Box<dyn Send>, limit: Duration) {
        self.probe_now();
        let r = resender();
        let mut lingering = r.lingering.lock().unwrap_or_else(|p| p.into_inner());
        lingering.push((Arc::clone(self), Instant::now() + limit, keep));
        drop(lingering);
        r.wake();
    }

    /// The resend thread's look at this stream: what to tell the peer, then what to probe or
    /// send again.
    fn tick(&self, now: Instant) -> bool {
        self.say();
        // A stream whose sender holds it is sending (maybe waiting on a full queue): look again
        // at the next tick rather than hold up every other stream of the process behind it.
        let mut unacked = match self.unacked.try_lock() {
            Ok(u) => u,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return true,
        };
        // ORDERING: see `send`.
        let (acked, answered) = (
            self.acked.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
        );
        match unacked.due(acked, answered, now) {
            Due::Nothing => {}
            Due::Probe(barrier) => {
                // Behind every frame sent (same publisher, under the lock).
                let _ = self.publisher.put(number_frame(PROBE, &[barrier])).wait();
            }
            Due::Resend => {
                drop(unacked);
                self.resend();
                return true;
            }
        }
        !unacked.frames.is_empty()
    }

    /// Handles what the peer said about this stream (a [`Frame::Ack`] or [`Frame::Answer`]).
    pub(crate) fn on_peer(&self, frame: &Frame<'_>) {
        // ORDERING: see `send`.
        match *frame {
            Frame::Ack(next) => {
                self.acked.fetch_max(next, Ordering::Relaxed);
            }
            Frame::Answer { next, barrier } => {
                self.acked.fetch_max(next, Ordering::Relaxed);
                self.answered.fetch_max(barrier, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Says to the peer what this side has of the peer's stream: an acknowledgement due after
    /// a data frame, or the answer to a probe. Hands it to the resend thread and returns (it
    /// runs in zenoh's receiving thread, which must not wait on a full transmission queue).
    pub(crate) fn reply(&self, frame: &Frame<'_>, ack: Option<u64>) {
        // ORDERING: each value is complete in itself (a later, higher one says at least as
        // much), and the resend thread takes it with a swap; the wake-up below goes through a
        // mutex. Relaxed suffices.
        match (frame, ack) {
            (Frame::Probe { barrier, next }, _) => {
                self.answer_due[0].fetch_max(next + 1, Ordering::Relaxed);
                self.answer_due[1].fetch_max(barrier + 1, Ordering::Relaxed);
            }
            (_, Some(next)) => {
                self.ack_due.fetch_max(next + 1, Ordering::Relaxed);
            }
            _ => return,
        }
        resender().wake();
    }

    /// Sends what `reply` left to say (in the resend thread).
    fn say(&self) {
        // ORDERING: see `reply`.
        let ack = self.ack_due.swap(0, Ordering::Relaxed);
        if ack > 0 {
            let _ = self.publisher.put(number_frame(ACK, &[ack - 1])).wait();
        }
        let barrier = self.answer_due[1].swap(0, Ordering::Relaxed);
        let next = self.answer_due[0].swap(0, Ordering::Relaxed);
        if barrier > 0 && next > 0 {
            let _ = self
                .publisher
                .put(number_frame(ANSWER, &[next - 1, barrier - 1]))
                .wait();
        }
    }
}

/// What a received frame is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// The next message of the peer's stream, to pass on.
    Data(&'a [u8]),
    /// The peer acknowledges every frame of ours below this number.
    Ack(u64),
    /// The peer probes its stream at `barrier`; `next` is what this side expects of it.
    Probe { barrier: u64, next: u64 },
    /// The peer answers our probe at `barrier`: it expects `next`.
    Answer { next: u64, barrier: u64 },
    /// Nothing to pass on: a duplicate, a frame after a gap (sent again later), or a frame
    /// that is not ours.
    Skip,
}

/// The receiving side of a numbered stream.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    expected: u64,
    frames_since_ack: u32,
    bytes_since_ack: usize,
}

impl Incoming {
    /// Reads `frame`; with it, the acknowledgement to send now, if one is due. Hand both to
    /// the stream going the other way: [`Outgoing::on_peer`] and [`Outgoing::reply`].
    pub(crate) fn accept<'a>(&mut self, frame: &'a [u8]) -> (Frame<'a>, Option<u64>) {
        let Some((&tag, rest)) = frame.split_first() else {
            return (Frame::Skip, None);
        };
        let Some((first, rest)) = rest.split_first_chunk::<8>() else {
            return (Frame::Skip, None);
        };
        let first = u64::from_le_bytes(*first);
        match tag {
            DATA if first == self.expected => {
                self.expected += 1;
                self.frames_since_ack += 1;
                self.bytes_since_ack += frame.len();
                let due = self.frames_since_ack >= ACK_FRAMES || self.bytes_since_ack >= ACK_BYTES;
                if due {
                    self.frames_since_ack = 0;
                    self.bytes_since_ack = 0;
                }
                (Frame::Data(rest), due.then_some(self.expected))
            }
            ACK if rest.is_empty() => (Frame::Ack(first), None),
            PROBE if rest.is_empty() => {
                // The answer acknowledges all there is.
                self.frames_since_ack = 0;
                self.bytes_since_ack = 0;
                let probe = Frame::Probe {
                    barrier: first,
                    next: self.expected,
                };
                (probe, None)
            }
            ANSWER => match rest.try_into() {
                Ok(barrier) => (
                    Frame::Answer {
                        next: first,
                        barrier: u64::from_le_bytes(barrier),
                    },
                    None,
                ),
                Err(_) => (Frame::Skip, None),
            },
            _ => (Frame::Skip, None),
        }
    }
}

/// A stream kept after its owner dropped it, what it keeps declared, and until when at most.
type Lingering = (Arc<Outgoing>, Instant, Box<dyn Send>);

/// The process's resend thread and the streams it looks at.
struct Resender {
    /// The streams, and whether the thread was woken since it last looked.
    streams: Mutex<(Vec<Weak<Outgoing>>, bool)>,
    lingering: Mutex<Vec<Lingering>>,
    wake: Condvar,
}

fn resender() -> &'static Resender {
    static RESENDER: OnceLock<Resender> = OnceLock::new();
    static STARTED: Once = Once::new();
    let r = RESENDER.get_or_init(|| Resender {
        streams: Mutex::new((Vec::new(), false)),
        lingering: Mutex::new(Vec::new()),
        wake: Condvar::new(),
    });
    STARTED.call_once(|| {
        // Were the thread not to start, lost frames would be sent again only on a reported
        // reconnection; nothing else depends on it.
        let _ = std::thread::Builder::new()
            .name("ipc-cluster-resend".into())
            .spawn(move || r.run());
    });
    r
}

impl Resender {
    fn enrol(&self, out: &Arc<Outgoing>) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.0.retain(|w| w.strong_count() > 0);
        streams.0.push(Arc::downgrade(out));
    }

    /// A stream has frames waiting again, or something to tell its peer.
    fn wake(&self) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.1 = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut busy = false;
        loop {
            let streams: Vec<Arc<Outgoing>> = {
                let mut guard = self.streams.lock().unwrap_or_else(|p| p.into_inner());
                if !guard.1 {
                    // Until woken, or the next look (a spurious wake-up only looks again).
                    let wait = if busy { TICK } else { PROBE_AFTER };
                    guard = self
                        .wake
                        .wait_timeout(guard, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                guard.1 = false;
                guard.0.iter().filter_map(Weak::upgrade).collect()
            };
            let now = Instant::now();
            busy = false;
            for s in streams {
                busy |= s.tick(now);
            }
            // Dropped outside the lock: dropping what a stream kept undeclares it in zenoh.
            let done: Vec<Lingering> = {
                let mut lingering = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
                let (done, keep) = lingering
                    .drain(..)
                    .partition(|(s, until, _)| now >= *until || s.settled());
                *lingering = keep;
                busy |= !lingering.is_empty();
                done
            };
            drop(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(z: &ZBytes) -> Vec<u8> {
        z.to_bytes().into_owned()
    }

    fn data(f: Frame<'_>) -> Option<u8> {
        match f {
            Frame::Data(p) => Some(p[0]),
            _ => None,
        }
    }

    #[test]
    fn frames_pass_once_in_order_and_a_gap_waits_for_the_frames_sent_again() {
        let mut out = Unacked::default();
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| bytes(&out.push(&[i; 3]))).collect();
        let mut inc = Incoming::default();
        assert_eq!(inc.accept(&frames[0]).0, Frame::Data(&[0; 3]));
        // Frame 1 lost with the transport: 2 comes after a gap.
        assert_eq!(inc.accept(&frames[2]).0, Frame::Skip);
        // After the reconnection, everything unacknowledged again, in order.
        let again: Vec<Vec<u8>> = out.frames.iter().map(|(_, f)| bytes(f)).collect();
        let passed: Vec<_> = again.iter().filter_map(|f| data(inc.accept(f).0)).collect();
        assert_eq!(passed, [1, 2, 3, 4], "frame 0 again is a duplicate");
        assert_eq!(inc.accept(&frames[4]).0, Frame::Skip);
    }

    #[test]
    fn acknowledgements_come_every_few_frames_or_bytes_and_trim_the_sender() {
        let mut out = Unacked::default();
        let mut inc = Incoming::default();
        let mut acks = Vec::new();
        for _ in 0..2 * ACK_FRAMES {
            let f = bytes(&out.push(b"x"));
            acks.extend(inc.accept(&f).1);
        }
        assert_eq!(acks, [u64::from(ACK_FRAMES), 2 * u64::from(ACK_FRAMES)]);
        let big = bytes(&out.push(&vec![7; ACK_BYTES]));
        assert_eq!(inc.accept(&big).1, Some(2 * u64::from(ACK_FRAMES) + 1));
        out.trim(2 * u64::from(ACK_FRAMES));
        assert_eq!(out.frames.len(), 1);
        out.trim(2 * u64::from(ACK_FRAMES) + 1);
        assert!(out.frames.is_empty());
    }

    #[test]
    fn a_probe_finds_the_lost_tail_and_acknowledges_a_delivered_one() {
        let mut out = Unacked::default();
        let mut inc = Incoming::default();
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| bytes(&out.push(&[i]))).collect();
        let start = Instant::now();
        let later = start + PROBE_AFTER;
        // Nothing due before frames have waited.
        assert_eq!(out.due(0, 0, start), Due::Nothing);
        // Frame 0 arrives; 1 and 2 are lost. A probe follows; its answer says 1 is expected.
        assert_eq!(data(inc.accept(&frames[0]).0), Some(0));
        let Due::Probe(barrier) = out.due(0, 0, later) else {
            panic!("no probe")
        };
        assert_eq!(barrier, 3);
        let probe = number_frame(PROBE, &[barrier]);
        let (Frame::Probe { barrier, next }, _) = inc.accept(&probe) else {
            panic!("not a probe")
        };
        assert_eq!((barrier, next), (3, 1));
        // Before the answer: nothing more (the probe is outstanding, not yet stale).
        assert_eq!(out.due(0, 0, later), Due::Nothing);
        assert_eq!(out.due(next, barrier, later), Due::Resend);
        let again: Vec<_> = out.frames.iter().map(|(_, f)| bytes(f)).collect();
        let passed: Vec<_> = again.iter().filter_map(|f| data(inc.accept(f).0)).collect();
        assert_eq!(passed, [1, 2]);

        // A tail that did arrive: the probe's answer acknowledges it, and nothing is re-sent.
        let last = bytes(&out.push(&[3]));
        assert_eq!(data(inc.accept(&last).0), Some(3));
        let now = later + PROBE_AFTER * 2;
        let Due::Probe(barrier) = out.due(1, 3, now) else {
            panic!("no probe")
        };
        let (Frame::Probe { next, .. }, _) = inc.accept(&number_frame(PROBE, &[barrier])) else {
            panic!("not a probe")
        };
        assert_eq!(next, 4);
        assert_eq!(out.due(next, barrier, now), Due::Nothing);
        assert!(out.frames.is_empty());
    }

    #[test]
    fn an_unanswered_probe_is_sent_again() {
        let mut out = Unacked::default();
        out.push(b"x");
        let start = Instant::now();
        assert_eq!(out.due(0, 0, start + PROBE_AFTER), Due::Probe(1));
        assert_eq!(out.due(0, 0, start + PROBE_AFTER * 3 / 2), Due::Nothing);
        assert_eq!(out.due(0, 0, start + PROBE_AFTER * 2), Due::Probe(1));
    }

    #[test]
    fn control_frames_and_foreign_bytes_are_read_as_such() {
        let mut inc = Incoming::default();
        assert_eq!(
            inc.accept(&number_frame(ACK, &[42])),
            (Frame::Ack(42), None)
        );
        assert_eq!(
            inc.accept(&number_frame(ANSWER, &[5, 9])).0,
            Frame::Answer {
                next: 5,
                barrier: 9
            }
        );
        assert_eq!(inc.accept(&[]).0, Frame::Skip);
        assert_eq!(inc.accept(&[DATA, 1, 2]).0, Frame::Skip);
        assert_eq!(inc.accept(&[9; 12]).0, Frame::Skip);
        assert_eq!(inc.accept(&number_frame(ACK, &[1, 2])).0, Frame::Skip);
    }
}
