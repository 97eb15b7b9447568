/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * record.bpf.h: record emission of the TC observer. Every record is one
 * struct pal_record_hdr followed by payload_len bytes (records.h). Records
 * are assembled in a per-CPU scratch map (pal_scratch) and copied with
 * bpf_ringbuf_output() (ring_output(), common.bpf.h) so that their length is
 * exactly what was captured. Payloads are always copied with
 * bpf_skb_load_bytes(), bounded by the per-kind capture cap.
 *
 * The scratch also holds the DNS policy's working memory (struct
 * pal_dns_work: sized here, its bounds asserted in dns_policy.bpf.h).
 *
 * Included by dns_policy.bpf.h, capture.bpf.h, flows.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_RECORD_BPF_H
#define PALISADE_RECORD_BPF_H

#include "common.bpf.h"
#include "pkt.bpf.h"

/* DNS policy buffers (dns_policy.bpf.h checks they are big enough). */
#define PAL_DNS_NAME_BUF 256 /* >= PAL_DNS_NAME_MAX + 1, a power of two (index mask) */
#define PAL_DNS_OUT_BUF 512  /* >= 8 + PAL_DNS_HDR + PAL_DNS_WIRE_MAX + 4 + 3, power of two */

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
		       PAL_CAP_TLS <= PAL_CAP_MAX && PAL_CAP_QUIC <= PAL_CAP_MAX &&
		       sizeof(struct pal_flow_record) <= PAL_CAP_MAX,
	       "every payload must fit the scratch record");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_scratch);
} pal_scratch SEC(".maps");

static __always_inline struct pal_scratch *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&pal_scratch, &zero);
}

/* Header fields every record takes from the packet it was made for; ts: pkt_time(p). */
static __always_inline void hdr_fill(struct pal_record_hdr *hdr, const struct __sk_buff *skb,
				     const struct pal_pkt *p, __u16 kind, __u64 ts)
{
	hdr->magic = PAL_RECORD_MAGIC;
	hdr->abi_version = PAL_ABI_VERSION;
	hdr->kind = kind;
	hdr->ifindex = skb->ifindex;
	hdr->ts_boot_ns = ts;
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
	hdr->flow_start_ns = p->flow_start_ns;
}

/*
 * Emits a record of `kind` whose payload is the first `cap` bytes of the L4
 * payload. `cap` is a compile-time constant at every call site, and at most
 * PAL_CAP_MAX.
 */
static __always_inline void emit_payload(struct __sk_buff *skb, struct pal_pkt *p,
					 void *ring, __u32 group, __u16 kind, __u32 cap)
{
	struct pal_scratch *s = scratch_get();
	__u32 len = p->pay_len;
	int truncated = 0;

	if (!s || capture_off(group))
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
	hdr_fill(&s->hdr, skb, p, kind, pkt_time(p));
	if (truncated)
		s->hdr.flags |= PAL_FLAG_TRUNCATED;
	s->hdr.len = sizeof(s->hdr) + len;
	s->hdr.payload_len = len;
	s->hdr.orig_payload_len = p->pay_len;
	ring_output(ring, group, s, sizeof(s->hdr) + len, truncated);
}

#endif /* PALISADE_RECORD_BPF_H */
