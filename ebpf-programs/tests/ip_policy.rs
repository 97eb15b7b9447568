//! The IP policy's map helpers against the real kernel: LPM tries built, swapped into
//! `pal_ip4_policy` / `pal_ip6_policy`, edited in place, read back; and the verifier
//! accepts the three IP policy programs; `pal_xdp_block` (run with `BPF_PROG_TEST_RUN`)
//! drops a listed source behind no, one and two (QinQ) VLAN tags. Needs root (skipped
//! otherwise).

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a panic is the failure report"
)]

mod support;

use aya::{
    EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use palisade_abi::{
    IpRule, IpStat, MAP_IP_STATS, MAP_IP4_FILTER, MAP_IP4_POLICY, MAP_IP6_POLICY,
    PROG_TC_BLOCK_EGRESS, PROG_TC_BLOCK_INGRESS, PROG_XDP_BLOCK,
};
use palisade_ebpf::{
    PALISADE_BPF,
    ip_policy::{self, Family, Prefix},
    maps::{map_facts, map_fd},
};
use support::{BpfFs, have_root};

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap().0
}

#[test]
fn tries_swap_edit_and_read_back() {
    if !have_root("tries_swap_edit_and_read_back") {
        return;
    }
    let bpffs = BpfFs::new();
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(bpffs.path())
        .load(PALISADE_BPF)
        .unwrap();
    for name in [PROG_TC_BLOCK_INGRESS, PROG_TC_BLOCK_EGRESS] {
        let prog: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into().unwrap();
        prog.load()
            .unwrap_or_else(|e| panic!("verifier rejected {name}: {e:?}"));
    }
    let xdp: &mut Xdp = ebpf
        .program_mut(PROG_XDP_BLOCK)
        .unwrap()
        .try_into()
        .unwrap();
    xdp.load()
        .unwrap_or_else(|e| panic!("verifier rejected {PROG_XDP_BLOCK}: {e:?}"));

    let outer4 = map_fd(ebpf.map(MAP_IP4_POLICY).unwrap()).unwrap();
    let outer6 = map_fd(ebpf.map(MAP_IP6_POLICY).unwrap()).unwrap();
    assert_eq!(
        ip_policy::current_inner_id(outer4).unwrap(),
        None,
        "empty slot"
    );

    let rules = vec![
        (prefix("10.0.0.0/8"), IpRule::new(1, 8, 0)),
        (prefix("10.1.2.0/24"), IpRule::new(2, 24, 0)),
        (prefix("192.0.2.7"), IpRule::new(3, 32, 123)),
    ];
    let trie = ip_policy::build(Family::V4, &rules, 10).unwrap();
    let facts = map_facts(&trie).unwrap();
    assert_eq!(facts.max_entries, 13);
    assert_eq!(facts.name, ip_policy::TRIE4_NAME);
    ip_policy::swap_in(outer4, &trie).unwrap();
    assert_eq!(ip_policy::current_inner_id(outer4).unwrap(), Some(facts.id));
    drop(trie);

    // The slot keeps the trie alive; read it back through the outer map.
    let live = ip_policy::open_current(outer4).unwrap().unwrap();
    assert_eq!(ip_policy::read_rules(&live, Family::V4).unwrap(), {
        let mut sorted = rules.clone();
        sorted.sort_by_key(|(p, _)| *p);
        sorted
    });
    // `lookup` is exact: 10.1.0.0/16 is covered by 10.0.0.0/8 but has no rule of its own.
    assert_eq!(
        ip_policy::lookup(&live, prefix("10.1.2.0/24")).unwrap(),
        Some(IpRule::new(2, 24, 0))
    );
    assert_eq!(
        ip_policy::lookup(&live, prefix("10.1.0.0/16")).unwrap(),
        None
    );

    // In-place edits.
    ip_policy::insert(&live, prefix("198.51.100.0/24"), IpRule::new(9, 24, 0)).unwrap();
    assert!(ip_policy::remove(&live, prefix("10.1.2.0/24")).unwrap());
    assert!(!ip_policy::remove(&live, prefix("10.1.2.0/24")).unwrap());
    let now: Vec<String> = ip_policy::read_rules(&live, Family::V4)
        .unwrap()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(now, ["10.0.0.0/8", "192.0.2.7/32", "198.51.100.0/24"]);

    // A family's trie only takes its own prefixes; IPv6 works alike.
    assert!(ip_policy::build(Family::V6, &rules, 0).is_err());
    let v6 = ip_policy::build(
        Family::V6,
        &[(prefix("2001:db8::/32"), IpRule::new(4, 32, 0))],
        0,
    )
    .unwrap();
    ip_policy::swap_in(outer6, &v6).unwrap();
    let live6 = ip_policy::open_current(outer6).unwrap().unwrap();
    assert_eq!(
        ip_policy::read_rules(&live6, Family::V6).unwrap()[0]
            .0
            .to_string(),
        "2001:db8::/32"
    );
    assert!(ip_policy::clear(outer6).unwrap());
    assert_eq!(ip_policy::current_inner_id(outer6).unwrap(), None);
}

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// The object with `pal_xdp_block` loaded (maps pinned in `bpffs`).
fn load_xdp(bpffs: &BpfFs) -> aya::Ebpf {
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(bpffs.path())
        .load(PALISADE_BPF)
        .unwrap();
    let xdp: &mut Xdp = ebpf
        .program_mut(PROG_XDP_BLOCK)
        .unwrap()
        .try_into()
        .unwrap();
    xdp.load().unwrap();
    ebpf
}

/// What `pal_xdp_block` returns for the frame `data` (one BPF_PROG_TEST_RUN).
fn xdp_verdict(prog: &aya::programs::ProgramFd, data: &[u8]) -> u32 {
    palisade_ebpf::prog_test_run(std::os::fd::AsFd::as_fd(prog), data, 1)
        .unwrap()
        .0
}

/// An Ethernet frame with `tags` VLAN tags (outer 802.1ad, inner 802.1Q) around an IPv4 UDP
/// datagram from `src` to 198.18.0.1.
fn frame(tags: usize, src: [u8; 4]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for (i, tpid) in [0x88a8u16, 0x8100].iter().skip(2 - tags).enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[198, 18, 0, 1]);
    f.extend_from_slice(&[0x9c, 0x40, 0, 9, 0, 8, 0, 0]);
    f
}

#[test]
fn xdp_drops_listed_sources_behind_vlan_and_qinq_tags() {
    if !have_root("xdp_drops_listed_sources_behind_vlan_and_qinq_tags") {
        return;
    }
    let bpffs = BpfFs::new();
    let ebpf = load_xdp(&bpffs);
    let listed = prefix("192.0.2.0/24");
    let trie = ip_policy::build(Family::V4, &[(listed, IpRule::new(7, 24, 0))], 0).unwrap();
    ip_policy::filter_add(map_fd(ebpf.map(MAP_IP4_FILTER).unwrap()).unwrap(), &listed).unwrap();
    ip_policy::swap_in(map_fd(ebpf.map(MAP_IP4_POLICY).unwrap()).unwrap(), &trie).unwrap();

    let prog = ebpf.program(PROG_XDP_BLOCK).unwrap().fd().unwrap();
    let verdict = |data: &[u8]| xdp_verdict(prog, data);
    for tags in 0..=2 {
        assert_eq!(
            verdict(&frame(tags, [192, 0, 2, 5])),
            XDP_DROP,
            "{tags} tags"
        );
        assert_eq!(
            verdict(&frame(tags, [192, 0, 3, 5])),
            XDP_PASS,
            "{tags} tags"
        );
    }
}

/// `frame(0, src)` behind the given tags, outermost first.
fn tagged(tpids: &[u16], src: [u8; 4]) -> Vec<u8> {
    let plain = frame(0, src);
    let mut f = plain[..12].to_vec();
    for (i, tpid) in tpids.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(200 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&plain[12..]);
    f
}

#[test]
fn no_tag_stack_slips_past_the_ip_policy() {
    if !have_root("no_tag_stack_slips_past_the_ip_policy") {
        return;
    }
    let bpffs = BpfFs::new();
    let ebpf = load_xdp(&bpffs);
    let prog = ebpf.program(PROG_XDP_BLOCK).unwrap().fd().unwrap();
    let verdict = |data: &[u8]| xdp_verdict(prog, data);
    let stat = |ebpf: &aya::Ebpf, s: IpStat| -> u64 {
        aya::maps::PerCpuArray::<_, u64>::try_from(ebpf.map(MAP_IP_STATS).unwrap())
            .unwrap()
            .get(&s.index(), 0)
            .unwrap()
            .iter()
            .sum()
    };
    let three = [0x88a8, 0x8100, 0x8100];
    // No rules in force: nothing to enforce, a frame the policy cannot read passes.
    assert_eq!(verdict(&tagged(&three, [192, 0, 2, 5])), XDP_PASS);
    assert_eq!(stat(&ebpf, IpStat::VlanTooDeep), 0);

    let listed = prefix("192.0.2.0/24");
    let trie = ip_policy::build(Family::V4, &[(listed, IpRule::new(7, 24, 0))], 0).unwrap();
    ip_policy::filter_add(map_fd(ebpf.map(MAP_IP4_FILTER).unwrap()).unwrap(), &listed).unwrap();
    ip_policy::swap_in(map_fd(ebpf.map(MAP_IP4_POLICY).unwrap()).unwrap(), &trie).unwrap();
    // The pre-802.1ad QinQ TPID is a tag like the others (it used to hide the address).
    for tpids in [&[0x9100_u16][..], &[0x9100, 0x8100], &[0x88a8, 0x8100]] {
        assert_eq!(
            verdict(&tagged(tpids, [192, 0, 2, 5])),
            XDP_DROP,
            "{tpids:x?}"
        );
        assert_eq!(
            verdict(&tagged(tpids, [192, 0, 3, 5])),
            XDP_PASS,
            "{tpids:x?}"
        );
    }
    // Deeper stacks cannot be checked while rules are in force: dropped, counted.
    assert_eq!(verdict(&tagged(&three, [192, 0, 3, 5])), XDP_DROP);
    assert_eq!(
        verdict(&tagged(&[0x9100, 0x9100, 0x8100], [192, 0, 2, 5])),
        XDP_DROP
    );
    assert_eq!(stat(&ebpf, IpStat::VlanTooDeep), 2);
}
