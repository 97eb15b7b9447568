/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * trace.bpf.h: packet tracing (`palisade trace`). While pal_trace_config[0]
 * holds a deadline in the future, every program run on a packet that
 * matches its filter (host, protocol, port) writes one struct
 * pal_trace_event to rb_trace: hook, interface, direction, verdict, what
 * decided it and, for the observer, which rings got a record and which did
 * not (ring full, capture off). The supervisor drains rb_trace while a trace
 * runs and clears the deadline when it ends; a deadline that passes ends it
 * too, so a trace never outlives its supervisor by more than its duration.
 *
 * Cost when no trace runs: trace_on(), one array lookup (inlined by the
 * verifier) and one load per program run. Only a packet that matches pays
 * for the rest.
 *
 * The observer learns what happened to the packet's records without
 * touching the record paths: it copies its CPU's ring counters (pal_stats:
 * records written, ring full, capture off per ring) before the packet and
 * compares after. TC programs do not nest on a CPU, so the difference is
 * this packet's.
 *
 * Included by ip_policy.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_TRACE_BPF_H
#define PALISADE_TRACE_BPF_H

#include "common.bpf.h"
#include "pkt.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1u << 20); /* palisade_abi::TRACE_RING_BYTES */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rb_trace SEC(".maps");

/* Slot 0: the filter and deadline (records.h struct pal_trace_config). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_trace_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_trace_config SEC(".maps");

/* Trace counters, key = PAL_TRACE_STAT_* (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_TRACE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_trace_stats SEC(".maps");

/*
 * The ring counters of one CPU before a traced packet: [ring][0 records
 * written, 1 ring full, 2 capture off], and the flow table's inserts that
 * failed; then what the DNS policy decided about it (trace_dns()) and
 * which TLS rule cut its connection (trace_tls_cut(), flows.bpf.h).
 */
struct pal_trace_snap {
	__u64 n[PAL_RING_COUNT][3];
	__u64 flow_map_full;
	__u32 dns_rule_id;
	__u32 cut_rule_id; /* the TLS rule that cut the packet's connection */
	__u8 dns_decided;
	__u8 dns_rewritten;
};

/* Private to one program run, like pal_scratch: not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_trace_snap);
} pal_trace_snap SEC(".maps");

/* The trace's filter while one runs, else NULL: all a program pays when none does. */
static __always_inline const struct pal_trace_config *trace_on(void)
{
	__u32 zero = 0;
	const struct pal_trace_config *c = bpf_map_lookup_elem(&pal_trace_config, &zero);

	return c && c->until_ns ? c : 0;
}

/*
 * Whether a packet passes the filter: its IP version, protocol, ports and
 * addresses (network order, 4 or 16 bytes as ip_version says).
 */
static __always_inline int trace_match(const struct pal_trace_config *c, __u8 ip_version,
				       __u8 l4_proto, __u16 sport, __u16 dport, const void *src,
				       const void *dst, __u64 now)
{
	if (now >= c->until_ns)
		return 0;
	if (c->l4_proto && c->l4_proto != l4_proto)
		return 0;
	if (c->port && c->port != sport && c->port != dport)
		return 0;
	if (!c->addr_version)
		return 1;
	if (c->addr_version != ip_version)
		return 0;
	if (ip_version == 4)
		return __builtin_memcmp(c->addr, src, 4) == 0 || __builtin_memcmp(c->addr, dst, 4) == 0;
	return __builtin_memcmp(c->addr, src, 16) == 0 || __builtin_memcmp(c->addr, dst, 16) == 0;
}

static __always_inline void trace_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_trace_stats, &slot);

	if (value)
		*value += 1;
}

/*
 * Room for an event in rb_trace, zeroed (events are built in place: the
 * programs' stacks have no room for one); NULL, counted, when full. The
 * caller fills it and hands it to trace_submit().
 */
static __always_inline struct pal_trace_event *trace_reserve(void)
{
	struct pal_trace_event *ev = bpf_ringbuf_reserve(&rb_trace, sizeof(*ev), 0);

	if (!ev) {
		trace_stat_inc(PAL_TRACE_STAT_LOST);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	return ev;
}

static __always_inline void trace_submit(struct pal_trace_event *ev)
{
	/* No wake-up: the supervisor reads on its own tick. */
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	trace_stat_inc(PAL_TRACE_STAT_EVENTS);
}

/* pal_stats of this CPU: ring `group`'s counter `slot`, 0 if unreadable. */
static __always_inline __u64 trace_ring_stat(__u32 group, __u32 slot)
{
	__u32 key = group * PAL_STAT_COUNT + slot;
	__u64 *value = bpf_map_lookup_elem(&pal_stats, &key);

	return value ? *value : 0;
}

/*
 * Observer, a packet that may be traced: the filter on its parsed headers;
 * when it matches, its CPU's ring counters are copied. Returns whether the
 * packet is traced (the observer then calls trace_observed()).
 */
static __attribute__((noinline)) int trace_begin(const struct pal_pkt *p)
{
	const struct pal_trace_config *c = trace_on();
	struct pal_trace_snap *snap;
	__u32 zero = 0;

	if (!c || !trace_match(c, p->ip_version, p->l4_proto, p->sport, p->dport, p->saddr,
			       p->daddr, p->now_ns))
		return 0;
	snap = bpf_map_lookup_elem(&pal_trace_snap, &zero);
	if (!snap)
		return 0;
	for (__u32 r = 0; r < PAL_RING_COUNT; r++) {
		snap->n[r][0] = trace_ring_stat(r, PAL_STAT_RECORDS);
		snap->n[r][1] = trace_ring_stat(r, PAL_STAT_RING_FULL);
		snap->n[r][2] = trace_ring_stat(r, PAL_STAT_CAPTURE_OFF);
	}
	snap->flow_map_full = trace_ring_stat(PAL_RING_FLOW, PAL_STAT_MAP_FULL);
	snap->dns_decided = 0;
	return 1;
}

/*
 * Observer, a traced DNS message a rule decided about (allowed, blocked, or
 * an answer rewritten in place, which keeps its verdict): for its event.
 */
static __attribute__((noinline)) void trace_dns(__u32 rule_id, int rewritten)
{
	struct pal_trace_snap *snap;
	__u32 zero = 0;

	snap = bpf_map_lookup_elem(&pal_trace_snap, &zero);
	if (!snap)
		return;
	snap->dns_decided = 1;
	snap->dns_rule_id = rule_id;
	snap->dns_rewritten = rewritten;
}

/*
 * Observer, after a traced packet: its event, with the verdict, what made
 * it, and what became of its records (the counters that moved since
 * trace_begin()). Only the TLS cut, the DNS policy (port 53) and the DHCP
 * guard (DHCP, RAs) change an observer's verdict, so the verdict and the
 * packet tell which one did; the DNS policy says which rule (trace_dns()),
 * also when it let the message pass or rewrote an answer in place.
 */
static __attribute__((noinline)) void trace_observed(struct __sk_buff *skb,
						     struct pal_pkt *p, int verdict)
{
	struct pal_trace_event *ev;
	struct pal_trace_snap *snap;
	__u32 zero = 0;

	snap = bpf_map_lookup_elem(&pal_trace_snap, &zero);
	if (!snap)
		return;
	ev = trace_reserve();
	if (!ev)
		return;
	for (__u32 r = 0; r < PAL_RING_COUNT; r++) {
		if (trace_ring_stat(r, PAL_STAT_RECORDS) != snap->n[r][0])
			ev->rings_sent |= 1u << r;
		if (trace_ring_stat(r, PAL_STAT_RING_FULL) != snap->n[r][1])
			ev->rings_full |= 1u << r;
		if (trace_ring_stat(r, PAL_STAT_CAPTURE_OFF) != snap->n[r][2])
			ev->rings_off |= 1u << r;
	}
	if (trace_ring_stat(PAL_RING_FLOW, PAL_STAT_MAP_FULL) != snap->flow_map_full)
		ev->flags |= PAL_TRACE_F_FLOW_FULL;
	if (p->flags & PAL_FLAG_VLAN)
		ev->flags |= PAL_TRACE_F_VLAN;
	ev->ts_boot_ns = pkt_time(p);
	ev->flow_start_ns = p->flow_start_ns;
	ev->ifindex = skb->ifindex;
	ev->pkt_len = skb->len;
	ev->verdict = verdict;
	__builtin_memcpy(ev->src_addr, p->saddr, sizeof(ev->src_addr));
	__builtin_memcpy(ev->dst_addr, p->daddr, sizeof(ev->dst_addr));
	ev->src_port = p->sport;
	ev->dst_port = p->dport;
	ev->vlan_id = p->vlan_id;
	ev->hook = PAL_TRACE_HOOK_OBSERVER;
	ev->direction = p->direction;
	ev->ip_version = p->ip_version;
	ev->l4_proto = p->l4_proto;
	if (p->flow_blocked) {
		ev->decided_by = PAL_TRACE_BY_TLS_CUT;
		ev->rule_id = snap->cut_rule_id;
	} else if (snap->dns_decided) {
		ev->decided_by = PAL_TRACE_BY_DNS_POLICY;
		ev->rule_id = snap->dns_rule_id;
		if (snap->dns_rewritten && verdict == TC_ACT_UNSPEC)
			ev->flags |= PAL_TRACE_F_REWRITTEN;
	} else if (verdict != TC_ACT_UNSPEC)
		ev->decided_by = p->sport == 53 || p->dport == 53 ? PAL_TRACE_BY_DNS_POLICY
								  : PAL_TRACE_BY_DHCP_GUARD;
	trace_submit(ev);
}

#endif /* PALISADE_TRACE_BPF_H */
