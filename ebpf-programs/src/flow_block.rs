//! `pal_flow_block` and `pal_flow_block_active`: the connections the TLS policy cut and the
//! map's generation (records.h, "Flow blocks"). Only the supervisor calls these.

use std::{io, os::fd::BorrowedFd};

use palisade_abi::{FlowBlock, FlowKey};

use crate::sys;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Writes (or replaces) the block of `key`.
pub fn insert(blocks: BorrowedFd<'_>, key: &FlowKey, block: &FlowBlock) -> io::Result<()> {
    sys::map_update(blocks, &key.to_bytes(), &block.to_bytes(), sys::ANY)
}

/// Removes the block of `key`; `Ok(false)` if there was none.
pub fn remove(blocks: BorrowedFd<'_>, key: &FlowKey) -> io::Result<bool> {
    sys::map_delete(blocks, &key.to_bytes())
}

/// Every block (entries that vanish meanwhile are skipped).
pub fn dump(blocks: BorrowedFd<'_>) -> io::Result<Vec<(FlowKey, FlowBlock)>> {
    let mut out = Vec::new();
    let mut key: Option<[u8; FlowKey::SIZE]> = None;
    let mut next = [0u8; FlowKey::SIZE];
    let mut value = [0u8; FlowBlock::SIZE];
    while sys::map_next_key(blocks, key.as_ref().map(|k| &k[..]), &mut next)? {
        if sys::map_lookup(blocks, &next, &mut value)? {
            out.push((
                FlowKey::from_bytes(&next).map_err(invalid)?,
                FlowBlock::from_bytes(&value).map_err(invalid)?,
            ));
        }
        key = Some(next);
    }
    Ok(out)
}

/// Sets `pal_flow_block_active[0]`, the generation of the block map: 0 while it is empty,
/// else a value the flows have not seen (a new one after every change).
pub fn set_generation(active: BorrowedFd<'_>, generation: u32) -> io::Result<()> {
    sys::set_slot0(active, &generation.to_ne_bytes())
}

/// `pal_flow_block_active[0]`.
pub fn generation(active: BorrowedFd<'_>) -> io::Result<u32> {
    let mut value = [0u8; 4];
    sys::map_lookup(active, &0_u32.to_ne_bytes(), &mut value)?;
    Ok(u32::from_ne_bytes(value))
}
