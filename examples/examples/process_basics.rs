//! The seed of `multiprocessing`: two worker processes print their pids.
//!
//! Python:
//! ```python
//! def worker(name):
//!     print(f"Worker {name}: My process ID is {os.getpid()}")
//!
//! if __name__ == "__main__":
//!     print(f"Main process ID: {os.getpid()}")
//!     processes = [Process(target=worker, args=(n,)) for n in ("Alice", "Bob")]
//!     for p in processes: p.start()
//!     for p in processes: p.join()
//!     print("All worker processes finished.")
//! ```
//!
//! Run with `cargo run --release --example process_basics`.

use ipc_core::Process;

fn worker(name: String) {
    println!("Worker {name}: My process ID is {}", std::process::id());
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    println!("Main process ID: {}", std::process::id());
    let processes: Vec<Process<()>> = ["Alice", "Bob"]
        .into_iter()
        .map(|name| Process::new(worker, name.to_string()))
        .collect();
    for p in &processes {
        p.start()?;
    }
    for p in &processes {
        p.join()?;
    }
    println!("All worker processes finished.");
    Ok(())
}
