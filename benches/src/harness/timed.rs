//! Operations timed in this process alone (creating a segment, starting a process, a pool's
//! `map`): a warm-up, then as many operations as fit in the window.

use std::time::Duration;

use super::window::Window;
use crate::scenario::Quantity;

/// Calls `op(0)`, `op(1)`, … through a warm-up and a window of `budget`; each call returns how
/// many items it handled. Returns the [`Window`]: [`Window::rate`] is items per second.
///
/// ```
/// use std::time::Duration;
/// let w = benches::harness::timed(Duration::from_millis(5), |_| Ok(10))?;
/// assert_eq!(w.count() % 10, 0);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn timed(
    budget: Duration,
    mut op: impl FnMut(u64) -> anyhow::Result<u64>,
) -> anyhow::Result<Window> {
    let mut window = Window::new(budget);
    let (mut calls, mut items) = (0u64, 0u64);
    loop {
        items += op(calls)?;
        calls += 1;
        if window.tick(items) {
            return Ok(window);
        }
    }
}

/// The time per call of `op` (each call one operation), through a warm-up and a window of
/// `budget`.
pub fn per_call(
    budget: Duration,
    mut op: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Quantity> {
    let w = timed(budget, |i| op(i).map(|()| 1))?;
    Ok(Quantity::Seconds(w.per_op()))
}
