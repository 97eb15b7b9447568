//! The DHCP worker's ARP and neighbour discovery parsers (`KIND_ARP`, `KIND_ND`, `KIND_RA`
//! payloads) on arbitrary bytes, and the bindings they announce. Must never panic.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use palisade_worker_dhcp::neigh;

fuzz_target!(|data: &[u8]| {
    if let Ok(arp) = neigh::parse_arp(data) {
        let _ = arp.binding();
    }
    if let Ok(nd) = neigh::parse_nd(data) {
        assert!(nd.prefixes.len() <= neigh::MAX_PREFIXES);
        let _ = nd.binding(Ipv6Addr::LOCALHOST, [2, 0, 0, 0, 0, 1]);
        let _ = nd.type_name();
    }
});
