//! The subclass form: a struct whose `run` is the child's body.
//!
//! Python:
//! ```python
//! class MyProcess(Process):
//!     def run(self):
//!         for i in range(1, 6):
//!             print(f"Process {self.name}: {i}")
//!
//! if __name__ == "__main__":
//!     processes = [MyProcess() for _ in range(2)]
//!     for p in processes: p.start()
//!     for p in processes: p.join()
//! ```
//!
//! Run with `cargo run --release --example process_subclass`.

use ipc_core::{Process, Runnable};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct MyProcess {
    count: u32,
}

impl Runnable for MyProcess {
    type Output = ();

    fn run(self) {
        let name = ipc_core::current_process().name;
        for i in 1..=self.count {
            println!("Process {name}: {i}");
        }
    }
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let processes: Vec<Process<()>> = (0..2)
        .map(|_| Process::from_runnable(MyProcess { count: 5 }))
        .collect();
    for p in &processes {
        p.start()?;
    }
    for p in &processes {
        p.join()?;
    }
    Ok(())
}
