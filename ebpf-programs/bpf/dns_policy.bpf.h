/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * dns_policy.bpf.h: the DNS domain policy's maps and its decision,
 * dns_policy(). What is done with a verdict (the NXDOMAIN rewrite, the
 * redirect, the drop) is in dns_rewrite.bpf.h; the caller, pal_dns_udp(),
 * is in dns_capture.bpf.h.
 *
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
 *
 * Included by dns_rewrite.bpf.h and palisade.bpf.c.
 */
#ifndef PALISADE_DNS_POLICY_BPF_H
#define PALISADE_DNS_POLICY_BPF_H

#include "record.bpf.h"

#define PAL_PORT_DNS 53

/* DNS policy sizes (records.h has the limits shared with user space). */
#define PAL_DNS_LEARNED_ENTRIES 65536
#define PAL_DNS_HITS_ENTRIES 65536
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

static __always_inline void dns_stat_inc(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&pal_dns_stats, &slot);

	if (value)
		*value += 1;
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
	__u32 keep;    /* message bytes up to the end of the first question */
	__u32 rule_id; /* the rule that decided (allow or block), 0: none or no rule */
	__u8 todo;     /* enum pal_dns_todo */
	__u8 query;    /* 1: a query, 0: an answer */
	__u8 flag;     /* PAL_FLAG_DNS_* for the record */
	__u8 decided;  /* a rule (or the fragment rule) decided: for a packet trace */
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
	/*
	 * A fragmented datagram to port 53: what the resolver reassembles is not
	 * what this packet shows (the name may sit in, or be changed by, a later
	 * fragment), so it cannot be judged. Queries never need fragmenting (they
	 * are far below any MTU), so it is dropped, whatever it looks like; the
	 * resolver never gets the first fragment and discards the rest.
	 */
	if (p->ip_frag && p->dport == PAL_PORT_DNS) {
		dns_stat_inc(PAL_DNS_STAT_FRAGMENT_DROPPED);
		v->decided = 1;
		v->query = 1;
		v->flag = PAL_FLAG_DNS_BLOCKED;
		v->todo = PAL_DNS_TODO_DROP;
		return;
	}
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
		v->decided = 1;
		v->rule_id = mc.allow_id;
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
	v->decided = 1;
	v->rule_id = mc.block_id;
	v->query = query;
	v->flag = query ? PAL_FLAG_DNS_BLOCKED : PAL_FLAG_DNS_REWRITTEN;
	v->todo = action == PAL_DNS_ACTION_DROP ? PAL_DNS_TODO_DROP : PAL_DNS_TODO_NXDOMAIN;
}

#endif /* PALISADE_DNS_POLICY_BPF_H */
