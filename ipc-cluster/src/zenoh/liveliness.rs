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

use std::collections::{HashMap, HashSet};
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
    watch_with(session, key_expr, None, on)
}

/// [`watch`] for tokens whose key ends in `<zenoh id of the owner>-<suffix>` (a master's, a
/// host's): besides what zenoh reports, a token whose owner has no transport to this session
/// counts as removed (then as declared again, [`Change::Resumed`], if the owner comes back
/// within the grace). zenoh's own report is not always enough: a host was seen waiting for
/// hours on a master killed during a reconnection, its token never reported removed.
pub(crate) fn watch_owners(
    session: &Session,
    key_expr: String,
    on: impl FnMut(&str, Change) + Send + 'static,
) -> zenoh::Result<Subscriber<()>> {
    let s = session.clone();
    let connected = move || -> HashSet<String> {
        let mut ids: HashSet<String> = s.info().peers_zid().wait().map(|z| z.to_string()).collect();
        // A token of this very session (a master and a host on one node) is always reachable.
        ids.insert(s.zid().to_string());
        ids
    };
    watch_with(session, key_expr, Some(Box::new(connected)), on)
}

/// The zenoh id of a token's owner, for keys ending in `<zenoh id>-<suffix>`.
fn owner_of(key: &str) -> Option<&str> {
    let last = key.rsplit('/').next()?;
    last.split_once('-').map(|(zid, _)| zid)
}

/// The zenoh ids this session has a transport to, asked anew at each look.
type Connected = Box<dyn FnMut() -> HashSet<String> + Send>;

/// How often the owners' transports are looked at.
const LOOK: Duration = Duration::from_millis(250);

fn watch_with(
    session: &Session,
    key_expr: String,
    connected: Option<Connected>,
    on: impl FnMut(&str, Change) + Send + 'static,
) -> zenoh::Result<Subscriber<()>> {
    let (tx, rx) = mpsc::channel::<Report>();
    std::thread::Builder::new()
        .name("ipc-cluster-liveliness".into())
        .spawn(move || deliver(rx, GRACE, connected, on))
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

/// Why a token counts as removed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// zenoh reported it.
    Reported,
    /// Its owner has no transport to this session.
    Unreachable,
}

/// The watcher's thread: passes declarations on at once and removals once they have stood for
/// `grace` ([`GRACE`]); with `connected`, looks every [`LOOK`] whether each token's owner is
/// reachable. Ends when the subscriber (and its sender) is dropped.
fn deliver(
    rx: mpsc::Receiver<Report>,
    grace: Duration,
    mut connected: Option<Connected>,
    mut on: impl FnMut(&str, Change),
) {
    // The tokens declared, and the removals waiting out their grace (since when, and why).
    let mut present: HashSet<String> = HashSet::new();
    let mut pending: HashMap<String, (Instant, Why)> = HashMap::new();
    loop {
        let mut next_due = pending.values().map(|&(at, _)| at + grace).min();
        if connected.is_some() && !present.is_empty() {
            let look = Instant::now() + LOOK;
            next_due = Some(next_due.map_or(look, |d| d.min(look)));
        }
        let report = match next_due {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        match report {
            Ok(Report::Put(key)) => {
                present.insert(key.clone());
                let change = match pending.remove(&key) {
                    Some(_) => Change::Resumed,
                    None => Change::Present,
                };
                on(&key, change);
            }
            Ok(Report::Delete(key, at)) => {
                let e = pending.entry(key).or_insert((at, Why::Reported));
                e.1 = Why::Reported;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if let Some(connected) = connected.as_mut().filter(|_| !present.is_empty()) {
            let reachable = connected();
            for key in &present {
                let Some(owner) = owner_of(key) else { continue };
                match (reachable.contains(owner), pending.get(key)) {
                    (false, None) => {
                        pending.insert(key.clone(), (now, Why::Unreachable));
                    }
                    (true, Some(&(_, Why::Unreachable))) => {
                        // Back within the grace, and zenoh reported nothing either way.
                        pending.remove(key);
                        on(key, Change::Resumed);
                    }
                    _ => {}
                }
            }
        }
        let due: Vec<(String, Instant)> = pending
            .iter()
            .filter(|&(_, &(at, _))| now >= at + grace)
            .map(|(k, &(at, _))| (k.clone(), at))
            .collect();
        for (key, since) in due {
            pending.remove(&key);
            present.remove(&key);
            on(&key, Change::Gone { since });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Runs `deliver` over `reports` sent with the given pauses (before each), collecting what it
    /// passes on, with the time since the start.
    fn run(reports: Vec<(Duration, Report)>) -> Vec<(String, Change, Duration)> {
        let (tx, rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::channel();
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            deliver(rx, GRACE, None, move |key, change| {
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

    /// Runs `deliver` with owners reachable as `reachable` says (changed by `steps`, each after
    /// its pause), collecting what it passes on.
    fn run_owners(
        grace: Duration,
        keys: &[&str],
        steps: Vec<(Duration, &'static str, bool)>,
    ) -> Vec<(String, Change)> {
        let reachable: Arc<Mutex<HashSet<String>>> = Arc::default();
        let r = Arc::clone(&reachable);
        let connected: Connected = Box::new(move || r.lock().unwrap().clone());
        reachable
            .lock()
            .unwrap()
            .extend(["A".to_owned(), "B".to_owned()]);
        let (tx, rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            deliver(rx, grace, Some(connected), move |key, change| {
                out_tx.send((key.to_owned(), change)).unwrap();
            })
        });
        for key in keys {
            tx.send(Report::Put((*key).to_owned())).unwrap();
        }
        for (pause, owner, up) in steps {
            std::thread::sleep(pause);
            let mut r = reachable.lock().unwrap();
            if up {
                r.insert(owner.to_owned());
            } else {
                r.remove(owner);
            }
        }
        std::thread::sleep(grace + LOOK * 2);
        drop(tx);
        t.join().unwrap();
        out_rx.try_iter().collect()
    }

    #[test]
    fn a_token_whose_owner_is_unreachable_is_gone_after_the_grace_though_zenoh_said_nothing() {
        let out = run_owners(
            Duration::from_millis(300),
            &["j/master/A-1", "j/master/B-1"],
            vec![(Duration::ZERO, "B", false)],
        );
        assert!(out.contains(&("j/master/B-1".into(), Change::Present)));
        assert!(
            out.iter()
                .any(|(k, c)| k == "j/master/B-1" && matches!(c, Change::Gone { .. })),
            "{out:?}"
        );
        assert!(
            out.iter()
                .all(|(k, c)| k != "j/master/A-1" || *c == Change::Present)
        );
    }

    #[test]
    fn an_owner_back_within_the_grace_is_resumed_not_gone() {
        // A long grace: the owner is back well within it even on a loaded machine.
        let out = run_owners(
            Duration::from_secs(3),
            &["j/master/A-1"],
            vec![(Duration::ZERO, "A", false), (LOOK * 3, "A", true)],
        );
        let changes: Vec<_> = out.iter().map(|(_, c)| *c).collect();
        assert_eq!(changes, [Change::Present, Change::Resumed]);
    }
}
