/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * flow_block.bpf.h: connections the TLS policy cut (records.h, "Flow
 * blocks"). The supervisor writes pal_flow_block after checking the TLS
 * worker's request and sets pal_flow_block_active[0] to a new generation
 * with every change (0: no block at all). The flow update asks
 * flow_block_check() once per flow and generation and keeps the answer in
 * the flow's entry: a packet costs one inlined array load and a compare.
 *
 * Included by flows.bpf.h.
 */
#ifndef PALISADE_FLOW_BLOCK_BPF_H
#define PALISADE_FLOW_BLOCK_BPF_H

#include "common.bpf.h"

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

/* The generation of pal_flow_block: 0 while it is empty. */
static __always_inline __u32 flow_block_gen(void)
{
	__u32 zero = 0;
	__u32 *gen = bpf_map_lookup_elem(&pal_flow_block_active, &zero);

	return gen ? *gen : 0;
}

/* Whether the flow of `key` is blocked now (looked up; the caller caches it). */
static __always_inline __u8 flow_block_check(const struct pal_flow_key *key, __u64 now_ns)
{
	struct pal_flow_block *b = bpf_map_lookup_elem(&pal_flow_block, key);

	return b && now_ns < b->expires_ns;
}

#endif /* PALISADE_FLOW_BLOCK_BPF_H */
