//! The identity of this program's build: a 128-bit hash of the executable file.
//!
//! Functions travel between hosts as offsets inside the executable (see
//! [`ipc_core::process::FnRef`]), which mean the same function only in the same build. A host
//! presents its build id at the handshake and a master with another one refuses it, as a
//! spawned child with another executable is refused on one machine.

use std::fmt;
use std::hash::Hasher;
use std::io::{self, Read};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use siphasher::sip128::{Hasher128, SipHasher13};

/// A hash of the running executable's bytes (SipHash-1-3, 128 bits, fixed keys): equal for two
/// processes exactly when they run the same build (up to hash collisions, which no one chooses:
/// this is an identity check between cooperating hosts, not an authentication).
///
/// ```
/// let id = ipc_cluster::BuildId::current()?;
/// assert_eq!(id, ipc_cluster::BuildId::current()?);
/// assert_eq!(id.to_string().len(), 32);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuildId(u128);

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({self})")
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Fixed keys: the id must be the same in every process, so it is a fingerprint, not a MAC.
const KEYS: (u64, u64) = (0x6970_632d_636c_7573, 0x7465_722d_6275_696c);

static CURRENT: OnceLock<BuildId> = OnceLock::new();

impl BuildId {
    /// The build id of this process's executable (`/proc/self/exe`), hashed once per process.
    pub fn current() -> io::Result<Self> {
        if let Some(id) = CURRENT.get() {
            return Ok(*id);
        }
        let id = Self::of_reader(std::fs::File::open("/proc/self/exe")?)?;
        Ok(*CURRENT.get_or_init(|| id))
    }

    /// The build id of an executable file.
    pub fn of_file(path: &std::path::Path) -> io::Result<Self> {
        Self::of_reader(std::fs::File::open(path)?)
    }

    fn of_reader(mut r: impl Read) -> io::Result<Self> {
        let mut h = SipHasher13::new_with_keys(KEYS.0, KEYS.1);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.write(&buf[..n]);
            total += n as u64;
        }
        h.write_u64(total);
        Ok(Self(u128::from(h.finish128())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_with_one_byte() {
        let a = BuildId::of_reader(&b"program"[..]).unwrap();
        let b = BuildId::of_reader(&b"programs"[..]).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, BuildId::of_reader(&b"program"[..]).unwrap());
    }
}
