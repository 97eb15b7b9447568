/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * dns_capture.bpf.h: DNS on port 53 in the TC observer, dns_capture(). Over
 * UDP, pal_dns_udp() records the message as seen, asks the domain policy
 * (dns_policy.bpf.h) and carries out its verdict (dns_rewrite.bpf.h). Over
 * TCP the payload is recorded only.
 *
 * Included by capture.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_DNS_CAPTURE_BPF_H
#define PALISADE_DNS_CAPTURE_BPF_H

#include "dns_rewrite.bpf.h"
#include "trace.bpf.h"

/*
 * DNS over UDP: record (as seen), policy, then the verdict.
 *
 * A global (non-static, not inlined) function: the verifier checks it once,
 * on its own, with every field of *p unknown, instead of once per parse
 * path leading here (which multiplied the policy's and rewrite's branches
 * by every Ethernet/IP variant and made loading take seconds). Everything
 * below therefore bounds-checks what it takes from *p itself, or leaves it
 * to the skb helpers, which check offsets at run time.
 */
__attribute__((noinline)) int pal_dns_udp(struct __sk_buff *skb, struct pal_pkt *p)
{
	struct pal_dns_verdict v = {};
	struct pal_scratch *s = scratch_get();
	__u32 len;
	int truncated = 0;
	__u64 ts;

	if (!s || !p)
		return TC_ACT_UNSPEC;
	/* Taken first: a clock read in the middle costs the verifier len's bounds (a spill). */
	ts = pkt_time(p);
	len = p->pay_len;
	if (len > PAL_CAP_DNS) {
		len = PAL_CAP_DNS;
		truncated = 1;
	}
	/* A first fragment holds only the start of the message: say so to the worker. */
	if (p->ip_frag)
		truncated = 1;
	if (len > 0) {
		if (bpf_skb_load_bytes(skb, p->pay_off, s->payload, len) < 0) {
			stat_inc(PAL_STATS_GLOBAL, PAL_STAT_NOT_PARSED);
			return TC_ACT_UNSPEC;
		}
	}
	dns_policy(p, s, len, &v);
	if (p->traced && v.decided)
		trace_dns(v.rule_id, v.todo == PAL_DNS_TODO_NXDOMAIN && !v.query);

	hdr_fill(&s->hdr, skb, p, PAL_KIND_DNS, ts);
	s->hdr.flags |= v.flag;
	if (truncated)
		s->hdr.flags |= PAL_FLAG_TRUNCATED;
	s->hdr.len = sizeof(s->hdr) + len;
	s->hdr.payload_len = len;
	s->hdr.orig_payload_len = p->pay_len;
	/* Switched off, the record is not made; the policy above still decided. */
	if (!capture_off(PAL_RING_DNS))
		ring_output(&rb_dns, PAL_RING_DNS, s, sizeof(s->hdr) + len, truncated);

	return dns_enforce(skb, p, s, len, &v);
}

/*
 * DNS over TCP is recorded, not enforced: a TCP query is spread over
 * segments the kernel would have to reassemble and answer inside a
 * connection. Segments without payload are just ACKs. Returns the packet's
 * fate, TC_ACT_UNSPEC unless the policy blocked a UDP message.
 */
static __always_inline int dns_capture(struct __sk_buff *skb, struct pal_pkt *p, int tcp)
{
	if (!tcp)
		return pal_dns_udp(skb, p);
	if (p->pay_len > 0)
		emit_payload(skb, p, &rb_dns, PAL_RING_DNS, PAL_KIND_DNS, PAL_CAP_DNS);
	return TC_ACT_UNSPEC;
}

#endif /* PALISADE_DNS_CAPTURE_BPF_H */
