//! Liveliness that holds: zenoh reports a token's removal when the transport (the connection)
//! to its owner closes, and its declaration again when a new transport opens, though the owner
//! lived throughout (a connection that failed and was made again: zenoh's TLS link fails now and
//! then under load, and the peer reconnects within milliseconds). Acting on such a removal fails
//! a live host's chunks (`HostLost`) or ends a live pipe (`Gone`). So every watcher of the
//! backend goes through [`watch`]: a declaration is passed on at once, a removal only once no
//! declaration of the same key has followed for [`GRACE`]; a declaration within the grace of a
//! removal is passed on as [`Change::Resumed`] (what was in flight may be lost, and
//! [`super::reliable`] sends it again).
//!
//! The changes are passed on by one thread per watcher, in the order zenoh reported them, outside
//! zenoh's callback threads (so a handler may call into zenoh). A real removal (a dropped or
//! killed peer) is therefore seen `GRACE` late, with the instant zenoh reported it.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use zenoh::Session;
use zenoh::Wait;
use zenoh::pubsub::Subscriber;
use zenoh::sample::SampleKind;

/// How long a removal must stand, with no declaration of the key after it, to count: long
/// enough for a live peer to open a new transport after its connection failed (it tries at once,
/// then after 50, 100, 200 and 400 ms: the node's retry settings), even when a second
/// failure meets the first attempt.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// A change of one key's token that holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Declared (for the first time, or again after a removal that was passed on).
    Present,
    /// Declared again within the grace of its removal: the token's owner lives, but the
    /// transport to it was closed and opened again, and what was in flight on it may be lost
    /// (see [`super::reliable`]).
    Resumed,
    /// Removed at `since`, and not declared again for [`GRACE`] after it.
    Gone { since: Instant },
}

/// What zenoh reported, in order.
enum Report {
    Put(String),
    Delete(String, Instant),
}

/// Declares a liveliness subscriber on `key_expr` (with the tokens already declared) whose
/// changes, debounced as the module docs say, go to `on` with the token's key.
pub(crate) fn watch(
    session: &Session,
    key_expr: String,
    on: impl FnMut(&str, Change) + Send + 'static,
) -> zenoh::Result<Subscriber<()>> {
    let (tx, rx) = mpsc::channel::<Report>();
    std::thread::Builder::new()
        .name("ipc-cluster-liveliness".into())
        .spawn(move || deliver(rx, on))
        .map_err(|e| -> zenoh::Error { Box::new(e) })?;
    session
        .liveliness()
        .declare_subscriber(key_expr)
        .history(true)
        .callback(move |sample| {
            let key = sample.key_expr().as_str().to_owned();
            let _ = tx.send(match sample.kind() {
                SampleKind::Put => Report::Put(key),
                SampleKind::Delete => Report::Delete(key, Instant::now()),
            });
        })
        .wait()
}

/// The watcher's thread: passes declarations on at once and removals once they have stood for
/// [`GRACE`]; ends when the subscriber (and its sender) is dropped.
fn deliver(rx: mpsc::Receiver<Report>, mut on: impl FnMut(&str, Change)) {
    // Removals waiting out their grace, by key: when zenoh reported each.
    let mut pending: HashMap<String, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().map(|&at| at + GRACE);
        let report = match next_due {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        match report {
            Ok(Report::Put(key)) => {
                let change = match pending.remove(&key) {
                    Some(_) => Change::Resumed,
                    None => Change::Present,
                };
                on(&key, change);
            }
            Ok(Report::Delete(key, at)) => {
                pending.entry(key).or_insert(at);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let due: Vec<(String, Instant)> = pending
            .iter()
            .filter(|&(_, &at)| now >= at + GRACE)
            .map(|(k, &at)| (k.clone(), at))
            .collect();
        for (key, since) in due {
            pending.remove(&key);
            on(&key, Change::Gone { since });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `deliver` over `reports` sent with the given pauses (before each), collecting what it
    /// passes on, with the time since the start.
    fn run(reports: Vec<(Duration, Report)>) -> Vec<(String, Change, Duration)> {
        let (tx, rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::channel();
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            deliver(rx, move |key, change| {
                out_tx
                    .send((key.to_owned(), change, start.elapsed()))
                    .unwrap();
            })
        });
        for (pause, report) in reports {
            std::thread::sleep(pause);
            tx.send(report).unwrap();
        }
        // Long enough for a last removal to stand, then end the watcher.
        std::thread::sleep(GRACE * 2);
        drop(tx);
        t.join().unwrap();
        out_rx.try_iter().collect()
    }

    #[test]
    fn a_removal_followed_by_a_declaration_within_the_grace_is_passed_on_as_resumed() {
        let now = Instant::now();
        let out = run(vec![
            (Duration::ZERO, Report::Put("k".into())),
            (Duration::ZERO, Report::Delete("k".into(), now)),
            (GRACE / 4, Report::Put("k".into())),
        ]);
        let changes: Vec<_> = out.iter().map(|(k, c, _)| (k.as_str(), *c)).collect();
        assert_eq!(changes, [("k", Change::Present), ("k", Change::Resumed)]);
    }

    #[test]
    fn a_removal_that_stands_is_passed_on_after_the_grace_with_its_instant() {
        let out = run(vec![
            (Duration::ZERO, Report::Put("a".into())),
            (Duration::ZERO, Report::Put("b".into())),
            (Duration::ZERO, Report::Delete("a".into(), Instant::now())),
        ]);
        let gone: Vec<_> = out
            .iter()
            .filter(|(_, c, _)| matches!(c, Change::Gone { .. }))
            .collect();
        assert_eq!(gone.len(), 1, "{out:?}");
        let (key, _, after) = gone[0];
        assert_eq!(key, "a");
        assert!(*after >= GRACE, "passed on after {after:?}");
        // `b` was never removed.
        assert!(
            out.iter()
                .all(|(k, c, _)| k != "b" || *c == Change::Present)
        );
    }
}
