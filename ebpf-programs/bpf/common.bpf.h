/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * common.bpf.h: what every part of the object shares: the UAPI and libbpf
 * headers, records.h (the record ABI), the four ring buffers (one per
 * worker) and pal_stats, the per-ring counters; ring_output(), which writes
 * a record with batched wake-ups and counts the outcome; rule_hit(), the
 * per-rule hit counter of both policies.
 *
 * Included by palisade.bpf.c (the object's one translation unit) and by
 * every other header, directly or through l2.bpf.h.
 */
#ifndef PALISADE_COMMON_BPF_H
#define PALISADE_COMMON_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "records.h"

#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

/* Bytes of each ring buffer (a power of two, a multiple of the page size). */
#define PAL_RING_BYTES (8u << 20)

/* IPv4 wire bits, for both parsers (pkt.bpf.h, ip_policy.bpf.h). */
#define PAL_IP_FRAG_OFFSET 0x1fff /* fragment offset bits of iphdr.frag_off */
#define PAL_IP_MORE_FRAGS 0x2000  /* MF bit of iphdr.frag_off */

/*
 * Ring wake-up threshold: a record only wakes the consumer when at least
 * this many bytes are queued; otherwise the consumer's timer backstop picks
 * it up. A wake-up per record costs ~60% of throughput (TOOLCHAIN.md).
 * The loader may override it (aya EbpfLoader::override_global).
 */
volatile const __u32 pal_wakeup_bytes = 65536;

/*
 * One ring buffer per worker. Pinned by name so that a restarted supervisor
 * reuses them (and workers keep their mmaps) instead of creating new ones.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PAL_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rb_dns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PAL_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rb_dhcp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PAL_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rb_tls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PAL_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rb_flow SEC(".maps");

/* Counters, key = group * PAL_STAT_COUNT + slot (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_stats SEC(".maps");

static __always_inline void stat_inc(__u32 group, __u32 slot)
{
	__u32 key = group * PAL_STAT_COUNT + slot;
	__u64 *value = bpf_map_lookup_elem(&pal_stats, &key);

	/* Per-CPU slot, and TC programs do not nest: no atomic needed. */
	if (value)
		*value += 1;
}

/* Slot 0: the captures switched off (records.h struct pal_capture_config). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_capture_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_capture_config SEC(".maps");

/*
 * Whether ring `group`'s capture is switched off; counts the record not made
 * when it is. Asked only where a record is about to be made (an array
 * lookup, which the verifier inlines), so packets that make no record pay
 * nothing for the switches.
 */
static __always_inline int capture_off(__u32 group)
{
	__u32 zero = 0;
	struct pal_capture_config *cfg = bpf_map_lookup_elem(&pal_capture_config, &zero);

	if (!cfg || !(cfg->off & (1u << group)))
		return 0;
	stat_inc(group, PAL_STAT_CAPTURE_OFF);
	return 1;
}

/*
 * Writes `size` bytes of `data` to `ring` and counts the outcome in the
 * ring's stats group. The consumer is woken only once pal_wakeup_bytes are
 * queued (see pal_wakeup_bytes).
 */
static __always_inline void ring_output(void *ring, __u32 group, void *data, __u64 size,
					int truncated)
{
	/*
	 * Batched wake-ups: wake the consumer only for the record that makes
	 * the backlog cross pal_wakeup_bytes (8 bytes: the ring's record
	 * header). Waking for every record while the backlog stays above the
	 * threshold is a wake-up per event (measured 0.25x, docs/PERFORMANCE.md);
	 * below the threshold the consumer's poll timer drains.
	 */
	__u64 avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 flags = avail < pal_wakeup_bytes && avail + size + 8 >= pal_wakeup_bytes
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_output(ring, data, size, flags) < 0) {
		stat_inc(group, PAL_STAT_RING_FULL);
		return;
	}
	stat_inc(group, PAL_STAT_RECORDS);
	if (truncated)
		stat_inc(group, PAL_STAT_TRUNCATED);
}

/*
 * Counts one packet decided by rule_id in a per-CPU hit map (DNS and IP
 * policy). Returns 0, or -1 when the map had no room for a new id.
 */
static __always_inline int rule_hit(void *hits_map, __u32 rule_id)
{
	__u64 one = 1, *hits = bpf_map_lookup_elem(hits_map, &rule_id);

	if (hits) {
		*hits += 1; /* per-CPU value: programs do not nest on a CPU */
		return 0;
	}
	if (bpf_map_update_elem(hits_map, &rule_id, &one, BPF_NOEXIST) == 0)
		return 0;
	/* Another CPU inserted it meanwhile, or the insert failed. */
	hits = bpf_map_lookup_elem(hits_map, &rule_id);
	if (!hits)
		return -1;
	*hits += 1;
	return 0;
}

#endif /* PALISADE_COMMON_BPF_H */
