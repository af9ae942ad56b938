//! The `ipc-bench` harness: scenarios between real processes, each repeated, reported as median,
//! min and max, our paths paired with their hardware limits, and sweeps over payload sizes and
//! numbers of processes.
//!
//! | module | holds |
//! |---|---|
//! | [`scenario`] | what a scenario is: name, [`Unit`], a function returning one repeat's [`Outcome`] |
//! | [`harness`] | the two-process and team harness every scenario runs on: fork, ready handshake, warm-up, window, stop, checks |
//! | [`scenarios`] | the scenarios, one file per group |
//! | [`message`], [`shm`], [`primitive`] | the messages payload scenarios move, shared blocks, atomics |
//! | [`sweep`] | sweeps: one scenario per payload size or number of processes |
//! | [`runner`], [`pairs`] | running repeats and pairs (ours in alternation with its limit) |
//! | [`report`], [`compare`], [`plot`] | the table, the Markdown, the JSON document, the charts |
//! | [`pin`] | `--pin A,B` |
//!
//! ```
//! let names: Vec<String> = benches::all().into_iter().map(|s| s.name).collect();
//! assert!(names.iter().any(|n| n == "limit.pingpong_rtt"));
//! ```

pub mod compare;
pub mod harness;
pub mod message;
pub mod pairs;
pub mod pin;
pub mod plot;
pub mod primitive;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod scenarios;
pub mod shm;
pub mod sweep;

pub use scenario::{Config, Fairness, Figure, Outcome, Quantity, Repeat, Scenario, Unit};
pub use scenarios::all;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_block_bounds_are_checked() {
        let block = shm::SharedBlock::new(4096).unwrap();
        assert!(block.u64_at(4088).is_ok());
        assert!(block.u64_at(4089).is_err());
        assert!(block.u64_at(4092).is_err());
        assert!(block.u64_at(usize::MAX - 3).is_err());
        assert!(block.u64_slice_at(0, 512).is_ok());
        assert!(block.u64_slice_at(0, 513).is_err());
        assert!(block.u64_slice_at(8, usize::MAX).is_err());
        assert!(block.futex_at(4092).is_err());
        assert!(block.bytes_at(4096, 1).is_err());
        assert!(block.bytes_at(0, 4096).is_ok());
    }

    #[test]
    fn every_scenario_has_a_unique_name_and_every_pair_exists() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        for p in pairs::PAIRS {
            let unit = |name: &str| all.iter().find(|s| s.name == name).map(|s| s.unit);
            assert!(unit(p.ours).is_some(), "{}", p.ours);
            assert_eq!(unit(p.ours), unit(p.limit), "{} and {}", p.ours, p.limit);
            if let Some(floor) = p.floor {
                assert_eq!(unit(floor), unit(p.limit), "{floor} and {}", p.limit);
            }
        }
    }
}
