//! The descriptor limit.

/// Raises this process's soft limit on open descriptors to its hard limit (each handle attached
/// to a segment holds a descriptor; tests that attach thousands of handles need more than the
/// usual soft limit of 1,024). Returns the new soft limit (0 if it cannot be read).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    lim.rlim_cur
}

/// Lowers this process's soft descriptor limit (to 64 at most) and opens `/dev/null` until
/// `EMFILE`, so that no further descriptor (not even one to read `/proc`) can be opened, as for
/// a server at its `RLIMIT_NOFILE`. Returns the descriptors (keep them open; dropping some frees
/// room again). Panics if the limit is not reached.
pub fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_cur.min(64);
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open /dev/null: {e}"),
        }
        assert!(files.len() < 4096, "the descriptor limit was not reached");
    }
    let proc_read = std::fs::File::open("/proc/self/stat");
    assert_eq!(
        proc_read.err().and_then(|e| e.raw_os_error()),
        Some(libc::EMFILE),
        "/proc must be unreadable for the scenario to mean anything"
    );
    files
}
