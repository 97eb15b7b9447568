/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * capture.bpf.h: payload capture of the TC observer, classify_payload().
 * It copies the payload prefixes the workers parse into their rings: DNS
 * (TCP or UDP port 53, dns_capture.bpf.h, where the domain policy also
 * runs), DHCP (UDP port 67 or 68) and TLS handshake records (any TCP port).
 * Protocol fields are parsed in the workers, in Rust, not here.
 *
 * Included by palisade.bpf.c.
 */
#ifndef PALISADE_CAPTURE_BPF_H
#define PALISADE_CAPTURE_BPF_H

#include "dns_capture.bpf.h"
#include "record.bpf.h"

#define PAL_PORT_DHCP_SERVER 67
#define PAL_PORT_DHCP_CLIENT 68

#define PAL_TLS_CONTENT_HANDSHAKE 22
#define PAL_TLS_MAJOR_VERSION 3

static __always_inline int either_port(const struct pal_pkt *p, __u16 port)
{
	return p->sport == port || p->dport == port;
}

/* A TCP payload that starts a TLS handshake record: 22, then major version 3. */
static __always_inline int is_tls_handshake(struct __sk_buff *skb, const struct pal_pkt *p)
{
	__u8 start[2];

	if (p->pay_len < sizeof(start))
		return 0;
	if (load_hdr(skb, p->pay_off, start, sizeof(start)) < 0)
		return 0;
	return start[0] == PAL_TLS_CONTENT_HANDSHAKE && start[1] == PAL_TLS_MAJOR_VERSION;
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
	if (tcp && is_tls_handshake(skb, p))
		emit_payload(skb, p, &rb_tls, PAL_RING_TLS, PAL_KIND_TLS, PAL_CAP_TLS);
	return TC_ACT_UNSPEC;
}

#endif /* PALISADE_CAPTURE_BPF_H */
