//! The DHCP guard's maps (records.h, "Neighbours and the DHCP guard"): the allow-list
//! `pal_guard_allow`, the mode in `pal_guard_config`, the rogue senders in
//! `pal_guard_sources`. Only the supervisor (and root-only benches and tests) call these.

use std::{io, os::fd::BorrowedFd};

use palisade_abi::{GuardConfig, GuardKey, GuardSource, GuardSourceKey};

use crate::sys;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Every key of a hash map whose keys are `N` bytes.
fn keys<const N: usize>(map: BorrowedFd<'_>) -> io::Result<Vec<[u8; N]>> {
    let mut out = Vec::new();
    let mut key: Option<[u8; N]> = None;
    let mut next = [0u8; N];
    while sys::map_next_key(map, key.as_ref().map(|k| &k[..]), &mut next)? {
        out.push(next);
        key = Some(next);
    }
    Ok(out)
}

/// Makes `pal_guard_allow` hold exactly `entries` (value: the entry's index): the new ones
/// first, then the stale ones removed, so that no sender allowed before and after is ever
/// missing in between.
pub fn set_allowed(allow: BorrowedFd<'_>, entries: &[GuardKey]) -> io::Result<()> {
    let wanted: Vec<[u8; GuardKey::SIZE]> = entries.iter().map(GuardKey::to_bytes).collect();
    for (index, key) in wanted.iter().enumerate() {
        let index = u32::try_from(index).map_err(invalid)?;
        sys::map_update(allow, key, &index.to_ne_bytes(), sys::ANY)?;
    }
    for key in keys::<{ GuardKey::SIZE }>(allow)? {
        if !wanted.contains(&key) {
            sys::map_delete(allow, &key)?;
        }
    }
    Ok(())
}

/// The allow-list in the kernel, in no particular order.
pub fn allowed(allow: BorrowedFd<'_>) -> io::Result<Vec<GuardKey>> {
    keys::<{ GuardKey::SIZE }>(allow)?
        .iter()
        .map(|k| GuardKey::from_bytes(k).map_err(invalid))
        .collect()
}

/// Sets `pal_guard_config[0]`.
pub fn set_mode(config: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    sys::set_slot0(config, &GuardConfig { mode, _pad: 0 }.to_bytes())
}

/// `pal_guard_config[0].mode`.
pub fn mode(config: BorrowedFd<'_>) -> io::Result<u32> {
    let mut value = [0u8; GuardConfig::SIZE];
    sys::map_lookup(config, &0_u32.to_ne_bytes(), &mut value)?;
    Ok(GuardConfig::from_bytes(&value).map_err(invalid)?.mode)
}

/// Every rogue sender counted in `pal_guard_sources` (entries that vanish meanwhile are
/// skipped).
pub fn sources(map: BorrowedFd<'_>) -> io::Result<Vec<(GuardSourceKey, GuardSource)>> {
    let mut out = Vec::new();
    let mut value = [0u8; GuardSource::SIZE];
    for key in keys::<{ GuardSourceKey::SIZE }>(map)? {
        if sys::map_lookup(map, &key, &mut value)? {
            out.push((
                GuardSourceKey::from_bytes(&key).map_err(invalid)?,
                GuardSource::from_bytes(&value).map_err(invalid)?,
            ));
        }
    }
    Ok(out)
}
