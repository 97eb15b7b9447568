//! Packet tracing (`pal_trace_config`, `rb_trace`; records.h `struct pal_trace_config` and
//! `struct pal_trace_event`, `bpf/trace.bpf.h`): the filter the programs match packets
//! against, and the reader of the events they write. Only the supervisor (and root-only tests
//! and benches) call these.

use std::{
    io,
    net::IpAddr,
    os::fd::{AsFd, BorrowedFd},
};

use aya::maps::{Map, MapData, RingBuf};
use palisade_abi::{TraceConfig, TraceEvent};

use crate::sys;

/// What a trace matches: every field that is set must match (a packet with the host at either
/// end, this IP protocol, this port at either end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// An address at either end.
    pub host: Option<IpAddr>,
    /// An IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub proto: Option<u8>,
    /// A TCP or UDP port at either end.
    pub port: Option<u16>,
}

impl Filter {
    /// The map value of this filter, tracing until boot-clock ns `until_ns`.
    pub fn config(&self, until_ns: u64) -> TraceConfig {
        let mut addr = [0u8; 16];
        let addr_version = match self.host {
            None => 0,
            Some(IpAddr::V4(v4)) => {
                addr[..4].copy_from_slice(&v4.octets());
                4
            }
            Some(IpAddr::V6(v6)) => {
                addr = v6.octets();
                6
            }
        };
        TraceConfig {
            until_ns,
            addr,
            addr_version,
            l4_proto: self.proto.unwrap_or(0),
            port: self.port.unwrap_or(0),
            _pad: 0,
        }
    }
}

/// Starts tracing `filter` until boot-clock ns `until_ns` (0 stops).
pub fn start(config: BorrowedFd<'_>, filter: &Filter, until_ns: u64) -> io::Result<()> {
    sys::set_slot0(config, &filter.config(until_ns).to_bytes())
}

/// Stops tracing: the programs pay one lookup and one load per packet again.
pub fn stop(config: BorrowedFd<'_>) -> io::Result<()> {
    sys::set_slot0(config, &TraceConfig::default().to_bytes())
}

/// `pal_trace_config[0]`.
pub fn config(config: BorrowedFd<'_>) -> io::Result<TraceConfig> {
    let mut value = [0u8; TraceConfig::SIZE];
    sys::map_lookup(config, &0_u32.to_ne_bytes(), &mut value)?;
    TraceConfig::from_bytes(&value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The consumer side of `rb_trace`.
pub struct Reader {
    ring: RingBuf<MapData>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("trace::Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// Maps `rb_trace` (its FD is duplicated).
    pub fn open(ring: impl AsFd) -> io::Result<Self> {
        let other = |e: aya::maps::MapError| io::Error::other(e.to_string());
        let fd = ring.as_fd().try_clone_to_owned()?;
        let map = Map::from_map_data(MapData::from_fd(fd).map_err(other)?).map_err(other)?;
        let ring = RingBuf::try_from(map).map_err(other)?;
        Ok(Self { ring })
    }

    /// Takes up to `max` events; returns them and how many items were not events (a size
    /// other than `pal_trace_event`'s: never written by this ABI, counted, skipped).
    pub fn drain(&mut self, max: usize) -> (Vec<TraceEvent>, u64) {
        let mut events = Vec::new();
        let mut malformed = 0;
        while events.len() < max {
            let Some(item) = self.ring.next() else { break };
            match TraceEvent::from_bytes(&item) {
                Ok(ev) if item.len() == TraceEvent::SIZE => events.push(ev),
                _ => malformed += 1,
            }
        }
        (events, malformed)
    }
}
