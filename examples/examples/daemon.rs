//! A daemon child dies with its parent.
//!
//! Python:
//! ```python
//! def forever():
//!     while True:
//!         time.sleep(1)
//!
//! if __name__ == "__main__":
//!     p = Process(target=forever, daemon=True)
//!     p.start()
//!     print(f"Daemon child PID: {p.pid}")
//!     # the program ends here; the daemon child is terminated with it
//! ```
//!
//! To watch the daemon disappear, this example runs the parent itself as a child process: the
//! parent starts a daemon that would run forever, reports its pid and exits; then the first
//! process checks that the daemon is gone.
//!
//! Run with `cargo run --release --example daemon`.

use std::time::{Duration, Instant};

use ipc_core::{Process, ProcessIdentity};

fn forever(_: ()) {
    println!("Daemon {}: running forever", std::process::id());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn parent(_: ()) -> Result<ProcessIdentity, String> {
    let daemon = Process::builder().daemon(true).target(forever, ());
    daemon.start().map_err(|e| e.to_string())?;
    let pid = daemon.pid().ok_or("the daemon has no pid")?;
    let identity = ProcessIdentity::of_pid(pid)
        .map_err(|e| e.to_string())?
        .ok_or("the daemon is not running")?;
    // Give the daemon a moment to say hello, then leave without waiting for it.
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "Parent {}: daemon child PID {pid} is alive: {}; parent exits now",
        std::process::id(),
        identity.is_alive()
    );
    Ok(identity)
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let p = Process::builder().name("parent").target(parent, ());
    p.start()?;
    let daemon = p.join()?.map_err(anyhow::Error::msg)?;
    // The daemon is killed as its parent ends; allow the kernel a moment to deliver the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.is_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if daemon.is_alive() {
        anyhow::bail!("daemon {} outlived its parent", daemon.pid());
    }
    println!(
        "Main: daemon child PID {} is gone after its parent exited",
        daemon.pid()
    );
    Ok(())
}
