//! Scenario groups, one file each: `limit` (the hardware), the peers (`os`, `threads`,
//! `ipc_channel`, `iceoryx2`, `python`, the lock peers in `sync`, tokio's channels in
//! `awaits`), and ours. Each file has a `pub fn scenarios() -> Vec<Scenario>`; a new file is
//! one line in the list below.

use crate::scenario::Scenario;

macro_rules! groups {
    ($($group:ident,)*) => {
        $(pub mod $group;)*

        /// Every scenario, in report order (the groups in the order listed).
        ///
        /// ```
        /// let all = benches::all();
        /// let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        /// assert!(names.contains(&"limit.pingpong_rtt"));
        /// names.sort();
        /// names.dedup();
        /// assert_eq!(names.len(), all.len(), "names are unique");
        /// ```
        pub fn all() -> Vec<Scenario> {
            let mut v = Vec::new();
            $(v.extend($group::scenarios());)*
            v
        }
    };
}

groups! {
    limit,
    os,
    threads,
    ipc_channel,
    iceoryx2,
    core,
    python,
    sync,
    pool,
    manager,
    process,
    queue,
    // After `process`: the async scenarios leave the reactor's waiter threads running in this
    // process, and `ours.start_fork` refuses to fork a multi-threaded process.
    awaits,
    cluster,
    mpi,
}
