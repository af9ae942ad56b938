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
//! `Process::new` moves `child_conn` to the child: the parent holds only its own end, as a
//! Python program that closes `child_conn` after `start`.

use ipc_core::Process;
use ipc_queue::{Connection, pipe};

fn f(mut conn: Connection) {
    conn.send(&vec![1, 2, 3]).expect("send");
    conn.close();
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let (mut parent_conn, child_conn) = pipe()?;
    let p = Process::new(f, child_conn);
    p.start()?;
    let v: Vec<i32> = parent_conn.recv()?;
    println!("{v:?}");
    p.join()?;
    Ok(())
}
