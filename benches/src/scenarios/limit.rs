//! `limit.*`: what the hardware allows, the baselines every other scenario is compared with.

use crate::Scenario;

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
