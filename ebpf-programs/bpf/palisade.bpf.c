/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * palisade.bpf.c: Palisade's traffic observer, attached as a TC classifier
 * on ingress and egress of every monitored interface.
 *
 * It leaves every packet's fate alone (TC_ACT_UNSPEC, which TCX reads as
 * TCX_NEXT) except DNS over UDP blocked by the domain policy (see "DNS
 * policy" below: answered with NXDOMAIN via bpf_redirect, or dropped). Per
 * packet it:
 *   1. counts the packet (pal_stats, global group, PAL_STAT_RECORDS);
 *   2. parses Ethernet (one VLAN tag, in the frame or hardware-accelerated),
 *      IPv4 or IPv6 (up to PAL_IPV6_MAX_EXT extension headers), TCP/UDP;
 *   3. copies DNS, DHCP and TLS-handshake payload prefixes into their ring
 *      buffers, one worker per ring;
 *   4. for DNS over UDP with enforcement on, applies the domain policy;
 *   5. keeps a per-flow counter entry in pal_flows and reports flow start and
 *      end (FIN both ways, or RST) to rb_flow. A kernel timer (the sweeper,
 *      see "Flow sweeper") ends idle flows and reports long ones.
 *
 * Every record is one struct pal_record_hdr followed by payload_len bytes
 * (records.h). Records are assembled in a per-CPU scratch map and copied with
 * bpf_ringbuf_output() so that their length is exactly what was captured.
 *
 * Headers are read with load_hdr(): straight from the linear packet data
 * when they are there, else with bpf_skb_load_bytes(), which works on
 * non-linear skbs (GRO/GSO, paged frags). Payloads are always copied with
 * bpf_skb_load_bytes(). Header reads are small and fixed-size; payload
 * reads are bounded by the per-kind capture cap.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "records.h"

#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

/* ------------------------------------------------------------------------ */
/* Tunables and wire constants                                              */
/* ------------------------------------------------------------------------ */

/* Bytes of each ring buffer (a power of two, a multiple of the page size). */
#define PAL_RING_BYTES (8u << 20)
/* Entries of the flow table; the LRU evicts the least recently used flow. */
#define PAL_FLOW_ENTRIES 65536
/* IPv6 extension headers walked before giving up on finding L4. */
#define PAL_IPV6_MAX_EXT 4

#define PAL_VLAN_VID_MASK 0x0fff
#define PAL_VLAN_MAX_TAGS 2 /* in-frame tags skipped: 802.1Q, or QinQ */
#define PAL_VLAN_TAG_LEN 4
#define PAL_IP_FRAG_OFFSET 0x1fff /* fragment offset bits of iphdr.frag_off */
#define PAL_IP_MORE_FRAGS 0x2000  /* MF bit of iphdr.frag_off */

#define PAL_PORT_DNS 53
#define PAL_PORT_DHCP_SERVER 67
#define PAL_PORT_DHCP_CLIENT 68

/* DNS policy sizes (records.h has the limits shared with user space). */
#define PAL_DNS_LEARNED_ENTRIES 65536
#define PAL_DNS_HITS_ENTRIES 65536
#define PAL_DNS_NAME_BUF 256 /* >= PAL_DNS_NAME_MAX + 1, a power of two (index mask) */
#define PAL_DNS_OUT_BUF 512  /* >= 8 + PAL_DNS_HDR + PAL_DNS_WIRE_MAX + 4 + 3, power of two */
#define PAL_DNS_HDR 12       /* DNS header */
#define PAL_DNS_QFIXED 4     /* QTYPE + QCLASS after the QNAME */
/* The question a rewrite keeps: header, QNAME, QTYPE/QCLASS. */
#define PAL_DNS_KEEP_MAX (PAL_DNS_HDR + PAL_DNS_WIRE_MAX + PAL_DNS_QFIXED)
/* Bytes handled per bpf_loop() iteration (each iteration is a function call). */
#define PAL_DNS_QNAME_UNROLL 4
#define PAL_DNS_HASH_UNROLL 8
/* qname_step() iterations: the longest wire name, and one byte more to tell it is too long. */
#define PAL_DNS_QNAME_STEPS ((PAL_DNS_WIRE_MAX + PAL_DNS_QNAME_UNROLL) / PAL_DNS_QNAME_UNROLL)
/* match_step() iterations: <= 32 suffixes of <= 253 bytes, a lookup ending each. */
#define PAL_DNS_HASH_STEPS \
	(PAL_DNS_SUFFIX_MAX * ((PAL_DNS_NAME_MAX + PAL_DNS_HASH_UNROLL - 1) / PAL_DNS_HASH_UNROLL + 1))
#define PAL_DNS_TTL 64       /* TTL / hop limit of a kernel-made answer */

/* DNS header, byte 2 and byte 3. */
#define PAL_DNS_QR 0x80
#define PAL_DNS_OPCODE 0x78
#define PAL_DNS_RD 0x01
#define PAL_DNS_TC 0x02
#define PAL_DNS_RA 0x80
#define PAL_DNS_CD 0x10
#define PAL_DNS_RCODE 0x0f
#define PAL_DNS_RCODE_NXDOMAIN 3
/* A length octet with either of the top bits set: compression pointer or extended label. */
#define PAL_DNS_LABEL_TYPE 0xc0

_Static_assert(PAL_DNS_NAME_BUF > PAL_DNS_NAME_MAX + 1, "name buffer: leading dot + name");
_Static_assert(PAL_DNS_OUT_BUF >= 8 + PAL_DNS_KEEP_MAX + 3, "checksum buffer");
_Static_assert(PAL_DNS_KEEP_MAX <= PAL_CAP_DNS, "the question must fit the DNS capture");
_Static_assert(PAL_DNS_SUFFIX_MAX == 32, "label_start ring is indexed with & 31");

#define PAL_TLS_CONTENT_HANDSHAKE 22
#define PAL_TLS_MAJOR_VERSION 3

/* TCP flag bits, as in byte 13 of the TCP header. */
#define PAL_TCP_FIN 0x01
#define PAL_TCP_SYN 0x02
#define PAL_TCP_RST 0x04
#define PAL_TCP_ACK 0x10
#define PAL_TCP_FLAGS_OFFSET 13

/* <linux/time.h> clock id (bpf_timer_init takes CLOCK_MONOTONIC, _REALTIME or _BOOTTIME). */
#define PAL_CLOCK_BOOTTIME 7

/* pal_flow_value.fin_mask bits. */
#define PAL_FIN_CLIENT 0x01
#define PAL_FIN_SERVER 0x02
#define PAL_FIN_BOTH (PAL_FIN_CLIENT | PAL_FIN_SERVER)

/*
 * Ring wake-up threshold: a record only wakes the consumer when at least
 * this many bytes are queued; otherwise the consumer's timer backstop picks
 * it up. A wake-up per record costs ~60% of throughput (TOOLCHAIN.md).
 * The loader may override it (aya EbpfLoader::override_global).
 */
volatile const __u32 pal_wakeup_bytes = 65536;

/* ------------------------------------------------------------------------ */
/* Maps                                                                     */
/* ------------------------------------------------------------------------ */

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

/* Flow table, keyed by the direction-normalized tuple. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PAL_FLOW_ENTRIES);
	__type(key, struct pal_flow_key);
	__type(value, struct pal_flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flows SEC(".maps");

/* Slot 0: flow timeouts and sweeper period, written by the supervisor. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_flow_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_config SEC(".maps");

/* Slot 0: what the sweeper saw on its latest walk. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_flow_sweep);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_sweep SEC(".maps");

/* Flow counters, key = PAL_FLOW_STAT_* (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_FLOW_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_stats SEC(".maps");

/*
 * The sweeper's timer. The map is pinned, so the timer keeps running while
 * no supervisor does (a timer is cancelled when its map's last user
 * reference goes). Its value carries BTF: the kernel finds the bpf_timer
 * through it.
 */
struct pal_flow_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_flow_timer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_flow_timer SEC(".maps");

/*
 * DNS policy. The rule set is one hash map (name hash -> rule) in slot 0 of
 * pal_dns_policy; the supervisor builds a complete new inner map and swaps it
 * in with one update of that slot, so a packet sees either the old or the new
 * rule set, never a mix. An empty slot means "no rule set".
 *
 * The inner map below is only the template the outer map is created with.
 * For hash maps the kernel does not compare max_entries between the template
 * and the maps put in the slot (only type, key/value size and map_flags), so
 * inner maps of any size fit. BPF_F_INNER_MAP (which relaxes that check for
 * arrays) is not accepted by hash maps at all, hence map_flags stays 0: every
 * inner map must be created with map_flags 0 too (src/dns_policy.rs does).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	/*
	 * Sizes rather than __type(): clang's BTF leaves a struct reached only
	 * through a nested map definition as a forward declaration, which
	 * libbpf and aya cannot size. Inner maps carry no BTF either way.
	 */
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 1);
		__uint(key_size, sizeof(__u64));
		__uint(value_size, sizeof(struct pal_dns_rule));
	});
} pal_dns_policy SEC(".maps");

/* Exact-name blocks learned at run time (regex verdicts, CNAME inspection). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PAL_DNS_LEARNED_ENTRIES);
	__type(key, __u64);
	__type(value, struct pal_dns_learned);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_dns_learned SEC(".maps");

/* Slot 0: what to do with a blocked query (records.h PAL_DNS_ACTION_*). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_dns_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_dns_config SEC(".maps");

/* Per-rule hit counters: rule_id -> packets the rule decided. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, PAL_DNS_HITS_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_dns_hits SEC(".maps");

/* DNS policy counters, key = PAL_DNS_STAT_* (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_DNS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_dns_stats SEC(".maps");

/* Working memory of the DNS policy: too big for the stack. */
struct pal_dns_work {
	__u8 name[PAL_DNS_NAME_BUF];           /* "." + normalized name, not NUL-terminated */
	__u8 label_start[PAL_DNS_SUFFIX_MAX];  /* ring: name offset of label n at [n % 32] */
	__u8 out[PAL_DNS_OUT_BUF];             /* rewritten UDP datagram, for its checksum */
	__u8 pseudo[40];                       /* UDP pseudo header (IPv6 size) */
};

/*
 * Per-CPU record under construction: header plus the largest payload, and
 * the DNS policy's working memory. Too big for the 512-byte BPF stack.
 * Private to one program run (TC programs do not nest on a CPU), so it is
 * not pinned. Records are `hdr` and a payload prefix: `dns` is never output.
 */
struct pal_scratch {
	struct pal_record_hdr hdr;
	__u8 payload[PAL_CAP_MAX];
	struct pal_dns_work dns;
};

_Static_assert(PAL_CAP_DNS <= PAL_CAP_MAX && PAL_CAP_DHCP <= PAL_CAP_MAX &&
		       PAL_CAP_TLS <= PAL_CAP_MAX &&
		       sizeof(struct pal_flow_record) <= PAL_CAP_MAX,
	       "every payload must fit the scratch record");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_scratch);
} pal_scratch SEC(".maps");

/* ------------------------------------------------------------------------ */
/* Parsed packet                                                            */
/* ------------------------------------------------------------------------ */

/* What the parser learnt about one packet; lives on the stack. */
struct pal_pkt {
	__u64 saddr[2];   /* network order; IPv4 in the first 4 bytes, rest 0 */
	__u64 daddr[2];   /* same layout as saddr */
	__u64 now_ns;     /* bpf_ktime_get_boot_ns(), taken once per packet */
	__u32 l3_len;     /* IP header + payload, for flow byte counters */
	__u32 l3_off;     /* offset of the IP header in the skb */
	__u32 l4_off;     /* offset of the L4 header in the skb */
	__u32 l4_end;     /* end of the IP packet (Ethernet padding excluded) */
	__u32 pay_off;    /* offset of the L4 payload */
	__u32 pay_len;    /* L4 payload bytes in this packet */
	__u32 segs;       /* packets this skb stands for (GSO/GRO), >= 1 */
	__u32 udp_len;    /* UDP length field, 0 for other protocols */
	__u32 frame_len;  /* frame bytes this skb stands for (flow counters) */
	__u32 flow_pay;   /* L4 payload bytes this skb stands for (flow counters) */
	__u16 vlan_id;    /* valid when flags has PAL_FLAG_VLAN */
	__u16 sport;      /* host order; 0 for ICMP */
	__u16 dport;      /* host order; 0 for ICMP */
	__u8 src_mac[ETH_ALEN];
	__u8 dst_mac[ETH_ALEN];
	__u8 direction;   /* PAL_DIR_* */
	__u8 flags;       /* PAL_FLAG_VLAN */
	__u8 ip_version;  /* 4 or 6 */
	__u8 l4_proto;    /* IPPROTO_* */
	__u8 tcp_flags;   /* byte 13 of the TCP header, 0 otherwise */
	__u8 ip_frag;     /* IPv4 first fragment with more to come (MF set) */
	__u8 icmp_type;   /* ICMP/ICMPv6 type and code, 0 otherwise */
	__u8 icmp_code;
};

/* Outcome of a parsing step. */
enum pal_parse {
	PAL_PARSE_OK,       /* continue with the next layer */
	PAL_PARSE_IGNORE,   /* nothing for us (ARP, fragment, other L4): stop */
	PAL_PARSE_SHORT,    /* headers missing or malformed: count and stop */
};

/* ------------------------------------------------------------------------ */
/* Counters and record output                                               */
/* ------------------------------------------------------------------------ */

static __always_inline void stat_inc(__u32 group, __u32 slot)
{
	__u32 key = group * PAL_STAT_COUNT + slot;
	__u64 *value = bpf_map_lookup_elem(&pal_stats, &key);

	/* Per-CPU slot, and TC programs do not nest: no atomic needed. */
	if (value)
		*value += 1;
}

static __always_inline struct pal_scratch *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&pal_scratch, &zero);
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

/* Header fields every record takes from the packet it was made for. */
static __always_inline void hdr_fill(struct pal_record_hdr *hdr, const struct __sk_buff *skb,
				     const struct pal_pkt *p, __u16 kind)
{
	hdr->magic = PAL_RECORD_MAGIC;
	hdr->abi_version = PAL_ABI_VERSION;
	hdr->kind = kind;
	hdr->ifindex = skb->ifindex;
	hdr->ts_boot_ns = p->now_ns;
	hdr->direction = p->direction;
	hdr->ip_version = p->ip_version;
	hdr->l4_proto = p->l4_proto;
	hdr->flags = p->flags;
	hdr->vlan_id = p->vlan_id;
	hdr->src_port = p->sport;
	hdr->dst_port = p->dport;
	__builtin_memcpy(hdr->src_mac, p->src_mac, ETH_ALEN);
	__builtin_memcpy(hdr->dst_mac, p->dst_mac, ETH_ALEN);
	hdr->_pad0 = 0;
	__builtin_memcpy(hdr->src_addr, p->saddr, sizeof(hdr->src_addr));
	__builtin_memcpy(hdr->dst_addr, p->daddr, sizeof(hdr->dst_addr));
}

/*
 * Emits a record of `kind` whose payload is the first `cap` bytes of the L4
 * payload. `cap` is a compile-time constant at every call site, and at most
 * PAL_CAP_MAX.
 */
static __always_inline void emit_payload(struct __sk_buff *skb, const struct pal_pkt *p,
					 void *ring, __u32 group, __u16 kind, __u32 cap)
{
	struct pal_scratch *s = scratch_get();
	__u32 len = p->pay_len;
	int truncated = 0;

	if (!s)
		return;
	if (len > cap) {
		len = cap;
		truncated = 1;
	}
	/*
	 * Inside this test the verifier knows 1 <= len <= cap <= PAL_CAP_MAX:
	 * bpf_skb_load_bytes() refuses a zero length, and the scratch payload
	 * has room for the cap.
	 */
	if (len > 0) {
		if (bpf_skb_load_bytes(skb, p->pay_off, s->payload, len) < 0) {
			stat_inc(PAL_STATS_GLOBAL, PAL_STAT_NOT_PARSED);
			return;
		}
	}
	hdr_fill(&s->hdr, skb, p, kind);
	if (truncated)
		s->hdr.flags |= PAL_FLAG_TRUNCATED;
	s->hdr.len = sizeof(s->hdr) + len;
	s->hdr.payload_len = len;
	s->hdr.orig_payload_len = p->pay_len;
	ring_output(ring, group, s, sizeof(s->hdr) + len, truncated);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* Header reads go straight to the linear packet data below this offset. */
#define PAL_DIRECT_MAX 256

/*
 * Copies `len` (a constant at every call site) header bytes at `off` to
 * `to`: straight from the packet when they are in its linear part (the
 * common case: headers are linear, a helper call costs ~15 ns), else with
 * bpf_skb_load_bytes(), which also reads paged data. Returns 0 or < 0 like
 * the helper.
 */
static __always_inline long load_hdr(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (off < PAL_DIRECT_MAX && data + off + len <= end) {
		__builtin_memcpy(to, data + off, len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

/*
 * Ethernet and up to PAL_VLAN_MAX_TAGS VLAN tags in the frame (802.1Q or
 * 802.1ad: QinQ). A hardware-accelerated tag (skb->vlan_present: the
 * kernel strips the outer tag before TC ingress) is the outermost one, so
 * its VID wins; the frame's tags are skipped to reach L3 either way.
 */
static __always_inline enum pal_parse parse_l2(struct __sk_buff *skb, struct pal_pkt *p,
					       __u32 *l3_off, __u16 *ethertype)
{
	struct ethhdr eth;

	if (load_hdr(skb, 0, &eth, sizeof(eth)) < 0)
		return PAL_PARSE_SHORT;
	__builtin_memcpy(p->src_mac, eth.h_source, ETH_ALEN);
	__builtin_memcpy(p->dst_mac, eth.h_dest, ETH_ALEN);
	*ethertype = bpf_ntohs(eth.h_proto);
	*l3_off = sizeof(eth);

	if (skb->vlan_present) {
		p->flags |= PAL_FLAG_VLAN;
		p->vlan_id = skb->vlan_tci & PAL_VLAN_VID_MASK;
	}
#pragma unroll
	for (int i = 0; i < PAL_VLAN_MAX_TAGS; i++) {
		struct {
			__be16 tci;
			__be16 ethertype;
		} tag;

		if (*ethertype != ETH_P_8021Q && *ethertype != ETH_P_8021AD)
			break;
		if (load_hdr(skb, *l3_off, &tag, sizeof(tag)) < 0)
			return PAL_PARSE_SHORT;
		if (!(p->flags & PAL_FLAG_VLAN)) {
			p->flags |= PAL_FLAG_VLAN;
			p->vlan_id = bpf_ntohs(tag.tci) & PAL_VLAN_VID_MASK;
		}
		*ethertype = bpf_ntohs(tag.ethertype);
		*l3_off += sizeof(tag);
	}
	return PAL_PARSE_OK;
}

/* Where the IP packet ends: its own length, or the skb's for GSO giants. */
static __always_inline void set_l3_end(struct __sk_buff *skb, struct pal_pkt *p, __u32 l3_off,
				       __u32 l3_len)
{
	/* A zero length field marks BIG TCP / jumbo GSO packets. */
	if (l3_len == 0 || l3_off + l3_len > skb->len)
		l3_len = skb->len - l3_off;
	p->l3_len = l3_len;
	p->l4_end = l3_off + l3_len;
}

/* IPv4: honours IHL; non-first fragments carry no L4 header and are ignored. */
static __always_inline enum pal_parse parse_ipv4(struct __sk_buff *skb, struct pal_pkt *p,
						 __u32 l3_off)
{
	struct iphdr ip;
	__u32 ihl_bytes;

	if (load_hdr(skb, l3_off, &ip, sizeof(ip)) < 0)
		return PAL_PARSE_SHORT;
	if (ip.version != 4 || ip.ihl < 5)
		return PAL_PARSE_SHORT;
	ihl_bytes = ip.ihl * 4;
	set_l3_end(skb, p, l3_off, bpf_ntohs(ip.tot_len));
	if (p->l3_len < ihl_bytes)
		return PAL_PARSE_SHORT;
	if (bpf_ntohs(ip.frag_off) & PAL_IP_FRAG_OFFSET)
		return PAL_PARSE_IGNORE;

	p->ip_frag = (bpf_ntohs(ip.frag_off) & PAL_IP_MORE_FRAGS) != 0;
	p->l3_off = l3_off;
	p->ip_version = 4;
	p->l4_proto = ip.protocol;
	p->l4_off = l3_off + ihl_bytes;
	__builtin_memcpy(p->saddr, &ip.saddr, sizeof(ip.saddr));
	__builtin_memcpy(p->daddr, &ip.daddr, sizeof(ip.daddr));
	return PAL_PARSE_OK;
}

static __always_inline int ipv6_is_skippable_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS;
}

/*
 * IPv6: fixed header, then up to PAL_IPV6_MAX_EXT hop-by-hop, routing or
 * destination-options headers. Fragments are ignored; a chain longer than
 * that (or one cut short) counts as not parsed.
 */
static __always_inline enum pal_parse parse_ipv6(struct __sk_buff *skb, struct pal_pkt *p,
						 __u32 l3_off)
{
	struct ipv6hdr ip6;
	__u32 off = l3_off + sizeof(ip6);
	__u8 nexthdr;

	if (load_hdr(skb, l3_off, &ip6, sizeof(ip6)) < 0)
		return PAL_PARSE_SHORT;
	if (ip6.version != 6)
		return PAL_PARSE_SHORT;
	/* payload_len 0: jumbogram / BIG TCP, the skb length is the truth. */
	set_l3_end(skb, p, l3_off,
		   ip6.payload_len ? sizeof(ip6) + bpf_ntohs(ip6.payload_len) : 0);
	nexthdr = ip6.nexthdr;

#pragma unroll
	for (int i = 0; i < PAL_IPV6_MAX_EXT; i++) {
		struct {
			__u8 nexthdr;
			__u8 hdrlen; /* in 8-byte units, not counting the first 8 */
		} ext;

		if (!ipv6_is_skippable_ext(nexthdr))
			break;
		if (load_hdr(skb, off, &ext, sizeof(ext)) < 0)
			return PAL_PARSE_SHORT;
		nexthdr = ext.nexthdr;
		off += (ext.hdrlen + 1) * 8;
	}
	if (nexthdr == IPPROTO_FRAGMENT)
		return PAL_PARSE_IGNORE;
	if (ipv6_is_skippable_ext(nexthdr) || off > p->l4_end)
		return PAL_PARSE_SHORT;

	p->l3_off = l3_off;
	p->ip_version = 6;
	p->l4_proto = nexthdr;
	p->l4_off = off;
	__builtin_memcpy(p->saddr, &ip6.saddr, sizeof(ip6.saddr));
	__builtin_memcpy(p->daddr, &ip6.daddr, sizeof(ip6.daddr));
	return PAL_PARSE_OK;
}

/* TCP, UDP, ICMP (IPv4) and ICMPv6 (IPv6); anything else is ignored. */
static __always_inline enum pal_parse parse_l4(struct __sk_buff *skb, struct pal_pkt *p)
{
	__u32 udp_len = 0;

	switch (p->l4_proto) {
	case IPPROTO_TCP: {
		struct tcphdr th;

		if (load_hdr(skb, p->l4_off, &th, sizeof(th)) < 0)
			return PAL_PARSE_SHORT;
		if (th.doff < 5)
			return PAL_PARSE_SHORT;
		p->pay_off = p->l4_off + th.doff * 4;
		p->sport = bpf_ntohs(th.source);
		p->dport = bpf_ntohs(th.dest);
		p->tcp_flags = ((__u8 *)&th)[PAL_TCP_FLAGS_OFFSET];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr uh;

		if (load_hdr(skb, p->l4_off, &uh, sizeof(uh)) < 0)
			return PAL_PARSE_SHORT;
		p->pay_off = p->l4_off + sizeof(uh);
		p->sport = bpf_ntohs(uh.source);
		p->dport = bpf_ntohs(uh.dest);
		udp_len = bpf_ntohs(uh.len);
		p->udp_len = udp_len;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 type_code[2];

		if (p->l4_proto != (p->ip_version == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6))
			return PAL_PARSE_IGNORE;
		/* Ports stay 0 and there are no payload records; type and code feed Community ID. */
		if (load_hdr(skb, p->l4_off, type_code, sizeof(type_code)) < 0)
			return PAL_PARSE_SHORT;
		p->icmp_type = type_code[0];
		p->icmp_code = type_code[1];
		return PAL_PARSE_OK;
	}
	default:
		return PAL_PARSE_IGNORE;
	}
	if (p->pay_off > p->l4_end)
		return PAL_PARSE_SHORT;
	p->pay_len = p->l4_end - p->pay_off;
	/* Bytes after the datagram (or later GSO segments) are not its payload. */
	if (udp_len >= sizeof(struct udphdr) && udp_len - sizeof(struct udphdr) < p->pay_len)
		p->pay_len = udp_len - sizeof(struct udphdr);
	return PAL_PARSE_OK;
}

/* ------------------------------------------------------------------------ */
/* Application payloads: DNS, DHCP, TLS                                     */
/* ------------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------------ */
/* DNS policy                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Only UDP port-53 traffic reaches this code, and only while pal_dns_config
 * says enforcement is on. For a query (QR=0, opcode QUERY, QDCOUNT >= 1, to
 * port 53) or an answer (QR=1, from port 53), the first QNAME is normalized
 * into the scratch map, the FNV-1a 64 hash of the name and of each parent
 * suffix (those of at most PAL_DNS_SUFFIX_MAX labels, longest first) is
 * looked up in the current rule set, then the exact name in pal_dns_learned:
 *   - any allow match (an exact allow on the name, a suffix allow on the
 *     name or a parent) lets the message pass;
 *   - otherwise a block match (the most specific list rule, else an unexpired
 *     learned entry) blocks it.
 * A blocked query is turned into its own NXDOMAIN answer and sent back where
 * it came from (or dropped, per config); a blocked answer is rewritten into
 * NXDOMAIN in place and passed on (or dropped). The DNS record of the message
 * is emitted before any rewrite, flagged PAL_FLAG_DNS_BLOCKED/REWRITTEN.
 */

static __always_inline void dns_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_dns_stats, &slot);

	if (value)
		*value += 1;
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

/* Counts one packet decided by rule_id (per-CPU; the LRU drops cold ids). */
static __always_inline void dns_hit(__u32 rule_id)
{
	if (rule_hit(&pal_dns_hits, rule_id))
		dns_stat_inc(PAL_DNS_STAT_HITS_MAP_FULL);
}

enum pal_qname {
	PAL_QNAME_RUNNING,
	PAL_QNAME_DONE,
	PAL_QNAME_UNMATCHABLE, /* pointer, extended label, cut off */
};

/*
 * bpf_loop() state of qname_step(). The callbacks are verified like loop
 * bodies: the verifier only converges if no counter that starts as a known
 * constant decides a branch (that makes it precise, and every iteration a new
 * state). Hence s->dns.name is written as ".label.label" (a dot before every
 * label, no "first label?" test on the label count) and the name proper
 * starts at offset 1; only the two-valued `sep` flag decides whether the
 * hash takes a '.', which converges after one iteration.
 */
struct pal_qname_ctx {
	struct pal_scratch *s;
	__u64 hash;   /* FNV-1a 64 of the name text so far */
	__u32 avail;  /* bytes of s->payload holding the message */
	__u32 pos;    /* next QNAME byte, as an offset in the message */
	__u32 out;    /* end of the text in s->dns.name (the name is [1, out)) */
	__u32 left;   /* bytes left in the current label */
	__u32 labels; /* labels seen */
	__u32 sep;    /* 1 once a label was seen: the next one is preceded by '.' */
	__u32 status; /* enum pal_qname */
};

/*
 * One wire byte of the QNAME: 1 when the name ended (or cannot be matched).
 * A length octet starts a label; label bytes are copied with A-Z folded to
 * a-z and '.' replaced by 0x00, so the text form is unambiguous, and hashed
 * as they are written (the whole name's hash comes for free).
 */
static __always_inline int qname_byte(struct pal_qname_ctx *c, struct pal_scratch *s)
{
	__u32 pos = c->pos;
	__u8 byte;

	if (pos >= c->avail) {
		c->status = PAL_QNAME_UNMATCHABLE;
		return 1;
	}
	byte = s->payload[pos & (PAL_CAP_MAX - 1)];
	c->pos = pos + 1;
	if (c->left == 0) {
		if (byte == 0) {
			c->status = PAL_QNAME_DONE;
			return 1;
		}
		if (byte & PAL_DNS_LABEL_TYPE) {
			c->status = PAL_QNAME_UNMATCHABLE;
			return 1;
		}
		if (c->sep)
			c->hash = (c->hash ^ '.') * PAL_FNV64_PRIME;
		c->sep = 1;
		s->dns.name[c->out & (PAL_DNS_NAME_BUF - 1)] = '.';
		c->out++;
		s->dns.label_start[c->labels & (PAL_DNS_SUFFIX_MAX - 1)] = c->out;
		c->labels++;
		c->left = byte;
		return 0;
	}
	if (byte >= 'A' && byte <= 'Z')
		byte += 'a' - 'A';
	else if (byte == '.')
		byte = 0;
	s->dns.name[c->out & (PAL_DNS_NAME_BUF - 1)] = byte;
	c->hash = (c->hash ^ byte) * PAL_FNV64_PRIME;
	c->out++;
	c->left--;
	return 0;
}

/*
 * PAL_DNS_QNAME_UNROLL wire bytes per bpf_loop() iteration: each iteration is
 * a function call, and calls (returns, with the Spectre/SRSO return thunks
 * of current x86 kernels) cost more than the work of one byte.
 */
static long qname_step(__u32 index, void *arg)
{
	struct pal_qname_ctx *c = arg;
	struct pal_scratch *s = c->s;

#pragma unroll
	for (int i = 0; i < PAL_DNS_QNAME_UNROLL; i++)
		if (qname_byte(c, s))
			return 1;
	return 0;
}

/* bpf_loop() state of match_step(). */
struct pal_match_ctx {
	struct pal_scratch *s;
	void *rules;     /* the current inner map of pal_dns_policy */
	__u64 hash;      /* FNV-1a state of the current suffix */
	__u32 end;       /* end of the name in s->dns.name */
	__u32 pos;       /* next name byte of the current suffix */
	__u32 left;      /* suffixes still to look up, the current one included */
	__u32 label;     /* label number of the current suffix's first label */
	__u32 allow_id;
	__u32 block_id;
	__u8 whole;      /* the current suffix is the whole name */
	__u8 allowed;
	__u8 blocked;
};

/*
 * Hashes up to PAL_DNS_HASH_UNROLL bytes of the current suffix; once it is
 * complete, looks it up and moves to the next (shorter) one. An allow match
 * ends the walk; the first block match (the most specific) is kept.
 */
static long match_step(__u32 index, void *arg)
{
	struct pal_match_ctx *c = arg;
	struct pal_scratch *s = c->s;
	struct pal_dns_rule *found;
	__u32 pos = c->pos, end = c->end;
	__u64 hash = c->hash;

#pragma unroll
	for (int i = 0; i < PAL_DNS_HASH_UNROLL; i++) {
		if (pos >= end)
			break;
		hash = (hash ^ s->dns.name[pos & (PAL_DNS_NAME_BUF - 1)]) * PAL_FNV64_PRIME;
		pos++;
	}
	c->pos = pos;
	c->hash = hash;
	if (pos < end)
		return 0;

	found = bpf_map_lookup_elem(c->rules, &c->hash);
	if (found) {
		struct pal_dns_rule rule = *found;
		__u8 action = 0;

		if (c->whole || !(rule.flags & PAL_DNS_RULE_EXACT))
			action = rule.action;
		else if (rule.flags & PAL_DNS_RULE_BLOCK_SUBDOMAINS)
			action = PAL_DNS_BLOCK;
		if (action == PAL_DNS_ALLOW) {
			c->allowed = 1;
			c->allow_id = rule.rule_id;
			return 1;
		}
		if (action == PAL_DNS_BLOCK && !c->blocked) {
			c->blocked = 1;
			c->block_id = rule.rule_id;
		}
	}
	c->whole = 0;
	c->left--;
	if (c->left == 0)
		return 1;
	c->label++;
	c->pos = s->dns.label_start[c->label & (PAL_DNS_SUFFIX_MAX - 1)];
	c->hash = PAL_FNV64_OFFSET;
	return 0;
}

/* What the policy decided about one DNS message. */
enum pal_dns_todo {
	PAL_DNS_TODO_PASS,
	PAL_DNS_TODO_NXDOMAIN, /* query: answer it; answer: rewrite it */
	PAL_DNS_TODO_DROP,
};

struct pal_dns_verdict {
	__u32 keep;  /* message bytes up to the end of the first question */
	__u8 todo;   /* enum pal_dns_todo */
	__u8 query;  /* 1: a query, 0: an answer */
	__u8 flag;   /* PAL_FLAG_DNS_* for the record */
};

static __always_inline __u16 dns_u16(const struct pal_scratch *s, __u32 off)
{
	return (__u16)s->payload[off] << 8 | s->payload[off + 1];
}

/* An answer that already is a bare NXDOMAIN (ours, coming back through the other hook). */
static __always_inline int dns_bare_nxdomain(const struct pal_scratch *s, __u32 keep,
					     const struct pal_pkt *p)
{
	return (s->payload[3] & PAL_DNS_RCODE) == PAL_DNS_RCODE_NXDOMAIN &&
	       !(s->payload[2] & PAL_DNS_TC) && dns_u16(s, 4) == 1 && dns_u16(s, 6) == 0 &&
	       dns_u16(s, 8) == 0 && dns_u16(s, 10) == 0 && keep == p->pay_len;
}

/*
 * Decides about the message in s->payload (`avail` bytes of it). Counts what
 * it checks; leaves v zeroed (pass) unless the message is to be blocked.
 */
static __always_inline void dns_policy(const struct pal_pkt *p, struct pal_scratch *s,
				       __u32 avail, struct pal_dns_verdict *v)
{
	struct pal_qname_ctx qc = {};
	struct pal_match_ctx mc = {};
	struct pal_dns_config *cfg;
	__u32 zero = 0, action;
	void *rules;
	int query, whole;

	cfg = bpf_map_lookup_elem(&pal_dns_config, &zero);
	if (!cfg)
		return;
	action = cfg->block_action;
	if (action != PAL_DNS_ACTION_NXDOMAIN && action != PAL_DNS_ACTION_DROP)
		return;
	if (avail < PAL_DNS_HDR)
		return;
	if ((s->payload[2] & PAL_DNS_OPCODE) || dns_u16(s, 4) == 0)
		return;
	query = !(s->payload[2] & PAL_DNS_QR);
	if (query ? p->dport != PAL_PORT_DNS : p->sport != PAL_PORT_DNS)
		return;
	dns_stat_inc(query ? PAL_DNS_STAT_QUERIES_CHECKED : PAL_DNS_STAT_ANSWERS_CHECKED);

	qc.s = s;
	qc.hash = PAL_FNV64_OFFSET;
	qc.avail = avail;
	qc.pos = PAL_DNS_HDR;
	bpf_loop(PAL_DNS_QNAME_STEPS, qname_step, &qc, 0);
	if (qc.status != PAL_QNAME_DONE || qc.pos - PAL_DNS_HDR > PAL_DNS_WIRE_MAX) {
		dns_stat_inc(PAL_DNS_STAT_NOT_MATCHABLE);
		return;
	}
	if (qc.labels == 0)
		return; /* the root never matches */
	whole = qc.labels <= PAL_DNS_SUFFIX_MAX;

	/*
	 * Suffixes of at most PAL_DNS_SUFFIX_MAX labels, longest first. The
	 * whole name, when it is one of them, was hashed by qname_step(): the
	 * first match_step() goes straight to its lookup.
	 */
	rules = bpf_map_lookup_elem(&pal_dns_policy, &zero);
	if (rules) {
		mc.s = s;
		mc.rules = rules;
		mc.end = qc.out;
		mc.left = whole ? qc.labels : PAL_DNS_SUFFIX_MAX;
		mc.label = qc.labels - mc.left;
		mc.whole = whole;
		if (whole) {
			mc.pos = qc.out;
			mc.hash = qc.hash;
		} else {
			mc.pos = s->dns.label_start[mc.label & (PAL_DNS_SUFFIX_MAX - 1)];
			mc.hash = PAL_FNV64_OFFSET;
		}
		bpf_loop(PAL_DNS_HASH_STEPS, match_step, &mc, 0);
	}
	if (mc.allowed) {
		if (query) {
			dns_stat_inc(PAL_DNS_STAT_QUERIES_ALLOWED);
			dns_hit(mc.allow_id);
		}
		return;
	}
	if (!mc.blocked && whole) {
		struct pal_dns_learned *learned = bpf_map_lookup_elem(&pal_dns_learned, &qc.hash);

		if (learned) {
			if (p->now_ns < learned->expires_boot_ns) {
				mc.blocked = 1;
				mc.block_id = learned->rule_id;
				dns_stat_inc(PAL_DNS_STAT_LEARNED_HITS);
			} else {
				dns_stat_inc(PAL_DNS_STAT_LEARNED_EXPIRED);
			}
		}
	}
	if (!mc.blocked)
		return;
	v->keep = qc.pos + PAL_DNS_QFIXED;
	if (!query && dns_bare_nxdomain(s, v->keep, p))
		return;
	dns_hit(mc.block_id);
	v->query = query;
	v->flag = query ? PAL_FLAG_DNS_BLOCKED : PAL_FLAG_DNS_REWRITTEN;
	v->todo = action == PAL_DNS_ACTION_DROP ? PAL_DNS_TODO_DROP : PAL_DNS_TODO_NXDOMAIN;
}

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

	if (!s || !p)
		return TC_ACT_UNSPEC;
	len = p->pay_len;
	if (len > PAL_CAP_DNS) {
		len = PAL_CAP_DNS;
		truncated = 1;
	}
	if (len > 0) {
		if (bpf_skb_load_bytes(skb, p->pay_off, s->payload, len) < 0) {
			stat_inc(PAL_STATS_GLOBAL, PAL_STAT_NOT_PARSED);
			return TC_ACT_UNSPEC;
		}
	}
	dns_policy(p, s, len, &v);

	hdr_fill(&s->hdr, skb, p, PAL_KIND_DNS);
	s->hdr.flags |= v.flag;
	if (truncated)
		s->hdr.flags |= PAL_FLAG_TRUNCATED;
	s->hdr.len = sizeof(s->hdr) + len;
	s->hdr.payload_len = len;
	s->hdr.orig_payload_len = p->pay_len;
	ring_output(&rb_dns, PAL_RING_DNS, s, sizeof(s->hdr) + len, truncated);

	return dns_enforce(skb, p, s, len, &v);
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
	if (either_port(p, PAL_PORT_DNS)) {
		/*
		 * DNS over TCP is recorded, not enforced: a TCP query is spread
		 * over segments the kernel would have to reassemble and answer
		 * inside a connection. Segments without payload are just ACKs.
		 */
		if (!tcp)
			return pal_dns_udp(skb, p);
		if (p->pay_len > 0)
			emit_payload(skb, p, &rb_dns, PAL_RING_DNS, PAL_KIND_DNS, PAL_CAP_DNS);
		return TC_ACT_UNSPEC;
	}
	if (!tcp && (either_port(p, PAL_PORT_DHCP_SERVER) || either_port(p, PAL_PORT_DHCP_CLIENT))) {
		emit_payload(skb, p, &rb_dhcp, PAL_RING_DHCP, PAL_KIND_DHCP, PAL_CAP_DHCP);
		return TC_ACT_UNSPEC;
	}
	if (tcp && is_tls_handshake(skb, p))
		emit_payload(skb, p, &rb_tls, PAL_RING_TLS, PAL_KIND_TLS, PAL_CAP_TLS);
	return TC_ACT_UNSPEC;
}

/* ------------------------------------------------------------------------ */
/* Flows                                                                    */
/* ------------------------------------------------------------------------ */

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

/*
 * Emits a flow record of `kind` made from the table entry alone, so that
 * packets and the sweeper make the same records: header oriented client ->
 * server, with the flow's first interface, direction and VLAN.
 */
static __always_inline void emit_flow(const struct pal_flow_key *key,
				      const struct pal_flow_value *val, __u16 kind, __u8 reason,
				      __u64 now_ns)
{
	struct pal_scratch *s = scratch_get();
	struct pal_flow_record *rec;
	struct pal_record_hdr *hdr;

	if (!s)
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

/* Ends a flow now: deletes it and, if this delete won, reports it. */
static __always_inline void flow_end(const struct pal_flow_key *key, const struct pal_flow_value *val,
				     __u8 reason, __u64 now_ns)
{
	/*
	 * Copy before deleting: a deleted LRU node goes straight back to the
	 * free list and another CPU may reuse it. Only the caller whose delete
	 * succeeds reports the end, so there is one end record per flow.
	 */
	struct pal_flow_value last = *val;

	if (bpf_map_delete_elem(&pal_flows, key) != 0)
		return;
	flow_stat_inc(reason == PAL_FLOW_REASON_RST	 ? PAL_FLOW_STAT_ENDED_RST
		      : reason == PAL_FLOW_REASON_FIN ? PAL_FLOW_STAT_ENDED_FIN
						       : PAL_FLOW_STAT_ENDED_TIMEOUT);
	emit_flow(key, &last, PAL_KIND_FLOW_END, reason, now_ns);
}

/*
 * Creates the entry of a flow whose first packet is `p` and reports its
 * start. Returns the entry when another CPU created it meanwhile (the
 * packet is then accounted as an update), NULL otherwise.
 */
static __always_inline struct pal_flow_value *flow_insert(struct __sk_buff *skb,
							   const struct pal_pkt *p,
							   const struct pal_flow_key *key,
							   int sender_is_lo)
{
	struct pal_flow_value fresh = {};
	long err;

	fresh.first_seen_ns = p->now_ns;
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

	err = bpf_map_update_elem(&pal_flows, key, &fresh, BPF_NOEXIST);
	if (err == 0) {
		flow_stat_inc(PAL_FLOW_STAT_CREATED);
		emit_flow(key, &fresh, PAL_KIND_FLOW_START, PAL_FLOW_REASON_NONE, p->now_ns);
		return NULL;
	}
	if (err != -EEXIST) {
		stat_inc(PAL_RING_FLOW, PAL_STAT_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&pal_flows, key);
}

/*
 * Accounts one packet. TCP flows are not ended here: a FIN from both sides
 * or a RST marks them closed, they keep counting what follows (the last
 * ACKs, retransmissions, a second RST), and the sweeper reports them
 * PAL_FLOW_CLOSE_LINGER_NS after their last packet. A new SYN on a closed
 * flow (port reuse) ends the old flow at once and starts a new one.
 *
 * Not inlined: its locals (key, a fresh value) get a frame of their own
 * instead of adding to the one pal_dns_udp() stacks on.
 */
static __attribute__((noinline)) void flow_update(struct __sk_buff *skb, const struct pal_pkt *p)
{
	struct pal_flow_key key = {};
	struct pal_flow_value *val;
	union pal_flag_word set = {};
	int sender_is_lo, to_client;

	if (p->l4_proto != IPPROTO_TCP && p->l4_proto != IPPROTO_UDP &&
	    p->l4_proto != IPPROTO_ICMP && p->l4_proto != IPPROTO_ICMPV6)
		return;
	sender_is_lo = flow_key_fill(&key, p);

	/*
	 * Look up before inserting: an LRU insert takes (and may evict) a
	 * node before it checks BPF_NOEXIST, so blind inserts of known flows
	 * would evict live ones.
	 */
	val = bpf_map_lookup_elem(&pal_flows, &key);
	if (val && p->l4_proto == IPPROTO_TCP &&
	    (p->tcp_flags & (PAL_TCP_SYN | PAL_TCP_ACK)) == PAL_TCP_SYN && flow_closed(val)) {
		flow_end(&key, val, flow_close_reason(val), p->now_ns);
		val = NULL;
	}
	if (!val) {
		if (!flow_may_start(p))
			return;
		val = flow_insert(skb, p, &key, sender_is_lo);
		if (!val)
			return;
	}

	to_client = sender_is_lo != val->client_is_lo;
	if (val->ifindex == 0)
		flow_adopt_seeded(skb, p, val, !to_client);
	__sync_fetch_and_add(&val->pkts[to_client], p->segs);
	__sync_fetch_and_add(&val->bytes[to_client], p->frame_len);
	if (p->flow_pay)
		__sync_fetch_and_add(&val->payload_bytes[to_client], p->flow_pay);
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
}

/* ------------------------------------------------------------------------ */
/* Flow sweeper                                                             */
/* ------------------------------------------------------------------------ */

/*
 * A kernel timer walks pal_flows every sweep_interval_ns (pal_flow_config):
 *   - a closed TCP flow (FIN both ways, or RST) whose last packet is
 *     PAL_FLOW_CLOSE_LINGER_NS old is deleted and its end record (reason
 *     fin or rst) written;
 *   - any other flow idle for longer than its protocol's timeout is
 *     deleted and its end record (reason timeout) written (one end record
 *     per flow: only the caller whose delete succeeds reports);
 *   - a seeded flow (PAL_FLOW_F_ANNOUNCE) gets its start record;
 *   - a flow whose last start/update record is update_interval_ns old gets
 *     an update record.
 * Idle expiry thus needs neither the workers (their FDs are read-only in
 * spirit: they never write maps) nor a running supervisor. The walk runs in
 * softirq context; its cost is linear in the table (PAL_FLOW_ENTRIES) and is
 * reported in pal_flow_sweep.walk_ns.
 *
 * Race, accepted and documented: a packet that arrives while the sweeper
 * deletes its (idle) flow updates the deleted entry, and its next packet
 * starts a new flow.
 */
/*
 * How long a closed TCP flow (FIN both ways, or RST) stays after its last
 * packet, counting the final ACKs and retransmissions, before the sweeper
 * reports its end (capped by the TCP idle timeout).
 */
#define PAL_FLOW_CLOSE_LINGER_NS 1000000000ULL

/* Delay of the first walk after (re)arming. */
#define PAL_SWEEP_FIRST_NS 1000000ULL

struct pal_sweep_ctx {
	__u64 now_ns;
	__u64 idle_ns;
	__u64 tcp_idle_ns;
	__u64 update_ns;
	__u64 linger_ns;
	__u64 live;
};

static long sweep_one(void *map, struct pal_flow_key *key, struct pal_flow_value *val,
		      struct pal_sweep_ctx *ctx)
{
	__u64 idle = key->l4_proto == IPPROTO_TCP ? ctx->tcp_idle_ns : ctx->idle_ns;
	__u64 last = val->last_seen_ns;

	if (val->flags & PAL_FLOW_F_ANNOUNCE) {
		val->flags &= ~PAL_FLOW_F_ANNOUNCE;
		val->last_report_ns = ctx->now_ns;
		flow_stat_inc(PAL_FLOW_STAT_SEEDED);
		emit_flow(key, val, PAL_KIND_FLOW_START, PAL_FLOW_REASON_NONE, ctx->now_ns);
	}
	if (key->l4_proto == IPPROTO_TCP && flow_closed(val)) {
		if (last < ctx->now_ns && ctx->now_ns - last > ctx->linger_ns) {
			flow_end(key, val, flow_close_reason(val), ctx->now_ns);
			return 0;
		}
	} else if (idle && last < ctx->now_ns && ctx->now_ns - last > idle) {
		flow_end(key, val, PAL_FLOW_REASON_TIMEOUT, ctx->now_ns);
		return 0;
	}
	ctx->live++;
	if (ctx->update_ns && ctx->now_ns - val->last_report_ns >= ctx->update_ns) {
		val->last_report_ns = ctx->now_ns;
		flow_stat_inc(PAL_FLOW_STAT_UPDATES);
		emit_flow(key, val, PAL_KIND_FLOW_UPDATE, PAL_FLOW_REASON_NONE, ctx->now_ns);
	}
	return 0;
}

static int flow_sweep(void *map, __u32 *key, struct pal_flow_timer *t)
{
	__u32 zero = 0;
	struct pal_flow_config *cfg = bpf_map_lookup_elem(&pal_flow_config, &zero);
	struct pal_flow_sweep *out = bpf_map_lookup_elem(&pal_flow_sweep, &zero);
	struct pal_sweep_ctx ctx = {};

	if (!cfg || !out || !cfg->sweep_interval_ns)
		return 0; /* stopped: the supervisor re-arms it */
	ctx.now_ns = bpf_ktime_get_boot_ns();
	ctx.idle_ns = cfg->idle_timeout_ns;
	ctx.tcp_idle_ns = cfg->tcp_idle_timeout_ns;
	ctx.update_ns = cfg->update_interval_ns;
	ctx.linger_ns = PAL_FLOW_CLOSE_LINGER_NS < ctx.tcp_idle_ns ? PAL_FLOW_CLOSE_LINGER_NS
								     : ctx.tcp_idle_ns;
	bpf_for_each_map_elem(&pal_flows, sweep_one, &ctx, 0);

	out->sweeps++;
	out->last_sweep_ns = ctx.now_ns;
	out->live = ctx.live;
	out->walk_ns = bpf_ktime_get_boot_ns() - ctx.now_ns;
	bpf_timer_start(&t->timer, cfg->sweep_interval_ns, 0);
	return 0;
}

/*
 * Arms the sweeper: run by the supervisor with BPF_PROG_TEST_RUN after every
 * load (never attached). Initialising an armed timer fails with EBUSY and is
 * fine; setting the callback again points the timer at this program's code,
 * so an upgraded object takes over a pinned timer. Returns 0 on success, or
 * the step that failed.
 */
SEC("classifier")
int pal_flow_timer_arm(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct pal_flow_timer *t = bpf_map_lookup_elem(&pal_flow_timer, &zero);
	struct pal_flow_config *cfg = bpf_map_lookup_elem(&pal_flow_config, &zero);
	long err;

	if (!t || !cfg)
		return 1;
	if (!cfg->sweep_interval_ns)
		return 2;
	err = bpf_timer_init(&t->timer, &pal_flow_timer, PAL_CLOCK_BOOTTIME);
	if (err && err != -EBUSY)
		return 3;
	if (bpf_timer_set_callback(&t->timer, flow_sweep))
		return 4;
	/* First walk at once (it announces freshly seeded flows), then every period. */
	if (bpf_timer_start(&t->timer, PAL_SWEEP_FIRST_NS, 0))
		return 5;
	return 0;
}

/* IP policy: XDP and TC drop programs and their maps (see the file). */
#include "ip_policy.bpf.h"

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

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

/* Not inlined: its header copies get a frame of their own, off pal_dns_udp()'s call chain. */
static __attribute__((noinline)) enum pal_parse parse(struct __sk_buff *skb, struct pal_pkt *p)
{
	enum pal_parse res;
	__u32 l3_off;
	__u16 ethertype;

	res = parse_l2(skb, p, &l3_off, &ethertype);
	if (res != PAL_PARSE_OK)
		return res;
	if (ethertype == ETH_P_IP)
		res = parse_ipv4(skb, p, l3_off);
	else if (ethertype == ETH_P_IPV6)
		res = parse_ipv6(skb, p, l3_off);
	else
		return PAL_PARSE_IGNORE; /* ARP, LLDP, ...: silently */
	if (res != PAL_PARSE_OK)
		return res;
	return parse_l4(skb, p);
}

static __always_inline int pal_observe(struct __sk_buff *skb, __u8 direction)
{
	struct pal_pkt p = {};
	int verdict;

	stat_inc(PAL_STATS_GLOBAL, PAL_STAT_RECORDS);
	p.direction = direction;
	switch (parse(skb, &p)) {
	case PAL_PARSE_OK:
		break;
	case PAL_PARSE_SHORT:
		stat_inc(PAL_STATS_GLOBAL, PAL_STAT_NOT_PARSED);
		return TC_ACT_UNSPEC;
	default:
		return TC_ACT_UNSPEC;
	}
	p.now_ns = bpf_ktime_get_boot_ns();
	p.segs = skb->gso_segs ? skb->gso_segs : 1;
	flow_sizes(skb, &p);

	/* A DNS rewrite happens in here; the flow table works from `p` alone. */
	verdict = classify_payload(skb, &p);
	flow_update(skb, &p);
	return verdict;
}

SEC("classifier")
int pal_tc_ingress(struct __sk_buff *skb)
{
	return pal_observe(skb, PAL_DIR_INGRESS);
}

SEC("classifier")
int pal_tc_egress(struct __sk_buff *skb)
{
	return pal_observe(skb, PAL_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
