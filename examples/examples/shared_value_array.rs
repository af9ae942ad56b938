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
//! Prints `15` then `[2, 3, 4]`. The child gets its own handles of the two objects (Python
//! pickles them; here `try_clone` makes the second handle and `Process` moves it to the child).
//!
//! Run with `cargo run -p examples --example shared_value_array`.

use ipc_core::Process;
use ipc_sync::{Array, OwnerDied, Value};

/// Python's `f(n, a)`. (`get_lock()` returns `Err(OwnerDied)` only if an earlier holder died
/// holding the lock; the data is then taken as that holder left it.)
fn f((n, a): (Value<i32>, Array<i32>)) {
    n.get_lock()
        .unwrap_or_else(OwnerDied::into_inner)
        .update(|v| *v += 10);
    a.get_lock()
        .unwrap_or_else(OwnerDied::into_inner)
        .update(|xs| xs.iter_mut().for_each(|x| *x += 1));
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let num = Value::new(5i32)?;
    let arr = Array::from_slice(&[1i32, 2, 3])?;

    let p = Process::new(f, (num.try_clone()?, arr.try_clone()?));
    p.start()?;
    p.join()?;

    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    Ok(())
}
