/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * capture.bpf.h: payload capture of the TC observer, classify_payload().
 * It copies the payload prefixes the workers parse into their rings: DNS
 * (TCP or UDP port 53, dns_capture.bpf.h, where the domain policy also
 * runs), DHCP (UDP port 67 or 68, DHCPv6 546 or 547) and TLS handshakes, followed across
 * segments both ways (any TCP port, tls_capture.bpf.h), and QUIC Initial
 * datagrams (any UDP port, quic_capture() below).
 * Protocol fields are parsed in the workers, in Rust, not here.
 *
 * Included by palisade.bpf.c.
 */
#ifndef PALISADE_CAPTURE_BPF_H
#define PALISADE_CAPTURE_BPF_H

#include "dns_capture.bpf.h"
#include "guard.bpf.h"
#include "neigh_capture.bpf.h"
#include "record.bpf.h"
#include "tls_capture.bpf.h"

#define PAL_PORT_DHCP_SERVER 67
#define PAL_PORT_DHCP_CLIENT 68
/* DHCPv6 (RFC 8415) travels as PAL_KIND_DHCP too: the worker tells it by port. */
#define PAL_PORT_DHCP6_CLIENT 546
#define PAL_PORT_DHCP6_SERVER 547

static __always_inline int either_port(const struct pal_pkt *p, __u16 port)
{
	return p->sport == port || p->dport == port;
}

static __always_inline int dhcp_port(const struct pal_pkt *p)
{
	return either_port(p, PAL_PORT_DHCP_SERVER) || either_port(p, PAL_PORT_DHCP_CLIENT) ||
	       either_port(p, PAL_PORT_DHCP6_SERVER) || either_port(p, PAL_PORT_DHCP6_CLIENT);
}

/*
 * Whether classify_payload() will make a record of this packet whatever its
 * flow: DNS, DHCP, and neighbour discovery. The observer then reads the
 * exact clock up front (pkt_time()) instead of the coarse one first.
 */
static __always_inline int record_bound(const struct pal_pkt *p)
{
	if (p->l4_proto == IPPROTO_ICMPV6)
		return (__u8)(p->icmp_type - PAL_ICMP6_RA) <= 2;
	if (p->l4_proto == IPPROTO_UDP)
		return either_port(p, PAL_PORT_DNS) || dhcp_port(p);
	return p->l4_proto == IPPROTO_TCP && either_port(p, PAL_PORT_DNS);
}

/*
 * A UDP datagram whose first packet is a QUIC v1 or v2 Initial goes to the TLS
 * ring whole (records.h, PAL_KIND_QUIC). Datagrams shorter than 1200 bytes
 * cannot carry a client's Initial (nor a server's ack-eliciting one), so
 * other UDP traffic pays one comparison and no load. Only the header form
 * bit is checked, not the fixed bit, which RFC 9287 lets peers grease.
 */
/* Largest payload offset read in place (Ethernet, two VLAN tags, IPv6 and extension headers). */
#define PAL_QUIC_DIRECT_OFF 256

static __always_inline void quic_capture(struct __sk_buff *skb, struct pal_pkt *p)
{
	__u8 h[5];
	__u32 version;
	__u8 type;

	if (p->pay_len < PAL_QUIC_MIN_DATAGRAM)
		return;
	/*
	 * Large UDP datagrams are common (QUIC's own short-header packets,
	 * VPNs, media): the first byte is read in place when the headers are in
	 * the linear part, which saves a helper call on every one of them.
	 */
	if (p->pay_off <= PAL_QUIC_DIRECT_OFF) {
		const __u8 *data = (const __u8 *)(long)skb->data;
		const __u8 *end = (const __u8 *)(long)skb->data_end;
		const __u8 *first = data + p->pay_off;

		if (first + 1 <= end && !(*first & 0x80))
			return;
	}
	if (bpf_skb_load_bytes(skb, p->pay_off, h, sizeof(h)) < 0 || !(h[0] & 0x80))
		return;
	version = (__u32)h[1] << 24 | (__u32)h[2] << 16 | (__u32)h[3] << 8 | h[4];
	type = (h[0] >> 4) & 0x03;
	/* Initial is long-header type 0 in v1, 1 in v2 (RFC 9369 section 3.2). */
	if (!((version == PAL_QUIC_V1 && type == 0) || (version == PAL_QUIC_V2 && type == 1)))
		return;
	tls_stat_inc(PAL_TLS_STAT_QUIC_INITIALS);
	emit_payload(skb, p, &rb_tls, PAL_RING_TLS, PAL_KIND_QUIC, PAL_CAP_QUIC);
}

/*
 * A DHCP message to the DHCP ring. A server-to-client one (67 -> 68, 547 ->
 * 546: the replies a rogue server sends) asks the guard first; its verdict
 * goes into the record's flags, and a dropped message is still recorded
 * (the worker's alert says it was blocked).
 */
static __always_inline int dhcp_capture(struct __sk_buff *skb, struct pal_pkt *p)
{
	int guard = 0;

	if (p->sport == PAL_PORT_DHCP_SERVER && p->dport == PAL_PORT_DHCP_CLIENT)
		guard = guard_check(p, PAL_GUARD_WHAT_DHCP4);
	else if (p->sport == PAL_PORT_DHCP6_SERVER && p->dport == PAL_PORT_DHCP6_CLIENT)
		guard = guard_check(p, PAL_GUARD_WHAT_DHCP6);
	p->flags |= guard;
	emit_payload(skb, p, &rb_dhcp, PAL_RING_DHCP, PAL_KIND_DHCP, PAL_CAP_DHCP);
	return guard & PAL_FLAG_GUARD_DROPPED ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

/*
 * Records the payloads the workers want; returns the packet's fate, which is
 * TC_ACT_UNSPEC except for DNS over UDP blocked by policy and DHCP server
 * messages and router advertisements the guard drops.
 */
static __always_inline int classify_payload(struct __sk_buff *skb, struct pal_pkt *p)
{
	int tcp = p->l4_proto == IPPROTO_TCP;

	if (!tcp && p->l4_proto != IPPROTO_UDP) {
		/* RA, NS, NA (134..136): one range test for other ICMP. */
		if (p->l4_proto == IPPROTO_ICMPV6 && (__u8)(p->icmp_type - PAL_ICMP6_RA) <= 2)
			return nd_capture(skb, p);
		return TC_ACT_UNSPEC;
	}
	if (either_port(p, PAL_PORT_DNS))
		return dns_capture(skb, p, tcp);
	if (!tcp) {
		if (dhcp_port(p))
			return dhcp_capture(skb, p);
		quic_capture(skb, p);
		return TC_ACT_UNSPEC;
	}
	/*
	 * The common case inline: a segment of a known flow that is not followed
	 * and does not start a hello costs this check and no call.
	 */
	if ((p->tls_follow || !p->flow_start_ns || tls_hello_start(skb, p)) &&
	    !capture_off(PAL_RING_TLS))
		tls_capture(skb, p);
	return TC_ACT_UNSPEC;
}

#endif /* PALISADE_CAPTURE_BPF_H */
