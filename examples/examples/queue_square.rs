//! A child process computes `5 * 5` and puts it on a `Queue`; the parent prints `25`.
//!
//! Python's version:
//! ```python
//! def f(q):
//!     q.put(5 * 5)
//! q = Queue(); p = Process(target=f, args=(q,)); p.start(); print(q.get()); p.join()
//! ```
//!
//! The child is this program run again, with the queue's handle in an environment variable.

use std::process::Command;
use std::time::Duration;

use ipc_core::ObjectHandle;
use ipc_queue::Queue;

const CHILD: &str = "QUEUE_SQUARE_HANDLE";

fn child(handle: &str) -> anyhow::Result<()> {
    let handle: ObjectHandle = ipc_core::codec::decode(&from_hex(handle)?)?;
    let mut q = Queue::<u64>::open_producer(&handle)?;
    q.put(5 * 5).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    if let Ok(handle) = std::env::var(CHILD) {
        return child(&handle);
    }
    let mut q = Queue::<u64>::new(2)?;
    let handle = to_hex(&ipc_core::codec::encode(&q.handle())?);
    let mut p = Command::new(std::env::current_exe()?)
        .env(CHILD, handle)
        .spawn()?;
    let value = q.get_timeout(Duration::from_secs(60))?;
    println!("{value}");
    anyhow::ensure!(p.wait()?.success(), "the child failed");
    Ok(())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)?))
        .collect()
}
