//! The ipc-bench harness. Placeholder.
