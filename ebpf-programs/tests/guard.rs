//! The DHCP guard in the kernel program (`guard.bpf.h`), run with `BPF_PROG_TEST_RUN` on
//! hand-made frames: which packets it checks (DHCP 67 -> 68, DHCPv6 547 -> 546, router
//! advertisements; not 68 -> 67 nor relay traffic 67 -> 67), what each mode does (off: no
//! check; alert: pass and flag; drop: drop and flag), the allow-list by source MAC and by
//! source IP, the flags in the records, the counters and the per-sender map. Needs root
//! (skipped otherwise).

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a panic is the failure report"
)]

mod support;

use std::{net::IpAddr, os::fd::AsFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{PerCpuArray, RingBuf},
    programs::SchedClassifier,
};
use palisade_abi::{
    FLAG_GUARD_DROPPED, FLAG_GUARD_ROGUE, GUARD_ALERT, GUARD_DROP, GUARD_OFF, GuardKey, GuardStat,
    KIND_DHCP, KIND_RA, MAP_GUARD_ALLOW, MAP_GUARD_CONFIG, MAP_GUARD_SOURCES, MAP_GUARD_STATS,
    PROG_TC_INGRESS, RecordHeader, Ring,
};
use palisade_ebpf::{PALISADE_BPF, guard, maps::map_fd};
use support::{ADDR_A, BpfFs, frames::*, have_root};

/// `TC_ACT_UNSPEC` (-1) as the test run returns it, and `TC_ACT_SHOT`.
const PASS: u32 = u32::MAX;
const SHOT: u32 = 2;
const IPPROTO_ICMPV6: u8 = 58;

fn dhcp4(sport: u16, dport: u16) -> Vec<u8> {
    // A BOOTP reply with the magic cookie; the kernel looks at ports only.
    let mut msg = vec![2, 1, 6, 0];
    msg.resize(236, 0);
    msg.extend_from_slice(&[99, 130, 83, 99, 53, 1, 2, 255]);
    cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(IPPROTO_UDP, &[], 0, &udp(sport, dport, &msg)),
    ])
}

fn dhcp6(sport: u16, dport: u16) -> Vec<u8> {
    cat(&[
        &ethernet(None, ETH_P_IPV6),
        &ipv6(IPPROTO_UDP, &udp(sport, dport, &[2, 1, 2, 3])),
    ])
}

fn icmp6(icmp_type: u8) -> Vec<u8> {
    let mut m = vec![
        icmp_type, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&MAC_A);
    cat(&[&ethernet(None, ETH_P_IPV6), &ipv6(IPPROTO_ICMPV6, &m)])
}

struct Guard {
    _bpffs: BpfFs,
    ebpf: Ebpf,
}

impl Guard {
    fn new() -> Self {
        let bpffs = BpfFs::new();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(bpffs.path())
            .load(PALISADE_BPF)
            .unwrap();
        let prog: &mut SchedClassifier = ebpf
            .program_mut(PROG_TC_INGRESS)
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().unwrap();
        Self {
            _bpffs: bpffs,
            ebpf,
        }
    }

    fn set(&self, mode: u32, allowed: &[GuardKey]) {
        let fd = |name| map_fd(self.ebpf.map(name).unwrap()).unwrap();
        guard::set_allowed(fd(MAP_GUARD_ALLOW), allowed).unwrap();
        guard::set_mode(fd(MAP_GUARD_CONFIG), mode).unwrap();
    }

    /// The program's verdict on `frame`, and the DHCP-ring record it made.
    fn run(&mut self, frame: &[u8]) -> (u32, Option<RecordHeader>) {
        let prog = self.ebpf.program(PROG_TC_INGRESS).unwrap();
        let (ret, _) = palisade_ebpf::prog_test_run(prog.fd().unwrap().as_fd(), frame, 1).unwrap();
        let map = self.ebpf.map_mut(Ring::Dhcp.map_name()).unwrap();
        let mut ring = RingBuf::try_from(map).unwrap();
        let mut last = None;
        while let Some(item) = ring.next() {
            last = Some(RecordHeader::read(&item).unwrap().0);
        }
        (ret, last)
    }

    fn stat(&self, s: GuardStat) -> u64 {
        let stats =
            PerCpuArray::<_, u64>::try_from(self.ebpf.map(MAP_GUARD_STATS).unwrap()).unwrap();
        stats.get(&s.index(), 0).unwrap().iter().sum()
    }
}

#[test]
fn guard_checks_server_messages_and_router_advertisements() {
    if !have_root("guard_checks_server_messages_and_router_advertisements") {
        return;
    }
    let mut g = Guard::new();
    let other_mac = GuardKey::mac([2, 0, 0, 0, 0, 0x99]);

    // Off: recorded, never checked, never flagged.
    g.set(GUARD_OFF, &[]);
    let (ret, rec) = g.run(&dhcp4(67, 68));
    assert_eq!(ret, PASS);
    let rec = rec.expect("the DHCP record");
    assert_eq!(
        (
            rec.kind,
            rec.flags & (FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED)
        ),
        (KIND_DHCP, 0)
    );
    assert_eq!(g.stat(GuardStat::Checked), 0);

    // Alert: a sender not on the list passes, flagged.
    g.set(GUARD_ALERT, &[other_mac]);
    let (ret, rec) = g.run(&dhcp4(67, 68));
    assert_eq!(ret, PASS);
    assert_eq!(
        rec.unwrap().flags & (FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED),
        FLAG_GUARD_ROGUE
    );

    // Drop: dropped, and still recorded with both flags.
    g.set(GUARD_DROP, &[other_mac]);
    for frame in [dhcp4(67, 68), dhcp6(547, 546), icmp6(134)] {
        let (ret, rec) = g.run(&frame);
        assert_eq!(ret, SHOT, "{frame:02x?}");
        let rec = rec.unwrap();
        assert_eq!(
            rec.flags & (FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED),
            FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED
        );
        assert_eq!(rec.src_mac, MAC_A);
    }
    // Not server-to-client messages, and other ND: never checked.
    let checked = g.stat(GuardStat::Checked);
    for (frame, kind) in [
        (dhcp4(68, 67), KIND_DHCP),
        (dhcp4(67, 67), KIND_DHCP),
        (dhcp6(546, 547), KIND_DHCP),
        (icmp6(135), palisade_abi::KIND_ND),
    ] {
        let (ret, rec) = g.run(&frame);
        assert_eq!(ret, PASS, "{frame:02x?}");
        let rec = rec.unwrap();
        assert_eq!((rec.kind, rec.flags & FLAG_GUARD_ROGUE), (kind, 0));
    }
    assert_eq!(g.stat(GuardStat::Checked), checked);

    // Allowed by source MAC, or by source IP (IPv4 for DHCP, IPv6 for the RA).
    g.set(GUARD_DROP, &[GuardKey::mac(MAC_A)]);
    assert_eq!(g.run(&dhcp4(67, 68)).0, PASS);
    assert_eq!(g.run(&icmp6(134)).0, PASS);
    g.set(
        GUARD_DROP,
        &[
            GuardKey::ip(IpAddr::from(ADDR_A)),
            GuardKey::ip(IpAddr::from(mapped_v6(ADDR_A))),
        ],
    );
    let (ret, rec) = g.run(&dhcp4(67, 68));
    assert_eq!((ret, rec.unwrap().flags & FLAG_GUARD_ROGUE), (PASS, 0));
    let (ret, rec) = g.run(&icmp6(134));
    let rec = rec.unwrap();
    assert_eq!(
        (ret, rec.kind, rec.flags & FLAG_GUARD_ROGUE),
        (PASS, KIND_RA, 0)
    );
    assert_eq!(g.run(&dhcp6(547, 546)).0, PASS);

    assert_eq!(g.stat(GuardStat::Checked), checked + 5);
    assert_eq!(g.stat(GuardStat::Allowed), 5);
    assert_eq!(g.stat(GuardStat::Rogue), 4);
    assert_eq!(g.stat(GuardStat::Dropped), 3);

    // Per sender: one IPv4 sender (one DHCPv4 message alerted, one dropped), one IPv6
    // sender (the DHCPv6 message and the RA, both dropped).
    let mut sources =
        guard::sources(map_fd(g.ebpf.map(MAP_GUARD_SOURCES).unwrap()).unwrap()).unwrap();
    sources.sort_by_key(|(k, _)| k.ip_version);
    assert_eq!(sources.len(), 2, "{sources:?}");
    let (k4, v4) = &sources[0];
    assert_eq!(
        (k4.mac, k4.ip_version, &k4.addr[..4]),
        (MAC_A, 4, &ADDR_A[..])
    );
    assert_eq!((v4.dhcp4, v4.dhcp6, v4.ra, v4.dropped), (2, 0, 0, 1));
    assert!(v4.first_ns > 0 && v4.last_ns >= v4.first_ns);
    let (k6, v6) = &sources[1];
    assert_eq!((k6.ip_version, k6.addr), (6, mapped_v6(ADDR_A)));
    assert_eq!((v6.dhcp4, v6.dhcp6, v6.ra, v6.dropped), (0, 1, 1, 2));
}
