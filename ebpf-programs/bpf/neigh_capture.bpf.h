/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * neigh_capture.bpf.h: ARP and IPv6 neighbour discovery to the DHCP worker's
 * ring, for the device inventory's IP-to-MAC bindings (records.h, kinds
 * PAL_KIND_ARP, PAL_KIND_ND, PAL_KIND_RA). Router advertisements also pass
 * the DHCP guard (guard.bpf.h). The worker parses everything; the kernel only
 * picks the packets: ARP by EtherType (parse() says PAL_PARSE_ARP), ICMPv6 by
 * type (133..137 are rare, and other ICMPv6 pays one range test).
 *
 * Included by capture.bpf.h.
 */
#ifndef PALISADE_NEIGH_CAPTURE_BPF_H
#define PALISADE_NEIGH_CAPTURE_BPF_H

#include "guard.bpf.h"
#include "record.bpf.h"

#define PAL_ICMP6_RA 134
#define PAL_ICMP6_NS 135
#define PAL_ICMP6_NA 136

_Static_assert(PAL_CAP_ARP <= PAL_CAP_MAX && PAL_CAP_ICMP6 <= PAL_CAP_MAX,
	       "neighbour records must fit the scratch record");

/*
 * An ARP packet (p->l3_off: where it starts). Not inlined: called only for
 * ARP, off the IP path. The payload is at most PAL_CAP_ARP bytes: Ethernet
 * pads a 28-byte ARP packet to 46, and the padding is not the packet's.
 */
static __attribute__((noinline)) void arp_capture(struct __sk_buff *skb, struct pal_pkt *p)
{
	__u32 len;

	if (!p || p->l3_off >= skb->len)
		return;
	len = skb->len - p->l3_off;
	if (len > PAL_CAP_ARP)
		len = PAL_CAP_ARP;
	p->pay_off = p->l3_off;
	p->pay_len = len;
	emit_payload(skb, p, &rb_dhcp, PAL_RING_DHCP, PAL_KIND_ARP, PAL_CAP_ARP);
}

/*
 * ICMPv6 router advertisements, neighbour solicitations and advertisements:
 * the whole ICMPv6 message to the DHCP ring; an RA first asks the guard.
 * Returns the packet's fate: TC_ACT_SHOT for an RA the guard drops.
 */
static __attribute__((noinline)) int nd_capture(struct __sk_buff *skb, struct pal_pkt *p)
{
	__u16 kind = PAL_KIND_ND;
	int guard = 0;

	if (!p || p->l4_off > p->l4_end)
		return TC_ACT_UNSPEC;
	p->pay_off = p->l4_off;
	p->pay_len = p->l4_end - p->l4_off;
	if (p->icmp_type == PAL_ICMP6_RA) {
		kind = PAL_KIND_RA;
		guard = guard_check(p, PAL_GUARD_WHAT_RA);
		p->flags |= guard;
	}
	emit_payload(skb, p, &rb_dhcp, PAL_RING_DHCP, kind, PAL_CAP_ICMP6);
	return guard & PAL_FLAG_GUARD_DROPPED ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

#endif /* PALISADE_NEIGH_CAPTURE_BPF_H */
