//! A small custom pool built from the public parts: `Process` workers (ipc-core), one task
//! `Queue` per worker and a shared result `Queue` (ipc-queue), and a `Supervisor` (ipc-core)
//! that reports a worker's death at once. The policy is this example's own: tasks are pure, so
//! a dead worker's unanswered tasks are simply sent again to its replacement.
//!
//! One worker is SIGKILLed midway; the program prints the replacement and that every result
//! arrived, each correct.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ipc_core::Process;
use ipc_core::process::Supervisor;
use ipc_queue::Queue;

const TASKS: u64 = 400;
const WORKERS: usize = 2;
const IN_FLIGHT: usize = 16;

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    x * x
}

/// The worker loop: tasks in, `[task, result]` out, until its task queue is closed.
fn worker((mut tasks, mut results): (Queue<u64>, Queue<[u64; 2]>)) {
    while let Ok(x) = tasks.get() {
        if results.put([x, slow_square(x)]).is_err() {
            return;
        }
    }
}

struct Slot {
    process: Arc<Process<()>>,
    tasks: Queue<u64>,
    outstanding: VecDeque<u64>,
}

fn start_worker(id: usize, results: &Queue<[u64; 2]>, sup: &Supervisor) -> anyhow::Result<Slot> {
    let tasks = Queue::<u64>::new(IN_FLIGHT)?;
    let args = (
        Queue::<u64>::open_consumer(&tasks.handle())?,
        Queue::<[u64; 2]>::open_producer(&results.handle())?,
    );
    let process = Arc::new(
        Process::builder()
            .name(format!("Worker-{id}"))
            .daemon(true)
            .target(worker, args),
    );
    process.start()?;
    sup.watch(id as u64, Arc::clone(&process))?;
    Ok(Slot {
        process,
        tasks,
        outstanding: VecDeque::new(),
    })
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let sup = Supervisor::new()?;
    let mut results = Queue::<[u64; 2]>::new(256)?;
    let mut slots = (0..WORKERS)
        .map(|id| start_worker(id, &results, &sup))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut next = 0u64;
    let mut done: HashMap<u64, u64> = HashMap::new();
    let mut replaced = 0;
    while done.len() < TASKS as usize {
        // Hand out work to whoever has room.
        for slot in &mut slots {
            while next < TASKS && slot.outstanding.len() < IN_FLIGHT {
                slot.tasks.put(next).map_err(|e| anyhow::anyhow!("{e}"))?;
                slot.outstanding.push_back(next);
                next += 1;
            }
        }
        // A death: start a replacement and send it what the dead one left unanswered.
        while let Some(exit) = sup.try_next_exit() {
            let id = exit.id as usize;
            let lost: Vec<u64> = slots[id]
                .outstanding
                .drain(..)
                .filter(|t| !done.contains_key(t))
                .collect();
            let mut fresh = start_worker(id, &results, &sup)?;
            for &t in &lost {
                fresh.tasks.put(t).map_err(|e| anyhow::anyhow!("{e}"))?;
                fresh.outstanding.push_back(t);
            }
            println!(
                "worker {} ended with exit code {:?}; replaced by {}, {} tasks sent again",
                exit.pid,
                exit.exit_code,
                fresh.process.pid().unwrap_or(0),
                lost.len()
            );
            slots[id] = fresh;
            replaced += 1;
        }
        if let Ok([x, y]) = results.get_timeout(Duration::from_millis(10)) {
            done.insert(x, y);
            for slot in &mut slots {
                slot.outstanding.retain(|&t| t != x);
            }
            if done.len() == 100 && replaced == 0 {
                let victim = slots[0].process.pid().unwrap_or(0);
                println!("killing worker {victim} with SIGKILL");
                slots[0].process.kill()?;
            }
        }
    }
    let correct = (0..TASKS).all(|x| done.get(&x) == Some(&(x * x)));
    println!(
        "{} results, all correct: {correct}; workers replaced: {replaced}",
        done.len()
    );
    for slot in &mut slots {
        slot.tasks.close(); // the workers see the queue disconnected and return
    }
    for slot in &slots {
        slot.process.join_timeout(Duration::from_secs(10))?;
    }
    anyhow::ensure!(correct, "wrong results");
    Ok(())
}
