//! The flow table's control side: configuring the kernel sweeper (idle timeouts, update
//! interval) and arming its timer, reading what it reports, and seeding flows (conntrack).
//! Only the supervisor calls these; workers never write a map.

use std::{io, os::fd::BorrowedFd};

use palisade_abi::{FlowConfig, FlowKey, FlowSweep, FlowValue};

use crate::sys;

/// What the sweeper is told to do (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP, ICMP: idle time after which a flow ends.
    pub idle_ns: u64,
    /// TCP without FIN pair or RST: idle time after which a flow ends.
    pub tcp_idle_ns: u64,
    /// Period of update records; 0 for none.
    pub update_ns: u64,
}

impl Timeouts {
    /// The sweeper's period: a quarter of the shortest period it serves, within
    /// [100 ms, 1 s], so a flow ends at most 25% (or 1 s) after its timeout, and a closed TCP
    /// flow at most 1 s after its 1 s linger.
    pub fn sweep_interval_ns(&self) -> u64 {
        const MIN: u64 = 100_000_000;
        const MAX: u64 = 1_000_000_000;
        let shortest = [self.idle_ns, self.tcp_idle_ns, self.update_ns]
            .into_iter()
            .filter(|&ns| ns > 0)
            .min()
            .unwrap_or(MAX);
        (shortest / 4).clamp(MIN, MAX)
    }
}

/// Writes the configuration (`pal_flow_config`), then (re)arms the sweeper's timer by running
/// `arm_prog` (`pal_flow_timer_arm`) once. Safe to repeat: a running timer is re-pointed at
/// `arm_prog`'s code and restarted with the new period.
pub fn configure(config: BorrowedFd<'_>, arm_prog: BorrowedFd<'_>, t: Timeouts) -> io::Result<()> {
    let value = FlowConfig {
        idle_timeout_ns: t.idle_ns,
        tcp_idle_timeout_ns: t.tcp_idle_ns,
        update_interval_ns: t.update_ns,
        sweep_interval_ns: t.sweep_interval_ns(),
    };
    sys::set_slot0(config, &value.to_bytes())?;
    // A minimal Ethernet frame: BPF_PROG_TEST_RUN wants at least a link-layer header.
    let frame = [0u8; 14];
    match sys::prog_test_run(arm_prog, &frame, 1, None)?.0 {
        0 => Ok(()),
        step => Err(io::Error::other(format!(
            "arming the flow sweeper timer failed at step {step} (pal_flow_timer_arm)"
        ))),
    }
}

/// Reads `pal_flow_sweep[0]`.
pub fn sweep_state(sweep: BorrowedFd<'_>) -> io::Result<FlowSweep> {
    let mut value = [0u8; FlowSweep::SIZE];
    sys::map_lookup(sweep, &0u32.to_ne_bytes(), &mut value)?;
    FlowSweep::from_bytes(&value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Inserts `value` under `key` unless the key exists (`BPF_NOEXIST`): a flow the kernel
/// already tracks wins over a seeded one. Returns whether it was inserted.
pub fn seed(flows: BorrowedFd<'_>, key: &FlowKey, value: &FlowValue) -> io::Result<bool> {
    match sys::map_update(flows, &key.to_bytes(), &value.to_bytes(), sys::NOEXIST) {
        Ok(()) => Ok(true),
        Err(e) if sys::errno(&e) == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every flow in the table (`BPF_MAP_GET_NEXT_KEY` + lookup; entries that vanish meanwhile
/// are skipped).
pub fn dump(flows: BorrowedFd<'_>) -> io::Result<Vec<(FlowKey, FlowValue)>> {
    let mut out = Vec::new();
    let mut key: Option<[u8; FlowKey::SIZE]> = None;
    let mut next = [0u8; FlowKey::SIZE];
    let mut value = [0u8; FlowValue::SIZE];
    while sys::map_next_key(flows, key.as_ref().map(|k| &k[..]), &mut next)? {
        if sys::map_lookup(flows, &next, &mut value)? {
            let k = FlowKey::from_bytes(&next)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let v = FlowValue::from_bytes(&value)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            out.push((k, v));
        }
        key = Some(next);
    }
    Ok(out)
}
