//! Root-only tests of the kernel's DNS domain policy (bpf/dns_policy.bpf.h) and of the
//! Rust API that feeds it (`palisade_ebpf::dns_policy`, `palisade_abi::dns_name`).
//!
//! Classifier runs (`BPF_PROG_TEST_RUN`, no network needed):
//! - `kernel_hash_equals_rust_hash`: exact rules keyed by the Rust `name_hash` of names of many
//!   shapes (case, 63-byte labels, 32 labels, 253 bytes, punctuation) block exactly those names
//!   in the kernel, counted under their own rule ids; near misses pass.
//! - `suffixes_and_odd_names`: suffix rules, label boundaries, names deeper than 32 labels,
//!   odd bytes, compression pointers, overlong and cut-off names, the root.
//! - `nxdomain_answers_are_exact`: the kernel's NXDOMAIN for IPv4/IPv6 queries, with and without
//!   EDNS, from both programs, checked byte by byte against an independent parser (addresses,
//!   ports, TTL, lengths, IPv4 header and UDP checksums, DNS header, question, OPT removed).
//! - `answers_are_rewritten`: upstream answers for blocked names become NXDOMAIN in place;
//!   records show the original; bare NXDOMAINs and allowed answers pass untouched.
//! - `verdicts_follow_the_rules`: allow beats block, merged entries, learned blocks and their
//!   expiry, drop and off actions, swapping and clearing the rule set, counters and hits.
//! - `a_million_names`: a 1,000,000-name rule set is built, swapped in and matched; prints the
//!   build time, kernel memory and per-packet cost.
//!
//! Real traffic (`real_resolver_and_clients`): test namespaces joined by a veth pair
//! (198.18.0.0/15 and fd00::/8 only), both classifiers on `veth-a`, dnsmasq as resolver on each
//! side and dig as client: blocked names get NXDOMAIN from the kernel with the query's id and
//! never reach dnsmasq (its log), on egress and on ingress, over IPv4 and IPv6; plus hand-made
//! frames (no checksum offload) whose rewritten replies the receiving stack verifies.
//!
//! Run as root: `cargo test -p palisade-ebpf --test dns_policy`; without root every test says it
//! was skipped. Each test mounts its own bpffs and creates its own namespaces, removed on drop.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a panic is the failure report"
)]

#[path = "support/dns.rs"]
mod dns;
mod support;

use std::{
    collections::HashMap,
    fs,
    net::{SocketAddr, UdpSocket},
    os::fd::{AsFd, BorrowedFd},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{PerCpuArray, RingBuf},
    programs::{SchedClassifier, TcAttachType},
};
use dns::{Dig, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, Udp};
use palisade_abi::{
    BlockAction, DnsStat, FLAG_DNS_BLOCKED, FLAG_DNS_REWRITTEN, FLAG_TRUNCATED, MAP_DNS_CONFIG,
    MAP_DNS_HITS, MAP_DNS_LEARNED, MAP_DNS_POLICY, MAP_DNS_STATS, PROG_TC_EGRESS, PROG_TC_INGRESS,
    RecordHeader, Ring,
    dns_name::{name_hash, normalize},
};
use palisade_ebpf::{
    PALISADE_BPF,
    dns_policy::{self, RuleKind, RuleSetBuilder},
    maps,
};
use support::{BpfFs, Netns, RawSender, VethPair, have_root, unique};

/// The object loaded with its maps pinned in a private bpffs; programs loaded, not attached.
struct Loaded {
    // Drop order: programs and maps first, then the bpffs.
    ebpf: Ebpf,
    _bpffs: BpfFs,
}

impl Loaded {
    fn new() -> Self {
        Self::with_wakeup(None)
    }

    /// With `pal_wakeup_bytes` overridden (`u32::MAX`: records never wake a consumer, so a
    /// test without one measures the program, not wake-ups of nobody).
    fn with_wakeup(wakeup_bytes: Option<u32>) -> Self {
        let bpffs = BpfFs::new();
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
        Self {
            ebpf,
            _bpffs: bpffs,
        }
    }

    fn map(&self, name: &str) -> BorrowedFd<'_> {
        maps::map_fd(self.ebpf.map(name).unwrap()).unwrap()
    }

    fn prog(&self, name: &str) -> BorrowedFd<'_> {
        let prog: &SchedClassifier = self.ebpf.program(name).unwrap().try_into().unwrap();
        prog.fd().unwrap().as_fd()
    }

    /// One classifier run of `name` over `frame`.
    fn run(&self, name: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        dns::test_run(self.prog(name), frame).unwrap()
    }

    fn set_action(&self, action: BlockAction) {
        dns_policy::set_block_action(self.map(MAP_DNS_CONFIG), action).unwrap();
        assert_eq!(
            dns_policy::block_action(self.map(MAP_DNS_CONFIG)).unwrap(),
            Some(action)
        );
    }

    /// Builds `rules` into a new map and makes it the current rule set; returns its map id.
    fn install(&self, rules: &RuleSetBuilder) -> u32 {
        let map = rules.build().unwrap();
        dns_policy::swap_in(self.map(MAP_DNS_POLICY), &map).unwrap();
        let id = maps::map_facts(&map).unwrap().id;
        assert_eq!(
            dns_policy::current_inner_id(self.map(MAP_DNS_POLICY)).unwrap(),
            Some(id)
        );
        id
    }

    fn stat(&self, stat: DnsStat) -> u64 {
        let stats = PerCpuArray::<_, u64>::try_from(self.ebpf.map(MAP_DNS_STATS).unwrap()).unwrap();
        stats.get(&stat.index(), 0).unwrap().iter().sum()
    }

    fn stats(&self) -> HashMap<DnsStat, u64> {
        DnsStat::ALL.iter().map(|&s| (s, self.stat(s))).collect()
    }

    fn hits(&self) -> HashMap<u32, u64> {
        maps::read_hits(self.ebpf.map(MAP_DNS_HITS).unwrap())
            .unwrap()
            .into_iter()
            .collect()
    }

    /// DNS records written since the last call.
    fn drain_dns(&mut self) -> Vec<(RecordHeader, Vec<u8>)> {
        let mut ring = RingBuf::try_from(self.ebpf.map_mut(Ring::Dns.map_name()).unwrap()).unwrap();
        let mut records = Vec::new();
        while let Some(item) = ring.next() {
            let (hdr, payload) = RecordHeader::read(&item).unwrap();
            records.push((hdr, payload.to_vec()));
        }
        records
    }
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut SchedClassifier {
    ebpf.program_mut(name).unwrap().try_into().unwrap()
}

/// Counter increments between two snapshots.
fn delta(before: &HashMap<DnsStat, u64>, after: &HashMap<DnsStat, u64>) -> HashMap<DnsStat, u64> {
    DnsStat::ALL
        .iter()
        .map(|s| (*s, after[s] - before[s]))
        .filter(|(_, d)| *d != 0)
        .collect()
}

fn rules(list: &[(&str, RuleKind, u32)]) -> RuleSetBuilder {
    let mut set = RuleSetBuilder::new();
    for &(name, kind, id) in list {
        set.add(name, kind, id).unwrap();
    }
    set
}

/// A v4 query frame for `name` (as written: case preserved on the wire).
fn q4(id: u16, name: &str) -> Vec<u8> {
    Udp::v4(&dns::query(id, name, true), 40000 + id, 53).frame()
}

/// Verdict of the egress program for a v4 query for `name`.
fn verdict(loaded: &Loaded, name: &str) -> u32 {
    loaded.run(PROG_TC_EGRESS, &q4(7, name)).0
}

fn verdict_qname(loaded: &Loaded, qname: &[u8]) -> u32 {
    let msg = dns::query_with_qname(9, qname, false);
    loaded
        .run(PROG_TC_EGRESS, &Udp::v4(&msg, 40009, 53).frame())
        .0
}

#[test]
fn kernel_hash_equals_rust_hash() {
    if !have_root("kernel_hash_equals_rust_hash") {
        return;
    }
    let loaded = Loaded::new();
    loaded.set_action(BlockAction::Nxdomain);

    let label63 = "L".repeat(31) + "-" + &"x".repeat(31);
    let labels32: Vec<String> = (0..31).map(|i| format!("Sub{i}")).collect();
    let longest = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "B".repeat(63),
        "c".repeat(63),
        "D".repeat(61)
    );
    let names = [
        "example.test".to_owned(),
        "WWW.Example.TEST".to_owned(),
        "MiXeD.CaSe.Example.Test".to_owned(),
        format!("{label63}.test"),
        format!("{}.test", labels32.join(".")),
        longest.clone(),
        "_dmarc.x-y.test".to_owned(),
        "!#$%&'()*+,-/:;<=>?@[]^_`{|}~.test".to_owned(),
        "0123456789.test".to_owned(),
        "localhost".to_owned(),
        "xn--bcher-kva.test".to_owned(),
    ];
    assert_eq!(longest.len(), 253);
    assert_eq!(labels32.len() + 1, 32);

    let mut set = RuleSetBuilder::new();
    for (i, name) in names.iter().enumerate() {
        // The rule is keyed by the Rust hash of the normalized (lower case) name.
        let hash = set
            .add(&name.to_lowercase(), RuleKind::BlockExact, 1000 + i as u32)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(hash, name_hash(&normalize(name).unwrap()));
    }
    loaded.install(&set);

    for program in [PROG_TC_EGRESS, PROG_TC_INGRESS] {
        for (i, name) in names.iter().enumerate() {
            let before = loaded.hits().get(&(1000 + i as u32)).copied().unwrap_or(0);
            let (ret, _) = loaded.run(program, &q4(i as u16, name));
            assert_eq!(ret, TC_ACT_REDIRECT, "{program}: {name} not blocked");
            assert_eq!(
                loaded.hits().get(&(1000 + i as u32)).copied().unwrap_or(0),
                before + 1,
                "{name}: blocked by its own rule"
            );
            // Near misses: another first label, or the parent only.
            let first_label = name.split('.').next().unwrap();
            if first_label.len() < 63 {
                let longer = format!("{first_label}z{}", &name[first_label.len()..]);
                if normalize(&longer).is_some() {
                    assert_eq!(
                        loaded.run(program, &q4(1, &longer)).0,
                        TC_ACT_UNSPEC,
                        "{longer}"
                    );
                }
            }
            if let Some((_, parent)) = name.split_once('.') {
                let listed = names.iter().any(|n| normalize(n) == normalize(parent));
                if !listed {
                    assert_eq!(
                        loaded.run(program, &q4(2, parent)).0,
                        TC_ACT_UNSPEC,
                        "{parent}"
                    );
                }
            }
        }
    }
}

#[test]
fn suffixes_and_odd_names() {
    if !have_root("suffixes_and_odd_names") {
        return;
    }
    let loaded = Loaded::new();
    loaded.set_action(BlockAction::Nxdomain);
    // "dot.inside.test": the text a name with a '.' inside a label would spell if the kernel
    // kept the dot, to show such a name does not match it.
    loaded.install(&rules(&[
        ("deep.test", RuleKind::BlockSuffix, 100),
        ("dot.inside.test", RuleKind::BlockExact, 101),
        ("inside.test", RuleKind::BlockSuffix, 102),
    ]));

    for name in ["deep.test", "a.deep.test", "A.B.C.Deep.TEST", "deep.test."] {
        assert_eq!(verdict(&loaded, name), TC_ACT_REDIRECT, "{name}");
    }
    for name in ["xdeep.test", "deep.test.evil", "test", "eep.test"] {
        assert_eq!(verdict(&loaded, name), TC_ACT_UNSPEC, "{name}");
    }

    // Deeper than 32 labels: the 32 innermost suffixes are still looked up.
    let deep40 = format!("{}deep.test", "x.".repeat(40));
    assert_eq!(verdict(&loaded, &deep40), TC_ACT_REDIRECT, "40-label name");

    // Odd bytes are kept: the parent still matches.
    let odd = dns::qname(&[b"a\x01b".to_vec(), b"DEEP".to_vec(), b"test".to_vec()]);
    assert_eq!(verdict_qname(&loaded, &odd), TC_ACT_REDIRECT);
    // A '.' inside a label is not a label boundary: ["dot.inside", "test"] is neither
    // "dot.inside.test" nor under "inside.test".
    let dotted = dns::qname(&[b"dot.inside".to_vec(), b"test".to_vec()]);
    assert_eq!(verdict_qname(&loaded, &dotted), TC_ACT_UNSPEC);
    let real = dns::qname(&dns::labels("dot.inside.test"));
    assert_eq!(verdict_qname(&loaded, &real), TC_ACT_REDIRECT);

    // Not matchable: compression pointer, overlong, cut off. The root never matches, silently.
    let before = loaded.stat(DnsStat::NotMatchable);
    let pointer = [&[3_u8][..], b"abc", &[0xc0, 12]].concat();
    assert_eq!(verdict_qname(&loaded, &pointer), TC_ACT_UNSPEC);
    let long = dns::qname(
        &vec![b"y".repeat(60); 5]
            .into_iter()
            .chain([b"deep".to_vec(), b"test".to_vec()])
            .collect::<Vec<_>>(),
    );
    assert!(long.len() > 255);
    assert_eq!(verdict_qname(&loaded, &long), TC_ACT_UNSPEC);
    let cut = [&[4_u8][..], b"deep", &[4], b"te"].concat(); // runs off the message
    let msg = [&dns::query_with_qname(3, b"\0", false)[..12], &cut].concat();
    assert_eq!(
        loaded
            .run(PROG_TC_EGRESS, &Udp::v4(&msg, 40003, 53).frame())
            .0,
        TC_ACT_UNSPEC
    );
    assert_eq!(loaded.stat(DnsStat::NotMatchable), before + 3);
    assert_eq!(verdict_qname(&loaded, b"\0"), TC_ACT_UNSPEC);
    assert_eq!(
        loaded.stat(DnsStat::NotMatchable),
        before + 3,
        "the root is not counted"
    );

    // Not a query the policy looks at: opcode NOTIFY, QDCOUNT 0, not to port 53.
    let mut notify = dns::query(4, "deep.test", false);
    notify[2] |= 4 << 3;
    assert_eq!(
        loaded
            .run(PROG_TC_EGRESS, &Udp::v4(&notify, 40004, 53).frame())
            .0,
        TC_ACT_UNSPEC
    );
    let mut no_question = dns::query(5, "deep.test", false);
    no_question[5] = 0;
    assert_eq!(
        loaded
            .run(PROG_TC_EGRESS, &Udp::v4(&no_question, 40005, 53).frame())
            .0,
        TC_ACT_UNSPEC
    );
    let query = dns::query(6, "deep.test", false);
    assert_eq!(
        loaded
            .run(PROG_TC_EGRESS, &Udp::v4(&query, 53, 5353).frame())
            .0,
        TC_ACT_UNSPEC
    );
}

/// Checks `out` is the kernel's NXDOMAIN answer to the query frame `input` (a `Udp` spec).
fn assert_nxdomain_reply(spec: &Udp<'_>, out: &[u8], flags: [u8; 2]) {
    let reply = dns::parse(out).unwrap_or_else(|error| panic!("reply: {error}\n{out:02x?}"));
    assert_eq!((reply.src_mac, reply.dst_mac), (spec.dst_mac, spec.src_mac));
    assert_eq!(
        (reply.src.as_slice(), reply.dst.as_slice()),
        (spec.dst, spec.src)
    );
    assert_eq!((reply.sport, reply.dport), (spec.dport, spec.sport));
    assert_eq!(reply.ttl, 64);
    let question_end = dns::question_end(spec.payload).unwrap();
    let mut expected = spec.payload[..question_end].to_vec();
    expected[2..4].copy_from_slice(&flags);
    expected[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(reply.payload, expected, "DNS message");
    if !spec.checksum {
        assert_eq!(reply.udp_check, 0, "no UDP checksum stays none");
    }
}

#[test]
fn nxdomain_answers_are_exact() {
    if !have_root("nxdomain_answers_are_exact") {
        return;
    }
    let mut loaded = Loaded::new();
    loaded.set_action(BlockAction::Nxdomain);
    loaded.install(&rules(&[("blocked.test", RuleKind::BlockSuffix, 7)]));

    let mut id = 100;
    for program in [PROG_TC_EGRESS, PROG_TC_INGRESS] {
        for v6 in [false, true] {
            for edns in [false, true] {
                for checksum in [true, false] {
                    if v6 && !checksum {
                        continue; // IPv6 has no checksum-less UDP
                    }
                    id += 1;
                    let msg = dns::query(id, "Host.Blocked.TEST", edns);
                    let mut spec = if v6 {
                        Udp::v6(&msg, 33000 + id, 53)
                    } else {
                        Udp::v4(&msg, 33000 + id, 53)
                    };
                    spec.checksum = checksum;
                    let frame = spec.frame();
                    dns::parse(&frame).unwrap();
                    let (ret, out) = loaded.run(program, &frame);
                    assert_eq!(ret, TC_ACT_REDIRECT, "{program} v6={v6} edns={edns}");
                    // RD kept, QR and RA set, RCODE 3.
                    assert_nxdomain_reply(&spec, &out, [0x81, 0x83]);
                }
            }
        }
    }

    // Opcode and RD come from the query, CD is echoed, AD is not.
    let mut msg = dns::query(201, "blocked.test", true);
    msg[2] = 0x00; // no RD
    msg[3] = 0x30; // AD, CD
    let spec = Udp::v4(&msg, 34001, 53);
    let (ret, out) = loaded.run(PROG_TC_EGRESS, &spec.frame());
    assert_eq!(ret, TC_ACT_REDIRECT);
    assert_nxdomain_reply(&spec, &out, [0x80, 0x93]);

    // The record shows the query as it was seen, flagged blocked.
    let records = loaded.drain_dns();
    let record = records
        .iter()
        .find(|(hdr, _)| hdr.src_port == 34001)
        .expect("record of the blocked query");
    assert_eq!(record.1, msg);
    assert_eq!(record.0.flags & FLAG_DNS_BLOCKED, FLAG_DNS_BLOCKED);

    // IPv6 with an extension header: not rewritten, dropped instead.
    let before = loaded.stats();
    let msg = dns::query(202, "blocked.test", false);
    let mut spec = Udp::v6(&msg, 34002, 53);
    spec.hop_by_hop = true;
    assert_eq!(loaded.run(PROG_TC_EGRESS, &spec.frame()).0, TC_ACT_SHOT);
    let changed = delta(&before, &loaded.stats());
    assert_eq!(changed.get(&DnsStat::NxdomainUnsupported), Some(&1));
    assert_eq!(changed.get(&DnsStat::BlockedDrop), Some(&1));
}

#[test]
fn answers_are_rewritten() {
    if !have_root("answers_are_rewritten") {
        return;
    }
    let mut loaded = Loaded::new();
    loaded.set_action(BlockAction::Nxdomain);
    loaded.install(&rules(&[
        ("blocked.test", RuleKind::BlockSuffix, 7),
        ("ok.blocked.test", RuleKind::AllowExact, 8),
    ]));

    for v6 in [false, true] {
        let query = dns::query(300, "cdn.blocked.test", true);
        let answer = dns::answer(&query, [198, 18, 0, 99]);
        let spec = if v6 {
            Udp::v6(&answer, 53, 35000)
        } else {
            Udp::v4(&answer, 53, 35000)
        };
        let before = loaded.stats();
        let (ret, out) = loaded.run(PROG_TC_INGRESS, &spec.frame());
        assert_eq!(ret, TC_ACT_UNSPEC, "answers go on");
        let reply = dns::parse(&out).unwrap_or_else(|error| panic!("{error}"));
        // Not turned around.
        assert_eq!(
            (reply.src.as_slice(), reply.dst.as_slice()),
            (spec.src, spec.dst)
        );
        assert_eq!((reply.sport, reply.dport, reply.ttl), (53, 35000, spec.ttl));
        let question_end = dns::question_end(&query).unwrap();
        let mut expected = query[..question_end].to_vec();
        expected[2..12].copy_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply.payload, expected);
        let changed = delta(&before, &loaded.stats());
        assert_eq!(changed.get(&DnsStat::AnswersRewritten), Some(&1));

        // The record shows the upstream answer, flagged rewritten.
        let records = loaded.drain_dns();
        let record = records.iter().find(|(h, _)| h.src_port == 53).unwrap();
        assert_eq!(record.1, answer);
        assert_eq!(record.0.flags & FLAG_DNS_REWRITTEN, FLAG_DNS_REWRITTEN);

        // Our own answer coming back through the other hook passes unchanged and uncounted.
        let before = loaded.stats();
        let (ret, again) = loaded.run(PROG_TC_EGRESS, &out);
        assert_eq!((ret, &again), (TC_ACT_UNSPEC, &out));
        let changed = delta(&before, &loaded.stats());
        assert_eq!(changed.get(&DnsStat::AnswersRewritten), None);
        let records = loaded.drain_dns();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].0.flags & (FLAG_DNS_REWRITTEN | FLAG_DNS_BLOCKED),
            0
        );
    }

    // A large answer (far beyond the DNS capture cap) is cut back to its question too.
    let query = dns::query(303, "big.blocked.test", false);
    let mut big = dns::answer(&query, [198, 18, 0, 99]);
    let records: u16 = 80;
    big[6..8].copy_from_slice(&(1 + records).to_be_bytes());
    let end = big.len() - dns::opt_record().len();
    let one = big[dns::question_end(&query).unwrap()..end].to_vec();
    let mut grown = big[..end].to_vec();
    for _ in 0..records {
        grown.extend_from_slice(&one);
    }
    grown.extend_from_slice(&dns::opt_record());
    assert!(grown.len() > 1300);
    let spec = Udp::v4(&grown, 53, 35003);
    let (ret, out) = loaded.run(PROG_TC_INGRESS, &spec.frame());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let reply = dns::parse(&out).unwrap_or_else(|error| panic!("{error}"));
    let question_end = dns::question_end(&query).unwrap();
    let mut expected = query[..question_end].to_vec();
    expected[2..12].copy_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(reply.payload, expected);
    let _ = loaded.drain_dns();

    // Allowed and unlisted answers are untouched.
    for name in ["ok.blocked.test", "other.test"] {
        let query = dns::query(301, name, true);
        let frame = Udp::v4(&dns::answer(&query, [198, 18, 0, 99]), 53, 35001).frame();
        assert_eq!(
            loaded.run(PROG_TC_INGRESS, &frame),
            (TC_ACT_UNSPEC, frame.clone()),
            "{name}"
        );
    }

    // With the drop action, blocked answers are dropped.
    loaded.set_action(BlockAction::Drop);
    let query = dns::query(302, "cdn.blocked.test", true);
    let frame = Udp::v4(&dns::answer(&query, [198, 18, 0, 99]), 53, 35002).frame();
    let before = loaded.stat(DnsStat::AnswersDropped);
    assert_eq!(loaded.run(PROG_TC_INGRESS, &frame).0, TC_ACT_SHOT);
    assert_eq!(loaded.stat(DnsStat::AnswersDropped), before + 1);
}

#[test]
fn verdicts_follow_the_rules() {
    if !have_root("verdicts_follow_the_rules") {
        return;
    }
    let mut loaded = Loaded::new();

    // Enforcement off (the default): nothing is even looked at.
    loaded.install(&rules(&[("ads.test", RuleKind::BlockSuffix, 1)]));
    assert_eq!(verdict(&loaded, "ads.test"), TC_ACT_UNSPEC);
    assert_eq!(loaded.stat(DnsStat::QueriesChecked), 0);

    loaded.set_action(BlockAction::Nxdomain);
    let first = loaded.install(&rules(&[
        ("ads.test", RuleKind::BlockSuffix, 1),
        ("corp.test", RuleKind::BlockSuffix, 2),
        ("ok.corp.test", RuleKind::AllowExact, 3),
        ("safe.corp.test", RuleKind::AllowSuffix, 4),
        ("shop.test", RuleKind::BlockSuffix, 5),
        ("shop.test", RuleKind::AllowExact, 6),
        ("learned-allowed.test", RuleKind::AllowExact, 7),
    ]));
    let cases = [
        ("ads.test", TC_ACT_REDIRECT),
        ("x.ads.test", TC_ACT_REDIRECT),
        ("a.corp.test", TC_ACT_REDIRECT),
        ("ok.corp.test", TC_ACT_UNSPEC),
        ("x.ok.corp.test", TC_ACT_REDIRECT),
        ("safe.corp.test", TC_ACT_UNSPEC),
        ("deep.safe.corp.test", TC_ACT_UNSPEC),
        ("shop.test", TC_ACT_UNSPEC),
        ("www.shop.test", TC_ACT_REDIRECT),
        ("other.test", TC_ACT_UNSPEC),
    ];
    let before = loaded.stats();
    let hits_before = loaded.hits();
    for (name, want) in cases {
        assert_eq!(verdict(&loaded, name), want, "{name}");
    }
    let changed = delta(&before, &loaded.stats());
    assert_eq!(changed.get(&DnsStat::QueriesChecked), Some(&10));
    assert_eq!(changed.get(&DnsStat::BlockedNxdomain), Some(&5));
    assert_eq!(changed.get(&DnsStat::QueriesAllowed), Some(&4));
    let hits = loaded.hits();
    let gained =
        |id: u32| hits.get(&id).copied().unwrap_or(0) - hits_before.get(&id).copied().unwrap_or(0);
    assert_eq!(
        [gained(1), gained(2), gained(3), gained(4), gained(5)],
        [2, 2, 1, 2, 2],
        "per-rule hits (the merged shop.test entry counts under its block rule)"
    );

    // Learned blocks: exact name only, until they expire; an allow rule still wins.
    let learned = loaded.map(MAP_DNS_LEARNED);
    let hash = |name: &str| name_hash(&normalize(name).unwrap());
    dns_policy::learn(learned, hash("regex-hit.test"), 50, Duration::from_secs(60)).unwrap();
    dns_policy::learn(
        learned,
        hash("learned-allowed.test"),
        51,
        Duration::from_secs(60),
    )
    .unwrap();
    dns_policy::learn(learned, hash("stale.test"), 52, Duration::ZERO).unwrap();
    let before = loaded.stats();
    assert_eq!(verdict(&loaded, "regex-hit.test"), TC_ACT_REDIRECT);
    assert_eq!(verdict(&loaded, "sub.regex-hit.test"), TC_ACT_UNSPEC);
    assert_eq!(verdict(&loaded, "learned-allowed.test"), TC_ACT_UNSPEC);
    assert_eq!(verdict(&loaded, "stale.test"), TC_ACT_UNSPEC);
    let changed = delta(&before, &loaded.stats());
    assert_eq!(changed.get(&DnsStat::LearnedHits), Some(&1));
    assert_eq!(changed.get(&DnsStat::LearnedExpired), Some(&1));
    assert_eq!(loaded.hits().get(&50), Some(&1));
    assert_eq!(
        dns_policy::prune_learned(learned).unwrap(),
        1,
        "only stale.test expired"
    );
    assert!(dns_policy::forget(learned, hash("regex-hit.test")).unwrap());
    assert_eq!(verdict(&loaded, "regex-hit.test"), TC_ACT_UNSPEC);

    // Drop action.
    loaded.set_action(BlockAction::Drop);
    let before = loaded.stat(DnsStat::BlockedDrop);
    assert_eq!(verdict(&loaded, "x.ads.test"), TC_ACT_SHOT);
    assert_eq!(loaded.stat(DnsStat::BlockedDrop), before + 1);
    loaded.set_action(BlockAction::Nxdomain);

    // Swapping the rule set: the old rules stop, the new ones start, in one step.
    let old_map = dns_policy::open_current(loaded.map(MAP_DNS_POLICY))
        .unwrap()
        .unwrap();
    assert_eq!(dns_policy::read_rules(&old_map).unwrap().len(), 6);
    let second = loaded.install(&rules(&[("new.test", RuleKind::BlockExact, 9)]));
    assert_ne!(first, second);
    assert_eq!(verdict(&loaded, "ads.test"), TC_ACT_UNSPEC);
    assert_eq!(verdict(&loaded, "new.test"), TC_ACT_REDIRECT);
    assert_eq!(verdict(&loaded, "www.new.test"), TC_ACT_UNSPEC);
    // A bigger and a smaller rule set both fit the slot (hash inner maps: any max_entries).
    let mut big = RuleSetBuilder::with_capacity(5000);
    for i in 0..5000 {
        big.add(&format!("n{i}.big.test"), RuleKind::BlockExact, 10_000 + i)
            .unwrap();
    }
    loaded.install(&big);
    assert_eq!(verdict(&loaded, "n4999.big.test"), TC_ACT_REDIRECT);
    let current = dns_policy::open_current(loaded.map(MAP_DNS_POLICY))
        .unwrap()
        .unwrap();
    let facts = maps::map_facts(&current).unwrap();
    assert_eq!(
        (facts.max_entries, facts.name.as_str()),
        (5000, dns_policy::RULE_MAP_NAME)
    );
    assert_eq!(dns_policy::read_rules(&current).unwrap(), big.entries());
    drop((old_map, current));

    // An empty slot: no rule set, learned blocks only.
    dns_policy::learn(
        learned,
        hash("still-learned.test"),
        53,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(dns_policy::clear(loaded.map(MAP_DNS_POLICY)).unwrap());
    assert_eq!(
        dns_policy::current_inner_id(loaded.map(MAP_DNS_POLICY)).unwrap(),
        None
    );
    assert_eq!(verdict(&loaded, "n4999.big.test"), TC_ACT_UNSPEC);
    assert_eq!(verdict(&loaded, "still-learned.test"), TC_ACT_REDIRECT);

    // A map of another shape is refused for the slot, and the error names the call.
    let error = dns_policy::swap_in(loaded.map(MAP_DNS_POLICY), learned).unwrap_err();
    assert!(
        error.to_string().starts_with("BPF_MAP_UPDATE_ELEM: "),
        "{error}"
    );
    assert_eq!(
        dns_policy::current_inner_id(loaded.map(MAP_DNS_POLICY)).unwrap(),
        None
    );
    let _ = loaded.drain_dns();
}

/// Average nanoseconds per classifier run over `frame`: the DNS ring is drained first (so
/// records cost what they cost with a consumer), then 1,000 warm-up runs, then `RUNS` timed
/// ones in the kernel (`BPF_PROG_TEST_RUN` repeat).
fn cost_ns(loaded: &mut Loaded, frame: &[u8]) -> f64 {
    const RUNS: u32 = 20_000;
    let _ = loaded.drain_dns();
    let prog = loaded.prog(PROG_TC_EGRESS);
    dns::test_run_repeat(prog, frame, 1000).unwrap();
    let (_, _, duration) = dns::test_run_repeat(prog, frame, RUNS).unwrap();
    let _ = loaded.drain_dns();
    f64::from(duration)
}

/// Kernel memory the kernel accounts to a map (`memlock:` in its fdinfo).
fn memlock(fd: BorrowedFd<'_>) -> u64 {
    use std::os::fd::AsRawFd;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_million_names() {
    if !have_root("a_million_names") {
        return;
    }
    const NAMES: u32 = 1_000_000;
    let mut loaded = Loaded::with_wakeup(Some(u32::MAX));
    let name = |i: u32| format!("host{i}.zone{}.example{}.test", i % 1000, i % 7);
    let other = Udp::v4(b"not dns at all", 40000, 4000).frame();
    let unlisted3 = q4(1, "www.unlisted.test");
    let unlisted10 = q4(2, "a.b.c.d.e.f.g.h.unlisted.test");
    let listed = q4(3, &name(0));

    // Per-packet cost before the big set: no policy, no rule set, a small rule set.
    let cost_other = cost_ns(&mut loaded, &other);
    let cost_off = cost_ns(&mut loaded, &unlisted3);
    loaded.set_action(BlockAction::Nxdomain);
    let cost_empty = cost_ns(&mut loaded, &unlisted3);
    loaded.install(&rules(&[("a.test", RuleKind::BlockExact, 1)]));
    let cost_small3 = cost_ns(&mut loaded, &unlisted3);
    let cost_small10 = cost_ns(&mut loaded, &unlisted10);

    let started = Instant::now();
    let mut set = RuleSetBuilder::with_capacity(NAMES as usize);
    for i in 0..NAMES {
        let kind = if i % 2 == 0 {
            RuleKind::BlockExact
        } else {
            RuleKind::BlockSuffix
        };
        set.add(&name(i), kind, i).unwrap();
    }
    let entries = set.entries();
    let compiled = started.elapsed();
    let started = Instant::now();
    let map = dns_policy::create_rule_map(NAMES).unwrap();
    let created = started.elapsed();
    dns_policy::fill(&map, &entries).unwrap();
    let filled = started.elapsed();
    dns_policy::swap_in(loaded.map(MAP_DNS_POLICY), &map).unwrap();
    let bytes = memlock(map.as_fd());
    drop(map);

    // Collisions among the million hashes would have merged entries.
    assert_eq!(entries.len(), NAMES as usize, "no two names share a hash");
    for i in (0..NAMES).step_by(9973) {
        assert_eq!(verdict(&loaded, &name(i)), TC_ACT_REDIRECT, "{}", name(i));
        let sub = format!("www.{}", name(i));
        let want = if i % 2 == 0 {
            TC_ACT_UNSPEC
        } else {
            TC_ACT_REDIRECT
        };
        assert_eq!(verdict(&loaded, &sub), want, "{sub}");
    }
    assert_eq!(verdict(&loaded, "host1.zone2.example1.test"), TC_ACT_UNSPEC);

    let cost_big3 = cost_ns(&mut loaded, &unlisted3);
    let cost_big10 = cost_ns(&mut loaded, &unlisted10);
    loaded.set_action(BlockAction::Drop);
    let cost_drop = cost_ns(&mut loaded, &listed);
    // A rewrite changes the packet, so each NXDOMAIN is a run of its own.
    loaded.set_action(BlockAction::Nxdomain);
    let egress = loaded.prog(PROG_TC_EGRESS);
    let mut samples: Vec<u32> = (0..2000)
        .map(|_| dns::test_run_repeat(egress, &listed, 1).unwrap().2)
        .collect();
    samples.sort_unstable();
    let cost_nxdomain = samples[samples.len() / 2];
    let _ = loaded.drain_dns();

    println!(
        "a_million_names: {NAMES} names: compile (normalize, hash, merge) {compiled:.2?}, \
         BPF_MAP_CREATE {created:.2?}, create+fill (BPF_MAP_UPDATE_BATCH) {filled:.2?}, \
         kernel memory {:.1} MiB ({} bytes/name)",
        bytes as f64 / f64::from(1 << 20),
        bytes / u64::from(NAMES)
    );
    println!(
        "a_million_names: ns per packet in the egress classifier (record included): non-DNS UDP \
         {cost_other:.0}; DNS query, enforcement off {cost_off:.0}; on, no rule set \
         {cost_empty:.0}; 1-rule set: 3-label name {cost_small3:.0}, 10-label name \
         {cost_small10:.0}; 1M-rule set: 3-label {cost_big3:.0}, 10-label {cost_big10:.0}, \
         listed (drop) {cost_drop:.0}, listed (NXDOMAIN rewrite, median single run) {cost_nxdomain}"
    );
}

/// A dnsmasq resolver in a test namespace, answering every name under `example.test` with
/// 198.18.0.99 and logging each query it receives. Killed (by its pid) on drop.
struct Dnsmasq {
    child: Child,
    log: PathBuf,
}

impl Dnsmasq {
    fn start(ns: &Netns, addrs: &[&str]) -> Self {
        let log = std::env::temp_dir()
            .join(unique("pal-ebpf-dnsmasq"))
            .with_extension("log");
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns.name(), "dnsmasq"]).args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--address=/example.test/198.18.0.99",
            "--log-queries",
            "--pid-file=",
            "--user=root",
        ]);
        command.arg(format!("--log-facility={}", log.display()));
        for addr in addrs {
            command.arg(format!("--listen-address={addr}"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq)");
        Self { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether dnsmasq received a query for `name` (as dig sent it).
    fn saw(&self, name: &str) -> bool {
        self.log().contains(&format!(" {name} from "))
    }

    /// Waits until dnsmasq logged a query for `marker` (so earlier queries are logged too).
    fn wait_for(&self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.saw(marker) {
            assert!(
                Instant::now() < deadline,
                "dnsmasq never logged {marker}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

fn dig(ns: &Netns, server: &str, name: &str, timeout_s: u32) -> Dig {
    let output = Command::new("ip")
        .args(["netns", "exec", ns.name(), "dig"])
        .arg(format!("@{server}"))
        .args(["+qr", "+tries=1"])
        .arg(format!("+timeout={timeout_s}"))
        .arg(name)
        .output()
        .expect("dig (apt-get install bind9-dnsutils)");
    Dig::parse(
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn assert_nxdomain(reply: &Dig, what: &str) {
    assert_eq!(
        reply.status.as_deref(),
        Some("NXDOMAIN"),
        "{what}:\n{}",
        reply.text
    );
    assert!(reply.query_id.is_some(), "{what}");
    assert_eq!(reply.query_id, reply.answer_id, "{what}: same id");
    assert!(reply.addresses.is_empty(), "{what}");
}

fn assert_resolves(reply: &Dig, what: &str) {
    assert_eq!(
        reply.status.as_deref(),
        Some("NOERROR"),
        "{what}:\n{}",
        reply.text
    );
    assert_eq!(reply.addresses, ["198.18.0.99"], "{what}");
}

const V6_A: &str = "fd00:198:18::1";
const V6_B: &str = "fd00:198:18::2";

/// The lab: `veth-a` in namespace `a` (198.18.0.1, fd00:198:18::1) carries both classifiers;
/// `veth-b` in `b` (198.18.0.2, fd00:198:18::2). A dnsmasq on each side.
struct Lab {
    // Drop order: resolvers, then programs and pins, then the namespaces.
    resolver_a: Dnsmasq,
    resolver_b: Dnsmasq,
    loaded: Loaded,
    net: VethPair,
}

impl Lab {
    fn new() -> Self {
        let net = VethPair::new();
        for (ns, dev, mac, v6) in [
            (&net.a, "veth-a", "02:00:00:00:00:0a", V6_A),
            (&net.b, "veth-b", "02:00:00:00:00:0b", V6_B),
        ] {
            ns.exec(&format!("ip link set {dev} address {mac}"));
            ns.exec(&format!("sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=0"));
            ns.exec("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            ns.exec(&format!("ip -6 addr add {v6}/64 dev {dev} nodad"));
        }
        let mut loaded = Loaded::new();
        net.a.run(|| {
            for (name, hook) in [
                (PROG_TC_INGRESS, TcAttachType::Ingress),
                (PROG_TC_EGRESS, TcAttachType::Egress),
            ] {
                classifier(&mut loaded.ebpf, name)
                    .attach("veth-a", hook)
                    .unwrap_or_else(|error| panic!("attaching {name}: {error:?}"));
            }
        });
        let resolver_a = Dnsmasq::start(&net.a, &["198.18.0.1", V6_A]);
        let resolver_b = Dnsmasq::start(&net.b, &["198.18.0.2", V6_B]);
        let lab = Self {
            resolver_a,
            resolver_b,
            loaded,
            net,
        };
        // Both resolvers up (enforcement is still off).
        let deadline = Instant::now() + Duration::from_secs(10);
        for (ns, server) in [(&lab.net.a, "198.18.0.2"), (&lab.net.b, "198.18.0.1")] {
            while dig(ns, server, "up.example.test", 1).status.as_deref() != Some("NOERROR") {
                assert!(
                    Instant::now() < deadline,
                    "dnsmasq at {server} does not answer"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        lab
    }
}

/// A raw frame (no checksum offload: the receiving stack verifies the UDP checksum) from
/// `src` to `dst` over the veth.
fn raw_udp(
    src: (&[u8], u16),
    dst: (&[u8], u16),
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    payload: &[u8],
) -> Vec<u8> {
    Udp {
        src_mac,
        dst_mac,
        src: src.0,
        dst: dst.0,
        sport: src.1,
        dport: dst.1,
        payload,
        checksum: true,
        ttl: 64,
        hop_by_hop: false,
    }
    .frame()
}

fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0_u8; 1500];
    let (len, _) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|error| panic!("no reply (a bad checksum is dropped): {error}"));
    buf[..len].to_vec()
}

#[test]
fn real_resolver_and_clients() {
    if !have_root("real_resolver_and_clients") {
        return;
    }
    let mut lab = Lab::new();
    let (a, b) = (&lab.net.a, &lab.net.b);
    lab.loaded.set_action(BlockAction::Nxdomain);
    let first = lab.loaded.install(&rules(&[
        ("ads.example.test", RuleKind::BlockExact, 1),
        ("tracker.example.test", RuleKind::BlockSuffix, 2),
        ("corp.example.test", RuleKind::BlockSuffix, 3),
        ("ok.corp.example.test", RuleKind::AllowExact, 4),
    ]));
    let before = lab.loaded.stats();

    // Egress (dig next to the program, resolver behind veth-b) and ingress (dig behind veth-b,
    // resolver next to the program), over IPv4 and IPv6.
    let paths = [
        ("egress v4", a, "198.18.0.2", &lab.resolver_b),
        ("egress v6", a, V6_B, &lab.resolver_b),
        ("ingress v4", b, "198.18.0.1", &lab.resolver_a),
        ("ingress v6", b, V6_A, &lab.resolver_a),
    ];
    let mut blocked_queries = 0;
    for (path, client, server, resolver) in paths {
        let tag = path.replace(' ', "-");
        let blocked = [
            "ads.example.test".to_owned(),
            "ADS.Example.TEST".to_owned(),
            "tracker.example.test".to_owned(),
            format!("a.b.{tag}.tracker.example.test"),
            format!("x.{tag}.corp.example.test"),
        ];
        let allowed = [
            format!("www.{tag}.example.test"),
            format!("{tag}.ads.example.test"),
            "ok.corp.example.test".to_owned(),
        ];
        for name in &blocked {
            assert_nxdomain(&dig(client, server, name, 2), &format!("{path}: {name}"));
            blocked_queries += 1;
        }
        for name in &allowed {
            assert_resolves(&dig(client, server, name, 2), &format!("{path}: {name}"));
        }
        let marker = format!("marker.{tag}.example.test");
        assert_resolves(&dig(client, server, &marker, 2), &marker);
        resolver.wait_for(&marker);
        for name in &blocked[2..] {
            assert!(!resolver.saw(name), "{path}: dnsmasq saw {name}");
        }
        assert!(
            !resolver
                .log()
                .to_lowercase()
                .contains(" ads.example.test from "),
            "{path}"
        );
        for name in &allowed {
            assert!(resolver.saw(name), "{path}: dnsmasq never saw {name}");
        }
    }
    let changed = delta(&before, &lab.loaded.stats());
    assert_eq!(
        changed.get(&DnsStat::BlockedNxdomain),
        Some(&blocked_queries)
    );
    assert_eq!(changed.get(&DnsStat::RedirectFailed), None);
    assert_eq!(changed.get(&DnsStat::RewriteFailed), None);
    let hits = lab.loaded.hits();
    assert_eq!(
        [hits.get(&1), hits.get(&2), hits.get(&3), hits.get(&4)],
        [Some(&8), Some(&8), Some(&4), Some(&4)],
        "per-rule hits over the four paths"
    );
    // The blocked queries were recorded as seen, flagged.
    let records = lab.loaded.drain_dns();
    let flagged = records
        .iter()
        .filter(|(hdr, payload)| {
            hdr.flags & FLAG_DNS_BLOCKED != 0 && dns::question_end(payload).is_some()
        })
        .count();
    assert_eq!(flagged as u64, blocked_queries);

    // Drop: the client hears nothing.
    lab.loaded.set_action(BlockAction::Drop);
    let reply = dig(a, "198.18.0.2", "drop.tracker.example.test", 1);
    assert_eq!(
        (reply.code, reply.status.as_deref()),
        (9, None),
        "{}",
        reply.text
    );
    lab.loaded.set_action(BlockAction::Nxdomain);

    // A new rule set replaces the old one at once.
    let second = lab
        .loaded
        .install(&rules(&[("newads.example.test", RuleKind::BlockExact, 10)]));
    assert_ne!(first, second);
    assert_resolves(
        &dig(a, "198.18.0.2", "ads.example.test", 2),
        "ads after the swap",
    );
    assert_nxdomain(
        &dig(a, "198.18.0.2", "newads.example.test", 2),
        "newads after the swap",
    );
    lab.resolver_b.wait_for("ads.example.test");

    // A learned block holds until it expires.
    let learned = lab.loaded.map(MAP_DNS_LEARNED);
    let hash = |name: &str| name_hash(&normalize(name).unwrap());
    let ttl = Duration::from_millis(1500);
    let learned_at = Instant::now();
    dns_policy::learn(learned, hash("learned.example.test"), 20, ttl).unwrap();
    assert_nxdomain(&dig(a, "198.18.0.2", "learned.example.test", 1), "learned");
    std::thread::sleep(
        (learned_at + ttl + Duration::from_millis(200)).saturating_duration_since(Instant::now()),
    );
    assert_resolves(
        &dig(a, "198.18.0.2", "learned.example.test", 2),
        "learned, expired",
    );

    // Hand-made frames, sent without checksum offload: the stack that receives the kernel's
    // NXDOMAIN verifies its UDP checksum. Egress (reply goes up the stack of `a`) and ingress
    // (reply goes out to `b`), IPv4 and IPv6.
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let (v6_a, v6_b) = (v6(V6_A), v6(V6_B));
    let (mac_a, mac_b) = (support::frames::MAC_A, support::frames::MAC_B);
    struct RawCase<'a> {
        path: &'a str,
        ns: &'a Netns,
        dev: &'a str,
        bind: SocketAddr,
        src: &'a [u8],
        dst: &'a [u8],
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
    }
    let cases = [
        RawCase {
            path: "egress v4",
            ns: a,
            dev: "veth-a",
            bind: "198.18.0.1:41100".parse().unwrap(),
            src: &support::ADDR_A,
            dst: &support::ADDR_B,
            src_mac: mac_a,
            dst_mac: mac_b,
        },
        RawCase {
            path: "egress v6",
            ns: a,
            dev: "veth-a",
            bind: format!("[{V6_A}]:41101").parse().unwrap(),
            src: &v6_a,
            dst: &v6_b,
            src_mac: mac_a,
            dst_mac: mac_b,
        },
        RawCase {
            path: "ingress v4",
            ns: b,
            dev: "veth-b",
            bind: "198.18.0.2:41102".parse().unwrap(),
            src: &support::ADDR_B,
            dst: &support::ADDR_A,
            src_mac: mac_b,
            dst_mac: mac_a,
        },
        RawCase {
            path: "ingress v6",
            ns: b,
            dev: "veth-b",
            bind: format!("[{V6_B}]:41103").parse().unwrap(),
            src: &v6_b,
            dst: &v6_a,
            src_mac: mac_b,
            dst_mac: mac_a,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let socket = case.ns.run(|| UdpSocket::bind(case.bind).unwrap());
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let name = dns::labels("newads.example.test");
        let query = dns::query_with_qname(0x7000 + i as u16, &dns::qname(&name), true);
        let frame = raw_udp(
            (case.src, case.bind.port()),
            (case.dst, 53),
            case.src_mac,
            case.dst_mac,
            &query,
        );
        case.ns.run(|| RawSender::new(case.dev)).send(&frame);
        let reply = receive(&socket);
        let end = dns::question_end(&query).unwrap();
        let mut expected = query[..end].to_vec();
        expected[2..12].copy_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply, expected, "{}", case.path);
    }

    // An upstream answer that arrives after a verdict was learned is neutralised: the query
    // got through (and was answered), then the same answer arrives late.
    let client = a.run(|| UdpSocket::bind("198.18.0.1:41110").unwrap());
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let query = dns::query(0x7100, "late.example.test", true);
    client.send_to(&query, "198.18.0.2:53").unwrap();
    let first_answer = receive(&client);
    assert_eq!(first_answer[3] & 0x0f, 0, "answered before the verdict");
    dns_policy::learn(
        learned,
        hash("late.example.test"),
        21,
        Duration::from_secs(60),
    )
    .unwrap();
    let rewritten_before = lab.loaded.stat(DnsStat::AnswersRewritten);
    let late = dns::answer(&query, [198, 18, 0, 99]);
    let frame = raw_udp(
        (&support::ADDR_B, 53),
        (&support::ADDR_A, 41110),
        mac_b,
        mac_a,
        &late,
    );
    b.run(|| RawSender::new("veth-b")).send(&frame);
    let reply = receive(&client);
    let end = dns::question_end(&query).unwrap();
    let mut expected = query[..end].to_vec();
    expected[2..12].copy_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(reply, expected, "late answer rewritten");
    assert_eq!(
        lab.loaded.stat(DnsStat::AnswersRewritten),
        rewritten_before + 1
    );
    assert_eq!(lab.loaded.hits().get(&21), Some(&1));
}

/// `frame` (Ethernet + IPv4 + UDP) as its first fragment: MF set, cut after `keep` bytes of
/// UDP (header included), total length and header checksum fixed.
fn ipv4_first_fragment(frame: &[u8], keep: usize) -> Vec<u8> {
    let mut out = frame[..14 + 20 + keep].to_vec();
    let total = u16::try_from(20 + keep).unwrap();
    out[16..18].copy_from_slice(&total.to_be_bytes());
    out[20..22].copy_from_slice(&0x2000_u16.to_be_bytes()); // MF, offset 0
    out[24..26].copy_from_slice(&[0, 0]);
    let check = dns::finish(dns::ones_sum(0, &out[14..34]));
    out[24..26].copy_from_slice(&check.to_be_bytes());
    out
}

/// `frame` (Ethernet + IPv6 + UDP) with a fragment header: the first fragment (`more`:
/// M set, cut after `keep` bytes of UDP) or an atomic fragment (`more` false, whole).
fn ipv6_fragment(frame: &[u8], keep: usize, more: bool) -> Vec<u8> {
    let udp = &frame[14 + 40..];
    let keep = if more { keep } else { udp.len() };
    let mut out = frame[..14 + 40].to_vec();
    out[14 + 6] = 44; // next header: fragment
    let payload_len = u16::try_from(8 + keep).unwrap();
    out[14 + 4..14 + 6].copy_from_slice(&payload_len.to_be_bytes());
    out.extend_from_slice(&[17, 0, 0, u8::from(more), 0xca, 0xfe, 0xba, 0xbe]);
    out.extend_from_slice(&udp[..keep]);
    out
}

#[test]
fn fragmented_queries_are_dropped_and_counted() {
    if !have_root("fragmented_queries_are_dropped_and_counted") {
        return;
    }
    let mut loaded = Loaded::new();
    loaded.install(&rules(&[("ads.test", RuleKind::BlockSuffix, 1)]));
    let blocked = dns::query(7, "www.ads.test", false);
    let allowed = dns::query(8, "www.fine.test", false);
    let v4 = |msg: &[u8]| Udp::v4(msg, 40000, 53).frame();
    let v6 = |msg: &[u8]| Udp::v6(msg, 40000, 53).frame();
    let frames = [
        // The name in the first fragment, or only the UDP header in it: either way the
        // resolver would reassemble a name this packet does not show in full.
        (
            "v4 first fragment, name inside",
            ipv4_first_fragment(&v4(&blocked), 8 + 20),
        ),
        (
            "v4 first fragment, UDP header only",
            ipv4_first_fragment(&v4(&blocked), 8),
        ),
        (
            "v4 first fragment, unlisted name",
            ipv4_first_fragment(&v4(&allowed), 8 + 20),
        ),
        (
            "v6 first fragment",
            ipv6_fragment(&v6(&blocked), 8 + 16, true),
        ),
        (
            "v6 first fragment, unlisted name",
            ipv6_fragment(&v6(&allowed), 8 + 16, true),
        ),
    ];

    // Enforcement off: observed, not dropped.
    for (what, frame) in &frames {
        assert_eq!(
            loaded.run(PROG_TC_INGRESS, frame).0,
            TC_ACT_UNSPEC,
            "{what}"
        );
    }
    assert_eq!(loaded.stat(DnsStat::FragmentDropped), 0);
    let records = loaded.drain_dns();
    assert_eq!(
        records.len(),
        frames.len(),
        "each first fragment is recorded"
    );
    assert!(
        records.iter().all(|(h, _)| h.flags & FLAG_TRUNCATED != 0),
        "and flagged as not the whole message"
    );

    loaded.set_action(BlockAction::Nxdomain);
    let before = loaded.stats();
    for (what, frame) in &frames {
        assert_eq!(loaded.run(PROG_TC_INGRESS, frame).0, TC_ACT_SHOT, "{what}");
    }
    let changed = delta(&before, &loaded.stats());
    assert_eq!(changed.get(&DnsStat::FragmentDropped), Some(&5));
    assert_eq!(changed.get(&DnsStat::BlockedDrop), Some(&5));

    // An IPv6 atomic fragment is a whole datagram: judged by its name like any query (a
    // blocked one cannot be rewritten behind an extension header, so it is dropped).
    let before = loaded.stats();
    assert_eq!(
        loaded
            .run(PROG_TC_INGRESS, &ipv6_fragment(&v6(&blocked), 0, false))
            .0,
        TC_ACT_SHOT
    );
    assert_eq!(
        loaded
            .run(PROG_TC_INGRESS, &ipv6_fragment(&v6(&allowed), 0, false))
            .0,
        TC_ACT_UNSPEC
    );
    let changed = delta(&before, &loaded.stats());
    assert_eq!(changed.get(&DnsStat::NxdomainUnsupported), Some(&1));
    assert_eq!(changed.get(&DnsStat::FragmentDropped), None);

    // Answers from port 53 may be fragmented (large EDNS answers): they pass.
    let answer = dns::answer(&allowed, [192, 0, 2, 1]);
    let frag_answer = ipv4_first_fragment(&Udp::v4(&answer, 53, 40000).frame(), 8 + 20);
    assert_eq!(loaded.run(PROG_TC_INGRESS, &frag_answer).0, TC_ACT_UNSPEC);
}
