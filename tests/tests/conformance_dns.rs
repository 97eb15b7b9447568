//! DNS conformance against the reference corpus (`../shared/corpus`).
//!
//! Every capture under `pcaps/dns/` is replayed live (tcpreplay out of the
//! peer's veth end, so the daemon's TC programs see the frames on `pal0`
//! ingress) and the DNS events that come out are compared with the records
//! of `expected/dns.jsonl`. One report lists, per capture and frame, every
//! missing record, extra event and differing field; the test fails if there
//! is anything in it. Captures named `malformed_*` must also leave the daemon
//! and the DNS worker running (same pid) and raise the worker's drop counters.
//!
//! Matching: each event is tied to the first not yet used frame of the
//! capture with the same transport, addresses, ports, DNS id and QR bit
//! (read from the frame's bytes); an expected record takes the event of its
//! frame. Records left over take the first left-over event with the same
//! transport, addresses and ports (so a wrong id or QR shows as a differing
//! field rather than as missing + extra). Events still left are extra.
//!
//! Field names: the corpus writes `dst_ip`/`dst_port`/`transport`/`qname`/
//! `qtype`/`qr: query|response`/`answers[].name|type|data` where our events
//! have `dest_ip`/`dest_port`/`proto`/`dns.rrname`/`dns.rrtype`/
//! `dns.type: query|answer`/`dns.answers[].rrname|rrtype|rdata`. `flags` is
//! compared as a number (`"0x0120"` == `"120"`). Differences on fields in a
//! record's `peer_fields` are hard ("peer"); others are tshark's reading
//! ("tshark"). Checks on what the replayed frame itself fixes (MACs,
//! interface, direction, VLAN) are listed as "frame"; an event marked
//! `dns.partial` for a message of a well-formed capture that tshark decodes
//! without error is listed as "decode". All of them fail the test.

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    path::Path,
    time::{Duration, Instant},
};

use palisade_tests::{
    Daemon, Lab, SENSOR_IF, base_config,
    corpus::{self, Capture, EventCursor, Frame, Packet, TcpFollower},
    run,
};
use serde_json::Value;

/// Replay rate: slow enough to keep order and lose nothing, fast enough.
const PPS: u32 = 2000;
/// After the expected number of events arrived: wait this long for extras.
const SETTLE: Duration = Duration::from_millis(300);
/// When fewer events than expected arrive: give up after this much silence.
const QUIET: Duration = Duration::from_millis(1000);
/// Hard cap per capture.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// DNS id of the frame that checks the replay path (not part of the corpus).
const PROBE_ID: u16 = 0xbeef;
/// How long the worker waits before reporting a query as unanswered
/// (`dns.timeout_ms` of its `unanswered` events).
const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(5);

/// Fields of the corpus that no event field corresponds to.
const NOT_CARRIED: &[&str] = &["qdcount", "ancount", "tshark_malformed"];

/// Expected values we believe are wrong, each with the evidence. A listed
/// difference is reported as a note, not a failure; anything not listed
/// still fails. (pcap, frame, field; "drops" = the malformed-capture drop
/// counter check.)
const CORPUS_ERRATA: &[(&str, Option<u64>, &str, &str)] = &[
    (
        "malformed_sv_dns-answer-emptydata.pcap",
        Some(4),
        "queries",
        "an UPDATE (opcode 5) message: its zone section is the question section on the wire (RFC 2136 §2.3, \
         qdcount 1: ad.nwra.com SOA); tshark files it under \"Zones\", which the corpus generator read as 0 queries",
    ),
    (
        "malformed_sv_dns-answer-emptydata.pcap",
        Some(6),
        "queries",
        "as frame 4: UPDATE zone section (tshark: \"Zones: 1\")",
    ),
    (
        "malformed_sv_dns-forward-pointer.pcap",
        None,
        "drops",
        "Suricata 8's test for this capture expects stats.app_layer.error.dns_udp.parser == 0: the forward \
         compression pointer is decodable (tshark and Suricata both decode two codemonkey.net questions), and \
         Palisade decodes it too, so nothing is malformed and nothing is dropped",
    ),
    (
        "malformed_sv_dns-answer-emptydata.pcap",
        None,
        "drops",
        "the record with empty data is class ANY, rdlength 0, which RFC 2136 §2.5.2 allows (delete an RRset); \
         tshark flags nothing and Suricata's test only expects 2 DNS events: the capture is well formed, so \
         nothing is dropped",
    ),
];

fn erratum(pcap: &str, frame: Option<u64>, field: &str) -> Option<&'static str> {
    CORPUS_ERRATA
        .iter()
        .find(|(p, f, name, _)| {
            *p == pcap && (f.is_none() || *f == frame) && field.starts_with(name)
        })
        .map(|(_, _, _, why)| *why)
}
/// Bookkeeping fields of the corpus, not values.
const METADATA: &[&str] = &[
    "pcap",
    "source",
    "peer_fields",
    "disagreements",
    "note",
    "msg_index",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Peer,
    Tshark,
    Frame,
    Decode,
    Correlation,
}

impl Group {
    fn tag(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Tshark => "tshark",
            Self::Frame => "frame",
            Self::Decode => "decode",
            Self::Correlation => "correlation",
        }
    }
}

#[derive(Debug)]
struct Diff {
    group: Group,
    field: String,
    expected: String,
    got: String,
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(absent)".to_owned(),
        Some(v) => v.to_string(),
    }
}

/// The (transport, src, sport, dst, dport) of an event.
fn event_tuple(e: &Value) -> Option<Tuple> {
    Some((
        e["proto"].as_str()?.to_ascii_lowercase(),
        e["src_ip"].as_str()?.parse().ok()?,
        e["src_port"].as_u64()?,
        e["dest_ip"].as_str()?.parse().ok()?,
        e["dest_port"].as_u64()?,
    ))
}

fn packet_tuple(p: &Packet) -> Tuple {
    (
        p.transport().to_owned(),
        p.src_ip,
        u64::from(p.src_port),
        p.dst_ip,
        u64::from(p.dst_port),
    )
}

fn expected_tuple(r: &Value) -> Option<Tuple> {
    Some((
        r["transport"].as_str()?.to_owned(),
        r["src_ip"].as_str()?.parse().ok()?,
        r["src_port"].as_u64()?,
        r["dst_ip"].as_str()?.parse().ok()?,
        r["dst_port"].as_u64()?,
    ))
}

type Tuple = (String, IpAddr, u64, IpAddr, u64);
/// What ties an event to a message: transport and addresses, DNS id, QR bit.
type MsgKey = (Tuple, u64, bool);

/// Every DNS message the frames carry, as (frame index, key), in the order
/// they complete: one per UDP/53 datagram; over TCP/53 the streams are
/// followed and cut at the 2-byte length prefixes, and a message belongs to
/// the frame that completes it (as the corpus counts `frame`).
fn frame_messages(packets: &[Option<Packet>]) -> Vec<(usize, MsgKey)> {
    let header = |m: &[u8]| -> Option<(u64, bool)> {
        Some((
            u64::from(u16::from_be_bytes([*m.first()?, *m.get(1)?])),
            m.get(2)? & 0x80 != 0,
        ))
    };
    let mut tcp = TcpFollower::default();
    let mut out = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let Some(p) = p else { continue };
        if p.src_port != 53 && p.dst_port != 53 {
            continue;
        }
        if p.l4_proto == 17 {
            if let Some((id, qr)) = header(&p.payload) {
                out.push((i, (packet_tuple(p), id, qr)));
            }
            continue;
        }
        let buf = tcp.push(p);
        while let Some(&[hi, lo]) = buf.get(..2) {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(msg) = buf.get(2..2 + len) else {
                break;
            };
            if let Some((id, qr)) = header(msg) {
                out.push((i, (packet_tuple(p), id, qr)));
            }
            buf.drain(..2 + len);
        }
    }
    out
}

fn event_qr(e: &Value) -> Option<bool> {
    e["dns"]["qr"]
        .as_bool()
        .or_else(|| e["dns"]["type"].as_str().map(|t| t == "answer"))
}

/// Parses `"0x8180"` or `"8180"` as hex.
fn hex_flags(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn cmp(
    diffs: &mut Vec<Diff>,
    group: Group,
    field: &str,
    expected: &Value,
    got: Option<&Value>,
    equal: bool,
) {
    if !equal {
        diffs.push(Diff {
            group,
            field: field.to_owned(),
            expected: expected.to_string(),
            got: show(got),
        });
    }
}

/// Compares `exp[list]` (objects with corpus names) with `got` (objects with
/// event names) element by element; `names` maps corpus keys to event keys.
fn cmp_list(
    diffs: &mut Vec<Diff>,
    group: Group,
    field: &str,
    exp: &Value,
    got: Option<&Value>,
    names: &[(&str, &str)],
    unknown: &mut BTreeSet<String>,
) {
    let empty = Vec::new();
    let exp_list = exp.as_array().unwrap_or(&empty);
    // Events omit empty lists.
    let got_list = match got {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(a)) => a,
        Some(other) => {
            diffs.push(Diff {
                group,
                field: field.to_owned(),
                expected: exp.to_string(),
                got: other.to_string(),
            });
            return;
        }
    };
    if exp_list.len() != got_list.len() {
        diffs.push(Diff {
            group,
            field: format!("{field}.len"),
            expected: exp_list.len().to_string(),
            got: format!("{} {}", got_list.len(), Value::Array(got_list.clone())),
        });
    }
    for (i, (e, g)) in exp_list.iter().zip(got_list).enumerate() {
        let Some(obj) = e.as_object() else { continue };
        for (k, v) in obj {
            let Some(&(_, ek)) = names.iter().find(|(ck, _)| ck == k) else {
                unknown.insert(format!("{field}[].{k}"));
                continue;
            };
            let gv = g.get(ek);
            let equal = gv == Some(v);
            cmp(diffs, group, &format!("{field}[{i}].{k}"), v, gv, equal);
        }
    }
}

/// Every difference between an expected record and the event matched to it.
fn compare(
    exp: &Value,
    ev: &Value,
    ev_frame: Option<&Frame>,
    ev_packet: Option<&Packet>,
    well_formed: bool,
    unknown: &mut BTreeSet<String>,
) -> Vec<Diff> {
    let mut d = Vec::new();
    let peer: BTreeSet<&str> = exp["peer_fields"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let dns = &merged_dns(ev);
    let vendor = &ev["palisade"]["dns"];
    let Some(obj) = exp.as_object() else { return d };
    for (k, v) in obj {
        let g = if peer.contains(k.as_str()) {
            Group::Peer
        } else {
            Group::Tshark
        };
        let k = k.as_str();
        match k {
            _ if METADATA.contains(&k) => {}
            _ if NOT_CARRIED.contains(&k) => {}
            "frame" => {
                let got = ev_frame.map(|f| Value::from(f.number));
                let equal = got.as_ref() == Some(v);
                cmp(&mut d, g, k, v, got.as_ref(), equal);
            }
            "src_ip" | "src_port" => cmp(&mut d, g, k, v, ev.get(k), ev.get(k) == Some(v)),
            "dst_ip" => cmp(
                &mut d,
                g,
                k,
                v,
                ev.get("dest_ip"),
                ev.get("dest_ip") == Some(v),
            ),
            "dst_port" => cmp(
                &mut d,
                g,
                k,
                v,
                ev.get("dest_port"),
                ev.get("dest_port") == Some(v),
            ),
            "transport" => {
                let got = ev.get("proto");
                let equal = got
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == v.as_str();
                cmp(&mut d, g, k, v, got, equal);
            }
            "id" | "opcode" | "rcode" => cmp(&mut d, g, k, v, dns.get(k), dns.get(k) == Some(v)),
            "qr" => {
                let want_answer = v.as_str() == Some("response");
                let kind = dns.get("type");
                let equal = kind.and_then(Value::as_str)
                    == Some(if want_answer { "answer" } else { "query" })
                    && dns.get("qr").and_then(Value::as_bool) == Some(want_answer);
                if !equal {
                    d.push(Diff {
                        group: g,
                        field: k.to_owned(),
                        expected: v.to_string(),
                        got: format!("dns.type={} dns.qr={}", show(kind), show(dns.get("qr"))),
                    });
                }
            }
            "flags" => {
                let got = dns.get("flags");
                let equal = got
                    .and_then(hex_flags)
                    .is_some_and(|g| Some(g) == hex_flags(v));
                cmp(&mut d, g, k, v, got, equal);
            }
            "qname" => cmp(
                &mut d,
                g,
                k,
                v,
                dns.get("rrname"),
                dns.get("rrname") == Some(v),
            ),
            "qtype" => cmp(
                &mut d,
                g,
                k,
                v,
                dns.get("rrtype"),
                dns.get("rrtype") == Some(v),
            ),
            "queries" => cmp_list(
                &mut d,
                g,
                k,
                v,
                dns.get("queries"),
                &[("name", "rrname"), ("type", "rrtype")],
                unknown,
            ),
            "answers" => cmp_list(
                &mut d,
                g,
                k,
                v,
                dns.get("answers"),
                &[
                    ("name", "rrname"),
                    ("type", "rrtype"),
                    ("ttl", "ttl"),
                    ("data", "rdata"),
                    ("preference", "preference"),
                    ("txt_strings", "txt_strings"),
                ],
                unknown,
            ),
            other => {
                unknown.insert(other.to_owned());
            }
        }
    }
    // A message tshark decodes without complaint must not come out partial.
    if let Some(p) = vendor
        .get("partial")
        .filter(|_| well_formed && exp["tshark_malformed"] != true)
    {
        d.push(Diff {
            group: Group::Decode,
            field: "palisade.dns.partial".into(),
            expected: "(absent)".into(),
            got: p.to_string(),
        });
    }
    // What the replayed frame fixes.
    let mut fixed = |field: &str, want: Value, got: Option<&Value>| {
        if got != Some(&want) {
            d.push(Diff {
                group: Group::Frame,
                field: field.to_owned(),
                expected: want.to_string(),
                got: show(got),
            });
        }
    };
    fixed("event_type", Value::from("dns"), ev.get("event_type"));
    fixed("in_iface", Value::from(SENSOR_IF), ev.get("in_iface"));
    fixed(
        "palisade.iface_direction",
        Value::from("ingress"),
        ev.pointer("/palisade/iface_direction"),
    );
    if let Some(p) = ev_packet {
        fixed(
            "ether.src_mac",
            Value::from(corpus::mac_string(p.src_mac)),
            ev.pointer("/ether/src_mac"),
        );
        fixed(
            "ether.dest_mac",
            Value::from(corpus::mac_string(p.dst_mac)),
            ev.pointer("/ether/dest_mac"),
        );
        let vlan = (!p.vlans.is_empty()).then(|| Value::from(p.vlans.clone()));
        if ev.get("vlan") != vlan.as_ref() {
            d.push(Diff {
                group: Group::Frame,
                field: "vlan".into(),
                expected: show(vlan.as_ref()),
                got: show(ev.get("vlan")),
            });
        }
    }
    d
}

/// One line naming an expected record.
/// The event's `dns` object with each answer's Palisade extras (`palisade.dns.answers[i]`,
/// e.g. the MX preference) merged in, so answers compare as whole records.
fn merged_dns(ev: &Value) -> Value {
    let mut dns = ev["dns"].clone();
    let extras = ev
        .pointer("/palisade/dns/answers")
        .and_then(Value::as_array);
    if let (Some(answers), Some(extras)) =
        (dns.get_mut("answers").and_then(Value::as_array_mut), extras)
    {
        for (a, x) in answers.iter_mut().zip(extras) {
            if let (Some(a), Some(x)) = (a.as_object_mut(), x.as_object()) {
                a.extend(x.clone());
            }
        }
    }
    dns
}

fn describe(r: &Value) -> String {
    format!(
        "frame {} {} id={} {}/{}{}",
        show(r.get("frame")),
        r["qr"].as_str().unwrap_or("?"),
        show(r.get("id")),
        r["qname"].as_str().unwrap_or("-"),
        r["qtype"].as_str().unwrap_or("-"),
        if r["tshark_malformed"] == true {
            " (tshark: malformed)"
        } else {
            ""
        },
    )
}

/// A short rendering of an event's DNS part.
fn event_summary(e: &Value) -> String {
    let dns = &e["dns"];
    let mut s = format!(
        "{} {}:{} -> {}:{} dns.type={} id={} rrname={} rrtype={} rcode={} answers={}",
        show(e.get("proto")),
        show(e.get("src_ip")),
        show(e.get("src_port")),
        show(e.get("dest_ip")),
        show(e.get("dest_port")),
        show(dns.get("type")),
        show(dns.get("id")),
        show(dns.get("rrname")),
        show(dns.get("rrtype")),
        show(dns.get("rcode")),
        dns["answers"].as_array().map_or(0, Vec::len),
    );
    if let Some(p) = e.pointer("/palisade/dns/partial") {
        let _ = write!(s, " partial={p}");
    }
    s
}

/// The DNS worker's status entry and the kernel's `dns` `records` counter,
/// once the worker has reported every record the kernel wrote (its stats
/// travel with heartbeats). `settled` is false when that did not happen.
struct Snapshot {
    worker: Value,
    drops: BTreeMap<String, u64>,
    settled: bool,
}

fn drops_of(worker: &Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    match &worker["stats"]["drops"] {
        Value::Array(a) => {
            for d in a {
                if let (Some(r), Some(c)) = (d["reason"].as_str(), d["count"].as_u64()) {
                    *m.entry(r.to_owned()).or_default() += c;
                }
            }
        }
        Value::Object(o) => {
            for (r, c) in o {
                *m.entry(r.clone()).or_default() += c.as_u64().unwrap_or(0);
            }
        }
        _ => {}
    }
    m
}

fn snapshot(daemon: &Daemon) -> Snapshot {
    let start = Instant::now();
    loop {
        let status = daemon
            .status_json()
            .expect("palisade status --json answers");
        let kernel = status["kernel"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|k| k["group"] == "dns" && k["counter"] == "records")
            })
            .and_then(|k| k["value"].as_u64());
        let worker = status["workers"]
            .as_array()
            .and_then(|a| a.iter().find(|w| w["kind"] == "dns"))
            .cloned()
            .expect("a dns worker in the status");
        let settled = kernel.is_some() && worker["stats"]["records"].as_u64() == kernel;
        if settled || start.elapsed() > Duration::from_secs(3) {
            return Snapshot {
                drops: drops_of(&worker),
                worker,
                settled,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal DNS query for `name` (type A, class IN).
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).expect("short label"));
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// Checks that a replayed frame whose destination MAC is not pal0's reaches
/// the DNS worker (TC ingress runs before the L2 destination filter); sets
/// pal0 promiscuous if it does not. Returns a note for the report.
fn verify_foreign_mac_is_seen(lab: &Lab, daemon: &Daemon) -> String {
    let probe = corpus::udp4_frame(
        corpus::SYNTH_DST_MAC,
        corpus::SYNTH_SRC_MAC,
        (Ipv4Addr::new(192, 0, 2, 1), 40000),
        (Ipv4Addr::new(192, 0, 2, 2), 53),
        &dns_query(PROBE_ID, "probe.conformance.test"),
    );
    let cap = Capture {
        path: lab.dir.join("probe.pcap"),
        linktype: 1,
        frames: vec![Frame {
            number: 1,
            ts_ns: 0,
            data: probe,
            synthetic_ether: true,
        }],
    };
    let seen = |daemon: &Daemon| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if daemon.events().iter().any(|e| {
                e["dns"]["id"] == PROBE_ID && e["dns"]["rrname"] == "probe.conformance.test"
            }) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    let pal0_mac = lab
        .sensor("cat")
        .arg(format!("/sys/class/net/{SENSOR_IF}/address"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(cap.replay(lab, PPS).sent == 1, "probe frame not sent");
    if seen(daemon) {
        return format!(
            "a frame to {} (pal0 is {pal0_mac}) reached the DNS worker without promiscuous mode",
            corpus::mac_string(corpus::SYNTH_DST_MAC)
        );
    }
    run(lab
        .sensor("ip")
        .args(["link", "set", SENSOR_IF, "promisc", "on"]));
    assert!(cap.replay(lab, PPS).sent == 1, "probe frame not sent");
    assert!(
        seen(daemon),
        "a DNS query replayed out of the peer interface produced no DNS event, even with {SENSOR_IF} promiscuous: \
         the replay path does not reach the sensor"
    );
    format!(
        "a frame to a foreign MAC was NOT seen until {SENSOR_IF} was set promiscuous (pal0 is {pal0_mac})"
    )
}

fn linktype_name(lt: u32) -> String {
    match lt {
        0 => "null".into(),
        1 => "ether".into(),
        101 | 12 | 14 => "rawip".into(),
        228 => "rawip4".into(),
        229 => "rawip6".into(),
        113 => "sll".into(),
        276 => "sll2".into(),
        other => format!("linktype {other}"),
    }
}

#[test]
fn dns_corpus_replayed_live_matches_expected() {
    let started = Instant::now();
    let corpus_dir = corpus::dir();
    let expected_all = corpus::read_jsonl(&corpus_dir.join("expected/dns.jsonl"));
    let captures = corpus::captures(&corpus_dir.join("pcaps/dns"));
    assert!(
        !captures.is_empty(),
        "no captures in {}",
        corpus_dir.join("pcaps/dns").display()
    );
    let rel = |p: &Path| {
        p.strip_prefix(&corpus_dir)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in expected_all {
        let pcap = r["pcap"].as_str().unwrap_or_default().to_owned();
        if pcap.starts_with("pcaps/dns/") {
            expected.entry(pcap).or_default().push(r);
        }
    }
    let names: BTreeSet<String> = captures.iter().map(|p| rel(p)).collect();
    for pcap in expected.keys() {
        assert!(
            names.contains(pcap),
            "expected/dns.jsonl names {pcap}, which is not in the corpus"
        );
    }

    let lab = Lab::new("conf-dns");
    let daemon = Daemon::start(
        &lab,
        &base_config(&lab, "[workers.dns]\nheartbeat_ms = 50\n"),
        &[],
    );
    let pids = daemon.wait_healthy();
    let daemon_pid = daemon.pid();
    let dns_pid = pids["dns"];
    let t_start = started.elapsed();
    let mac_note = verify_foreign_mac_is_seen(&lab, &daemon);
    let mut cursor = EventCursor::now(&daemon);
    let mut before = snapshot(&daemon);
    let t_ready = started.elapsed();

    let mut report = String::new();
    let mut failures = 0usize;
    let mut by_field: BTreeMap<(String, Group), BTreeSet<String>> = BTreeMap::new();
    let mut missing_total = [0usize; 2];
    let mut extra_total = 0usize;
    let mut matched_clean = 0usize;
    let mut unknown_fields = BTreeSet::new();
    let mut liveness = Vec::new();
    let mut expected_unanswered: Vec<(String, Value, Tuple, u64)> = Vec::new();
    let mut last_unanswered_replay: Option<Instant> = None;
    let mut total_expected = 0usize;
    let mut total_events = 0usize;
    let mut dump = String::new();

    for path in &captures {
        let pcap = rel(path);
        let short = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let malformed = short.starts_with("malformed_");
        let cap = Capture::read(path);
        let packets: Vec<Option<Packet>> =
            cap.frames.iter().map(|f| corpus::decode(&f.data)).collect();
        let mut exp = expected.get(&pcap).cloned().unwrap_or_default();
        exp.sort_by_key(|r| (r["frame"].as_u64(), r["msg_index"].as_u64()));
        total_expected += exp.len();

        let t0 = Instant::now();
        let sent = cap.replay(&lab, PPS);
        let t_replayed = t0.elapsed();
        let events = cursor.take(&daemon, exp.len(), SETTLE, QUIET, MAX_WAIT, |e| {
            e["event_type"] == "dns" && e["dns"]["type"] != "unanswered"
        });
        total_events += events.len();
        for e in &events {
            dump.push_str(&serde_json::json!({"pcap": pcap, "event": e}).to_string());
            dump.push('\n');
        }
        let t_events = t0.elapsed();
        let after = snapshot(&daemon);
        let t_stats = t0.elapsed();

        // Event -> frame.
        let msgs = frame_messages(&packets);
        let mut msg_used = vec![false; msgs.len()];
        let ev_frame: Vec<Option<usize>> = events
            .iter()
            .map(|e| {
                let key = (event_tuple(e)?, e["dns"]["id"].as_u64()?, event_qr(e)?);
                let pos = msgs.iter().enumerate().position(|(m, (_, k))| {
                    !msg_used.get(m).copied().unwrap_or(true) && *k == key
                })?;
                if let Some(u) = msg_used.get_mut(pos) {
                    *u = true;
                }
                msgs.get(pos).map(|(i, _)| *i)
            })
            .collect();

        // Expected record -> event.
        let mut ev_taken = vec![false; events.len()];
        let mut pairing: Vec<Option<usize>> = exp
            .iter()
            .map(|r| {
                let frame = usize::try_from(r["frame"].as_u64()?).ok()?;
                let j = ev_frame.iter().enumerate().position(|(j, f)| {
                    !ev_taken.get(j).copied().unwrap_or(true) && f.map(|i| i + 1) == Some(frame)
                })?;
                if let Some(t) = ev_taken.get_mut(j) {
                    *t = true;
                }
                Some(j)
            })
            .collect();
        for (i, r) in exp.iter().enumerate() {
            if pairing.get(i).copied().flatten().is_some() {
                continue;
            }
            let tuple = expected_tuple(r);
            let j = events.iter().enumerate().position(|(j, e)| {
                !ev_taken.get(j).copied().unwrap_or(true)
                    && tuple.is_some()
                    && event_tuple(e) == tuple
            });
            if let Some(j) = j {
                if let Some(t) = ev_taken.get_mut(j) {
                    *t = true;
                }
                if let Some(p) = pairing.get_mut(i) {
                    *p = Some(j);
                }
            }
        }

        // Query/answer correlation as the worker keys it (client, server,
        // transport, id), replayed over the expected records: answers to a
        // query seen before carry `rtt_ms`, the others not; queries left
        // over must be reported as unanswered after the timeout.
        let mut pending: BTreeMap<(Tuple, u64), usize> = BTreeMap::new();
        let mut expect_rtt = vec![false; exp.len()];
        for (i, r) in exp.iter().enumerate() {
            let (Some(t), Some(id)) = (expected_tuple(r), r["id"].as_u64()) else {
                continue;
            };
            if r["qr"] == "query" {
                pending.insert((t, id), i);
            } else {
                let client_side = (t.0.clone(), t.3, t.4, t.1, t.2);
                if let (Some(flag), Some(_)) =
                    (expect_rtt.get_mut(i), pending.remove(&(client_side, id)))
                {
                    *flag = true;
                }
            }
        }
        if !pending.is_empty() {
            last_unanswered_replay = Some(Instant::now());
        }
        for ((t, id), i) in pending {
            if let Some(r) = exp.get(i) {
                expected_unanswered.push((pcap.clone(), r.clone(), t, id));
            }
        }

        // Report this capture.
        let delta: BTreeMap<String, u64> = after
            .drops
            .iter()
            .filter_map(|(r, c)| {
                let d = c.saturating_sub(before.drops.get(r).copied().unwrap_or(0));
                (d > 0).then(|| (r.clone(), d))
            })
            .collect();
        let drops_text = if delta.is_empty() {
            "none".to_owned()
        } else {
            delta
                .iter()
                .map(|(r, c)| format!("{r}={c}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut section = String::new();
        let mut section_bad = false;
        if sent.sent != cap.frames.len() as u64 || sent.failed != 0 {
            section_bad = true;
            let _ = writeln!(
                section,
                "    REPLAY: tcpreplay sent {} of {} frames ({} failed):\n{}",
                sent.sent,
                cap.frames.len(),
                sent.failed,
                sent.output
            );
        }
        for (i, r) in exp.iter().enumerate() {
            let peer_record = r["peer_fields"].as_array().is_some_and(|a| !a.is_empty());
            match pairing.get(i).copied().flatten() {
                None => {
                    section_bad = true;
                    missing_total[usize::from(!peer_record)] += 1;
                    let _ = writeln!(
                        section,
                        "    {}: MISSING, no event [{}]",
                        describe(r),
                        if peer_record { "peer" } else { "tshark" }
                    );
                }
                Some(j) => {
                    let Some(e) = events.get(j) else { continue };
                    let fi = ev_frame.get(j).copied().flatten();
                    let frame = fi.and_then(|i| cap.frames.get(i));
                    let packet = fi.and_then(|i| packets.get(i)).and_then(Option::as_ref);
                    let mut diffs = compare(r, e, frame, packet, !malformed, &mut unknown_fields);
                    if r["qr"] == "response" {
                        let want = expect_rtt.get(i).copied().unwrap_or(false);
                        let got = e.pointer("/palisade/dns/rtt_ms");
                        if got.is_some_and(Value::is_number) != want {
                            diffs.push(Diff {
                                group: Group::Correlation,
                                field: "palisade.dns.rtt_ms".into(),
                                expected: if want {
                                    "a number (its query came earlier)"
                                } else {
                                    "(absent): no query came before"
                                }
                                .into(),
                                got: show(got),
                            });
                        }
                    }
                    let frame_no = r["frame"].as_u64();
                    diffs.retain(|d| match erratum(&short, frame_no, &d.field) {
                        Some(why) => {
                            let _ = writeln!(
                                section,
                                "    note: frame {}: {} differs (expected {}, got {}): corpus erratum: {why}",
                                frame_no.unwrap_or(0),
                                d.field,
                                d.expected,
                                d.got
                            );
                            false
                        }
                        None => true,
                    });
                    diffs.sort_by_key(|d| d.group);
                    if diffs.is_empty() {
                        matched_clean += 1;
                        continue;
                    }
                    section_bad = true;
                    let partial = e
                        .pointer("/palisade/dns/partial")
                        .map(|p| format!(" (event has palisade.dns.partial={p})"))
                        .unwrap_or_default();
                    let _ = writeln!(section, "    {}:{partial}", describe(r));
                    for d in diffs {
                        let _ = writeln!(
                            section,
                            "        [{}] {}: expected {}, got {}",
                            d.group.tag(),
                            d.field,
                            d.expected,
                            d.got
                        );
                        let field = d
                            .field
                            .split('[')
                            .next()
                            .unwrap_or(&d.field)
                            .trim_end_matches(".len")
                            .to_owned();
                        let sub = d
                            .field
                            .split_once("].")
                            .map(|(_, s)| format!("[].{s}"))
                            .unwrap_or_default();
                        by_field
                            .entry((format!("{field}{sub}"), d.group))
                            .or_default()
                            .insert(short.clone());
                    }
                }
            }
        }
        for (j, e) in events.iter().enumerate() {
            if ev_taken.get(j).copied().unwrap_or(true) {
                continue;
            }
            section_bad = true;
            extra_total += 1;
            let frame = ev_frame
                .get(j)
                .copied()
                .flatten()
                .map_or("no frame with this tuple/id/qr".to_owned(), |i| {
                    format!("frame {}", i + 1)
                });
            let _ = writeln!(section, "    EXTRA event ({frame}): {}", event_summary(e));
        }

        // Liveness after every capture; drop counters for malformed ones.
        daemon.assert_alive();
        let w = &after.worker;
        let alive = daemon.pid() == daemon_pid
            && w["state"] == "running"
            && w["pid"].as_u64() == Some(u64::from(dns_pid))
            && w["restarts"] == before.worker["restarts"];
        if !alive {
            section_bad = true;
            liveness.push(format!(
                "{short}: dns worker not running as pid {dns_pid} afterwards: {w}"
            ));
            let _ = writeln!(
                section,
                "    WORKER: not running as pid {dns_pid} afterwards: state={} pid={} restarts={} last_exit={}",
                w["state"], w["pid"], w["restarts"], w["last_exit"]
            );
        }
        if malformed
            && delta.is_empty()
            && let Some(why) = erratum(&short, None, "drops")
        {
            let _ = writeln!(
                section,
                "    note: no drops for this malformed_ capture: corpus erratum: {why}"
            );
        } else if malformed && delta.is_empty() {
            section_bad = true;
            liveness.push(format!(
                "{short}: dns worker drop counters did not increase"
            ));
            let _ = writeln!(
                section,
                "    DROPS: malformed capture, but the dns worker's drop counters did not increase"
            );
        }
        if !after.settled {
            let _ = writeln!(
                section,
                "    note: worker stats did not catch up with the kernel's dns record count (drops may be late)"
            );
        }

        let _ = writeln!(
            report,
            "{} {pcap}  [{}, {} frames, {} expected, {} dns events, worker drops: {drops_text}; \
             replay {:.2}s, events {:.2}s, stats {:.2}s]",
            if section_bad { "✗" } else { "✓" },
            linktype_name(cap.linktype),
            cap.frames.len(),
            exp.len(),
            events.len(),
            t_replayed.as_secs_f64(),
            t_events.as_secs_f64(),
            t_stats.as_secs_f64(),
        );
        report.push_str(&section);
        if section_bad {
            failures += 1;
        }
        before = after;
    }

    // Unanswered queries: reported by the worker after its timeout, so they
    // may arrive during later captures; collected from every event at the end.
    let unanswered_of = |daemon: &Daemon| -> Vec<Value> {
        daemon
            .events()
            .into_iter()
            .filter(|e| {
                e["event_type"] == "dns"
                    && e["dns"]["type"] == "unanswered"
                    && e["dns"]["id"] != PROBE_ID
            })
            .collect()
    };
    let t_loop = started.elapsed();
    if let Some(t) = last_unanswered_replay {
        let deadline = t + UNANSWERED_TIMEOUT + Duration::from_millis(1500);
        while Instant::now() < deadline && unanswered_of(&daemon).len() < expected_unanswered.len()
        {
            daemon.assert_alive();
            std::thread::sleep(Duration::from_millis(50));
        }
        // Late extras, if any.
        std::thread::sleep(SETTLE);
    }
    let unanswered = unanswered_of(&daemon);
    let t_unanswered = started.elapsed();
    for e in &unanswered {
        dump.push_str(&serde_json::json!({"pcap": null, "event": e}).to_string());
        dump.push('\n');
    }
    let mut un_taken = vec![false; unanswered.len()];
    let mut un_report = String::new();
    for (pcap, r, t, id) in &expected_unanswered {
        let j = unanswered.iter().enumerate().position(|(j, e)| {
            !un_taken.get(j).copied().unwrap_or(true)
                && event_tuple(e).as_ref() == Some(t)
                && e["dns"]["id"].as_u64() == Some(*id)
        });
        match j.and_then(|j| un_taken.get_mut(j)) {
            Some(taken) => *taken = true,
            None => {
                let _ = writeln!(
                    un_report,
                    "    {pcap} {}: MISSING unanswered event (no response in the capture)",
                    describe(r)
                );
                by_field
                    .entry(("unanswered".into(), Group::Correlation))
                    .or_default()
                    .insert(pcap.clone());
            }
        }
    }
    for (j, e) in unanswered.iter().enumerate() {
        if un_taken.get(j).copied().unwrap_or(true) {
            continue;
        }
        let key = event_tuple(e);
        let from: Vec<String> = expected
            .iter()
            .flat_map(|(p, rs)| rs.iter().map(move |r| (p, r)))
            .filter(|(_, r)| {
                r["qr"] == "query" && expected_tuple(r) == key && r["id"] == e["dns"]["id"]
            })
            .map(|(p, r)| format!("{p} frame {}", show(r.get("frame"))))
            .collect();
        let _ = writeln!(
            un_report,
            "    EXTRA unanswered event ({}): {}",
            if from.is_empty() {
                "no such query in the corpus".to_owned()
            } else {
                format!("query of {}", from.join(", "))
            },
            event_summary(e)
        );
        by_field
            .entry(("unanswered".into(), Group::Correlation))
            .or_default()
            .insert(from.join(", "));
    }
    if !un_report.is_empty() {
        failures += 1;
    }
    let _ = writeln!(
        report,
        "{} unanswered queries: {} expected, {} unanswered events{}\n{un_report}",
        if un_report.is_empty() { "✓" } else { "✗" },
        expected_unanswered.len(),
        unanswered.len(),
        if expected_unanswered.is_empty() {
            String::new()
        } else {
            format!(
                " (expected for: {})",
                expected_unanswered
                    .iter()
                    .map(|(p, r, _, _)| format!("{p} frame {}", show(r.get("frame"))))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );

    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "DNS conformance: {} captures, {} expected records, {} dns events; {} records match exactly, \
         {} missing (peer {} / tshark-only {}), {} extra events; {} captures with problems; {:.1}s",
        captures.len(),
        total_expected,
        total_events,
        matched_clean,
        missing_total[0] + missing_total[1],
        missing_total[0],
        missing_total[1],
        extra_total,
        failures,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(summary, "replay check: {mac_note}");
    let _ = writeln!(
        summary,
        "timing: daemon up {:.1}s, replay path checked {:.1}s, captures done {:.1}s, unanswered checked {:.1}s",
        t_start.as_secs_f64(),
        t_ready.as_secs_f64(),
        t_loop.as_secs_f64(),
        t_unanswered.as_secs_f64()
    );
    let _ = writeln!(
        summary,
        "not compared (no event field carries them): {}",
        NOT_CARRIED
            .iter()
            .copied()
            .chain(unknown_fields.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !by_field.is_empty() {
        let _ = writeln!(
            summary,
            "differing fields (records' field [group]: captures):"
        );
        for ((field, group), pcaps) in &by_field {
            let _ = writeln!(
                summary,
                "  {field} [{}]: {}",
                group.tag(),
                pcaps.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    for l in &liveness {
        let _ = writeln!(summary, "  malformed/liveness: {l}");
    }
    let full = format!("{summary}\nper capture:\n{report}");
    if failures == 0 {
        eprintln!("{summary}");
    }
    // Kept with the lab's scratch directory when the test fails.
    std::fs::write(lab.dir.join("conformance-dns-report.txt"), &full).expect("write report");
    std::fs::write(lab.dir.join("conformance-dns-events.jsonl"), &dump).expect("write events");
    assert!(
        failures == 0,
        "DNS conformance differences (report and every event also in {}):\n{full}",
        lab.dir.display()
    );
}

/// The comparison itself: every kind of difference is reported, equal
/// records give none (no root needed).
#[test]
fn comparison_lists_every_difference() {
    let exp: Value = serde_json::from_str(
        r#"{"pcap": "pcaps/dns/x.pcap", "frame": 2, "src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "src_port": 53,
            "dst_port": 4000, "transport": "udp", "id": 7, "qr": "response", "opcode": 0, "rcode": "NXDOMAIN",
            "flags": "0x8183", "qname": "a.example", "qtype": "MX", "qdcount": 1,
            "queries": [{"name": "a.example", "type": "MX"}],
            "answers": [{"name": "a.example", "type": "MX", "ttl": 60, "data": "mx.example", "preference": 10}],
            "ancount": 1, "source": "x", "peer_fields": ["answers", "rcode"]}"#,
    )
    .expect("json");
    let good: Value = serde_json::from_str(
        r#"{"event_type": "dns", "in_iface": "pal0", "src_ip": "10.0.0.1",
            "dest_ip": "10.0.0.2", "src_port": 53, "dest_port": 4000, "proto": "UDP",
            "ether": {"src_mac": "02:00:00:00:00:01", "dest_mac": "02:00:00:00:00:02"},
            "dns": {"type": "answer", "qr": true, "id": 7, "opcode": 0, "rcode": "NXDOMAIN", "flags": "8183",
                    "rrname": "a.example", "rrtype": "MX", "queries": [{"rrname": "a.example", "rrtype": "MX"}],
                    "answers": [{"rrname": "a.example", "rrtype": "MX", "ttl": 60, "rdata": "mx.example"}]},
            "palisade": {"iface_direction": "ingress", "dns": {"answers": [{"preference": 10}]}}}"#,
    )
    .expect("json");
    let frame = Frame {
        number: 2,
        ts_ns: 0,
        data: Vec::new(),
        synthetic_ether: false,
    };
    let packet = Packet {
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_mac: [2, 0, 0, 0, 0, 1],
        vlans: Vec::new(),
        src_ip: "10.0.0.1".parse().expect("ip"),
        dst_ip: "10.0.0.2".parse().expect("ip"),
        l4_proto: 17,
        src_port: 53,
        dst_port: 4000,
        tcp_flags: 0,
        tcp_seq: 0,
        payload: Vec::new(),
    };
    let mut unknown = BTreeSet::new();
    let diffs = compare(&exp, &good, Some(&frame), Some(&packet), true, &mut unknown);
    assert!(diffs.is_empty(), "{diffs:?}");
    assert!(unknown.is_empty(), "{unknown:?}");

    let mut bad = good.clone();
    bad["dest_port"] = 4001.into();
    bad["proto"] = "TCP".into();
    bad["dns"]["type"] = "query".into();
    bad["dns"]["flags"] = "8180".into();
    bad["dns"]["rcode"] = "NOERROR".into();
    bad["dns"]["answers"][0]["ttl"] = 61.into();
    bad["palisade"]["dns"]["answers"][0]
        .as_object_mut()
        .expect("obj")
        .remove("preference");
    bad["dns"]["queries"] = serde_json::json!([]);
    bad["palisade"]["dns"]["partial"] = "truncated".into();
    bad["ether"]["src_mac"] = "02:00:00:00:00:09".into();
    let other_frame = Frame {
        number: 3,
        ..frame.clone()
    };
    let diffs = compare(
        &exp,
        &bad,
        Some(&other_frame),
        Some(&packet),
        true,
        &mut unknown,
    );
    let got: BTreeSet<(String, Group)> = diffs.iter().map(|d| (d.field.clone(), d.group)).collect();
    let want: BTreeSet<(String, Group)> = [
        ("frame", Group::Tshark),
        ("dst_port", Group::Tshark),
        ("transport", Group::Tshark),
        ("qr", Group::Tshark),
        ("flags", Group::Tshark),
        ("rcode", Group::Peer),
        ("answers[0].ttl", Group::Peer),
        ("answers[0].preference", Group::Peer),
        ("queries.len", Group::Tshark),
        ("palisade.dns.partial", Group::Decode),
        ("ether.src_mac", Group::Frame),
    ]
    .into_iter()
    .map(|(f, g)| (f.to_owned(), g))
    .collect();
    assert_eq!(got, want, "{diffs:#?}");
    // Empty answer lists may be omitted by the event.
    let mut exp_empty = exp.clone();
    exp_empty["answers"] = serde_json::json!([]);
    let mut ev_empty = good.clone();
    ev_empty["dns"]
        .as_object_mut()
        .expect("obj")
        .remove("answers");
    assert!(
        compare(
            &exp_empty,
            &ev_empty,
            Some(&frame),
            Some(&packet),
            true,
            &mut unknown
        )
        .is_empty()
    );
}

/// Every DNS capture converts to Ethernet frames that decode as IP, and
/// DNS over TCP is cut into messages at the frame that completes each.
#[test]
fn captures_convert_and_tcp_messages_complete_where_the_corpus_says() {
    let dir = corpus::dir();
    let sources = corpus::read_jsonl(&dir.join("sources.jsonl"));
    let expected = corpus::read_jsonl(&dir.join("expected/dns.jsonl"));
    for path in corpus::captures(&dir.join("pcaps/dns")) {
        let rel = path
            .strip_prefix(&dir)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cap = Capture::read(&path);
        let src = sources
            .iter()
            .find(|s| s["pcap"] == rel.as_str())
            .unwrap_or_else(|| panic!("{rel} not in sources.jsonl"));
        assert_eq!(
            Some(cap.frames.len() as u64),
            src["packets"].as_u64(),
            "{rel}: packet count"
        );
        let packets: Vec<Option<Packet>> =
            cap.frames.iter().map(|f| corpus::decode(&f.data)).collect();
        assert!(
            packets.iter().all(Option::is_some),
            "{rel}: a frame did not decode"
        );
        // Every expected message is found at its frame, with its id and direction.
        let msgs = frame_messages(&packets);
        for r in expected.iter().filter(|r| r["pcap"] == rel.as_str()) {
            let key = (
                expected_tuple(r).expect("tuple"),
                r["id"].as_u64().expect("id"),
                r["qr"] == "response",
            );
            let frame = r["frame"].as_u64().expect("frame");
            assert!(
                msgs.iter()
                    .any(|(i, k)| *k == key && (*i as u64) + 1 == frame),
                "{rel} frame {frame}: message not found ({msgs:?})"
            );
        }
    }
}

/// The replay mode: every capture of `pcaps/dns/` through `palisade replay --proto dns`
/// (the user-space record builder and the DNS worker's protocol, in process: no lab), its
/// events paired with the expected records as the live test pairs them and compared with
/// the same `compare()`, with the same errata: missing records, extra events, differing
/// fields, `rtt_ms` where a query came before, and an `unanswered` event for every query
/// the capture leaves without an answer (replay ends the file past every timeout).
#[test]
fn dns_corpus_replayed_offline_matches_expected() {
    let corpus_dir = corpus::dir();
    let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in corpus::read_jsonl(&corpus_dir.join("expected/dns.jsonl")) {
        let pcap = r["pcap"].as_str().unwrap_or_default().to_owned();
        expected.entry(pcap).or_default().push(r);
    }
    let mut report = String::new();
    let (mut checked, mut matched) = (0usize, 0usize);
    let mut unknown = BTreeSet::new();
    for path in corpus::captures(&corpus_dir.join("pcaps/dns")) {
        let short = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pcap = format!("pcaps/dns/{short}");
        let malformed = short.starts_with("malformed_");
        let cap = Capture::read(&path);
        let packets: Vec<Option<Packet>> =
            cap.frames.iter().map(|f| corpus::decode(&f.data)).collect();
        let mut exp = expected.get(&pcap).cloned().unwrap_or_default();
        exp.sort_by_key(|r| (r["frame"].as_u64(), r["msg_index"].as_u64()));
        let out = std::process::Command::new(palisade_tests::bin("palisade"))
            .args(["replay", "--proto", "dns"])
            .arg(&path)
            .output()
            .expect("run palisade replay");
        assert!(out.status.success(), "{pcap}: {out:?}");
        let all: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON lines"))
            .filter(|e| e["event_type"] == "dns")
            .collect();
        let (unanswered, events): (Vec<Value>, Vec<Value>) = all
            .into_iter()
            .partition(|e| e["dns"]["type"] == "unanswered");

        // Event -> frame, expected record -> event: as the live test.
        let msgs = frame_messages(&packets);
        let mut msg_used = vec![false; msgs.len()];
        let ev_frame: Vec<Option<usize>> = events
            .iter()
            .map(|e| {
                let key = (event_tuple(e)?, e["dns"]["id"].as_u64()?, event_qr(e)?);
                let pos = msgs.iter().enumerate().position(|(m, (_, k))| {
                    !msg_used.get(m).copied().unwrap_or(true) && *k == key
                })?;
                if let Some(u) = msg_used.get_mut(pos) {
                    *u = true;
                }
                msgs.get(pos).map(|(i, _)| *i)
            })
            .collect();
        let mut ev_taken = vec![false; events.len()];
        let mut pending: BTreeMap<(Tuple, u64), usize> = BTreeMap::new();
        for r in &exp {
            checked += 1;
            let frame = r["frame"].as_u64().and_then(|f| usize::try_from(f).ok());
            let tuple = expected_tuple(r);
            let by_frame = ev_frame
                .iter()
                .enumerate()
                .position(|(j, f)| !ev_taken[j] && f.map(|i| i + 1) == frame);
            let j = by_frame.or_else(|| {
                events
                    .iter()
                    .enumerate()
                    .position(|(j, e)| !ev_taken[j] && tuple.is_some() && event_tuple(e) == tuple)
            });
            // The query an answer follows, for rtt_ms (the worker's correlation key).
            let mut want_rtt = false;
            if let (Some(t), Some(id)) = (tuple.clone(), r["id"].as_u64()) {
                if r["qr"] == "query" {
                    pending.insert((t, id), 0);
                } else {
                    let client_side = (t.0.clone(), t.3, t.4, t.1, t.2);
                    want_rtt = pending.remove(&(client_side, id)).is_some();
                }
            }
            let Some(j) = j else {
                let _ = writeln!(report, "{pcap} {}: MISSING", describe(r));
                continue;
            };
            ev_taken[j] = true;
            let e = &events[j];
            let fi = ev_frame[j];
            let mut diffs = compare(
                r,
                e,
                fi.and_then(|i| cap.frames.get(i)),
                fi.and_then(|i| packets.get(i)).and_then(Option::as_ref),
                !malformed,
                &mut unknown,
            );
            if r["qr"] == "response"
                && e.pointer("/palisade/dns/rtt_ms")
                    .is_some_and(Value::is_number)
                    != want_rtt
            {
                diffs.push(Diff {
                    group: Group::Correlation,
                    field: "palisade.dns.rtt_ms".into(),
                    expected: format!("present: {want_rtt}"),
                    got: show(e.pointer("/palisade/dns/rtt_ms")),
                });
            }
            diffs.retain(|d| erratum(&short, r["frame"].as_u64(), &d.field).is_none());
            // What the live lab adds and a file does not have: the lab's interface name, and
            // the made-up Ethernet header of captures without one (replay reads them as
            // they are: no MAC addresses).
            let synthetic = fi
                .and_then(|i| cap.frames.get(i))
                .is_some_and(|f| f.synthetic_ether);
            diffs.retain(|d| {
                !(d.field == "in_iface" || (synthetic && d.field.starts_with("ether.")))
            });
            if diffs.is_empty() {
                matched += 1;
            }
            for d in diffs {
                let _ = writeln!(
                    report,
                    "{pcap} {}: [{}] {}: expected {}, got {}",
                    describe(r),
                    d.group.tag(),
                    d.field,
                    d.expected,
                    d.got
                );
            }
        }
        for (j, e) in events.iter().enumerate().filter(|(j, _)| !ev_taken[*j]) {
            let _ = writeln!(report, "{pcap}: EXTRA event {j}: {}", event_summary(e));
        }
        // Queries never answered in the capture: one unanswered event each.
        let mut left: Vec<(Tuple, u64)> = pending.into_keys().collect();
        for e in &unanswered {
            let key = (event_tuple(e), e["dns"]["id"].as_u64());
            match left
                .iter()
                .position(|(t, id)| (Some(t.clone()), Some(*id)) == key)
            {
                Some(i) => {
                    left.remove(i);
                }
                None => {
                    let _ = writeln!(report, "{pcap}: EXTRA unanswered {}", event_summary(e));
                }
            }
        }
        for (t, id) in left {
            let _ = writeln!(report, "{pcap}: MISSING unanswered event for {t:?} id {id}");
        }
    }
    eprintln!("replay: {matched} of {checked} expected DNS records match exactly");
    assert!(checked > 50, "only {checked} expected records");
    assert!(report.is_empty(), "DNS replay differences:\n{report}");
}
