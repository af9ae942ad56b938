//! A child process sends `[1, 2, 3]` through a `Pipe`; the parent prints `[1, 2, 3]`.
//!
//! Python's version:
//! ```python
//! def f(conn):
//!     conn.send([1, 2, 3]); conn.close()
//! parent_conn, child_conn = Pipe(); p = Process(target=f, args=(child_conn,)); p.start()
//! print(parent_conn.recv()); p.join()
//! ```
//!
//! The child is this program run again, with its end's handle in an environment variable.

use std::process::Command;
use std::time::Duration;

use ipc_queue::{Connection, ConnectionHandle, pipe};

const CHILD: &str = "PIPE_SEND_HANDLE";

fn child(handle: &str) -> anyhow::Result<()> {
    let handle: ConnectionHandle = ipc_core::codec::decode(&from_hex(handle)?)?;
    let mut conn = Connection::open(&handle)?;
    conn.send(&vec![1, 2, 3])?;
    conn.close();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    if let Ok(handle) = std::env::var(CHILD) {
        return child(&handle);
    }
    let (mut parent_conn, child_conn) = pipe()?;
    let handle = to_hex(&ipc_core::codec::encode(&child_conn.handle())?);
    let mut p = Command::new(std::env::current_exe()?)
        .env(CHILD, handle)
        .spawn()?;
    anyhow::ensure!(
        parent_conn.poll_timeout(Duration::from_secs(60))?,
        "the child sent nothing"
    );
    let v: Vec<i32> = parent_conn.recv()?;
    println!("{v:?}");
    drop(child_conn);
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
