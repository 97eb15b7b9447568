/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * tls_capture.bpf.h: TLS handshakes followed across segments, both ways, on
 * any TCP port (records.h, "TLS handshake capture").
 *
 * A connection is followed from the first segment whose payload starts a
 * TLS handshake record holding a ClientHello or ServerHello (or an
 * SSLv2-format ClientHello): an entry in pal_tls_conns (LRU) remembers, per
 * direction, the sequence number of stream offset 0 and the offset of the
 * next TLS record header, and the flow entry's tls_follow byte says "look it
 * up". Every segment of a followed direction is copied to rb_tls as
 * PAL_KIND_TLS records (a struct pal_tls_seg, then up to PAL_CAP_TLS - 24
 * bytes; a longer segment makes several records, at most PAL_TLS_CHUNKS),
 * whatever its order: the worker puts bytes in order by offset and drops
 * retransmitted ones. The record walk stops a direction at the first record
 * that is not handshake or ChangeCipherSpec (application data: the
 * handshake turned encrypted; an alert): its bytes are not copied. A record
 * header split across segments (or reordered away) leaves the walk blind:
 * the direction is then copied up to PAL_TLS_MAX_BYTES. Bounds: that many
 * bytes per direction, PAL_TLS_MAX_NS after the first hello; a FIN or RST
 * ends the following. Each end is counted (pal_tls_stats).
 *
 * Cost for TCP that is not a handshake: the flow entry's tls_follow byte
 * (read by flow_update(), which looks the entry up anyway) and, for a
 * segment with payload, a 6-byte load that is not a hello start.
 *
 * Included by capture.bpf.h.
 */
#ifndef PALISADE_TLS_CAPTURE_BPF_H
#define PALISADE_TLS_CAPTURE_BPF_H

#include "flows.bpf.h"

#define PAL_TLS_CONTENT_HANDSHAKE 22
#define PAL_TLS_CONTENT_CCS 20
#define PAL_TLS_HS_CLIENT_HELLO 1
#define PAL_TLS_HS_SERVER_HELLO 2
#define PAL_TLS_REC_HDR 5
#define PAL_TLS_WALK_MAX 8 /* record headers read per segment */
/* Segment bytes per record: the cap less the segment header. */
#define PAL_TLS_SEG_DATA (PAL_CAP_TLS - sizeof(struct pal_tls_seg))

_Static_assert(sizeof(struct pal_tls_seg) == 24, "pal_tls_seg is 24 bytes");
_Static_assert(PAL_TLS_MAX_BYTES < (1u << 30), "offsets stay far from u32 wrap-around");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PAL_TLS_CONNS);
	__type(key, struct pal_flow_key);
	__type(value, struct pal_tls_conn);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_tls_conns SEC(".maps");

/* Counters, key = PAL_TLS_STAT_* (records.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_TLS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_tls_stats SEC(".maps");

static __always_inline void tls_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_tls_stats, &slot);

	if (value)
		*value += 1; /* per-CPU slot, programs do not nest */
}

/*
 * Whether the payload starts a hello: PAL_TLS_DIR_CLIENT for a ClientHello
 * (TLS record 22/3.x with handshake type 1, or an SSLv2 record: high bit,
 * msg_type 1, version 0x0002 or 3.x), PAL_TLS_DIR_SERVER + 1 for a
 * ServerHello, 0 for anything else.
 */
static __always_inline int tls_hello_start(struct __sk_buff *skb, const struct pal_pkt *p)
{
	__u8 b[6];

	if (p->pay_len < sizeof(b) || load_hdr(skb, p->pay_off, b, sizeof(b)) < 0)
		return 0;
	if (b[0] == PAL_TLS_CONTENT_HANDSHAKE && b[1] == 3) {
		if (b[5] == PAL_TLS_HS_CLIENT_HELLO)
			return PAL_TLS_DIR_CLIENT + 1;
		if (b[5] == PAL_TLS_HS_SERVER_HELLO)
			return PAL_TLS_DIR_SERVER + 1;
		return 0;
	}
	if ((b[0] & 0x80) && b[2] == PAL_TLS_HS_CLIENT_HELLO &&
	    (b[3] == 3 || (b[3] == 0 && b[4] == 2)))
		return PAL_TLS_DIR_CLIENT + 1;
	return 0;
}

/* Sets the flow entry's tls_follow byte (plain store: every writer agrees). */
static __always_inline void flow_set_tls(const struct pal_flow_key *key, __u8 on)
{
	void *table = flow_table(key);
	struct pal_flow_value *val;

	if (!table)
		return;
	val = bpf_map_lookup_elem(table, key);
	if (val && val->tls_follow != on)
		val->tls_follow = on;
}

/* Stops following: the entry goes, and the flow's byte with it. */
static __always_inline void tls_end(const struct pal_flow_key *key)
{
	bpf_map_delete_elem(&pal_tls_conns, key);
	flow_set_tls(key, 0);
}

/* Sequence number of the first payload byte (a SYN takes one). */
static __always_inline __u32 data_seq(const struct pal_pkt *p)
{
	return p->tcp_seq + ((p->tcp_flags & PAL_TCP_SYN) ? 1 : 0);
}

/*
 * Starts following at a hello sent by the packet's sender: its direction's
 * stream starts at this segment; the other one at the acknowledged
 * sequence number when the segment carries an ACK, else at the first
 * handshake record it sends.
 */
static __always_inline struct pal_tls_conn *tls_start(const struct pal_flow_key *key,
						      const struct pal_pkt *p, int sender_is_lo,
						      int hello)
{
	struct pal_tls_conn fresh = {};
	int has_ack = (p->tcp_flags & PAL_TCP_ACK) != 0;

	fresh.start_ns = p->now_ns;
	if (hello == PAL_TLS_DIR_CLIENT + 1) {
		fresh.client_is_lo = sender_is_lo;
		fresh.base[0] = data_seq(p);
		fresh.state[0] = PAL_TLS_ST_WALK;
		fresh.base[1] = p->tcp_ack;
		fresh.state[1] = has_ack ? PAL_TLS_ST_WALK : PAL_TLS_ST_NO_BASE;
	} else {
		fresh.client_is_lo = !sender_is_lo;
		fresh.base[1] = data_seq(p);
		fresh.state[1] = PAL_TLS_ST_WALK;
		fresh.base[0] = p->tcp_ack;
		fresh.state[0] = has_ack ? PAL_TLS_ST_WALK : PAL_TLS_ST_NO_BASE;
	}
	if (bpf_map_update_elem(&pal_tls_conns, key, &fresh, BPF_NOEXIST) == 0)
		tls_stat_inc(PAL_TLS_STAT_FOLLOWED);
	/* (EEXIST: another CPU started it meanwhile; use its entry.) */
	flow_set_tls(key, 1);
	return bpf_map_lookup_elem(&pal_tls_conns, key);
}

/* What a segment's records say (tls_emit()). */
struct tls_emit_args {
	__u64 conn_ns;
	__u32 offset; /* stream offset of the first byte copied */
	__u32 seq;    /* its sequence number */
	__u32 at;     /* its payload offset in the skb */
	__u32 len;    /* bytes to copy */
	__u8 dir;
	__u8 flags;
};

/*
 * Emits the record of a segment's bytes [done, done + n) with n at most
 * PAL_TLS_SEG_DATA; returns n, or 0 when there is nothing (left) to emit.
 * Global: verified once.
 */
__attribute__((noinline)) int tls_emit_one(struct __sk_buff *skb, struct pal_pkt *p,
					   const struct tls_emit_args *a, __u32 done)
{
	struct pal_scratch *s = scratch_get();
	struct pal_tls_seg *seg;
	__u32 n;
	__u8 f;

	if (!s || !p || !a || done >= a->len)
		return 0;
	n = a->len - done;
	if (n > PAL_TLS_SEG_DATA)
		n = PAL_TLS_SEG_DATA;
	f = a->flags;
	if (done + n < a->len)
		f &= ~(PAL_TLS_SEG_LAST | PAL_TLS_SEG_FIN);
	if (done > 0)
		f &= ~PAL_TLS_SEG_FIRST;
	/* The compiler knows 1 <= n here; the verifier must see it checked. */
	asm volatile("" : "+r"(n));
	if (n == 0 || n > PAL_TLS_SEG_DATA)
		return 0;
	seg = (struct pal_tls_seg *)s->payload;
	if (bpf_skb_load_bytes(skb, a->at + done, s->payload + sizeof(*seg), n) < 0) {
		stat_inc(PAL_STATS_GLOBAL, PAL_STAT_NOT_PARSED);
		return 0;
	}
	hdr_fill(&s->hdr, skb, p, PAL_KIND_TLS, pkt_time(p));
	s->hdr.len = sizeof(s->hdr) + sizeof(*seg) + n;
	s->hdr.payload_len = sizeof(*seg) + n;
	s->hdr.orig_payload_len = sizeof(*seg) + p->pay_len;
	seg->conn_ns = a->conn_ns;
	seg->offset = a->offset + done;
	seg->seq = a->seq + done;
	seg->dir = a->dir;
	seg->flags = f;
	seg->_pad = 0;
	seg->_pad2 = 0;
	ring_output(&rb_tls, PAL_RING_TLS, s, sizeof(s->hdr) + sizeof(*seg) + n, 0);
	return n;
}

/*
 * Copies a->len bytes of the payload from skb offset a->at as records of
 * at most PAL_TLS_SEG_DATA bytes (at most PAL_TLS_CHUNKS of them); counts
 * a segment longer than that.
 */
static __always_inline void tls_emit(struct __sk_buff *skb, struct pal_pkt *p,
				     const struct tls_emit_args *a)
{
	__u32 done = 0;

	for (int i = 0; i < PAL_TLS_CHUNKS; i++) {
		int n = tls_emit_one(skb, p, a, done);

		if (n <= 0)
			return;
		done += n;
	}
	if (done < a->len)
		tls_stat_inc(PAL_TLS_STAT_CHUNKS_CUT);
}

/* Record walk of one segment: its input and its result. */
struct tls_walk {
	__u32 next_rec; /* in and out: stream offset of the next record header */
	__u32 off;      /* stream offset of the segment's first byte */
	__u32 end;      /* ... and of the byte after its last */
	__u32 at;       /* skb offset of `off` */
	__u32 copy_end; /* out: where copying stops (stream offset) */
	__u8 client;    /* the client's direction (SSLv2 hello possible at 0) */
	__u8 last;      /* out: a record that ends the handshake's plaintext starts at copy_end */
	__u8 blind;     /* out: a record header could not be read */
};

/*
 * Follows the record headers that start inside the segment [off, end).
 * Global: verified once.
 */
__attribute__((noinline)) int tls_walk(struct __sk_buff *skb, struct tls_walk *w)
{
	if (!w)
		return 0;
	for (int i = 0; i < PAL_TLS_WALK_MAX; i++) {
		__u32 nr = w->next_rec, off = w->off, end = w->end;
		__u8 h[PAL_TLS_REC_HDR];
		__u32 next;

		if (nr < off || nr >= end)
			return 0; /* not in this segment (a gap before it, or later) */
		if (nr + PAL_TLS_REC_HDR > end) {
			w->blind = 1; /* split across segments */
			return 0;
		}
		if (bpf_skb_load_bytes(skb, w->at + (nr - off), h, sizeof(h)) < 0) {
			w->blind = 1;
			return 0;
		}
		if (nr == 0 && w->client && (h[0] & 0x80)) {
			next = 2 + (((__u32)(h[0] & 0x7f) << 8) | h[1]); /* SSLv2 record */
		} else if (h[1] == 3 && (h[0] == PAL_TLS_CONTENT_HANDSHAKE || h[0] == PAL_TLS_CONTENT_CCS)) {
			next = nr + PAL_TLS_REC_HDR + (((__u32)h[3] << 8) | h[4]);
		} else {
			/* Application data, alert, or not TLS: plaintext ends here. */
			w->copy_end = nr;
			w->last = 1;
			return 0;
		}
		w->next_rec = next;
	}
	return 0;
}

/*
 * One TCP packet of a followed connection (c), or of one that may start
 * being followed. Global: verified once, with *p unknown, off the
 * observer's frame.
 */
__attribute__((noinline)) int tls_capture(struct __sk_buff *skb, struct pal_pkt *p)
{
	struct tls_emit_args e = {};
	struct pal_flow_key key __attribute__((aligned(8))) = {};
	struct tls_walk w = {};
	struct pal_tls_conn *c = NULL;
	int sender_is_lo, hello = 0, dir, fin;
	__u32 seq, off, end, skip = 0;
	__u8 st, flags = 0;

	if (!p)
		return 0;
	fin = (p->tcp_flags & (PAL_TCP_FIN | PAL_TCP_RST)) != 0;
	if (!p->tls_follow && p->flow_start_ns) {
		/* Known flow, not followed: only a hello can start it. */
		hello = tls_hello_start(skb, p);
		if (!hello)
			return 0;
	} else if (p->pay_len == 0 && !fin) {
		return 0;
	}
	/* A followed connection's start and age are kept in exact time (its records are). */
	pkt_time(p);
	sender_is_lo = flow_key_fill(&key, p);
	if (!hello && (p->tcp_flags & (PAL_TCP_SYN | PAL_TCP_ACK)) == PAL_TCP_SYN) {
		/* A new connection on the tuple (port reuse): forget the old one. */
		tls_end(&key);
		hello = tls_hello_start(skb, p); /* TCP Fast Open: a hello in the SYN */
		if (!hello)
			return 0;
	}
	if (!hello) {
		c = bpf_map_lookup_elem(&pal_tls_conns, &key);
		if (!c) {
			if (p->tls_follow)
				flow_set_tls(&key, 0); /* evicted, or ended on another CPU */
			hello = tls_hello_start(skb, p);
			if (!hello)
				return 0;
		}
	}
	if (!c) {
		c = tls_start(&key, p, sender_is_lo, hello);
		if (!c)
			return 0;
	}

	if (p->now_ns - c->start_ns > PAL_TLS_MAX_NS) {
		tls_stat_inc(PAL_TLS_STAT_BOUND_TIME);
		tls_end(&key);
		/* A hello that comes this late starts a new handshake. */
		hello = tls_hello_start(skb, p);
		if (!hello)
			return 0;
		c = tls_start(&key, p, sender_is_lo, hello);
		if (!c)
			return 0;
	}
	dir = sender_is_lo == c->client_is_lo ? PAL_TLS_DIR_CLIENT : PAL_TLS_DIR_SERVER;
	st = dir ? c->state[1] : c->state[0];
	seq = data_seq(p);
	if (st == PAL_TLS_ST_NO_BASE && p->pay_len > 0 && tls_hello_start(skb, p)) {
		/* The peer of a hello sent without ACK (TCP Fast Open): its first hello. */
		if (dir) {
			c->base[1] = seq;
			c->state[1] = PAL_TLS_ST_WALK;
		} else {
			c->base[0] = seq;
			c->state[0] = PAL_TLS_ST_WALK;
		}
		st = PAL_TLS_ST_WALK;
	}
	if (p->pay_len == 0 || (st != PAL_TLS_ST_WALK && st != PAL_TLS_ST_BLIND))
		goto out;

	off = seq - (dir ? c->base[1] : c->base[0]);
	if ((off >= PAL_TLS_MAX_BYTES || (__s32)off < 0) && (hello = tls_hello_start(skb, p))) {
		/*
		 * A hello outside the followed stream: a new connection on the
		 * tuple whose SYN was not seen. Follow it instead.
		 */
		tls_end(&key);
		c = tls_start(&key, p, sender_is_lo, hello);
		if (!c)
			return 0;
		dir = sender_is_lo == c->client_is_lo ? PAL_TLS_DIR_CLIENT : PAL_TLS_DIR_SERVER;
		st = PAL_TLS_ST_WALK;
		off = 0;
	}
	if ((__s32)off < 0) {
		/* Starts before the followed stream (a retransmission of older bytes). */
		skip = -off;
		if (skip >= p->pay_len)
			goto out;
		off = 0;
	}
	if (off >= PAL_TLS_MAX_BYTES) {
		tls_stat_inc(PAL_TLS_STAT_BOUND_BYTES);
		st = PAL_TLS_ST_DONE;
		goto set_state;
	}
	end = off + (p->pay_len - skip);
	w.copy_end = end;
	if (st == PAL_TLS_ST_WALK) {
		w.next_rec = dir ? c->next_rec[1] : c->next_rec[0];
		w.off = off;
		w.end = end;
		w.at = p->pay_off + skip;
		w.client = dir == PAL_TLS_DIR_CLIENT;
		tls_walk(skb, &w);
		if (dir)
			c->next_rec[1] = w.next_rec;
		else
			c->next_rec[0] = w.next_rec;
		if (w.blind) {
			tls_stat_inc(PAL_TLS_STAT_BLIND);
			st = PAL_TLS_ST_BLIND;
		}
	}
	if (w.copy_end > PAL_TLS_MAX_BYTES) {
		w.copy_end = PAL_TLS_MAX_BYTES;
		flags |= PAL_TLS_SEG_CUT | PAL_TLS_SEG_LAST;
		tls_stat_inc(PAL_TLS_STAT_BOUND_BYTES);
		st = PAL_TLS_ST_DONE;
	}
	if (w.last) {
		flags |= PAL_TLS_SEG_LAST;
		tls_stat_inc(PAL_TLS_STAT_DONE);
		st = PAL_TLS_ST_DONE;
	}
	if (fin)
		flags |= PAL_TLS_SEG_FIN | PAL_TLS_SEG_LAST;
	if (off == 0 && skip == 0)
		flags |= PAL_TLS_SEG_FIRST;
	if (w.copy_end > off) {
		e.conn_ns = c->start_ns;
		e.offset = off;
		e.seq = seq + skip;
		e.at = p->pay_off + skip;
		e.len = w.copy_end - off;
		e.dir = dir;
		e.flags = flags;
		tls_emit(skb, p, &e);
		tls_stat_inc(PAL_TLS_STAT_SEGMENTS);
	}
set_state:
	if (dir)
		c->state[1] = st;
	else
		c->state[0] = st;
out:
	if (fin) {
		tls_stat_inc(PAL_TLS_STAT_CLOSED);
		tls_end(&key);
	} else if (c->state[0] == PAL_TLS_ST_DONE && c->state[1] == PAL_TLS_ST_DONE) {
		tls_end(&key);
	}
	return 0;
}

#endif /* PALISADE_TLS_CAPTURE_BPF_H */
