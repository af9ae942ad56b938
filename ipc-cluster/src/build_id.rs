//! The identity of this program's build.
//!
//! Functions travel between hosts as offsets inside the executable (see
//! [`ipc_core::process::FnRef`]), which mean the same function only in the same build. A host
//! presents its build id at the handshake and a master with another one refuses it, as a
//! spawned child with another executable is refused on one machine.
//!
//! The id is the linker's GNU build id when the executable has one (the `NT_GNU_BUILD_ID` note,
//! a hash of the linked output that GNU ld, gold, mold and lld write with `--build-id`, which
//! the usual Linux toolchains pass; reading it costs a few kilobytes of the file), and
//! otherwise a hash of the whole executable file. Either way it is hashed into 128 bits with a
//! tag saying which it was.

use std::fmt;
use std::hash::Hasher;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use siphasher::sip128::{Hasher128, SipHasher13};

/// The identity of a build of the program: equal for two processes exactly when they run the
/// same build (up to hash collisions, which no one chooses: this is an identity check between
/// cooperating hosts, not an authentication).
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
    /// The build id of this process's executable (`/proc/self/exe`), computed once per process.
    pub fn current() -> io::Result<Self> {
        if let Some(id) = CURRENT.get() {
            return Ok(*id);
        }
        let id = Self::of_file(Path::new("/proc/self/exe"))?;
        Ok(*CURRENT.get_or_init(|| id))
    }

    /// The build id of an executable file.
    pub fn of_file(path: &Path) -> io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        if let Some((offset, len)) = gnu_build_id(&mut f)? {
            let mut note = vec![0u8; len];
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut note)?;
            let mut h = SipHasher13::new_with_keys(KEYS.0, KEYS.1);
            h.write(b"gnu-build-id");
            h.write(&note);
            return Ok(Self(u128::from(h.finish128())));
        }
        f.seek(SeekFrom::Start(0))?;
        Self::of_bytes(f)
    }

    /// The hash of a whole file (executables without a build-id note).
    fn of_bytes(mut r: impl Read) -> io::Result<Self> {
        let mut h = SipHasher13::new_with_keys(KEYS.0, KEYS.1);
        h.write(b"file");
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

/// Where the GNU build id's bytes lie in a 64-bit little-endian ELF file: `(offset, length)`,
/// or `None` if the file is not such an ELF or has no build-id note. Every field is bounds
/// checked: a malformed file gives `None`, never a panic.
pub(crate) fn gnu_build_id(f: &mut (impl Read + Seek)) -> io::Result<Option<(u64, usize)>> {
    const PT_NOTE: u32 = 4;
    const NT_GNU_BUILD_ID: u32 = 3;
    let mut eh = [0u8; 64];
    f.seek(SeekFrom::Start(0))?;
    if f.read_exact(&mut eh).is_err() {
        return Ok(None);
    }
    // Magic, 64-bit class, little-endian data.
    if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Ok(None);
    }
    let u16_at = |b: &[u8], o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |b: &[u8], o: usize| {
        b.get(o..o + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (u64_at(&eh, 0x20), u16_at(&eh, 0x36), u16_at(&eh, 0x38))
    else {
        return Ok(None);
    };
    let (phentsize, phnum) = (usize::from(phentsize), usize::from(phnum));
    if phentsize < 56 || phnum > 256 {
        return Ok(None);
    }
    let mut ph = vec![0u8; phentsize * phnum];
    f.seek(SeekFrom::Start(phoff))?;
    if f.read_exact(&mut ph).is_err() {
        return Ok(None);
    }
    for i in 0..phnum {
        let p = &ph[i * phentsize..(i + 1) * phentsize];
        let (Some(kind), Some(offset), Some(size)) = (u32_at(p, 0), u64_at(p, 8), u64_at(p, 32))
        else {
            continue;
        };
        if kind != PT_NOTE || size > 1 << 20 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset))?;
        if f.read_exact(&mut notes).is_err() {
            continue;
        }
        let mut at = 0usize;
        while let (Some(namesz), Some(descsz), Some(kind)) = (
            u32_at(&notes, at),
            u32_at(&notes, at + 4),
            u32_at(&notes, at + 8),
        ) {
            let name_at = at + 12;
            let desc_at = name_at + (namesz as usize).next_multiple_of(4);
            let next = desc_at + (descsz as usize).next_multiple_of(4);
            if next > notes.len() {
                break;
            }
            if kind == NT_GNU_BUILD_ID
                && notes.get(name_at..name_at + namesz as usize) == Some(b"GNU\0".as_slice())
                && descsz > 0
            {
                return Ok(Some((offset + desc_at as u64, descsz as usize)));
            }
            at = next;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_with_one_byte() {
        let a = BuildId::of_bytes(&b"program"[..]).unwrap();
        let b = BuildId::of_bytes(&b"programs"[..]).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, BuildId::of_bytes(&b"program"[..]).unwrap());
    }

    #[test]
    fn not_an_elf_or_a_truncated_one_has_no_note() {
        let mut c = io::Cursor::new(b"#!/bin/sh\n".to_vec());
        assert_eq!(gnu_build_id(&mut c).unwrap(), None);
        let exe = std::fs::read("/proc/self/exe").unwrap();
        for cut in [16, 64, 100] {
            let mut c = io::Cursor::new(exe[..cut.min(exe.len())].to_vec());
            assert_eq!(gnu_build_id(&mut c).unwrap(), None);
        }
        // The test binary itself, linked as usual, has its note; a flipped byte in it is
        // another build.
        let mut c = io::Cursor::new(exe.clone());
        if let Some((at, len)) = gnu_build_id(&mut c).unwrap() {
            assert!(len >= 8);
            let mut other = exe;
            other[at as usize] ^= 1;
            let mut c2 = io::Cursor::new(other);
            assert_eq!(gnu_build_id(&mut c2).unwrap(), Some((at, len)));
        }
    }
}
