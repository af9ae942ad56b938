//! Python's "sharing state between processes" example, with a `Value` and an `Array`:
//!
//! ```python
//! def f(n, a):
//!     n.value += 10
//!     for i in range(len(a)):
//!         a[i] += 1
//!
//! num = Value('i', 5)
//! arr = Array('i', [1, 2, 3])
//! p = Process(target=f, args=(num, arr)); p.start(); p.join()
//! print(num.value)
//! print(arr[:])
//! ```
//!
//! Prints `15` then `[2, 3, 4]`. The child is this program run again; the two objects travel
//! to it as their handles (serialised into an environment variable), as Python pickles them.
//!
//! Run with `cargo run -p examples --example shared_value_array`.

use std::process::Command;

use ipc_sync::{Array, OwnerDied, Value};

const CHILD: &str = "SHARED_VALUE_ARRAY_CHILD";

/// What the child runs: Python's `f(n, a)`.
/// (`get_lock()` returns `Err(OwnerDied)` only if an earlier holder died holding the lock; the
/// data is then taken as that holder left it.)
fn f(n: &Value<i32>, a: &Array<i32>) {
    n.get_lock()
        .unwrap_or_else(OwnerDied::into_inner)
        .update(|v| *v += 10);
    a.get_lock()
        .unwrap_or_else(OwnerDied::into_inner)
        .update(|xs| xs.iter_mut().for_each(|x| *x += 1));
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    if let Ok(args) = std::env::var(CHILD) {
        let (n, a): (Value<i32>, Array<i32>) = ipc_core::codec::decode(&from_hex(&args)?)?;
        f(&n, &a);
        return Ok(());
    }

    let num = Value::new(5i32)?;
    let arr = Array::from_slice(&[1i32, 2, 3])?;

    let args = to_hex(&ipc_core::codec::encode(&(&num, &arr))?);
    let status = Command::new(std::env::current_exe()?)
        .env(CHILD, args)
        .status()?;
    anyhow::ensure!(status.success(), "child failed: {status}");

    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    Ok(())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(s.get(i..i + 2).unwrap_or("x"), 16)?))
        .collect()
}
