//! An async service: a worker *process* feeds requests into a `Queue`, a thousand tokio tasks
//! await them (`get_async`), and each answers over a `Connection` (`send_async`) that the
//! worker reads back; the worker's verdict comes back over the same pipe (`recv_async`) and
//! its result through `join_async`. No thread blocks while the tasks wait: the queue's and the
//! pipe's futures are woken by the same shared futex words their blocking forms sleep on.
//!
//! Python's asyncio has no multiprocessing queue: a coroutine hands `q.get()` to a thread
//! (`loop.run_in_executor`), one thread per waiting coroutine.
//!
//! Run with `cargo run -p examples --example async_service`.

use std::time::Duration;

use ipc_core::Process;
use ipc_queue::{Connection, PipeBuilder, Queue};

const TASKS: u64 = 1000;

/// The worker: puts one request per task (the queue holds 64, so it waits for the tasks to
/// take them), then reads and checks every answer, says so over the pipe and returns the sum.
fn worker((mut requests, mut answers): (Queue<u64>, Connection)) -> u64 {
    for i in 0..TASKS {
        requests.put(i).expect("a task is alive to take it");
    }
    let mut seen = vec![false; TASKS as usize];
    let mut sum = 0;
    for _ in 0..TASKS {
        let (x, y): (u64, u64) = answers.recv().expect("an answer");
        assert_eq!(y, x * x, "the answer to {x}");
        assert!(!std::mem::replace(&mut seen[x as usize], true), "{x} twice");
        sum += y;
    }
    answers
        .send(&format!("the worker checked {TASKS} answers"))
        .expect("the service is listening");
    sum
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // Each task holds a handle of the queue and of the pipe end: room for all of them.
    let requests = Queue::<u64>::builder(64).participants(2048).create()?;
    let (mut service, theirs) = PipeBuilder::new().participants(2048).create()?;
    let child = Process::new(worker, (requests.try_clone()?, theirs));
    child.start()?;

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let mut q = requests.try_clone()?;
            let mut c = service.try_clone()?;
            Ok(tokio::spawn(async move {
                let x = q.get_async().await?;
                c.send_async(&(x, x * x)).await?;
                anyhow::Ok(())
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    println!("{TASKS} tasks await the queue the worker process feeds");
    let mut answered = 0;
    for t in tasks {
        t.await??;
        answered += 1;
    }
    println!("{answered} requests answered over the pipe");
    let verdict: String = service.recv_timeout_async(Duration::from_secs(60)).await?;
    println!("{verdict}");
    let sum = child.join_async().await?;
    println!("sum of the squares: {sum}");
    Ok(())
}
