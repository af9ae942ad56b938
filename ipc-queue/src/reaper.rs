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
use std::time::Duration;

use ipc_core::raw::os::ForkLocal;

use crate::raw_queue::RawQueue;

/// How often the reaper looks at the queues it watches.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Reaper {
    /// The queues watched, by id: a role-less handle of each.
    watched: HashMap<u128, RawQueue>,
    /// Whether the thread runs.
    running: bool,
    /// Serde handles alive in this process, by queue id.
    live: HashMap<u128, usize>,
}

/// The reaper's state. A fork child starts afresh: it has no reaper thread, its parent's
/// thread may have held the lock at the fork (a plain `Mutex` would then stay locked in the
/// child for ever), and its copies of the watched handles act in its parent's name, so they
/// are left as they are.
static REAPER: ForkLocal<Reaper> = ForkLocal::new(Reaper::default);

fn with<R>(f: impl FnOnce(&mut Reaper) -> R) -> R {
    f(&mut REAPER.lock())
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::with;
    use crate::{Queue, Serde};

    /// The reaper thread looks at its queues under the reaper's lock every slice; a process
    /// that forks at that moment (a pool starting a worker, a benchmark starting its clients)
    /// must not leave its child waiting for ever on that lock when the child makes a queue.
    #[test]
    fn a_fork_child_makes_a_serde_queue_while_a_parent_thread_holds_the_reaper() {
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            with(|_| {
                held_tx.send(()).unwrap();
                go_rx.recv().unwrap();
            });
        });
        held_rx.recv().unwrap();
        let code = ipc_testkit::process::fork_exit_code_within(Duration::from_secs(20), || {
            let Ok(mut q) = Queue::<String, Serde>::new(4) else {
                return false;
            };
            let sent = q.put("made in the child".to_string()).is_ok();
            sent && q.get().is_ok_and(|s| s == "made in the child")
        });
        go_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(code, Some(0), "the child hung on the parent's reaper lock");
    }
}
