/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ip_policy.bpf.h: the IP policy: its maps, and the bodies of its three
 * programs (ip_xdp(), ip_tc()), whose entry points are in palisade.bpf.c.
 * It is part of the one object, so it shares rb_flow and rule_hit()
 * (common.bpf.h) and the Ethernet/VLAN walk (l2.bpf.h) with the observer.
 * Included by palisade.bpf.c.
 *
 * Drops every packet whose source or destination address lies in a blocked
 * IPv4/IPv6 prefix. The prefixes are LPM tries in slot 0 of pal_ip4_policy
 * and pal_ip6_policy; the supervisor builds a complete new trie on reload
 * and swaps it in with one slot update (a packet sees the old or the new
 * set of its family, never a mix), and adds or removes single prefixes of
 * runtime rules in the live trie (one element update each, atomic too).
 *
 * Programs:
 *   pal_xdp_block        XDP (native or generic, chosen by the supervisor)
 *   pal_tc_block_ingress TCX ingress, attached first (xdp_mode = "tc")
 *   pal_tc_block_egress  TCX egress, attached first on every interface:
 *                        locally originated traffic to a blocked address
 *
 * Either ingress program runs before the observer (XDP runs before TC at
 * all; the TC one is attached first in the TCX chain), so dropped packets
 * are neither recorded nor counted as flows. The per-packet work when no
 * rule set is loaded is the parse of Ethernet + IP and one array lookup per
 * family. IPv4 addresses are first checked against a /16 bitmap
 * (pal_ip4_filter): the trie is searched only for an address whose /16 holds
 * or is covered by some rule. Each drop increments pal_ip_stats and the rule's pal_ip_hits
 * counter, and may emit a PAL_KIND_IP_BLOCK record to rb_flow, limited per
 * CPU by pal_ip_config (GCRA: one per alert_interval_ns after a burst of
 * alert_burst); drops not alerted are counted and reported in the next
 * alert's `suppressed`.
 *
 * Packets are read with direct packet access: headers are in the linear
 * area for XDP, and for TC after bpf_skb_pull_data() when they were not.
 *
 * While a packet trace runs, each program run on a matching packet reports
 * its verdict and the deciding rule (ip_trace(), trace.bpf.h).
 */
#ifndef PALISADE_IP_POLICY_BPF_H
#define PALISADE_IP_POLICY_BPF_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#include "common.bpf.h"
#include "l2.bpf.h"
#include "trace.bpf.h"

/* Entries of the per-rule hit counters (LRU: the least recently hit rule goes). */
#define PAL_IP_HITS_ENTRIES 65536
/* Bytes pulled into the linear area when a TC packet's headers are not there. */
#define PAL_IP_PULL_BYTES 128

/*
 * Outer maps: one slot each, holding the current trie of the family. The
 * inner map below is only the template; for LPM tries the kernel compares
 * type, key/value size and map_flags with the maps put in the slot, not
 * max_entries, so tries of any size fit. Tries must be BPF_F_NO_PREALLOC.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(max_entries, 1);
		__uint(key_size, sizeof(struct pal_ip4_key));
		__uint(value_size, sizeof(struct pal_ip_rule));
		__uint(map_flags, BPF_F_NO_PREALLOC);
	});
} pal_ip4_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(max_entries, 1);
		__uint(key_size, sizeof(struct pal_ip6_key));
		__uint(value_size, sizeof(struct pal_ip_rule));
		__uint(map_flags, BPF_F_NO_PREALLOC);
	});
} pal_ip6_policy SEC(".maps");

/* IPv4 pre-filter, one bit per /16 (records.h PAL_IP4_FILTER_WORDS). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAL_IP4_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ip4_filter SEC(".maps");

/* Per-rule hit counters: rule_id -> packets dropped by it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, PAL_IP_HITS_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ip_hits SEC(".maps");

/* Slot 0: alert rate limit (records.h struct pal_ip_config). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_ip_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ip_config SEC(".maps");

/* IP policy counters, key = PAL_IP_STAT_* (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_IP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ip_stats SEC(".maps");

/* Per-CPU alert limiter state (kernel-only, not pinned: a restart resets it). */
struct pal_ip_limiter {
	__u64 tat_ns;     /* GCRA theoretical arrival time */
	__u32 suppressed; /* drops not alerted since the last alert */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_ip_limiter);
} pal_ip_limiter SEC(".maps");

/*
 * One alert record, assembled on the stack: header + payload, 108 bytes
 * (PAL_IP_ALERT_LEN; sizeof is 112 with the tail padding, never output).
 */
struct pal_ip_alert {
	struct pal_record_hdr hdr;
	struct pal_ip_block_record rec;
};

#define PAL_IP_ALERT_LEN (sizeof(struct pal_record_hdr) + sizeof(struct pal_ip_block_record))
_Static_assert(offsetof(struct pal_ip_alert, rec) == sizeof(struct pal_record_hdr),
	       "the payload follows the header directly");

/* What the IP policy needs of a packet. */
struct pal_ip_pkt {
	void *data;      /* start of the frame */
	void *end;       /* data_end */
	void *l3;        /* IP header */
	__u16 vlan_id;   /* valid when flags has PAL_FLAG_VLAN */
	__u8 flags;      /* PAL_FLAG_VLAN */
	__u8 ip_version; /* 4 or 6 */
	__u8 l4_proto;   /* IPPROTO_* (IPv6: the first next header) */
	__u8 has_ports;  /* TCP/UDP header present (not a later fragment) */
	__u16 l4_off;    /* L4 header offset from l3 */
};

enum pal_ip_parse {
	PAL_IP_OK,
	PAL_IP_NOT_IP, /* ARP, LLDP, ...: pass silently */
	PAL_IP_SHORT,  /* headers cut short or malformed */
	PAL_IP_DEEP,   /* more VLAN tags than l2_walk() skips: cannot be checked */
};

static __always_inline void ip_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_ip_stats, &slot);

	if (value)
		*value += 1;
}

/*
 * Ethernet and up to PAL_VLAN_MAX_TAGS VLAN tags (l2_walk(), l2.bpf.h), then
 * the IPv4 or IPv6 fixed header. A frame with more tags is PAL_IP_DEEP.
 */
static __always_inline enum pal_ip_parse ip_parse(struct pal_ip_pkt *p)
{
	struct pal_frame f = {.data = p->data, .end = p->end, .how = PAL_L2_DIRECT};
	struct pal_l2 l2;
	void *l3;

	switch (l2_walk(&f, &l2, &p->flags, &p->vlan_id)) {
	case PAL_L2_OK:
		break;
	case PAL_L2_DEEP:
		return PAL_IP_DEEP;
	default:
		return PAL_IP_SHORT;
	}
	l3 = p->data + l2.l3_off;
	p->l3 = l3;
	if (l2.proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > p->end || ip->ihl < 5)
			return PAL_IP_SHORT;
		p->ip_version = 4;
		p->l4_proto = ip->protocol;
		p->l4_off = ip->ihl * 4;
		p->has_ports = !(ip->frag_off & bpf_htons(PAL_IP_FRAG_OFFSET)) &&
			       (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP);
		return PAL_IP_OK;
	}
	if (l2.proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > p->end)
			return PAL_IP_SHORT;
		p->ip_version = 6;
		p->l4_proto = ip6->nexthdr;
		p->l4_off = sizeof(*ip6);
		p->has_ports = ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP;
		return PAL_IP_OK;
	}
	return PAL_IP_NOT_IP;
}

/* Whether an IPv4 address (network order) may match: its /16 bit in pal_ip4_filter. */
static __always_inline int ip4_may_match(__be32 addr)
{
	__u32 hi = bpf_ntohl(addr) >> 16;
	__u32 word = hi >> 6;
	__u64 *bits = bpf_map_lookup_elem(&pal_ip4_filter, &word);

	return bits && (*bits >> (hi & 63)) & 1;
}

/* The rule of `trie` for `key`, ignoring (and counting) an expired one. */
static __always_inline struct pal_ip_rule *ip_match(void *trie, void *key)
{
	struct pal_ip_rule *rule = bpf_map_lookup_elem(trie, key);

	if (rule && rule->expires_boot_ns && bpf_ktime_get_boot_ns() >= rule->expires_boot_ns) {
		ip_stat_inc(PAL_IP_STAT_EXPIRED);
		return 0;
	}
	return rule;
}

static __always_inline void ip_hit(__u32 rule_id)
{
	if (rule_hit(&pal_ip_hits, rule_id))
		ip_stat_inc(PAL_IP_STAT_HITS_MAP_FULL);
}

/*
 * Whether this drop may be alerted (GCRA per CPU); returns the drops
 * suppressed since the previous alert through *suppressed.
 */
static __always_inline int ip_alert_allowed(__u64 now, __u32 *suppressed)
{
	__u32 zero = 0;
	struct pal_ip_config *cfg = bpf_map_lookup_elem(&pal_ip_config, &zero);
	struct pal_ip_limiter *lim = bpf_map_lookup_elem(&pal_ip_limiter, &zero);
	__u64 tat, tau;

	if (!cfg || !lim)
		return 0;
	if (!cfg->alert_interval_ns) {
		ip_stat_inc(PAL_IP_STAT_ALERTS_SUPPRESSED);
		return 0;
	}
	tat = lim->tat_ns > now ? lim->tat_ns : now;
	tau = cfg->alert_interval_ns * (cfg->alert_burst ? cfg->alert_burst - 1 : 0);
	if (tat - now > tau) {
		lim->suppressed += 1;
		ip_stat_inc(PAL_IP_STAT_ALERTS_SUPPRESSED);
		return 0;
	}
	lim->tat_ns = tat + cfg->alert_interval_ns;
	*suppressed = lim->suppressed;
	lim->suppressed = 0;
	return 1;
}

static __always_inline void ip_alert(const struct pal_ip_pkt *p, __u32 ifindex, __u8 direction,
				     __u8 hook, const struct pal_ip_rule *rule, __u8 matched)
{
	struct pal_ip_alert a = {};
	struct ethhdr *eth = p->data;
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 suppressed = 0;

	if (!ip_alert_allowed(now, &suppressed))
		return;
	if ((void *)(eth + 1) > p->end)
		return;
	a.hdr.magic = PAL_RECORD_MAGIC;
	a.hdr.abi_version = PAL_ABI_VERSION;
	a.hdr.kind = PAL_KIND_IP_BLOCK;
	a.hdr.len = PAL_IP_ALERT_LEN;
	a.hdr.ifindex = ifindex;
	a.hdr.ts_boot_ns = now;
	a.hdr.direction = direction;
	a.hdr.ip_version = p->ip_version;
	a.hdr.l4_proto = p->l4_proto;
	a.hdr.flags = p->flags;
	a.hdr.vlan_id = p->vlan_id;
	__builtin_memcpy(a.hdr.src_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(a.hdr.dst_mac, eth->h_dest, ETH_ALEN);
	if (p->ip_version == 4) {
		struct iphdr *ip = p->l3;

		if ((void *)(ip + 1) > p->end)
			return;
		__builtin_memcpy(a.hdr.src_addr, &ip->saddr, 4);
		__builtin_memcpy(a.hdr.dst_addr, &ip->daddr, 4);
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)(ip6 + 1) > p->end)
			return;
		__builtin_memcpy(a.hdr.src_addr, &ip6->saddr, 16);
		__builtin_memcpy(a.hdr.dst_addr, &ip6->daddr, 16);
	}
	if (p->has_ports) {
		__be16 *ports = p->l3 + (p->l4_off & 0x3ff);

		if ((void *)(ports + 2) <= p->end) {
			a.hdr.src_port = bpf_ntohs(ports[0]);
			a.hdr.dst_port = bpf_ntohs(ports[1]);
		}
	}
	a.hdr.payload_len = sizeof(a.rec);
	a.hdr.orig_payload_len = sizeof(a.rec);
	a.rec.rule_id = rule->rule_id;
	a.rec.suppressed = suppressed;
	a.rec.prefixlen = rule->prefixlen;
	a.rec.matched = matched;
	a.rec.hook = hook;
	if (bpf_ringbuf_output(&rb_flow, &a, PAL_IP_ALERT_LEN, BPF_RB_NO_WAKEUP) < 0) {
		ip_stat_inc(PAL_IP_STAT_ALERTS_LOST);
		return;
	}
	ip_stat_inc(PAL_IP_STAT_ALERTS);
}

/* The rule that dropped a packet, for its trace event. */
struct pal_ip_decision {
	__u32 rule_id;
	__u8 prefixlen;
	__u8 matched; /* PAL_IP_MATCH_* */
	__u8 dropped; /* 1: the fields above are set */
	__u8 _pad;
};

/*
 * Whether the packet must be dropped; counts, hits and alerts when it is,
 * and puts the rule in *d.
 */
static __always_inline int ip_verdict(const struct pal_ip_pkt *p, __u32 ifindex, __u8 direction,
				      __u8 hook, struct pal_ip_decision *d)
{
	struct pal_ip_rule *rule = 0;
	__u32 zero = 0;
	__u8 matched = PAL_IP_MATCH_SRC;

	if (p->ip_version == 4) {
		struct iphdr *ip = p->l3;
		struct pal_ip4_key key = {.prefixlen = 32};
		void *trie = bpf_map_lookup_elem(&pal_ip4_policy, &zero);

		if (!trie)
			return 0;
		if ((void *)(ip + 1) > p->end)
			return 0;
		if (ip4_may_match(ip->saddr)) {
			__builtin_memcpy(key.addr, &ip->saddr, 4);
			rule = ip_match(trie, &key);
		}
		if (!rule && ip4_may_match(ip->daddr)) {
			__builtin_memcpy(key.addr, &ip->daddr, 4);
			rule = ip_match(trie, &key);
			matched = PAL_IP_MATCH_DST;
		}
		if (!rule)
			return 0;
		ip_stat_inc(PAL_IP_STAT_DROPPED_V4);
	} else {
		struct ipv6hdr *ip6 = p->l3;
		struct pal_ip6_key key = {.prefixlen = 128};
		void *trie = bpf_map_lookup_elem(&pal_ip6_policy, &zero);

		if (!trie)
			return 0;
		if ((void *)(ip6 + 1) > p->end)
			return 0;
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		rule = ip_match(trie, &key);
		if (!rule) {
			__builtin_memcpy(key.addr, &ip6->daddr, 16);
			rule = ip_match(trie, &key);
			matched = PAL_IP_MATCH_DST;
		}
		if (!rule)
			return 0;
		ip_stat_inc(PAL_IP_STAT_DROPPED_V6);
	}
	d->rule_id = rule->rule_id;
	d->prefixlen = rule->prefixlen;
	d->matched = matched;
	d->dropped = 1;
	ip_hit(rule->rule_id);
	ip_alert(p, ifindex, direction, hook, rule, matched);
	return 1;
}

/* A running trace (trace.bpf.h): the event of this program run, if the filter matches. */
static __always_inline void ip_trace(const struct pal_trace_config *c, const struct pal_ip_pkt *p,
				     __u32 ifindex, __u32 len, __u8 direction, __u8 hook,
				     int verdict, const struct pal_ip_decision *d)
{
	struct pal_trace_event *ev;
	__u64 now = bpf_ktime_get_boot_ns();
	__u16 sport = 0, dport = 0;
	__u8 *src, *dst;

	if (p->ip_version == 4) {
		struct iphdr *ip = p->l3;

		if ((void *)(ip + 1) > p->end)
			return;
		src = (__u8 *)&ip->saddr;
		dst = (__u8 *)&ip->daddr;
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)(ip6 + 1) > p->end)
			return;
		src = (__u8 *)&ip6->saddr;
		dst = (__u8 *)&ip6->daddr;
	}
	if (p->has_ports) {
		__be16 *ports = p->l3 + (p->l4_off & 0x3ff);

		if ((void *)(ports + 2) <= p->end) {
			sport = bpf_ntohs(ports[0]);
			dport = bpf_ntohs(ports[1]);
		}
	}
	if (!trace_match(c, p->ip_version, p->l4_proto, sport, dport, src, dst, now))
		return;
	ev = trace_reserve();
	if (!ev)
		return;
	if (p->ip_version == 4) {
		__builtin_memcpy(ev->src_addr, src, 4);
		__builtin_memcpy(ev->dst_addr, dst, 4);
	} else {
		__builtin_memcpy(ev->src_addr, src, 16);
		__builtin_memcpy(ev->dst_addr, dst, 16);
	}
	ev->src_port = sport;
	ev->dst_port = dport;
	ev->ip_version = p->ip_version;
	ev->l4_proto = p->l4_proto;
	ev->ts_boot_ns = now;
	ev->ifindex = ifindex;
	ev->pkt_len = len;
	ev->verdict = verdict;
	ev->vlan_id = p->vlan_id;
	ev->hook = hook;
	ev->direction = direction;
	if (p->flags & PAL_FLAG_VLAN)
		ev->flags |= PAL_TRACE_F_VLAN;
	if (d->dropped) {
		ev->decided_by = PAL_TRACE_BY_IP_RULE;
		ev->rule_id = d->rule_id;
		ev->prefixlen = d->prefixlen;
		ev->matched = d->matched;
	}
	trace_submit(ev);
}

/*
 * A frame the policy cannot look into (PAL_IP_DEEP): dropped while any rule
 * is in force, since it could carry a blocked address; passed otherwise.
 */
static __always_inline int ip_deep_verdict(void)
{
	__u32 zero = 0;

	if (!bpf_map_lookup_elem(&pal_ip4_policy, &zero) &&
	    !bpf_map_lookup_elem(&pal_ip6_policy, &zero))
		return 0;
	ip_stat_inc(PAL_IP_STAT_VLAN_TOO_DEEP);
	return 1;
}

/* The program pal_xdp_block: drop, or pass to the stack. */
static __always_inline int ip_xdp(struct xdp_md *ctx)
{
	struct pal_ip_pkt p = {
		.data = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	struct pal_ip_decision d = {};
	const struct pal_trace_config *c;
	/* Read once: the verifier refuses a second read through a derived ctx pointer. */
	__u32 ifindex = ctx->ingress_ifindex;
	int verdict;

	switch (ip_parse(&p)) {
	case PAL_IP_OK:
		break;
	case PAL_IP_SHORT:
		ip_stat_inc(PAL_IP_STAT_NOT_PARSED);
		return XDP_PASS;
	case PAL_IP_DEEP:
		return ip_deep_verdict() ? XDP_DROP : XDP_PASS;
	default:
		return XDP_PASS;
	}
	verdict = ip_verdict(&p, ifindex, PAL_DIR_INGRESS, PAL_IP_HOOK_XDP, &d) ? XDP_DROP
										 : XDP_PASS;
	c = trace_on();
	if (c)
		ip_trace(c, &p, ifindex, (__u32)(p.end - p.data), PAL_DIR_INGRESS,
			 PAL_TRACE_HOOK_XDP, verdict, &d);
	return verdict;
}

/* The programs pal_tc_block_ingress/egress: drop, or on to the next TCX program. */
static __always_inline int ip_tc(struct __sk_buff *skb, __u8 direction)
{
	struct pal_ip_pkt p = {
		.data = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	enum pal_ip_parse res = ip_parse(&p);
	struct pal_ip_decision d = {};
	const struct pal_trace_config *c;
	int verdict;

	if (res == PAL_IP_SHORT && skb->len > (__u32)(p.end - p.data)) {
		/* Headers in paged data: make them linear, then look again. */
		if (bpf_skb_pull_data(skb, PAL_IP_PULL_BYTES < skb->len ? PAL_IP_PULL_BYTES
									: skb->len) < 0)
			return TC_ACT_UNSPEC;
		p = (struct pal_ip_pkt){
			.data = (void *)(long)skb->data,
			.end = (void *)(long)skb->data_end,
		};
		res = ip_parse(&p);
	}
	if (res == PAL_IP_SHORT)
		ip_stat_inc(PAL_IP_STAT_NOT_PARSED);
	if (res == PAL_IP_DEEP)
		return ip_deep_verdict() ? TC_ACT_SHOT : TC_ACT_UNSPEC;
	if (res != PAL_IP_OK)
		return TC_ACT_UNSPEC;
	l2_hw_tag(skb, &p.flags, &p.vlan_id);
	/* TC_ACT_UNSPEC is TCX_NEXT: the observer runs next. */
	verdict = ip_verdict(&p, skb->ifindex, direction, PAL_IP_HOOK_TC, &d) ? TC_ACT_SHOT
									    : TC_ACT_UNSPEC;
	c = trace_on();
	if (c)
		ip_trace(c, &p, skb->ifindex, skb->len, direction, PAL_TRACE_HOOK_TC_BLOCK, verdict,
			 &d);
	return verdict;
}

#endif /* PALISADE_IP_POLICY_BPF_H */
