//! A child process computes `5 * 5` and puts it on a `Queue`; the parent prints `25`.
//!
//! Python's version:
//! ```python
//! def f(q):
//!     q.put(5 * 5)
//! q = Queue(); p = Process(target=f, args=(q,)); p.start(); print(q.get()); p.join()
//! ```
//!
//! Python pickles the queue into the child's arguments and keeps its own; here `try_clone`
//! makes the child's handle and `Process::new` moves it there.

use ipc_core::Process;
use ipc_queue::Queue;

fn f(mut q: Queue<u64>) {
    q.put(5 * 5).expect("put");
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let mut q = Queue::<u64>::new(2)?;
    let p = Process::new(f, q.try_clone()?);
    p.start()?;
    println!("{}", q.get()?);
    p.join()?;
    Ok(())
}
