//! `palisade-bench worker-cost`: how many events per second a worker's protocol writes on one
//! core. Records as the kernel writes them (header + payload) are fed to the protocol
//! in-process through `palisade_worker_runtime::offline` (the same `on_record`, event
//! building, JSON and sink as the running worker; no ring, no IPC), drained in batches of
//! 4,096 as the worker drains its ring, and the events written to /dev/null (or `--out`).
//!
//! `dns`: alternating queries and answers (A for a 3-label name; the answer a CNAME and two
//! A records), each answer matching its query (correlation, RTT). `flow`: flow end records
//! (TCP closed by FIN and UDP timed out, alternating), one per flow. `dhcp`: DISCOVER, OFFER,
//! REQUEST, ACK exchanges of 4,096 clients (transactions, inventory, one event per message;
//! a `new_device` alert for each client's first exchange). `tls`: TLS handshakes,
//! each a client segment with Chrome's ClientHello and a server segment with a TLS 1.3
//! ServerHello (two events, JA3/JA4/JA3S computed). `quic`: QUIC connections, each one
//! Initial datagram sealed with its own DCID carrying Chrome's ClientHello (key derivation,
//! header protection, AES-GCM and the hello: one event). Prints one JSON object:
//! records, events, seconds, events per second and ns per event. Run it under
//! `valgrind --tool=callgrind` for instruction counts that do not depend on the machine's
//! load.

use std::{
    os::fd::OwnedFd,
    path::PathBuf,
    time::{Duration, Instant},
};

use palisade_abi::{FlowRecord, KIND_DHCP, KIND_DNS, KIND_FLOW_END, RECORD_MAGIC, RecordHeader};
use palisade_worker_runtime::offline::Offline;

use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which worker's protocol: `dns`, `dhcp`, `flow`, `tls` or `quic` (the TLS worker's QUIC
    /// path).
    #[arg(long, default_value = "dns")]
    worker: String,
    /// Records to feed.
    #[arg(long, default_value_t = 1_000_000)]
    records: u32,
    /// Where events go (default /dev/null).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Records per drain, as the worker's `DRAIN_BUDGET`.
const BATCH: u32 = 4096;

/// A DNS message: header, one question, and `answers` as (type, rdata) for the qname.
fn dns_message(id: u16, qname: &str, response: bool, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    let ancount = answers.len() as u16;
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&ancount.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for label in qname.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    for (rtype, rdata) in answers {
        m.extend_from_slice(&[0xc0, 12]); // the question's name
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]); // IN, TTL 3600
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

/// A ring record: header (as the observer fills it) and payload.
fn record(seq: u32, response: bool, payload: &[u8]) -> Vec<u8> {
    record_of(KIND_DNS, 17, seq, response, 53, payload)
}

/// A ring record of `kind` and L4 protocol `l4` between a client and a server port.
fn record_of(
    kind: u16,
    l4: u8,
    seq: u32,
    response: bool,
    server_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let client = [192, 168, 1, 20 + (seq % 200) as u8];
    let server = [192, 168, 1, 1];
    let port = 20_000 + (seq % 40_000) as u16;
    let mut src_addr = [0u8; 16];
    let mut dst_addr = [0u8; 16];
    let (src, dst, sport, dport) = if response {
        (server, client, server_port, port)
    } else {
        (client, server, port, server_port)
    };
    src_addr[..4].copy_from_slice(&src);
    dst_addr[..4].copy_from_slice(&dst);
    let hdr = RecordHeader {
        magic: RECORD_MAGIC,
        abi_version: palisade_abi::ABI_VERSION,
        kind,
        len: (RecordHeader::SIZE + payload.len()) as u32,
        ifindex: 2,
        ts_boot_ns: 1_000_000_000 + u64::from(seq) * 1_000,
        direction: palisade_abi::DIR_INGRESS,
        ip_version: 4,
        l4_proto: l4,
        flags: 0,
        vlan_id: 0,
        src_port: sport,
        dst_port: dport,
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        _pad0: 0,
        src_addr,
        dst_addr,
        payload_len: payload.len() as u32,
        orig_payload_len: payload.len() as u32,
        flow_start_ns: 999_000_000 + u64::from(seq),
    };
    let mut out = hdr.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The DNS workload: `n` records, queries and their answers alternating.
fn dns_records(n: u32) -> Vec<Vec<u8>> {
    let mut cname = Vec::new();
    for label in ["edge", "cdn", "example", "net"] {
        cname.push(label.len() as u8);
        cname.extend_from_slice(label.as_bytes());
    }
    cname.push(0);
    // Distinct names, a few hundred of them, as a busy resolver sees.
    (0..n)
        .map(|i| {
            let pair = i / 2;
            let id = pair as u16;
            let name = format!("www{}.example.com", pair % 512);
            let payload = if i % 2 == 0 {
                dns_message(id, &name, false, &[])
            } else {
                dns_message(
                    id,
                    &name,
                    true,
                    &[
                        (5, cname.clone()),
                        (1, vec![93, 184, 216, 34]),
                        (1, vec![93, 184, 216, 35]),
                    ],
                )
            };
            record(pair, i % 2 == 1, &payload)
        })
        .collect()
}

/// The flow workload: `n` flow end records, TCP (FIN) and UDP (timeout) alternating.
fn flow_records(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let tcp = i % 2 == 0;
            let f = FlowRecord {
                first_seen_ns: 1_000_000_000 + u64::from(i) * 1_000,
                last_seen_ns: 4_000_000_000 + u64::from(i) * 1_000,
                pkts_toserver: 12,
                pkts_toclient: 10,
                bytes_toserver: 1_800,
                bytes_toclient: 14_000,
                payload_bytes_toserver: 900,
                payload_bytes_toclient: 13_000,
                tcp_flags_toserver: if tcp { 0x1b } else { 0 },
                tcp_flags_toclient: if tcp { 0x1b } else { 0 },
                end_reason: if tcp {
                    palisade_abi::FLOW_REASON_FIN
                } else {
                    palisade_abi::FLOW_REASON_TIMEOUT
                },
                ..FlowRecord::default()
            };
            let (l4, port) = if tcp { (6, 443) } else { (17, 123) };
            record_of(KIND_FLOW_END, l4, i, false, port, &f.to_bytes())
        })
        .collect()
}

/// A DHCPv4 message of `kind` (option 53) for client number `client`, with what real
/// clients and servers send: client id, host name, vendor class and parameter list from
/// the client; server id, lease, mask, router and DNS from the server.
fn dhcp_message(kind: u8, xid: u32, client: u32) -> Vec<u8> {
    let reply = matches!(kind, 2 | 5);
    let mac = [
        0x00,
        0x11,
        0x32,
        (client >> 16) as u8,
        (client >> 8) as u8,
        client as u8,
    ];
    let mut m = vec![if reply { 2 } else { 1 }, 1, 6, 0];
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0x80, 0]);
    m.extend_from_slice(&[0; 4]); // ciaddr
    let yiaddr = [10, (client >> 16) as u8, (client >> 8) as u8, client as u8];
    m.extend_from_slice(if reply { &yiaddr } else { &[0; 4] });
    m.extend_from_slice(&[0; 8]); // siaddr, giaddr
    m.extend_from_slice(&mac);
    m.extend_from_slice(&[0; 10 + 64 + 128]);
    m.extend_from_slice(&[0x63, 0x82, 0x53, 0x63, 53, 1, kind]);
    if reply {
        m.extend_from_slice(&[54, 4, 10, 0, 0, 1, 51, 4, 0, 0, 0x0e, 0x10]);
        m.extend_from_slice(&[1, 4, 255, 0, 0, 0, 3, 4, 10, 0, 0, 1, 6, 4, 10, 0, 0, 1]);
    } else {
        m.extend_from_slice(&[61, 7, 1]);
        m.extend_from_slice(&mac);
        m.extend_from_slice(&[
            12,
            6,
            b'h',
            b'o',
            b's',
            b't',
            b'-',
            b'a' + (client % 26) as u8,
        ]);
        m.extend_from_slice(&[60, 12]);
        m.extend_from_slice(b"udhcp 1.36.1");
        m.extend_from_slice(&[55, 7, 1, 3, 6, 12, 15, 28, 42]);
        if kind == 3 {
            m.extend_from_slice(&[50, 4]);
            m.extend_from_slice(&yiaddr);
            m.extend_from_slice(&[54, 4, 10, 0, 0, 1]);
        }
    }
    m.push(255);
    m
}

/// The DHCP workload: `n` records, DISCOVER, OFFER, REQUEST, ACK exchanges (one
/// transaction each) of 4,096 clients in turn, so the inventory holds 4,096 devices
/// and every fourth message completes a transaction.
fn dhcp_records(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let exchange = i / 4;
            let kind = match i % 4 {
                0 => 1u8,
                1 => 2,
                2 => 3,
                _ => 5,
            };
            let client = exchange % 4096;
            let payload = dhcp_message(kind, 0x1000_0000 + exchange, client);
            record_of(KIND_DHCP, 17, exchange, matches!(kind, 2 | 5), 67, &payload)
        })
        .collect()
}

/// The payload of the first TLS record of a captured direction: a handshake message with
/// its 4-byte header.
fn first_message(stream: &[u8]) -> &[u8] {
    let len = match stream.get(3..5) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => 0,
    };
    stream.get(5..5 + len).unwrap_or_default()
}

const CLIENT: &[u8] =
    include_bytes!("../../worker-tls/testdata/sv_tls13-chrome-grease-tcp-and-quic.client.bin");
const SERVER: &[u8] =
    include_bytes!("../../worker-tls/testdata/sv_tls13-chrome-grease-tcp-and-quic.server.bin");

/// The TLS workload: `n` records, a ClientHello segment and a ServerHello segment per
/// connection (each the whole first record of its direction).
fn tls_records(n: u32) -> Vec<Vec<u8>> {
    let client = first_message(CLIENT).len() + 5;
    let server = first_message(SERVER).len() + 5;
    (0..n)
        .map(|i| {
            let conn = i / 2;
            let from_server = i % 2 == 1;
            let bytes = if from_server {
                SERVER.get(..server)
            } else {
                CLIENT.get(..client)
            }
            .unwrap_or_default();
            let seg = palisade_abi::TlsSeg {
                conn_ns: 1_000 + u64::from(conn),
                dir: u8::from(from_server),
                flags: palisade_abi::TLS_SEG_FIRST | palisade_abi::TLS_SEG_LAST,
                ..palisade_abi::TlsSeg::default()
            };
            let mut payload = seg.to_bytes().to_vec();
            payload.extend_from_slice(bytes);
            record_of(palisade_abi::KIND_TLS, 6, conn, from_server, 443, &payload)
        })
        .collect()
}

/// The QUIC workload: `n` client Initials, one per connection, each with its own DCID.
fn quic_records(n: u32) -> Vec<Vec<u8>> {
    use palisade_worker_tls::quic::packet::{self, Sender, Version};
    // The record's payload is the ClientHello message with its handshake header, as a
    // CRYPTO frame carries it.
    let frames = packet::crypto_frame(0, first_message(CLIENT));
    (0..n)
        .map(|i| {
            let dcid = [&i.to_be_bytes()[..], &[0xd0, 0xc1, 0xd0, 0xc1]].concat();
            let datagram = packet::seal(Version::V1, &dcid, Sender::Client, 0, &frames);
            record_of(palisade_abi::KIND_QUIC, 17, i, false, 443, &datagram)
        })
        .collect()
}

fn sink(out: Option<&PathBuf>) -> Result<OwnedFd> {
    let path = out.cloned().unwrap_or_else(|| PathBuf::from("/dev/null"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map(OwnedFd::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Feeds `records` to `protocol` in drains of [`BATCH`]; returns the counters and the time.
fn feed<P: palisade_worker_runtime::Protocol>(
    protocol: P,
    records: &[Vec<u8>],
    out: Option<&PathBuf>,
) -> Result<(palisade_ipc::messages::WorkerStats, Duration)> {
    let mut worker = Offline::new(
        protocol,
        sink(out)?,
        &[palisade_ipc::messages::InterfaceName {
            ifindex: 2,
            name: "eth0".into(),
        }],
    );
    let started = Instant::now();
    for batch in records.chunks(BATCH as usize) {
        for item in batch {
            worker.record(item);
        }
        worker.tick();
    }
    let elapsed = started.elapsed().max(Duration::from_nanos(1));
    Ok((worker.finish(), elapsed))
}

pub fn main(args: &Args) -> Result<()> {
    let out = args.out.as_ref();
    let (stats, elapsed) = match args.worker.as_str() {
        "dns" => feed(
            palisade_worker_dns::worker::Dns::default(),
            &dns_records(args.records),
            out,
        )?,
        "dhcp" => feed(
            palisade_worker_dhcp::worker::Dhcp::default(),
            &dhcp_records(args.records),
            out,
        )?,
        "flow" => feed(
            palisade_worker_flow::worker::Flow::default(),
            &flow_records(args.records),
            out,
        )?,
        "tls" => feed(
            palisade_worker_tls::worker::Tls::default(),
            &tls_records(args.records),
            out,
        )?,
        "quic" => feed(
            palisade_worker_tls::worker::Tls::default(),
            &quic_records(args.records),
            out,
        )?,
        other => {
            return Err(format!(
                "worker-cost: no workload for worker {other:?} (dns, dhcp, flow, tls, quic)"
            ));
        }
    };
    let secs = elapsed.as_secs_f64();
    let report = serde_json::json!({
        "worker": args.worker,
        "records": stats.records,
        "events": stats.events,
        "drops": stats.drops.iter().map(|d| (d.reason.clone(), d.count)).collect::<Vec<_>>(),
        "seconds": secs,
        "events_per_second": (stats.events as f64 / secs).round(),
        "ns_per_event": (secs * 1e9 / stats.events.max(1) as f64).round(),
        "records_per_second": (stats.records as f64 / secs).round(),
    });
    println!("{report}");
    Ok(())
}
