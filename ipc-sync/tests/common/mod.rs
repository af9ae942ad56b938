//! What only ipc-sync's tests need: reading and writing an object's lock word, as a peer (or a
//! hostile process) could. The mechanisms every crate's tests share are in `ipc-testkit`.
#![allow(dead_code)]

/// The lock word (`LockState`'s first 8 bytes) naming the running process `pid`, with its true
/// start-time tag: a live holder.
pub(crate) fn live_holder_word(pid: u32) -> [u8; 8] {
    let id = ipc_core::ProcessIdentity::of_pid(pid)
        .expect("/proc is readable")
        .expect("the process runs");
    (u64::from(id.pid()) | (u64::from(id.start_tag()) << 32)).to_ne_bytes()
}

/// The pid named by a lock word read with [`peek`].
pub(crate) fn holder_pid(word: &[u8]) -> u32 {
    u32::from_ne_bytes(word[..4].try_into().expect("a lock word")) & 0x3fff_ffff
}

/// Overwrites bytes of an object's shared state, as a hostile or buggy peer could: `offset`
/// counts from the start of the payload (the state).
pub(crate) fn poke(handle: &ipc_core::ObjectHandle, offset: usize, bytes: &[u8]) {
    let shm = ipc_core::SharedMemory::attach(&handle.segment).expect("attach");
    let payload = ipc_core::raw::header::payload_offset(64);
    // SAFETY: the tests poke state words (atomics) and never while a guard of the object lends
    // its data out.
    unsafe { shm.write_unguarded(payload + offset, bytes) }.expect("write");
}

/// Reads bytes of an object's shared state.
pub(crate) fn peek(handle: &ipc_core::ObjectHandle, offset: usize, len: usize) -> Vec<u8> {
    let shm = ipc_core::SharedMemory::attach(&handle.segment).expect("attach");
    let payload = ipc_core::raw::header::payload_offset(64);
    let mut buf = vec![0u8; len];
    // SAFETY: as in `poke`.
    unsafe { shm.read_unguarded(payload + offset, &mut buf) }.expect("read");
    buf
}
