/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * pkt.bpf.h: the TC observer's packet parser and what it learns, struct
 * pal_pkt. parse() walks Ethernet and VLAN tags (l2_walk(), l2.bpf.h), IPv4
 * or IPv6 (up to PAL_IPV6_MAX_EXT extension headers), then TCP, UDP, ICMP or
 * ICMPv6. Headers are read with load_hdr(): straight from the linear packet
 * data when they are there, else with bpf_skb_load_bytes(), which works on
 * non-linear skbs (GRO/GSO, paged frags).
 *
 * Included by record.bpf.h (and so by every capture and flow header) and
 * palisade.bpf.c.
 */
#ifndef PALISADE_PKT_BPF_H
#define PALISADE_PKT_BPF_H

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "l2.bpf.h"

/* IPv6 extension headers walked before giving up on finding L4. */
#define PAL_IPV6_MAX_EXT 4

/* TCP flag bits, as in byte 13 of the TCP header. */
#define PAL_TCP_FIN 0x01
#define PAL_TCP_SYN 0x02
#define PAL_TCP_RST 0x04
#define PAL_TCP_ACK 0x10
#define PAL_TCP_FLAGS_OFFSET 13

/* What the parser learnt about one packet; lives on the stack. */
struct pal_pkt {
	__u64 saddr[2];   /* network order; IPv4 in the first 4 bytes, rest 0 */
	__u64 daddr[2];   /* same layout as saddr */
	__u64 now_ns;     /* boot time: coarse (pkt_clock()) until pkt_time() makes it exact */
	__u64 flow_start_ns; /* first_seen_ns of its flow (flow_update()), 0 if none */
	__u32 l3_off;     /* offset of the IP header in the skb */
	__u32 l4_off;     /* offset of the L4 header in the skb */
	__u32 l4_end;     /* end of the IP packet (Ethernet padding excluded) */
	__u32 pay_off;    /* offset of the L4 payload */
	__u32 pay_len;    /* L4 payload bytes in this packet */
	__u32 segs;       /* packets this skb stands for (GSO/GRO), >= 1 */
	__u32 frame_len;  /* frame bytes this skb stands for (flow counters) */
	__u32 flow_pay;   /* L4 payload bytes this skb stands for (flow counters) */
	__u32 tcp_seq;    /* TCP sequence number, host order; 0 otherwise */
	__u32 tcp_ack;    /* TCP acknowledgment number, host order; 0 otherwise */
	__u16 udp_len;    /* UDP length field, 0 for other protocols */
	__u16 vlan_id;    /* valid when flags has PAL_FLAG_VLAN */
	__u16 sport;      /* host order; 0 for ICMP */
	__u16 dport;      /* host order; 0 for ICMP */
	__u8 src_mac[ETH_ALEN];
	__u8 dst_mac[ETH_ALEN];
	__u8 direction;   /* PAL_DIR_* */
	__u8 flags;       /* PAL_FLAG_VLAN */
	__u8 ip_version;  /* 4 or 6 */
	__u8 l4_proto;    /* IPPROTO_* */
	__u8 tcp_flags;   /* byte 13 of the TCP header, 0 otherwise */
	__u8 ip_frag;     /* first fragment with more to come (IPv4 MF, IPv6 fragment header M) */
	__u8 icmp_type;   /* ICMP/ICMPv6 type and code, 0 otherwise */
	__u8 icmp_code;
	__u8 tls_follow;  /* the flow's pal_flow_value.tls_follow (flow_update()) */
	__u8 flow_blocked; /* the flow is in pal_flow_block (flow_update(), flow_block.bpf.h) */
	__u8 traced;      /* a running trace matched it (trace_begin(), trace.bpf.h) */
	__u8 now_exact;   /* now_ns was taken by pkt_time() */
};

/* The observer's frame is counted to the byte (flows.bpf.h): keep the struct at 120. */
_Static_assert(sizeof(struct pal_pkt) == 120, "struct pal_pkt grew");

/*
 * Time, per packet. An exact clock read (bpf_ktime_get_boot_ns(), ~30 ns on
 * a 2 GHz core) is a fifth of what a packet that makes no record costs, so
 * the observer starts every packet with the coarse clock (the time of the
 * last scheduler tick, a few ns): enough for the flow table's idle and
 * expiry bookkeeping. Whatever a record is made from (a record's timestamp,
 * a flow's start, a trace event) asks pkt_time(), which reads the exact
 * clock once for the packet.
 *
 * pal_boot_off_ns is CLOCK_BOOTTIME minus CLOCK_MONOTONIC (the time spent
 * suspended; the coarse clock is monotonic): set when the flow sweeper is
 * armed and again at each of its ticks (flow_sweeper.bpf.h).
 */
__u64 pal_boot_off_ns;

static __always_inline __u64 pkt_clock(void)
{
	return bpf_ktime_get_coarse_ns() + pal_boot_off_ns;
}

/* The packet's exact boot time, read once (p->now_ns from then on). */
static __always_inline __u64 pkt_time(struct pal_pkt *p)
{
	if (!p->now_exact) {
		p->now_ns = bpf_ktime_get_boot_ns();
		p->now_exact = 1;
	}
	return p->now_ns;
}

/* Outcome of a parsing step. */
enum pal_parse {
	PAL_PARSE_OK,       /* continue with the next layer */
	PAL_PARSE_IGNORE,   /* nothing for us (ARP, fragment, other L4): stop */
	PAL_PARSE_SHORT,    /* headers missing or malformed: count and stop */
	PAL_PARSE_ARP,      /* an ARP packet at p->l3_off (neigh_capture.bpf.h) */
};

/*
 * Ethernet and VLAN tags into *p (l2.bpf.h): the hardware-accelerated tag
 * first, so its VID wins. A frame with more tags than the walk skips is
 * not IP to us.
 */
static __always_inline enum pal_parse parse_l2(struct __sk_buff *skb, struct pal_pkt *p,
					       __u32 *l3_off, __be16 *proto)
{
	struct pal_frame f = {.skb = skb, .how = PAL_L2_SKB};
	struct pal_l2 l2;

	l2_hw_tag(skb, &p->flags, &p->vlan_id);
	switch (l2_walk(&f, &l2, &p->flags, &p->vlan_id)) {
	case PAL_L2_OK:
		break;
	case PAL_L2_DEEP:
		return PAL_PARSE_IGNORE;
	default:
		return PAL_PARSE_SHORT;
	}
	__builtin_memcpy(p->src_mac, l2.eth.h_source, ETH_ALEN);
	__builtin_memcpy(p->dst_mac, l2.eth.h_dest, ETH_ALEN);
	*l3_off = l2.l3_off;
	*proto = l2.proto;
	return PAL_PARSE_OK;
}

/* Where the IP packet ends: its own length, or the skb's for GSO giants. */
static __always_inline void set_l3_end(struct __sk_buff *skb, struct pal_pkt *p, __u32 l3_off,
				       __u32 l3_len)
{
	/* A zero length field marks BIG TCP / jumbo GSO packets. */
	if (l3_len == 0 || l3_off + l3_len > skb->len)
		l3_len = skb->len - l3_off;
	p->l4_end = l3_off + l3_len;
}

/* IPv4: honours IHL; non-first fragments carry no L4 header and are ignored. */
static __always_inline enum pal_parse parse_ipv4(struct __sk_buff *skb, struct pal_pkt *p,
						 __u32 l3_off)
{
	struct iphdr ip;
	__u32 ihl_bytes;

	if (load_hdr(skb, l3_off, &ip, sizeof(ip)) < 0)
		return PAL_PARSE_SHORT;
	if (ip.version != 4 || ip.ihl < 5)
		return PAL_PARSE_SHORT;
	ihl_bytes = ip.ihl * 4;
	set_l3_end(skb, p, l3_off, bpf_ntohs(ip.tot_len));
	if (p->l4_end - l3_off < ihl_bytes)
		return PAL_PARSE_SHORT;
	if (bpf_ntohs(ip.frag_off) & PAL_IP_FRAG_OFFSET)
		return PAL_PARSE_IGNORE;

	p->ip_frag = (bpf_ntohs(ip.frag_off) & PAL_IP_MORE_FRAGS) != 0;
	p->l3_off = l3_off;
	p->ip_version = 4;
	p->l4_proto = ip.protocol;
	p->l4_off = l3_off + ihl_bytes;
	__builtin_memcpy(p->saddr, &ip.saddr, sizeof(ip.saddr));
	__builtin_memcpy(p->daddr, &ip.daddr, sizeof(ip.daddr));
	return PAL_PARSE_OK;
}

static __always_inline int ipv6_is_skippable_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS;
}

/*
 * IPv6: fixed header, then up to PAL_IPV6_MAX_EXT hop-by-hop, routing or
 * destination-options headers, then a fragment header: a first fragment is
 * parsed (ip_frag says whether more follow), later ones are ignored; a chain
 * longer than that (or one cut short) counts as not parsed.
 */
static __always_inline enum pal_parse parse_ipv6(struct __sk_buff *skb, struct pal_pkt *p,
						 __u32 l3_off)
{
	struct ipv6hdr ip6;
	__u32 off = l3_off + sizeof(ip6);
	__u8 nexthdr;

	if (load_hdr(skb, l3_off, &ip6, sizeof(ip6)) < 0)
		return PAL_PARSE_SHORT;
	if (ip6.version != 6)
		return PAL_PARSE_SHORT;
	/* payload_len 0: jumbogram / BIG TCP, the skb length is the truth. */
	set_l3_end(skb, p, l3_off,
		   ip6.payload_len ? sizeof(ip6) + bpf_ntohs(ip6.payload_len) : 0);
	nexthdr = ip6.nexthdr;

#pragma unroll
	for (int i = 0; i < PAL_IPV6_MAX_EXT; i++) {
		struct {
			__u8 nexthdr;
			__u8 hdrlen; /* in 8-byte units, not counting the first 8 */
		} ext;

		if (!ipv6_is_skippable_ext(nexthdr))
			break;
		if (load_hdr(skb, off, &ext, sizeof(ext)) < 0)
			return PAL_PARSE_SHORT;
		nexthdr = ext.nexthdr;
		off += (ext.hdrlen + 1) * 8;
	}
	if (nexthdr == IPPROTO_FRAGMENT) {
		/*
		 * Only a first fragment carries the L4 header: parse on behind the
		 * fragment header (an atomic fragment, M clear, is a whole datagram).
		 * Later fragments carry no ports and are ignored, as for IPv4.
		 */
		struct {
			__u8 nexthdr;
			__u8 reserved;
			__be16 frag_off; /* offset << 3 | M */
			__be32 id;
		} fh;

		if (load_hdr(skb, off, &fh, sizeof(fh)) < 0)
			return PAL_PARSE_SHORT;
		if (bpf_ntohs(fh.frag_off) & ~0x7)
			return PAL_PARSE_IGNORE;
		p->ip_frag = bpf_ntohs(fh.frag_off) & 1;
		nexthdr = fh.nexthdr;
		off += sizeof(fh);
	}
	if (ipv6_is_skippable_ext(nexthdr) || nexthdr == IPPROTO_FRAGMENT || off > p->l4_end)
		return PAL_PARSE_SHORT;

	p->l3_off = l3_off;
	p->ip_version = 6;
	p->l4_proto = nexthdr;
	p->l4_off = off;
	__builtin_memcpy(p->saddr, &ip6.saddr, sizeof(ip6.saddr));
	__builtin_memcpy(p->daddr, &ip6.daddr, sizeof(ip6.daddr));
	return PAL_PARSE_OK;
}

/* TCP, UDP, ICMP (IPv4) and ICMPv6 (IPv6); anything else is ignored. */
static __always_inline enum pal_parse parse_l4(struct __sk_buff *skb, struct pal_pkt *p)
{
	__u32 udp_len = 0;

	switch (p->l4_proto) {
	case IPPROTO_TCP: {
		struct tcphdr th;

		if (load_hdr(skb, p->l4_off, &th, sizeof(th)) < 0)
			return PAL_PARSE_SHORT;
		if (th.doff < 5)
			return PAL_PARSE_SHORT;
		p->pay_off = p->l4_off + th.doff * 4;
		p->sport = bpf_ntohs(th.source);
		p->dport = bpf_ntohs(th.dest);
		p->tcp_flags = ((__u8 *)&th)[PAL_TCP_FLAGS_OFFSET];
		p->tcp_seq = bpf_ntohl(th.seq);
		p->tcp_ack = bpf_ntohl(th.ack_seq);
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr uh;

		if (load_hdr(skb, p->l4_off, &uh, sizeof(uh)) < 0)
			return PAL_PARSE_SHORT;
		p->pay_off = p->l4_off + sizeof(uh);
		p->sport = bpf_ntohs(uh.source);
		p->dport = bpf_ntohs(uh.dest);
		udp_len = bpf_ntohs(uh.len);
		p->udp_len = udp_len;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 type_code[2];

		if (p->l4_proto != (p->ip_version == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6))
			return PAL_PARSE_IGNORE;
		/* Ports stay 0 and there are no payload records; type and code feed Community ID. */
		if (load_hdr(skb, p->l4_off, type_code, sizeof(type_code)) < 0)
			return PAL_PARSE_SHORT;
		p->icmp_type = type_code[0];
		p->icmp_code = type_code[1];
		return PAL_PARSE_OK;
	}
	default:
		return PAL_PARSE_IGNORE;
	}
	if (p->pay_off > p->l4_end)
		return PAL_PARSE_SHORT;
	p->pay_len = p->l4_end - p->pay_off;
	/* Bytes after the datagram (or later GSO segments) are not its payload. */
	if (udp_len >= sizeof(struct udphdr) && udp_len - sizeof(struct udphdr) < p->pay_len)
		p->pay_len = udp_len - sizeof(struct udphdr);
	return PAL_PARSE_OK;
}

/* Not inlined: its header copies get a frame of their own, off pal_dns_udp()'s call chain. */
static __attribute__((noinline)) enum pal_parse parse(struct __sk_buff *skb, struct pal_pkt *p)
{
	enum pal_parse res;
	__u32 l3_off;
	__be16 proto;

	res = parse_l2(skb, p, &l3_off, &proto);
	if (res != PAL_PARSE_OK)
		return res;
	if (proto == bpf_htons(ETH_P_IP))
		res = parse_ipv4(skb, p, l3_off);
	else if (proto == bpf_htons(ETH_P_IPV6))
		res = parse_ipv6(skb, p, l3_off);
	else if (proto == bpf_htons(ETH_P_ARP)) {
		p->l3_off = l3_off;
		return PAL_PARSE_ARP;
	} else
		return PAL_PARSE_IGNORE; /* LLDP, ...: silently */
	if (res != PAL_PARSE_OK)
		return res;
	return parse_l4(skb, p);
}

#endif /* PALISADE_PKT_BPF_H */
