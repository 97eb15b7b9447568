//! Root-only tests against the running kernel.
//!
//! - `object_loads_and_pins_its_maps`: `PALISADE_BPF` passes this kernel's verifier through
//!   aya (both classifiers, well below the verifier's instruction limit), its maps (DNS policy
//!   maps included) have the declared shapes, are pinned by name, and a second load (with
//!   `pal_wakeup_bytes` overridden) reuses the pins, rule set included. The DNS policy itself
//!   is tested in `tests/dns_policy.rs`.
//! - `traffic_becomes_records`: with both programs attached to a veth in a test namespace,
//!   real sockets (UDP DNS, DHCP, a TCP session carrying a TLS-like handshake, a refused TCP
//!   connection) and hand-made frames (a VLAN tag in the frame and one moved to skb metadata,
//!   IPv4 options and fragments, IPv6 extension headers and fragments, truncated headers, TCP
//!   edge cases) give exactly the expected records, flow table entries and counters; the
//!   namespaces' ARP exchange is recorded in the DHCP ring.
//!
//! - `idle_flows_end_by_the_kernel_timer`: with the sweeper armed (`flow_table::configure`),
//!   a UDP flow gets update records while it lives and an end record with reason timeout
//!   once idle, with nobody but the kernel involved; the counters and `pal_flow_sweep` agree.
//!
//! - `flow_starts_only_where_the_flow_worker_alerts`: with `pal_capture_config.flow_starts`
//!   at `FLOW_STARTS_ALERTS` (`[flow] start_events = false`) only flows to ports 443 and 853
//!   get a start record; the others are tracked all the same; `FLOW_STARTS_ALL` brings them
//!   back.
//!
//! Run as root: `cargo test -p palisade-ebpf --test load`; without root every test prints
//! that it was skipped. Each test mounts its own bpffs and creates its own namespaces, removed
//! on drop; traffic stays between those namespaces, on 198.18.0.0/15 addresses.
//! To add a case: send it from namespace `a` (sockets via `Netns::run`, frames via
//! `RawSender`), then look for its record by its unique source port.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a panic is the failure report"
)]

mod support;

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsFd, OwnedFd},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapInfo, MapType, PerCpuArray, RingBuf},
    programs::{SchedClassifier, TcAttachType},
};
use palisade_abi::{
    BlockAction, CAP_DHCP, DIR_EGRESS, DIR_INGRESS, DNS_HITS_ENTRIES, DNS_LEARNED_ENTRIES,
    DNS_STAT_COUNT, DnsConfig, DnsLearned, FLAG_TRUNCATED, FLAG_VLAN, FLOW_F_VLAN, FLOW_REASON_FIN,
    FLOW_REASON_NONE, FLOW_REASON_RST, FLOW_REASON_TIMEOUT, FLOW_SHARDS, FLOW_STARTS_ALERTS,
    FLOW_STARTS_ALL, FlowKey, FlowRecord, FlowStat, FlowValue, Kind, MAP_CAPTURE_CONFIG,
    MAP_DNS_CONFIG, MAP_DNS_HITS, MAP_DNS_LEARNED, MAP_DNS_POLICY, MAP_DNS_STATS, MAP_FLOW_CONFIG,
    MAP_FLOW_STATS, MAP_FLOW_SWEEP, MAP_FLOWS, MAP_SCRATCH, MAP_STATS, MAP_TLS_STATS, PINNED_MAPS,
    PROG_FLOW_TIMER_ARM, PROG_TC_EGRESS, PROG_TC_INGRESS, RING_BYTES, RecordHeader, Ring,
    STATS_ENTRIES, StatGroup, StatSlot, TLS_DIR_CLIENT, TLS_SEG_FIRST, TlsSeg, TlsStat, stats_key,
};
use palisade_ebpf::{PALISADE_BPF, dns_policy, flow_table, maps};
use support::{ADDR_A, ADDR_B, BpfFs, RawSender, VethPair, frames::*, have_root};

const TIMEOUT: Duration = Duration::from_secs(5);
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
/// A port nothing listens on in namespace `b`.
const REFUSED_PORT: u16 = 9;

/// Flows per shard of the test's flow table.
const SHARD_CAPACITY: u32 = 4096;

/// Loads the object with its maps pinned under `bpffs`, and both classifiers; fills the
/// flow table's empty slots with shards (as the supervisor does) and returns them.
fn load(bpffs: &BpfFs, wakeup_bytes: Option<u32>) -> (Ebpf, Vec<OwnedFd>) {
    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(bpffs.path());
    if let Some(bytes) = &wakeup_bytes {
        loader.override_global(palisade_abi::GLOBAL_WAKEUP_BYTES, bytes, true);
    }
    let mut ebpf = loader
        .load(PALISADE_BPF)
        .unwrap_or_else(|error| panic!("loading: {error:?}"));
    for name in [PROG_TC_INGRESS, PROG_TC_EGRESS] {
        classifier(&mut ebpf, name)
            .load()
            .unwrap_or_else(|error| panic!("verifier rejected {name}: {error:?}"));
    }
    let outer = maps::map_fd(ebpf.map(MAP_FLOWS).unwrap()).unwrap();
    let shards = flow_table::install_shards(outer, SHARD_CAPACITY).unwrap();
    (ebpf, shards)
}

/// Every flow of the test's table.
fn flow_dump(shards: &[OwnedFd]) -> Vec<(FlowKey, FlowValue)> {
    shards
        .iter()
        .flat_map(|s| flow_table::dump(s.as_fd()).unwrap())
        .collect()
}

/// Loads the sweeper's arming program and arms it: UDP/ICMP and TCP idle timeouts of
/// `idle_ns` (closed TCP flows linger 1 s), updates every 0.4 s when `idle_ns` is short.
fn arm_sweeper(ebpf: &mut Ebpf, idle_ns: u64) {
    classifier(ebpf, PROG_FLOW_TIMER_ARM)
        .load()
        .unwrap_or_else(|error| panic!("verifier rejected {PROG_FLOW_TIMER_ARM}: {error:?}"));
    let timeouts = flow_table::Timeouts {
        idle_ns,
        tcp_idle_ns: 60_000_000_000,
        update_ns: if idle_ns < 10_000_000_000 {
            400_000_000
        } else {
            0
        },
    };
    let config = maps::map_fd(ebpf.map(MAP_FLOW_CONFIG).unwrap()).unwrap();
    let prog = ebpf
        .program(PROG_FLOW_TIMER_ARM)
        .unwrap()
        .fd()
        .unwrap()
        .as_fd();
    // Twice: arming an armed timer is fine.
    flow_table::configure(config, prog, timeouts, SHARD_CAPACITY).unwrap();
    flow_table::configure(config, prog, timeouts, SHARD_CAPACITY).unwrap();
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut SchedClassifier {
    ebpf.program_mut(name)
        .unwrap_or_else(|| panic!("program {name} missing"))
        .try_into()
        .unwrap_or_else(|error| panic!("{name} is not a classifier: {error}"))
}

#[test]
fn object_loads_and_pins_its_maps() {
    if !have_root("object_loads_and_pins_its_maps") {
        return;
    }
    let bpffs = BpfFs::new();
    let (first, _shards) = load(&bpffs, None);

    let info = |name: &str| {
        MapInfo::from_pin(bpffs.path().join(name))
            .unwrap_or_else(|error| panic!("{name} not pinned: {error}"))
    };
    for ring in Ring::ALL {
        assert_eq!(
            info(ring.map_name()).max_entries(),
            RING_BYTES,
            "{}",
            ring.map_name()
        );
    }
    assert_eq!(info(MAP_STATS).max_entries(), STATS_ENTRIES);
    assert_eq!(info(MAP_STATS).value_size(), 8);
    // The flow table: the shards' slots (the supervisor creates the shards).
    let flows = info(MAP_FLOWS);
    assert_eq!(flows.max_entries(), FLOW_SHARDS);
    assert_eq!(flows.key_size(), 4);
    assert_eq!(info(MAP_FLOW_SWEEP).max_entries(), FLOW_SHARDS);
    assert!(
        !bpffs.path().join(MAP_SCRATCH).exists(),
        "the scratch map must stay private"
    );

    // The DNS policy maps.
    let policy = info(MAP_DNS_POLICY);
    assert_eq!(policy.map_type().unwrap(), MapType::ArrayOfMaps);
    assert_eq!(
        (policy.max_entries(), policy.key_size(), policy.value_size()),
        (1, 4, 4)
    );
    let learned = info(MAP_DNS_LEARNED);
    assert_eq!(
        (
            learned.max_entries(),
            learned.key_size(),
            learned.value_size() as usize
        ),
        (DNS_LEARNED_ENTRIES, 8, DnsLearned::SIZE)
    );
    let config = info(MAP_DNS_CONFIG);
    assert_eq!(
        (config.max_entries(), config.value_size() as usize),
        (1, DnsConfig::SIZE)
    );
    let hits = info(MAP_DNS_HITS);
    assert_eq!(hits.map_type().unwrap(), MapType::LruPerCpuHash);
    assert_eq!(
        (hits.max_entries(), hits.key_size(), hits.value_size()),
        (DNS_HITS_ENTRIES, 4, 8)
    );
    let dns_stats = info(MAP_DNS_STATS);
    assert_eq!(
        (dns_stats.max_entries(), dns_stats.value_size()),
        (DNS_STAT_COUNT, 8)
    );
    // A fresh load enforces nothing: no rule set, block action off.
    let policy_fd = maps::map_fd(first.map(MAP_DNS_POLICY).unwrap()).unwrap();
    assert_eq!(dns_policy::current_inner_id(policy_fd).unwrap(), None);
    let config_fd = maps::map_fd(first.map(MAP_DNS_CONFIG).unwrap()).unwrap();
    assert_eq!(
        dns_policy::block_action(config_fd).unwrap(),
        Some(BlockAction::Off)
    );
    let mut rules = dns_policy::RuleSetBuilder::new();
    rules
        .add("kept.test", dns_policy::RuleKind::BlockExact, 1)
        .unwrap();
    let rule_map = rules.build().unwrap();
    dns_policy::swap_in(policy_fd, &rule_map).unwrap();
    let rule_set = maps::map_facts(&rule_map).unwrap().id;
    drop(rule_map);

    // Verifier work stays far from its 1M-instruction limit (pal_dns_udp() is a global
    // function, checked once: see bpf/dns_capture.bpf.h).
    let mut first = first;
    for name in [PROG_TC_INGRESS, PROG_TC_EGRESS] {
        let verified = classifier(&mut first, name)
            .info()
            .unwrap()
            .verified_instruction_count()
            .unwrap_or(0);
        println!("{name}: {verified} instructions verified");
        assert!(
            verified < 250_000,
            "{name}: {verified} instructions verified"
        );
    }

    // A restarted loader binds to the pinned maps instead of creating new ones (so the rule
    // set stays in force), and the wake-up threshold can be overridden at load time.
    let ids: Vec<u32> = PINNED_MAPS.iter().map(|name| info(name).id()).collect();
    let (second, _second_shards) = load(&bpffs, Some(1));
    let again: Vec<u32> = PINNED_MAPS.iter().map(|name| info(name).id()).collect();
    assert_eq!(ids, again);
    let policy_fd = maps::map_fd(second.map(MAP_DNS_POLICY).unwrap()).unwrap();
    assert_eq!(
        dns_policy::current_inner_id(policy_fd).unwrap(),
        Some(rule_set)
    );
    drop((first, second));
}

/// Records of one ring, validated by `RecordHeader::read`.
fn drain(ebpf: &mut Ebpf, ring: Ring) -> Vec<(RecordHeader, Vec<u8>)> {
    let map = ebpf.map_mut(ring.map_name()).unwrap();
    let mut ring_buf = RingBuf::try_from(map).unwrap();
    let mut records = Vec::new();
    while let Some(item) = ring_buf.next() {
        let (hdr, payload) = RecordHeader::read(&item)
            .unwrap_or_else(|error| panic!("bad record in {}: {error}", ring.name()));
        assert!(
            ring.carries(hdr.kind().unwrap()),
            "{hdr:?} in {}",
            ring.name()
        );
        records.push((hdr, payload.to_vec()));
    }
    records
}

/// A counter summed over CPUs.
fn stat(ebpf: &Ebpf, group: StatGroup, slot: StatSlot) -> u64 {
    let stats = PerCpuArray::<_, u64>::try_from(ebpf.map(MAP_STATS).unwrap()).unwrap();
    stats.get(&stats_key(group, slot), 0).unwrap().iter().sum()
}

fn v4(addr: [u8; 4]) -> [u8; 16] {
    let mut full = [0; 16];
    full[..4].copy_from_slice(&addr);
    full
}

fn sock(addr: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((addr, port))
}

fn udp_socket(addr: [u8; 4], port: u16) -> UdpSocket {
    let socket = UdpSocket::bind(sock(addr, port)).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    socket
}

/// Sends `payload` from `client` to `server` and reads it there; returns the client port.
fn udp_exchange(client: &UdpSocket, server: &UdpSocket, payload: &[u8], reply: bool) -> u16 {
    client
        .send_to(payload, server.local_addr().unwrap())
        .unwrap();
    let mut buf = [0; 2048];
    let (len, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], payload);
    if reply {
        server.send_to(b"reply", from).unwrap();
        client.recv_from(&mut buf).unwrap();
    }
    client.local_addr().unwrap().port()
}

/// Ports and payloads of the socket traffic, to find the records again.
struct Traffic {
    dns_port: u16,
    dhcp_len: usize,
    tls_port: u16,
}

const DNS_QUERY: &[u8] =
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x01\x00\x01";
const TLS_HELLO: &[u8] =
    b"\x16\x03\x01\x00\x20\x01\x00\x00\x1c\x03\x03palisade-test-client-random!";

fn socket_traffic(net: &VethPair) -> Traffic {
    // DNS query and answer over UDP.
    let dns_server = net.b.run(|| udp_socket(ADDR_B, 53));
    let dns_client = net.a.run(|| udp_socket(ADDR_A, 0));
    let dns_port = udp_exchange(&dns_client, &dns_server, DNS_QUERY, true);

    // A DHCP message longer than the capture cap.
    let dhcp_len = CAP_DHCP as usize + 76;
    let dhcp_server = net.b.run(|| udp_socket(ADDR_B, 67));
    let dhcp_client = net.a.run(|| udp_socket(ADDR_A, 68));
    udp_exchange(&dhcp_client, &dhcp_server, &vec![0x01; dhcp_len], false);

    // A TCP session opening with a TLS handshake record, closed by FIN both ways.
    let listener = net.b.run(|| TcpListener::bind(sock(ADDR_B, 443)).unwrap());
    let mut client = net
        .a
        .run(|| TcpStream::connect_timeout(&sock(ADDR_B, 443), TIMEOUT).unwrap());
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.write_all(TLS_HELLO).unwrap();
    let mut buf = vec![0; TLS_HELLO.len()];
    server.read_exact(&mut buf).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 0, "client FIN");
    drop(server);
    assert_eq!(client.read(&mut buf).unwrap(), 0, "server FIN");
    let tls_port = client.local_addr().unwrap().port();
    drop(client);

    // A connection refused with RST (nothing listens on REFUSED_PORT).
    let refused = net
        .a
        .run(|| TcpStream::connect_timeout(&sock(ADDR_B, REFUSED_PORT), TIMEOUT));
    assert!(refused.is_err(), "port {REFUSED_PORT} must refuse");

    // Let the last ACKs of the TCP sessions pass the hooks before the rings are read.
    std::thread::sleep(Duration::from_millis(200));
    Traffic {
        dns_port,
        dhcp_len,
        tls_port,
    }
}

/// Source ports of the hand-made frames, one per case.
mod raw_port {
    pub const VLAN_IN_FRAME: u16 = 41001;
    pub const IPV6_EXT: u16 = 41002;
    pub const IPV6_FRAGMENT: u16 = 41003;
    pub const IPV4_OPTIONS: u16 = 41004;
    pub const IPV4_LATER_FRAGMENT: u16 = 41005;
    pub const TCP_DNS_SYN: u16 = 41008;
    pub const TCP_DNS_DATA: u16 = 41009;
    pub const TCP_BARE_ACK: u16 = 41010;
    pub const VLAN_OFFLOADED: u16 = 41012;
    pub const UDP_TRAILER: u16 = 41013;
    pub const IPV6_LATER_FRAGMENT: u16 = 41014;
}

/// Sends the hand-made frames out of `veth-a`; returns how many have unreadable headers.
fn raw_traffic(net: &VethPair) -> u64 {
    let sender = net.a.run(|| RawSender::new("veth-a"));
    let dns = |sport: u16, payload: &[u8]| udp(sport, 53, payload);

    // One 802.1Q tag inside the frame (packet sockets do not move it to skb metadata).
    sender.send(&cat(&[
        &ethernet(Some(VLAN_ID), ETH_P_IP),
        &ipv4(IPPROTO_UDP, &[], 0, &dns(raw_port::VLAN_IN_FRAME, b"vlan")),
    ]));
    // The same from the other side: on receive the kernel moves the tag into skb metadata
    // before the ingress hook runs, so veth-a's ingress sees skb->vlan_present instead.
    net.b.run(|| RawSender::new("veth-b")).send(&cat(&[
        &ethernet(Some(VLAN_ID), ETH_P_IP),
        &ipv4(
            IPPROTO_UDP,
            &[],
            0,
            &dns(raw_port::VLAN_OFFLOADED, b"vlan-accel"),
        ),
    ]));
    // IPv6 with hop-by-hop and destination options before UDP.
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IPV6),
        &ipv6(
            IPPROTO_HOPOPTS,
            &cat(&[
                &ipv6_options_header(IPPROTO_DSTOPTS),
                &ipv6_options_header(IPPROTO_UDP),
                &dns(raw_port::IPV6_EXT, b"v6"),
            ]),
        ),
    ]));
    // IPv6 first fragment (offset 0, more to come): parsed behind the fragment header, like
    // an IPv4 first fragment, its record flagged as not the whole message.
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IPV6),
        &ipv6(
            IPPROTO_FRAGMENT,
            &cat(&[
                &ipv6_fragment_header(IPPROTO_UDP),
                &dns(raw_port::IPV6_FRAGMENT, b"frag"),
            ]),
        ),
    ]));
    // IPv6 later fragment whose data looks like UDP to port 53: ignored.
    let mut later = ipv6_fragment_header(IPPROTO_UDP);
    later[2..4].copy_from_slice(&(8_u16 << 3).to_be_bytes());
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IPV6),
        &ipv6(
            IPPROTO_FRAGMENT,
            &cat(&[&later, &dns(raw_port::IPV6_LATER_FRAGMENT, b"later")]),
        ),
    ]));
    // IPv4 with 4 bytes of options (NOP NOP NOP EOL): IHL 6.
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(
            IPPROTO_UDP,
            &[1, 1, 1, 0],
            0,
            &dns(raw_port::IPV4_OPTIONS, b"opts"),
        ),
    ]));
    // UDP datagram followed by junk inside the IP packet, and Ethernet padding after it:
    // neither is payload.
    let datagram = cat(&[&dns(raw_port::UDP_TRAILER, b"data"), b"junk"]);
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(IPPROTO_UDP, &[], 0, &datagram),
        &[0; 10],
    ]));
    // IPv4 non-first fragment whose data happens to look like UDP to port 53: ignored.
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(
            IPPROTO_UDP,
            &[],
            185,
            &dns(raw_port::IPV4_LATER_FRAGMENT, b"later"),
        ),
    ]));
    // DNS over TCP: a SYN (no payload: no DNS record, but a flow) and a data segment.
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(
            IPPROTO_TCP,
            &[],
            0,
            &tcp(raw_port::TCP_DNS_SYN, 53, TCP_SYN, b""),
        ),
    ]));
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(
            IPPROTO_TCP,
            &[],
            0,
            &tcp(
                raw_port::TCP_DNS_DATA,
                53,
                TCP_ACK | TCP_PSH,
                b"\x00\x03abc",
            ),
        ),
    ]));
    // A bare ACK of an unknown connection: must not start a flow.
    sender.send(&cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(
            IPPROTO_TCP,
            &[],
            0,
            &tcp(raw_port::TCP_BARE_ACK, 80, TCP_ACK, b""),
        ),
    ]));
    // Unreadable headers: IPv4 cut inside its header, and UDP missing after a full IPv4 header.
    let full = cat(&[
        &ethernet(None, ETH_P_IP),
        &ipv4(IPPROTO_UDP, &[], 0, &dns(41011, b"")),
    ]);
    sender.send(&full[..14 + 10]);
    sender.send(&full[..14 + 20]);
    2
}

/// The records whose header `src_port` is `port`.
fn by_src_port(records: &[(RecordHeader, Vec<u8>)], port: u16) -> Vec<&(RecordHeader, Vec<u8>)> {
    records
        .iter()
        .filter(|(hdr, _)| hdr.src_port == port)
        .collect()
}

fn flow_payload(record: &(RecordHeader, Vec<u8>)) -> FlowRecord {
    FlowRecord::read(&record.1).unwrap()
}

#[test]
fn traffic_becomes_records() {
    if !have_root("traffic_becomes_records") {
        return;
    }
    // Drop order (reverse of declaration): programs detach, pins go, namespaces go.
    let net = VethPair::new();
    let bpffs = BpfFs::new();
    let (mut ebpf, shards) = load(&bpffs, None);
    let ifindex = net.a.run(|| {
        for (name, hook) in [
            (PROG_TC_INGRESS, TcAttachType::Ingress),
            (PROG_TC_EGRESS, TcAttachType::Egress),
        ] {
            classifier(&mut ebpf, name)
                .attach("veth-a", hook)
                .unwrap_or_else(|error| panic!("attaching {name}: {error:?}"));
        }
        nix::net::if_::if_nametoindex("veth-a").unwrap()
    });

    let traffic = socket_traffic(&net);
    // ARP and well-formed packets never count as unparsed.
    assert_eq!(stat(&ebpf, StatGroup::Global, StatSlot::NotParsed), 0);
    let unparsed = raw_traffic(&net);
    assert_eq!(
        stat(&ebpf, StatGroup::Global, StatSlot::NotParsed),
        unparsed
    );

    // Closed TCP flows are reported by the sweeper 1 s after their last packet (the final
    // ACKs count): arm it with long idle timeouts, so that only closed flows end.
    arm_sweeper(&mut ebpf, 60_000_000_000);
    std::thread::sleep(Duration::from_millis(2_500));

    let dns = drain(&mut ebpf, Ring::Dns);
    let dhcp = drain(&mut ebpf, Ring::Dhcp);
    let tls = drain(&mut ebpf, Ring::Tls);
    let flow = drain(&mut ebpf, Ring::Flow);
    for (hdr, _) in dns.iter().chain(&dhcp).chain(&tls).chain(&flow) {
        assert_eq!(hdr.ifindex, ifindex, "{hdr:?}");
    }

    // --- DNS over UDP: the query (egress) and the answer (ingress).
    let query = by_src_port(&dns, traffic.dns_port);
    assert_eq!(query.len(), 1, "{dns:#?}");
    let (hdr, payload) = query[0];
    assert_eq!(payload.as_slice(), DNS_QUERY);
    assert_eq!(
        (hdr.direction, hdr.ip_version, hdr.l4_proto, hdr.dst_port),
        (DIR_EGRESS, 4, 17, 53)
    );
    assert_eq!((hdr.src_addr, hdr.dst_addr), (v4(ADDR_A), v4(ADDR_B)));
    assert_eq!(hdr.vlan(), None);
    assert!(!hdr.is_truncated());
    assert_eq!(hdr.orig_payload_len as usize, DNS_QUERY.len());
    assert_ne!(hdr.ts_boot_ns, 0);
    let answer: Vec<_> = dns
        .iter()
        .filter(|(h, _)| h.src_port == 53 && h.dst_port == traffic.dns_port)
        .collect();
    assert_eq!(answer.len(), 1);
    assert_eq!(
        (answer[0].0.direction, answer[0].1.as_slice()),
        (DIR_INGRESS, &b"reply"[..])
    );

    // --- ARP (and neighbour discovery) share the DHCP ring: a's request for b, b's reply.
    let dhcp_ring = dhcp;
    let (dhcp, neigh): (Vec<_>, Vec<_>) = dhcp_ring
        .iter()
        .cloned()
        .partition(|(h, _)| h.kind == palisade_abi::KIND_DHCP);
    let arp: Vec<_> = neigh
        .iter()
        .filter(|(h, _)| h.kind == palisade_abi::KIND_ARP)
        .collect();
    for (op, dir, sender) in [(1u8, DIR_EGRESS, ADDR_A), (2, DIR_INGRESS, ADDR_B)] {
        assert!(
            arp.iter().any(|(h, p)| h.direction == dir
                && p.len() >= 28
                && p[7] == op
                && p[14..18] == sender
                && (h.ip_version, h.l4_proto, h.src_port) == (0, 0, 0)),
            "ARP op {op} from {sender:?}: {arp:#?}"
        );
    }
    assert!(
        neigh.iter().all(|(h, p)| match h.kind {
            palisade_abi::KIND_ARP => p.len() <= 64,
            palisade_abi::KIND_ND | palisade_abi::KIND_RA => h.l4_proto == 58 && p.len() >= 24,
            _ => false,
        }),
        "{neigh:#?}"
    );

    // --- DHCP: cut at the cap, and counted as truncated.
    assert_eq!(dhcp.len(), 1, "{dhcp:#?}");
    let (hdr, payload) = &dhcp[0];
    assert_eq!((hdr.src_port, hdr.dst_port), (68, 67));
    assert!(hdr.is_truncated());
    assert_eq!(
        (payload.len(), hdr.orig_payload_len as usize),
        (CAP_DHCP as usize, traffic.dhcp_len)
    );
    assert_eq!(
        stat(&ebpf, StatGroup::Ring(Ring::Dhcp), StatSlot::Truncated),
        1
    );

    // --- TLS: the segment that starts with a handshake record, as the first bytes of the
    //     followed client stream; the client's FIN ends the following.
    let hello = by_src_port(&tls, traffic.tls_port);
    assert_eq!(hello.len(), 1, "{tls:#?}");
    let (seg, bytes) = TlsSeg::read(&hello[0].1).unwrap();
    assert_eq!(bytes, TLS_HELLO);
    assert_eq!(
        (seg.dir, seg.offset, seg.flags),
        (TLS_DIR_CLIENT, 0, TLS_SEG_FIRST)
    );
    assert_ne!(seg.conn_ns, 0);
    assert_eq!((hello[0].0.dst_port, hello[0].0.l4_proto), (443, 6));
    let tls_stats = PerCpuArray::<_, u64>::try_from(ebpf.map(MAP_TLS_STATS).unwrap()).unwrap();
    let tls_stat = |s: TlsStat| -> u64 { tls_stats.get(&s.index(), 0).unwrap().iter().sum() };
    assert_eq!(tls_stat(TlsStat::Followed), 1);
    assert_eq!(tls_stat(TlsStat::Segments), 1);
    assert_eq!(tls_stat(TlsStat::Closed), 1, "the client's FIN");

    // --- Flows of the TCP session: one start (client -> server) and one FIN end that
    //     counts the final ACK (no phantom flow from it).
    let session: Vec<_> = flow
        .iter()
        .filter(|(h, _)| h.src_port == traffic.tls_port && h.dst_port == 443)
        .collect();
    assert_eq!(session.len(), 2, "{flow:#?}");
    let (start, end) = (session[0], session[1]);
    assert_eq!(start.0.kind(), Some(Kind::FlowStart));
    assert_eq!(
        (start.0.src_addr, start.0.dst_addr),
        (v4(ADDR_A), v4(ADDR_B))
    );
    assert_eq!(start.0.direction, DIR_EGRESS);
    let start_flow = flow_payload(start);
    assert_eq!(
        (start_flow.pkts_toserver, start_flow.end_reason),
        (1, FLOW_REASON_NONE)
    );
    assert_eq!(start_flow.tcp_flags_toserver, TCP_SYN);
    assert_eq!(end.0.kind(), Some(Kind::FlowEnd));
    assert_eq!(
        end.0.direction, DIR_EGRESS,
        "flow records carry the first packet's direction"
    );
    let end_flow = flow_payload(end);
    assert_eq!(end_flow.end_reason, FLOW_REASON_FIN);
    // SYN, ACK, hello, FIN, final ACK from the client; SYN-ACK, ACK(s), FIN from the server.
    assert!(
        end_flow.pkts_toserver >= 5 && end_flow.pkts_toclient >= 2,
        "{end_flow:?}"
    );
    let idle_ns = end.0.ts_boot_ns - end_flow.last_seen_ns;
    assert!(
        (1_000_000_000..2_200_000_000).contains(&idle_ns),
        "reported {idle_ns} ns after its last packet"
    );
    assert!(
        end_flow.bytes_toserver > TLS_HELLO.len() as u64,
        "{end_flow:?}"
    );
    assert_eq!(
        end_flow.tcp_flags_toserver & (TCP_SYN | TCP_FIN),
        TCP_SYN | TCP_FIN
    );
    assert_eq!(
        end_flow.tcp_flags_toclient & (TCP_SYN | TCP_FIN),
        TCP_SYN | TCP_FIN
    );
    assert_eq!(end_flow.first_seen_ns, start_flow.first_seen_ns);
    // Packets that make no record update last_seen from the coarse clock (a tick behind the
    // exact one at most, docs/flows.md): never behind the start, and within a tick of the end
    // record's idle measure above.
    assert!(end_flow.last_seen_ns >= end_flow.first_seen_ns);

    // --- Refused connection: start on the SYN, end on the RST.
    let refused: Vec<_> = flow
        .iter()
        .filter(|(h, _)| h.dst_port == REFUSED_PORT)
        .collect();
    assert_eq!(refused.len(), 2, "{flow:#?}");
    assert_eq!(refused[0].0.kind(), Some(Kind::FlowStart));
    assert_eq!(refused[1].0.kind(), Some(Kind::FlowEnd));
    let refused_end = flow_payload(refused[1]);
    assert_eq!(refused_end.end_reason, FLOW_REASON_RST);
    assert_eq!(refused_end.tcp_flags_toclient & TCP_RST, TCP_RST);

    // --- Hand-made frames.
    let vlan_in_frame = by_src_port(&dns, raw_port::VLAN_IN_FRAME);
    assert_eq!(vlan_in_frame.len(), 1);
    assert_eq!(vlan_in_frame[0].0.vlan(), Some(VLAN_ID));
    assert_eq!(vlan_in_frame[0].0.flags & FLAG_VLAN, FLAG_VLAN);
    assert_eq!(
        (vlan_in_frame[0].0.src_mac, vlan_in_frame[0].0.dst_mac),
        (MAC_A, MAC_B)
    );
    assert_eq!(vlan_in_frame[0].1.as_slice(), b"vlan");

    let vlan_offloaded = by_src_port(&dns, raw_port::VLAN_OFFLOADED);
    assert_eq!(vlan_offloaded.len(), 1);
    assert_eq!(vlan_offloaded[0].0.direction, DIR_INGRESS);
    assert_eq!(vlan_offloaded[0].0.vlan(), Some(VLAN_ID));
    assert_eq!(vlan_offloaded[0].1.as_slice(), b"vlan-accel");

    let v6 = by_src_port(&dns, raw_port::IPV6_EXT);
    assert_eq!(v6.len(), 1, "IPv6 behind two extension headers");
    assert_eq!((v6[0].0.ip_version, v6[0].0.l4_proto), (6, 17));
    assert_eq!(
        (v6[0].0.src_addr, v6[0].0.dst_addr),
        (mapped_v6(ADDR_A), mapped_v6(ADDR_B))
    );
    assert_eq!(v6[0].1.as_slice(), b"v6");

    let options = by_src_port(&dns, raw_port::IPV4_OPTIONS);
    assert_eq!(options.len(), 1, "IPv4 with IHL 6");
    assert_eq!(options[0].1.as_slice(), b"opts");

    let trailer = by_src_port(&dns, raw_port::UDP_TRAILER);
    assert_eq!(trailer.len(), 1);
    assert_eq!(trailer[0].1.as_slice(), b"data");
    assert_eq!(trailer[0].0.orig_payload_len, 4);
    let trailer_flow = by_src_port(&flow, raw_port::UDP_TRAILER);
    let trailer_flow = flow_payload(trailer_flow[0]);
    assert_eq!(
        trailer_flow.bytes_toserver,
        14 + 20 + 8 + 4 + 4 + 10,
        "the frame as sent, Ethernet padding included"
    );
    assert_eq!(
        trailer_flow.payload_bytes_toserver, 4,
        "the UDP payload: no junk, no padding"
    );
    // The VLAN tag the kernel moved into skb metadata still counts in the frame.
    let vlan_flow = flow_payload(by_src_port(&flow, raw_port::VLAN_OFFLOADED)[0]);
    assert_eq!(
        vlan_flow.bytes_toserver,
        14 + 4 + 20 + 8 + 10,
        "offloaded tag counted back"
    );

    let v6_first = by_src_port(&dns, raw_port::IPV6_FRAGMENT);
    assert_eq!(v6_first.len(), 1, "IPv6 first fragment recorded");
    assert_ne!(
        v6_first[0].0.flags & FLAG_TRUNCATED,
        0,
        "and flagged truncated"
    );
    assert_eq!(by_src_port(&flow, raw_port::IPV6_FRAGMENT).len(), 1);
    for ignored in [raw_port::IPV6_LATER_FRAGMENT, raw_port::IPV4_LATER_FRAGMENT] {
        assert!(
            by_src_port(&dns, ignored).is_empty(),
            "fragment from port {ignored}"
        );
        assert!(
            by_src_port(&flow, ignored).is_empty(),
            "fragment from port {ignored}"
        );
    }

    assert!(
        by_src_port(&dns, raw_port::TCP_DNS_SYN).is_empty(),
        "empty TCP DNS segment"
    );
    let syn_flow = by_src_port(&flow, raw_port::TCP_DNS_SYN);
    assert_eq!(syn_flow.len(), 1);
    assert_eq!(flow_payload(syn_flow[0]).tcp_flags_toserver, TCP_SYN);
    let tcp_dns = by_src_port(&dns, raw_port::TCP_DNS_DATA);
    assert_eq!(tcp_dns.len(), 1);
    assert_eq!(
        (tcp_dns[0].0.l4_proto, tcp_dns[0].1.as_slice()),
        (6, &b"\x00\x03abc"[..])
    );
    assert!(
        by_src_port(&flow, raw_port::TCP_BARE_ACK).is_empty(),
        "bare ACK started a flow"
    );

    // --- Counters agree with what the rings held; nothing was lost.
    for (ring, records) in [
        (Ring::Dns, &dns),
        (Ring::Dhcp, &dhcp_ring),
        (Ring::Tls, &tls),
        (Ring::Flow, &flow),
    ] {
        let group = StatGroup::Ring(ring);
        assert_eq!(
            stat(&ebpf, group, StatSlot::Records),
            records.len() as u64,
            "{}",
            ring.name()
        );
        assert_eq!(stat(&ebpf, group, StatSlot::RingFull), 0, "{}", ring.name());
    }
    assert_eq!(
        stat(&ebpf, StatGroup::Ring(Ring::Flow), StatSlot::MapFull),
        0
    );
    let packets = stat(&ebpf, StatGroup::Global, StatSlot::Records);
    assert!(
        packets >= (dns.len() + dhcp.len() + tls.len() + 10) as u64,
        "{packets} packets"
    );

    // --- Flow table: the UDP DNS flow is live and normalized; the closed TCP flows are gone.
    let table = flow_dump(&shards);
    let lookup = |key: &FlowKey| table.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let dns_key = FlowKey {
        addr_lo: v4(ADDR_A),
        addr_hi: v4(ADDR_B),
        port_lo: traffic.dns_port,
        port_hi: 53,
        l4_proto: 17,
        ip_version: 4,
        _pad: 0,
    };
    let value = lookup(&dns_key).unwrap_or_else(|| panic!("DNS flow missing: {table:?}"));
    assert_eq!(
        (value.pkts, value.client_is_lo, value.ifindex),
        ([1, 1], 1, ifindex)
    );
    assert_eq!(value.bytes[0], 14 + 20 + 8 + DNS_QUERY.len() as u64);
    assert_eq!(value.payload_bytes, [DNS_QUERY.len() as u64, 5]);
    // The VLAN is not part of the key; the entry remembers the first packet's tag.
    let vlan_key = FlowKey {
        port_lo: raw_port::VLAN_OFFLOADED,
        ..dns_key
    };
    let vlan_value = lookup(&vlan_key).unwrap_or_else(|| panic!("VLAN flow missing: {table:?}"));
    assert_eq!(
        (vlan_value.vlan_id, vlan_value.flags & FLOW_F_VLAN),
        (VLAN_ID, FLOW_F_VLAN)
    );
    for (key, _) in &table {
        let ports = [key.port_lo, key.port_hi];
        assert!(
            !ports.contains(&traffic.tls_port),
            "closed session still in table: {key:?}"
        );
        assert!(
            !ports.contains(&raw_port::TCP_BARE_ACK),
            "bare ACK in table: {key:?}"
        );
    }
}

#[test]
fn idle_flows_end_by_the_kernel_timer() {
    if !have_root("idle_flows_end_by_the_kernel_timer") {
        return;
    }
    let net = VethPair::new();
    let bpffs = BpfFs::new();
    let (mut ebpf, _shards) = load(&bpffs, Some(1));
    net.a.run(|| {
        classifier(&mut ebpf, PROG_TC_EGRESS)
            .attach("veth-a", TcAttachType::Egress)
            .unwrap();
    });
    arm_sweeper(&mut ebpf, 1_500_000_000);

    let server = net.b.run(|| udp_socket(ADDR_B, 5353));
    let client = net.a.run(|| udp_socket(ADDR_A, 0));
    let mut port = 0;
    for _ in 0..3 {
        port = udp_exchange(&client, &server, b"tick", false);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Idle now: the flow ends within timeout + one sweep period (+ slack).
    std::thread::sleep(Duration::from_millis(1_500 + 600 + 400));
    let records = drain(&mut ebpf, Ring::Flow);
    let ours: Vec<_> = by_src_port(&records, port);
    let kinds: Vec<_> = ours.iter().map(|(h, _)| h.kind().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&Kind::FlowStart), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&Kind::FlowEnd), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == Kind::FlowUpdate).count() >= 1,
        "a flow living 0.6 s+ with a 0.4 s update interval: {kinds:?}"
    );
    let end = flow_payload(ours.last().unwrap());
    assert_eq!(end.end_reason, FLOW_REASON_TIMEOUT);
    assert_eq!((end.pkts_toserver, end.payload_bytes_toserver), (3, 12));
    // The second and third datagrams make no record: last_seen comes from the coarse clock
    // (docs/flows.md), at most a tick (<= 10 ms) behind their exact time, 0.6 s after the
    // first one's (exact: it started the flow).
    let lived_ns = end.last_seen_ns - end.first_seen_ns;
    assert!(
        (590_000_000..1_200_000_000).contains(&lived_ns),
        "last_seen {lived_ns} ns after first_seen for packets 0.6 s apart"
    );
    let idle_ns = ours.last().unwrap().0.ts_boot_ns - end.last_seen_ns;
    assert!(
        (1_500_000_000..1_500_000_000 + 1_000_000_000).contains(&idle_ns),
        "ended {idle_ns} ns after the last packet"
    );

    let counter = |stat: FlowStat| -> u64 {
        let stats = PerCpuArray::<_, u64>::try_from(ebpf.map(MAP_FLOW_STATS).unwrap()).unwrap();
        stats.get(&stat.index(), 0).unwrap().iter().sum()
    };
    assert!(counter(FlowStat::EndedTimeout) >= 1);
    assert!(counter(FlowStat::Updates) >= 1);
    let sweep =
        flow_table::sweep_state(maps::map_fd(ebpf.map(MAP_FLOW_SWEEP).unwrap()).unwrap()).unwrap();
    assert!(sweep.iter().all(|s| s.sweeps >= 5), "{sweep:?}");
    assert!(sweep.iter().all(|s| s.live == 0), "{sweep:?}");
}

#[test]
fn flow_starts_only_where_the_flow_worker_alerts() {
    if !have_root("flow_starts_only_where_the_flow_worker_alerts") {
        return;
    }
    let net = VethPair::new();
    let bpffs = BpfFs::new();
    let (mut ebpf, shards) = load(&bpffs, Some(1));
    net.a.run(|| {
        classifier(&mut ebpf, PROG_TC_EGRESS)
            .attach("veth-a", TcAttachType::Egress)
            .unwrap();
    });
    // `[flow] start_events = false`, as the supervisor writes it.
    let set_starts = |ebpf: &Ebpf, starts| {
        let capture = maps::map_fd(ebpf.map(MAP_CAPTURE_CONFIG).unwrap()).unwrap();
        palisade_ebpf::capture::set(capture, 0, starts).unwrap();
    };
    set_starts(&ebpf, FLOW_STARTS_ALERTS);

    let client = net.a.run(|| udp_socket(ADDR_A, 0));
    let quiet = net.b.run(|| udp_socket(ADDR_B, 5353));
    let doq = net.b.run(|| udp_socket(ADDR_B, 853));
    let https = net.b.run(|| udp_socket(ADDR_B, 443));
    let quiet_port = udp_exchange(&client, &quiet, b"no start", false);
    let other = net.a.run(|| udp_socket(ADDR_A, 0));
    let doq_port = udp_exchange(&other, &doq, b"start", false);
    let third = net.a.run(|| udp_socket(ADDR_A, 0));
    let https_port = udp_exchange(&third, &https, b"start", false);

    let records = drain(&mut ebpf, Ring::Flow);
    let starts = |port| {
        by_src_port(&records, port)
            .iter()
            .filter(|(h, _)| h.kind() == Some(Kind::FlowStart))
            .count()
    };
    assert_eq!(
        (starts(quiet_port), starts(doq_port), starts(https_port)),
        (0, 1, 1),
        "start records for UDP to 5353, 853, 443"
    );
    // The flow without a start record is tracked all the same (its end record comes).
    let tracked: Vec<u16> = flow_dump(&shards)
        .iter()
        .map(|(k, v)| {
            if v.client_is_lo != 0 {
                k.port_lo
            } else {
                k.port_hi
            }
        })
        .collect();
    assert!(tracked.contains(&quiet_port), "{tracked:?}");

    // `start_events = true`: every flow again.
    set_starts(&ebpf, FLOW_STARTS_ALL);
    let fourth = net.a.run(|| udp_socket(ADDR_A, 0));
    let port = udp_exchange(&fourth, &quiet, b"start", false);
    let records = drain(&mut ebpf, Ring::Flow);
    assert_eq!(
        by_src_port(&records, port)
            .iter()
            .filter(|(h, _)| h.kind() == Some(Kind::FlowStart))
            .count(),
        1
    );
}
