/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * palisade.bpf.c: Palisade's traffic observer, attached as a TC classifier
 * on ingress and egress of every monitored interface.
 *
 * It never changes a packet's fate (always TC_ACT_UNSPEC, which TCX reads as
 * TCX_NEXT). Per packet it:
 *   1. counts the packet (pal_stats, global group, PAL_STAT_RECORDS);
 *   2. parses Ethernet (one VLAN tag, in the frame or hardware-accelerated),
 *      IPv4 or IPv6 (up to PAL_IPV6_MAX_EXT extension headers), TCP/UDP;
 *   3. copies DNS, DHCP and TLS-handshake payload prefixes into their ring
 *      buffers, one worker per ring;
 *   4. keeps a per-flow counter entry in pal_flows and reports flow start and
 *      end (FIN both ways, or RST) to rb_flow.
 *
 * Every record is one struct pal_record_hdr followed by payload_len bytes
 * (records.h). Records are assembled in a per-CPU scratch map and copied with
 * bpf_ringbuf_output() so that their length is exactly what was captured.
 *
 * All packet bytes are read with bpf_skb_load_bytes(): it works on
 * non-linear skbs (GRO/GSO, paged frags) and gives the verifier nothing to
 * prove about packet pointers. Header reads are small and fixed-size; payload
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
#define PAL_IP_FRAG_OFFSET 0x1fff /* fragment offset bits of iphdr.frag_off */

#define PAL_PORT_DNS 53
#define PAL_PORT_DHCP_SERVER 67
#define PAL_PORT_DHCP_CLIENT 68

#define PAL_TLS_CONTENT_HANDSHAKE 22
#define PAL_TLS_MAJOR_VERSION 3

/* TCP flag bits, as in byte 13 of the TCP header. */
#define PAL_TCP_FIN 0x01
#define PAL_TCP_SYN 0x02
#define PAL_TCP_RST 0x04
#define PAL_TCP_FLAGS_OFFSET 13

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

/*
 * Per-CPU record under construction: header plus the largest payload. Too
 * big for the 512-byte BPF stack. Private to one program run (TC programs do
 * not nest on a CPU), so it is not pinned.
 */
struct pal_scratch {
	struct pal_record_hdr hdr;
	__u8 payload[PAL_CAP_MAX];
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
	__u32 l4_off;     /* offset of the L4 header in the skb */
	__u32 l4_end;     /* end of the IP packet (Ethernet padding excluded) */
	__u32 pay_off;    /* offset of the L4 payload */
	__u32 pay_len;    /* L4 payload bytes in this packet */
	__u32 segs;       /* packets this skb stands for (GSO/GRO), >= 1 */
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
	__u64 flags = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= pal_wakeup_bytes
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

/*
 * Ethernet and at most one VLAN tag. A hardware-accelerated tag
 * (skb->vlan_present) is the outermost one, so it wins over a tag in the
 * frame; either way the frame tag is skipped to reach L3.
 */
static __always_inline enum pal_parse parse_l2(struct __sk_buff *skb, struct pal_pkt *p,
					       __u32 *l3_off, __u16 *ethertype)
{
	struct ethhdr eth;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return PAL_PARSE_SHORT;
	__builtin_memcpy(p->src_mac, eth.h_source, ETH_ALEN);
	__builtin_memcpy(p->dst_mac, eth.h_dest, ETH_ALEN);
	*ethertype = bpf_ntohs(eth.h_proto);
	*l3_off = sizeof(eth);

	if (skb->vlan_present) {
		p->flags |= PAL_FLAG_VLAN;
		p->vlan_id = skb->vlan_tci & PAL_VLAN_VID_MASK;
	}
	if (*ethertype == ETH_P_8021Q || *ethertype == ETH_P_8021AD) {
		struct {
			__be16 tci;
			__be16 ethertype;
		} tag;

		if (bpf_skb_load_bytes(skb, sizeof(eth), &tag, sizeof(tag)) < 0)
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

	if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
		return PAL_PARSE_SHORT;
	if (ip.version != 4 || ip.ihl < 5)
		return PAL_PARSE_SHORT;
	ihl_bytes = ip.ihl * 4;
	set_l3_end(skb, p, l3_off, bpf_ntohs(ip.tot_len));
	if (p->l3_len < ihl_bytes)
		return PAL_PARSE_SHORT;
	if (bpf_ntohs(ip.frag_off) & PAL_IP_FRAG_OFFSET)
		return PAL_PARSE_IGNORE;

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

	if (bpf_skb_load_bytes(skb, l3_off, &ip6, sizeof(ip6)) < 0)
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
		if (bpf_skb_load_bytes(skb, off, &ext, sizeof(ext)) < 0)
			return PAL_PARSE_SHORT;
		nexthdr = ext.nexthdr;
		off += (ext.hdrlen + 1) * 8;
	}
	if (nexthdr == IPPROTO_FRAGMENT)
		return PAL_PARSE_IGNORE;
	if (ipv6_is_skippable_ext(nexthdr) || off > p->l4_end)
		return PAL_PARSE_SHORT;

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

		if (bpf_skb_load_bytes(skb, p->l4_off, &th, sizeof(th)) < 0)
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

		if (bpf_skb_load_bytes(skb, p->l4_off, &uh, sizeof(uh)) < 0)
			return PAL_PARSE_SHORT;
		p->pay_off = p->l4_off + sizeof(uh);
		p->sport = bpf_ntohs(uh.source);
		p->dport = bpf_ntohs(uh.dest);
		udp_len = bpf_ntohs(uh.len);
		break;
	}
	case IPPROTO_ICMP:
		if (p->ip_version != 4)
			return PAL_PARSE_IGNORE;
		return PAL_PARSE_OK; /* ports stay 0, no payload records */
	case IPPROTO_ICMPV6:
		if (p->ip_version != 6)
			return PAL_PARSE_IGNORE;
		return PAL_PARSE_OK;
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
	if (bpf_skb_load_bytes(skb, p->pay_off, start, sizeof(start)) < 0)
		return 0;
	return start[0] == PAL_TLS_CONTENT_HANDSHAKE && start[1] == PAL_TLS_MAJOR_VERSION;
}

static __always_inline void classify_payload(struct __sk_buff *skb, const struct pal_pkt *p)
{
	int tcp = p->l4_proto == IPPROTO_TCP;

	if (!tcp && p->l4_proto != IPPROTO_UDP)
		return;
	if (either_port(p, PAL_PORT_DNS)) {
		/* DNS over TCP: segments without payload are just ACKs. */
		if (!tcp || p->pay_len > 0)
			emit_payload(skb, p, &rb_dns, PAL_RING_DNS, PAL_KIND_DNS, PAL_CAP_DNS);
		return;
	}
	if (!tcp && (either_port(p, PAL_PORT_DHCP_SERVER) || either_port(p, PAL_PORT_DHCP_CLIENT))) {
		emit_payload(skb, p, &rb_dhcp, PAL_RING_DHCP, PAL_KIND_DHCP, PAL_CAP_DHCP);
		return;
	}
	if (tcp && is_tls_handshake(skb, p))
		emit_payload(skb, p, &rb_tls, PAL_RING_TLS, PAL_KIND_TLS, PAL_CAP_TLS);
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
	key->vlan_id = (p->flags & PAL_FLAG_VLAN) ? p->vlan_id : 0;
	return sender_is_lo;
}

/*
 * Emits a flow start or end record. Header oriented client -> server from
 * the key and value (not from this packet), payload one pal_flow_record.
 */
static __always_inline void emit_flow(struct __sk_buff *skb, const struct pal_pkt *p,
				      const struct pal_flow_key *key,
				      const struct pal_flow_value *val, __u16 kind, __u8 reason)
{
	struct pal_scratch *s = scratch_get();
	struct pal_flow_record *rec;
	struct pal_record_hdr *hdr;

	if (!s)
		return;
	hdr = &s->hdr;
	rec = (struct pal_flow_record *)s->payload;

	hdr_fill(hdr, skb, p, kind);
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
	hdr->len = sizeof(*hdr) + sizeof(*rec);
	hdr->payload_len = sizeof(*rec);
	hdr->orig_payload_len = sizeof(*rec);

	rec->first_seen_ns = val->first_seen_ns;
	rec->last_seen_ns = val->last_seen_ns;
	rec->pkts_toserver = val->pkts[0];
	rec->pkts_toclient = val->pkts[1];
	rec->bytes_toserver = val->bytes[0];
	rec->bytes_toclient = val->bytes[1];
	rec->tcp_flags_toserver = val->tcp_flags[0];
	rec->tcp_flags_toclient = val->tcp_flags[1];
	rec->end_reason = reason;
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

static __always_inline void flow_update(struct __sk_buff *skb, const struct pal_pkt *p)
{
	struct pal_flow_key key = {};
	struct pal_flow_value *val;
	union pal_flag_word set = {}, old;
	__u8 reason = PAL_FLOW_REASON_NONE;
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
	if (!val) {
		struct pal_flow_value fresh = {};
		long err;

		if (!flow_may_start(p))
			return;
		fresh.first_seen_ns = p->now_ns;
		fresh.last_seen_ns = p->now_ns;
		fresh.pkts[0] = p->segs;
		fresh.bytes[0] = p->l3_len;
		fresh.tcp_flags[0] = p->tcp_flags;
		fresh.client_is_lo = sender_is_lo;
		fresh.fin_mask = (p->tcp_flags & PAL_TCP_FIN) ? PAL_FIN_CLIENT : 0;
		fresh.ifindex = skb->ifindex;
		__builtin_memcpy(fresh.client_mac, p->src_mac, ETH_ALEN);
		__builtin_memcpy(fresh.server_mac, p->dst_mac, ETH_ALEN);

		err = bpf_map_update_elem(&pal_flows, &key, &fresh, BPF_NOEXIST);
		if (err == 0) {
			emit_flow(skb, p, &key, &fresh, PAL_KIND_FLOW_START,
				  PAL_FLOW_REASON_NONE);
			return;
		}
		if (err != -EEXIST) {
			stat_inc(PAL_RING_FLOW, PAL_STAT_MAP_FULL);
			return;
		}
		/* Another CPU inserted it meanwhile: account as an update. */
		val = bpf_map_lookup_elem(&pal_flows, &key);
		if (!val)
			return;
	}

	to_client = sender_is_lo != val->client_is_lo;
	__sync_fetch_and_add(&val->pkts[to_client], p->segs);
	__sync_fetch_and_add(&val->bytes[to_client], p->l3_len);
	val->last_seen_ns = p->now_ns;

	/* Constant indexes only: the verifier refuses variable stack offsets here. */
	set.bytes[0] = to_client ? 0 : p->tcp_flags;
	set.bytes[1] = to_client ? p->tcp_flags : 0;
	if (p->tcp_flags & PAL_TCP_FIN)
		set.bytes[PAL_FLAG_WORD_FIN] = to_client ? PAL_FIN_SERVER : PAL_FIN_CLIENT;
	/*
	 * Most segments bring no new flag (ACK again): skip the atomic, a
	 * locked write to a line both directions share. A RST always reaches
	 * the atomic: its flow is deleted on the first one.
	 */
	if ((*(volatile __u32 *)val->tcp_flags & set.word) == set.word)
		return;
	old.word = __sync_fetch_and_or((__u32 *)val->tcp_flags, set.word);

	if (p->tcp_flags & PAL_TCP_RST)
		reason = PAL_FLOW_REASON_RST;
	else if (old.bytes[PAL_FLAG_WORD_FIN] != PAL_FIN_BOTH &&
		 (old.bytes[PAL_FLAG_WORD_FIN] | set.bytes[PAL_FLAG_WORD_FIN]) == PAL_FIN_BOTH)
		reason = PAL_FLOW_REASON_FIN; /* this packet is the second FIN */
	if (reason == PAL_FLOW_REASON_NONE)
		return;

	/*
	 * Copy before deleting: a deleted LRU node goes straight back to the
	 * free list and another CPU may reuse it. Only the CPU whose delete
	 * succeeds reports the end, so there is one end record per flow.
	 */
	struct pal_flow_value last = *val;

	if (bpf_map_delete_elem(&pal_flows, &key) == 0)
		emit_flow(skb, p, &key, &last, PAL_KIND_FLOW_END, reason);
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

static __always_inline enum pal_parse parse(struct __sk_buff *skb, struct pal_pkt *p)
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

	classify_payload(skb, &p);
	flow_update(skb, &p);
	return TC_ACT_UNSPEC;
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
