/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * flow_block.bpf.h: connections the TLS policy cut (records.h, "Flow
 * blocks"). The supervisor writes pal_flow_block after checking the TLS
 * worker's request and keeps pal_flow_block_active[0] equal to its entry
 * count: with no block, a packet costs one array load (the verifier inlines
 * array lookups); with blocks, one hash lookup by the flow key.
 *
 * Included by palisade.bpf.c.
 */
#ifndef PALISADE_FLOW_BLOCK_BPF_H
#define PALISADE_FLOW_BLOCK_BPF_H

#include "flows.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PAL_FLOW_BLOCK_MAX);
	__type(key, struct pal_flow_key);
	__type(value, struct pal_flow_block);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_block SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_block_active SEC(".maps");

/*
 * Whether the packet's flow is blocked (until the entry's deadline); counts
 * the packet in the entry and in PAL_FLOW_STAT_BLOCKED when it is. Not
 * inlined: the key's 40 bytes get a frame of their own, and the common case
 * (no block at all) is the inline test in flow_blocked().
 */
static __attribute__((noinline)) int flow_block_lookup(const struct pal_pkt *p)
{
	struct pal_flow_key key __attribute__((aligned(8))) = {};
	struct pal_flow_block *b;

	if (!p)
		return 0;
	flow_key_fill(&key, p);
	b = bpf_map_lookup_elem(&pal_flow_block, &key);
	if (!b || p->now_ns >= b->expires_ns)
		return 0;
	__sync_fetch_and_add(&b->packets, 1);
	flow_stat_inc(PAL_FLOW_STAT_BLOCKED);
	return 1;
}

static __always_inline int flow_blocked(const struct pal_pkt *p)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&pal_flow_block_active, &zero);

	if (!active || !*active)
		return 0;
	if (p->l4_proto != IPPROTO_TCP && p->l4_proto != IPPROTO_UDP)
		return 0;
	return flow_block_lookup(p);
}

#endif /* PALISADE_FLOW_BLOCK_BPF_H */
