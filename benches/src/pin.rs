//! `--pin A,B`: the parent process of every two-process scenario runs on CPU `A`, the forked
//! child on CPU `B` (`sched_setaffinity`), and the report says whether the kernel agreed.
//!
//! ```
//! assert_eq!(benches::pin::parse_pin("0,1"), Ok((0, 1)));
//! assert!(benches::pin::parse_pin("0").is_err());
//! ```

use std::sync::OnceLock;

/// The CPU the forked children pin themselves to, set once by [`pin_parent`].
static CHILD_CPU: OnceLock<usize> = OnceLock::new();

/// The CPUs this process could use before [`pin_parent`] pinned it: the children of a team
/// (more processes than two CPUs) run on all of them.
static ALL_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Parses `A,B` (two CPU numbers, which may be equal).
///
/// ```
/// use benches::pin::parse_pin;
/// assert_eq!(parse_pin(" 2 , 3 "), Ok((2, 3)));
/// assert_eq!(parse_pin("1,1"), Ok((1, 1)));
/// assert!(parse_pin("a,1").is_err());
/// assert!(parse_pin("1,2,3").is_err());
/// assert!(parse_pin("1,-2").is_err());
/// ```
pub fn parse_pin(s: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [a, b] = parts[..] else {
        return Err(format!("--pin wants two CPUs, A,B: {s:?}"));
    };
    let cpu = |p: &str| {
        p.parse::<usize>()
            .ok()
            .filter(|&c| c < libc::CPU_SETSIZE as usize)
            .ok_or_else(|| format!("--pin: not a CPU number: {p:?}"))
    };
    Ok((cpu(a)?, cpu(b)?))
}

/// Pins the calling thread (the whole process, when it is single-threaded) to `cpu` and reads
/// the affinity back: `Ok(())` only if it is now exactly `{cpu}`.
pub fn pin_current(cpu: usize) -> Result<(), String> {
    set_cpus(&[cpu])
}

/// Lets the calling thread run on exactly `cpus`, and reads the affinity back.
fn set_cpus(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(format!("CPU {cpu} is out of range"));
        }
        // SAFETY: `cpu` < CPU_SETSIZE was checked above, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if r != 0 {
        return Err(format!(
            "sched_setaffinity({cpus:?}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let now = current_cpus()?;
    if now != cpus {
        return Err(format!(
            "asked for CPUs {cpus:?}, the kernel allows {now:?}"
        ));
    }
    Ok(())
}

/// The CPUs the calling thread may run on.
///
/// ```
/// assert!(!benches::pin::current_cpus().unwrap().is_empty());
/// ```
pub fn current_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: as in `pin_current`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-parameter of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| {
            // SAFETY: `c` < CPU_SETSIZE, so the bit lies inside `set`.
            unsafe { libc::CPU_ISSET(c, &set) }
        })
        .collect())
}

/// Pins this process to `parent` and arranges for every child of [`fork_child`](crate::harness::fork_child)
/// to pin itself to `child`. Returns a description for the report: `"parent on CPU 0, child on
/// CPU 1"` when the parent's pin took (a child whose pin does not take fails its scenario), or
/// the reason it did not.
pub fn pin_parent(parent: usize, child: usize) -> Result<String, String> {
    let all = current_cpus()?;
    pin_current(parent)?;
    let _ = ALL_CPUS.set(all);
    // The children check their own pin as they start; the first call wins.
    let _ = CHILD_CPU.set(child);
    Ok(format!("parent on CPU {parent}, child on CPU {child}"))
}

/// Called by a freshly forked child: pins it to the CPU chosen by [`pin_parent`], if any.
pub(crate) fn pin_child() -> anyhow::Result<()> {
    if let Some(&cpu) = CHILD_CPU.get() {
        pin_current(cpu).map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
    }
    Ok(())
}

/// Called by a freshly forked member of a team: undoes the parent's pin, so that the team
/// spreads over every CPU the run may use.
pub(crate) fn unpin_child() -> anyhow::Result<()> {
    if let Some(all) = ALL_CPUS.get() {
        set_cpus(all).map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
    }
    Ok(())
}

/// The CPU children pin to, if `--pin` was given (for scenarios that start threads instead of
/// processes).
pub fn child_cpu() -> Option<usize> {
    CHILD_CPU.get().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_a_thread_to_a_cpu_it_may_use() {
        // A fresh thread, so the test harness's other threads keep their affinity.
        std::thread::spawn(|| {
            let cpus = current_cpus().unwrap();
            let cpu = *cpus.last().unwrap();
            pin_current(cpu).unwrap();
            assert_eq!(current_cpus().unwrap(), [cpu]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn an_impossible_pin_says_why() {
        let err = std::thread::spawn(|| pin_current(libc::CPU_SETSIZE as usize - 1))
            .join()
            .unwrap();
        assert!(err.is_err());
        assert!(
            std::thread::spawn(|| set_cpus(&[]))
                .join()
                .unwrap()
                .is_err()
        );
        assert!(parse_pin(&format!("0,{}", libc::CPU_SETSIZE)).is_err());
    }
}
