//! The harness every scenario runs on. A scenario file holds only what differs per mechanism
//! (how to send, receive and check); the harness owns everything else:
//!
//! - the peer: forked after the objects are made (memory mapped before the fork is shared at
//!   the same address), pinned under `--pin`, killed if the run dies, waited for and checked
//!   for a clean exit ([`fork_child`], [`Peer`]);
//! - the ready handshake: the peer sets up its side (opens its ends, makes its ports) and
//!   announces itself before anything is timed;
//! - the warm-up and the timed window ([`Window`]): never a fork, a setup or a first-touch page
//!   fault inside the window;
//! - the stop, the drain of what is in flight, and the check that everything sent arrived;
//! - a watchdog: a repeat that has not returned after [`REPEAT_LIMIT`] ends the run, naming it.
//!
//! Four shapes cover every scenario:
//!
//! | shape | parent | peer(s) | figure |
//! |---|---|---|---|
//! | [`round_trips`] | a [`RoundTrip`] | an [`Echo`] | time per round trip |
//! | [`stream`] | a [`Sink`] | a [`Source`] | messages (or bytes) per second |
//! | [`Team`] | directs | N [`Member`]s | what the members report |
//! | [`timed`], [`per_call`] | the whole scenario | none (or its own) | items per second, time per call |

mod control;
mod fork;
mod peer;
mod round_trip;
mod stream;
mod team;
mod timed;
mod wait;
mod watchdog;
mod window;

pub use control::{REPORT_WORDS, Report};
pub use fork::{Child, fork_bare, fork_child};
pub use peer::Peer;
pub use round_trip::{Echo, RoundTrip, Rounds, round_trips};
pub use stream::{Recv, Sink, Source, stream};
pub use team::{Member, Team, TeamReport};
pub use timed::{per_call, timed};
pub use wait::{Patience, SPINS_BEFORE_YIELD, WAIT_LIMIT, deadline, poll, spin_until};
pub use watchdog::REPEAT_LIMIT;
pub(crate) use watchdog::{arm, disarm};
pub use window::Window;
