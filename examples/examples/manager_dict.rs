//! Four processes each add 1,000 increments to `counts["hits"]` through a manager's dict, with
//! the atomic `update_with` (Python needs an explicit lock for `d[k] += 1`), and append their
//! name to a shared list.
//!
//! Prints `4000` and the four names.

use ipc_core::Process;
use ipc_pool::{DictProxy, ListProxy, Manager};

fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

fn count_hits((counts, names, me): (DictProxy<String, u64>, ListProxy<String>, String)) {
    for _ in 0..1000 {
        counts
            .update_with("hits".to_string(), add_one)
            .expect("update");
    }
    names.push(me).expect("append");
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let manager = Manager::start()?;
    let counts = manager.dict::<String, u64>()?;
    let names = manager.list::<String>()?;
    let workers = ["Alice", "Bob", "Carol", "Dave"].map(|name| -> anyhow::Result<_> {
        // Proxies travel to the children as arguments (by their handles).
        let arg = (counts.clone(), names.clone(), name.to_string());
        let p = Process::new(count_hits, arg);
        p.start()?;
        Ok(p)
    });
    for w in workers {
        w?.join()?;
    }
    println!("{}", counts.get(&"hits".to_string())?.unwrap_or(0));
    let mut who = names.snapshot()?;
    who.sort();
    println!("{}", who.join(", "));
    Ok(())
}
