/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * flows.bpf.h: the flow table of the TC observer. Every TCP, UDP, ICMP and
 * ICMPv6 packet is accounted in pal_flows (PAL_FLOW_SHARDS hash maps keyed
 * by the direction-normalized tuple, records.h) by flow_update(); a flow's
 * first packet makes a PAL_KIND_FLOW_START record to rb_flow. A TCP flow is
 * marked closed by a FIN from both sides or a RST; the sweeper
 * (flow_sweeper.bpf.h) reports its end, and that of idle flows, and
 * periodic updates of long ones. Nothing is evicted silently: a full shard
 * refuses new flows (counted, PAL_STAT_MAP_FULL) and the sweeper ends idle
 * flows early, with a record, when a shard runs full.
 * emit_flow() builds a flow record from the table entry alone, so packets
 * and the sweeper make the same records.
 *
 * Included by flow_sweeper.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_FLOWS_BPF_H
#define PALISADE_FLOWS_BPF_H

#include <linux/errno.h>

#include "flow_block.bpf.h"
#include "record.bpf.h"
#include "trace.bpf.h"

/* pal_flow_value.fin_mask bits. */
#define PAL_FIN_CLIENT 0x01
#define PAL_FIN_SERVER 0x02
#define PAL_FIN_BOTH (PAL_FIN_CLIENT | PAL_FIN_SERVER)

/*
 * Flow table: PAL_FLOW_SHARDS hash maps, keyed by the direction-normalized
 * tuple, that the supervisor creates (sized from its memory budget) and puts
 * in the slots before any program is attached. The inner map below is only
 * the template the outer map is created with: type, key and value sizes and
 * map_flags must match (max_entries of a hash may differ). An empty slot
 * means no table: the packet is counted in PAL_STAT_MAP_FULL.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PAL_FLOW_SHARDS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	/* Sizes rather than __type(): see pal_dns_policy (dns_policy.bpf.h). */
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 1);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__uint(key_size, sizeof(struct pal_flow_key));
		__uint(value_size, sizeof(struct pal_flow_value));
	});
} pal_flows SEC(".maps");

_Static_assert((PAL_FLOW_SHARDS & (PAL_FLOW_SHARDS - 1)) == 0, "shards: a power of two");
_Static_assert(sizeof(struct pal_flow_key) == 40, "pal_flow_shard() folds ten words");

/*
 * The shard of a key: its ten 32-bit words folded by XOR, multiplied by the
 * golden-ratio constant, top bits. Mirrored by palisade_abi::flow_shard for
 * the supervisor's seeding (same words, native byte order, same constant).
 */
static __always_inline __u32 pal_flow_shard(const struct pal_flow_key *key)
{
	const __u32 *w = (const __u32 *)key;
	__u32 h = w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5] ^ w[6] ^ w[7] ^ w[8] ^ w[9];

	return (h * 0x9e3779b9U) >> (32 - __builtin_ctz(PAL_FLOW_SHARDS));
}

/* The hash map that holds `key`, or NULL if the supervisor has not filled its slot. */
static __always_inline void *flow_table(const struct pal_flow_key *key)
{
	__u32 shard = pal_flow_shard(key);

	return bpf_map_lookup_elem(&pal_flows, &shard);
}

/* Flow counters, key = PAL_FLOW_STAT_* (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_FLOW_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_stats SEC(".maps");

/* Compares two addresses as 128-bit big-endian numbers: -1, 0 or 1. */
static __always_inline int addr_cmp(const __u64 *a, const __u64 *b)
{
	__u64 a0 = bpf_be64_to_cpu(a[0]), b0 = bpf_be64_to_cpu(b[0]);
	__u64 a1 = bpf_be64_to_cpu(a[1]), b1 = bpf_be64_to_cpu(b[1]);

	if (a0 != b0)
		return a0 < b0 ? -1 : 1;
	if (a1 != b1)
		return a1 < b1 ? -1 : 1;
	return 0;
}

/*
 * Fills the normalized key (lower (addr, port) endpoint first) and returns 1
 * when this packet's sender is that lower endpoint. A packet from an
 * endpoint to itself counts as sent by the lower one.
 */
static __always_inline int flow_key_fill(struct pal_flow_key *key, const struct pal_pkt *p)
{
	int cmp = addr_cmp(p->saddr, p->daddr);
	int sender_is_lo = cmp < 0 || (cmp == 0 && p->sport <= p->dport);

	if (sender_is_lo) {
		__builtin_memcpy(key->addr_lo, p->saddr, sizeof(key->addr_lo));
		__builtin_memcpy(key->addr_hi, p->daddr, sizeof(key->addr_hi));
		key->port_lo = p->sport;
		key->port_hi = p->dport;
	} else {
		__builtin_memcpy(key->addr_lo, p->daddr, sizeof(key->addr_lo));
		__builtin_memcpy(key->addr_hi, p->saddr, sizeof(key->addr_hi));
		key->port_lo = p->dport;
		key->port_hi = p->sport;
	}
	key->l4_proto = p->l4_proto;
	key->ip_version = p->ip_version;
	return sender_is_lo;
}

static __always_inline void flow_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_flow_stats, &slot);

	/* Per-CPU slot; TC programs and the sweeper (a softirq) do not nest on a CPU. */
	if (value)
		*value += 1;
}

/* Server ports of the flows the flow worker alerts on at their start (encrypted DNS). */
#define PAL_PORT_HTTPS 443
#define PAL_PORT_DOT 853

/*
 * Whether a flow gets a start record: every flow with [flow] start_events,
 * else only those the flow worker raises an alert on when they start (TCP
 * or UDP to port 443 or 853: DNS over TLS, or HTTPS and DoQ to a known
 * encrypted-DNS resolver; worker-flow). The others' start record would be
 * read and thrown away: on a gateway most flows are short and the record
 * costs the ring write here and a read in the worker.
 */
static __always_inline int flow_start_wanted(const struct pal_flow_key *key,
					     const struct pal_flow_value *val)
{
	__u32 zero = 0;
	struct pal_capture_config *cfg = bpf_map_lookup_elem(&pal_capture_config, &zero);
	__u16 server_port;

	if (!cfg || cfg->flow_starts == PAL_FLOW_STARTS_ALL)
		return 1;
	if (key->l4_proto != IPPROTO_TCP && key->l4_proto != IPPROTO_UDP)
		return 0;
	server_port = val->client_is_lo ? key->port_hi : key->port_lo;
	return server_port == PAL_PORT_HTTPS || server_port == PAL_PORT_DOT;
}

/*
 * Emits a flow record of `kind` made from the table entry alone, so that
 * packets and the sweeper make the same records: header oriented client ->
 * server, with the flow's first interface, direction and VLAN. A start
 * record only when flow_start_wanted().
 */
static __always_inline void emit_flow(const struct pal_flow_key *key,
				      const struct pal_flow_value *val, __u16 kind, __u8 reason,
				      __u64 now_ns)
{
	struct pal_scratch *s;
	struct pal_flow_record *rec;
	struct pal_record_hdr *hdr;

	if (kind == PAL_KIND_FLOW_START && !flow_start_wanted(key, val))
		return;
	s = scratch_get();
	/* Switched off, the table is kept (flow ids, TLS following, cuts), not reported. */
	if (!s || capture_off(PAL_RING_FLOW))
		return;
	hdr = &s->hdr;
	rec = (struct pal_flow_record *)s->payload;

	hdr->magic = PAL_RECORD_MAGIC;
	hdr->abi_version = PAL_ABI_VERSION;
	hdr->kind = kind;
	hdr->len = sizeof(*hdr) + sizeof(*rec);
	hdr->ifindex = val->ifindex;
	hdr->ts_boot_ns = now_ns;
	hdr->direction = val->direction;
	hdr->ip_version = key->ip_version;
	hdr->l4_proto = key->l4_proto;
	hdr->flags = (val->flags & PAL_FLOW_F_VLAN) ? PAL_FLAG_VLAN : 0;
	hdr->vlan_id = (val->flags & PAL_FLOW_F_VLAN) ? val->vlan_id : 0;
	if (val->client_is_lo) {
		__builtin_memcpy(hdr->src_addr, key->addr_lo, sizeof(hdr->src_addr));
		__builtin_memcpy(hdr->dst_addr, key->addr_hi, sizeof(hdr->dst_addr));
		hdr->src_port = key->port_lo;
		hdr->dst_port = key->port_hi;
	} else {
		__builtin_memcpy(hdr->src_addr, key->addr_hi, sizeof(hdr->src_addr));
		__builtin_memcpy(hdr->dst_addr, key->addr_lo, sizeof(hdr->dst_addr));
		hdr->src_port = key->port_hi;
		hdr->dst_port = key->port_lo;
	}
	__builtin_memcpy(hdr->src_mac, val->client_mac, ETH_ALEN);
	__builtin_memcpy(hdr->dst_mac, val->server_mac, ETH_ALEN);
	hdr->_pad0 = 0;
	hdr->payload_len = sizeof(*rec);
	hdr->orig_payload_len = sizeof(*rec);
	hdr->flow_start_ns = val->first_seen_ns;

	rec->first_seen_ns = val->first_seen_ns;
	rec->last_seen_ns = val->last_seen_ns;
	rec->pkts_toserver = val->pkts[0];
	rec->pkts_toclient = val->pkts[1];
	rec->bytes_toserver = val->bytes[0];
	rec->bytes_toclient = val->bytes[1];
	rec->payload_bytes_toserver = val->payload_bytes[0];
	rec->payload_bytes_toclient = val->payload_bytes[1];
	rec->tcp_flags_toserver = val->tcp_flags[0];
	rec->tcp_flags_toclient = val->tcp_flags[1];
	rec->end_reason = reason;
	rec->flags = val->flags & PAL_FLOW_F_SEEDED;
	rec->icmp_type = val->icmp_type;
	rec->icmp_code = val->icmp_code;
	__builtin_memset(rec->_pad, 0, sizeof(rec->_pad));

	ring_output(&rb_flow, PAL_RING_FLOW, s, sizeof(*hdr) + sizeof(*rec), 0);
}

/*
 * tcp_flags[2], client_is_lo and fin_mask share one aligned 32-bit word of
 * pal_flow_value, so one atomic OR updates them for all CPUs at once and
 * tells exactly one CPU that it completed the FIN pair.
 */
union pal_flag_word {
	__u8 bytes[4]; /* tcp_flags[0], tcp_flags[1], client_is_lo, fin_mask */
	__u32 word;
};
#define PAL_FLAG_WORD_FIN 3 /* index of fin_mask in pal_flag_word.bytes */

_Static_assert(__builtin_offsetof(struct pal_flow_value, tcp_flags) % 4 == 0,
	       "tcp_flags must start an aligned 32-bit word");
_Static_assert(__builtin_offsetof(struct pal_flow_value, fin_mask) ==
		       __builtin_offsetof(struct pal_flow_value, tcp_flags) + PAL_FLAG_WORD_FIN,
	       "tcp_flags, client_is_lo, fin_mask must share one 32-bit word");

/*
 * Whether this packet may create a flow entry. TCP teardown packets (RST, or
 * a bare ACK/FIN without SYN or payload) of a flow we do not know are left
 * alone: otherwise the final ACK after the FIN pair, or a late RST, would
 * start a phantom flow right after its real one ended.
 */
static __always_inline int flow_may_start(const struct pal_pkt *p)
{
	if (p->l4_proto != IPPROTO_TCP)
		return 1;
	if (p->tcp_flags & PAL_TCP_RST)
		return 0;
	return (p->tcp_flags & PAL_TCP_SYN) || p->pay_len > 0;
}

/*
 * A seeded flow (made from conntrack by the supervisor) has no interface or
 * MACs until its first packet: take them from that packet, oriented by the
 * flow's client. Plain stores: concurrent first packets write equal values.
 */
static __always_inline void flow_adopt_seeded(struct __sk_buff *skb, const struct pal_pkt *p,
					      struct pal_flow_value *val, int from_client)
{
	val->ifindex = skb->ifindex;
	val->direction = p->direction;
	if (p->flags & PAL_FLAG_VLAN) {
		val->vlan_id = p->vlan_id;
		val->flags |= PAL_FLOW_F_VLAN;
	}
	if (from_client) {
		__builtin_memcpy(val->client_mac, p->src_mac, ETH_ALEN);
		__builtin_memcpy(val->server_mac, p->dst_mac, ETH_ALEN);
	} else {
		__builtin_memcpy(val->client_mac, p->dst_mac, ETH_ALEN);
		__builtin_memcpy(val->server_mac, p->src_mac, ETH_ALEN);
	}
}

/* Whether a TCP flow has closed: FIN from both sides, or a RST either way. */
static __always_inline int flow_closed(const struct pal_flow_value *val)
{
	return (val->fin_mask & PAL_FIN_BOTH) == PAL_FIN_BOTH ||
	       ((val->tcp_flags[0] | val->tcp_flags[1]) & PAL_TCP_RST);
}

/* The end reason of a closed TCP flow (RST wins: it is what ended it hard). */
static __always_inline __u8 flow_close_reason(const struct pal_flow_value *val)
{
	return ((val->tcp_flags[0] | val->tcp_flags[1]) & PAL_TCP_RST) ? PAL_FLOW_REASON_RST
									 : PAL_FLOW_REASON_FIN;
}

/* Ends a flow now: deletes it from `table` and, if this delete won, reports it. */
static __always_inline void flow_end(void *table, const struct pal_flow_key *key,
				     const struct pal_flow_value *val, __u8 reason, __u64 now_ns)
{
	/*
	 * Copy before deleting: a deleted LRU node goes straight back to the
	 * free list and another CPU may reuse it. Only the caller whose delete
	 * succeeds reports the end, so there is one end record per flow.
	 */
	struct pal_flow_value last = *val;

	if (bpf_map_delete_elem(table, key) != 0)
		return;
	flow_stat_inc(reason == PAL_FLOW_REASON_RST	    ? PAL_FLOW_STAT_ENDED_RST
		      : reason == PAL_FLOW_REASON_FIN	    ? PAL_FLOW_STAT_ENDED_FIN
		      : reason == PAL_FLOW_REASON_EVICTED ? PAL_FLOW_STAT_ENDED_EVICTED
		      : reason == PAL_FLOW_REASON_SHUTDOWN ? PAL_FLOW_STAT_ENDED_SHUTDOWN
							  : PAL_FLOW_STAT_ENDED_TIMEOUT);
	emit_flow(key, &last, PAL_KIND_FLOW_END, reason, now_ns);
}

/*
 * Creates the entry of a flow whose first packet is `p` and reports its
 * start. Returns the entry when another CPU created it meanwhile (the
 * packet is then accounted as an update), NULL otherwise (created, or the
 * table refused it: *first_seen says which, 0 when refused).
 */
static __always_inline struct pal_flow_value *flow_insert(void *table, struct __sk_buff *skb,
							   struct pal_pkt *p,
							   const struct pal_flow_key *key,
							   int sender_is_lo, __u64 *first_seen)
{
	struct pal_flow_value fresh = {};
	long err;

	/* A flow's start is exact: it is its identity (flow_start_ns) and its start record's time. */
	fresh.first_seen_ns = pkt_time(p);
	fresh.last_seen_ns = p->now_ns;
	fresh.last_report_ns = p->now_ns;
	fresh.pkts[0] = p->segs;
	fresh.bytes[0] = p->frame_len;
	fresh.payload_bytes[0] = p->flow_pay;
	fresh.tcp_flags[0] = p->tcp_flags;
	fresh.client_is_lo = sender_is_lo;
	fresh.fin_mask = (p->tcp_flags & PAL_TCP_FIN) ? PAL_FIN_CLIENT : 0;
	fresh.icmp_type = p->icmp_type;
	fresh.icmp_code = p->icmp_code;
	flow_adopt_seeded(skb, p, &fresh, 1);

	err = bpf_map_update_elem(table, key, &fresh, BPF_NOEXIST);
	if (err == 0) {
		*first_seen = p->now_ns;
		flow_stat_inc(PAL_FLOW_STAT_CREATED);
		emit_flow(key, &fresh, PAL_KIND_FLOW_START, PAL_FLOW_REASON_NONE, p->now_ns);
		return NULL;
	}
	if (err != -EEXIST) {
		/* -E2BIG: the shard is full (the sweeper makes room, see emergency). */
		stat_inc(PAL_RING_FLOW, PAL_STAT_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(table, key);
}

/*
 * Accounts one packet. TCP flows are not ended here: a FIN from both sides
 * or a RST marks them closed, they keep counting what follows (the last
 * ACKs, retransmissions, a second RST), and the sweeper reports them
 * PAL_FLOW_CLOSE_LINGER_NS after their last packet. A new SYN on a closed
 * flow (port reuse) ends the old flow at once and starts a new one.
 *
 * Returns the flow's first_seen_ns, its identity with the tuple, which
 * every record made for this packet carries (EVE flow_id); 0 when the
 * packet has no flow entry. Sets p->tls_follow from the entry (the one
 * byte the TLS capture reads for a packet of a connection it does not
 * follow, tls_capture.bpf.h).
 *
 * Not inlined: its locals (key, a fresh value) get a frame of their own
 * instead of adding to the one pal_dns_udp() stacks on.
 */
static __attribute__((noinline)) __u64 flow_update(struct __sk_buff *skb, struct pal_pkt *p)
{
	/* Aligned: pal_flow_shard() reads it as 32-bit words (stack reads must be aligned). */
	struct pal_flow_key key __attribute__((aligned(8))) = {};
	struct pal_flow_value *val;
	union pal_flag_word set = {};
	int sender_is_lo, to_client;
	__u64 first_seen = 0;
	void *table;
	__u32 gen;

	if (p->l4_proto != IPPROTO_TCP && p->l4_proto != IPPROTO_UDP &&
	    p->l4_proto != IPPROTO_ICMP && p->l4_proto != IPPROTO_ICMPV6)
		return 0;
	sender_is_lo = flow_key_fill(&key, p);
	table = flow_table(&key);
	if (!table) {
		stat_inc(PAL_RING_FLOW, PAL_STAT_MAP_FULL);
		return 0;
	}

	/*
	 * Look up before inserting: the common case (a known flow) then costs
	 * one lookup, and an insert only happens for a new flow.
	 */
	val = bpf_map_lookup_elem(table, &key);
	if (val && p->l4_proto == IPPROTO_TCP &&
	    (p->tcp_flags & (PAL_TCP_SYN | PAL_TCP_ACK)) == PAL_TCP_SYN && flow_closed(val)) {
		flow_end(table, &key, val, flow_close_reason(val), pkt_time(p));
		val = NULL;
	}
	if (!val) {
		if (!flow_may_start(p))
			return 0;
		val = flow_insert(table, skb, p, &key, sender_is_lo, &first_seen);
		if (!val)
			return first_seen;
	}

	to_client = sender_is_lo != val->client_is_lo;
	if (val->ifindex == 0)
		flow_adopt_seeded(skb, p, val, !to_client);
	__sync_fetch_and_add(&val->pkts[to_client], p->segs);
	__sync_fetch_and_add(&val->bytes[to_client], p->frame_len);
	if (p->flow_pay)
		__sync_fetch_and_add(&val->payload_bytes[to_client], p->flow_pay);
	/*
	 * The coarse clock (pkt_clock()) lags the exact one by up to a tick:
	 * never move last_seen back (behind the flow's start, or a record's
	 * time); most packets then store nothing.
	 */
	if (p->now_ns > val->last_seen_ns)
		val->last_seen_ns = p->now_ns;

	/* Constant indexes only: the verifier refuses variable stack offsets here. */
	set.bytes[0] = to_client ? 0 : p->tcp_flags;
	set.bytes[1] = to_client ? p->tcp_flags : 0;
	if (p->tcp_flags & PAL_TCP_FIN)
		set.bytes[PAL_FLAG_WORD_FIN] = to_client ? PAL_FIN_SERVER : PAL_FIN_CLIENT;
	/*
	 * Most segments bring no new flag (ACK again): skip the atomic, a
	 * locked write to a line both directions share.
	 */
	if ((*(volatile __u32 *)val->tcp_flags & set.word) != set.word)
		__sync_fetch_and_or((__u32 *)val->tcp_flags, set.word);
	p->tls_follow = val->tls_follow;
	/*
	 * TLS policy blocks: asked once per flow and generation of the block
	 * map, kept in the entry (a plain store: two CPUs racing store the same
	 * answer).
	 */
	gen = flow_block_gen();
	if (gen) {
		if (val->block_gen != gen) {
			val->block_gen = gen;
			val->blocked = flow_block_check(&key, p->now_ns);
		}
		p->flow_blocked = val->blocked;
	}
	return val->first_seen_ns;
}

/*
 * A traced packet of a connection the TLS policy cut: which rule, for its
 * trace event. Called by the observer after flow_update() (whose frame
 * leaves no room for another call).
 */
static __attribute__((noinline)) void trace_tls_cut(const struct pal_pkt *p)
{
	struct pal_flow_key key = {};
	struct pal_flow_block *b;
	struct pal_trace_snap *snap;
	__u32 zero = 0;

	if (!p)
		return;
	flow_key_fill(&key, p);
	b = bpf_map_lookup_elem(&pal_flow_block, &key);
	snap = bpf_map_lookup_elem(&pal_trace_snap, &zero);
	if (snap)
		snap->cut_rule_id = b ? b->rule_id : 0;
}

/*
 * What the flow counters add for this skb, as if it had been captured on
 * the wire: the frame (a tag the kernel stripped counted back), and for a
 * GSO/GRO super-packet every segment with its own headers. Payload bytes
 * are the L4 data of all segments.
 */
static __always_inline void flow_sizes(struct __sk_buff *skb, struct pal_pkt *p)
{
	__u32 tag = skb->vlan_present ? PAL_VLAN_TAG_LEN : 0;
	__u32 frame = skb->len + tag; /* Ethernet padding counts, as in a capture */

	if (p->l4_proto != IPPROTO_TCP && p->l4_proto != IPPROTO_UDP) {
		p->frame_len = frame;
		p->flow_pay = 0;
		return;
	}
	if (p->segs > 1) {
		p->flow_pay = p->l4_end - p->pay_off;
		frame += (p->segs - 1) * (p->pay_off + tag);
	} else {
		p->flow_pay = p->pay_len;
	}
	p->frame_len = frame;
}

#endif /* PALISADE_FLOWS_BPF_H */
