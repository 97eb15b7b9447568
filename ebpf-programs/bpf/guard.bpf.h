/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * guard.bpf.h: the DHCP guard (records.h, "Neighbours and the DHCP guard").
 * Server-to-client DHCP messages (UDP 67 -> 68, DHCPv6 547 -> 546) and IPv6
 * router advertisements pass guard_check(): a sender whose source MAC or
 * source IP is in pal_guard_allow passes; any other is a rogue sender,
 * counted per sender in pal_guard_sources, flagged in its record (the DHCP
 * worker alerts) and, with PAL_GUARD_DROP, dropped.
 *
 * Only those packets come here (a few per client per lease), so nothing on
 * the common path pays for the guard: its callers test ports or the ICMPv6
 * type they already hold. guard_check() is not inlined: its keys get a stack
 * frame of their own, apart from the observer's (at the 512-byte limit).
 *
 * Included by capture.bpf.h.
 */
#ifndef PALISADE_GUARD_BPF_H
#define PALISADE_GUARD_BPF_H

#include "common.bpf.h"
#include "pkt.bpf.h"

/* What guard_check() is asked about (which pal_guard_source counter). */
#define PAL_GUARD_WHAT_DHCP4 0
#define PAL_GUARD_WHAT_DHCP6 1
#define PAL_GUARD_WHAT_RA 2

/* The allow-list: MACs and IP addresses (value: the entry's index, for operators). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PAL_GUARD_ALLOW_MAX);
	__type(key, struct pal_guard_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_guard_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_guard_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_guard_config SEC(".maps");

/* Rogue senders and what they sent; LRU, so a spoofing flood cannot fill it for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PAL_GUARD_SOURCES);
	__type(key, struct pal_guard_source_key);
	__type(value, struct pal_guard_source);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_guard_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_GUARD_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_guard_stats SEC(".maps");

static __always_inline void guard_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_guard_stats, &slot);

	if (value)
		*value += 1; /* per-CPU slot: programs do not nest on a CPU */
}

/* Counts one message of a rogue sender in pal_guard_sources. */
static __always_inline void guard_count(const struct pal_pkt *p, __u32 what, int dropped)
{
	struct pal_guard_source_key key = {};
	struct pal_guard_source *src, fresh = {};

	__builtin_memcpy(key.mac, p->src_mac, ETH_ALEN);
	key.ip_version = p->ip_version;
	__builtin_memcpy(key.addr, p->saddr, sizeof(key.addr));
	src = bpf_map_lookup_elem(&pal_guard_sources, &key);
	if (!src) {
		fresh.first_ns = p->now_ns;
		/* Another CPU may insert it meanwhile: then count into its entry. */
		if (bpf_map_update_elem(&pal_guard_sources, &key, &fresh, BPF_NOEXIST) < 0 &&
		    !bpf_map_lookup_elem(&pal_guard_sources, &key)) {
			guard_stat_inc(PAL_GUARD_STAT_SOURCES_FULL);
			return;
		}
		src = bpf_map_lookup_elem(&pal_guard_sources, &key);
		if (!src) {
			guard_stat_inc(PAL_GUARD_STAT_SOURCES_FULL);
			return;
		}
	}
	if (what == PAL_GUARD_WHAT_DHCP4)
		__sync_fetch_and_add(&src->dhcp4, 1);
	else if (what == PAL_GUARD_WHAT_DHCP6)
		__sync_fetch_and_add(&src->dhcp6, 1);
	else
		__sync_fetch_and_add(&src->ra, 1);
	if (dropped)
		__sync_fetch_and_add(&src->dropped, 1);
	src->last_ns = p->now_ns;
}

/*
 * The guard's verdict on a server message or RA from p's sender: 0 (guard
 * off, or an allowed sender), PAL_FLAG_GUARD_ROGUE, or PAL_FLAG_GUARD_ROGUE |
 * PAL_FLAG_GUARD_DROPPED (the caller drops the packet after its record).
 */
static __attribute__((noinline)) int guard_check(const struct pal_pkt *p, __u32 what)
{
	struct pal_guard_key key = {};
	struct pal_guard_config *cfg;
	__u32 zero = 0;
	int dropped;

	cfg = bpf_map_lookup_elem(&pal_guard_config, &zero);
	if (!p || !cfg || cfg->mode == PAL_GUARD_OFF)
		return 0;
	guard_stat_inc(PAL_GUARD_STAT_CHECKED);
	key.type = PAL_GUARD_KEY_MAC;
	__builtin_memcpy(key.addr, p->src_mac, ETH_ALEN);
	if (bpf_map_lookup_elem(&pal_guard_allow, &key))
		goto allowed;
	__builtin_memset(key.addr, 0, sizeof(key.addr));
	key.type = p->ip_version == 4 ? PAL_GUARD_KEY_IPV4 : PAL_GUARD_KEY_IPV6;
	__builtin_memcpy(key.addr, p->saddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&pal_guard_allow, &key))
		goto allowed;

	dropped = cfg->mode == PAL_GUARD_DROP;
	guard_stat_inc(PAL_GUARD_STAT_ROGUE);
	if (dropped)
		guard_stat_inc(PAL_GUARD_STAT_DROPPED);
	guard_count(p, what, dropped);
	return dropped ? PAL_FLAG_GUARD_ROGUE | PAL_FLAG_GUARD_DROPPED : PAL_FLAG_GUARD_ROGUE;
allowed:
	guard_stat_inc(PAL_GUARD_STAT_ALLOWED);
	return 0;
}

#endif /* PALISADE_GUARD_BPF_H */
