//! The capture switches (`pal_capture_config`, records.h `struct pal_capture_config`): which
//! rings get no records, and which flows get a start record. Only the supervisor (and root-only tests) call these.

use std::{io, os::fd::BorrowedFd};

use palisade_abi::CaptureConfig;

use crate::sys;

/// Writes `pal_capture_config[0]`: `off` (bits `1 << RING_*`) and `flow_starts`
/// (`FLOW_STARTS_ALL` or `FLOW_STARTS_ALERTS`).
pub fn set(config: BorrowedFd<'_>, off: u32, flow_starts: u32) -> io::Result<()> {
    sys::set_slot0(config, &CaptureConfig { off, flow_starts }.to_bytes())
}

/// `pal_capture_config[0].off`.
pub fn off(config: BorrowedFd<'_>) -> io::Result<u32> {
    let mut value = [0u8; CaptureConfig::SIZE];
    sys::map_lookup(config, &0_u32.to_ne_bytes(), &mut value)?;
    CaptureConfig::from_bytes(&value)
        .map(|c| c.off)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}
