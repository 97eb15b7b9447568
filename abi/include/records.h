/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * records.h: the one definition of every record and map value shared between
 * Palisade's eBPF programs and user space. The Rust mirrors live in
 * ebpf-programs/src/records.rs and are checked against this header at compile
 * time (build.rs compiles a probe with the host C compiler that reports
 * sizeof/offsetof of every struct and field below).
 *
 * Rules: fixed-width types only, no bool, no implicit padding (every gap is an
 * explicit _pad field), multi-byte integers in host byte order unless a field
 * says otherwise. Any layout change bumps PAL_ABI_VERSION, which is part of
 * the pin directory name, so new code never binds to an old map layout.
 */
#ifndef PALISADE_RECORDS_H
#define PALISADE_RECORDS_H

#include <linux/types.h>

#define PAL_ABI_VERSION 9
/* "PALR" read as a little-endian u32. */
#define PAL_RECORD_MAGIC 0x524c4150u

/* Record kinds (pal_record_hdr.kind). */
#define PAL_KIND_DNS 1
#define PAL_KIND_DHCP 2
#define PAL_KIND_TLS 3 /* payload: struct pal_tls_seg, then the segment bytes */
#define PAL_KIND_FLOW_START 4
#define PAL_KIND_FLOW_END 5
#define PAL_KIND_FLOW_UPDATE 6 /* periodic report of a long flow (sweeper) */

/* Direction relative to the interface the program is attached to. */
#define PAL_DIR_INGRESS 0
#define PAL_DIR_EGRESS 1

/* pal_record_hdr.flags */
#define PAL_FLAG_TRUNCATED 0x01 /* payload_len < orig_payload_len */
#define PAL_FLAG_VLAN 0x02      /* vlan_id is valid */
/*
 * DNS records only. The payload is always the message as the program saw it,
 * before any rewrite: the worker logs what the client asked or what the
 * upstream answered, and the flag says what the kernel did about it.
 */
#define PAL_FLAG_DNS_BLOCKED 0x04   /* query blocked by policy (NXDOMAIN or drop) */
#define PAL_FLAG_DNS_REWRITTEN 0x08 /* answer rewritten to NXDOMAIN (or dropped) by policy */
/*
 * DHCP-ring records only (DHCP server messages, router advertisements): the
 * DHCP guard found the sender on no allow-list entry (guard.bpf.h), and, with
 * PAL_FLAG_GUARD_DROPPED, dropped the packet after copying it.
 */
#define PAL_FLAG_GUARD_ROGUE 0x10
#define PAL_FLAG_GUARD_DROPPED 0x20

/* Ring buffers, one per worker; also the first index of pal_stats keys. */
#define PAL_RING_DNS 0
#define PAL_RING_DHCP 1
#define PAL_RING_TLS 2
#define PAL_RING_FLOW 3
#define PAL_RING_COUNT 4
/* Counters that belong to no ring (whole-packet classification). */
#define PAL_STATS_GLOBAL 4

/* Counter slots (pal_stats key = group * PAL_STAT_COUNT + slot). */
#define PAL_STAT_RECORDS 0    /* records written to the ring */
#define PAL_STAT_RING_FULL 1  /* record dropped: ring buffer had no room */
#define PAL_STAT_TRUNCATED 2  /* record written, payload cut at the capture cap */
#define PAL_STAT_NOT_PARSED 3 /* packet matched but headers could not be read */
#define PAL_STAT_MAP_FULL 4   /* flow table insert failed */
#define PAL_STAT_CAPTURE_OFF 5 /* record not made: its capture is switched off */
#define PAL_STAT_COUNT 6
#define PAL_STATS_ENTRIES ((PAL_STATS_GLOBAL + 1) * PAL_STAT_COUNT)
/* In the global group: PAL_STAT_RECORDS counts packets seen. */

/* Capture caps: payload bytes copied per record, by kind. Powers of two. */
#define PAL_CAP_DNS 2048 /* whole EDNS answers up to 2 KiB; larger ones are cut and flagged */
#define PAL_CAP_DHCP 1024
#define PAL_CAP_TLS 2048 /* bytes per TLS record; a longer segment makes several records */
#define PAL_CAP_QUIC 2048 /* a QUIC Initial datagram (>= 1200 bytes); a longer one is cut and flagged */
#define PAL_CAP_MAX 2048

/* Flow end reasons (pal_flow_record.end_reason). */
#define PAL_FLOW_REASON_NONE 0    /* start or update record */
#define PAL_FLOW_REASON_FIN 1     /* FIN seen both ways */
#define PAL_FLOW_REASON_RST 2     /* RST seen */
#define PAL_FLOW_REASON_TIMEOUT 3 /* idle for the protocol's timeout (sweeper) */
#define PAL_FLOW_REASON_EVICTED 4 /* ended early to make room: its shard was nearly full and
				   * it was idle for its emergency timeout (sweeper) */
#define PAL_FLOW_REASON_SHUTDOWN 5 /* the table goes away (the supervisor detaches on exit):
				    * ended by pal_flow_end_all */

/* pal_flow_value.flags and pal_flow_record.flags. */
#define PAL_FLOW_F_SEEDED 0x01   /* entry made from a conntrack entry at supervisor start */
#define PAL_FLOW_F_ANNOUNCE 0x02 /* seeded entry whose start record the sweeper still owes */
#define PAL_FLOW_F_VLAN 0x04     /* vlan_id is valid (the first packet was tagged) */
/*
 * The oldest ABI whose flow table has this layout: pal_flow_key, pal_flow_value
 * and PAL_FLOW_F_* as here, in shards pinned as maps/pal_flow_shard_<n>. A
 * supervisor upgraded from such an ABI carries the older table's open flows
 * over into its own (their counters and identity go on). Lower it never;
 * raise it to the new PAL_ABI_VERSION whenever one of them changes.
 */
#define PAL_FLOW_LAYOUT_SINCE 6

/*
 * Every ring-buffer record starts with this header; payload_len bytes of
 * payload follow it. For DNS/DHCP/TLS the payload is the L4 payload prefix;
 * for flow records it is one struct pal_flow_record.
 */
struct pal_record_hdr {
	__u32 magic;            /* PAL_RECORD_MAGIC: rejects garbage early */
	__u16 abi_version;      /* PAL_ABI_VERSION of the program that wrote it */
	__u16 kind;             /* PAL_KIND_* */
	__u32 len;              /* total length: header + payload_len */
	__u32 ifindex;          /* interface the packet was seen on */
	__u64 ts_boot_ns;       /* bpf_ktime_get_boot_ns() at capture */
	__u8 direction;         /* PAL_DIR_* */
	__u8 ip_version;        /* 4 or 6 */
	__u8 l4_proto;          /* IPPROTO_* */
	__u8 flags;             /* PAL_FLAG_* */
	__u16 vlan_id;          /* 802.1Q VID when PAL_FLAG_VLAN */
	__u16 src_port;         /* host order; 0 for ICMP */
	__u16 dst_port;         /* host order; 0 for ICMP */
	__u8 src_mac[6];        /* Ethernet source */
	__u8 dst_mac[6];        /* Ethernet destination */
	__u16 _pad0;            /* explicit padding, always 0 */
	__u8 src_addr[16];      /* network order; IPv4 in the first 4 bytes */
	__u8 dst_addr[16];      /* network order; IPv4 in the first 4 bytes */
	__u32 payload_len;      /* bytes of payload following this header */
	__u32 orig_payload_len; /* payload length on the wire (>= payload_len) */
	__u64 flow_start_ns;    /* first_seen_ns of the packet's flow in pal_flows (its
				 * identity, with the tuple: EVE flow_id); 0 when the
				 * packet has no flow entry (table full, TCP teardown of
				 * an unknown flow, IP policy drops) */
};

/*
 * Payload of PAL_KIND_FLOW_START / _UPDATE / _END. The header's addresses,
 * ports and MACs are oriented client (first packet's sender, or conntrack's
 * original direction for seeded flows) -> server; its ifindex, direction and
 * VLAN are those of the flow's first packet, its ts_boot_ns the time the
 * record was made.
 *
 * Byte counters: bytes_* count frames as captured, link-layer header
 * included (Suricata's and Arkime's bytes_toserver; a VLAN tag the NIC
 * stripped counts, a GSO/GRO super-packet counts as the segments it stands
 * for). payload_bytes_* count L4 payload only (TCP/UDP data), which is what
 * the sending application wrote.
 */
struct pal_flow_record {
	__u64 first_seen_ns;          /* boot ns of the first packet */
	__u64 last_seen_ns;           /* boot ns of the latest packet */
	__u64 pkts_toserver;
	__u64 pkts_toclient;
	__u64 bytes_toserver;
	__u64 bytes_toclient;
	__u64 payload_bytes_toserver;
	__u64 payload_bytes_toclient;
	__u8 tcp_flags_toserver;      /* OR of TCP flags seen client -> server */
	__u8 tcp_flags_toclient;
	__u8 end_reason;              /* PAL_FLOW_REASON_* */
	__u8 flags;                   /* PAL_FLOW_F_* */
	__u8 icmp_type;               /* ICMP/ICMPv6 flows: the first packet's type */
	__u8 icmp_code;               /* ... and code */
	__u8 _pad[2];
};

/*
 * The flow table: pal_flows is an array of PAL_FLOW_SHARDS hash maps (no
 * preallocation: memory follows the live flows), created and pinned by the
 * supervisor, each with 1/PAL_FLOW_SHARDS of the capacity its memory budget
 * allows ([flow] memory_mib). A key lives in shard pal_flow_shard(key)
 * (flows.bpf.h, mirrored by palisade_abi::flow_shard). The sweeper walks one
 * shard per tick, so a walk is bounded by the shard's size, not the table's.
 */
#define PAL_FLOW_SHARDS 64

/*
 * Key of the pal_flows hashes: the direction-normalized 5-tuple. Endpoints
 * are ordered by address (as a 128-bit big-endian number), then by port.
 * VLAN tags are not part of the key: a flow seen with and without a tag (or
 * with a second, QinQ tag) is one flow, as tshark and Zeek count it.
 * ICMP flows have both ports 0: all ICMP between two hosts is one flow.
 */
struct pal_flow_key {
	__u8 addr_lo[16];  /* the numerically lower (addr, port) endpoint */
	__u8 addr_hi[16];
	__u16 port_lo;
	__u16 port_hi;
	__u8 l4_proto;
	__u8 ip_version;
	__u16 _pad;        /* explicit padding, always 0 */
};

/*
 * Value of the pal_flows hashes. tcp_flags[2], client_is_lo and fin_mask
 * form one aligned 32-bit word that the program updates with one atomic OR
 * (palisade.bpf.c asserts this at compile time): keep them together.
 */
struct pal_flow_value {
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u64 last_report_ns;   /* when the last start/update record was made */
	__u64 pkts[2];          /* [0] client -> server, [1] server -> client */
	__u64 bytes[2];         /* frame bytes, see pal_flow_record */
	__u64 payload_bytes[2];
	__u8 tcp_flags[2];
	__u8 client_is_lo;      /* 1 if the client is the key's addr_lo side */
	__u8 fin_mask;          /* bit 0: FIN from client, bit 1: FIN from server */
	__u32 ifindex;          /* first packet's interface; 0 until a seeded flow is seen */
	__u8 client_mac[6];
	__u8 server_mac[6];
	__u16 vlan_id;          /* first packet's outer VLAN id, with PAL_FLOW_F_VLAN */
	__u8 flags;             /* PAL_FLOW_F_* */
	__u8 direction;         /* first packet's PAL_DIR_* */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 tls_follow;        /* 1 while pal_tls_conns follows this connection's handshake */
	__u8 blocked;           /* 1: in pal_flow_block, as of block_gen */
	__u32 block_gen;        /* pal_flow_block_active[0] when `blocked` was looked up */
};

/*
 * Value of pal_flow_config[0], written by the supervisor. The sweeper (a
 * kernel timer, so it runs while no supervisor or worker does) walks every
 * shard once per sweep_interval_ns (one shard per tick): it ends flows idle
 * for longer than their timeout and reports flows whose last report is
 * update_interval_ns old. A shard whose previous walk found at least
 * emergency_live flows is walked in emergency: flows idle for longer than
 * their emergency timeout end too, with reason PAL_FLOW_REASON_EVICTED, so
 * that new flows find room and no flow ends without a record.
 */
struct pal_flow_config {
	__u64 idle_timeout_ns;     /* UDP, ICMP: end after this long without a packet */
	__u64 tcp_idle_timeout_ns; /* TCP without FIN pair or RST */
	__u64 update_interval_ns;  /* 0: no periodic update records */
	__u64 sweep_interval_ns;   /* period of a whole walk; 0 stops the sweeper */
	__u64 emergency_idle_ns;   /* UDP, ICMP idle timeout in emergency */
	__u64 emergency_tcp_idle_ns; /* TCP idle timeout in emergency */
	__u64 emergency_live;      /* live flows in a shard that start emergency; 0: never */
};

/*
 * Value of pal_flow_sweep[shard], written by the sweeper after each walk of
 * that shard.
 */
struct pal_flow_sweep {
	__u64 sweeps;        /* walks of this shard completed */
	__u64 last_sweep_ns; /* boot ns of its latest walk */
	__u64 live;          /* flows in it at the latest walk (announced ones) */
	__u64 walk_ns;       /* duration of its latest walk */
};

/* pal_flow_stats slots: per-CPU u64 counters, key = slot. */
#define PAL_FLOW_STAT_CREATED 0       /* flows started by a packet */
#define PAL_FLOW_STAT_SEEDED 1        /* seeded flows announced by the sweeper */
#define PAL_FLOW_STAT_ENDED_FIN 2
#define PAL_FLOW_STAT_ENDED_RST 3
#define PAL_FLOW_STAT_ENDED_TIMEOUT 4
#define PAL_FLOW_STAT_UPDATES 5       /* update records made */
#define PAL_FLOW_STAT_ENDED_EVICTED 6 /* ended early by an emergency walk (with a record) */
#define PAL_FLOW_STAT_EMERGENCY 7     /* shard walks made in emergency */
#define PAL_FLOW_STAT_BLOCKED 8       /* packets dropped because their flow is in pal_flow_block */
#define PAL_FLOW_STAT_ENDED_SHUTDOWN 9 /* flows ended by pal_flow_end_all (with a record) */
#define PAL_FLOW_STAT_COUNT 10

/* Flows pal_flow_end_all ends per run: what rb_flow holds with room to spare, so that the
 * flow worker drains a batch before the next one comes. */
#define PAL_FLOW_END_BATCH 4096

/* The BPF_PROG_TEST_RUN frame of pal_flow_end_all (the first 8 of its >= 14 bytes). */
struct pal_flow_end_args {
	__u32 shard;  /* pal_flows slot */
	__u32 budget; /* flows to end at most (PAL_FLOW_END_BATCH) */
};
/*
 * Nothing leaves the table without a record: created + seeded = ended_* +
 * live. A flow the table had no room for is not created: it is counted in
 * the flow ring's PAL_STAT_MAP_FULL.
 */

/* ------------------------------------------------------------------------ */
/* TLS handshake capture (maps pal_tls_conns, pal_tls_stats; tls_capture.bpf.h) */
/* ------------------------------------------------------------------------ */

/*
 * The kernel follows a TCP connection's handshake from the first segment
 * that starts a TLS record carrying a ClientHello or ServerHello (or an
 * SSLv2-format ClientHello), both ways, on any port, and copies the segments
 * as PAL_KIND_TLS records until each direction's records turn encrypted
 * (application data, alert) or a bound is hit: PAL_TLS_MAX_BYTES of stream
 * per direction, PAL_TLS_MAX_NS after the first hello. The worker puts the
 * bytes in order by `offset` (retransmissions, reordering).
 */
#define PAL_TLS_MAX_BYTES 32768          /* stream bytes followed per direction */
#define PAL_TLS_MAX_NS 10000000000ULL    /* 10 s after the first hello */
#define PAL_TLS_CHUNKS 8                 /* records per skb at most (GSO/GRO giants) */
#define PAL_TLS_CONNS 65536              /* handshakes followed at once (LRU) */

/* pal_tls_seg.dir */
#define PAL_TLS_DIR_CLIENT 0 /* client -> server (the hello's sender, or the ServerHello's peer) */
#define PAL_TLS_DIR_SERVER 1

/* pal_tls_seg.flags */
#define PAL_TLS_SEG_FIRST 0x01 /* the first record of this direction (stream offset 0 is known) */
#define PAL_TLS_SEG_LAST 0x02  /* the kernel stops following this direction after this record */
#define PAL_TLS_SEG_CUT 0x04   /* more of this segment was not copied (bound, or chunks) */
#define PAL_TLS_SEG_FIN 0x08   /* the segment carried FIN or RST */

/*
 * Payload of PAL_KIND_TLS: this header, then the copied bytes of one TCP
 * segment (at most PAL_CAP_TLS - sizeof(struct pal_tls_seg)). The record
 * header's tuple is the packet's.
 */
struct pal_tls_seg {
	__u64 conn_ns;  /* when the kernel started following: identifies the handshake */
	__u32 offset;   /* stream offset of the first byte (0 = first byte of the direction) */
	__u32 seq;      /* its TCP sequence number */
	__u8 dir;       /* PAL_TLS_DIR_* */
	__u8 flags;     /* PAL_TLS_SEG_* */
	__u16 _pad;     /* explicit padding, always 0 */
	__u32 _pad2;    /* explicit padding, always 0 */
};

/* Value of pal_tls_conns (key: struct pal_flow_key). Index [d]: PAL_TLS_DIR_*. */
struct pal_tls_conn {
	__u64 start_ns;    /* first hello seen (pal_tls_seg.conn_ns) */
	__u32 base[2];     /* TCP sequence number of stream offset 0 */
	__u32 next_rec[2]; /* stream offset of the next TLS record header */
	__u8 client_is_lo; /* the client is the key's addr_lo side */
	__u8 state[2];     /* PAL_TLS_ST_* */
	__u8 _pad[5];      /* explicit padding, always 0 */
};

/* pal_tls_conn.state[d] */
#define PAL_TLS_ST_NO_BASE 0   /* stream start not known yet (server before its first byte) */
#define PAL_TLS_ST_WALK 1      /* copying; record headers followed */
#define PAL_TLS_ST_BLIND 2     /* copying; a record header was not seen (split, reordering) */
#define PAL_TLS_ST_DONE 3      /* not copying any more */

/* pal_tls_stats slots: per-CPU u64 counters, key = slot. */
#define PAL_TLS_STAT_FOLLOWED 0      /* handshakes followed (entries made) */
#define PAL_TLS_STAT_SEGMENTS 1      /* segments copied (one or more records each) */
#define PAL_TLS_STAT_DONE 2          /* directions that ended at encrypted data or an alert */
#define PAL_TLS_STAT_BOUND_BYTES 3   /* directions stopped at PAL_TLS_MAX_BYTES */
#define PAL_TLS_STAT_BOUND_TIME 4    /* handshakes stopped at PAL_TLS_MAX_NS */
#define PAL_TLS_STAT_CHUNKS_CUT 5    /* segments longer than PAL_TLS_CHUNKS records: rest not copied */
#define PAL_TLS_STAT_BLIND 6         /* directions whose record walk lost a header (copied to a bound) */
#define PAL_TLS_STAT_CLOSED 7        /* handshakes ended by FIN or RST while followed */
#define PAL_TLS_STAT_QUIC_INITIALS 8 /* QUIC Initial datagrams copied (PAL_KIND_QUIC) */
#define PAL_TLS_STAT_COUNT 9

/*
 * Flow blocks: connections the TLS policy cut (a rule with `block` matched
 * their hello). The supervisor alone writes pal_flow_block (key: struct
 * pal_flow_key, the flow table's) after checking the TLS worker's request,
 * and pal_flow_block_active[0]: 0 while the map is empty, else a generation
 * it changes (never to 0) with every change of the map. The flow update
 * looks a flow up in pal_flow_block only when the generation differs from
 * the one its entry saw (block_gen), and keeps the answer in the entry
 * (blocked): a packet costs one inlined array load and a compare. A packet
 * of a blocked flow, either way, is dropped by the observer (TC_ACT_SHOT).
 * The supervisor deletes lapsed entries (expires_ns) within a second and
 * changes the generation, which unblocks their flows; while no supervisor
 * runs, blocks stay in force.
 */
#define PAL_FLOW_BLOCK_MAX 16384

struct pal_flow_block {
	__u64 expires_ns; /* boot-clock deadline */
	__u64 hello_ns;   /* boot-clock time of the hello that matched (its record) */
	__u64 created_ns; /* boot-clock time the supervisor wrote the entry */
	__u32 rule_id;    /* the TLS rule */
	__u32 _pad;       /* explicit padding, always 0 */
};

/*
 * QUIC: every UDP datagram of at least PAL_QUIC_MIN_DATAGRAM bytes (RFC 9000
 * section 14.1: a datagram carrying a client's Initial, or a server's
 * ack-eliciting one, is padded to 1200) whose first packet is a long-header
 * Initial of QUIC v1 (RFC 9000) or v2 (RFC 9369) is copied to rb_tls as a
 * PAL_KIND_QUIC record, on any port, both ways: the payload is the UDP
 * payload (up to PAL_CAP_QUIC). The worker derives the Initial keys,
 * decrypts and reassembles the CRYPTO frames (user space, RustCrypto).
 */
#define PAL_KIND_QUIC 11
#define PAL_QUIC_MIN_DATAGRAM 1200
#define PAL_QUIC_V1 0x00000001
#define PAL_QUIC_V2 0x6b3343cf

/* ------------------------------------------------------------------------ */
/* DNS policy (maps pal_dns_policy, pal_dns_learned, pal_dns_config,        */
/* pal_dns_hits, pal_dns_stats)                                             */
/* ------------------------------------------------------------------------ */

/*
 * Names are matched by the FNV-1a 64-bit hash of their normalized text form:
 * labels joined with '.', no trailing dot, ASCII A-Z folded to a-z, every
 * other byte of a label kept as is except a '.' inside a label, which becomes
 * 0x00 (user space never produces either, so such a label can only match
 * through a parent suffix). ebpf-programs/src/dns_name.rs is the Rust twin.
 */
#define PAL_FNV64_OFFSET 0xcbf29ce484222325ULL
#define PAL_FNV64_PRIME 0x100000001b3ULL

/* Limits of a matchable name. */
#define PAL_DNS_WIRE_MAX 255   /* QNAME bytes on the wire, length octets and root included */
#define PAL_DNS_NAME_MAX 253   /* normalized text bytes (= wire length - 2) */
#define PAL_DNS_LABEL_MAX 63   /* bytes per label */
#define PAL_DNS_SUFFIX_MAX 32  /* innermost suffixes looked up per name (labels of a rule) */

/* pal_dns_rule.action */
#define PAL_DNS_BLOCK 1
#define PAL_DNS_ALLOW 2

/* pal_dns_rule.flags */
#define PAL_DNS_RULE_EXACT 0x01 /* the rule covers the name itself, not its subdomains */
/*
 * Only with PAL_DNS_ALLOW and PAL_DNS_RULE_EXACT: the same name also carries a
 * block of its subdomains (an allow-exact and a block-suffix rule for one
 * name share one hash key). The entry allows the name and blocks below it.
 */
#define PAL_DNS_RULE_BLOCK_SUBDOMAINS 0x02

/* pal_dns_config.block_action */
#define PAL_DNS_ACTION_OFF 0      /* no enforcement (records only) */
#define PAL_DNS_ACTION_NXDOMAIN 1 /* answer blocked queries from the kernel */
#define PAL_DNS_ACTION_DROP 2     /* drop blocked queries (and answers) */

/* pal_dns_stats slots: per-CPU u64 counters, key = slot. */
#define PAL_DNS_STAT_QUERIES_CHECKED 0   /* UDP queries evaluated (enforcement on) */
#define PAL_DNS_STAT_QUERIES_ALLOWED 1   /* an allow rule matched (and decided) */
#define PAL_DNS_STAT_BLOCKED_NXDOMAIN 2  /* queries answered NXDOMAIN by the kernel */
#define PAL_DNS_STAT_BLOCKED_DROP 3      /* queries dropped (drop action or fallback) */
#define PAL_DNS_STAT_ANSWERS_CHECKED 4   /* UDP answers evaluated */
#define PAL_DNS_STAT_ANSWERS_REWRITTEN 5 /* answers rewritten to NXDOMAIN */
#define PAL_DNS_STAT_ANSWERS_DROPPED 6   /* answers dropped (drop action, or not rewritable) */
#define PAL_DNS_STAT_NOT_MATCHABLE 7     /* name too long, compressed, malformed or cut off */
#define PAL_DNS_STAT_LEARNED_HITS 8      /* blocks decided by pal_dns_learned */
#define PAL_DNS_STAT_LEARNED_EXPIRED 9   /* learned entry found but expired: ignored */
#define PAL_DNS_STAT_NXDOMAIN_UNSUPPORTED 10 /* NXDOMAIN wanted, packet not rewritable: dropped */
#define PAL_DNS_STAT_REWRITE_FAILED 11   /* a rewrite helper failed: packet dropped */
#define PAL_DNS_STAT_REDIRECT_FAILED 12  /* bpf_redirect refused: query dropped */
#define PAL_DNS_STAT_HITS_MAP_FULL 13    /* pal_dns_hits insert failed */
#define PAL_DNS_STAT_FRAGMENT_DROPPED 14 /* fragmented datagram to port 53 dropped (in blocked_drop) */
#define PAL_DNS_STAT_COUNT 15

/* Value of the inner maps of pal_dns_policy: key is the __u64 name hash. */
struct pal_dns_rule {
	__u32 rule_id; /* supervisor's rule number, for pal_dns_hits */
	__u8 action;   /* PAL_DNS_BLOCK or PAL_DNS_ALLOW */
	__u8 flags;    /* PAL_DNS_RULE_* */
	__u16 _pad;    /* explicit padding, always 0 */
};

/* Value of pal_dns_learned (key: __u64 hash of the exact name). */
struct pal_dns_learned {
	__u32 rule_id;         /* the rule (regex, CNAME) that produced the verdict */
	__u32 _pad;            /* explicit padding, always 0 */
	__u64 expires_boot_ns; /* CLOCK_BOOTTIME ns; honoured while now < expires */
};

/* Value of pal_dns_config[0], written by the supervisor. */
struct pal_dns_config {
	__u32 block_action; /* PAL_DNS_ACTION_* */
	__u32 _pad;         /* explicit padding, always 0 */
};

/* ------------------------------------------------------------------------ */
/* IP policy (maps pal_ip4_policy, pal_ip6_policy, pal_ip_hits,             */
/* pal_ip_config, pal_ip_stats; programs in ip_policy.bpf.h)                */
/* ------------------------------------------------------------------------ */

/* Record kind of an IP-block alert, written to rb_flow (kind 6 is reserved). */
#define PAL_KIND_IP_BLOCK 7

/* pal_ip_block_record.matched: which address of the packet the rule matched. */
#define PAL_IP_MATCH_SRC 1
#define PAL_IP_MATCH_DST 2

/* pal_ip_block_record.hook: where the packet was dropped. */
#define PAL_IP_HOOK_XDP 1 /* pal_xdp_block (native or generic XDP) */
#define PAL_IP_HOOK_TC 2  /* pal_tc_block_ingress / pal_tc_block_egress (TCX) */

/* pal_ip_stats slots: per-CPU u64 counters, key = slot. */
#define PAL_IP_STAT_DROPPED_V4 0        /* IPv4 packets dropped by a rule */
#define PAL_IP_STAT_DROPPED_V6 1        /* IPv6 packets dropped by a rule */
#define PAL_IP_STAT_ALERTS 2            /* alert records written to rb_flow */
#define PAL_IP_STAT_ALERTS_SUPPRESSED 3 /* drops not alerted: rate limit (or alerts off) */
#define PAL_IP_STAT_ALERTS_LOST 4       /* alert wanted, rb_flow had no room */
#define PAL_IP_STAT_EXPIRED 5           /* a TTL rule matched after its expiry: ignored */
#define PAL_IP_STAT_HITS_MAP_FULL 6     /* pal_ip_hits insert failed (hit not counted per rule) */
#define PAL_IP_STAT_NOT_PARSED 7        /* IP header cut short or malformed: passed */
#define PAL_IP_STAT_VLAN_TOO_DEEP 8     /* more VLAN tags than walked, rules in force: dropped */
#define PAL_IP_STAT_COUNT 9

/*
 * IPv4 pre-filter (pal_ip4_filter): one bit per /16, set when some IPv4 rule
 * covers or lies inside that /16. An address whose /16 bit is clear cannot
 * match: its trie lookup is skipped. Bits are a superset (the supervisor
 * sets them before a prefix enters the trie and clears them only on reload).
 * Bit n of word w is the /16 whose first two address bytes, read as a
 * big-endian number, equal w * 64 + n.
 */
#define PAL_IP4_FILTER_WORDS 1024 /* 65536 bits, u64 words */

/* Key of the IPv4 LPM tries (inner maps of pal_ip4_policy). */
struct pal_ip4_key {
	__u32 prefixlen; /* 0..32, as BPF_MAP_TYPE_LPM_TRIE wants it */
	__u8 addr[4];    /* network order */
};

/* Key of the IPv6 LPM tries (inner maps of pal_ip6_policy). */
struct pal_ip6_key {
	__u32 prefixlen; /* 0..128 */
	__u8 addr[16];   /* network order */
};

/* Value of both tries: the rule a prefix belongs to. */
struct pal_ip_rule {
	__u32 rule_id;         /* supervisor's rule number, for pal_ip_hits and alerts */
	__u8 prefixlen;        /* the prefix length again (an LPM lookup does not return it) */
	__u8 _pad[3];          /* explicit padding, always 0 */
	__u64 expires_boot_ns; /* CLOCK_BOOTTIME ns after which the rule is ignored; 0 = never */
};

/* Value of pal_ip_config[0], written by the supervisor. */
struct pal_ip_config {
	__u64 alert_interval_ns; /* per CPU: at most one alert per interval (burst below); 0 = no alerts */
	__u32 alert_burst;       /* alerts allowed back to back before the interval applies */
	__u32 _pad;              /* explicit padding, always 0 */
};

/*
 * Payload of PAL_KIND_IP_BLOCK. The header describes the dropped packet
 * (addresses, ports, MACs, ifindex, direction).
 */
struct pal_ip_block_record {
	__u32 rule_id;    /* the rule that matched */
	__u32 suppressed; /* drops on this CPU not alerted since its previous alert */
	__u8 prefixlen;   /* prefix length of the rule: the CIDR is the matched address / this */
	__u8 matched;     /* PAL_IP_MATCH_SRC or PAL_IP_MATCH_DST */
	__u8 hook;        /* PAL_IP_HOOK_* */
	__u8 _pad;        /* explicit padding, always 0 */
};

/* ------------------------------------------------------------------------ */
/* Neighbours and the DHCP guard (maps pal_guard_allow, pal_guard_config,   */
/* pal_guard_sources, pal_guard_stats; guard.bpf.h, neigh_capture.bpf.h)    */
/* ------------------------------------------------------------------------ */

/*
 * Written to rb_dhcp, for the device inventory's IP-to-MAC bindings and the
 * guard's alerts. The record header's MACs are the frame's; its addresses
 * are the IPv6 header's for RA/ND, zero for ARP.
 */
#define PAL_KIND_RA 8  /* payload: the ICMPv6 message, type 134 (router advertisement) */
#define PAL_KIND_ARP 9 /* payload: the ARP packet (after the Ethernet and VLAN headers) */
#define PAL_KIND_ND 10 /* payload: the ICMPv6 message, type 135 or 136 (NS, NA) */
#define PAL_CAP_ARP 64      /* an Ethernet/IPv4 ARP packet is 28 bytes; the rest is padding */
#define PAL_CAP_ICMP6 1024  /* RA/ND messages (options included) */

/*
 * The guard (pal_guard_config[0].mode): server-to-client DHCP messages (UDP
 * source port 67 to 68, DHCPv6 547 to 546) and router advertisements whose
 * sender is not on the allow-list are flagged PAL_FLAG_GUARD_ROGUE in their
 * record (alert), and with PAL_GUARD_DROP also dropped.
 */
#define PAL_GUARD_OFF 0   /* no allow-list: nothing checked */
#define PAL_GUARD_ALERT 1 /* flag rogue senders (alerts), pass everything */
#define PAL_GUARD_DROP 2  /* flag and drop them */

/* pal_guard_key.type */
#define PAL_GUARD_KEY_MAC 1  /* addr: the frame's source MAC in the first 6 bytes */
#define PAL_GUARD_KEY_IPV4 4 /* addr: IPv4 source, network order, first 4 bytes */
#define PAL_GUARD_KEY_IPV6 6 /* addr: IPv6 source, network order */

#define PAL_GUARD_ALLOW_MAX 256 /* allow-list entries */
#define PAL_GUARD_SOURCES 1024  /* rogue senders counted (LRU) */

/* Key of pal_guard_allow (value: __u32, the entry's index in the configuration). */
struct pal_guard_key {
	__u8 type;   /* PAL_GUARD_KEY_* */
	__u8 _pad[3]; /* explicit padding, always 0 */
	__u8 addr[16]; /* unused bytes 0 */
};

/*
 * Value of pal_capture_config[0], written by the supervisor (the runtime
 * switches capture-dns, -dhcp, -tls, -flow): bit (1 << PAL_RING_x) set means
 * no record goes to ring x (counted in its group's PAL_STAT_CAPTURE_OFF).
 * Enforcement (DNS policy, DHCP guard, TLS cuts) is not affected.
 * flow_starts says which flows get a start record ([flow] start_events):
 * all of them, or only those the flow worker raises alerts on (TCP or UDP
 * to port 443 or 853: encrypted DNS). 0, what a supervisor that predates the
 * field writes, is all.
 */
struct pal_capture_config {
	__u32 off;         /* bits 1 << PAL_RING_* */
	__u32 flow_starts; /* PAL_FLOW_STARTS_* */
};

#define PAL_FLOW_STARTS_ALL 0
#define PAL_FLOW_STARTS_ALERTS 1

/* Value of pal_guard_config[0], written by the supervisor. */
struct pal_guard_config {
	__u32 mode; /* PAL_GUARD_* */
	__u32 _pad; /* explicit padding, always 0 */
};

/* Key of pal_guard_sources: a rogue sender as seen in the frame. */
struct pal_guard_source_key {
	__u8 mac[6];     /* Ethernet source */
	__u8 ip_version; /* 4 or 6 */
	__u8 _pad;       /* explicit padding, always 0 */
	__u8 addr[16];   /* IP source, network order; IPv4 in the first 4 bytes */
};

/* Value of pal_guard_sources: what that sender sent (atomic adds). */
struct pal_guard_source {
	__u64 dhcp4;    /* DHCPv4 server messages (source port 67 to 68) */
	__u64 dhcp6;    /* DHCPv6 server messages (547 to 546) */
	__u64 ra;       /* router advertisements */
	__u64 dropped;  /* of those, dropped (PAL_GUARD_DROP) */
	__u64 first_ns; /* boot ns of the first */
	__u64 last_ns;  /* boot ns of the latest */
};

/* pal_guard_stats slots: per-CPU u64 counters, key = slot. */
#define PAL_GUARD_STAT_CHECKED 0     /* server messages and RAs checked (guard on) */
#define PAL_GUARD_STAT_ALLOWED 1     /* sender on the allow-list */
#define PAL_GUARD_STAT_ROGUE 2       /* sender not on it (flagged) */
#define PAL_GUARD_STAT_DROPPED 3     /* of those, dropped */
#define PAL_GUARD_STAT_SOURCES_FULL 4 /* pal_guard_sources insert failed (sender not counted) */
#define PAL_GUARD_STAT_COUNT 5

/*
 * Packet tracing (`palisade trace`, trace.bpf.h). Value of
 * pal_trace_config[0], written by the supervisor: while until_ns is in the
 * future, every program reports the packets that match the filter to
 * rb_trace, one struct pal_trace_event per program run. until_ns 0 is off
 * (the state when no trace runs); the deadline also ends a trace whose
 * supervisor went away.
 */
struct pal_trace_config {
	__u64 until_ns;    /* boot ns the trace ends at; 0: off */
	__u8 addr[16];     /* host filter, network order; IPv4 in the first 4 bytes */
	__u8 addr_version; /* 0: any host; 4 or 6: addr is either end */
	__u8 l4_proto;     /* 0: any; IPPROTO_* */
	__u16 port;        /* 0: any; either end's port, host order */
	__u32 _pad;        /* explicit padding, always 0 */
};

/* pal_trace_event.hook: the program that ran. */
#define PAL_TRACE_HOOK_XDP 1      /* pal_xdp_block */
#define PAL_TRACE_HOOK_TC_BLOCK 2 /* pal_tc_block_ingress / pal_tc_block_egress */
#define PAL_TRACE_HOOK_OBSERVER 3 /* pal_tc_ingress / pal_tc_egress */

/* pal_trace_event.decided_by: what made the verdict (NONE: nothing acted). */
#define PAL_TRACE_BY_NONE 0
#define PAL_TRACE_BY_IP_RULE 1    /* IP policy rule rule_id (prefixlen, matched) */
#define PAL_TRACE_BY_DNS_POLICY 2 /* DNS policy rule rule_id (0: a fragment): allowed or blocked */
#define PAL_TRACE_BY_TLS_CUT 3    /* rule rule_id cut the connection (pal_flow_block) */
#define PAL_TRACE_BY_DHCP_GUARD 4 /* the DHCP guard dropped a rogue server message or RA */

/* pal_trace_event.flags */
#define PAL_TRACE_F_VLAN 0x01     /* vlan_id is valid */
#define PAL_TRACE_F_FLOW_FULL 0x02 /* observer: the flow table had no room for its flow */
#define PAL_TRACE_F_REWRITTEN 0x04 /* observer: the DNS policy rewrote this answer in place */

/*
 * One program run on a traced packet (rb_trace). The observer's rings_*
 * say which rings got a record for the packet (bits 1 << PAL_RING_*), and
 * which did not: ring full, or capture switched off.
 */
struct pal_trace_event {
	__u64 ts_boot_ns;    /* bpf_ktime_get_boot_ns() */
	__u64 flow_start_ns; /* observer: the packet's flow (EVE flow_id), 0: none */
	__u32 ifindex;
	__u32 pkt_len;       /* bytes of the frame (skb->len, or the XDP frame) */
	__u32 rule_id;       /* PAL_TRACE_BY_IP_RULE, _DNS_POLICY, _TLS_CUT: the rule (0: none) */
	__s32 verdict;       /* the program's return value (TC_ACT_*, XDP_*) */
	__u8 src_addr[16];   /* network order; IPv4 in the first 4 bytes */
	__u8 dst_addr[16];
	__u16 src_port;      /* host order; 0 without ports */
	__u16 dst_port;
	__u16 vlan_id;       /* valid with PAL_TRACE_F_VLAN */
	__u8 hook;           /* PAL_TRACE_HOOK_* */
	__u8 direction;      /* PAL_DIR_* */
	__u8 ip_version;     /* 4 or 6 */
	__u8 l4_proto;       /* IPPROTO_* */
	__u8 decided_by;     /* PAL_TRACE_BY_* */
	__u8 matched;        /* PAL_TRACE_BY_IP_RULE: PAL_IP_MATCH_* */
	__u8 prefixlen;      /* PAL_TRACE_BY_IP_RULE: the rule's prefix length */
	__u8 flags;          /* PAL_TRACE_F_* */
	__u8 rings_sent;     /* observer: rings a record went to */
	__u8 rings_full;     /* observer: rings whose record was lost, ring full */
	__u8 rings_off;      /* observer: rings whose record was not made, capture off */
	__u8 _pad[7];        /* explicit padding, always 0 */
};

/* pal_trace_stats slots: per-CPU u64 counters, key = slot. */
#define PAL_TRACE_STAT_EVENTS 0 /* events written to rb_trace */
#define PAL_TRACE_STAT_LOST 1   /* events lost: rb_trace full */
#define PAL_TRACE_STAT_COUNT 2

#endif /* PALISADE_RECORDS_H */
