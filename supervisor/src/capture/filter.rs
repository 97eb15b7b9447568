//! Classic BPF filters of the AF_PACKET sockets, one per worker: the frames the kernel
//! program would copy to that worker's ring (or, for flows, count), on the monitored
//! interfaces only. They are a coarse first cut; the workers' record builder makes the
//! exact decisions the kernel program makes (port 53 before DHCP, TLS hello detection, QUIC
//! Initial headers), so a filter only needs to let through a superset.
//!
//! | worker | frames (IPv4 or IPv6, on a monitored interface) |
//! |---|---|
//! | dns | UDP or TCP, source or destination port 53 |
//! | dhcp | UDP, port 67, 68, 546 or 547; ICMPv6 (the builder keeps RA, NS, NA); ARP |
//! | tls | TCP (TLS on any port); UDP frames of at least 1242 bytes (a QUIC Initial is 1200) |
//! | flow | every IPv4 and IPv6 frame |
//!
//! VLAN: the kernel hands AF_PACKET (and the TC hook) a frame with its outer tag removed
//! (the worker puts it back from `PACKET_AUXDATA`); one more tag left in the frame (QinQ)
//! is looked through here, as the eBPF program walks up to two. IPv6 extension headers are
//! skipped as the eBPF program skips them: up to four hop-by-hop, routing, destination
//! options or fragment headers (a later fragment has no transport header: no port test
//! matches it).

use palisade_ipc::messages::WorkerKind;

// linux/filter.h, linux/bpf_common.h
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const K: u16 = 0x00;
const IMM: u16 = 0x00;
const ST: u16 = 0x02;
const ALU: u16 = 0x04;
const MISC: u16 = 0x07;
const MEM: u16 = 0x60;
const ADD: u16 = 0x00;
const LSH: u16 = 0x60;
const X: u16 = 0x08;
const TAX: u16 = 0x00;

/// IPv6 extension headers skipped before the transport header (`PAL_IPV6_MAX_EXT`).
const IPV6_MAX_EXT: usize = 4;
/// Hop-by-hop options, routing, destination options (length in 8-byte units after the
/// first 8), and the fragment header (8 bytes).
const IPV6_SKIPPABLE: [u32; 3] = [0, 43, 60];
const IPV6_FRAGMENT: u32 = 44;

/// `SKF_AD_OFF + SKF_AD_IFINDEX`: loads the index of the interface the frame is on.
const AD_IFINDEX: u32 = 0xffff_f000 + 8;

/// Accept: the whole frame.
const SNAP: u32 = 0x0004_0000;

const ETHERTYPE: u32 = 12;
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;
const ETH_P_ARP: u32 = 0x0806;
/// Tag protocol identifiers (802.1Q, 802.1ad, the old QinQ 0x9100).
const TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];
/// Bytes one tag adds.
const TAG: u32 = 4;
/// IPv4: protocol byte, flags/fragment offset, header start.
const IP4_PROTO: u32 = 14 + 9;
const IP4_FRAG: u32 = 14 + 6;
const IP4_HDR: u32 = 14;
/// IPv6: next header byte, transport header start (no extension header).
const IP6_NEXT: u32 = 14 + 6;
const IP6_L4: u32 = 14 + 40;

const TCP: u32 = 6;
const UDP: u32 = 17;
const ICMPV6: u32 = 58;

/// Smallest frame that can hold a QUIC Initial: Ethernet, IPv4, UDP and 1200 bytes.
const QUIC_FRAME_MIN: u32 = 14 + 20 + 8 + 1200;

/// One instruction, `struct sock_filter`.
pub type Insn = libc::sock_filter;

/// A jump target while assembling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum L {
    Accept,
    Reject,
    /// The next clause of the current family.
    Next(usize),
    /// IPv4 / IPv6 headers after `n` tag bytes.
    V4(u32),
    V6(u32),
    Tagged,
    Here,
}

/// One symbolic instruction.
#[derive(Debug, Clone, Copy)]
enum Op {
    Stmt(u16, u32),
    Jump(u16, u32, L, L),
    Label(L),
}

/// What a clause lets through: a transport protocol, optionally with one of `ports` as
/// source or destination, optionally only frames of at least `min_len` bytes.
#[derive(Debug, Clone, Copy)]
struct Clause {
    proto: u32,
    ports: &'static [u32],
    min_len: u32,
}

fn clauses(kind: WorkerKind) -> Option<&'static [Clause]> {
    const DNS: &[Clause] = &[
        Clause {
            proto: UDP,
            ports: &[53],
            min_len: 0,
        },
        Clause {
            proto: TCP,
            ports: &[53],
            min_len: 0,
        },
    ];
    const DHCP: &[Clause] = &[
        Clause {
            proto: UDP,
            ports: &[67, 68, 546, 547],
            min_len: 0,
        },
        // Neighbour discovery and router advertisements (types 134-136), for the bindings.
        Clause {
            proto: ICMPV6,
            ports: &[],
            min_len: 0,
        },
    ];
    const TLS: &[Clause] = &[
        Clause {
            proto: TCP,
            ports: &[],
            min_len: 0,
        },
        Clause {
            proto: UDP,
            ports: &[],
            min_len: QUIC_FRAME_MIN,
        },
    ];
    match kind {
        WorkerKind::Dns => Some(DNS),
        WorkerKind::Dhcp => Some(DHCP),
        WorkerKind::Tls => Some(TLS),
        // Flows: every IP frame.
        WorkerKind::Flow => None,
    }
}

/// The clause tests for one family: `v6` selects the offsets.
fn family(ops: &mut Vec<Op>, cl: Option<&[Clause]>, v6: bool, shift: u32) {
    let Some(cl) = cl else {
        ops.push(Op::Stmt(RET | K, SNAP));
        return;
    };
    let base = if v6 { 100 } else { 0 } + shift as usize * 100;
    ops.push(Op::Stmt(
        LD | B | ABS,
        shift + if v6 { IP6_NEXT } else { IP4_PROTO },
    ));
    if v6 {
        ipv6_extensions(ops, base, shift);
    }
    for (i, c) in cl.iter().enumerate() {
        ops.push(Op::Jump(
            JMP | JEQ | K,
            c.proto,
            L::Next(base + 50 + i),
            L::Here,
        ));
    }
    ops.push(Op::Stmt(RET | K, 0));
    for (i, c) in cl.iter().enumerate() {
        ops.push(Op::Label(L::Next(base + 50 + i)));
        if c.min_len > 0 {
            let min = shift + if v6 { c.min_len + 20 } else { c.min_len };
            ops.push(Op::Stmt(LD | W | LEN, 0));
            ops.push(Op::Jump(JMP | JGE | K, min, L::Here, L::Reject));
        }
        if c.ports.is_empty() {
            ops.push(Op::Stmt(RET | K, SNAP));
            continue;
        }
        let (src, dst) = if v6 {
            // X: the extension headers' bytes (ipv6_extensions()).
            (shift + IP6_L4, shift + IP6_L4 + 2)
        } else {
            // A later fragment has no transport header.
            ops.push(Op::Stmt(LD | H | ABS, shift + IP4_FRAG));
            ops.push(Op::Jump(JMP | JSET | K, 0x1fff, L::Reject, L::Here));
            ops.push(Op::Stmt(LDX | B | MSH, shift + IP4_HDR)); // X = IPv4 header length
            (shift + IP4_HDR, shift + IP4_HDR + 2)
        };
        for off in [src, dst] {
            ops.push(Op::Stmt(LD | H | IND, off));
            for p in c.ports {
                ops.push(Op::Jump(JMP | JEQ | K, *p, L::Accept, L::Here));
            }
        }
        ops.push(Op::Stmt(RET | K, 0));
    }
}

/// IPv6: with A the fixed header's next header, skips up to [`IPV6_MAX_EXT`] extension
/// headers, leaving the transport protocol in A and the extension bytes in X (the transport
/// header is at `shift + IP6_L4 + X`). A later fragment (offset not 0) is rejected.
fn ipv6_extensions(ops: &mut Vec<Op>, base: usize, shift: u32) {
    let l4 = shift + IP6_L4;
    let done = L::Next(base + 40);
    ops.push(Op::Stmt(LDX | W | K, 0));
    for hop in 0..IPV6_MAX_EXT {
        let (skip, frag, next, later) = (
            L::Next(base + 10 + hop),
            L::Next(base + 20 + hop),
            L::Next(base + 30 + hop),
            L::Next(base + 45 + hop),
        );
        for h in IPV6_SKIPPABLE {
            ops.push(Op::Jump(JMP | JEQ | K, h, skip, L::Here));
        }
        ops.push(Op::Jump(JMP | JEQ | K, IPV6_FRAGMENT, frag, done));
        // Options-style header: next header at +0, length (8-byte units beyond 8) at +1.
        ops.push(Op::Label(skip));
        ops.push(Op::Stmt(LD | B | IND, l4));
        ops.push(Op::Stmt(ST, 0));
        ops.push(Op::Stmt(LD | B | IND, l4 + 1));
        ops.push(Op::Stmt(ALU | ADD | K, 1));
        ops.push(Op::Stmt(ALU | LSH | K, 3));
        ops.push(Op::Jump(JMP | JEQ | K, 0, next, next)); // to the common tail
        // Fragment header: 8 bytes; a later fragment has no transport header.
        // (M[0] is stored before any jump: the kernel's check that scratch memory is
        // written before it is read follows the instructions in order, RET included.)
        ops.push(Op::Label(frag));
        ops.push(Op::Stmt(LD | B | IND, l4));
        ops.push(Op::Stmt(ST, 0));
        ops.push(Op::Stmt(LD | H | IND, l4 + 2));
        ops.push(Op::Jump(JMP | JSET | K, 0xfff8, later, L::Here));
        ops.push(Op::Stmt(LD | W | IMM, 8));
        ops.push(Op::Jump(JMP | JEQ | K, 0, next, next));
        ops.push(Op::Label(later));
        ops.push(Op::Stmt(RET | K, 0));
        // X += A; A = the next header.
        ops.push(Op::Label(next));
        ops.push(Op::Stmt(ALU | ADD | X, 0));
        ops.push(Op::Stmt(MISC | TAX, 0));
        ops.push(Op::Stmt(LD | MEM, 0));
    }
    ops.push(Op::Label(done));
}

/// The filter of `kind`'s socket, accepting frames on `ifindexes` only.
pub fn program(kind: WorkerKind, ifindexes: &[u32]) -> Vec<Insn> {
    let mut ops = vec![Op::Stmt(LD | W | ABS, AD_IFINDEX)];
    for ifindex in ifindexes {
        ops.push(Op::Jump(JMP | JEQ | K, *ifindex, L::Next(1000), L::Here));
    }
    ops.push(Op::Stmt(RET | K, 0));
    ops.push(Op::Label(L::Next(1000)));
    ops.push(Op::Stmt(LD | H | ABS, ETHERTYPE));
    ops.push(Op::Jump(JMP | JEQ | K, ETH_P_IP, L::V4(0), L::Here));
    ops.push(Op::Jump(JMP | JEQ | K, ETH_P_IPV6, L::V6(0), L::Here));
    // ARP feeds the DHCP worker's bindings.
    let arp = if kind == WorkerKind::Dhcp {
        L::Accept
    } else {
        L::Reject
    };
    ops.push(Op::Jump(JMP | JEQ | K, ETH_P_ARP, arp, L::Here));
    for tpid in TPIDS {
        ops.push(Op::Jump(JMP | JEQ | K, tpid, L::Tagged, L::Here));
    }
    ops.push(Op::Stmt(RET | K, 0));
    ops.push(Op::Label(L::Tagged));
    ops.push(Op::Stmt(LD | H | ABS, ETHERTYPE + TAG));
    ops.push(Op::Jump(JMP | JEQ | K, ETH_P_IP, L::V4(TAG), L::Here));
    ops.push(Op::Jump(JMP | JEQ | K, ETH_P_IPV6, L::V6(TAG), L::Here));
    ops.push(Op::Jump(JMP | JEQ | K, ETH_P_ARP, arp, L::Reject));
    let cl = clauses(kind);
    for shift in [0, TAG] {
        ops.push(Op::Label(L::V4(shift)));
        family(&mut ops, cl, false, shift);
        ops.push(Op::Label(L::V6(shift)));
        family(&mut ops, cl, true, shift);
    }
    ops.push(Op::Label(L::Accept));
    ops.push(Op::Stmt(RET | K, SNAP));
    ops.push(Op::Label(L::Reject));
    ops.push(Op::Stmt(RET | K, 0));
    assemble(&ops)
}

/// Resolves labels into relative jump offsets (classic BPF jumps forward only, at most 255
/// instructions; these programs are a few dozen long).
fn assemble(ops: &[Op]) -> Vec<Insn> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for op in ops {
        match op {
            Op::Label(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for op in ops {
        let pc = out.len();
        let rel = |l: L| -> u8 {
            if l == L::Here {
                return 0;
            }
            let target = at.get(&l).copied().unwrap_or(pc + 1);
            u8::try_from(target.saturating_sub(pc + 1)).unwrap_or(u8::MAX)
        };
        match *op {
            Op::Stmt(code, k) => out.push(Insn {
                code,
                jt: 0,
                jf: 0,
                k,
            }),
            Op::Jump(code, k, jt, jf) => out.push(Insn {
                code,
                jt: rel(jt),
                jf: rel(jf),
                k,
            }),
            Op::Label(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    /// A classic BPF interpreter for what the programs use: the result for `frame` on
    /// interface `ifindex`.
    fn run(prog: &[Insn], frame: &[u8], ifindex: u32) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let mut mem = [0u32; 16];
        let load = |off: usize, size: usize| -> Option<u32> {
            let b = frame.get(off..off + size)?;
            Some(b.iter().fold(0u32, |acc, v| (acc << 8) | u32::from(*v)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                c if c == LD | W | ABS && i.k == AD_IFINDEX => a = ifindex,
                c if c == LD | H | ABS => match load(i.k as usize, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | B | ABS => match load(i.k as usize, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | H | IND => match load((x + i.k) as usize, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | W | LEN => a = frame.len() as u32,
                c if c == LD | W | IMM => a = i.k,
                c if c == LD | B | IND => match load((x + i.k) as usize, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | MEM => a = mem[i.k as usize],
                c if c == ST => mem[i.k as usize] = a,
                c if c == ALU | ADD | K => a = a.wrapping_add(i.k),
                c if c == ALU | ADD | X => a = a.wrapping_add(x),
                c if c == ALU | LSH | K => a <<= i.k,
                c if c == MISC | TAX => x = a,
                c if c == LDX | W | K => x = i.k,
                c if c == LDX | B | MSH => match load(i.k as usize, 1) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                c if c == RET | K => return i.k,
                c if c & 0x07 == JMP => {
                    let hit = match c & 0xf0 {
                        JEQ => a == i.k,
                        JGE => a >= i.k,
                        JSET => a & i.k != 0,
                        _ => panic!("jump {c:#x}"),
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
                c => panic!("instruction {c:#x}"),
            }
        }
    }

    fn frame(v6: bool, proto: u8, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, proto, 64]);
            f.extend_from_slice(&[0; 32]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x46, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 1]); // 4 option bytes
        }
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.resize(f.len() + 16 + payload, 0);
        f
    }

    #[test]
    fn each_worker_gets_its_frames_on_its_interfaces() {
        let dns = program(WorkerKind::Dns, &[3, 7]);
        let dhcp = program(WorkerKind::Dhcp, &[3]);
        let tls = program(WorkerKind::Tls, &[3]);
        let flow = program(WorkerKind::Flow, &[3]);
        for v6 in [false, true] {
            let q = frame(v6, 17, 40000, 53, 30);
            assert_eq!(run(&dns, &q, 3), SNAP, "v6 {v6}");
            assert_eq!(run(&dns, &q, 7), SNAP);
            assert_eq!(run(&dns, &q, 4), 0, "another interface");
            assert_eq!(run(&dns, &frame(v6, 6, 53, 40000, 30), 3), SNAP);
            assert_eq!(run(&dns, &frame(v6, 17, 40000, 54, 30), 3), 0);
            assert_eq!(run(&dhcp, &q, 3), 0);
            assert_eq!(run(&dhcp, &frame(v6, 17, 68, 67, 300), 3), SNAP);
            assert_eq!(run(&dhcp, &frame(v6, 17, 546, 547, 300), 3), SNAP);
            assert_eq!(run(&dhcp, &frame(v6, 6, 68, 67, 300), 3), 0);
            assert_eq!(run(&tls, &frame(v6, 6, 40000, 8443, 0), 3), SNAP);
            assert_eq!(run(&tls, &frame(v6, 17, 40000, 443, 100), 3), 0);
            assert_eq!(run(&tls, &frame(v6, 17, 40000, 443, 1200), 3), SNAP);
            assert_eq!(run(&flow, &frame(v6, 1, 0, 0, 10), 3), SNAP);
            assert_eq!(run(&flow, &frame(v6, 1, 0, 0, 10), 9), 0);
            assert_eq!(run(&tls, &q, 3), 0);
        }
        // ARP is the DHCP worker's only (its bindings), tagged or not, on its interfaces.
        let mut arp = frame(false, 17, 53, 53, 30);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        for p in [&dns, &tls, &flow] {
            assert_eq!(run(p, &arp, 3), 0);
        }
        assert_eq!(run(&dhcp, &arp, 3), SNAP);
        assert_eq!(run(&dhcp, &arp, 4), 0);
        let mut tagged = arp[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&arp[12..]);
        assert_eq!(run(&dhcp, &tagged, 3), SNAP);
        // ICMPv6 (router advertisements, neighbour discovery) too.
        assert_eq!(run(&dhcp, &frame(true, 58, 0x8600, 0, 40), 3), SNAP);
        assert_eq!(run(&dns, &frame(true, 58, 0x8600, 0, 40), 3), 0);
        // A later IPv4 fragment has no ports to match.
        let mut frag = frame(false, 17, 40000, 53, 30);
        frag[20] = 0x00;
        frag[21] = 0x10;
        assert_eq!(run(&dns, &frag, 3), 0);
        // A tag left in the frame (the inner one of QinQ) is looked through.
        for v6 in [false, true] {
            let mut tagged = frame(v6, 17, 40000, 53, 30);
            tagged.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
            assert_eq!(run(&dns, &tagged, 3), SNAP, "v6 {v6}");
            assert_eq!(run(&dhcp, &tagged, 3), 0);
            assert_eq!(run(&flow, &tagged, 3), SNAP);
        }
        assert!(
            dns.len() < 255 && flow.len() < 64,
            "{} {}",
            dns.len(),
            flow.len()
        );
    }

    /// An IPv6 frame whose fixed header is followed by `ext` (each (type, bytes)), then a
    /// UDP header from 40000 to `dport`.
    fn frame6_ext(ext: &[(u8, Vec<u8>)], dport: u16) -> Vec<u8> {
        let first = ext.first().map_or(17, |e| e.0);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, first, 64]);
        f.extend_from_slice(&[0; 32]);
        for (n, (_, body)) in ext.iter().enumerate() {
            let next = ext.get(n + 1).map_or(17, |e| e.0);
            let mut h = body.clone();
            h[0] = next;
            f.extend_from_slice(&h);
        }
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.resize(f.len() + 40, 0);
        f
    }

    #[test]
    fn ipv6_extension_headers_are_skipped_as_the_kernel_program_skips_them() {
        let dns = program(WorkerKind::Dns, &[3]);
        let dhcp = program(WorkerKind::Dhcp, &[3]);
        // Hop-by-hop (8 bytes), destination options (16 bytes: length 1), routing.
        let hbh = (0u8, vec![0u8; 8]);
        let dst = (60u8, {
            let mut v = vec![0u8; 16];
            v[1] = 1;
            v
        });
        let rt = (43u8, vec![0u8; 8]);
        let first_frag = (44u8, vec![0u8, 0, 0, 1, 0, 0, 0, 7]); // offset 0, M set
        let later_frag = (44u8, vec![0u8, 0, 0x05, 0x28, 0, 0, 0, 7]); // offset 165
        assert_eq!(
            run(&dns, &frame6_ext(std::slice::from_ref(&hbh), 53), 3),
            SNAP
        );
        assert_eq!(run(&dns, &frame6_ext(std::slice::from_ref(&hbh), 54), 3), 0);
        assert_eq!(
            run(
                &dns,
                &frame6_ext(&[hbh.clone(), dst.clone(), rt.clone()], 53),
                3
            ),
            SNAP
        );
        assert_eq!(
            run(&dhcp, &frame6_ext(std::slice::from_ref(&dst), 547), 3),
            SNAP
        );
        assert_eq!(
            run(&dns, &frame6_ext(std::slice::from_ref(&first_frag), 53), 3),
            SNAP
        );
        assert_eq!(run(&dns, &frame6_ext(&[later_frag], 53), 3), 0);
        let four = [hbh.clone(), dst.clone(), rt.clone(), first_frag];
        assert_eq!(
            run(&dns, &frame6_ext(&four, 53), 3),
            SNAP,
            "four: the limit"
        );
        let mut five = four.to_vec();
        five.insert(0, hbh);
        assert_eq!(run(&dns, &frame6_ext(&five, 53), 3), 0, "five: beyond it");
        // Tagged too.
        let mut tagged = frame6_ext(&[dst], 53);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        assert_eq!(run(&dns, &tagged, 3), SNAP);
    }

    #[test]
    fn every_jump_lands_where_it_was_aimed() {
        // Classic BPF jumps are 8-bit: a target farther than 255 would be cut short.
        for kind in [
            WorkerKind::Dns,
            WorkerKind::Dhcp,
            WorkerKind::Tls,
            WorkerKind::Flow,
        ] {
            let p = program(kind, &[3, 4, 5, 6]);
            for (pc, i) in p.iter().enumerate() {
                if i.code & 0x07 == JMP {
                    assert!(i.jt < u8::MAX && i.jf < u8::MAX, "{kind:?} at {pc}");
                    assert!(
                        pc + 1 + usize::from(i.jt.max(i.jf)) < p.len(),
                        "{kind:?} at {pc}"
                    );
                }
            }
            // The kernel's check_load_and_stores(): scratch memory is written before it is
            // read, following the instructions in order (a jump leaves its targets only
            // what is valid on every way in; RET does not reset).
            let mut masks = vec![u16::MAX; p.len()];
            let mut valid = 0u16;
            for (pc, i) in p.iter().enumerate() {
                valid &= masks[pc];
                match i.code {
                    ST => valid |= 1 << i.k,
                    c if c == LD | MEM => assert!(
                        valid & (1 << i.k) != 0,
                        "{kind:?}: M[{}] read before it is written, at {pc}",
                        i.k
                    ),
                    c if c & 0x07 == JMP => {
                        masks[pc + 1 + usize::from(i.jt)] &= valid;
                        masks[pc + 1 + usize::from(i.jf)] &= valid;
                        valid = u16::MAX;
                    }
                    _ => {}
                }
            }
        }
    }
}
