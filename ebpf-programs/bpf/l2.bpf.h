/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * l2.bpf.h: the one Ethernet/VLAN walk of the object, l2_walk(), shared by
 * every program that looks at a frame: the TC observer (parse_l2() in
 * pkt.bpf.h) and the IP policy's XDP and TC programs (ip_parse() in
 * ip_policy.bpf.h). Also load_hdr(), the observer's header reader.
 *
 * VLAN: up to PAL_VLAN_MAX_TAGS (two) tags in the frame are skipped to reach
 * L3: one 802.1Q tag, or QinQ (an 802.1ad, 0x9100 or 802.1Q outer tag, then
 * the inner one). The VID reported is the outermost one's. On TC the kernel may
 * already have taken the outer tag out of the frame (skb->vlan_present,
 * hardware-accelerated or stripped before the hook): XDP sees both tags of
 * a double-tagged frame, TC then only the inner one. That tag is the
 * outermost, so its VID wins (l2_hw_tag()); the frame's tags are skipped
 * either way. A frame with more tags than PAL_VLAN_MAX_TAGS is PAL_L2_DEEP:
 * the observer ignores it (not IP); the IP policy, which cannot check it,
 * drops it while rules are in force (counted vlan_too_deep) and passes it
 * otherwise.
 *
 * Included by pkt.bpf.h, ip_policy.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_L2_BPF_H
#define PALISADE_L2_BPF_H

#include "common.bpf.h"

#define PAL_VLAN_VID_MASK 0x0fff
#define PAL_VLAN_MAX_TAGS 2 /* in-frame tags skipped: 802.1Q, or QinQ */
#define PAL_VLAN_TAG_LEN 4
/* The pre-802.1ad QinQ outer TPID some switches still send (not in every UAPI header). */
#define PAL_ETH_P_QINQ1 0x9100

/* Header reads go straight to the linear packet data below this offset. */
#define PAL_DIRECT_MAX 256

/* Where `len` bytes at `off` sit in the skb's linear data, or NULL when they do not. */
static __always_inline void *hdr_at(struct __sk_buff *skb, __u32 off, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (off < PAL_DIRECT_MAX && data + off + len <= end)
		return data + off;
	return NULL;
}

/*
 * Copies `len` (a constant at every call site) bytes of an IP or L4 header
 * at `off` to `to`: straight from the packet when they are in its linear
 * part (the common case: headers are linear, a helper call costs ~15 ns),
 * else with bpf_skb_load_bytes(), which also reads paged data. Returns 0 or
 * < 0 like the helper.
 *
 * The copy is told the header is 4-byte aligned, as it is in the verifier's
 * model (NET_IP_ALIGN: IP starts 4-aligned after 14 + 4n bytes of Ethernet
 * and tags; IP options, TCP options and IPv6 extension headers are 4- and
 * 8-byte multiples), so clang reads it 4 bytes at a time, not byte by byte
 * (byte-wise, the IPv4 header alone took ~60 instructions). Machines with
 * strict alignment have the verifier check exactly that model; the others
 * load any alignment.
 */
static __always_inline long load_hdr(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	void *at = hdr_at(skb, off, len);

	if (at) {
		__builtin_memcpy(to, __builtin_assume_aligned(at, 4), len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

/* load_hdr() for Ethernet and VLAN tags: 2-byte aligned (EtherTypes at even offsets). */
static __always_inline long load_l2(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	void *at = hdr_at(skb, off, len);

	if (at) {
		__builtin_memcpy(to, __builtin_assume_aligned(at, 2), len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

/* How l2_walk() reads the frame; a constant at every call site. */
enum pal_l2_access {
	PAL_L2_SKB,    /* load_l2(): linear data when there, else bpf_skb_load_bytes() */
	PAL_L2_DIRECT, /* direct packet access to [data, end) only (XDP; TC after a pull) */
};

/* The frame l2_walk() reads. */
struct pal_frame {
	struct __sk_buff *skb;   /* PAL_L2_SKB */
	void *data;              /* PAL_L2_DIRECT: first byte of the frame */
	void *end;               /* PAL_L2_DIRECT: end of the linear data */
	enum pal_l2_access how;
};

/* Copies `len` (a constant) bytes at `off` of the frame to `to`: 0, or < 0 when not there. */
static __always_inline long frame_read(const struct pal_frame *f, __u32 off, void *to, __u32 len)
{
	if (f->how == PAL_L2_SKB)
		return load_l2(f->skb, off, to, len);
	if (f->data + off + len > f->end)
		return -1;
	/* Tags and EtherTypes sit at even offsets: let clang read them 16 bits at a time. */
	__builtin_memcpy(to, __builtin_assume_aligned(f->data + off, 2), len);
	return 0;
}

/* What l2_walk() found (set when it returns PAL_L2_OK). */
struct pal_l2 {
	struct ethhdr eth; /* the Ethernet header (MAC addresses) */
	__u32 l3_off;      /* offset of what follows the last tag skipped */
	__be16 proto;      /* network order: the EtherType of what is at l3_off */
};

enum pal_l2_res {
	PAL_L2_OK,    /* l3_off, proto: what follows the tags (IP or not) */
	PAL_L2_SHORT, /* the frame ends inside the Ethernet header or a tag */
	PAL_L2_DEEP,  /* more than PAL_VLAN_MAX_TAGS tags in the frame */
};

static __always_inline int l2_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD) ||
	       proto == bpf_htons(PAL_ETH_P_QINQ1);
}

/*
 * A tag the kernel took out of the frame before a TC hook: the outermost one,
 * so its VID wins over the frame's tags.
 */
static __always_inline void l2_hw_tag(const struct __sk_buff *skb, __u8 *flags, __u16 *vlan_id)
{
	if (skb->vlan_present) {
		*flags |= PAL_FLAG_VLAN;
		*vlan_id = skb->vlan_tci & PAL_VLAN_VID_MASK;
	}
}

/*
 * Ethernet, then up to PAL_VLAN_MAX_TAGS VLAN tags (802.1Q or 802.1ad). The
 * first tag sets PAL_FLAG_VLAN in *flags and its VID in *vlan_id, unless
 * *flags already has PAL_FLAG_VLAN (a tag taken out of the frame: l2_hw_tag()).
 */
static __always_inline enum pal_l2_res l2_walk(const struct pal_frame *f, struct pal_l2 *l2,
					       __u8 *flags, __u16 *vlan_id)
{
	__u32 off = sizeof(struct ethhdr);
	__be16 proto;

	if (frame_read(f, 0, &l2->eth, sizeof(l2->eth)) < 0)
		return PAL_L2_SHORT;
	proto = l2->eth.h_proto;
#pragma unroll
	for (int i = 0; i < PAL_VLAN_MAX_TAGS; i++) {
		struct {
			__be16 tci;
			__be16 proto;
		} tag;

		if (!l2_is_vlan(proto))
			break;
		if (frame_read(f, off, &tag, sizeof(tag)) < 0)
			return PAL_L2_SHORT;
		if (!(*flags & PAL_FLAG_VLAN)) {
			*flags |= PAL_FLAG_VLAN;
			*vlan_id = bpf_ntohs(tag.tci) & PAL_VLAN_VID_MASK;
		}
		proto = tag.proto;
		off += PAL_VLAN_TAG_LEN;
	}
	l2->l3_off = off;
	l2->proto = proto;
	return l2_is_vlan(proto) ? PAL_L2_DEEP : PAL_L2_OK;
}

#endif /* PALISADE_L2_BPF_H */
