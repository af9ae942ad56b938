//! ipc-bench. Placeholder.
fn main() {}
