/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * capture.bpf.h: payload capture of the TC observer, classify_payload().
 * It copies the payload prefixes the workers parse into their rings: DNS
 * (TCP or UDP port 53, dns_capture.bpf.h, where the domain policy also
 * runs), DHCP (UDP port 67 or 68) and TLS handshakes, followed across
 * segments both ways (any TCP port, tls_capture.bpf.h).
 * Protocol fields are parsed in the workers, in Rust, not here.
 *
 * Included by palisade.bpf.c.
 */
#ifndef PALISADE_CAPTURE_BPF_H
#define PALISADE_CAPTURE_BPF_H

#include "dns_capture.bpf.h"
#include "record.bpf.h"
#include "tls_capture.bpf.h"

#define PAL_PORT_DHCP_SERVER 67
#define PAL_PORT_DHCP_CLIENT 68

static __always_inline int either_port(const struct pal_pkt *p, __u16 port)
{
	return p->sport == port || p->dport == port;
}

/*
 * Records the payloads the workers want; returns the packet's fate, which is
 * TC_ACT_UNSPEC except for DNS over UDP blocked by policy.
 */
static __always_inline int classify_payload(struct __sk_buff *skb, struct pal_pkt *p)
{
	int tcp = p->l4_proto == IPPROTO_TCP;

	if (!tcp && p->l4_proto != IPPROTO_UDP)
		return TC_ACT_UNSPEC;
	if (either_port(p, PAL_PORT_DNS))
		return dns_capture(skb, p, tcp);
	if (!tcp && (either_port(p, PAL_PORT_DHCP_SERVER) || either_port(p, PAL_PORT_DHCP_CLIENT))) {
		emit_payload(skb, p, &rb_dhcp, PAL_RING_DHCP, PAL_KIND_DHCP, PAL_CAP_DHCP);
		return TC_ACT_UNSPEC;
	}
	/*
	 * The common case inline: a segment of a known flow that is not followed
	 * and does not start a hello costs this check and no call.
	 */
	if (tcp && (p->tls_follow || !p->flow_start_ns || tls_hello_start(skb, p)))
		tls_capture(skb, p);
	return TC_ACT_UNSPEC;
}

#endif /* PALISADE_CAPTURE_BPF_H */
