//! `core.*`: ipc-core's own costs, beside their peers.
//!
//! - `core.segment_create_open` (µs): [`SharedMemory::create_named`] of 4 KiB, a byte written,
//!   [`SharedMemory::builder`]`(name).open()`, the byte read back through the second mapping,
//!   then both dropped (which unlinks the name). Compare with `python.shm_create_attach`.
//! - `shared_memory.create_open` (µs): the same cycle with the `shared_memory` crate
//!   (`ShmemConf::new().size(4096).create()`, `ShmemConf::new().os_id(id).open()`).
//!
//! Both run in one process, as Python's figure does: creating and opening a segment are
//! system calls whose cost does not depend on which process makes them.

use anyhow::{Context, ensure};
use ipc_core::{OpenError, SharedMemory};
use shared_memory::ShmemConf;

use crate::harness::per_call;
use crate::scenario::{Config, Repeat, Scenario, Unit};

/// The scenarios of this group.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("core.segment_create_open", Unit::Us, segment_create_open),
        Scenario::new("shared_memory.create_open", Unit::Us, shared_memory_create_open),
    ]
}

const SIZE: usize = 4096;

fn segment_create_open(cfg: &Config) -> Repeat {
    let mut last_name = String::new();
    let figure = per_call(cfg.budget(), |i| {
        let created = SharedMemory::create_named(SIZE).context("create_named")?;
        let name = created.name().context("a named segment has a name")?;
        created.write(0, &i.to_le_bytes())?;
        let opened = SharedMemory::builder(name).open().context("open")?;
        let mut back = [0u8; 8];
        opened.read(0, &mut back)?;
        ensure!(
            u64::from_le_bytes(back) == i,
            "the opened segment shows other bytes"
        );
        last_name.clear();
        last_name.push_str(name);
        Ok(())
    })?;
    match SharedMemory::builder(&last_name).open() {
        Err(OpenError::NotFound { .. }) => Ok(figure.into()),
        Ok(_) => anyhow::bail!("{last_name} is still there after its owner dropped it"),
        Err(e) => Err(e).context("checking that the name is gone"),
    }
}

fn shared_memory_create_open(cfg: &Config) -> Repeat {
    let mut last_id = String::new();
    let figure = per_call(cfg.budget(), |i| {
        let created = ShmemConf::new()
            .size(SIZE)
            .create()
            .context("ShmemConf::create")?;
        ensure!(created.len() >= 8, "a segment of {} bytes", created.len());
        // SAFETY: the mapping is at least 8 bytes (checked above) and only this process has
        // the fresh segment's name.
        unsafe { created.as_ptr().cast::<u64>().write_unaligned(i) };
        let opened = ShmemConf::new()
            .os_id(created.get_os_id())
            .open()
            .context("ShmemConf::open")?;
        ensure!(opened.len() >= 8, "a segment of {} bytes", opened.len());
        // SAFETY: the second mapping of the same segment, at least 8 bytes; nobody writes it
        // concurrently.
        let back = unsafe { opened.as_ptr().cast::<u64>().read_unaligned() };
        ensure!(back == i, "the opened segment shows other bytes");
        last_id.clear();
        last_id.push_str(created.get_os_id());
        drop(opened);
        drop(created);
        Ok(())
    })?;
    let gone = ShmemConf::new().os_id(&last_id).open().is_err();
    ensure!(gone, "{last_id} is still there after its owner dropped it");
    Ok(figure.into())
}
