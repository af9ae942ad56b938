//! Four processes, each printing its pid and its number.
//!
//! Python:
//! ```python
//! def print_number(n):
//!     print(f"Process ID: {os.getpid()}, Number: {n}")
//!
//! if __name__ == "__main__":
//!     processes = [Process(target=print_number, args=(n,)) for n in range(1, 5)]
//!     for p in processes: p.start()
//!     for p in processes: p.join()
//! ```
//!
//! Run with `cargo run --release --example print_numbers`.

use ipc_core::Process;

fn print_number(n: u32) {
    println!("Process ID: {}, Number: {n}", std::process::id());
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let processes: Vec<Process<()>> = (1..=4).map(|n| Process::new(print_number, n)).collect();
    for p in &processes {
        p.start()?;
    }
    for p in &processes {
        p.join()?;
    }
    Ok(())
}
