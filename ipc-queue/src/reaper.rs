//! The reaper: removes the spill segments of a serde queue whose last handles were killed, on
//! behalf of a process that dropped its own handle while others were still attached.
//!
//! The last handle of a serde queue to drop removes the spill segments of the messages nobody
//! got (`Queue`'s `Drop`). But the last handle may be SIGKILLed instead: a pool worker killed by
//! `terminate` while its task queue still holds large tasks, or a child killed while its
//! parent's handle is already gone. Nothing of the dead process runs, and the names it would have
//! removed stay in `/dev/shm`. So a handle that drops while other handles of *other* processes
//! are still attached does not just walk away: it leaves a watch to this process's reaper, a
//! background thread that keeps one handle of the queue (with no role, so it counts neither as a
//! producer nor as a consumer, and changes nobody's `Disconnected`), checks every [`SLICE`]
//! whether any participant with a role is still alive, and once none is, drains the queue
//! (removing every spill it names, recovering slots that dead claimers left) and lets go.
//!
//! | event                                                     | what happens                              |
//! |-----------------------------------------------------------|-------------------------------------------|
//! | a serde handle drops, no other participant alive          | it drains the queue itself (`Drop`)        |
//! | it drops, another handle of this process lives            | nothing: that handle drops later (or leaves its own watch) |
//! | it drops, only other processes' handles live              | a watch: a role-less handle goes to the reaper thread (one per queue per process) |
//! | the reaper finds no participant with a role alive         | it drains the queue, drops its handle, and ends when it watches nothing |
//! | a new participant attaches meanwhile                      | the watch goes on until that one is gone too |
//!
//! What it cannot cover: when every process that ever held a handle of the queue ends with
//! messages still inside and none of them drops its handle last (all killed, or the processes
//! that dropped theirs have exited before the last holder was killed), no process is left to
//! drain it, and the spill names of those messages stay (see the README's known limits).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::raw_queue::RawQueue;

/// How often the reaper looks at the queues it watches.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

struct Reaper {
    /// The fork generation the state belongs to: a fork child starts afresh (it has no thread).
    generation: u64,
    /// The queues watched, by id: a role-less handle of each.
    watched: HashMap<u128, RawQueue>,
    /// Whether the thread runs.
    running: bool,
    /// Serde handles alive in this process, by queue id.
    live: HashMap<u128, usize>,
}

static REAPER: Mutex<Option<Reaper>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Reaper) -> R) -> R {
    let mut guard = REAPER.lock().unwrap_or_else(|p| p.into_inner());
    let generation = crate::fork::generation();
    if guard.as_ref().is_none_or(|r| r.generation != generation) {
        // A fork child inherits its parent's map but not its thread: its copies of the
        // watched handles act in its parent's name, so they are let go (their drops release
        // nothing in a fork child).
        *guard = Some(Reaper {
            generation,
            watched: HashMap::new(),
            running: false,
            live: HashMap::new(),
        });
    }
    f(guard.as_mut().expect("just set"))
}

/// A serde handle of queue `id` was made in this process.
pub(crate) fn opened(id: u128) {
    with(|r| *r.live.entry(id).or_insert(0) += 1);
}

/// A serde handle of queue `id` is dropping; `true` if it is the last one of this process.
pub(crate) fn closing(id: u128) -> bool {
    with(|r| match r.live.get_mut(&id) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        _ => {
            r.live.remove(&id);
            true
        }
    })
}

/// Leaves `raw` (a role-less handle of a queue whose other participants are in other processes)
/// to the reaper, which drains the queue once they are all gone.
pub(crate) fn watch(mut raw: RawQueue) {
    raw.set_role(0);
    let id = raw.id();
    let start = with(|r| {
        if r.watched.contains_key(&id) {
            return None;
        }
        r.watched.insert(id, raw);
        let start = !r.running;
        r.running = true;
        Some(start)
    });
    if start == Some(true)
        && std::thread::Builder::new()
            .name("ipc-queue-reaper".into())
            .spawn(run)
            .is_err()
    {
        // No thread: the watch stays with the next one that starts.
        with(|r| r.running = false);
    }
}

fn run() {
    loop {
        std::thread::sleep(SLICE);
        let (done, stop): (Vec<RawQueue>, bool) = with(|r| {
            let ids: Vec<u128> = r
                .watched
                .iter_mut()
                .filter_map(|(id, q)| (!q.others_alive()).then_some(*id))
                .collect();
            let done = ids.iter().filter_map(|id| r.watched.remove(id)).collect();
            // Decided under the lock: a watch that comes after this starts a thread of its own.
            let stop = r.watched.is_empty();
            if stop {
                r.running = false;
            }
            (done, stop)
        });
        for mut q in done {
            q.discard_all();
        }
        if stop {
            return;
        }
    }
}
