/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * dns_rewrite.bpf.h: what the DNS policy does with a blocked message,
 * dns_enforce(): rewrite it in place into an NXDOMAIN answer to its first
 * question (checksums kept right for every skb checksum state), turn a query
 * around with bpf_redirect(), or drop it. The decision is dns_policy()'s
 * (dns_policy.bpf.h).
 *
 * Included by dns_capture.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_DNS_REWRITE_BPF_H
#define PALISADE_DNS_REWRITE_BPF_H

#include <linux/pkt_cls.h>

#include "dns_policy.bpf.h"

/*
 * Whether the message can be rewritten in place: the whole first question
 * was captured, the datagram is complete and unfragmented, and (queries)
 * IPv6 has no extension headers (a routing header cannot just be reversed).
 */
static __always_inline int dns_rewritable(const struct pal_pkt *p, __u32 avail,
					  const struct pal_dns_verdict *v)
{
	if (v->keep > avail || v->keep > p->pay_len || v->keep > PAL_DNS_KEEP_MAX)
		return 0;
	if (p->udp_len != sizeof(struct udphdr) + p->pay_len || p->segs != 1)
		return 0;
	if (p->ip_version == 4)
		return !p->ip_frag;
	return !v->query || p->l4_off == p->l3_off + sizeof(struct ipv6hdr);
}

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u64 csum = (__u64)sum;

	csum = (csum & 0xffffffff) + (csum >> 32);
	csum = (csum & 0xffffffff) + (csum >> 32);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* IPv4 header: new total length, and for a query swapped addresses and a fresh TTL. */
static __always_inline int dns_rewrite_ipv4(struct __sk_buff *skb, const struct pal_pkt *p,
					    __u32 l3_len, int query)
{
	__u32 check_off = p->l3_off + offsetof(struct iphdr, check);
	__u32 ttl_off = p->l3_off + offsetof(struct iphdr, ttl);
	__u16 old_word, new_word;
	__be16 old_len, new_len = bpf_htons(l3_len);
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, p->l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	old_len = ip.tot_len;
	ip.tot_len = new_len;
	/*
	 * No BPF_F_RECOMPUTE_CSUM on header stores: the header checksum moves by
	 * exactly the opposite amount, so skb->csum (CHECKSUM_COMPLETE) stays right.
	 */
	if (bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, tot_len), &new_len,
				sizeof(new_len), 0) < 0 ||
	    bpf_l3_csum_replace(skb, check_off, old_len, new_len, sizeof(__u16)) < 0)
		return -1;
	if (!query)
		return 0;

	__builtin_memcpy(&old_word, &ip.ttl, sizeof(old_word)); /* ttl, protocol */
	ip.ttl = PAL_DNS_TTL;
	__builtin_memcpy(&new_word, &ip.ttl, sizeof(new_word));
	if (bpf_skb_store_bytes(skb, ttl_off, &new_word, sizeof(new_word), 0) < 0 ||
	    bpf_l3_csum_replace(skb, check_off, old_word, new_word, sizeof(__u16)) < 0)
		return -1;
	/* Swapping the addresses changes neither checksum. */
	if (bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, saddr), &ip.daddr,
				sizeof(ip.daddr), 0) < 0 ||
	    bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, daddr), &ip.saddr,
				sizeof(ip.saddr), 0) < 0)
		return -1;
	return 0;
}

/* IPv6 header: new payload length, and for a query swapped addresses and hop limit. */
static __always_inline int dns_rewrite_ipv6(struct __sk_buff *skb, const struct pal_pkt *p,
					    __u32 l3_len, int query)
{
	struct ipv6hdr ip6;

	if (bpf_skb_load_bytes(skb, p->l3_off, &ip6, sizeof(ip6)) < 0)
		return -1;
	ip6.payload_len = bpf_htons(l3_len - sizeof(ip6));
	if (query) {
		struct in6_addr addr = ip6.saddr;

		ip6.saddr = ip6.daddr;
		ip6.daddr = addr;
		ip6.hop_limit = PAL_DNS_TTL;
	}
	/*
	 * No header checksum to compensate these changes: let the helper keep
	 * skb->csum (CHECKSUM_COMPLETE) in step.
	 */
	return bpf_skb_store_bytes(skb, p->l3_off, &ip6, sizeof(ip6), BPF_F_RECOMPUTE_CSUM) < 0
		       ? -1
		       : 0;
}

/* Ones'-complement sum of the UDP pseudo header of the rewritten datagram. */
static __always_inline __s64 dns_pseudo_sum(struct pal_scratch *s, const struct pal_pkt *p,
					    __u32 udp_len)
{
	__u8 *ph = s->dns.pseudo;

	__builtin_memset(ph, 0, sizeof(s->dns.pseudo));
	if (p->ip_version == 4) {
		__builtin_memcpy(ph, p->saddr, 4);
		__builtin_memcpy(ph + 4, p->daddr, 4);
		ph[9] = IPPROTO_UDP;
		ph[10] = udp_len >> 8;
		ph[11] = udp_len & 0xff;
		return bpf_csum_diff(NULL, 0, (__be32 *)ph, 12, 0);
	}
	__builtin_memcpy(ph, p->saddr, 16);
	__builtin_memcpy(ph + 16, p->daddr, 16);
	ph[34] = udp_len >> 8;
	ph[35] = udp_len & 0xff;
	ph[39] = IPPROTO_UDP;
	return bpf_csum_diff(NULL, 0, (__be32 *)ph, 40, 0);
}

/*
 * Rewrites the message into an NXDOMAIN answer to its first question: same
 * id, QR=1, opcode/RD/CD kept, AA=TC=AD=0, RA=1, RCODE=3, one question, no
 * records; everything after the question (EDNS OPT included) is cut off. A
 * query is also turned around (Ethernet, IP, ports; TTL 64).
 *
 * Checksums are adjusted with the kernel's helpers, which honour the skb's
 * checksum state: the UDP length enters the pseudo header through
 * bpf_l4_csum_replace(BPF_F_PSEUDO_HDR) (right for CHECKSUM_PARTIAL, where
 * the field holds the pseudo-header sum and the device completes it), then
 * one by-difference update brings a full checksum to the value computed
 * here over the new datagram (a no-op for CHECKSUM_PARTIAL). An IPv4 UDP
 * checksum of 0 (none) stays 0.
 */
static __always_inline int dns_rewrite(struct __sk_buff *skb, const struct pal_pkt *p,
				       struct pal_scratch *s, const struct pal_dns_verdict *v)
{
	__u32 keep = v->keep;
	__u32 udp_len = sizeof(struct udphdr) + keep;
	__u32 end = p->l4_off + udp_len;
	__u32 csum_off = p->l4_off + offsetof(struct udphdr, check);
	__be16 old_udp_len = bpf_htons(p->udp_len), new_udp_len = bpf_htons(udp_len);
	__u8 *out = s->dns.out;
	__u16 check, want;
	__s64 sum, part;
	__u32 tail;
	int err;

	if (keep < PAL_DNS_HDR + 1 + PAL_DNS_QFIXED || keep > PAL_DNS_KEEP_MAX)
		return -1;
	if (end < skb->len && bpf_skb_change_tail(skb, end, 0) < 0)
		return -1;

	/* The new UDP header and DNS header, in `out` (also used for the checksum). */
	if (v->query) {
		out[0] = p->dport >> 8;
		out[1] = p->dport & 0xff;
		out[2] = p->sport >> 8;
		out[3] = p->sport & 0xff;
	} else {
		out[0] = p->sport >> 8;
		out[1] = p->sport & 0xff;
		out[2] = p->dport >> 8;
		out[3] = p->dport & 0xff;
	}
	__builtin_memcpy(out + 4, &new_udp_len, sizeof(new_udp_len));
	out[6] = 0;
	out[7] = 0;
	out[8] = s->payload[0];
	out[9] = s->payload[1];
	out[10] = PAL_DNS_QR | (s->payload[2] & (PAL_DNS_OPCODE | PAL_DNS_RD));
	out[11] = PAL_DNS_RA | (s->payload[3] & PAL_DNS_CD) | PAL_DNS_RCODE_NXDOMAIN;
	out[12] = 0;
	out[13] = 1; /* QDCOUNT */
	__builtin_memset(out + 14, 0, 6); /* ANCOUNT, NSCOUNT, ARCOUNT */

	/* Ports and length, then the DNS header. UDP data: no RECOMPUTE (see above). */
	if (bpf_skb_store_bytes(skb, p->l4_off, out, 6, 0) < 0 ||
	    bpf_skb_store_bytes(skb, p->pay_off, out + 8, PAL_DNS_HDR, 0) < 0)
		return -1;

	if (p->ip_version == 4)
		err = dns_rewrite_ipv4(skb, p, p->l4_off - p->l3_off + udp_len, v->query);
	else
		err = dns_rewrite_ipv6(skb, p, p->l4_off - p->l3_off + udp_len, v->query);
	if (err)
		return -1;

	if (v->query) {
		__u8 macs[2 * ETH_ALEN];

		__builtin_memcpy(macs, p->src_mac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, p->dst_mac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
			return -1;
	}

	/* UDP checksum, step 1: the length in the pseudo header. */
	if (bpf_l4_csum_replace(skb, csum_off, old_udp_len, new_udp_len,
				BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(__u16)) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, csum_off, &check, sizeof(check)) < 0)
		return -1;
	if (check == 0)
		return 0; /* IPv4 without a UDP checksum */

	/* Step 2: the full checksum of the new datagram, computed over `out`. */
	__builtin_memcpy(out + 8 + PAL_DNS_HDR, s->payload + PAL_DNS_HDR,
			 PAL_DNS_KEEP_MAX - PAL_DNS_HDR);
	tail = 8 + keep;
	/* Keep clang from dropping the bound it can prove but the verifier cannot. */
	barrier_var(tail);
	if (tail > PAL_DNS_OUT_BUF - 3)
		return -1;
	out[tail] = 0; /* pad to a multiple of 4 bytes for bpf_csum_diff() */
	out[tail + 1] = 0;
	out[tail + 2] = 0;
	sum = dns_pseudo_sum(s, p, udp_len);
	if (sum < 0)
		return -1;
	tail = (tail + 3) & ~3u;
	barrier_var(tail);
	if (tail > PAL_DNS_OUT_BUF)
		return -1;
	part = bpf_csum_diff(NULL, 0, (__be32 *)out, tail, (__u32)sum);
	if (part < 0)
		return -1;
	want = csum_fold(part);
	if (want == 0)
		want = 0xffff; /* UDP sends a computed 0 as all ones */
	if (want != check) {
		/* bpf_l4_csum_replace() by difference: new = ~fold(diff + ~old) = want. */
		__u32 diff = (__u32)(__u16)~want + check;

		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_MARK_MANGLED_0) < 0)
			return -1;
	}
	return 0;
}

/* Carries out a verdict on the packet (after its record was written). */
static __always_inline int dns_enforce(struct __sk_buff *skb, const struct pal_pkt *p,
				       struct pal_scratch *s, __u32 avail,
				       const struct pal_dns_verdict *v)
{
	long ret;

	if (v->todo == PAL_DNS_TODO_PASS)
		return TC_ACT_UNSPEC;
	if (v->todo == PAL_DNS_TODO_NXDOMAIN && !dns_rewritable(p, avail, v)) {
		dns_stat_inc(PAL_DNS_STAT_NXDOMAIN_UNSUPPORTED);
	} else if (v->todo == PAL_DNS_TODO_NXDOMAIN) {
		if (dns_rewrite(skb, p, s, v) < 0) {
			dns_stat_inc(PAL_DNS_STAT_REWRITE_FAILED);
			return TC_ACT_SHOT; /* half rewritten: never let it go on */
		}
		if (!v->query) {
			dns_stat_inc(PAL_DNS_STAT_ANSWERS_REWRITTEN);
			return TC_ACT_UNSPEC;
		}
		/* Back where it came from: out of the interface, or up our own stack. */
		ret = bpf_redirect(skb->ifindex, p->direction == PAL_DIR_INGRESS ? 0 : BPF_F_INGRESS);
		if (ret != TC_ACT_REDIRECT) {
			dns_stat_inc(PAL_DNS_STAT_REDIRECT_FAILED);
			return TC_ACT_SHOT;
		}
		dns_stat_inc(PAL_DNS_STAT_BLOCKED_NXDOMAIN);
		return TC_ACT_REDIRECT;
	}
	dns_stat_inc(v->query ? PAL_DNS_STAT_BLOCKED_DROP : PAL_DNS_STAT_ANSWERS_DROPPED);
	return TC_ACT_SHOT;
}

#endif /* PALISADE_DNS_REWRITE_BPF_H */
